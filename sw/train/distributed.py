"""Data-parallel training with torch.distributed: one process per CPU socket, GPU or machine.

Launched by ``torchrun`` (which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``), every process calls :func:`init_from_env` (or enters
:func:`data_parallel`) and hands the :class:`DataParallel` it gets to
:func:`sw.train.train.train_classifier`. The model is wrapped in DistributedDataParallel; every
rank draws the same sample order from the same seed and takes its contiguous slice of each global
batch; the loss is scaled so that DDP's gradient average is the gradient of the mean loss over the
global batch, as in a single-process run with that batch size (the last, partial batch too).

What is identical to a single-process run with the same seed and global batch, and what is not:

- The initial weights (every rank seeds alike, and DDP copies rank 0's weights to the others),
  the sample order, the batches and the optimizer's arithmetic.
- Not the last bits of the gradients: each rank sums over its slice and the ranks' sums are then
  added, a different order of float additions than one sum over the batch. The weights drift
  apart by float rounding, amplified over many steps (Adam divides by small second moments; a
  SpikePack's floor flips when its input sits on a step). ``tests/sw/train/test_distributed.py``
  measures the difference and docs/cli.md states it.
- BatchNorm: on CUDA :meth:`DataParallel.wrap` converts it to SyncBatchNorm, so the batch
  statistics are those of the global batch (up to the same float rounding). torch's SyncBatchNorm
  does not run on the CPU, so with gloo each rank normalizes with its own slice's statistics (a
  warning says so): not identical. Dropout and other random layers draw different masks on each
  rank than one process would: not identical either. The SpikePack models this tool trains have
  neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import torch
from torch import nn

from .train import resolve_device

#: The environment variables torchrun sets for every process it starts.
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (``WORLD_SIZE`` and ``RANK`` are set)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel run (an initialized default process group).

    Members
    -------
    rank : int
        This process's rank, ``0 .. world_size - 1``; rank 0 writes the outputs.
    world_size : int
        Number of processes.
    local_rank : int
        Rank on this machine (picks the GPU).
    device : torch.device
        Where this rank trains.
    backend : str
        ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that prints and writes files."""
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of one global batch's sample indices.

        The slices of all ranks, in rank order, are the global batch; their sizes differ by at
        most one, and a rank's slice is empty when the batch has fewer samples than ranks.
        """
        return torch.tensor_split(idx, self.world_size)[self.rank]

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` (already on :attr:`device`) in DistributedDataParallel.

        BatchNorm becomes SyncBatchNorm on CUDA; on the CPU (where torch has no SyncBatchNorm)
        it stays per rank, with a warning. Rank 0's parameters and buffers are copied to every
        rank here.
        """
        import warnings

        from torch.nn.parallel import DistributedDataParallel

        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                warnings.warn("BatchNorm in data-parallel training on the CPU: torch's "
                              "SyncBatchNorm needs CUDA, so each rank normalizes with the "
                              "statistics of its own slice of the batch; results differ from a "
                              "single-process run by more than float rounding", stacklevel=2)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def all_sum(self, *values: float) -> list[float]:
        """Each of ``values`` summed over the ranks (float64), in every rank."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        import torch.distributed as dist

        dist.barrier()


def init_from_env(device: str | torch.device = "auto", *, timeout_s: float = 600.0
                  ) -> DataParallel:
    """Join the run torchrun started this process in: the default process group, this rank's device.

    Parameters
    ----------
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`sw.train.train.resolve_device`); with CUDA
        each rank takes GPU ``LOCAL_RANK`` and the backend is NCCL, on the CPU it is gloo.
    timeout_s
        How long a collective waits for the other ranks before failing.

    Raises
    ------
    RuntimeError
        When the environment is not torchrun's (say which variables are missing).
    ValueError
        For a device that is not here (from :func:`resolve_device`).
    """
    import datetime

    import torch.distributed as dist

    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise RuntimeError(f"not started by torchrun ({', '.join(missing)} not set): launch with "
                           "`torchrun --nproc-per-node N ...` (see docs/cli.md, 'Training on "
                           "several processes or machines')")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    dev = resolve_device(device)
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {local_rank} has no GPU: this machine has "
                             f"{torch.cuda.device_count()}; start at most that many processes "
                             "per machine (--nproc-per-node), or train with --device cpu")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DataParallel(rank, world_size, local_rank, dev, backend)


def shutdown() -> None:
    """Leave the process group (after a barrier, so no rank exits while others still talk)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def data_parallel(device: str | torch.device = "auto", **kwargs) -> Iterator[DataParallel]:
    """:func:`init_from_env` on entry, :func:`shutdown` on a normal exit.

    On an exception the group is destroyed without a barrier (the other ranks fail on their
    next collective or time out instead of waiting for this one forever).
    """
    import torch.distributed as dist

    dp = init_from_env(device, **kwargs)
    try:
        yield dp
    except BaseException:
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    shutdown()
