"""Import a NIR graph (Neuromorphic Intermediate Representation) as an integer LIF-mode network.

Supported graphs are chains ``Input -> (W -> LIF|IF|Threshold [-> SumPool2d|AvgPool2d]
[-> Flatten])* [-> W] -> Output`` with ``W`` an ``Affine``, ``Linear`` or ``Conv2d`` node. Each
``W -> LIF|IF|Threshold`` pair becomes one ``Mode.LIF`` layer (``kind="conv"`` for a ``Conv2d``);
a trailing ``W`` becomes a readout that sums its currents over the ``T`` steps. Conv layers come
before dense ones (a ``Flatten`` between, the IR's ``(C, H, W)`` order); a sum or average
pooling folds into the next weighted layer (:mod:`sw.compile.nir_shapes`: exact, an average's
``1 / k^2`` goes into that layer's threshold and bias). Anything else (CubaLIF, dilated or
grouped convolutions, padding or strides that differ per axis, recurrent edges, branches) is
refused with :class:`NirImportError` naming the node.

What NIR does not store, the caller says (nothing is guessed):

``dt``
    NIR's neurons are differential equations. An ``IF`` (``dv/dt = R I``) integrates
    ``v += dt R I``; a ``LIF`` (``tau dv/dt = (v_leak - v) + R I``) becomes
    ``v = beta v + g I`` with ``beta = 1 - dt/tau``, ``g = dt R / tau`` (``discretization="euler"``,
    snnTorch's export: ``tau = dt / (1 - beta)``) or ``beta = exp(-dt/tau)``, ``g = R (1 - beta)``
    (``"exp"``, exact for a current held over the step). A graph with an ``IF`` or a finite-``tau``
    ``LIF`` needs ``dt``; snnTorch writes ``beta = 1`` as ``tau = r = inf``, read as ``beta = 1``,
    ``g = 1`` with no ``dt``.
``reset``, ``reset_delay``
    NIR says ``v = v_reset`` after a spike, but snnTorch exports reset by subtraction with
    ``v_reset = 0`` too, so a graph with ``LIF``/``IF`` nodes needs ``reset`` (``"zero"`` is
    NIR's own meaning). snnTorch's ``reset_delay`` (default True) changes when a subtraction lands,
    so ``reset="subtract"`` needs ``reset_delay`` as well; for a reset to zero it changes nothing.

Exactness (the report says ``exact`` only when the integer network provably computes the graph's
spikes, given these conventions). The gain folds into the threshold (``v / g`` obeys the same
recurrence with threshold ``theta / g``) and every layer gets a power-of-two step ``s`` per output
neuron, so that weights, bias and (reset by subtraction) threshold are integers in units of ``s``
and fit ``weight_bits``:

* NIR and snnTorch fire on ``v > theta``. A reset to zero compares ``v >= floor(theta/s) + 1``;
  a reset by subtraction must also remove ``theta/s`` whole, so it needs ``theta/s`` integer and
  compares strictly (``IntLayer.fire_above``: ``v >= theta + 1``, subtract ``theta``).
* The hardware leaks by a shift, ``v - (v >> k)``, so ``beta`` must be ``1 - 2^-k`` (else
  refused, or rounded with ``allow_leak_rounding``, an approximation the report sizes). The shift
  floors; it is exact when the membrane is a multiple of ``2^k`` at every leak, which a step ``s``
  ``2^(k (T-1))`` times finer than the values' own grid guarantees (every value a multiple of
  ``2^(k (T-1))``, one factor ``2^k`` spent per leak). If that does not fit ``weight_bits`` the
  leak rounds and the layer is approximate.
* snnTorch, ``reset_delay=True``, subtracts at the next step after its leak
  (``v = beta v - theta s_prev + I``); the accelerator subtracts before the leak. Subtracting
  ``theta / beta`` instead is the same, and the compare stays at ``theta``: the layer gets
  ``theta_int = theta / (beta s)`` and compares against ``theta_int - (theta_int >> k)``
  (``IntLayer.compare_leaked``), exact when ``theta / (beta s)`` is a whole number of steps
  divisible by ``2^k`` (``beta = 0.5``: always on the leak's finer grid; ``0.75``: when
  ``theta`` is a multiple of 3 steps).
* snnTorch, ``reset_delay=False`` with subtraction, does not reset twice: a neuron still above
  ``theta`` after its subtraction needs ``2 theta`` at the next step. Exact when no membrane can
  pass ``2 theta`` (``beta theta + max drive <= 2 theta``, drive = positive weights + bias),
  approximate otherwise.

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

from . import nir_shapes
from .nir_shapes import NirImportError

__all__ = ["DISCRETIZATIONS", "SNNTORCH_DT", "NirImportError", "NirImportReport",
           "NirLayerReport", "import_nir"]

#: The dt snnTorch's NIR export assumes (its graphs' ``tau = dt / (1 - beta)``).
SNNTORCH_DT = 1e-4
#: Relative tolerance for "on the grid": NIR files store float32 (snnTorch's ``tau`` for
#: ``beta = 0.5`` reads back as ``beta = 0.50000002``).
_TOL = 1e-6
DISCRETIZATIONS = ("euler", "exp")


@dataclasses.dataclass(frozen=True)
class NirLayerReport:
    """How one layer was mapped.

    Members
    -------
    nodes : tuple of str
        The NIR nodes of the layer (``Affine``/``Linear`` and the neuron).
    kind : str
        ``LIF``, ``IF``, ``Threshold`` or ``readout``.
    leak_shift : int
        ``k`` of ``v -= v >> k`` (0: no leak).
    beta, beta_hw : float
        The graph's leak factor and the hardware's, ``1 - 2^-k``.
    reset : str
        ``zero``, ``subtract`` or ``subtract, delayed`` (snnTorch ``reset_delay=True``); ``-`` for
        a readout.
    compare : str
        ``>=`` or ``>`` (``fire_above``) against the integer threshold; ``-`` for a readout.
    approximations : tuple of str
        Each way the layer departs from the graph, with its size; empty when exact.
    weight_rel_rms : float
        Relative RMS error of the weights after rounding to the integer grid (0 when on it).
    steps : tuple of float
        Per output neuron (per output channel of a conv layer), the float value of one integer
        unit (``W = step W_int``); a readout's float output is ``step`` times the integer one.
    layer : str
        The layer's shape: ``dense 64->16`` or ``conv 1x8x8->4x8x8 k3x3 s1 p1`` (input and
        output ``C x H x W``, kernel, stride, padding).
    pool : str
        A sum or average pooling folded into this layer (``avg 2x2 folded, x4 in theta and
        bias``), else ``-``.
    """

    nodes: tuple[str, ...]
    kind: str
    leak_shift: int
    beta: float
    beta_hw: float
    reset: str
    compare: str
    approximations: tuple[str, ...]
    weight_rel_rms: float
    steps: tuple[float, ...] = ()
    layer: str = ""
    pool: str = "-"

    @property
    def exact(self) -> bool:
        """True when the layer provably computes the graph's spikes (or readout sums)."""
        return not self.approximations


@dataclasses.dataclass(frozen=True)
class NirImportReport:
    """What :func:`import_nir` did, per layer, and the conventions it was given."""

    layers: tuple[NirLayerReport, ...]
    conventions: str = ""

    @property
    def exact(self) -> bool:
        return all(r.exact for r in self.layers)

    def table(self) -> str:
        """One row per layer (reset mode, compare, shape and folded pooling included), then
        every approximation."""
        nodes = ["->".join(r.nodes) for r in self.layers]
        wn = max([18, *map(len, nodes)])
        wl = max([5, *(len(r.layer) for r in self.layers)])
        rows = [f"{'nodes':{wn}s} kind       k  beta     beta_hw  reset              cmp  exact "
                f" W rel.rms  {'layer':{wl}s}  pool"]
        for name, r in zip(nodes, self.layers, strict=True):
            rows.append(f"{name:{wn}s} {r.kind:9s} {r.leak_shift:2d} {r.beta:8.5f} "
                        f"{r.beta_hw:8.5f} {r.reset:18s} {r.compare:4s} {str(r.exact):6s} "
                        f"{r.weight_rel_rms:.2e}   {r.layer:{wl}s}  {r.pool}")
        for i, r in enumerate(self.layers):
            rows += [f"  layer {i} ({'->'.join(r.nodes)}): {a}" for a in r.approximations]
        return "\n".join(rows)

    def summary(self) -> str:
        """``exact mapping ...`` or ``approximate mapping ...`` naming the approximate layers."""
        if self.exact:
            return (f"exact mapping: the integer network computes the graph's spikes and readout "
                    f"sums ({self.conventions})")
        bad = [str(i) for i, r in enumerate(self.layers) if not r.exact]
        return (f"approximate mapping: layer{'s' if len(bad) > 1 else ''} {', '.join(bad)} "
                f"approximate, see above ({self.conventions})")


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


def _need_dt(name, what) -> NirImportError:
    return NirImportError(
        f"node {name!r} is {what}; NIR does not store the time step it was trained with: pass "
        f"--dt (dt= in Python), e.g. --dt {SNNTORCH_DT:g} for a graph snnTorch exported "
        "(snnTorch writes tau = dt / (1 - beta) with that dt)")


def _leak(name, node, dt, discretization) -> tuple[float, np.ndarray]:
    """Return ``(beta, gain)`` of an LIF or IF node's discrete update ``v = beta v + g I``."""
    import nir

    r = np.asarray(node.r, dtype=np.float64).ravel()
    v_reset = np.asarray(node.v_reset, dtype=np.float64).ravel()
    if np.any(v_reset != 0):
        raise NirImportError(f"node {name!r} resets to {v_reset.max()}; the accelerator resets "
                             "to 0 (hard) or by subtraction")
    if isinstance(node, nir.IF):
        if dt is None:
            raise _need_dt(name, "an IF neuron (it integrates v += dt r I)")
        return 1.0, r * dt
    tau = np.asarray(node.tau, dtype=np.float64).ravel()
    if np.any(np.asarray(node.v_leak) != 0):
        raise NirImportError(f"node {name!r} has v_leak != 0; only v_leak = 0 maps")
    if np.all(np.isinf(tau)):
        if not np.all(np.isinf(r)):
            raise NirImportError(f"node {name!r} has tau = inf with finite r: it integrates "
                                 "nothing; use an IF node or tau = r = inf (snnTorch's beta = 1)")
        return 1.0, np.ones_like(r)  # snnTorch's beta = 1: v = v + I
    if np.any(np.isinf(tau)) or np.any(tau <= 0):
        raise NirImportError(f"node {name!r} mixes infinite and finite tau (or tau <= 0)")
    if dt is None:
        raise _need_dt(name, "a LIF neuron with finite tau (its leak is set by dt / tau)")
    if discretization is None:
        raise NirImportError(
            f"node {name!r} is a LIF neuron; NIR does not say how its equation was stepped: pass "
            "--discretization euler (beta = 1 - dt/tau: snnTorch) or "
            "--discretization exp (beta = exp(-dt/tau): sinabs, Norse) (discretization= in "
            "Python)")
    if discretization not in DISCRETIZATIONS:
        raise NirImportError(f"discretization must be one of {DISCRETIZATIONS}, not "
                             f"{discretization!r}")
    if discretization == "euler":
        betas, gain = 1.0 - dt / tau, dt * r / tau
    else:
        betas = np.exp(-dt / tau)
        gain = r * (1.0 - betas)
    if np.ptp(betas) > 1e-9:
        raise NirImportError(f"node {name!r} has per-neuron leaks {betas.min():.4g}..."
                             f"{betas.max():.4g}; the accelerator has one leak per layer")
    beta = float(betas[0])
    if not 0 < beta <= 1:
        raise NirImportError(f"node {name!r}: leak factor {beta:.4g} (dt = {dt:g}, "
                             f"{discretization}) is outside (0, 1]; check --dt (snnTorch graphs "
                             f"use --dt {SNNTORCH_DT:g})")
    return beta, gain


def _shift_for(name, beta, allow_leak_rounding) -> tuple[int, float]:
    if abs(beta - 1.0) <= _TOL:
        return 0, 1.0
    k = round(-math.log2(1.0 - beta))
    k = min(max(k, 1), 15)
    beta_hw = 1.0 - 2.0 ** -k
    if abs(beta_hw - beta) > _TOL and not allow_leak_rounding:
        raise NirImportError(
            f"node {name!r} leaks by beta = {beta:.6g}; the hardware leaks by a shift, beta = "
            f"1 - 2^-k (0.5, 0.75, 0.875, ...). Retrain with such a beta, or pass "
            f"--allow-leak-rounding (allow_leak_rounding=True in Python) to use the nearest, "
            f"k = {k}, beta = {beta_hw:.6g} (an approximation the report sizes)")
    return k, beta_hw


def _snap(q):
    """Values within float32 precision of an integer, as that integer (else unchanged)."""
    q = np.asarray(q, dtype=np.float64)
    r = np.round(q)
    return np.where(np.abs(q - r) <= _TOL * np.maximum(1.0, np.abs(q)), r, q)


def _on_grid(q) -> bool:
    q = _snap(q)
    return bool(np.all(q == np.round(q)))


def _grid_exponent(values) -> int | None:
    """Smallest ``e`` (-16..24) with every value an integer multiple of ``2^-e``, else None."""
    for e in range(-16, 25):
        if _on_grid(np.asarray(values) * 2.0 ** e):
            return e
    return None


def _row_scale(w_row, exact_values, qmax, finer) -> tuple[float, int, bool]:
    """Step ``s`` for one output neuron: ``(s, extra, on_grid)``.

    ``exact_values`` must land on integers; the weights must fit ``qmax``. The step is made up to
    ``finer`` powers of two finer than the values' own grid (for an exact shift leak);
    ``extra`` says how many it got. Off any power-of-two grid: ``s = max |w| / qmax``.
    """
    wmax = float(np.abs(w_row).max(initial=0))
    e = _grid_exponent(exact_values)
    if e is not None:
        for extra in range(finer, -1, -1):
            s = 2.0 ** -(e + extra)
            if wmax / s <= qmax:
                return s, extra, True
    return max(wmax, 1e-30) / qmax, 0, False


def import_nir(graph, T: int, *, dt: float | None = None, reset: str | Reset | None = None,
               reset_delay: bool | None = None, discretization: str | None = None,
               weight_bits: int = 8, allow_leak_rounding: bool = False,
               input_shape: tuple[int, ...] | None = None,
               ) -> tuple[IntNetwork, NirImportReport]:
    """Map a NIR graph (object or file path) to an :class:`~sim.golden.ir.IntNetwork` of ``T``
    steps.

    Parameters
    ----------
    graph : nir.NIRGraph or path
    T : int
        Time steps the network runs.
    dt : float, optional
        The graph's time step; required by ``IF`` and finite-``tau`` ``LIF`` nodes.
    reset : {"zero", "subtract"}, optional
        What a spike does to the membrane; required when the graph has ``LIF``/``IF`` nodes.
    reset_delay : bool, optional
        snnTorch's ``reset_delay``; required with ``reset="subtract"``.
    discretization : {"euler", "exp"}, optional
        How a finite-``tau`` ``LIF`` was stepped (required by such nodes).
    weight_bits : int
        Width of the integer weights.
    allow_leak_rounding : bool
        Round a leak that is not ``1 - 2^-k`` to the nearest shift instead of refusing.
    input_shape : tuple of int, optional
        The input's ``(C, H, W)`` (or ``(n,)``) when the graph's ``Input`` node does not store
        it; a graph whose first weighted node is a ``Conv2d`` needs one or the other.

    Returns
    -------
    (IntNetwork, NirImportReport)

    Raises
    ------
    NirImportError
        For nodes or parameters the accelerator cannot run, naming the node and the fix, and for
        a convention the graph does not state, naming the option that gives it.
    """
    import nir

    if isinstance(graph, (str, Path)):
        graph = nir.read(str(graph))
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise NirImportError(f"--dt must be a positive time step, not {dt}")
    qmax = (1 << (weight_bits - 1)) - 1
    chain = _chain(graph)
    shape = nir_shapes.input_shape(chain[0][0], chain[0][1], input_shape)
    chain = chain[1:-1]  # drop Input and Output
    has_state = any(isinstance(n, (nir.LIF, nir.IF)) for _, n in chain)
    if has_state and reset is None:
        first = next(name for name, n in chain if isinstance(n, (nir.LIF, nir.IF)))
        raise NirImportError(
            f"node {first!r} resets to v_reset = 0, which NIR uses for a reset to zero and "
            "snnTorch writes for reset by subtraction too: pass --reset zero (NIR's meaning; "
            "snnTorch reset_mechanism='zero') or --reset subtract (reset= in Python)")
    reset = None if reset is None else Reset(reset)
    if has_state and reset is Reset.SUBTRACT and reset_delay is None:
        raise NirImportError(
            "--reset subtract: pass --reset-delay (snnTorch's default, reset_delay=True: the "
            "threshold is subtracted at the next step) or --no-reset-delay (reset_delay=False: "
            "at once) (reset_delay= in Python)")
    delayed = bool(reset_delay) and reset is Reset.SUBTRACT
    layers, reports, i = [], [], 0
    pending, passed = None, []  # a pooling to fold; Flatten/pool nodes before the next layer
    while i < len(chain):
        name, node = chain[i]
        if isinstance(node, nir.Flatten):
            shape = nir_shapes.flatten(name, node, shape)
            passed.append(name)
            i += 1
            continue
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            if pending is not None:
                raise NirImportError(f"nodes {pending.name!r} and {name!r} pool twice in a row; "
                                     "merge them into one pooling")
            pending = nir_shapes.pool(name, node, shape, isinstance(node, nir.AvgPool2d))
            shape = pending.out_shape
            passed.append(name)
            i += 1
            continue
        weighted = _weighted(name, node, shape, pending, tuple(passed))
        pending, passed = None, []
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        if nxt is None:
            layer, report = _readout(weighted, qmax, weight_bits)
        else:
            if not isinstance(nxt[1], (nir.LIF, nir.IF, nir.Threshold)):
                raise NirImportError(
                    f"node {nxt[0]!r} is {type(nxt[1]).__name__}; after a weighted node "
                    f"({name!r}) the accelerator maps LIF, IF or Threshold neurons (CubaLIF "
                    "and recurrent graphs are not supported; a trailing Affine/Linear is a "
                    "readout)")
            layer, report = _neuron_layer(weighted, nxt, T, dt, reset, delayed, discretization,
                                          qmax, weight_bits, allow_leak_rounding)
            i += 1
        layers.append(layer)
        reports.append(report)
        shape = layer.conv_shape
        i += 1
    if pending is not None:
        raise NirImportError(f"node {pending.name!r} pools the output of the last layer; a "
                             "pooling folds into the next weighted layer, so end with a "
                             "weighted layer (the readout)")
    if not layers:
        raise NirImportError("the graph has no Affine/Linear or Conv2d layer")
    conv = [f"T = {T}"]
    if dt is not None:
        conv.append(f"dt = {dt:g}")
    if discretization is not None:
        conv.append(discretization)
    if reset is not None and has_state:
        conv.append(f"reset {reset.value}" + (f", reset_delay={bool(reset_delay)}"
                                               if reset is Reset.SUBTRACT else ""))
    try:
        net = IntNetwork(tuple(layers), T)
    except ValueError as e:
        raise NirImportError(f"the imported layers do not chain: {e}") from None
    return net, NirImportReport(tuple(reports), ", ".join(conv))


@dataclasses.dataclass(frozen=True)
class _Weighted:
    """A weighted node with any pooling folded into it, ready to quantize.

    ``w`` is 2-D (dense) or 4-D (conv); ``gain`` (``k^2`` of a folded average pooling, else 1)
    multiplies the bias and the threshold; ``geometry`` holds the IntLayer's kind, in_shape,
    stride and padding.
    """

    nodes: tuple[str, ...]
    w: np.ndarray
    b: np.ndarray
    gain: int
    geometry: dict
    conv_shape: tuple[int, ...]
    layer: str
    pool: str

    @property
    def rows(self) -> np.ndarray:
        """One row of weights per output neuron (per output channel of a conv)."""
        return self.w.reshape(self.w.shape[0], -1)


def _weighted(name, node, shape, pending, passed) -> _Weighted:
    """Read an Affine, Linear or Conv2d node and fold a pending pooling into it."""
    import nir

    pool_txt = "-" if pending is None else pending.describe()
    if isinstance(node, nir.Conv2d):
        geo = nir_shapes.conv_geometry(name, node, shape)
        w = np.asarray(node.weight, np.float64)
        b = np.broadcast_to(np.asarray(node.bias, np.float64).ravel(), (w.shape[0],)).copy()
        text = geo.describe(w.shape[2:])
        in_shape, stride, padding = geo.in_shape, geo.stride, geo.padding
        if pending is not None:
            w, stride, padding = nir_shapes.fold_pool_into_conv(pending, w, stride, padding)
            in_shape = pending.in_shape
            pool_txt += (f"; as k{nir_shapes.shape_text(w.shape[2:])} s{stride} p{padding} on "
                         f"{nir_shapes.shape_text(in_shape)}")
        geometry = dict(kind="conv", in_shape=in_shape, stride=stride, padding=padding)
        return _Weighted((*passed, name), w, b * (pending.gain if pending else 1),
                         pending.gain if pending else 1, geometry, geo.out_shape, text, pool_txt)
    if isinstance(node, nir.Affine):
        w, b = np.asarray(node.weight, np.float64), np.asarray(node.bias, np.float64).ravel()
    elif isinstance(node, nir.Linear):
        w = np.asarray(node.weight, np.float64)
        b = np.zeros(w.shape[0])
    else:
        raise NirImportError(
            f"node {name!r} is {type(node).__name__}; the accelerator maps chains of "
            "Affine/Linear/Conv2d followed by LIF/IF (SumPool2d/AvgPool2d and Flatten between "
            "them; a trailing Affine/Linear or Conv2d is a readout)")
    if w.ndim != 2:
        raise NirImportError(f"node {name!r} has a {w.ndim}-D weight; an Affine/Linear weight "
                             "is 2-D (n_out, n_in)")
    if shape is not None and len(shape) == 3:
        raise NirImportError(f"node {name!r} is a dense layer but receives a "
                             f"{nir_shapes.shape_text(shape)} map; put a Flatten before it")
    if shape is not None and math.prod(shape) != w.shape[1]:
        raise NirImportError(f"node {name!r} takes {w.shape[1]} inputs but receives "
                             f"{math.prod(shape)}")
    b = np.broadcast_to(b, (w.shape[0],)).copy()
    text = f"dense {w.shape[1]}->{w.shape[0]}"
    if pending is not None:
        w = nir_shapes.fold_pool_into_dense(pending, w)
        b = b * pending.gain
        pool_txt += f"; as dense {w.shape[1]}->{w.shape[0]}"
    return _Weighted((*passed, name), w, b, pending.gain if pending else 1, dict(kind="dense"),
                     (w.shape[0],), text, pool_txt)


def _readout(wl: _Weighted, qmax, weight_bits):
    """A trailing weighted node: sums its currents over the T steps; one step for all outputs
    (a folded average pooling's ``k^2`` divides it: the integer sum is ``k^2`` times finer)."""
    w, b = wl.w, wl.b
    s, _, on_grid = _row_scale(w.ravel(), np.concatenate([w.ravel(), b]), qmax, 0)
    w_int = np.clip(np.round(w / s), -qmax - 1, qmax).astype(np.int64)
    b_int = np.round(b / s).astype(np.int64)
    approx = []
    rel = _rel(wl.rows, s, w_int.reshape(w.shape[0], -1))
    if not on_grid:
        approx.append(f"weights off a power-of-two grid within {weight_bits} bits: rounded, "
                      f"rel. RMS error {rel:.2e}, bias error up to "
                      f"{float(np.abs(b - s * b_int).max(initial=0)) / wl.gain:.3g}")
    layer = IntLayer(w_int, b_int, 1, mode=Mode.LIF, readout=True, weight_bits=weight_bits,
                     leak_shift=0, **wl.geometry)
    return layer, NirLayerReport(wl.nodes, "readout", 0, 1.0, 1.0, "-", "-", tuple(approx), rel,
                                 (float(s) / wl.gain,) * w.shape[0], wl.layer, wl.pool)


def _per_channel(name, what, values, conv_shape) -> np.ndarray:
    """A neuron parameter (a scalar, or one per neuron of ``conv_shape``) as one value per output
    channel; a conv layer's must not vary over positions (the IR's are per channel)."""
    arr = np.asarray(values, np.float64).ravel()
    n_out = conv_shape[0]
    if arr.size == 1:
        return np.full(n_out, arr[0])
    if arr.size == math.prod(conv_shape):
        per = arr.reshape(n_out, -1)
        if np.any(np.ptp(per, axis=1) > _TOL * np.maximum(1.0, np.abs(per).max(axis=1))):
            raise NirImportError(f"node {name!r}: its {what} varies over the positions of a "
                                 "channel; a conv layer's threshold and leak are per channel")
        return per[:, 0].copy()
    raise NirImportError(f"node {name!r} has {arr.size} neurons ({what}) but the layer before "
                         f"it gives {nir_shapes.shape_text(conv_shape)}")


def _neuron_layer(wl: _Weighted, nxt, T, dt, reset, delayed, discretization, qmax, weight_bits,
                  allow_leak_rounding):
    import nir

    nname, neuron = nxt
    w, b = wl.rows, wl.b
    n_out = w.shape[0]
    if isinstance(neuron, nir.Threshold):
        if T != 1:
            raise NirImportError(
                f"node {nname!r} is a Threshold (stateless: each step sees only its own "
                f"input), but the accelerator's membranes carry over time steps; it maps "
                f"exactly only with T = 1 (not {T}): run each time step as its own sample")
        beta, gain, layer_reset, delayed = 1.0, np.ones(n_out), Reset.ZERO, False
        thr_values = neuron.threshold
    else:
        beta, gain = _leak(nname, neuron, dt, discretization)
        layer_reset, thr_values = reset, neuron.v_threshold
    k, beta_hw = _shift_for(nname, beta, allow_leak_rounding)
    thr = _per_channel(nname, "threshold", thr_values, wl.conv_shape)
    # a folded average pooling's k^2 multiplies the bias (in wl.b) and the threshold
    gain = _per_channel(nname, "gain (r)", gain, wl.conv_shape) / wl.gain
    stateless = isinstance(neuron, nir.Threshold)  # fires on v > 0 too: theta_int = 1
    if np.any(gain <= 0) or np.any(thr < 0 if stateless else thr <= 0):
        raise NirImportError(f"node {nname!r} needs a positive gain (r) and a threshold "
                             f"{'>= 0' if stateless else '> 0'} (the accelerator's integer "
                             "thresholds are positive)")
    theta_eff = thr / gain  # the threshold of v / gain, which sees the currents W x + b
    subtract = layer_reset is Reset.SUBTRACT
    # snnTorch's delayed subtraction lands after the next leak: subtracting theta / beta before
    # it is the same, and the compare stays at theta = sub - (sub >> k) (compare_leaked)
    leaked = subtract and delayed and k > 0
    theta_sub = theta_eff / beta_hw if leaked else theta_eff
    finer = k * (T - 1)  # powers of two a shift leak may consume over T steps
    approx = []
    if abs(beta_hw - beta) > _TOL:
        approx.append(f"leak beta = {beta:.6g} rounded to 1 - 2^-{k} = {beta_hw:.6g} "
                      f"(|error| {abs(beta - beta_hw):.2e} per step)")
    scales, w_int, b_int, theta = np.empty(n_out), [], [], np.empty(n_out, np.int64)
    leak_short = off_grid = thr_off = cmp_off = 0
    for j in range(n_out):
        exact_vals = np.concatenate([w[j], [b[j]]])
        with_thr = np.append(exact_vals, theta_sub[j]) if subtract else exact_vals
        s, extra, on_grid = _row_scale(w[j], with_thr, qmax, finer)
        if not on_grid and subtract:  # the threshold alone off the grid? keep the weights on
            # their grid and round the threshold on the finest step they fit
            s, extra, on_grid = _row_scale(w[j], exact_vals, qmax, max(finer, 24))
        scales[j] = s
        off_grid += not on_grid
        leak_short += on_grid and extra < finer
        w_int.append(np.clip(np.round(w[j] / s), -qmax - 1, qmax))
        b_int.append(np.round(b[j] / s))
        q = float(_snap(theta_sub[j] / s))
        if subtract:  # subtract q, compare v > q: q must be a whole number of steps
            theta[j] = max(1, round(q))
            thr_off = max(thr_off, abs(theta[j] - q) / q)
            if leaked:  # ... and the compare, theta - (theta >> k), must be theta_eff / s
                want = float(_snap(theta_eff[j] / s))
                cmp_off = max(cmp_off, abs(theta[j] - (theta[j] >> k) - want) / want)
        else:  # v > q  <=>  v >= floor(q) + 1 for integer v
            theta[j] = math.floor(q) + 1
    w_int, b_int = np.array(w_int, np.int64), np.array(b_int, np.int64)
    rel = _rel(w, scales, w_int)
    if off_grid:
        approx.append(f"{off_grid} of {n_out} neurons' weights/bias off a power-of-two grid "
                      f"within {weight_bits} bits: rounded, weight rel. RMS error {rel:.2e}")
    if thr_off:
        approx.append(f"threshold not a whole number of weight steps: subtracts a rounded "
                      f"threshold, up to {thr_off:.2e} (relative) off")
    if k and leak_short:
        approx.append(f"the shift leak v - (v >> {k}) floors: {leak_short} of {n_out} neurons "
                      f"lack the 2^{finer} finer grid (within {weight_bits} bits) that keeps it "
                      f"exact over T = {T}; up to 1 weight step per time step")
    if cmp_off:
        approx.append(f"reset_delay=True with a leak: the threshold over beta is not a whole "
                      f"number of weight steps divisible by 2^{k}; the compare is up to "
                      f"{cmp_off:.2e} (relative) off")
    if subtract and not delayed and not stateless:
        # snnTorch's guard: a neuron above theta after its subtraction needs 2 theta next step.
        drive = np.clip(w_int, 0, None).sum(axis=1) + b_int
        # largest v_t while v_(t-1) <= theta (the shift leak is monotone in v)
        reach = theta - (theta >> k if k else 0) + drive
        over = int((reach > 2 * theta).sum())
        if over:
            worst = int(np.argmax(reach - 2 * theta))
            approx.append(
                f"reset_delay=False: snnTorch does not reset twice (a neuron still above theta "
                f"after its subtraction needs 2 theta at the next step); {over} of {n_out} "
                f"neurons can pass 2 theta (up to {int(reach[worst])} steps against "
                f"2 theta = {int(2 * theta[worst])}), and there the accelerator fires")
    layer = IntLayer(w_int.reshape(wl.w.shape), b_int, theta, mode=Mode.LIF,
                     weight_bits=weight_bits, leak_shift=k, reset=layer_reset,
                     fire_above=subtract, compare_leaked=leaked, **wl.geometry)
    reset_txt = layer_reset.value + (", delayed" if subtract and delayed else "")
    return layer, NirLayerReport((*wl.nodes, nname), type(neuron).__name__, k, beta, beta_hw,
                                 reset_txt, ">" if subtract else ">=",
                                 tuple(approx), rel, tuple(float(x) for x in scales), wl.layer,
                                 wl.pool)


def _rel(w, s, w_int) -> float:
    s = np.broadcast_to(np.asarray(s, np.float64).reshape(-1, 1), (w.shape[0], 1))
    return float(np.linalg.norm(w - s * w_int) / max(np.linalg.norm(w), 1e-300))
