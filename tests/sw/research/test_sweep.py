"""spikepack sweep on real Optuna storages in tmp_path: shared studies, killed workers, failed
trials, the Pareto table, the preset file hw.build reads."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hw.contract.params import CoreParams
from sw.compile.program_image import DoesNotFitError, build_image
from sw.research import sweep as sw_sweep

ROOT = Path(__file__).resolve().parents[3]
#: A small, quick configuration: an 8-neuron hidden layer trained for 2 epochs per T, the cycle
#: model on 16 test samples (all 360 for the accuracy).
TINY = ["--hidden", "8", "--epochs", "2", "--samples", "16"]


def _config(tmp_path, **kw) -> sw_sweep.SweepConfig:
    space = kw.pop("space", sw_sweep.SweepSpace(T=(2, 3), weight_bits=(4, 8)))
    return sw_sweep.SweepConfig(net="digits", board="arty_a7", work_dir=tmp_path / "work",
                                hidden=(8,), epochs=2, samples=16, space=space, **kw)


def _worker(tmp_path, storage, study, trials, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "sw.cli", "sweep", "digits", "--board", "arty_a7", "--storage",
         str(storage), "--study", study, "--trials", str(trials), "--work-dir",
         str(tmp_path / "work"), *TINY, *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _load(storage, study):
    # Through the sweep's own storage opener: it waits out a worker creating the schema.
    return optuna.load_study(study_name=study, storage=sw_sweep.open_storage(
        str(storage), storage.parent))


def test_core_for_network_is_minimal():
    """The derived memories hold the network and none could be halved."""
    sizes = [64, 40, 10]
    base = CoreParams(n_pe=16, k=16, acc_bits=24)
    p = sw_sweep.core_for_network(sizes, base, n_pe=8, k=4, t_max=8, fire_units=2, batch_depth=1)
    rng = np.random.default_rng(0)
    from sim.golden.ir import IntLayer, IntNetwork
    net = IntNetwork((IntLayer(rng.integers(-3, 4, (40, 64)), np.zeros(40, np.int64), 5),
                      IntLayer(rng.integers(-3, 4, (10, 40)), np.zeros(10, np.int64), 1,
                               readout=True)), T=4)
    build_image(net, p)
    import dataclasses
    for field in ("weight_depth", "bt_depth"):
        smaller = dataclasses.replace(p, **{field: getattr(p, field) // 2})
        with pytest.raises(DoesNotFitError):
            build_image(net, smaller)


@pytest.fixture(scope="module")
def shared_study(tmp_path_factory):
    """A study two worker processes ran together on one SQLite file: ``(study, outputs, dir)``."""
    tmp_path = tmp_path_factory.mktemp("shared")
    storage = tmp_path / "study.db"
    procs = [_worker(tmp_path, storage, "shared", 6) for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return _load(storage, "shared"), outs, tmp_path


def test_two_workers_share_one_study(shared_study):
    """Two worker processes on one SQLite study: together they finish it, trial numbers unique."""
    study, outs, _ = shared_study
    ran = [int(o.split("this worker ran ")[1].split()[0]) for o in outs]
    trials = study.get_trials()
    assert sum(ran) == len(trials)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 6 <= len(done) <= 7  # both may start the last trial at once
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.user_attrs["stage"] == "model"
            assert len(t.values) == len(study.user_attrs["objectives"])
            assert t.values[0] == t.user_attrs["cycles"] > 0
            assert list(t.user_attrs["objectives"].values()) == t.values
    print("trials per worker:", ran)


def test_killed_worker_is_resumed(tmp_path):
    """A worker killed (SIGKILL) mid-trial leaves the study loadable with that trial RUNNING; once
    its heartbeat is stale the next worker fails it, retries the same point and finishes."""
    storage = tmp_path / "study.db"
    killed = None
    for _attempt in range(5):
        p = _worker(tmp_path, storage, "kill", 4, "--heartbeat", "1", "--samples", "360")
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None and killed is None:
            if storage.exists():
                try:
                    running = _load(storage, "kill").get_trials(states=(TrialState.RUNNING,))
                except KeyError:  # the study is not created yet
                    running = []
                # Killed once its whole point is drawn (a trial killed before that has no point
                # to retry: the next worker draws the missing parameters anew).
                running = [t for t in running if set(t.params) == set(sw_sweep.POINT_PARAMS)]
                if running:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
                    still = _load(storage, "kill").get_trials(states=(TrialState.RUNNING,))
                    if [t.number for t in still] == [running[0].number]:
                        killed = running[0]
            time.sleep(0.05)
        if p.poll() is None:
            p.kill()
        p.communicate()
        if killed is not None:
            break
    assert killed is not None, "no trial was caught running in five attempts"
    # Only a trial with a heartbeat can go stale: the objective waits for the first before it
    # draws its point, so the killed trial must have one.
    with sqlite3.connect(storage) as db:
        assert db.execute("SELECT 1 FROM trial_heartbeats WHERE trial_id = ?",
                          (killed._trial_id,)).fetchone() is not None
    time.sleep(3)  # > grace period (2 heartbeats of 1 s)
    p = _worker(tmp_path, storage, "kill", 4, "--heartbeat", "1")
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    study = _load(storage, "kill")
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in by_number.values()
               if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert sw_sweep.finished(study) >= 4
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_objective_waits_for_the_first_heartbeat(tmp_path):
    """A trial is only ever stale once it has a heartbeat: the objective draws no point before its
    first one is stored (a worker killed in between would leave its trial RUNNING for good)."""
    storage = sw_sweep.open_storage(str(tmp_path / "s.db"), tmp_path, heartbeat_interval=1)
    study = optuna.create_study(storage=storage)
    with warnings.catch_warnings():  # Optuna warns that ask() starts no heartbeat thread
        warnings.simplefilter("ignore")
        trial = study.ask()
    with pytest.raises(sw_sweep.SweepError, match="no heartbeat recorded"):
        sw_sweep._await_first_heartbeat(storage, trial._trial_id, timeout=0.2)
    storage.record_heartbeat(trial._trial_id)
    sw_sweep._await_first_heartbeat(storage, trial._trial_id, timeout=0.2)
    journal = sw_sweep.open_storage(str(tmp_path / "s.log"), tmp_path)  # no heartbeats: no wait
    sw_sweep._await_first_heartbeat(journal, 0, timeout=0.0)


def test_failed_trial_records_its_error(tmp_path):
    """A trial whose model file is broken fails with the error recorded; the worker gives up
    after failures in a row, naming it."""
    config = _config(tmp_path, space=sw_sweep.SweepSpace(T=(2,), weight_bits=(8,), k=(8,),
                                                         pe_per_lane=(1,), fire_div=(1,)))
    path = sw_sweep.model_path(config, 2)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    storage = sw_sweep.open_storage(str(tmp_path / "s.db"), tmp_path)
    with pytest.raises(sw_sweep.SweepError, match="3 trials in a row failed"):
        sw_sweep.run_worker(config, storage, "fail", 2)
    study = optuna.load_study(study_name="fail", storage=storage)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 3
    for t in failed:
        assert t.user_attrs["stage"] == "failed"
        assert "ModelFileError" in t.user_attrs["error"] and str(path) in t.user_attrs["error"]


def test_pareto_table_plot_and_preset(shared_study, tmp_path):
    """The table lists exactly the non-dominated complete trials; the preset file builds."""
    from hw.build.main import _argparser, _preset_from_args

    study, _, shared_dir = shared_study
    config = sw_sweep.SweepConfig(net="digits", board="arty_a7", work_dir=shared_dir / "work",
                                  hidden=(8,), epochs=2, samples=16)
    rows = sw_sweep.pareto_rows(study)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert rows and len(rows) <= len(complete)

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    front = {r["trial"] for r in rows}
    for t in complete:
        dominated = any(dominates(o.values, t.values) for o in complete)
        assert (t.number in front) == (not dominated)
    table = sw_sweep.format_table(study)
    assert "Pareto front" in table and "cycle_model" in table
    first_cells = [line.split()[0] for line in table.splitlines()[3:]]
    assert first_cells == [str(r["trial"]) for r in rows]
    png = sw_sweep.plot_front(study, tmp_path / "front.png")
    assert png.stat().st_size > 1000

    doc = sw_sweep.write_preset(study, tmp_path / "p.json")
    chosen = doc["trial"]
    assert chosen in front
    best = max(r["accuracy"] for r in rows)
    assert doc["figures"]["accuracy"] >= best - 0.01
    args = _argparser().parse_args(["--preset", str(tmp_path / "p.json")])
    preset = _preset_from_args(args)
    assert preset.name == "arty_a7"
    assert preset.params == CoreParams(**doc["params"])
    net, _, _ = sw_sweep.quantized_network(config, doc["model"]["T"], doc["model"]["weight_bits"])
    build_image(net, preset.params)
    with pytest.raises(sw_sweep.SweepError, match="not on the Pareto front"):
        sw_sweep.choose_point(study, trial=max(t.number for t in study.get_trials()) + 5)


def test_cli_refuses_bad_requests(tmp_path, capsys):
    from hw.build.main import main as build_main
    from sw.cli.main import main

    assert main(["sweep", "--show", "--work-dir", str(tmp_path)]) == 2
    assert "--show needs --study" in capsys.readouterr().err
    assert main(["sweep", "--work-dir", str(tmp_path)]) == 2
    assert "name the network" in capsys.readouterr().err
    assert main(["sweep", "--show", "--study", "nope", "--work-dir", str(tmp_path)]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["sweep", "digits", "--board", "arty_a7", "--stage", "pnr",
                 "--work-dir", str(tmp_path)]) == 2
    assert "open-toolchain board" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"board": "arty_a7"}))
    assert build_main(["--preset", str(bad)]) == 2
    assert "is not a preset file" in capsys.readouterr().err


def test_journal_file_storage(tmp_path):
    """A journal file (*.log) is a storage too: a second worker resumes the study from it."""
    config = _config(tmp_path, space=sw_sweep.SweepSpace(T=(2,), weight_bits=(4, 8), k=(8,),
                                                         pe_per_lane=(1,), fire_div=(1, 2)))
    path = tmp_path / "study.log"
    assert sw_sweep.run_worker(config, sw_sweep.open_storage(str(path), tmp_path), "j", 2) >= 2
    storage = sw_sweep.open_storage(str(path), tmp_path)  # as another process would open it
    assert sw_sweep.run_worker(config, storage, "j", 3) >= 1
    study = optuna.load_study(study_name="j", storage=storage)
    assert sw_sweep.finished(study) >= 3
    assert study.user_attrs["config"]["board"] == "arty_a7"
    with pytest.raises(sw_sweep.SweepError, match="was started with"):
        sw_sweep.run_worker(_config(tmp_path, stage="yosys"), storage, "j", 4)
