"""Time-major spiking CNNs: the LIF (BPTT) and PSU/IPSU/RPSU seeds with conv layers.

The conv counterpart of :mod:`sw.train.spiking_mlp`. The input is the packed ``T``-bit image
``(batch, C, H, W)``; :class:`~sw.train.spiking_mlp.BitPlaneEncoder` turns it into bit-plane
spike trains ``(T, batch, C, H, W)``, MSB first, which is what the accelerator's LIF mode reads.
Every spatial module runs on all steps at once through :class:`TimeDistributed` (time folded into
the batch); the neurons carry the dynamics over the leading time axis. Shape (``nn.Sequential``)::

    BitPlaneEncoder(T),
    [TimeDistributed(Conv2d), neuron, (TimeDistributed(MaxPool2d))] | TimeDistributed(AvgPool2d) ...
    Flatten(2), [Linear, neuron] ..., Linear, TimeMean()

What each piece computes per time step ``t`` (docs/numerics.md, "Conv layers of the time-major
seeds"):

- a conv layer: ``I_t = conv(s_t) + b``, the neuron's input current from the step's spikes;
- max pooling of the fired spikes: the maximum of 0/1 spikes, i.e. the OR of the window's spikes
  at that step, exactly the IR's LIF-mode pooling (``sim.golden.ir.MaxPool``);
- average pooling: the mean of the window's spikes at that step; it is linear, so the quantizer
  folds it into the next layer's weights (``sw.compile.quantize_lif_conv``);
- the readout ``Linear`` + ``TimeMean``: the mean of ``W s_t + b`` over the steps.

Residual blocks and BatchNorm are SpikePack-only (``sw.train.conv_models``): :func:`spiking_cnn`
refuses them with a message.

# Ref: arXiv 2402.00449 (PSU), Sec. 4; docs/numerics.md "Conv layers of the time-major seeds".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sim.golden.packing import check_T

from .conv_models import AvgPool, Block, Conv, Dense, ResBlock
from .spiking_mlp import NEURONS, BitPlaneEncoder, TimeMean, make_neuron

__all__ = ["TimeDistributed", "spiking_cnn"]


class TimeDistributed(nn.Module):
    """Run ``module`` on every step of ``(T, batch, ...)`` at once (time folded into the batch).

    Parameters
    ----------
    module : nn.Module
        A module that takes ``(batch, ...)``, e.g. ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.module(x.reshape((t * b,) + tuple(x.shape[2:])))
        return y.reshape((t, b) + tuple(y.shape[1:]))


def spiking_cnn(in_shape: Sequence[int], blocks: Sequence[Block], n_classes: int, T: int,
                neuron: str = "lif", *, tau: float = 2.0, theta: float = 1.0,
                reset: str = "subtract", alpha: float = 2.0) -> nn.Sequential:
    """A time-major spiking CNN: packed images in, time-averaged readout logits out.

    Parameters
    ----------
    in_shape : (C, H, W)
        One input image.
    blocks : sequence of Conv, AvgPool, Dense
        Hidden layers (conv-like first), as for ``sw.train.conv_models.cnn``; ``Conv.bn`` and
        :class:`~sw.train.conv_models.ResBlock` are refused.
    n_classes : int
        Outputs of the readout.
    T : int
        Time steps (1..16), the width of the packed input words.
    neuron : str
        ``"lif"``, ``"if"``, ``"psu"``, ``"ipsu"`` or ``"rpsu"`` (``sw.train.spiking_mlp.NEURONS``).
    tau, theta, reset, alpha
        Passed to every neuron (:func:`sw.train.spiking_mlp.make_neuron`).

    Raises
    ------
    ValueError
        For a block the time-major seeds do not take, or one that does not fit the feature map.
    """
    T = check_T(T)
    if neuron not in NEURONS:
        raise ValueError(f"neuron must be one of {', '.join(NEURONS)}, not {neuron!r}")
    c, h, w = (int(v) for v in in_shape)
    mods: list[nn.Module] = [BitPlaneEncoder(T)]

    def act():
        return make_neuron(neuron, T, tau=tau, theta=theta, reset=reset, alpha=alpha)

    flat = None
    for i, blk in enumerate(blocks):
        if isinstance(blk, Dense):
            if flat is None:
                mods.append(nn.Flatten(2))
                flat = c * h * w
            mods += [nn.Linear(flat, blk.out), act()]
            flat = blk.out
            continue
        if flat is not None:
            raise ValueError(f"block {i} ({type(blk).__name__}) comes after a dense block; put "
                             "conv and pooling blocks first")
        if isinstance(blk, ResBlock):
            raise ValueError(f"block {i}: residual blocks are built for SpikePack CNNs only "
                             "(sw.train.conv_models.cnn); the LIF/PSU seeds take Conv, AvgPool "
                             "and Dense blocks")
        if isinstance(blk, Conv):
            if blk.bn:
                raise ValueError(f"block {i}: BatchNorm is folded for SpikePack CNNs only; use "
                                 "Conv(..., bn=False) for the LIF/PSU seeds")
            if blk.kernel > min(h, w) + 2 * blk.padding:
                raise ValueError(f"block {i}: kernel {blk.kernel} is larger than the padded "
                                 f"input {h}x{w} + 2 x {blk.padding}; use a smaller kernel or "
                                 "more padding")
            mods += [TimeDistributed(nn.Conv2d(c, blk.out, blk.kernel, blk.stride, blk.padding)),
                     act()]
            c = blk.out
            h = (h + 2 * blk.padding - blk.kernel) // blk.stride + 1
            w = (w + 2 * blk.padding - blk.kernel) // blk.stride + 1
            if blk.pool:
                mods.append(TimeDistributed(nn.MaxPool2d(blk.pool)))
                h, w = h // blk.pool, w // blk.pool
        elif isinstance(blk, AvgPool):
            mods.append(TimeDistributed(nn.AvgPool2d(blk.kernel)))
            h, w = h // blk.kernel, w // blk.kernel
        else:
            raise TypeError(f"block {i} is {blk!r}; expected Conv, AvgPool or Dense")
        if h < 1 or w < 1:
            raise ValueError(f"block {i} leaves an empty feature map ({c}, {h}, {w})")
    if flat is None:
        mods.append(nn.Flatten(2))
        flat = c * h * w
    mods += [nn.Linear(flat, n_classes), TimeMean()]
    model = nn.Sequential(*mods)
    model.in_shape = (int(in_shape[0]), int(in_shape[1]), int(in_shape[2]))
    return model
