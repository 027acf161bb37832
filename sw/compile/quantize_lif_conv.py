"""LIF-mode quantizer for conv networks: time-major LIF/PSU CNN -> integer LIF network.

The conv counterpart of :mod:`sw.compile.quantize_lif`, for the models
:func:`sw.train.spiking_cnn.spiking_cnn` builds. Each conv or hidden dense layer becomes an
:class:`~sim.golden.ir.IntLayer` in ``Mode.LIF`` with the same rule (the threshold absorbs the
scales, per output channel)::

    W' = c W,  b' = c b          (c = 1 for LIF/IF, 1/tau = 1/2 for PSU)
    theta_int_j = floor(qmax theta / max |W'_j|),  s_j = theta / theta_int_j,
    W_int = round(W' / s_j),  b_int = round(b' / s_j)

``max |W'_j|`` is taken over the whole kernel of output channel ``j`` (``C_in x kh x kw``).
A max pooling of the fired spikes is the IR's LIF-mode ``MaxPool`` (the OR of each window's
spikes per step: exact, the spikes are 0/1). An average pooling is folded into the next layer's
weights (``W / k^2`` repeated over each ``k x k`` window; exact in float, the rounding is counted
in the next layer's report). The readout ``Linear`` + ``TimeMean`` becomes a LIF readout with
``k = 0`` and one scale for all classes, as in ``quantize_lif``.

# Ref: docs/numerics.md "Conv layers of the time-major seeds"; arXiv 2402.00449 (PSU), Sec. 3.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
from torch import nn

from sim.golden.ir import IntLayer, IntNetwork, MaxPool, Mode, Reset
from sw.train.neurons import LIF, PSU
from sw.train.spiking_cnn import TimeDistributed
from sw.train.spiking_mlp import BitPlaneEncoder, TimeMean

from .quantize import (
    THETA_INT_MAX,
    QuantReport,
    check_finite_layer,
    check_theta,
    integer_bias,
)
from .quantize_conv import (
    ConvQuantizationError,
    _avg_into_conv,
    _avg_into_dense,
    _avgpool,
    _check_conv,
    _conv_wb,
    _maxpool,
)
from .quantize_lif import leak_of, lif_layer_report

__all__ = ["quantize_lif_cnn"]


def _inner(mod):
    return mod.module if isinstance(mod, TimeDistributed) else None


def _neuron(mods, j: int):
    if j >= len(mods) or not isinstance(mods[j], LIF | PSU):
        got = type(mods[j]).__name__ if j < len(mods) else "the end of the model"
        raise ConvQuantizationError(f"module {j} is {got}; a conv or hidden dense layer must be "
                                    "followed by a LIF or PSU neuron")
    return mods[j]


def _parse(model: nn.Sequential, in_shape):
    """Layers as dicts: weight, bias, neuron (None: readout), kind and geometry."""
    mods = list(model)
    if len(mods) < 3 or not isinstance(mods[0], BitPlaneEncoder) \
            or not isinstance(mods[-1], TimeMean):
        raise ConvQuantizationError(
            "expected a time-major spiking CNN: nn.Sequential(BitPlaneEncoder, "
            "TimeDistributed(Conv2d), neuron, ..., Flatten, Linear, TimeMean), as built by "
            "sw.train.spiking_cnn.spiking_cnn")
    in_shape = in_shape if in_shape is not None else getattr(model, "in_shape", None)
    if in_shape is None:
        raise ConvQuantizationError("the model does not say its input shape; pass "
                                    "in_shape=(C, H, W)")
    shape = tuple(int(v) for v in in_shape)
    T, layers, avg, i = mods[0].T, [], None, 1
    while i < len(mods) - 1:
        m, inner = mods[i], _inner(mods[i])
        if isinstance(inner, nn.Conv2d):
            if len(shape) != 3:
                raise ConvQuantizationError(f"module {i}: a conv after Flatten/Linear cannot be "
                                            "mapped; put conv layers before dense ones")
            if inner.in_channels != shape[0]:
                raise ConvQuantizationError(f"module {i}: Conv2d takes {inner.in_channels} "
                                            f"channels but gets {shape[0]}")
            stride, padding, _ = _check_conv(inner, i)
            w, b = _conv_wb(inner)
            if avg is not None:
                w, stride, padding = _avg_into_conv(w, avg, stride, padding, shape, i)
                avg = None
            neuron = _neuron(mods, i + 1)
            j, pool = i + 2, None
            if isinstance(_inner(mods[j]), nn.MaxPool2d):
                pool, j = _maxpool(_inner(mods[j]), j), j + 1
            layer = dict(weight=w, bias=b, neuron=neuron, kind="conv", in_shape=shape,
                         stride=stride, padding=padding, pool=MaxPool(*pool) if pool else None)
            kh, kw = w.shape[2:]
            ho = (shape[1] + 2 * padding - kh) // stride + 1
            wo = (shape[2] + 2 * padding - kw) // stride + 1
            if pool:
                ho, wo = (ho - pool[0]) // pool[1] + 1, (wo - pool[0]) // pool[1] + 1
            shape = (w.shape[0], ho, wo)
            layers.append(layer)
            i = j
        elif isinstance(inner, nn.AvgPool2d):
            if avg is not None:
                raise ConvQuantizationError(f"module {i}: two average poolings in a row; merge "
                                            "them into one")
            if len(shape) != 3:
                raise ConvQuantizationError(f"module {i}: AvgPool2d after Flatten")
            avg, i = _avgpool(inner, i), i + 1
        elif isinstance(m, nn.Flatten):
            i += 1
        elif isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy()
            b = (m.bias.detach().double().numpy() if m.bias is not None
                 else np.zeros(m.out_features))
            if avg is not None:
                w, avg = _avg_into_dense(w, avg, shape), None
            n_in = math.prod(shape)
            if w.shape[1] != n_in:
                raise ConvQuantizationError(f"module {i}: Linear takes {m.in_features} inputs "
                                            f"but the layer before gives {n_in}")
            readout = i + 1 == len(mods) - 1
            neuron = None if readout else _neuron(mods, i + 1)
            layers.append(dict(weight=w, bias=b, neuron=neuron, kind="dense"))
            shape, i = (w.shape[0],), i + (1 if readout else 2)
        else:
            raise ConvQuantizationError(
                f"module {i} is {type(inner or m).__name__}, which the LIF mode cannot run; use "
                "TimeDistributed(Conv2d | MaxPool2d | AvgPool2d), LIF/PSU, Flatten or Linear")
    if not layers or layers[-1]["neuron"] is not None:
        raise ConvQuantizationError("the last layer must be a Linear readout before TimeMean")
    return T, layers


@torch.no_grad()
def quantize_lif_cnn(model: nn.Sequential, *, weight_bits: int = 8, per_channel: bool = True,
                     in_shape=None) -> tuple[IntNetwork, QuantReport]:
    """Quantize a LIF- or PSU-trained CNN to an ``IntNetwork`` of LIF-mode layers.

    Parameters
    ----------
    model : nn.Sequential
        Built by :func:`sw.train.spiking_cnn.spiking_cnn` with ``neuron`` ``"lif"``, ``"if"`` or
        ``"psu"`` (``tau = 2``); IPSU and RPSU have no LIF-mode form (``TypeError``).
    weight_bits : int
        Integer weight width, 2..8.
    per_channel : bool
        One threshold per output channel (else one per layer: the smallest fitting all rows).
    in_shape : (C, H, W), optional
        The input image; default ``model.in_shape`` (set by the builder).

    Raises
    ------
    ConvQuantizationError
        For a module or setting the LIF mode cannot express (the message names it).
    """
    weight_bits = operator.index(weight_bits)
    if not 2 <= weight_bits <= 8:
        raise ValueError(f"weight_bits must be in 2..8, not {weight_bits}")
    qmax = (1 << (weight_bits - 1)) - 1
    T, parsed = _parse(model, in_shape)
    layers, reports = [], []
    for index, d in enumerate(parsed):
        w, b, neuron = d["weight"], d["bias"], d["neuron"]
        n = w.shape[0]
        check_finite_layer(index, w, b)
        if neuron is None:
            k, c, reset = 0, 1.0, Reset.SUBTRACT
            s = np.full(n, max(float(np.abs(w).max()), 1e-300) / qmax)
            theta_int = np.ones(n, dtype=np.int64)
            unit = s
        else:
            k, c, reset = leak_of(neuron)
            w, b = c * w, c * b
            theta = check_theta(index, neuron.theta)
            row_max = np.abs(w.reshape(n, -1)).max(axis=1)
            ref = row_max if per_channel else np.full_like(row_max, row_max.max())
            with np.errstate(divide="ignore"):
                ti = np.floor(qmax * theta / ref)
            theta_int = np.clip(np.nan_to_num(ti, posinf=THETA_INT_MAX), 1,
                                THETA_INT_MAX).astype(np.int64)
            if not per_channel:
                theta_int = np.full_like(theta_int, theta_int.min())
            s = theta / theta_int
            unit = np.full(n, theta)
        scale = s.reshape((n,) + (1,) * (w.ndim - 1))
        w_int = np.clip(np.round(w / scale), -qmax - 1, qmax).astype(np.int64)
        b_int = integer_bias(index, b, s)
        geom = {}
        if d["kind"] == "conv":
            geom = dict(in_shape=d["in_shape"], stride=d["stride"], padding=d["padding"],
                        pool=d["pool"])
        layer = IntLayer(weight=w_int, bias=b_int,
                         theta=1 if neuron is None else (theta_int if per_channel
                                                         else int(theta_int[0])),
                         mode=Mode.LIF, readout=neuron is None, weight_bits=weight_bits,
                         leak_shift=k, reset=reset, kind=d["kind"], **geom)
        layers.append(layer)
        dw = w - scale * w_int
        db = b - s * b_int
        reports.append(lif_layer_report(index, layer, T, k=k, c=c, w=w, dw=dw, db=db, unit=unit,
                                        theta_int=theta_int))
    return IntNetwork(layers=tuple(layers), T=T), QuantReport(tuple(reports))
