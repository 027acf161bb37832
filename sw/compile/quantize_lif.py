"""LIF-mode quantizer: trained time-major spiking MLP (LIF or PSU) -> integer LIF network.

The accelerator's LIF mode runs, per time step and output neuron ``j``
(``sim.golden.model.lif_layer``)::

    v_t = v_(t-1) - (v_(t-1) >> k) + sum_i W_ji s_i,t + b_j;   fire v_t >= theta_j;  reset

The float models it deploys (``sw.train.spiking_mlp``) are, in the same order of operations:

- LIF with ``tau = 2^k`` (``tau = inf``: IF, ``k = 0``): ``v_t = v_(t-1) (1 - 2^-k) + W s_t + b``.
- PSU with ``tau = 2``: ``v_t = (v+_(t-1) + W s_t + b) / 2`` (its sequential form, see
  ``sw.train.neurons.psu``), i.e. the same recurrence with ``k = 1`` and the input scaled by
  ``c = 1/2``. The training-time reset of a PSU uses ``sigmoid(A I)`` instead of the spikes: that
  difference is part of the deploy gap and is measured, not hidden
  (``sw.train.spiking_mlp.forward_deployed`` evaluates the float model with the deployed reset).

As in ``sw.compile.quantize`` the threshold absorbs the scales. Inputs are 0/1 spikes (no input
step), so with ``W' = c W`` and ``b' = c b`` a hidden layer gets a per-channel scale ``s_j``::

    theta_int_j = floor(qmax theta / max_i |W'_ji|),  s_j = theta / theta_int_j,
    W_int = round(W' / s_j),  b_int = round(b' / s_j)

The readout (``Linear`` + ``TimeMean``) becomes a readout LIF layer with ``k = 0``: its ``v_T`` is
``sum_t (W s_t + b) / s = T * mean / s``, one scale ``s = max |W| / qmax`` for all classes so the
argmax is kept. What is not exact: weight and bias rounding, and the floor in the hardware's
shift leak (``v >> k`` rounds toward minus infinity; ``v / 2^k`` does not), worth at most one
integer unit per step, i.e. ``1 / theta_int`` of a threshold.

# Ref: docs/numerics.md "LIF / IF mode" and "Quantization: the threshold absorbs the scales";
# arXiv 2402.00449 (PSU), Sec. 3.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
from torch import nn

from sim.golden.ir import IntLayer, IntNetwork, Mode, Reset
from sim.golden.model import required_accumulator_bits
from sw.train.neurons import LIF, PSU
from sw.train.spiking_mlp import BitPlaneEncoder, TimeMean

from .quantize import (
    THETA_INT_MAX,
    LayerQuantization,
    QuantReport,
    check_finite_layer,
    check_theta,
    integer_bias,
)


def leak_of(neuron: nn.Module) -> tuple[int, float, Reset]:
    """``(k, c, reset)`` of the hardware LIF layer that runs ``neuron``.

    Raises
    ------
    TypeError
        For neurons the LIF mode cannot run (IPSU, RPSU, anything else).
    ValueError
        For a LIF whose ``tau`` is not a power of two, or a PSU with ``tau != 2``.
    """
    if isinstance(neuron, LIF):
        reset = Reset.SUBTRACT if neuron.reset == "subtract" else Reset.ZERO
        if math.isinf(neuron.tau):
            return 0, 1.0, reset
        k = math.log2(neuron.tau)
        if k != round(k) or not 1 <= k <= 15:
            raise ValueError(f"LIF tau={neuron.tau:g} is not 2^k with k in 1..15; the hardware "
                             "leak is a shift (v -= v >> k)")
        return int(k), 1.0, reset
    if type(neuron) is PSU:
        if neuron.tau != 2.0:
            raise ValueError(f"PSU tau={neuron.tau:g}: its leak 1/tau equals the hardware's "
                             "1 - 2^-k only for tau = 2")
        return 1, 1.0 / neuron.tau, Reset.SUBTRACT
    if isinstance(neuron, PSU):
        what = "input" if hasattr(neuron, "A_learned") else "reset"
        raise TypeError(f"{type(neuron).__name__} learns its {what} "
                        "matrix, which is not a shift leak: it has no LIF-mode equivalent")
    raise TypeError(f"{type(neuron).__name__} is not a LIF or PSU neuron")


def _parse(model: nn.Sequential):
    mods = list(model)
    if (len(mods) < 3 or not isinstance(mods[0], BitPlaneEncoder)
            or not isinstance(mods[-1], TimeMean)):
        raise TypeError("expected a time-major spiking MLP: nn.Sequential(BitPlaneEncoder, Linear, "
                        "neuron, ..., Linear, TimeMean), as built by "
                        "sw.train.spiking_mlp.spiking_mlp")
    body = mods[1:-1]
    pairs = []
    for i in range(0, len(body), 2):
        lin = body[i]
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"module {i + 1} is {type(lin).__name__}; expected nn.Linear")
        pairs.append((lin, body[i + 1] if i + 1 < len(body) else None))
    if pairs[-1][1] is not None:
        raise TypeError("the last layer must be a Linear readout before TimeMean")
    return mods[0].T, pairs


@torch.no_grad()
def quantize_lif(model: nn.Sequential, *, weight_bits: int = 8,
                 per_channel: bool = True) -> tuple[IntNetwork, QuantReport]:
    """Quantize a LIF- or PSU-trained MLP to an ``IntNetwork`` of LIF-mode layers.

    Parameters
    ----------
    model : nn.Sequential
        Built by :func:`sw.train.spiking_mlp.spiking_mlp` with ``neuron`` ``"lif"``, ``"if"`` or
        ``"psu"`` (``tau = 2``).
    weight_bits : int
        Integer weight width, 2..8.
    per_channel : bool
        One threshold per output neuron (else one per layer: the smallest fitting all rows).
    """
    weight_bits = operator.index(weight_bits)
    if not 2 <= weight_bits <= 8:
        raise ValueError(f"weight_bits must be in 2..8, not {weight_bits}")
    qmax = (1 << (weight_bits - 1)) - 1
    T, pairs = _parse(model)
    layers, reports = [], []
    for index, (lin, neuron) in enumerate(pairs):
        w = lin.weight.double().numpy()
        b = lin.bias.double().numpy() if lin.bias is not None else np.zeros(lin.out_features)
        check_finite_layer(index, w, b)
        if neuron is None:
            k, c, reset = 0, 1.0, Reset.SUBTRACT
            s = np.full(lin.out_features, max(float(np.abs(w).max()), 1e-300) / qmax)
            theta_int = np.ones(lin.out_features, dtype=np.int64)
            unit = s
        else:
            k, c, reset = leak_of(neuron)
            w, b = c * w, c * b
            theta = check_theta(index, neuron.theta)
            row_max = np.abs(w).max(axis=1)
            ref = row_max if per_channel else np.full_like(row_max, row_max.max())
            with np.errstate(divide="ignore"):
                ti = np.floor(qmax * theta / ref)
            theta_int = np.clip(np.nan_to_num(ti, posinf=THETA_INT_MAX), 1, THETA_INT_MAX)
            theta_int = theta_int.astype(np.int64)
            if not per_channel:
                theta_int = np.full_like(theta_int, theta_int.min())
            s = theta / theta_int
            unit = np.full(lin.out_features, theta)
        w_int = np.clip(np.round(w / s[:, None]), -qmax - 1, qmax).astype(np.int64)
        theta_val = theta_int if per_channel else int(theta_int[0])
        b_int = integer_bias(index, b, s)
        layer = IntLayer(weight=w_int, bias=b_int,
                         theta=1 if neuron is None else theta_val,
                         mode=Mode.LIF, readout=neuron is None, weight_bits=weight_bits,
                         leak_shift=k, reset=reset)
        layers.append(layer)
        dw = w - s[:, None] * w_int
        db = b - s * b_int
        reports.append(lif_layer_report(index, layer, T, k=k, c=c, w=w, dw=dw, db=db, unit=unit,
                                        theta_int=theta_int))
    return IntNetwork(layers=tuple(layers), T=T), QuantReport(tuple(reports))


def lif_layer_report(index: int, layer: IntLayer, T: int, *, k, c, w, dw, db, unit,
                     theta_int) -> LayerQuantization:
    """The rounding report of a LIF-mode layer (dense or conv): ``w`` the float weights, ``dw``
    and ``db`` the weight and bias rounding errors, ``unit`` the output step per neuron."""
    return LayerQuantization(
        index=index, readout=layer.readout, leak_shift=k, input_scale=c,
        weight_rel_rms=float(np.linalg.norm(dw) / max(np.linalg.norm(w), 1e-300)),
        bias_max_steps=float(np.max(np.abs(db) / unit)),
        theta_int=(int(np.min(theta_int)), int(np.max(theta_int))),
        weight_range=(int(layer.weight.min()), int(layer.weight.max())),
        acc_bits=required_accumulator_bits(layer, T),
    )
