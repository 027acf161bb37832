"""cocotb end-to-end test: the driver loads a network into the Accelerator RTL over its UART pins,
runs inputs, and the outputs must equal ``sim.golden.model`` (DUT: ``hw.accelerator.Accelerator``).

Parameters (``sim.rtl.runner.run_cocotb(env=...)``): ``clk_freq``, ``baud``, ``idle_timeout``,
``preset`` (a ``boards.CORE_PRESETS`` key), ``net`` (an ``IntNetwork.save`` file), ``inputs`` (a
``.npy`` of packed inputs), ``results`` (JSON file for the figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.task import bridge

from boards import CORE_PRESETS
from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sim.rtl.runner import cocotb_env
from sim.rtl.uart_host import start_uart_host, uart_device

CLK_FREQ = cocotb_env("clk_freq", 100_000_000)
BAUD = cocotb_env("baud", 25_000_000)
IDLE_TIMEOUT = cocotb_env("idle_timeout", 64)
PERIOD_NS = 1e9 / CLK_FREQ


@cocotb.test()
async def network_end_to_end(dut):
    from sw.compile.program_image import build_image

    params = CORE_PRESETS[cocotb_env("preset")]
    net = IntNetwork.load(cocotb_env("net"))
    x = np.load(cocotb_env("inputs"))
    image = build_image(net, params)
    golden = run_network(net, x)

    source, sink = await start_uart_host(dut, baud=BAUD, period_ns=PERIOD_NS)

    dev = uart_device(source, sink, idle_timeout=IDLE_TIMEOUT, period_ns=PERIOD_NS)
    info = await bridge(dev.identify)()
    assert info.core_params() == params
    t0 = get_sim_time("ns")
    await bridge(lambda: dev.load_image(image, verify=True, progress=False))()
    t1 = get_sim_time("ns")
    result = await bridge(dev.infer)(image, x)
    t2 = get_sim_time("ns")

    assert result.outputs.shape == golden.output.shape
    mismatches = int(np.sum(np.any(result.outputs != golden.output, axis=-1)))
    assert mismatches == 0, f"{mismatches} of {len(x)} samples differ from sim.golden.model"
    # Counters: output spikes per layer, summed over each run's batch, as golden counts them.
    depth = image.max_batch  # the driver's batches
    for run, c in enumerate(result.counters):
        sl = slice(run * depth, (run + 1) * depth)
        want = [int(np.sum(layer.spikes[sl])) for layer in golden.layers]
        assert list(c.spikes) == want, f"run {run}: spikes {list(c.spikes)} != golden {want}"
        assert c.total_cycles > 0
    upload_words = sum(len(w.words) for w in image.writes)
    figures = {
        "samples": len(x), "upload_words": upload_words,
        "upload_cycles": round((t1 - t0) / PERIOD_NS),
        "infer_cycles": round((t2 - t1) / PERIOD_NS),
        "core_cycles": result.total_cycles,
        "predictions": golden.predictions().tolist(),
        "resends": dev.resends,
    }
    dut._log.info("end-to-end: %s", {k: v for k, v in figures.items() if k != "predictions"})
    path = cocotb_env("results")
    if path:
        Path(path).write_text(json.dumps(figures))
