"""cocotb module behind bench/bench_core.py: cycle counts of dense layers and an MLP from the RTL.

Every figure is read from the core's own counters after a run; the results (and the golden
check of each run's outputs) go to the JSON file named by ``SPIKEPACK_RESULTS``.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from hw.contract.params import CoreParams
from hw.core.fire import FireUnit
from sim.golden import model as golden
from sim.golden.ir import IntLayer, IntNetwork, Mode
from sim.rtl.runner import cocotb_env
from sw.compile import program_image as img
from sw.compile.batch_map import map_inputs, map_network, max_map_width
from sw.research.cycle_model import chunk_plane_counts

from .core_tb import TB


def dense_net(rng, sizes, T, theta_scale=0.5):
    layers = []
    for li, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = rng.integers(-128, 128, (b, a))
        readout = li == len(sizes) - 2
        # Threshold near the spread of v so hidden layers fire at a moderate rate.
        theta = max(1, int(theta_scale * np.sqrt(a) * 74 * (1 << T) / 4))
        layers.append(IntLayer(w, rng.integers(-100, 100, b), theta, readout=readout))
    return IntNetwork(tuple(layers), T)


def inputs(rng, net, batch, density):
    top = (1 << net.T) - 1
    if density >= 1.0:
        return np.full((batch, net.n_in), top)
    x = rng.integers(1, top + 1, (batch, net.n_in))
    return np.where(rng.random((batch, net.n_in)) < density, x, 0)


async def measure(tb, net, x, with_ref=False):
    image = img.build_image(net, tb.params)
    await tb.bus.load(image.writes)
    out, counters, _ = await tb.bus.run_batch(image, x, poll=256)
    ref = golden.run_network(net, x, acc_bits=tb.params.acc_bits)
    assert np.array_equal(out, ref.rows), "RTL differs from golden model"
    return (counters, ref) if with_ref else counters


def saturated_net(rng, sizes, T):
    """Random int8 weights, and a bias so large that every hidden neuron fires at every step."""
    layers = []
    for li, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(IntLayer(rng.integers(-128, 128, (b, a)), np.full(b, 1 << 16), 64,
                               readout=li == len(sizes) - 2))
    return IntNetwork(tuple(layers), T)


def work_per_layer(net, x, ref, p) -> list[int]:
    """Each layer's steady-state cycles for one sample: per pass the longer of its beats (the
    non-zero beat slots of every input chunk) and its firing (``n_pe / fire_units`` groups of
    a unit's period); the rest of a layer's cycles is its fixed cost."""
    groups = p.n_pe // p.fire_units
    work = []
    for li, layer in enumerate(net.layers):
        a = x if li == 0 else ref.layers[li - 1].output
        counts = chunk_plane_counts(np.asarray(a).reshape(1, -1), net.T, p.k, p.planes_per_beat)
        fire = groups * FireUnit.period(net.T, layer.mode == Mode.LIF, p.fire_planes == 2)
        work.append(max(int(counts.sum()), fire) * -(-layer.n_out // p.n_pe))
    return work


@cocotb.test()
async def bench(dut):
    tb = TB(dut)
    params = cocotb_env("params", None)
    if params is not None:  # the preset with overrides (bench_core.py --set)
        tb.params = CoreParams(**params)
    await tb.reset()
    p = tb.params
    rng = np.random.default_rng(int(cocotb_env("seed", 0)))
    T = 4
    results = {"params": p.describe(), "peak": p.synapses_per_cycle, "dense": [], "sparse": [],
               "mlp": [], "deep": [], "deep_map": []}
    for n_in, n_out in cocotb_env("dense_sizes", [[16, 16], [64, 64], [128, 128], [256, 256],
                                                  [784, 128], [1024, 64]]):
        net = dense_net(rng, [n_in, n_out], T)
        c = await measure(tb, net, inputs(rng, net, 1, 1.0))
        cycles = int(c.cycles[0])
        results["dense"].append({"n_in": n_in, "n_out": n_out, "T": T, "cycles": cycles,
                                 "adds": n_in * n_out * T})
    net = dense_net(rng, [784, 128], T)
    for density in (1.0, 0.5, 0.2, 0.05, 0.0):
        c = await measure(tb, net, inputs(rng, net, 1, density))
        results["sparse"].append({"density": density, "cycles": int(c.cycles[0]),
                                  "skipped": int(c.skipped[0])})
    mlp = dense_net(rng, [784, 128, 128, 10], T)
    for density in (1.0, 0.3):
        x = inputs(rng, mlp, p.batch_depth, density)
        c = await measure(tb, mlp, x)
        results["mlp"].append({"density": density, "batch": len(x),
                               "cycles_per_layer": (c.cycles / len(x)).tolist(),
                               "spikes_per_layer": (c.spikes / len(x)).tolist(),
                               "total_cycles": c.total_cycles,
                               "cycles_per_inference": c.total_cycles / len(x)})
    # The fixed cost of a layer: its cycles beyond its steady-state work, in a deep network of
    # small layers whose neurons all fire at every step (a large bias), so every layer's input
    # has every plane of every chunk on.
    for width in (64, 128):
        deep = saturated_net(rng, [width] * 6 + [10], T)
        x = inputs(rng, deep, 1, 1.0)
        c, ref = await measure(tb, deep, x, with_ref=True)
        assert all((la.output == (1 << T) - 1).all() for la in ref.layers[:-1])
        results["deep"].append({"width": width, "cycles": c.cycles.tolist(),
                                "work": work_per_layer(deep, x[0], ref, p)})
        # The same network on a batch run as one map (sw.compile.batch_map): the fixed cost is
        # paid once for the batch. Every sample saturates, so a sample's work is the same.
        width_map = min(16, max_map_width(deep, p))
        if width_map >= 2:
            xb = inputs(rng, deep, width_map, 1.0)
            c = await measure(tb, map_network(deep, width_map), map_inputs(xb))
            results["deep_map"].append({"width": width, "samples": width_map,
                                        "cycles": c.cycles.tolist(),
                                        "work": work_per_layer(deep, xb[0], ref, p)})
    with open(cocotb_env("results"), "w") as f:
        json.dump(results, f, indent=1)
