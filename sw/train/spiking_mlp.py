"""Time-major spiking MLPs (LIF trained by BPTT, PSU/IPSU/RPSU trained in parallel).

The model takes the same packed ``T``-bit integer inputs the accelerator receives and turns them
into spike trains by their bit-planes, MSB first (``sim.golden.packing.unpack_bitplanes``): bit
``t`` of input word ``i`` is the spike of input neuron ``i`` at step ``t``. That is exactly what the
hardware's LIF mode reads, so the first layer needs no separate input encoding to deploy.

Shape of every model (``nn.Sequential``)::

    BitPlaneEncoder(T), Linear, neuron, Linear, neuron, ..., Linear, TimeMean()

``nn.Linear`` acts on the last axis of the ``(T, batch, features)`` tensor, so one call covers all
steps; the neuron carries the dynamics. The readout ``Linear`` + :class:`TimeMean` averages
``W s_t + b`` over the ``T`` steps: a non-firing integrator without leak, which the accelerator
runs as a readout LIF layer with ``leak_shift = 0`` (its ``v_T`` is ``T`` times the mean).

# Ref: arXiv 2402.00449 (PSU), Sec. 4 -- networks of PSU/LIF neurons; docs/numerics.md
# "LIF / IF mode".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sim.golden.packing import check_T

from .neurons import IPSU, LIF, PSU, RPSU

#: Neuron kinds :func:`spiking_mlp` builds.
NEURONS = ("lif", "if", "psu", "ipsu", "rpsu")


class BitPlaneEncoder(nn.Module):
    """Packed integer inputs ``(batch, n)`` (a float tensor holding integers in ``[0, 2^T-1]``) to
    bit-plane spike trains ``(T, batch, n)``, MSB first, as floats 0/1."""

    def __init__(self, T: int):
        super().__init__()
        self.T = check_T(T)
        self.register_buffer("shifts", torch.arange(self.T - 1, -1, -1, dtype=torch.int64))

    def forward(self, a0: torch.Tensor) -> torch.Tensor:
        a = a0.to(torch.int64)
        if a.numel() and (int(a.min()) < 0 or int(a.max()) > (1 << self.T) - 1):
            top = (1 << self.T) - 1
            raise ValueError(f"inputs must be packed {self.T}-bit words in [0, {top}]")
        planes = (a.unsqueeze(0) >> self.shifts.reshape((self.T,) + (1,) * a.ndim)) & 1
        return planes.to(a0.dtype if a0.is_floating_point() else torch.float32)

    def extra_repr(self) -> str:
        return f"T={self.T}"


class TimeMean(nn.Module):
    """Readout: mean over the leading (time) axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=0)


def make_neuron(kind: str, T: int, *, tau: float = 2.0, theta: float = 1.0,
                reset: str = "subtract", alpha: float = 2.0) -> nn.Module:
    """One neuron module of ``kind`` (see :data:`NEURONS`); ``"if"`` is LIF without leak."""
    if kind == "lif":
        return LIF(tau=tau, theta=theta, reset=reset, alpha=alpha)
    if kind == "if":
        return LIF(tau=math.inf, theta=theta, reset=reset, alpha=alpha)
    if reset != "subtract":
        raise ValueError(f"{kind.upper()} has a soft reset by construction; reset={reset!r} "
                         "is only for LIF/IF")
    cls = {"psu": PSU, "ipsu": IPSU, "rpsu": RPSU}.get(kind)
    if cls is None:
        raise ValueError(f"neuron must be one of {', '.join(NEURONS)}, not {kind!r}")
    return cls(T, tau=tau, theta=theta, alpha=alpha)


def spiking_mlp(sizes: Sequence[int], T: int, neuron: str = "lif", *, tau: float = 2.0,
                theta: float = 1.0, reset: str = "subtract", alpha: float = 2.0) -> nn.Sequential:
    """A time-major spiking MLP: packed inputs in, time-averaged readout logits out.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, classes last.
    T : int
        Time steps (1..16); also the width of the packed input words.
    neuron : str
        ``"lif"``, ``"if"``, ``"psu"``, ``"ipsu"`` or ``"rpsu"``.
    tau, theta, reset, alpha
        Passed to the neurons (see :class:`~sw.train.neurons.LIF` and
        :class:`~sw.train.neurons.PSU`).
    """
    T = check_T(T)
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
    layers: list[nn.Module] = [BitPlaneEncoder(T)]
    pairs = list(zip(sizes, sizes[1:], strict=False))
    for i, (a, b) in enumerate(pairs):
        layers.append(nn.Linear(a, b))
        if i < len(pairs) - 1:
            layers.append(make_neuron(neuron, T, tau=tau, theta=theta, reset=reset, alpha=alpha))
    layers.append(TimeMean())
    return nn.Sequential(*layers)


@torch.no_grad()
def layer_spikes(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Output spike trains of every spiking layer for packed inputs ``x`` (training semantics)."""
    out, h = [], x
    for m in model:
        h = m(h)
        if isinstance(m, (LIF, PSU)):
            out.append(h)
    return out


@torch.no_grad()
def forward_deployed(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Logits with the deployed semantics: PSU layers run with their real-spike (sequential)
    reset instead of the sigmoid estimate; LIF layers are unchanged (already sequential)."""
    h = x
    for m in model:
        h = m.forward_spiking(h)[0] if isinstance(m, PSU) else m(h)
    return h
