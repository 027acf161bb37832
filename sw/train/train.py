"""Training and evaluation loops (classification with cross-entropy)."""

from __future__ import annotations

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


def as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def train_classifier(model: nn.Module, x, y, *, epochs: int = 60, lr: float = 3e-3,
                     batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0,
                     progress=None, forward=None) -> History:
    """Train ``model`` with Adam and cross-entropy (``forward(model, xb)``, default ``model(xb)``).

    ``progress`` is an optional callable ``(epoch, loss, acc)`` called after every epoch.
    """
    x, y = as_tensor(x), as_tensor(y, torch.long)
    forward = forward or (lambda m, xb: m(xb))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    hist = History()
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        total, correct, n = 0.0, 0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            out = forward(model, x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(-1) == y[idx]).sum())
            n += len(idx)
        sched.step()
        hist.seconds.append(time.perf_counter() - t0)
        hist.loss.append(total / n)
        hist.train_accuracy.append(correct / n)
        if progress:
            progress(epoch, hist.loss[-1], hist.train_accuracy[-1])
    model.eval()
    return hist


@torch.no_grad()
def predict(model: nn.Module, x, forward=None) -> np.ndarray:
    model.eval()
    forward = forward or (lambda m, xb: m(xb))
    return forward(model, as_tensor(x)).argmax(-1).numpy()


def accuracy(pred, y) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y)))
