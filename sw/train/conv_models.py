"""Convolutional SpikePack networks: builders for the CNNs the conv quantizer understands.

A CNN is described by a list of blocks (:class:`Conv`, :class:`AvgPool`, :class:`ResBlock`,
:class:`Dense`) and built by :func:`cnn` as an ``nn.Sequential`` of a fixed shape:

- SpikePack: ``InputEncoder, [Conv2d, (BatchNorm2d), SpikePack, (MaxPool2d)] | AvgPool2d |
  ResidualBlock ..., Flatten, [Linear, SpikePack] ..., Linear``  (last Linear = readout)
- ANN: the same without the ``InputEncoder``, with ``ReLU`` or ``ClipFloor`` for ``SpikePack``.

Max pooling sits after the activation: on the packed outputs ``theta a`` it is exact (firing is
monotone, docs/numerics.md). Average pooling is folded into the next layer by the quantizer
(:mod:`sw.compile.quantize_conv`). A :class:`ResidualBlock` is two convs whose second membrane
gets ``gain`` times the block's input (the packed activations it receives), which is the IR's
``Residual(source, gain)``. The ANN forms convert to SpikePack with :func:`spikepack_from_ann_cnn`
and :func:`calibrate_cnn_thresholds`, as the MLPs do (``sw.train.models``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from .casc import ClipQuan
from .models import ClipFloor
from .neurons import InputEncoder, SpikePack

__all__ = ["AvgPool", "Conv", "Dense", "ResBlock", "ResidualBlock", "calibrate_cnn_thresholds",
           "cifar_resnet_small_blocks", "cifar_vgg_small_blocks", "cnn", "mnist_cnn_blocks",
           "random_shift", "spikepack_from_ann_cnn"]


@dataclasses.dataclass(frozen=True)
class Conv:
    """A conv layer with its activation: ``Conv2d(out, kernel, stride, padding)``, optional
    ``BatchNorm2d``, the activation, optional ``MaxPool2d(pool)`` (stride = kernel)."""

    out: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    pool: int | None = None
    bn: bool = False


@dataclasses.dataclass(frozen=True)
class AvgPool:
    """``AvgPool2d(kernel)`` (stride = kernel); folded into the next layer when quantized."""

    kernel: int


@dataclasses.dataclass(frozen=True)
class ResBlock:
    """Two ``kernel x kernel`` convs (stride 1, same padding, channels unchanged); the second
    membrane adds ``gain`` times the block input."""

    kernel: int = 3
    gain: float = 1.0
    bn: bool = False


@dataclasses.dataclass(frozen=True)
class Dense:
    """A hidden fully connected layer with its activation."""

    out: int


Block = Conv | AvgPool | ResBlock | Dense


class ResidualBlock(nn.Module):
    """``act2(bn2(conv2(act1(bn1(conv1(x))))) + gain x)``: a shortcut into the second membrane.

    ``x`` is the block's input (the previous layer's output ``theta a``, or the encoded input), so
    in integers the second layer's membrane gets ``g a_src`` with ``g`` the quantized ``gain``
    (``sim.golden.ir.Residual``). The convs keep the channels and the size (stride 1, padding
    ``kernel // 2``, odd kernel).

    Parameters
    ----------
    conv1, conv2 : nn.Conv2d
        The two convolutions.
    act1, act2 : nn.Module
        Activations (``SpikePack``, ``ReLU`` or ``ClipFloor``).
    bn1, bn2 : nn.BatchNorm2d or None
        Optional batch norms, folded by the quantizer.
    gain : float
        Fixed float weight of the shortcut.
    """

    def __init__(self, conv1: nn.Conv2d, act1: nn.Module, conv2: nn.Conv2d, act2: nn.Module,
                 bn1: nn.BatchNorm2d | None = None, bn2: nn.BatchNorm2d | None = None,
                 gain: float = 1.0):
        super().__init__()
        self.conv1, self.bn1, self.act1 = conv1, bn1, act1
        self.conv2, self.bn2, self.act2 = conv2, bn2, act2
        self.gain = float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        if self.bn1 is not None:
            h = self.bn1(h)
        h = self.conv2(self.act1(h))
        if self.bn2 is not None:
            h = self.bn2(h)
        return self.act2(h + self.gain * x)

    def extra_repr(self) -> str:
        return f"gain={self.gain:g}"


def _activation(kind: str, T: int) -> nn.Module:
    if kind == "spikepack":
        return SpikePack(T)
    if kind == "relu":
        return nn.ReLU()
    if kind == "clipfloor":
        return ClipFloor(T)
    if kind == "clipquan":
        return ClipQuan(T)
    raise ValueError(f"activation must be 'spikepack', 'relu', 'clipfloor' or 'clipquan', not "
                     f"{kind!r}")


def cnn(in_shape: Sequence[int], blocks: Sequence[Block], n_classes: int, T: int, *,
        activation: str = "spikepack") -> nn.Sequential:
    """Build a CNN from ``blocks`` (see the module docstring for the shape).

    Parameters
    ----------
    in_shape : (C, H, W)
        One input image.
    blocks : sequence of Conv, AvgPool, ResBlock, Dense
        The hidden layers in order; conv-like blocks must come before dense ones.
    n_classes : int
        Outputs of the readout ``Linear``.
    T : int
        Time steps (SpikePack, ClipFloor).
    activation : {"spikepack", "relu", "clipfloor", "clipquan"}
        ``"spikepack"`` builds the SNN (packed integer inputs, ``InputEncoder`` first); the others
        an ANN on inputs in ``[0, 1]``; ``"clipquan"`` is CASC's ``ClipQuan_L`` with ``L = T``
        (``sw.train.casc``: convert it with ``CIFNetwork.from_cnn``).

    Raises
    ------
    ValueError
        A block that does not fit the feature map (kernel larger than the padded input, an
        even residual kernel, a conv block after a dense one, an unknown activation).
    """
    c, h, w = (int(v) for v in in_shape)
    mods: list[nn.Module] = [InputEncoder(T)] if activation == "spikepack" else []
    _activation(activation, T)  # check the name before building anything
    flat = None
    for i, blk in enumerate(blocks):
        if isinstance(blk, Dense):
            if flat is None:
                mods.append(nn.Flatten())
                flat = c * h * w
            mods += [nn.Linear(flat, blk.out), _activation(activation, T)]
            flat = blk.out
            continue
        if flat is not None:
            raise ValueError(f"block {i} ({type(blk).__name__}) comes after a dense block; put "
                             "conv and pooling blocks first")
        if isinstance(blk, Conv):
            if blk.kernel > min(h, w) + 2 * blk.padding:
                raise ValueError(f"block {i}: kernel {blk.kernel} is larger than the padded "
                                 f"input {h}x{w} + 2 x {blk.padding}; use a smaller kernel or "
                                 "more padding")
            mods.append(nn.Conv2d(c, blk.out, blk.kernel, blk.stride, blk.padding))
            if blk.bn:
                mods.append(nn.BatchNorm2d(blk.out))
            mods.append(_activation(activation, T))
            c = blk.out
            h = (h + 2 * blk.padding - blk.kernel) // blk.stride + 1
            w = (w + 2 * blk.padding - blk.kernel) // blk.stride + 1
            if blk.pool:
                mods.append(nn.MaxPool2d(blk.pool))
                h, w = h // blk.pool, w // blk.pool
        elif isinstance(blk, AvgPool):
            mods.append(nn.AvgPool2d(blk.kernel))
            h, w = h // blk.kernel, w // blk.kernel
        elif isinstance(blk, ResBlock):
            if blk.kernel % 2 == 0:
                raise ValueError(f"block {i}: a residual block needs an odd kernel (same size "
                                 f"output), not {blk.kernel}")
            p = blk.kernel // 2
            mods.append(ResidualBlock(
                nn.Conv2d(c, c, blk.kernel, 1, p), _activation(activation, T),
                nn.Conv2d(c, c, blk.kernel, 1, p), _activation(activation, T),
                nn.BatchNorm2d(c) if blk.bn else None, nn.BatchNorm2d(c) if blk.bn else None,
                gain=blk.gain))
        else:
            raise TypeError(f"block {i} is {blk!r}; expected Conv, AvgPool, ResBlock or Dense")
        if h < 1 or w < 1:
            raise ValueError(f"block {i} leaves an empty feature map ({c}, {h}, {w})")
    if flat is None:
        mods.append(nn.Flatten())
        flat = c * h * w
    mods.append(nn.Linear(flat, n_classes))
    model = nn.Sequential(*mods)
    model.in_shape = tuple(int(v) for v in in_shape)  # read by the conv quantizer
    return model


def mnist_cnn_blocks() -> list[Block]:
    """The MNIST CNN: conv 1->16 k5 pad 2 + maxpool 2, conv 16->32 k5 pad 2 + maxpool 2, then a
    dense readout 32*7*7 -> 10 (about 29k weights; largest feature map 16x28x28)."""
    return [Conv(16, 5, padding=2, pool=2), Conv(32, 5, padding=2, pool=2)]


def cifar_vgg_small_blocks(*, bn: bool = True) -> list[Block]:
    """VGG-small for CIFAR-10-shaped images (3x32x32): conv 16, conv 16 + max pool 2, conv 32,
    conv 32 + max pool 2, conv 64 + max pool 2 (all 3x3, padding 1, BatchNorm folded), dense
    128, then the readout 128 -> 10: 7 layers, about 167k weights; largest feature map
    16x32x32 (1,024 spike blocks of 16 channels, as the 3x32x32 input)."""
    return [Conv(16, 3, padding=1, bn=bn), Conv(16, 3, padding=1, pool=2, bn=bn),
            Conv(32, 3, padding=1, bn=bn), Conv(32, 3, padding=1, pool=2, bn=bn),
            Conv(64, 3, padding=1, pool=2, bn=bn), Dense(128)]


def cifar_resnet_small_blocks(*, bn: bool = True, gain: float = 1.0) -> list[Block]:
    """A small ResNet for 3x32x32 images: conv 16 + max pool 2, a residual block (two 3x3 convs,
    16 channels, 16x16), conv 32 + max pool 2, a residual block (32 channels, 8x8), conv 64 +
    max pool 2, then the readout 1024 -> 10: 8 layers, about 57k weights. Each block's second
    membrane adds ``gain`` times the block input (the IR's ``Residual``); the stem pools first
    so that a block's input, middle and output maps (3 x 256 blocks of 16 channels at 16x16) fit
    the spike memory together."""
    return [Conv(16, 3, padding=1, pool=2, bn=bn), ResBlock(3, gain, bn),
            Conv(32, 3, padding=1, pool=2, bn=bn), ResBlock(3, gain, bn),
            Conv(64, 3, padding=1, pool=2, bn=bn)]


def _swap_activations(module: nn.Module, T: int) -> None:
    for name, child in module.named_children():
        if isinstance(child, ClipFloor):
            if child.T != T:
                raise ValueError(f"ClipFloor ANN was trained for T={child.T}, not T={T}")
            sp = SpikePack(T)
            sp.theta.data.copy_(child.inner.theta.data)
            setattr(module, name, sp)
        elif isinstance(child, nn.ReLU):
            setattr(module, name, SpikePack(T))
        elif isinstance(child, SpikePack | InputEncoder):
            raise ValueError("expected an ANN (ReLU or ClipFloor activations, no InputEncoder), "
                             f"found {type(child).__name__}")
        else:
            _swap_activations(child, T)


def spikepack_from_ann_cnn(ann: nn.Sequential, T: int) -> nn.Sequential:
    """The SpikePack CNN of an ANN built by :func:`cnn`: the same weights (copied), each ReLU or
    ClipFloor replaced by a SpikePack (ClipFloor's learned step carried over; ReLU ones need
    :func:`calibrate_cnn_thresholds`), an ``InputEncoder`` in front."""
    body = copy.deepcopy(ann)
    _swap_activations(body, T)
    snn = nn.Sequential(InputEncoder(T), *body)
    if hasattr(ann, "in_shape"):
        snn.in_shape = ann.in_shape
    return snn


@torch.no_grad()
def calibrate_cnn_thresholds(model: nn.Module, x: torch.Tensor, percentile: float = 99.9,
                             ) -> None:
    """Set every SpikePack threshold (also inside residual blocks) so the ``percentile`` of its
    positive input maps to the top level ``2^T - 1``, layer by layer in forward order, each seeing
    the already calibrated layers before it."""
    was_training = model.training
    model.eval()
    for sp in [m for m in model.modules() if isinstance(m, SpikePack)]:
        seen = []
        handle = sp.register_forward_pre_hook(lambda _m, args, seen=seen: seen.append(args[0]))
        try:
            model(x)
        finally:
            handle.remove()
        z = seen[0]
        pos = z[z > 0].flatten()
        if pos.numel() > 1_000_000:
            pos = pos[torch.randperm(pos.numel(), generator=torch.Generator().manual_seed(0))
                      [:1_000_000]]
        top = float(torch.quantile(pos, percentile / 100)) if pos.numel() else 0.0
        sp.theta.data.fill_(top / sp.levels if top > 0 else 1.0)
    model.train(was_training)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None,
                 ) -> torch.Tensor:
    """Shift each image of ``x`` (N, C, H, W) by its own random ``(dy, dx)`` in
    ``[-max_shift, max_shift]``, filling with zeros (training augmentation; packed integer
    inputs stay integers)."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    xp = torch.nn.functional.pad(x, (max_shift,) * 4)
    off = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack([xp[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(off)])
