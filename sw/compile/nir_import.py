"""Import a NIR graph (Neuromorphic Intermediate Representation) as an integer LIF-mode network.

Supported graphs are chains ``Input -> (Affine|Linear -> LIF|IF|Threshold)* [-> Affine|Linear]
-> Output``. Each ``Affine|Linear -> LIF|IF|Threshold`` pair becomes one ``Mode.LIF`` layer; a
trailing ``Affine|Linear`` becomes a readout that sums its currents over the ``T`` steps.
Anything else (CubaLIF, convolutions, pooling, recurrent edges, branches) is refused with
:class:`NirImportError` naming the node.

Discretization (Euler, step ``dt``): NIR's ``tau dv/dt = (v_leak - v) + R I`` becomes
``v_t = beta v_(t-1) + g I_t`` with ``beta = 1 - dt/tau`` and ``g = dt R / tau``; IF
(``dv/dt = R I``) has ``beta = 1``, ``g = dt R``. The gain ``g`` is folded into the threshold
(``v / g`` obeys the same recurrence with threshold ``theta / g``). The hardware leaks by a shift,
``v -= v >> k``, so ``beta`` must be ``1 - 2^-k`` (or 1: no leak). NIR fires when
``v > theta``; with integer membranes that is ``v >= floor(theta / s) + 1`` exactly. NIR resets to
``v_reset``, which must be 0 (hard reset); graphs from tools that reset by subtraction but export
``v_reset = 0`` (snnTorch does) can say so with ``reset="subtract"``.

snnTorch exports ``Leaky`` as LIF with ``dt = 1e-4`` and ``r = tau / dt`` (so ``g = 1``); for
``beta = 1`` it writes ``tau = r = inf``, read here as ``g = 1``.

``Threshold`` is NIR's stateless Heaviside, ``z = [v > threshold]`` of the current input only. The
accelerator's membranes carry over from one time step to the next, so an ``Affine -> Threshold``
pair maps exactly (to an IF layer with hard reset) only when ``T = 1``; for more steps it is
refused (run every time step as its own sample with ``T = 1`` instead).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from sim.golden.ir import IntLayer, IntNetwork, Mode, Reset

SNNTORCH_DT = 1e-4


class NirImportError(ValueError):
    """The graph has a node or parameter the accelerator cannot map."""


@dataclasses.dataclass(frozen=True)
class NirLayerReport:
    """How one layer was mapped: leak, scale and the rounding the mapping needed."""

    nodes: tuple[str, ...]
    kind: str
    leak_shift: int
    beta: float
    beta_hw: float
    exact: bool  #: weights, bias and threshold landed on integers without rounding
    weight_rel_rms: float


@dataclasses.dataclass(frozen=True)
class NirImportReport:
    layers: tuple[NirLayerReport, ...]

    @property
    def exact(self) -> bool:
        return all(r.exact and r.beta == r.beta_hw for r in self.layers)

    def table(self) -> str:
        rows = ["nodes            kind     k  beta     beta_hw  exact  W rel.rms"]
        for r in self.layers:
            rows.append(f"{'->'.join(r.nodes):16s} {r.kind:8s} {r.leak_shift:2d} {r.beta:8.5f} "
                        f"{r.beta_hw:8.5f} {str(r.exact):6s} {r.weight_rel_rms:.2e}")
        return "\n".join(rows)


def _chain(graph) -> list[tuple[str, object]]:
    import nir

    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NirImportError(f"the graph needs exactly one Input node, found {len(inputs)}")
    chain, name, seen = [], inputs[0], set()
    while True:
        if name in seen:
            raise NirImportError(f"the graph has a cycle through node {name!r} (recurrent "
                                 "connections are not supported)")
        seen.add(name)
        chain.append((name, graph.nodes[name]))
        nxt = succ.get(name, [])
        if isinstance(graph.nodes[name], nir.Output):
            break
        if len(nxt) != 1:
            raise NirImportError(f"node {name!r} feeds {len(nxt)} nodes; only chains map to the "
                                 "accelerator")
        name = nxt[0]
    if len(seen) != len(graph.nodes):
        raise NirImportError(f"nodes {sorted(set(graph.nodes) - seen)} are not on the chain from "
                             "Input to Output")
    return chain


def _leak(name, node, dt) -> tuple[float, np.ndarray]:
    """Return ``(beta, gain)`` of an LIF or IF node's discrete update ``v = beta v + gain I``."""
    import nir

    r = np.asarray(node.r, dtype=np.float64).ravel()
    v_reset = np.asarray(node.v_reset, dtype=np.float64).ravel()
    if np.any(v_reset != 0):
        raise NirImportError(f"node {name!r} resets to {v_reset.max()}; the accelerator resets "
                             "to 0 (hard) or by subtraction")
    if isinstance(node, nir.IF):
        return 1.0, r * dt
    tau = np.asarray(node.tau, dtype=np.float64).ravel()
    if np.any(np.asarray(node.v_leak) != 0):
        raise NirImportError(f"node {name!r} has v_leak != 0; only v_leak = 0 maps")
    if np.all(np.isinf(tau)):
        if not np.all(np.isinf(r)):
            raise NirImportError(f"node {name!r} has tau = inf with finite r: it integrates "
                                 "nothing; use an IF node or tau = r = inf (snnTorch's beta = 1)")
        return 1.0, np.ones_like(r)
    if np.any(np.isinf(tau)) or np.any(tau <= 0):
        raise NirImportError(f"node {name!r} mixes infinite and finite tau (or tau <= 0)")
    betas = 1.0 - dt / tau
    if np.ptp(betas) > 1e-9:
        raise NirImportError(f"node {name!r} has per-neuron leaks {betas.min():.4g}..."
                             f"{betas.max():.4g}; the accelerator has one leak per layer")
    beta = float(betas[0])
    if not 0 < beta <= 1:
        raise NirImportError(f"node {name!r}: leak factor 1 - dt/tau = {beta:.4g} is outside "
                             f"(0, 1]; check dt (snnTorch graphs use dt = {SNNTORCH_DT})")
    return beta, dt * r / tau


def _shift_for(name, beta, allow_leak_rounding) -> tuple[int, float]:
    if beta == 1.0:
        return 0, 1.0
    k = round(-math.log2(1.0 - beta))
    k = min(max(k, 1), 15)
    beta_hw = 1.0 - 2.0 ** -k
    if abs(beta_hw - beta) > 1e-6 and not allow_leak_rounding:
        raise NirImportError(
            f"node {name!r} leaks by beta = {beta:.6g}; the hardware leaks by a shift, beta = "
            f"1 - 2^-k (0.5, 0.75, 0.875, ...). Retrain with such a beta or pass "
            f"allow_leak_rounding=True (nearest: k = {k}, beta = {beta_hw:.6g})")
    return k, beta_hw


def _scale(w, b, qmax) -> tuple[np.ndarray, bool]:
    """Per-row scale: an exact power-of-two grid if the values sit on one, else max |w| / qmax."""
    n_out = w.shape[0]
    scales, exact = np.empty(n_out), True
    for j in range(n_out):
        row = np.concatenate([w[j], [b[j]]])
        for e in range(0, 17):
            s = 2.0 ** -e
            q = row / s
            if np.all(q == np.round(q)) and np.abs(q[:-1]).max(initial=0) <= qmax:
                scales[j] = s
                break
        else:
            exact = False
            scales[j] = max(np.abs(w[j]).max(initial=0), 1e-30) / qmax
    return scales, exact


def import_nir(graph, T: int, *, dt: float = SNNTORCH_DT, weight_bits: int = 8,
               reset: str | Reset | None = None, allow_leak_rounding: bool = False,
               ) -> tuple[IntNetwork, NirImportReport]:
    """Map a NIR graph (object or file path) to an :class:`~sim.golden.ir.IntNetwork` of ``T`` steps.

    Raises
    ------
    NirImportError
        For nodes or parameters the accelerator cannot run, naming the node and the fix.
    """
    import nir

    if isinstance(graph, (str, Path)):
        graph = nir.read(str(graph))
    reset = Reset.ZERO if reset is None else Reset(reset)
    qmax = (1 << (weight_bits - 1)) - 1
    chain = _chain(graph)[1:-1]  # drop Input and Output
    layers, reports, i = [], [], 0
    while i < len(chain):
        name, node = chain[i]
        if isinstance(node, nir.Affine):
            w, b = np.asarray(node.weight, np.float64), np.asarray(node.bias, np.float64).ravel()
        elif isinstance(node, nir.Linear):
            w = np.asarray(node.weight, np.float64)
            b = np.zeros(w.shape[0])
        else:
            raise NirImportError(
                f"node {name!r} is {type(node).__name__}; the accelerator maps chains of "
                "Affine/Linear followed by LIF/IF (a trailing Affine/Linear is a readout)")
        if w.ndim != 2:
            raise NirImportError(f"node {name!r} has a {w.ndim}-D weight; only dense layers map")
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        if nxt is None:  # readout: sum currents over T steps, one scale for all outputs
            s, exact = _scale(w, b, qmax)
            s = np.full_like(s, s.max())
            exact = exact and np.all(w / s[:, None] == np.round(w / s[:, None])) and np.all(
                b / s == np.round(b / s))
            w_int = np.clip(np.round(w / s[:, None]), -qmax - 1, qmax).astype(np.int64)
            b_int = np.round(b / s).astype(np.int64)
            layers.append(IntLayer(w_int, b_int, 1, mode=Mode.LIF, readout=True,
                                   weight_bits=weight_bits, leak_shift=0))
            reports.append(NirLayerReport((name,), "readout", 0, 1.0, 1.0, bool(exact),
                                          _rel(w, s, w_int)))
            i += 1
            continue
        nname, neuron = nxt
        if isinstance(neuron, nir.Threshold):
            if T != 1:
                raise NirImportError(
                    f"node {nname!r} is a Threshold (stateless: each step sees only its own "
                    f"input), but the accelerator's membranes carry over time steps; it maps "
                    f"exactly only with T = 1 (not {T}): run each time step as its own sample")
            beta, gain, layer_reset = 1.0, np.ones(w.shape[0]), Reset.ZERO
            thr_values = neuron.threshold
        elif isinstance(neuron, (nir.LIF, nir.IF)):
            beta, gain = _leak(nname, neuron, dt)
            layer_reset, thr_values = reset, neuron.v_threshold
        else:
            raise NirImportError(
                f"node {nname!r} is {type(neuron).__name__}; after an Affine/Linear the "
                "accelerator maps LIF, IF or Threshold neurons (CubaLIF, Conv, pooling and "
                "recurrent graphs are not supported)")
        k, beta_hw = _shift_for(nname, beta, allow_leak_rounding)
        thr = np.broadcast_to(np.asarray(thr_values, np.float64).ravel(), (w.shape[0],))
        gain = np.broadcast_to(np.asarray(gain, np.float64).ravel(), (w.shape[0],))
        stateless = isinstance(neuron, nir.Threshold)  # fires on v > 0 too: theta_int = 1
        if np.any(gain <= 0) or np.any(thr < 0 if stateless else thr <= 0):
            raise NirImportError(f"node {nname!r} needs a positive gain (r) and a threshold "
                                 f"{'>= 0' if stateless else '> 0'} (the accelerator's integer "
                                 "thresholds are positive)")
        theta_eff = thr / gain
        s, exact = _scale(w, b, qmax)
        w_int = np.clip(np.round(w / s[:, None]), -qmax - 1, qmax).astype(np.int64)
        b_int = np.round(b / s).astype(np.int64)
        # v > theta  <=>  v >= floor(theta / s) + 1 for integer v
        theta_int = np.floor(theta_eff / s).astype(np.int64) + 1
        layers.append(IntLayer(w_int, b_int, theta_int, mode=Mode.LIF, weight_bits=weight_bits,
                               leak_shift=k, reset=layer_reset))
        reports.append(NirLayerReport((name, nname), type(neuron).__name__, k, beta, beta_hw,
                                      bool(exact), _rel(w, s, w_int)))
        i += 2
    if not layers:
        raise NirImportError("the graph has no Affine/Linear layer")
    return IntNetwork(tuple(layers), T), NirImportReport(tuple(reports))


def _rel(w, s, w_int) -> float:
    return float(np.linalg.norm(w - s[:, None] * w_int) / max(np.linalg.norm(w), 1e-300))
