"""Reliability figures of issue 13, measured on the RTL (cocotb + Verilator).

- R1: >= 10,000 malformed frames into the host link: no hang, no change to the RAM behind it,
  every later valid command answered right (``sim.tb.link_tb.fuzz``);
- R2: >= 1,000 random networks on the Arty A7 build, RTL == golden (``sim.tb.reliability_tb``);
- R5: a soak of >= 10,000 inferences through the driver and the simulated UART, outputs ==
  golden, counters consistent, no resend (``sim.tb.soak_tb``);
- the link's run timeout and overrun, provoked (``sim.tb.link_tb.link_timeout_overrun``).

The full sizes are ``slow`` (``bench/bench_reliability.py`` runs them with counts as arguments);
a short soak stays in the default tier. Seeds come from the ``seed`` fixture (printed; replay
with ``SPIKEPACK_SEED``).
"""

import json

import pytest

from sim.rtl.runner import require_simulator
from sim.tb import reliability

pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")


@pytest.fixture(autouse=True)
def _verilator():
    require_simulator("verilator")


def _show(name, figures):
    print(f"{name}: {json.dumps(figures)}")


def _check_r5(figures, n):
    _show("R5", figures)
    assert figures["done"] and figures["inferences"] == n
    assert figures["output_mismatches"] == 0 and figures["counter_mismatches"] == 0
    assert figures["resends"] == 0
    assert figures["runs"] >= n / 8  # batches of at most batch_depth (8 on the medium build)


def test_r5_soak_short(seed):
    """64 inferences through the driver and the UART (the soak's code path, kept cheap)."""
    _check_r5(reliability.run_r5(64, seed), 64)


@pytest.mark.slow
def test_r5_soak(seed):
    _check_r5(reliability.run_r5(10_000, seed), 10_000)


@pytest.mark.slow
def test_r1_malformed_frames(seed):
    figures = reliability.run_r1(10_000, seed)
    _show("R1", figures)
    assert figures["malformed"] >= 10_000 and figures["hangs"] == 0
    refused = sum(n for status, n in figures["replies"].items() if status != "OK")
    assert refused >= figures["malformed"]  # each malformed frame had its error reply


@pytest.mark.slow
def test_r2_random_networks_arty(seed):
    figures = reliability.run_r2(1_000, seed, preset="arty_a7")
    _show("R2", figures)
    assert figures["done"] and figures["networks"] == 1_000
    assert figures["mismatched_networks"] == 0


@pytest.mark.slow
def test_link_run_timeout_and_overrun():
    figures = reliability.run_link_paths()
    _show("link paths", figures)
    t = figures["run_timeout"]
    assert t["reply_after_cycles"] > t["run_timeout"]
    assert figures["overrun"]["reply_order"] == ["OK", "OK", "ERR_OVERRUN"]
