"""Quantizer for convolutional SpikePack networks: ``nn.Sequential`` CNN -> ``IntNetwork``.

Two steps. :func:`fold_cnn` turns the torch model (as built by ``sw.train.conv_models.cnn``) into
float layers in the IR's shape (:class:`FoldedLayer`): the input step of each layer (the previous
threshold, or ``1/(2^T-1)`` at the input) goes into its weights, a BatchNorm is folded into the
weights and bias of the conv before it, an average pooling into the layer after it, a residual
block's shortcut becomes a float gain per packed unit. :func:`run_folded` runs those float layers,
so a test can check the folding against the model's own forward pass. :func:`quantize_cnn` then
rounds them with the rule of ``sw.compile.quantize`` (the threshold absorbs the scales; per-channel
integer thresholds chosen first) and returns the same :class:`~sw.compile.quantize.QuantReport`.

BatchNorm, ``y = gamma (z - mu) / sqrt(var + eps) + beta = c z + d`` per channel, is folded as
``W' = c W``, ``b' = c b + d``, ``theta`` unchanged: the sign of ``c`` goes into the weights and
bias (a negative scale flips the channel's weights, so the threshold stays positive), and ``|c|``
reaches the integer threshold through the per-channel scale (``theta_int_j = floor(qmax theta /
max |W'_j|)``), so nothing is lost by folding before quantization.

A shortcut ``gain x`` adds ``gain step_src a_src`` to a float membrane; in integers it must be one
scalar ``g a_src``, so the layer's integer thresholds are chosen to make ``g`` an integer:
``g = floor(min(qmax, qmax gain step_src / max|W'|))`` and ``theta_int_j = floor(g theta_j /
(gain step_src))``; the remaining rounding of the gain is counted in the report's membrane bound.

# Ref: docs/numerics.md "Convolution layers", "Quantization: the threshold absorbs the scales".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, MaxPool, Mode, Residual
from sim.golden.model import required_accumulator_bits
from sw.train.conv_models import ResidualBlock
from sw.train.neurons import InputEncoder, SpikePack

from .quantize import THETA_INT_MAX, LayerQuantization, QuantReport

__all__ = ["ConvQuantizationError", "FoldedLayer", "fold_cnn", "quantize_cnn", "run_folded"]


class ConvQuantizationError(ValueError):
    """The model has a layer or a setting the accelerator's integer network cannot express."""


@dataclasses.dataclass
class FoldedLayer:
    """One float layer in the IR's shape, reading packed input words.

    Members
    -------
    kind : str
        ``"conv"`` or ``"dense"``.
    weight : ndarray
        Float weights per packed input unit (input step, BatchNorm and average pooling folded).
    bias : ndarray
        Float bias per output channel.
    theta : ndarray or None
        Float threshold per output channel; ``None`` for the readout.
    in_shape : tuple of int
        ``(C, H, W)`` (conv) or ``(n_in,)`` (dense).
    stride, padding : int
        Conv geometry (both axes).
    pool : (int, int) or None
        Fused max pooling ``(kernel, stride)`` of the fired outputs.
    residual : (int, float) or None
        ``(source, gain)``: the membrane adds ``gain * a_src`` (packed words of layer ``source``
        or of the network input, ``-1``).
    """

    kind: str
    weight: np.ndarray
    bias: np.ndarray
    theta: np.ndarray | None
    in_shape: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    pool: tuple[int, int] | None = None
    residual: tuple[int, float] | None = None

    @property
    def readout(self) -> bool:
        return self.theta is None

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]


def _pair(value, what: str, index: int) -> int:
    """A torch size argument that must be the same on both axes."""
    if isinstance(value, str):
        raise ConvQuantizationError(f"module {index}: {what}={value!r} is not supported; give "
                                    f"an integer {what}")
    if isinstance(value, tuple | list):
        if len(set(value)) != 1:
            raise ConvQuantizationError(
                f"module {index}: {what}={tuple(value)} differs between the axes; the "
                f"accelerator's conv has one {what} for both axes")
        value = value[0]
    return int(value)


def _check_conv(conv: nn.Conv2d, index: int) -> tuple[int, int, int]:
    if _pair(conv.dilation, "dilation", index) != 1:
        raise ConvQuantizationError(f"module {index}: dilation {conv.dilation} is not supported "
                                    "(the conv layer has dilation 1); use dilation=1")
    if conv.groups != 1:
        raise ConvQuantizationError(f"module {index}: groups={conv.groups} is not supported (the "
                                    "conv layer is dense over input channels); use groups=1")
    if conv.padding_mode != "zeros":
        raise ConvQuantizationError(f"module {index}: padding_mode={conv.padding_mode!r} is not "
                                    "supported; the accelerator pads with zeros")
    return (_pair(conv.stride, "stride", index), _pair(conv.padding, "padding", index),
            _pair(conv.kernel_size, "kernel_size", index))


def _fold_bn(w: np.ndarray, b: np.ndarray, bn: nn.BatchNorm2d | None, index: int):
    """``c (W x + b) + d`` with ``c = gamma / sqrt(var + eps)``, ``d = beta - c mu``."""
    if bn is None:
        return w, b
    if bn.running_mean is None or bn.running_var is None:
        raise ConvQuantizationError(f"module {index}: BatchNorm2d without running statistics "
                                    "cannot be folded; use track_running_stats=True")
    var = bn.running_var.double().numpy()
    mu = bn.running_mean.double().numpy()
    gamma = (bn.weight.detach().double().numpy() if bn.weight is not None else np.ones_like(mu))
    beta = (bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros_like(mu))
    c = gamma / np.sqrt(var + bn.eps)
    return w * c[:, None, None, None], c * b + beta - c * mu


def _conv_wb(conv: nn.Conv2d) -> tuple[np.ndarray, np.ndarray]:
    w = conv.weight.detach().double().numpy()
    b = (conv.bias.detach().double().numpy() if conv.bias is not None
         else np.zeros(conv.out_channels))
    return w, b


def _act(mod, index: int, T: int) -> SpikePack:
    if not isinstance(mod, SpikePack):
        raise ConvQuantizationError(
            f"module {index} is {type(mod).__name__}; a conv or hidden dense layer must be "
            "followed by a SpikePack activation (after an optional BatchNorm2d)")
    if mod.tau != 2:
        raise ConvQuantizationError(f"module {index} has tau={mod.tau}; the hardware implements "
                                    "tau = 2")
    if mod.T != T:
        raise ConvQuantizationError(f"module {index} has T={mod.T} but the input encoder has "
                                    f"T={T}")
    return mod


def _avg_into_conv(w: np.ndarray, k: int, stride: int, padding: int, shape, index: int):
    """Average pooling ``k`` then this conv == a conv with the weights repeated over ``k x k``."""
    _, h, wd = shape
    if h % k or wd % k:
        raise ConvQuantizationError(
            f"module {index}: average pooling {k} before a conv needs a feature map whose size "
            f"is a multiple of {k}, not {h}x{wd}; crop or pad the map, or use max pooling")
    return np.repeat(np.repeat(w, k, axis=2), k, axis=3) / (k * k), stride * k, padding * k


def _avg_into_dense(w: np.ndarray, k: int, shape) -> np.ndarray:
    """Average pooling ``k`` then a dense layer == the dense layer on the unpooled map."""
    c, h, wd = shape
    hp, wp = h // k, wd // k
    w4 = w.reshape(w.shape[0], c, hp, wp)
    full = np.zeros((w.shape[0], c, h, wd))
    full[:, :, :hp * k, :wp * k] = np.repeat(np.repeat(w4, k, axis=2), k, axis=3) / (k * k)
    return full.reshape(w.shape[0], -1)


def _maxpool(mod: nn.MaxPool2d, index: int) -> tuple[int, int]:
    k = _pair(mod.kernel_size, "kernel_size", index)
    s = _pair(mod.stride if mod.stride is not None else k, "stride", index)
    if _pair(mod.padding, "padding", index) or _pair(mod.dilation, "dilation", index) != 1 \
            or mod.ceil_mode or mod.return_indices:
        raise ConvQuantizationError(f"module {index}: MaxPool2d must have no padding, dilation "
                                    "1 and ceil_mode=False (the fused pooling drops a partial "
                                    "window)")
    return k, s


def _avgpool(mod: nn.AvgPool2d, index: int) -> int:
    k = _pair(mod.kernel_size, "kernel_size", index)
    s = _pair(mod.stride if mod.stride is not None else k, "stride", index)
    if s != k or _pair(mod.padding, "padding", index) or mod.ceil_mode \
            or mod.divisor_override is not None:
        raise ConvQuantizationError(f"module {index}: only AvgPool2d(k) with stride k, no "
                                    "padding and no ceil_mode folds into the next layer")
    return k


def fold_cnn(model: nn.Sequential, in_shape=None) -> tuple[int, list[FoldedLayer]]:
    """Fold a SpikePack CNN into float layers of the IR's shape.

    Returns ``(T, layers)``. ``in_shape`` is the input image ``(C, H, W)`` (default
    ``model.in_shape``, set by the builder). The model must be an ``nn.Sequential``:
    ``InputEncoder``, then conv
    units ``Conv2d, [BatchNorm2d], SpikePack, [MaxPool2d]``, ``AvgPool2d``, ``ResidualBlock``,
    ``Flatten``, ``Linear, SpikePack`` pairs and a final ``Linear`` readout (``Dropout`` and
    ``Identity`` are skipped).

    Raises
    ------
    ConvQuantizationError
        For a module or setting the integer network cannot express (one message per problem,
        naming the module and what to use instead).
    """
    mods = list(model)
    if not mods or not isinstance(mods[0], InputEncoder):
        raise ConvQuantizationError(
            "expected a SpikePack CNN: nn.Sequential(InputEncoder, Conv2d, [BatchNorm2d], "
            "SpikePack, ..., Flatten, Linear), as built by sw.train.conv_models.cnn")
    in_shape = in_shape if in_shape is not None else getattr(model, "in_shape", None)
    if in_shape is None:
        raise ConvQuantizationError("the model does not say its input shape; pass "
                                    "in_shape=(C, H, W)")
    T = mods[0].T
    shape = tuple(int(v) for v in in_shape)
    step = mods[0].step  # float value of one packed unit of the current activation
    avg = None  # pending average pooling (folded into the next layer)
    src = NETWORK_INPUT  # which stored output the current activation is
    layers: list[FoldedLayer] = []
    i = 1
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Dropout | nn.Identity):
            i += 1
            continue
        if isinstance(m, nn.Conv2d):
            if len(shape) != 3:
                raise ConvQuantizationError(f"module {i}: a Conv2d after Flatten/Linear cannot "
                                            "be mapped; put conv layers before dense ones")
            stride, padding, _ = _check_conv(m, i)
            if m.in_channels != shape[0]:
                raise ConvQuantizationError(f"module {i}: Conv2d takes {m.in_channels} channels "
                                            f"but gets {shape[0]}")
            w, b = _conv_wb(m)
            j = i + 1
            bn = None
            if j < len(mods) and isinstance(mods[j], nn.BatchNorm2d):
                bn, j = mods[j], j + 1
            if j >= len(mods):
                raise ConvQuantizationError(f"module {i}: a conv readout is not supported; end "
                                            "the network with Flatten and a Linear readout")
            act = _act(mods[j], j, T)
            w, b = _fold_bn(w, b, bn, i)
            if avg is not None:
                w, stride, padding = _avg_into_conv(w, avg, stride, padding, shape, i)
                avg = None
            kh, kw = w.shape[2:]
            if kh > shape[1] + 2 * padding or kw > shape[2] + 2 * padding:
                raise ConvQuantizationError(
                    f"module {i}: kernel {kh}x{kw} is larger than the padded input "
                    f"{shape[1]}x{shape[2]} + 2 x {padding}; use a smaller kernel or more padding")
            pool = None
            j += 1
            if j < len(mods) and isinstance(mods[j], nn.MaxPool2d):
                pool, j = _maxpool(mods[j], j), j + 1
            theta = float(act.theta.detach().abs())
            layer = FoldedLayer("conv", w * step, b, np.full(w.shape[0], theta), shape,
                                stride, padding, pool)
            layers.append(layer)
            shape = _out_shape(layer)
            step, src, i = theta, len(layers) - 1, j
            continue
        if isinstance(m, ResidualBlock):
            if avg is not None:
                raise ConvQuantizationError(f"module {i}: an average pooling right before a "
                                            "residual block cannot be folded (the shortcut "
                                            "reads the pooled map); use max pooling")
            block_src, block_step = src, step
            for half, (conv, bn, act) in enumerate(((m.conv1, m.bn1, m.act1),
                                                    (m.conv2, m.bn2, m.act2))):
                stride, padding, _ = _check_conv(conv, i)
                w, b = _fold_bn(*_conv_wb(conv), bn, i)
                act = _act(act, i, T)
                theta = float(act.theta.detach().abs())
                res = (block_src, m.gain * block_step) if half else None
                layer = FoldedLayer("conv", w * step, b, np.full(w.shape[0], theta), shape,
                                    stride, padding, None, res)
                layers.append(layer)
                if half and _out_shape(layer) != shape:
                    raise ConvQuantizationError(f"module {i}: the residual block changes the "
                                                f"shape {shape} -> {_out_shape(layer)}; the "
                                                "shortcut adds position by position")
                shape = _out_shape(layer)
                step = theta
            src, i = len(layers) - 1, i + 1
            continue
        if isinstance(m, nn.AvgPool2d):
            if avg is not None:
                raise ConvQuantizationError(f"module {i}: two average poolings in a row; merge "
                                            "them into one")
            if len(shape) != 3:
                raise ConvQuantizationError(f"module {i}: AvgPool2d after Flatten")
            avg, i = _avgpool(m, i), i + 1
            continue
        if isinstance(m, nn.Flatten):
            i += 1
            continue
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy()
            b = (m.bias.detach().double().numpy() if m.bias is not None
                 else np.zeros(m.out_features))
            if avg is not None:
                w = _avg_into_dense(w, avg, shape)
                avg = None
            n_in = math.prod(shape)
            if w.shape[1] != n_in:
                raise ConvQuantizationError(f"module {i}: Linear takes {m.in_features} inputs "
                                            f"but the layer before gives {n_in}")
            j = i + 1
            while j < len(mods) and isinstance(mods[j], nn.Dropout | nn.Identity):
                j += 1
            if j >= len(mods):
                layers.append(FoldedLayer("dense", w * step, b, None, (n_in,)))
                return T, layers
            act = _act(mods[j], j, T)
            theta = float(act.theta.detach().abs())
            layers.append(FoldedLayer("dense", w * step, b, np.full(w.shape[0], theta), (n_in,)))
            shape, step, src, i = (w.shape[0],), theta, len(layers) - 1, j + 1
            continue
        raise ConvQuantizationError(
            f"module {i} is {type(m).__name__}, which the accelerator cannot run; use Conv2d, "
            "BatchNorm2d, SpikePack, MaxPool2d, AvgPool2d, ResidualBlock, Flatten or Linear")
    raise ConvQuantizationError("the last module must be a Linear readout (no activation after "
                                "it)")


def _out_shape(layer: FoldedLayer) -> tuple[int, ...]:
    if layer.kind == "dense":
        return (layer.out_channels,)
    _, h, w = layer.in_shape
    kh, kw = layer.weight.shape[2:]
    h = (h + 2 * layer.padding - kh) // layer.stride + 1
    w = (w + 2 * layer.padding - kw) // layer.stride + 1
    if layer.pool is not None:
        k, s = layer.pool
        h, w = (h - k) // s + 1, (w - k) // s + 1
    return (layer.out_channels, h, w)


@torch.no_grad()
def run_folded(layers: list[FoldedLayer], x, T: int) -> np.ndarray:
    """Run folded float layers on packed inputs ``x`` (N, C, H, W) in float64; the readout.

    Firing is ``clip(floor(v / theta), 0, 2^T - 1)`` per channel; this is the model's own
    forward pass (divided through by the activations' steps), so it checks :func:`fold_cnn`.
    """
    a = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    outs = {NETWORK_INPUT: a}
    top = (1 << T) - 1
    for index, layer in enumerate(layers):
        w = torch.as_tensor(layer.weight)
        b = torch.as_tensor(layer.bias)
        if layer.kind == "conv":
            a = a.reshape((len(a),) + layer.in_shape)
            v = F.conv2d(a, w, b, layer.stride, layer.padding)
        else:
            v = a.reshape(len(a), -1) @ w.T + b
        if layer.residual is not None:
            source, gain = layer.residual
            v = v + gain * outs[source].reshape(v.shape)
        if layer.readout:
            return v.numpy()
        th = torch.as_tensor(layer.theta).reshape((-1,) + (1,) * (v.ndim - 2))
        a = torch.clamp(torch.floor(v / th), 0, top)
        if layer.pool is not None:
            a = F.max_pool2d(a, layer.pool[0], layer.pool[1])
        outs[index] = a
    return a.numpy()


def _residual_scale(layer: FoldedLayer, qmax: int, row_max: np.ndarray):
    """Integer thresholds and gain for a layer with a shortcut (one scalar integer gain)."""
    _, gain_f = layer.residual
    mag = abs(gain_f)
    if mag == 0:
        raise ConvQuantizationError("a residual block with gain 0 has no shortcut; remove it")
    g = int(np.floor(min(qmax, qmax * mag / max(float(row_max.max()), 1e-300))))
    g = max(g, 1)
    theta_int = np.clip(np.floor(g * layer.theta / mag), 1, THETA_INT_MAX).astype(np.int64)
    return theta_int, int(math.copysign(g, gain_f))


@torch.no_grad()
def quantize_cnn(model: nn.Sequential, *, weight_bits: int = 8, per_channel: bool = True,
                 in_shape=None) -> tuple[IntNetwork, QuantReport]:
    """Quantize a SpikePack CNN to an :class:`~sim.golden.ir.IntNetwork` and report the rounding.

    Parameters
    ----------
    model : nn.Sequential
        As built by ``sw.train.conv_models.cnn`` (see :func:`fold_cnn` for the accepted shape).
    weight_bits : int
        2..8.
    per_channel : bool
        One integer threshold per output channel (else one per layer).
    in_shape : (C, H, W), optional
        The input image; default ``model.in_shape`` (set by the builder).

    Returns
    -------
    net : IntNetwork
    report : QuantReport
        Per layer, as ``quantize_spikepack``'s; a shortcut's gain rounding is included in the
        membrane error bound.
    """
    if not 2 <= weight_bits <= 8:
        raise ValueError(f"weight_bits must be in 2..8, not {weight_bits}")
    qmax = (1 << (weight_bits - 1)) - 1
    T, folded = fold_cnn(model, in_shape)
    amax = (1 << T) - 1
    layers, reports = [], []
    for index, fl in enumerate(folded):
        n = fl.out_channels
        w = fl.weight
        rows = w.reshape(n, -1)
        row_max = np.abs(rows).max(axis=1)
        gain_int, gain_err = None, np.zeros(n)
        if fl.readout:
            s = np.full(n, max(float(np.abs(w).max()), 1e-300) / qmax)
            theta_int = np.ones(n, dtype=np.int64)
            theta_f = s.copy()
        elif fl.residual is not None:
            theta_f = fl.theta
            theta_int, gain_int = _residual_scale(fl, qmax, row_max)
            if not per_channel:
                theta_int = np.full(n, theta_int.min())
            s = theta_f / theta_int
            gain_err = np.abs(gain_int * s - fl.residual[1])
        else:
            theta_f = fl.theta
            ref = row_max if per_channel else np.full_like(row_max, row_max.max())
            with np.errstate(divide="ignore"):
                ti = np.floor(qmax * theta_f / ref)
            theta_int = np.clip(np.nan_to_num(ti, posinf=THETA_INT_MAX), 1,
                                THETA_INT_MAX).astype(np.int64)
            s = theta_f / theta_int
        scale = s.reshape((n,) + (1,) * (w.ndim - 1))
        w_int = np.clip(np.round(w / scale), -qmax - 1, qmax).astype(np.int64)
        b_int = np.round(fl.bias / s).astype(np.int64)
        geom = {}
        if fl.kind == "conv":
            geom = dict(in_shape=fl.in_shape, stride=fl.stride, padding=fl.padding,
                        pool=MaxPool(*fl.pool) if fl.pool else None)
        if fl.residual is not None:
            geom["residual"] = Residual(fl.residual[0], gain_int)
        theta_val = 1 if fl.readout else (theta_int if per_channel else int(theta_int[0]))
        layer = IntLayer(weight=w_int, bias=b_int, theta=theta_val, mode=Mode.SPIKEPACK,
                         readout=fl.readout, weight_bits=weight_bits, kind=fl.kind, **geom)
        layers.append(layer)
        dw = (w - scale * w_int).reshape(n, -1)
        db = fl.bias - s * b_int
        reports.append(LayerQuantization(
            index=index, readout=fl.readout,
            weight_rel_rms=float(np.linalg.norm(dw) / max(np.linalg.norm(w), 1e-300)),
            bias_max_steps=float(np.max(np.abs(db) / theta_f)),
            membrane_max_steps=float(np.max(
                ((np.abs(dw).sum(axis=1) + gain_err) * amax + np.abs(db)) / theta_f)),
            theta_int=(int(theta_int.min()), int(theta_int.max())),
            weight_range=(int(w_int.min()), int(w_int.max())),
            acc_bits=required_accumulator_bits(layer, T),
        ))
    if not math.isfinite(reports[-1].weight_rel_rms):
        raise ValueError("quantization produced non-finite errors; is the model trained?")
    return IntNetwork(layers=tuple(layers), T=T), QuantReport(tuple(reports))
