"""Quantizer: trained float SpikePack model -> integer network (``sim.golden.ir.IntNetwork``).

The threshold absorbs the scales. A hidden layer sees packed inputs ``a_i`` whose float value is
``step_i a_i`` (``step`` = the previous layer's threshold, or ``1/(2^T-1)`` at the input), so its
float membrane is ``z_j = sum_i W_ji step_i a_i + b_j`` and it fires ``floor(z_j / theta_j)``.
With ``W'_ji = W_ji step_i`` and a per-channel scale ``s_j``::

    W_int = round(W' / s_j),  b_int = round(b / s_j),  theta_int_j = theta_j / s_j

``theta_int_j`` must be an integer, so it is chosen first, as the largest integer that keeps the
row's weights within ``weight_bits``: ``theta_int_j = floor(qmax theta_j / max_i |W'_ji|)``, and
``s_j = theta_j / theta_int_j`` follows exactly. Only weight and bias rounding remain; they are
reported (:class:`QuantReport`). The readout layer uses one scale for all its outputs so argmax is
unchanged.

# Ref: docs/numerics.md "Quantization: the threshold absorbs the scales".
"""

from __future__ import annotations

import dataclasses
import math
import operator

import numpy as np
import torch
from torch import nn

from sim.golden.ir import IntLayer, IntNetwork, Mode
from sim.golden.model import required_accumulator_bits
from sw.train.neurons import InputEncoder, SpikePack

#: Largest integer threshold the quantizer will produce (the hardware's theta registers are wider).
THETA_INT_MAX = (1 << 24) - 1


class QuantizationError(ValueError):
    """The float model cannot be quantized as it is (the message names the layer and the fix)."""


def check_finite_layer(index: int, weight: np.ndarray, bias: np.ndarray) -> None:
    """Refuse NaN or infinite weights or biases: rounding them to integers gives garbage."""
    for name, values in (("weight", weight), ("bias", bias)):
        bad = int(np.sum(~np.isfinite(values)))
        if bad:
            raise QuantizationError(f"layer {index}: {name} holds {bad} NaN/infinite value(s) "
                                    "(did the training diverge?); retrain or fix the model")


def check_theta(index: int, theta: float) -> float:
    """Return ``theta`` after checking it is a finite positive threshold."""
    theta = float(theta)
    if not math.isfinite(theta) or theta <= 0:
        sign = "negative" if theta < 0 else "zero" if theta == 0 else "not finite"
        raise QuantizationError(
            f"layer {index}: threshold theta = {theta:g} is {sign}; the hardware threshold must "
            "be a positive number: set it (e.g. to |theta| if the float model used that) and "
            "re-check the model's accuracy, or retrain")
    return theta


def integer_bias(index: int, bias: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``round(bias / scale)`` as int64, refusing values beyond 64-bit integers."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        b = np.round(bias / scale)
    limit = 2.0 ** 62  # what the int64 golden model can still add weights to exactly
    bad = ~np.isfinite(b) | (np.abs(b) >= limit)
    if np.any(bad):
        j = int(np.argmax(bad))
        raise QuantizationError(
            f"layer {index}: bias {bias[j]:g} of output {j} is {b[j]:g} integer steps (step "
            f"{scale[j]:g}), beyond 2**62; the bias is far too large for the weights: fix or "
            "retrain the model")
    return b.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class LayerQuantization:
    """Rounding error of one layer, in the layer's own units (every quantizer reports these).

    Members
    -------
    index : int
        Layer position.
    readout : bool
        Readout (no firing) or firing layer.
    weight_rel_rms : float
        ``||W' - s W_int|| / ||W'||``.
    bias_max_steps : float
        Largest bias rounding error, in output steps (thresholds; readout: in integer units).
    theta_int : tuple[int, int]
        Smallest and largest integer threshold.
    weight_range : tuple[int, int]
        Smallest and largest integer weight.
    acc_bits : int
        Signed accumulator width the layer needs in the worst case.
    membrane_max_steps : float or None
        SpikePack: bound on the membrane error any input can see, in output steps.
    leak_shift, input_scale : int or None, float or None
        LIF mode: ``k`` of the shift leak, and ``c`` (1 for LIF/IF, ``1/tau`` for PSU).
    """

    index: int
    readout: bool
    weight_rel_rms: float
    bias_max_steps: float
    theta_int: tuple[int, int]
    weight_range: tuple[int, int]
    acc_bits: int
    membrane_max_steps: float | None = None
    leak_shift: int | None = None
    input_scale: float | None = None


@dataclasses.dataclass(frozen=True)
class QuantReport:
    """What quantizing a network rounded, one row per layer (SpikePack or LIF mode)."""

    layers: tuple[LayerQuantization, ...]

    def table(self) -> str:
        lif = any(q.leak_shift is not None for q in self.layers)
        bound = any(q.membrane_max_steps is not None for q in self.layers)
        head = "layer  kind   " + ("  k  c    " if lif else "") + "  W rel.rms  bias err" + (
            "  |dv| bound" if bound else "") + "  theta_int       W range     acc bits"
        rows = [head, "                           (in output steps; readout: in LSB)"]
        for q in self.layers:
            row = f"{q.index:5d}  {'readout' if q.readout else 'fire':7s}"
            if lif:
                row += f"  {q.leak_shift or 0:d}  {q.input_scale or 1:5.3f}"
            row += f"  {q.weight_rel_rms:9.2e}  {q.bias_max_steps:8.3f}"
            if bound:
                row += f"  {q.membrane_max_steps or 0:10.3f}"
            row += (f"  {q.theta_int[0]:>6d}..{q.theta_int[1]:<6d}  "
                    f"{q.weight_range[0]:>4d}..{q.weight_range[1]:<4d}  {q.acc_bits:8d}")
            rows.append(row)
        return "\n".join(rows)


def _parse(model: nn.Sequential) -> tuple[InputEncoder, list[tuple[nn.Linear, SpikePack | None]]]:
    mods = list(model)
    if not mods or not isinstance(mods[0], InputEncoder):
        raise TypeError("expected a SpikePack model: nn.Sequential(InputEncoder, Linear, "
                        "SpikePack, ..., Linear), as built by sw.train.models.spikepack_mlp")
    pairs, i = [], 1
    while i < len(mods):
        lin = mods[i]
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"module {i} is {type(lin).__name__}; expected nn.Linear")
        act = mods[i + 1] if i + 1 < len(mods) else None
        if act is not None and not isinstance(act, SpikePack):
            raise TypeError(f"module {i + 1} is {type(act).__name__}; only SpikePack activations "
                            "map to the accelerator's SpikePack mode")
        if act is not None and act.tau != 2:
            raise ValueError(f"module {i + 1} has tau={act.tau}; the hardware implements tau = 2")
        pairs.append((lin, act))
        i += 2
    if pairs[-1][1] is not None:
        raise TypeError("the last layer must be a Linear readout (no activation after it)")
    return mods[0], pairs


@torch.no_grad()
def quantize_spikepack(model: nn.Sequential, *, weight_bits: int = 8,
                       per_channel: bool = True) -> tuple[IntNetwork, QuantReport]:
    """Quantize a SpikePack MLP to an :class:`~sim.golden.ir.IntNetwork` and report the rounding
    error."""
    weight_bits = operator.index(weight_bits)
    if not 2 <= weight_bits <= 8:
        raise ValueError(f"weight_bits must be in 2..8, not {weight_bits}")
    qmax = (1 << (weight_bits - 1)) - 1
    encoder, pairs = _parse(model)
    T = encoder.T
    step_in = np.full(pairs[0][0].in_features, encoder.step, dtype=np.float64)
    layers, reports = [], []
    for index, (lin, act) in enumerate(pairs):
        if act is not None and act.T != T:
            raise ValueError(f"layer {index} has T={act.T} but the input encoder has T={T}")
        w = lin.weight.double().numpy() * step_in[None, :]
        b = (lin.bias.double().numpy() if lin.bias is not None
             else np.zeros(lin.out_features))
        check_finite_layer(index, lin.weight.double().numpy(), b)
        row_max = np.abs(w).max(axis=1)
        if act is None:
            scale = max(float(np.abs(w).max()), 1e-300) / qmax
            s = np.full(lin.out_features, scale)
            theta_int = np.ones(lin.out_features, dtype=np.int64)
            theta_f = s.copy()  # one integer unit, for error reporting
        else:
            theta_f = np.full(lin.out_features, check_theta(index, act.theta))
            ref = row_max if per_channel else np.full_like(row_max, row_max.max())
            with np.errstate(divide="ignore"):
                ti = np.floor(qmax * theta_f / ref)
            theta_int = np.clip(np.nan_to_num(ti, posinf=THETA_INT_MAX), 1, THETA_INT_MAX)
            theta_int = theta_int.astype(np.int64)
            s = theta_f / theta_int
        w_int = np.clip(np.round(w / s[:, None]), -qmax - 1, qmax).astype(np.int64)
        b_int = integer_bias(index, b, s)
        theta_val = theta_int if per_channel or act is None else int(theta_int[0])
        layer = IntLayer(weight=w_int, bias=b_int, theta=theta_val if act is not None else 1,
                         mode=Mode.SPIKEPACK, readout=act is None, weight_bits=weight_bits)
        layers.append(layer)
        dw = w - s[:, None] * w_int
        db = b - s * b_int
        amax = (1 << T) - 1
        reports.append(LayerQuantization(
            index=index, readout=act is None,
            weight_rel_rms=float(np.linalg.norm(dw) / max(np.linalg.norm(w), 1e-300)),
            bias_max_steps=float(np.max(np.abs(db) / theta_f)),
            membrane_max_steps=float(
                np.max((np.abs(dw).sum(axis=1) * amax + np.abs(db)) / theta_f)),
            theta_int=(int(theta_int.min()), int(theta_int.max())),
            weight_range=(int(w_int.min()), int(w_int.max())),
            acc_bits=required_accumulator_bits(layer, T),
        ))
        if act is not None:
            step_in = theta_f
    if not math.isfinite(reports[-1].weight_rel_rms):
        raise ValueError("quantization produced non-finite errors; is the model trained?")
    return IntNetwork(layers=tuple(layers), T=T), QuantReport(tuple(reports))
