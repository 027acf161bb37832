"""Host side of the reliability figures (issue 13): run the cocotb modules, return figures.

One function per figure, used by ``tests/test_reliability.py`` (small and full-size) and by
``bench/bench_reliability.py`` (counts from the command line):

- :func:`run_r1`: malformed frames into the RTL host link (``sim.tb.link_tb.fuzz``);
- :func:`run_r2`: random networks, core RTL == golden (``sim.tb.reliability_tb``);
- :func:`run_r5`: a soak of inferences through the driver and the UART (``sim.tb.soak_tb``);
- :func:`run_link_paths`: the link's run timeout and overrun (``sim.tb.link_tb``).

Each returns the figures its testbench wrote (a dict; ``wall_s`` is the wall time of the
measurement itself) with ``total_wall_s`` (the whole call, build and start-up included) added,
and raises ``AssertionError`` if the testbench found a fault. The link
and accelerator builds are the ones ``tests/test_link_cocotb.py`` and ``tests/test_link_e2e.py``
make (same parameters, same directories under ``build/tests/``: ``sim.rtl.runner.run_cocotb``
shares a build directory safely between processes); the R2 core build goes to
``build/reliability/``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "reliability"
TEST_BUILD = ROOT / "build" / "tests"

#: The link fixture of the R1 and timeout/overrun runs: 100 MHz, 25 Mbaud (4 clocks per bit),
#: 1 KiB frames, a short idle timeout, a 1 M-cycle run timeout (the same build as the link tests).
LINK_PARAMS = dict(clk_freq=100_000_000, baud=25_000_000, max_payload=1024, idle_timeout=64,
                   depth=1024, run_cycles=200, run_timeout=1_000_000)
#: The Accelerator's link in the R5 soak (as in tests/test_link_e2e.py).
ACCEL_LINK = dict(clk_freq=100_000_000, baud=25_000_000, idle_timeout=64)


def _run(component, *, toplevel, test_module, build_dir, testcase, env, log_file=None):
    from sim.rtl.runner import run_cocotb

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        t0 = time.monotonic()
        error = None
        try:
            run_cocotb(component, toplevel=toplevel, test_module=test_module,
                       build_dir=build_dir, testcase=testcase,
                       env={**env, "results": str(results)}, log_file=log_file)
        except AssertionError as e:
            error = e
        data = json.loads(results.read_text()) if results.exists() else {}
        data["total_wall_s"] = time.monotonic() - t0
        if error is not None:
            raise AssertionError(f"{error}; figures so far: {json.dumps(data)}") from error
        return data


def _link_top():
    from sim.rtl.bus_ram import LinkTestTop
    from sim.rtl.runner import param_tag

    top = LinkTestTop(**LINK_PARAMS)
    env = {k: LINK_PARAMS[k] for k in ("clk_freq", "baud", "max_payload", "idle_timeout",
                                       "depth", "run_cycles", "run_timeout")}
    env["identify"] = list(top.link.identify_words)
    return top, env, TEST_BUILD / f"link_{param_tag(LINK_PARAMS)}"


def run_r1(malformed: int, seed: int, *, log_file=None) -> dict:
    """R1: fuzz the link until at least ``malformed`` malformed frames have been sent.

    Returns the fuzz figures: ``frames``, ``malformed``, ``kinds``, ``replies`` (by status),
    ``bus_writes``, ``hangs``, ``sim_us``, ``wall_s``.
    """
    top, env, build = _link_top()
    data = _run(top, toplevel="link_test_top", test_module="sim.tb.link_tb", build_dir=build,
                testcase="fuzz", env={**env, "seed": seed, "fuzz_frames": 1,
                                      "min_malformed": malformed}, log_file=log_file)
    return {**data["fuzz"], "total_wall_s": data["total_wall_s"]}


def run_link_paths(*, log_file=None) -> dict:
    """The run timeout and the overrun, provoked (figures from ``link_tb.link_timeout_overrun``)."""
    top, env, build = _link_top()
    data = _run(top, toplevel="link_test_top", test_module="sim.tb.link_tb", build_dir=build,
                testcase="link_timeout_overrun", env=env, log_file=log_file)
    return {**data["link_paths"], "total_wall_s": data["total_wall_s"]}


def run_r2(networks: int, seed: int, *, preset: str = "arty_a7", log_file=None) -> dict:
    """R2: ``networks`` random networks on the core built with ``preset``, RTL == golden."""
    from boards import CORE_PRESETS
    from hw.core.core import SpikePackCore
    from sim.rtl.runner import param_tag

    params = CORE_PRESETS[preset]
    return _run(SpikePackCore(params), toplevel="spikepack_core",
                test_module="sim.tb.reliability_tb",
                build_dir=BUILD / f"core_{preset}_{param_tag(params)}",
                testcase="r2_random_networks",
                env={"preset": preset, "networks": networks, "seed": seed,
                     "progress_every": 10}, log_file=log_file)


def run_r5(inferences: int, seed: int, *, preset: str = "medium", widest: int = 64,
           log_file=None) -> dict:
    """R5: ``inferences`` inferences through the driver and the simulated UART, all == golden."""
    from boards import CORE_PRESETS
    from hw.accelerator import Accelerator
    from sim.rtl.runner import param_tag

    params = CORE_PRESETS[preset]
    dut = Accelerator(params, ACCEL_LINK["clk_freq"], ACCEL_LINK["baud"],
                      idle_timeout=ACCEL_LINK["idle_timeout"])
    return _run(dut, toplevel="accelerator", test_module="sim.tb.soak_tb",
                build_dir=TEST_BUILD / f"accel_{preset}_{param_tag((params, ACCEL_LINK))}",
                testcase="r5_soak",
                env={**ACCEL_LINK, "preset": preset, "seed": seed, "inferences": inferences,
                     "widest": widest, "progress_every": 25}, log_file=log_file)
