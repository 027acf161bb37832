"""Bit Budget: cost of a network in bits, with SynOps and an energy estimate beside it.

Time steps and activation bits are the same resource: a layer that multiplies ``b_w``-bit weights
by ``b_a``-bit activations for ``T`` time steps spends ``b_w b_a T`` bit-operations per synapse. An
ANN with ``b_a``-bit activations has ``T = 1``; a spiking layer has ``b_a = 1`` (a spike) and ``T``
steps; SpikePack's ``T``-bit packed word is consumed as ``T`` bit-planes, so it costs what a
``T``-bit ANN activation costs (and a ClipFloor ANN is literally the same function). Per layer:

- compute bits: ``b_w * b_a * T * (n_in * n_out)``, with ``b_a`` and ``T`` those of the layer's
  *input* (the activation the weights meet);
- storage bits: weights ``n_in n_out b_w`` plus biases (``bias_bits``), output activations over
  time ``n_out b_a T``, and, for stateful neurons (LIF), the membranes held between time steps
  ``n_out acc_bits``;
- SynOps: measured, ``sum over input spikes of the fan-out`` (accumulates triggered by a spike);
  for an ANN, MACs ``= n_in n_out``;
- energy (estimate, compute only, memory traffic not included): an ANN MAC costs a
  ``b_w x b_a``-bit multiply plus a 32-bit add, a SynOp one 32-bit add, and every neuron update
  (leak or doubling, compare and subtract) two 32-bit adds per neuron and step. Constants below,
  45 nm, 0.9 V. Horowitz gives the multiply at 8 x 8 and 32 x 32 bits only; in between it is
  scaled by ``b_w b_a / 64`` from the 8-bit figure (an array multiplier's area and energy grow
  with the product of the widths; the rule gives 3.2 pJ at 32 x 32 bits against the 3.1 pJ
  measured).

# Ref: arXiv 2311.10802 (Bit Budget), Sec. 3 -- bits as the cost of weights x activations x time.
# Ref: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
#      Fig. 1.1.9 -- energy per operation at 45 nm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from sim.golden.ir import IntNetwork, Mode
from sim.golden.model import run_network

#: Energy per operation in pJ, 45 nm (Horowitz, ISSCC 2014).
ENERGY_PJ = {
    "int8_add": 0.03,
    "int32_add": 0.1,
    "int8_mult": 0.2,
    "int32_mult": 3.1,
    "fp32_add": 0.9,
    "fp32_mult": 3.7,
}
#: One ANN MAC at 8 x 8 bits (int8 multiply + int32 accumulate), pJ; see :func:`mac_energy_pj`.
E_MAC_PJ = ENERGY_PJ["int8_mult"] + ENERGY_PJ["int32_add"]
#: One SynOp (an int32 accumulate triggered by a spike), pJ.
E_AC_PJ = ENERGY_PJ["int32_add"]
#: One neuron update per time step (leak or doubling + compare/subtract): two int32 adds, pJ.
E_NEURON_PJ = 2 * ENERGY_PJ["int32_add"]

KINDS = ("ann", "spikepack", "lif")


def mac_energy_pj(weight_bits: int, act_bits: int) -> float:
    """One integer MAC: a ``weight_bits x act_bits`` multiply (8 x 8-bit energy scaled by
    ``weight_bits act_bits / 64``) plus a 32-bit accumulate, pJ."""
    return ENERGY_PJ["int8_mult"] * weight_bits * act_bits / 64 + ENERGY_PJ["int32_add"]


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Cost of one dense layer for one input sample.

    Members
    -------
    n_in, n_out : int
        Fan-in and fan-out.
    weight_bits, act_bits, T : int
        Weight width, input activation bits per step, time steps.
    compute_bits : int
        ``weight_bits * act_bits * T * n_in * n_out``.
    storage_bits : int
        Weights, biases, output activations over time, and membranes if stateful.
    synops : float
        Measured SynOps (spiking kinds) or MACs (ANN) per sample.
    energy_pj : float
        Compute energy estimate per sample (see module docstring).
    """

    n_in: int
    n_out: int
    weight_bits: int
    act_bits: int
    T: int
    compute_bits: int
    storage_bits: int
    synops: float
    energy_pj: float


@dataclasses.dataclass(frozen=True)
class NetworkCost:
    kind: str
    layers: tuple[LayerCost, ...]

    @property
    def compute_bits(self) -> int:
        return sum(c.compute_bits for c in self.layers)

    @property
    def storage_bits(self) -> int:
        return sum(c.storage_bits for c in self.layers)

    @property
    def synops(self) -> float:
        return float(sum(c.synops for c in self.layers))

    @property
    def energy_pj(self) -> float:
        return float(sum(c.energy_pj for c in self.layers))

    @property
    def bits_per_synapse_op(self) -> int:
        """``b_w * b_a * T`` of the first layer (the budget knob the sweep varies)."""
        c = self.layers[0]
        return c.weight_bits * c.act_bits * c.T

    def table(self) -> str:
        rows = ["layer  n_in x n_out  b_w  b_a  T   compute bits  storage bits     SynOps"
                "   energy pJ"]
        for i, c in enumerate(self.layers):
            rows.append(f"{i:5d}  {c.n_in:4d} x {c.n_out:<5d} {c.weight_bits:3d}  {c.act_bits:3d}  "
                        f"{c.T:<2d} {c.compute_bits:13,d}  {c.storage_bits:12,d}  "
                        f"{c.synops:9.0f}  {c.energy_pj:10.1f}")
        rows.append(f"total  {'':24s}{self.compute_bits:13,d}  {self.storage_bits:12,d}  "
                    f"{self.synops:9.0f}  {self.energy_pj:10.1f}")
        return "\n".join(rows)


def _check_bits(name, value, lo, hi) -> int:
    if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    return int(value)


def layer_cost(n_in: int, n_out: int, *, weight_bits: int, act_bits: int, T: int,
               out_act_bits: int | None = None, stateful: bool = False, acc_bits: int = 32,
               bias_bits: int = 32, synops: float | None = None, spiking: bool = True,
               connections: int | None = None, n_weights: int | None = None,
               n_bias: int | None = None, neurons: int | None = None) -> LayerCost:
    """Cost of one layer (see the module docstring for the formulas).

    ``synops`` is the measured number of spike-triggered accumulates; without it (or for an ANN,
    ``spiking=False``) the dense count ``connections * T`` is used (every synapse active).

    A dense layer needs only ``n_in`` and ``n_out``. A conv layer also gives ``connections``
    (synapses: output positions x channels x ``C_in kh kw``, the default ``n_in n_out`` of a
    dense layer), ``n_weights`` (stored weights, ``C_out C_in kh kw``), ``n_bias`` (one bias per
    output channel) and ``neurons`` (membranes updated per step: the pre-pool outputs); ``n_out``
    is what it stores (after pooling).
    """
    weight_bits = _check_bits("weight_bits", weight_bits, 1, 32)
    act_bits = _check_bits("act_bits", act_bits, 1, 32)
    T = _check_bits("T", T, 1, 1024)
    if n_in < 1 or n_out < 1:
        raise ValueError(f"layer sizes must be positive, got {n_in} x {n_out}")
    out_bits = act_bits if out_act_bits is None else out_act_bits
    ops = n_in * n_out if connections is None else connections
    n_weights = ops if n_weights is None else n_weights
    n_bias = n_out if n_bias is None else n_bias
    neurons = n_out if neurons is None else neurons
    storage = n_weights * weight_bits + n_bias * bias_bits + n_out * out_bits * T
    if stateful:
        storage += neurons * acc_bits
    if spiking:
        so = float(ops * T if synops is None else synops)
        energy = so * E_AC_PJ + neurons * T * E_NEURON_PJ
    else:
        so = float(ops * T)
        energy = so * mac_energy_pj(weight_bits, act_bits)
    return LayerCost(n_in, n_out, weight_bits, act_bits, T, weight_bits * act_bits * T * ops,
                     storage, so, energy)


def network_cost(net: IntNetwork, kind: str, *, x=None) -> NetworkCost:
    """Cost of an integer network read as ``kind``.

    ``"spikepack"`` and ``"lif"``: 1-bit spikes for ``net.T`` steps; ``"ann"``: the network's
    ``T``-bit words read as ``T``-bit activations in one step (a ClipFloor ANN converted to
    SpikePack is exactly this network). With packed test inputs ``x`` the SynOps are measured
    in the golden model (mean per sample); without, every synapse counts.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "lif" and any(layer.mode is not Mode.LIF for layer in net.layers):
        raise ValueError("kind 'lif' needs LIF-mode layers")
    packed = all(layer.mode is Mode.SPIKEPACK for layer in net.layers)
    if kind in ("ann", "spikepack") and not packed:
        raise ValueError(f"kind {kind!r} needs SpikePack-mode layers")
    fan_in_spikes = None
    if x is not None and kind != "ann":
        res = run_network(net, x)
        fan_in_spikes = [float(res.input_spikes.mean())] + [
            float(r.spikes.mean()) for r in res.layers[:-1]]
    costs = []
    for i, layer in enumerate(net.layers):
        ann = kind == "ann"
        act_bits, T = (net.T, 1) if ann else (1, net.T)
        out_bits = 32 if layer.readout else act_bits  # a readout stores its membrane value
        conv = {}
        if layer.kind == "conv":
            neurons = int(np.prod(layer.conv_shape))
            conv = dict(connections=neurons * layer.fan_in, n_bias=layer.out_channels,
                        n_weights=layer.weight.size + (layer.residual is not None),
                        neurons=neurons)
        # SynOps: input spikes times their mean fan-out (exact for dense layers; for a conv
        # layer the border positions, which reach fewer outputs, are averaged in).
        fan_out = conv.get("connections", layer.n_in * layer.n_out) / layer.n_in
        synops = None if fan_in_spikes is None else fan_in_spikes[i] * fan_out
        costs.append(layer_cost(layer.n_in, layer.n_out, weight_bits=layer.weight_bits,
                                act_bits=act_bits, T=T, out_act_bits=out_bits,
                                stateful=kind == "lif", synops=synops, spiking=not ann, **conv))
    return NetworkCost(kind, tuple(costs))


# --- design-space sweep -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One (model, weight bits, activation bits, T) configuration measured on the test split."""

    model: str
    kind: str
    weight_bits: int
    act_bits: int
    T: int
    bits_per_synapse_op: int
    compute_bits: int
    storage_bits: int
    synops: float
    energy_pj: float
    accuracy: float


def sweep_network(model: str, kind: str, quantize: Callable[[int], IntNetwork], x_test, y_test, *,
                  weight_bits: Iterable[int] = (2, 3, 4, 6, 8)) -> list[SweepPoint]:
    """Quantize one trained model at every ``weight_bits``, run the golden model, cost it.

    ``quantize(b)`` returns the integer network with ``b``-bit weights.
    """
    points = []
    for wb in weight_bits:
        net = quantize(wb)
        acc = float(np.mean(run_network(net, x_test).predictions() == np.asarray(y_test)))
        cost = network_cost(net, kind, x=x_test)
        c0 = cost.layers[0]
        points.append(SweepPoint(model, kind, wb, c0.act_bits, c0.T, cost.bits_per_synapse_op,
                                 cost.compute_bits, cost.storage_bits, cost.synops,
                                 cost.energy_pj, acc))
    return points


def best_at_budget(points: Sequence[SweepPoint], budget: int) -> dict[str, SweepPoint]:
    """Per model, the most accurate configuration with ``b_w b_a T <= budget`` (ties: cheaper)."""
    best: dict[str, SweepPoint] = {}
    for p in points:
        if p.bits_per_synapse_op > budget:
            continue
        cur = best.get(p.model)
        key = (p.accuracy, -p.bits_per_synapse_op)
        if cur is None or key > (cur.accuracy, -cur.bits_per_synapse_op):
            best[p.model] = p
    return best


def plot_sweep(points: Sequence[SweepPoint], path, *, budgets: Sequence[int] = ()) -> Path:
    """Accuracy against bits per synapse-op (``b_w b_a T``), one series per model and T."""
    from .plots import figure

    path = Path(path)
    with figure(path, 1, 2, figsize=(11, 4.2)) as (fig, axes):
        ax = axes[0]
        markers = {"ann": "s", "spikepack": "o", "lif": "^"}
        for model in dict.fromkeys(p.model for p in points):
            pts = sorted((p for p in points if p.model == model),
                         key=lambda p: p.bits_per_synapse_op)
            ax.scatter([p.bits_per_synapse_op for p in pts], [100 * p.accuracy for p in pts],
                       marker=markers.get(pts[0].kind, "x"), s=18, label=model, alpha=0.8)
        for b in budgets:
            ax.axvline(b, color="k", ls=":", lw=1)
            ax.text(b, 2, f" budget {b}", rotation=90, fontsize=7, va="bottom")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bits per synapse-op  b_w x b_a x T")
        ax.set_ylabel("test accuracy (%), integer golden model")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        # Heat map: accuracy of the SpikePack points by weight bits x T.
        ax = axes[1]
        sp = [p for p in points if p.kind == "spikepack"]
        if sp:
            wbs = sorted({p.weight_bits for p in sp})
            Ts = sorted({p.T for p in sp})
            grid = np.full((len(wbs), len(Ts)), np.nan)
            for p in sp:
                grid[wbs.index(p.weight_bits), Ts.index(p.T)] = 100 * p.accuracy
            im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=np.nanmin(grid), vmax=100,
                           aspect="auto")
            for i in range(len(wbs)):
                for j in range(len(Ts)):
                    if np.isfinite(grid[i, j]):
                        ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=7,
                                color="w" if grid[i, j] < 80 else "k")
            ax.set_xticks(range(len(Ts)), [str(t) for t in Ts])
            ax.set_yticks(range(len(wbs)), [str(w) for w in wbs])
            ax.set_xlabel("T (time steps = packed bits)")
            ax.set_ylabel("weight bits")
            ax.set_title("SpikePack direct, integer accuracy (%)", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
        else:
            ax.axis("off")
    return path
