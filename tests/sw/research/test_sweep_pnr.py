"""The sweep's place-and-route stage (``spikepack sweep --stage pnr``): the synthesis-only
estimate's cell counts, failures recorded per point, and (synthesis tier) a real iCEBreaker
sweep through yosys and nextpnr-ice40."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from boards import get_board
from hw.build.report import netlist_utilization, resource_summary
from hw.contract.params import CoreParams
from sw.research import sweep as sw_sweep

#: The digits MLP 64-8-10 (hidden 8, 2 epochs per T): a quick model for the sweep's trials.
TINY = ["--hidden", "8", "--epochs", "2", "--samples", "16"]


def _netlist(family_cells: dict, sub_cells: dict, sub_count: int) -> dict:
    """A yosys JSON netlist: module ``top`` with ``family_cells`` and ``sub_count`` instances of
    module ``sub`` holding ``sub_cells``."""
    def cells(counts, prefix):
        return {f"{prefix}{kind}_{i}": {"type": kind} for kind, n in counts.items()
                for i in range(n)}
    top = cells(family_cells, "c")
    top.update({f"u{i}": {"type": "sub"} for i in range(sub_count)})
    # yosys writes the cell library's models too, as blackbox modules named by the cell type
    library = {kind: {"attributes": {"blackbox": "1"}, "cells": {"b": {"type": "$buf"}}}
               for kind in family_cells}
    return {"modules": {**library, "top": {"cells": top}, "sub": {"cells": cells(sub_cells, "s")}}}


@pytest.mark.parametrize("family, board, cells, want", [
    ("ice40", "icebreaker",
     {"SB_LUT4": 7, "SB_DFFE": 3, "SB_DFFSR": 2, "SB_CARRY": 5, "SB_RAM40_4K": 2, "SB_IO": 4},
     {"LUT": 7, "FF": 5, "BRAM": 2, "DSP": 0}),
    ("ecp5", "ulx3s",
     {"LUT4": 7, "CCU2C": 3, "TRELLIS_DPR16X4": 1, "TRELLIS_FF": 4, "DP16KD": 2,
      "MULT18X18D": 1, "TRELLIS_IO": 9},
     {"LUT": 7 + 2 * 3 + 6, "FF": 4, "BRAM": 2, "DSP": 1}),
])
def test_netlist_utilization_counts_device_cells(family, board, cells, want, rng, seed):
    """Cells of the top module and of every instance of a submodule, by the family's table."""
    capacity = get_board(board).capacity
    copies = int(rng.integers(1, 5))
    print("seed", seed, "submodule instances", copies)
    util = netlist_utilization(_netlist(cells, cells, copies), "top", family, capacity)
    assert {k: e["used"] for k, e in util.items()} == {k: v * (1 + copies)
                                                        for k, v in want.items()}
    assert util["LUT"]["available"] == capacity.luts
    assert util["BRAM"]["percent"] == round(100 * util["BRAM"]["used"] / capacity.brams, 1)
    with pytest.raises(ValueError, match="module 'nope'"):
        netlist_utilization(_netlist(cells, cells, 1), "nope", family, capacity)
    summary = resource_summary({"family": family, "utilization": util})
    assert summary == {k: float(v * (1 + copies)) for k, v in want.items()}


def test_resource_summary_of_placed_ice40():
    """nextpnr-ice40's logic cells are the LUTs; its flip-flops are not known apart."""
    util = {"ICESTORM_LC": {"used": 1200, "available": 5280, "percent": 22.7},
            "ICESTORM_RAM": {"used": 3, "available": 30, "percent": 10.0}}
    assert resource_summary({"family": "ice40", "utilization": util}) == {
        "LUT": 1200.0, "FF": None, "BRAM": 3.0, "DSP": 0.0}


def _front_study(storage, cores: list[CoreParams]):
    """A pnr-stage study on the iCEBreaker whose Pareto front is one trial per core (each
    faster and less accurate than the one before: none dominates another)."""
    config = sw_sweep.SweepConfig(board="icebreaker", stage="pnr", hidden=(8,), epochs=2)
    study = sw_sweep.open_study(storage, "front", config)
    names = config.objective_names()
    dist = {"k": CategoricalDistribution([4, 8, 16]), "T": CategoricalDistribution([2, 4]),
            "weight_bits": CategoricalDistribution([8])}
    for i, core in enumerate(cores):
        values = {"cycles": 100.0 * (i + 1), "error": 0.2 - 0.05 * i, "energy_pj": 300.0,
                  "LUT": 2000.0, "FF": 1500.0, "BRAM": 4.0}
        study.add_trial(optuna.trial.create_trial(
            params={"k": core.k, "T": 2, "weight_bits": 8}, distributions=dist,
            values=[values[n] for n in names],
            user_attrs={"core": dataclasses.asdict(core), "accuracy": 1 - values["error"],
                        "stage": "yosys", "fmax_mhz": None}))
    return config, study


def test_pnr_stage_records_failures(tmp_path, monkeypatch):
    """A point that does not fit the device and a point whose nextpnr is missing are each
    recorded with their reason; the stage goes on and the table, CSV and plot show them."""
    storage = sw_sweep.open_storage(str(tmp_path / "s.db"), tmp_path)
    base = get_board("icebreaker").params
    too_big = dataclasses.replace(base, n_pe=16, k=16, weight_depth=8192)  # > the UP5K's RAM
    small = sw_sweep.core_for_network([64, 8, 10], base, n_pe=4, k=4, t_max=8, fire_units=1,
                                      batch_depth=1)
    config, study = _front_study(storage, [too_big, small])
    config = dataclasses.replace(config, work_dir=tmp_path / "work")
    monkeypatch.setenv("NEXTPNR_ICE40", str(tmp_path / "no-such-nextpnr"))
    seen = []
    done = sw_sweep.place_and_route_front(study, config, top=5,
                                          progress=lambda n, rec: seen.append(n))
    assert seen == [0, 1]
    study = sw_sweep.open_study(storage, "front")
    assert study.user_attrs["pnr"] == done
    assert done["0"]["status"] == "does_not_fit"
    assert "does not fit the iCE40UP5K" in done["0"]["error"]
    assert done["1"]["status"] == "error"
    assert "NEXTPNR_ICE40" in done["1"]["error"] and done["1"]["fmax_mhz"] is None
    assert done["0"]["LUT"] is None and done["1"]["BRAM"] is None  # no nextpnr figures
    table = sw_sweep.format_table(study)
    print(table)
    assert "pnr Fmax MHz" in table
    lines = table.splitlines()
    assert lines[3].split()[0] == "0" and "does_not_fit" in lines[3].split()
    assert lines[4].split()[0] == "1" and "error" in lines[4].split()
    assert any(line.startswith("pnr trial 1: error:") and "NEXTPNR_ICE40" in line
               for line in lines)
    with open(sw_sweep.write_csv(study, tmp_path / "front.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["pnr_status"] for r in rows] == ["does_not_fit", "error"]
    assert rows[1]["core"] == small.describe()
    assert sw_sweep.plot_front(study, tmp_path / "front.png").stat().st_size > 1000
    # The failed build runs again next time (a tool may have been installed since); the
    # does-not-fit verdict is kept.
    monkeypatch.setenv("NEXTPNR_ICE40", str(tmp_path / "still-none"))
    again = sw_sweep.place_and_route_front(study, config, top=5)
    assert "still-none" in again["1"]["error"]
    assert again["0"]["error"] == done["0"]["error"]


def test_pnr_stage_refuses_vivado_boards(tmp_path):
    storage = sw_sweep.open_storage(str(tmp_path / "s.db"), tmp_path)
    config, study = _front_study(storage, [get_board("icebreaker").params])
    with pytest.raises(sw_sweep.SweepError, match="open-toolchain board"):
        sw_sweep.place_and_route_front(study, dataclasses.replace(config, board="arty_a7"))


@pytest.mark.synth
@pytest.mark.timeout(3600)
def test_pnr_stage_on_ulx3s(tmp_path, capsys):
    """``spikepack sweep digits --board ulx3s --stage pnr``, one point (a 4 x 4 array, about two
    minutes): the trial's resources are yosys' synth_ecp5 netlist cells, the front's point is
    placed and routed by nextpnr-ecp5, and its Fmax, LUTs, flip-flops and block RAMs, read from
    nextpnr's own report, are in the study, the table and the CSV. (The iCEBreaker's own 4 x 4
    core fills 96-97 % of the UP5K's logic cells, where nextpnr-ice40's placement succeeds or
    fails from one netlist to the next: that case, a refusal recorded, is the test below.)"""
    from sw.cli.main import main

    work = tmp_path / "work"
    rc = main(["sweep", "digits", "--board", "ulx3s", "--stage", "pnr", "--trials", "1",
               "--work-dir", str(work), "--study", "ice", *TINY, "--space", "k=4",
               "pe_per_lane=1", "fire_div=4", "batch_depth=1", "T=2", "weight_bits=8",
               "--pnr-top", "1", "--csv", str(tmp_path / "front.csv")])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0
    study = sw_sweep.open_study(sw_sweep.open_storage(None, work), "ice")
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    capacity = get_board("ulx3s").capacity
    res = trial.user_attrs["resources"]
    assert 0 < res["LUT"] <= capacity.luts and 0 < res["FF"] <= capacity.ffs
    assert 0 < res["BRAM"] <= capacity.brams
    core = CoreParams(**trial.user_attrs["core"])
    assert (core.n_pe, core.k, core.fire_units) == (4, 4, 1)

    rec = study.user_attrs["pnr"][str(trial.number)]
    assert rec["status"] == "ok", rec
    # The figures are nextpnr's own: its --report JSON in the build directory.
    report = json.loads((Path(rec["build_dir"]) / "top_nextpnr.json").read_text())
    achieved = [round(c["achieved"], 2) for c in report["fmax"].values()
                if abs(c["constraint"] - 100.0) < 0.01]
    assert rec["fmax_mhz"] in achieved and rec["fmax_mhz"] > 0
    assert rec["target_mhz"] == 100.0 and rec["met"] == (rec["fmax_mhz"] >= 100.0)
    lut = report["utilization"]["TRELLIS_COMB"]
    assert rec["LUT"] == lut["used"] and 0 < lut["used"] <= lut["available"] == capacity.luts
    ff = report["utilization"]["TRELLIS_FF"]
    assert rec["FF"] == ff["used"] and 0 < ff["used"] <= capacity.ffs
    ram = report["utilization"]["DP16KD"]
    assert rec["BRAM"] == ram["used"] and 0 < ram["used"] <= capacity.brams

    assert f"pnr trial {trial.number}: Fmax {rec['fmax_mhz']:.1f} MHz" in out
    header = next(line for line in out.splitlines() if line.split()[:2] == ["trial", "n_pe"])
    assert "pnr Fmax MHz" in header and "pnr LUT" in header
    row = next(line for line in out.splitlines() if line.split()[:1] == [str(trial.number)])
    assert f"{rec['fmax_mhz']:.1f}" in row.split()
    with open(tmp_path / "front.csv") as f:
        (csv_row,) = list(csv.DictReader(f))
    assert float(csv_row["pnr_fmax_mhz"]) == rec["fmax_mhz"]


def test_cli_space_option(tmp_path, capsys):
    """``--space`` narrows the sweep; a bad item says what is wrong."""
    from sw.cli.main import main

    base = ["sweep", "digits", "--board", "icebreaker", "--work-dir", str(tmp_path)]
    assert main([*base, "--space", "kk=4"]) == 2
    assert "--space takes NAME=V1,V2 with NAME one of k, pe_per_lane" in capsys.readouterr().err
    assert main([*base, "--space", "T=2,x"]) == 2
    assert "--space T: '2,x' is not a comma-separated list" in capsys.readouterr().err
    rc = main([*base, "--trials", "1", "--space", "k=4", "pe_per_lane=1", "fire_div=4",
               "batch_depth=1", "T=2", "weight_bits=8", *TINY])
    assert rc == 0
    study = sw_sweep.open_study(sw_sweep.open_storage(None, tmp_path), "digits-icebreaker-model")
    (trial,) = study.get_trials()
    assert trial.params == {"k": 4, "pe_per_lane": 1, "t_max": 8, "fire_div": 4,
                            "batch_depth": 1, "T": 2, "weight_bits": 8}
    assert study.user_attrs["config"]["space"]["T"] == [2]


@pytest.mark.synth
@pytest.mark.timeout(3600)
def test_pnr_stage_records_what_nextpnr_refuses(tmp_path):
    """A front point too large for the UP5K's logic cells (a 4 x 4 array with ``t_max = 16``,
    past the memory pre-check): nextpnr's packer refuses it, and its counts and message are the
    point's record (status ``does_not_fit``), not an exception."""
    storage = sw_sweep.open_storage(str(tmp_path / "s.db"), tmp_path)
    wide = sw_sweep.core_for_network([64, 32, 10], get_board("icebreaker").params, n_pe=4, k=4,
                                     t_max=16, fire_units=1, batch_depth=1)
    config, study = _front_study(storage, [wide])
    config = dataclasses.replace(config, work_dir=tmp_path / "work")
    rec = sw_sweep.place_and_route_front(study, config)["0"]
    print(rec)
    assert rec["status"] == "does_not_fit" and rec["fmax_mhz"] is None
    assert "does not fit the iCE40UP5K: ICESTORM_LC" in rec["error"]
    assert "packed" in rec["utilization_source"]
    capacity = get_board("icebreaker").capacity
    assert rec["LUT"] == rec["utilization"]["ICESTORM_LC"] > capacity.luts
    assert sw_sweep.open_study(storage, "front").user_attrs["pnr"]["0"] == rec
