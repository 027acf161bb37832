"""Model builders: the MLPs the tool trains, converts and compiles.

Every builder returns an ``nn.Sequential`` of a fixed shape the quantizer understands:

- ANN:        ``Linear, act, Linear, act, ..., Linear``  (act = ReLU or ClipFloor)
- SpikePack:  ``InputEncoder, Linear, SpikePack, ..., Linear``  (last Linear = readout)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .neurons import InputEncoder, SpikePack


class ClipFloor(nn.Module):
    """Quantized clip activation ``lam * floor(L clamp(x / lam, 0, 1)) / L`` with ``L = 2^T - 1``.

    This is SpikePack's packed form seen as an ANN activation (a step of ``lam / L``), so a
    ClipFloor ANN converts to SpikePack exactly. ``lam`` is learned.

    # Ref: arXiv 2406.05371 (CASC), Eq. 3 -- ClipQuan_L.
    """

    def __init__(self, T: int, lam: float = 1.0):
        super().__init__()
        self.inner = SpikePack(T, theta=lam / ((1 << T) - 1))

    @property
    def T(self) -> int:
        return self.inner.T

    def forward(self, x):
        return self.inner(x)


def _linears(sizes: Sequence[int]) -> list[nn.Linear]:
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
    return [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]


def ann_mlp(sizes: Sequence[int], activation: str = "relu", T: int = 4) -> nn.Sequential:
    """Float ANN. ``activation`` is ``"relu"`` or ``"clipfloor"`` (needs ``T``)."""
    layers: list[nn.Module] = []
    linears = _linears(sizes)
    for i, lin in enumerate(linears):
        layers.append(lin)
        if i < len(linears) - 1:
            if activation == "relu":
                layers.append(nn.ReLU())
            elif activation == "clipfloor":
                layers.append(ClipFloor(T))
            else:
                raise ValueError(f"activation must be 'relu' or 'clipfloor', not {activation!r}")
    return nn.Sequential(*layers)


def spikepack_mlp(sizes: Sequence[int], T: int, *, form: str = "packed") -> nn.Sequential:
    """SpikePack SNN: packed integer inputs in, readout membrane values out."""
    layers: list[nn.Module] = [InputEncoder(T)]
    linears = _linears(sizes)
    for i, lin in enumerate(linears):
        layers.append(lin)
        if i < len(linears) - 1:
            layers.append(SpikePack(T, form=form))
    return nn.Sequential(*layers)


def spikepack_from_ann(ann: nn.Sequential, T: int) -> nn.Sequential:
    """Copy an ANN's weights into a SpikePack SNN of the same shape (thresholds still to set).

    ClipFloor activations carry their learned step over; ReLU ones need
    :func:`calibrate_thresholds`.
    """
    linears = [m for m in ann if isinstance(m, nn.Linear)]
    acts = [m for m in ann if not isinstance(m, nn.Linear)]
    if not linears or len(acts) != len(linears) - 1:
        raise ValueError("expected an ANN of the shape Linear, act, Linear, ..., Linear (as built "
                         f"by ann_mlp), got {[type(m).__name__ for m in ann]}")
    sizes = [linears[0].in_features] + [lin.out_features for lin in linears]
    snn = spikepack_mlp(sizes, T)
    for dst, src in zip((m for m in snn if isinstance(m, nn.Linear)), linears, strict=True):
        dst.load_state_dict(src.state_dict())
    for dst, act in zip((m for m in snn if isinstance(m, SpikePack)), acts, strict=True):
        if isinstance(act, ClipFloor):
            if act.T != T:
                raise ValueError(f"ClipFloor ANN was trained for T={act.T}, not T={T}")
            dst.theta.data.copy_(act.inner.theta.data)
    return snn


@torch.no_grad()
def calibrate_thresholds(model: nn.Sequential, x: torch.Tensor, percentile: float = 99.9) -> None:
    """Set every SpikePack threshold so the ``percentile`` of its positive input maps to the top
    level ``2^T - 1`` (layer by layer, each seeing the already calibrated layers before it).
    """
    h = x
    for m in model:
        if isinstance(m, SpikePack):
            pos = h[h > 0]
            top = (torch.quantile(pos.flatten()[:1_000_000], percentile / 100) if pos.numel()
                   else 1.0)
            m.theta.data.fill_(float(top) / m.levels if float(top) > 0 else 1.0)
        h = m(h)
