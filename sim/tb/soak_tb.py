"""R5: a cocotb soak of the whole accelerator (DUT: ``hw.accelerator.Accelerator``).

The project's driver (``sw.host.driver.Device``) runs in a ``cocotb.bridge`` thread and talks to the
Accelerator RTL through its UART pins (cocotbext-uart): it loads one random network (drawn from
``seed`` for the build's parameters), then runs ``inferences`` random inputs batch by batch
(mostly full batches).
Every batch's outputs must equal ``sim.golden.model``'s, every run's counters must be consistent
(output spikes and skipped plane-chunks per layer as golden predicts them, total cycles the sum of
the layers'), and no request may need a resend. Figures go to the ``results`` JSON file every
``progress_every`` batches, so a run cut short still tells how far it got.

Parameters (``sim.rtl.runner.run_cocotb(env=...)``): ``clk_freq``, ``baud``, ``idle_timeout``,
``preset``, ``seed``, ``inferences``, ``widest`` (cap on layer widths), ``results``,
``progress_every``.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.task import bridge

from boards import CORE_PRESETS
from sim.golden import model as golden
from sim.rtl.runner import cocotb_env
from sim.rtl.uart_host import start_uart_host, uart_device
from sim.tb.random_nets import expected_counters, random_inputs, random_network
from sim.tb.reliability_tb import write_results

CLK_FREQ = cocotb_env("clk_freq", 100_000_000)
BAUD = cocotb_env("baud", 25_000_000)
IDLE_TIMEOUT = cocotb_env("idle_timeout", 64)
PERIOD_NS = 1e9 / CLK_FREQ


@cocotb.test()
async def r5_soak(dut):
    """R5: ``inferences`` inferences through the driver and the UART, all equal to golden."""
    from sw.compile.program_image import build_image

    params = CORE_PRESETS[cocotb_env("preset")]
    seed = int(cocotb_env("seed", 0))
    n = int(cocotb_env("inferences", 200))
    every = int(cocotb_env("progress_every", 50))
    path = cocotb_env("results")
    rng = np.random.default_rng(seed)
    net = random_network(rng, params, max_depth=3, widest=cocotb_env("widest", 64))
    image = build_image(net, params)
    sizes = [net.n_in] + [layer.n_out for layer in net.layers]
    dut._log.info("R5 soak: seed %d, %d inferences, network T=%d sizes=%s modes=%s", seed, n,
                  net.T, sizes, [layer.mode.value for layer in net.layers])

    source, sink = await start_uart_host(dut, baud=BAUD, period_ns=PERIOD_NS)
    dev = uart_device(source, sink, idle_timeout=IDLE_TIMEOUT, period_ns=PERIOD_NS)
    info = await bridge(dev.identify)()
    assert info.core_params() == params
    await bridge(lambda: dev.load_image(image, verify=True, progress=False))()

    t0, sim0 = time.monotonic(), get_sim_time("ns")
    figures = {"seed": seed, "network": {"T": net.T, "sizes": sizes}, "inferences": 0,
               "runs": 0, "output_mismatches": 0, "counter_mismatches": 0, "resends": 0,
               "core_cycles": 0, "errors": [], "wall_s": 0.0, "sim_ms": 0.0, "done": False}
    batch_no = 0
    while figures["inferences"] < n:
        # Mostly full batches (the common case, and the fewest bytes per inference).
        depth = image.max_batch
        size = depth if rng.random() < 0.9 else int(rng.integers(1, depth))
        size = min(size, n - figures["inferences"])
        x = random_inputs(rng, net, size, rng.choice([None, None, None, "zeros", "ones"]))
        ref = golden.run_network(net, x, acc_bits=params.acc_bits)
        result = await bridge(dev.infer)(image, x)
        errors = []
        if not np.array_equal(result.outputs, ref.output):
            figures["output_mismatches"] += 1
            errors.append(f"batch {batch_no}: outputs {result.outputs.tolist()} != golden "
                          f"{ref.output.tolist()}")
        spikes, skipped = expected_counters(net, x, params, ref)
        (c,) = result.counters  # one batch of at most batch_depth samples is one run
        if (list(c.spikes) != spikes.tolist() or list(c.skipped) != skipped.tolist()
                or c.total_cycles != sum(c.cycles)):
            figures["counter_mismatches"] += 1
            errors.append(f"batch {batch_no}: counters {c} vs golden spikes {spikes.tolist()} "
                          f"skipped {skipped.tolist()}")
        if errors:
            dut._log.error("\n".join(errors))
            figures["errors"] = (figures["errors"] + errors)[:10]
        figures["inferences"] += size
        figures["runs"] += 1
        figures["core_cycles"] += int(c.total_cycles)
        figures["resends"] = dev.resends
        batch_no += 1
        if batch_no % every == 0 or figures["inferences"] >= n:
            figures["wall_s"] = time.monotonic() - t0
            figures["sim_ms"] = (get_sim_time("ns") - sim0) / 1e6
            figures["done"] = figures["inferences"] >= n
            write_results(path, figures)
            dut._log.info("R5 progress: %d/%d inferences, %d output and %d counter mismatches, "
                          "%d resends, %.0f s", figures["inferences"], n,
                          figures["output_mismatches"], figures["counter_mismatches"],
                          dev.resends, figures["wall_s"])
    assert figures["output_mismatches"] == 0 and figures["counter_mismatches"] == 0, \
        "\n".join(figures["errors"])
    assert dev.resends == 0, f"{dev.resends} requests needed a resend on a clean line"
