"""cocotb module behind the cycle-model validation (``sw.research.cycle_model``): per-layer
cycle counters of networks run one sample per batch on the core.

Inputs arrive as ``SPIKEPACK_*`` environment variables (``sim.rtl.runner.run_cocotb``):
``params`` (the :class:`hw.contract.params.CoreParams` fields, as built), ``cases`` (a list of
``[network .npz, inputs .npy]`` paths) and ``results`` (the JSON file written). For every case
and sample the JSON holds the core's ``cycles``, ``spikes`` and ``skipped`` per layer,
``total_cycles`` and the ``outputs``; each run's
outputs are checked against the golden model with ``==`` (a mismatch fails the test).
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from hw.contract.params import CoreParams
from sim.golden import model as golden
from sim.golden.ir import IntNetwork
from sim.rtl.runner import cocotb_env
from sw.compile import program_image as img

from .core_tb import TB


@cocotb.test()
async def cycles(dut):
    tb = TB(dut)
    tb.params = CoreParams(**cocotb_env("params"))
    await tb.reset()
    out = []
    for net_path, x_path in cocotb_env("cases"):
        net = IntNetwork.load(net_path)
        x = np.load(x_path).reshape(-1, net.n_in)
        image = img.build_image(net, tb.params)
        await tb.bus.load(image.writes)
        runs = []
        for sample in x:
            got, counters, _ = await tb.bus.run_batch(image, sample[None, :])
            ref = golden.run_network(net, sample[None, :], acc_bits=tb.params.acc_bits)
            assert np.array_equal(got, ref.rows), f"{net_path}: RTL differs from golden model"
            runs.append({"cycles": [int(c) for c in counters.cycles],
                         "total_cycles": int(counters.total_cycles),
                         "spikes": [int(c) for c in counters.spikes],
                         "skipped": [int(c) for c in counters.skipped],
                         "outputs": [int(v) for v in np.ravel(got)]})
        out.append(runs)
    with open(cocotb_env("results"), "w") as f:
        json.dump(out, f)
