"""``sim.rtl.runner.run_cocotb`` shared by several processes: one build per design, safe concurrent
runs.

The design is ``sim.tb.tiny_tb.TinyAccumulator`` (a few seconds of Verilator build).
"""

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sim.rtl.runner import BUILD_HISTORY, run_cocotb, simulator_available
from sim.tb.tiny_tb import TinyAccumulator

ROOT = Path(__file__).resolve().parents[2]


def _need(simulator):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not on PATH")

#: One process: build (or reuse) and run the tiny design, then report when it ran.
CHILD = textwrap.dedent("""
    import json, sys, time
    from sim.rtl.runner import run_cocotb
    from sim.tb.tiny_tb import TinyAccumulator
    build, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.time()
    run_cocotb(TinyAccumulator(8), toplevel="tiny", test_module="sim.tb.tiny_tb",
               build_dir=build, env={"out": out, "seed": seed, "width": 8},
               log_file=out + ".log")
    with open(out + ".times", "w") as f:
        json.dump([t0, time.time()], f)
""")


def _builds(build_dir: Path, simulator: str = "verilator") -> list[str]:
    history = build_dir / simulator / BUILD_HISTORY
    return history.read_text().splitlines() if history.exists() else []


def test_processes_build_one_design_at_once(tmp_path, seed):
    """Three processes build and run the same design in one fresh build directory at once."""
    _need("verilator")
    build = tmp_path / "build"
    n = 3
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(build), str(tmp_path / f"out{i}"),
                               str(seed + i)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(n)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for i, (p, out) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"process {i} failed:\n{out[-3000:]}"
    pids = set()
    for i in range(n):
        result = json.loads((tmp_path / f"out{i}").read_text())
        assert result["checked"] == 200
        pids.add(result["pid"])
    assert len(pids) == n, "each process ran its own simulation"
    assert len(_builds(build)) == 1, f"built more than once: {_builds(build)}"
    # They really ran at once: every process started before the first one finished.
    times = [json.loads((tmp_path / f"out{i}.times").read_text()) for i in range(n)]
    assert max(t0 for t0, _ in times) < min(t1 for _, t1 in times), times
    # Each run had its own directory, and only the failing ones are kept.
    assert not list((build / "verilator" / "runs").iterdir())


def test_reuse_threads_and_rebuild(tmp_path, seed):
    """The finished build is reused (also by threads at once); a changed design is rebuilt.

    Icarus, whose builds take a fraction of a second (the locking does not depend on the
    simulator; the process test above covers Verilator).
    """
    _need("icarus")
    build = tmp_path / "build"

    def run(width, name, seed):
        run_cocotb(TinyAccumulator(width), toplevel="tiny", test_module="sim.tb.tiny_tb",
                   build_dir=build, simulator="icarus",
                   env={"out": str(tmp_path / name), "seed": seed, "width": width},
                   log_file=tmp_path / f"{name}.log")

    run(8, "first", seed)
    assert len(_builds(build, "icarus")) == 1
    errors = []

    def thread_run(i):
        try:
            run(8, f"thread{i}", seed + i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=thread_run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    print(f"two reusing runs at once: {time.monotonic() - t0:.1f} s")
    assert len(_builds(build, "icarus")) == 1, "an unchanged design was rebuilt"
    for i in range(2):
        assert json.loads((tmp_path / f"thread{i}").read_text())["checked"] == 200
    run(12, "wider", seed)  # other Verilog in the same directory: rebuilt, and right
    assert len(_builds(build, "icarus")) == 2
    assert json.loads((tmp_path / "wider").read_text())["checked"] == 200


def test_ports_only_build_runs_a_ports_only_testbench(tmp_path, seed):
    """``public="ports"``: the control file is passed, the build differs from the default one (its
    own stamp), and a testbench that touches only the top's ports runs on it."""
    _need("verilator")
    import json

    from sim.rtl.runner import run_cocotb
    from sim.tb.tiny_tb import TinyAccumulator

    out = tmp_path / "out.json"
    run_cocotb(TinyAccumulator(8), toplevel="tiny", test_module="sim.tb.tiny_tb",
               build_dir=tmp_path / "b", env={"out": str(out), "seed": seed, "width": 8},
               public="ports")
    assert json.loads(out.read_text())["checked"] == 200
    vlt = (tmp_path / "b/verilator/public_ports.vlt").read_text()
    assert 'public_flat_rw -module "tiny"' in vlt
    assert "--no-public-flat-rw" in (tmp_path / "b/verilator/spikepack_build.json").read_text()
    with pytest.raises(ValueError, match="public must be"):
        run_cocotb(None, toplevel="tiny", test_module="sim.tb.tiny_tb",  # refused before use
                   build_dir=tmp_path / "b", public="some")


def test_a_design_key_skips_the_conversion_of_an_unchanged_design(tmp_path, seed, monkeypatch):
    """``design_key``: a build stamped with the same key and source digest is reused without
    converting the component again (``None`` here, which cannot be converted: a call that
    converted it would fail), a key the stamp lacks or other sources convert again, and a build
    made without a key serves keyed calls (no rebuild, the stamp gains the key)."""
    _need("verilator")
    import sim.rtl.runner as runner

    build, out = tmp_path / "b", tmp_path / "out.json"

    def run(component, key):
        run_cocotb(component, toplevel="tiny", test_module="sim.tb.tiny_tb", build_dir=build,
                   env={"out": str(out), "seed": seed, "width": 8}, design_key=key)
        assert json.loads(out.read_text())["checked"] == 200

    run(TinyAccumulator(8), None)  # built without a key
    run(TinyAccumulator(8), "tiny 8")  # converted: the same Verilog, so no rebuild; key stamped
    assert len(_builds(build)) == 1
    stamp = json.loads((build / "verilator/spikepack_build.json").read_text())
    assert stamp["design_key"] == {"design": "tiny 8", "sources": runner.design_digest()}
    run(None, "tiny 8")  # not converted
    run(lambda: pytest.fail("made although its build is stamped"), "tiny 8")  # nor made
    with pytest.raises(Exception):  # noqa: B017 - converting None fails in Amaranth
        run(None, "tiny 9")
    monkeypatch.setattr(runner, "design_digest", lambda: "other sources")
    with pytest.raises(Exception):  # noqa: B017
        run(None, "tiny 8")
    monkeypatch.undo()
    run(None, "tiny 8")
    assert len(_builds(build)) == 1
