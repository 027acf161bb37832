"""The host link through its UART pins under cocotb + Verilator (DUT: HostLink + a fixture RAM).

cocotbext-uart is the host-side UART; the fuzz and the driver tests live in ``sim/tb/link_tb.py``.
"""

import json
import os
import random
import time

import pytest

from sim.rtl.bus_ram import LinkTestTop
from sim.rtl.runner import param_tag, require_simulator, run_cocotb

pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")

#: Simulation build: 100 MHz clock, 25 Mbaud (4 clocks per bit), 1 KiB frames, short idle timeout.
PARAMS = dict(clk_freq=100_000_000, baud=25_000_000, max_payload=1024, idle_timeout=64,
              depth=1024, run_cycles=200, run_timeout=1_000_000)


def run(testcase, build_root, tmp_path, simulator="verilator", **env):
    require_simulator(simulator)
    top = LinkTestTop(**PARAMS)
    results = tmp_path / "results.json"
    env = dict(clk_freq=PARAMS["clk_freq"], baud=PARAMS["baud"],
               max_payload=PARAMS["max_payload"], idle_timeout=PARAMS["idle_timeout"],
               depth=PARAMS["depth"], identify=list(top.link.identify_words),
               results=str(results), **env)
    t0 = time.monotonic()
    run_cocotb(top, toplevel="link_test_top", test_module="sim.tb.link_tb",
               build_dir=build_root / f"link_{param_tag(PARAMS)}", testcase=testcase, env=env,
               simulator=simulator)
    data = json.loads(results.read_text()) if results.exists() else {}
    print(f"{testcase}: {time.monotonic() - t0:.1f} s wall")
    return data


@pytest.fixture(scope="module")
def build_root():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "build" / "tests"
    root.mkdir(parents=True, exist_ok=True)
    return root


def test_link_uart_frames_with_cocotbext_uart(build_root, tmp_path):
    turnaround = run("uart_frames", build_root, tmp_path)["turnaround_cycles"]
    print("turnaround (cycles, fixture core with random stalls):", turnaround)
    assert max(turnaround.values()) < 100


def _fuzz(build_root, tmp_path, frames, seed):
    print("fuzz seed", seed)
    fuzz = run("fuzz", build_root, tmp_path, fuzz_frames=frames, seed=seed)["fuzz"]
    print(json.dumps(fuzz, indent=1))
    assert fuzz["frames"] == frames
    bad = sum(v for k, v in fuzz["replies"].items() if k != "OK")
    assert bad > frames // 3  # the mix really is mostly hostile


def test_link_fuzz(build_root, tmp_path):
    seed = int(os.environ.get("SPIKEPACK_FUZZ_SEED", random.randrange(1 << 31)))
    _fuzz(build_root, tmp_path, int(os.environ.get("SPIKEPACK_FUZZ_FRAMES", 2000)), seed)


@pytest.mark.slow
def test_link_fuzz_long(build_root, tmp_path):
    seed = int(os.environ.get("SPIKEPACK_FUZZ_SEED", random.randrange(1 << 31)))
    _fuzz(build_root, tmp_path, 20000, seed)


def test_link_driver_over_rtl_uart(build_root, tmp_path):
    run("driver_roundtrip", build_root, tmp_path, seed=random.randrange(1 << 31))


def test_link_upload_throughput(build_root, tmp_path):
    bench = run("bench_upload", build_root, tmp_path)["bench"]
    for name, b in bench.items():
        print(f"{name}: {b['payload_bytes']} B in {b['cycles']} cycles: "
              f"{b['payload_Bps'] / 1e6:.3f} MB/s vs line {b['line_Bps'] / 1e6:.3f} MB/s "
              f"= {b['efficiency']:.1%}")
    assert bench["window2"]["efficiency"] >= 0.90
