"""Training and evaluation loops (classification with cross-entropy).

:func:`train_classifier` runs on any torch device (:func:`resolve_device`) and, given a
:class:`sw.train.distributed.DataParallel`, as one rank of a data-parallel run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass
class History:
    """What a training run did: loss and accuracy per epoch, seconds per epoch."""

    loss: list[float] = dataclasses.field(default_factory=list)
    train_accuracy: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the ``with`` body on ``n`` torch threads (``None`` or 0: the caller's count), and
    give the caller's count back after it, also when the body raises."""
    threads = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device called ``name``: ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ValueError
        For CUDA when this torch has no usable CUDA device, or for a name torch does not know.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: give auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (f"this torch {torch.__version__} is built without CUDA"
                     if torch.version.cuda is None else "torch finds no CUDA device")
            raise ValueError(f"device {name!r} asked for, but {build}: use --device cpu (or "
                             "auto), or install a CUDA build of torch on a machine with a GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but there are only "
                             f"{torch.cuda.device_count()} CUDA devices (0..)")
    elif device.type != "cpu":
        raise ValueError(f"device {name!r} is not supported here: give auto, cpu, cuda or cuda:N")
    return device


def as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def train_classifier(model: nn.Module, x, y, *, epochs: int = 60, lr: float = 3e-3,
                     batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0,
                     progress=None, forward=None, device: str | torch.device | None = None,
                     parallel=None) -> History:
    """Train ``model`` with Adam and cross-entropy (``forward(model, xb)``, default ``model(xb)``).

    Parameters
    ----------
    model, x, y
        The model and the whole training set (inputs, integer labels), on the CPU.
    epochs, lr, batch_size, weight_decay
        Adam with a cosine learning-rate schedule over ``epochs``; ``batch_size`` samples per
        step (the global batch when ``parallel`` is given).
    seed
        Seeds the sample order of every epoch.
    progress
        Optional callable ``(epoch, loss, acc)`` called after every epoch.
    forward
        Optional ``forward(model, xb)``; it gets the DistributedDataParallel wrapper when
        ``parallel`` is given.
    device
        Where to train (see :func:`resolve_device`); ``None`` leaves the model where it is. The
        model is moved there for training and back to the device it came from at the end.
    parallel
        A :class:`sw.train.distributed.DataParallel` to train as one rank of a data-parallel run:
        every rank draws the same sample order, takes its contiguous slice of each global batch,
        and the gradient is scaled so that DDP's average equals the gradient of the mean loss over
        the global batch, whatever the size of each slice (the last batch too). Its device is used
        when ``device`` is ``None``. Loss and accuracy are summed over the ranks.
    """
    x, y = as_tensor(x), as_tensor(y, torch.long)
    forward = forward or (lambda m, xb: m(xb))
    if device is None and parallel is not None:
        device = parallel.device
    device = None if device is None else resolve_device(device)
    home = next(model.parameters(), torch.empty(0)).device
    if device is not None:
        model.to(device)
    net = parallel.wrap(model) if parallel is not None else model
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    sum_loss = nn.CrossEntropyLoss(reduction="sum")
    hist = History()
    for epoch in range(epochs):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        total, correct, n = 0.0, 0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            if parallel is None:
                xb, yb = x[idx], y[idx]
                if device is not None:
                    xb, yb = xb.to(device), yb.to(device)
                out = forward(net, xb)
                loss = loss_fn(out, yb)
                batch_total = float(loss.detach()) * len(idx)
            else:
                n_global = len(idx)
                idx = parallel.shard(idx)
                xb, yb = x[idx].to(device), y[idx].to(device)
                out = forward(net, xb)
                # DDP averages over the ranks: world_size / n_global makes it sum / n_global.
                loss = sum_loss(out, yb) * (parallel.world_size / n_global)
                batch_total = float(loss.detach()) * n_global / parallel.world_size
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += batch_total
            correct += int((out.argmax(-1) == yb).sum())
            n += len(idx)
        sched.step()
        if parallel is not None:
            total, correct, n = parallel.all_sum(total, correct, n)
        hist.seconds.append(time.perf_counter() - t0)
        hist.loss.append(total / n)
        hist.train_accuracy.append(correct / n)
        if progress:
            progress(epoch, hist.loss[-1], hist.train_accuracy[-1])
    model.eval()
    if device is not None:
        model.to(home)
    return hist


@torch.no_grad()
def predict(model: nn.Module, x, forward=None) -> np.ndarray:
    model.eval()
    forward = forward or (lambda m, xb: m(xb))
    return forward(model, as_tensor(x)).argmax(-1).numpy()


def accuracy(pred, y) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y)))
