"""cocotb module behind bench/bench_core.py: cycle counts of dense layers and an MLP from the RTL.

Every figure is read from the core's own counters after a run; the results (and the golden
check of each run's outputs) go to the JSON file named by ``SPIKEPACK_RESULTS``.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from boards import CORE_PRESETS
from sim.golden import model as golden
from sim.golden.ir import IntLayer, IntNetwork
from sim.rtl.runner import cocotb_env
from sw.compile import program_image as img

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


async def measure(tb, net, x):
    image = img.build_image(net, tb.params)
    await tb.bus.load(image.writes)
    out, counters, _ = await tb.bus.run_batch(image, x, poll=256)
    ref = golden.run_network(net, x, acc_bits=tb.params.acc_bits)
    assert np.array_equal(out, ref.output), "RTL differs from golden model"
    return counters


@cocotb.test()
async def bench(dut):
    tb = TB(dut)
    await tb.reset()
    p = CORE_PRESETS[cocotb_env("preset", "arty_a7")]
    rng = np.random.default_rng(int(cocotb_env("seed", 0)))
    T = 4
    results = {"params": p.describe(), "peak": p.synapses_per_cycle, "dense": [], "sparse": [],
               "mlp": []}
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
    with open(cocotb_env("results"), "w") as f:
        json.dump(results, f, indent=1)
