"""cocotb module of the reliability figures R2 (random networks, RTL == golden) on the core.

DUT: ``hw.core.core.SpikePackCore`` through its bus (as ``sim.tb.core_tb``). Unlike
``test_core.random_networks`` this test does not stop at the first mismatches: it counts them, and
it rewrites its figures to the ``results`` JSON file every ``progress_every`` networks, so a run
cut short still tells how far it got and how fast.

Parameters (``sim.rtl.runner.run_cocotb(env=...)``): ``preset``, ``networks``, ``seed``, ``stall``,
``results``, ``progress_every``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np

from sim.rtl.runner import cocotb_env
from sim.tb.core_tb import EDGES, TB, check_network
from sim.tb.random_nets import random_inputs, random_network
from sw.compile import program_image as img


def write_results(path, data):
    """Atomically replace ``path`` with ``data`` as JSON (a reader never sees half a file)."""
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


@cocotb.test()
async def r2_random_networks(dut):
    """R2: ``networks`` random networks (seeds ``seed * 100_003 + case``), every one compared."""
    n = int(cocotb_env("networks", 20))
    base_seed = int(cocotb_env("seed", 0))
    every = int(cocotb_env("progress_every", 25))
    path = cocotb_env("results")
    tb = TB(dut, stall=float(cocotb_env("stall", 0.2)), seed=base_seed)
    await tb.reset()
    dut._log.info("R2: %d networks, preset %s, base seed %d", n, cocotb_env("preset"), base_seed)
    t0 = time.monotonic()
    figures = {"networks": 0, "batches": 0, "samples": 0, "mismatched_networks": 0,
               "errors": [], "seed": base_seed, "wall_s": 0.0, "done": False}
    for case in range(n):
        seed = base_seed * 100_003 + case
        rng = np.random.default_rng(seed)
        edge = EDGES[case % len(EDGES)]
        net = random_network(rng, tb.params, edge=edge)
        kinds = [None, "zeros", "ones"] if case % 5 == 0 else [None]
        depth = img.build_image(net, tb.params).max_batch  # < batch_depth for wide inputs
        xs = [random_inputs(rng, net, int(rng.integers(1, depth + 1)), kind) for kind in kinds]
        tag = (f"case {case} seed {seed} edge={edge} T={net.T} sizes="
               f"{[net.n_in] + [layer.n_out for layer in net.layers]}")
        errors = await check_network(tb, net, xs, tag)
        figures["networks"] += 1
        figures["batches"] += len(xs)
        figures["samples"] += sum(len(x) for x in xs)
        if errors:
            figures["mismatched_networks"] += 1
            figures["errors"] = (figures["errors"] + errors)[:20]
            dut._log.error("\n".join(errors))
        if (case + 1) % every == 0 or case + 1 == n:
            figures["wall_s"] = time.monotonic() - t0
            figures["done"] = case + 1 == n
            write_results(path, figures)
            dut._log.info("R2 progress: %d/%d networks, %d mismatched, %.0f s", case + 1, n,
                          figures["mismatched_networks"], figures["wall_s"])
    assert figures["mismatched_networks"] == 0, "\n".join(figures["errors"][:10])
