"""cocotb end-to-end test: the driver loads a network into the Accelerator RTL over its UART pins,
runs inputs, and the outputs must equal ``sim.golden`` (DUT: ``hw.accelerator.Accelerator``).

Parameters (``sim.rtl.run_cocotb(env=...)``): ``clk_freq``, ``baud``, ``idle_timeout``,
``preset`` (a ``hw.params.PRESETS`` key), ``net`` (an ``IntNetwork.save`` file), ``inputs`` (a
``.npy`` of packed inputs), ``results`` (JSON file for the figures).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge
from cocotb.triggers import ClockCycles
from cocotbext.uart import UartSink, UartSource

from hw.params import PRESETS
from sim.golden import run_network
from sim.ir import IntNetwork
from sim.rtl import cocotb_env

# cocotbext-uart 0.1.4 calls cocotb 2's deprecated ``setimmediatevalue`` once per UART; that is
# theirs to change, and must not fail runs made with PYTHONWARNINGS=error.
warnings.filterwarnings("ignore", message="Use `handle.set\\(Immediate",
                        category=DeprecationWarning)

CLK_FREQ = cocotb_env("clk_freq", 100_000_000)
BAUD = cocotb_env("baud", 25_000_000)
IDLE_TIMEOUT = cocotb_env("idle_timeout", 64)
PERIOD_NS = 1e9 / CLK_FREQ


@cocotb.test()
async def network_end_to_end(dut):
    from sw.driver import Device
    from sw.image import build_image
    from sw.transport import CocotbUartTransport

    params = PRESETS[cocotb_env("preset")]
    net = IntNetwork.load(cocotb_env("net"))
    x = np.load(cocotb_env("inputs"))
    image = build_image(net, params)
    golden = run_network(net, x)

    dut.rst.value = 1  # before the clock runs: no X on the pins
    dut.rx.value = 1
    source = UartSource(dut.rx, baud=BAUD, bits=8, stop_bits=1)
    sink = UartSink(dut.tx, baud=BAUD, bits=8, stop_bits=1)
    for h in (dut.rx, dut.tx):
        import logging

        logging.getLogger(f"cocotb.{h._path}").setLevel(logging.WARNING)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)

    transport = CocotbUartTransport(source, sink,
                                    default_timeout=(IDLE_TIMEOUT + 5000) * PERIOD_NS * 1e-9)
    dev = Device(transport)
    info = await bridge(dev.identify)()
    assert info.core_params() == params
    t0 = get_sim_time("ns")
    await bridge(lambda: dev.load_image(image, verify=True, progress=False))()
    t1 = get_sim_time("ns")
    result = await bridge(dev.infer)(image, x)
    t2 = get_sim_time("ns")

    assert result.outputs.shape == golden.output.shape
    mismatches = int(np.sum(np.any(result.outputs != golden.output, axis=-1)))
    assert mismatches == 0, f"{mismatches} of {len(x)} samples differ from sim.golden"
    # Counters: output spikes per layer, summed over each run's batch, as golden counts them.
    depth = params.batch_depth
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
