"""``spikepack sweep``: design-space exploration of core and model on Optuna
(:mod:`sw.research.sweep`; docs/sweep.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .registry import UserError, command


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _configure(p: argparse.ArgumentParser) -> None:
    from boards import board_names
    from sw.research.sweep import NETWORKS, STAGES

    p.add_argument("net", nargs="?", choices=NETWORKS,
                   help="the network to sweep (digits: the sklearn digits SpikePack MLP); "
                        "not needed with --show")
    p.add_argument("--board", default="arty_a7", choices=board_names(),
                   help="board whose clock, capacity and toolchain the points are built for")
    p.add_argument("--storage", help="Optuna storage: a SQLite file (default "
                                     "<work-dir>/sweep.db), an SQLAlchemy URL such as "
                                     "postgresql+psycopg2://user:pw@host/db that workers on "
                                     "several machines share, or a journal file *.log")
    p.add_argument("--study", help="study name (default NET-BOARD-STAGE); workers started with "
                                   "the same --storage and --study share it")
    p.add_argument("--trials", type=_positive, default=20,
                   help="finished (complete or pruned) trials the study should hold; a worker "
                        "stops when the study has them")
    p.add_argument("--stage", choices=STAGES, default="model",
                   help="model: exact cycle model, accuracy, Bit Budget energy per trial; yosys: "
                        "plus hw.build's resource estimate; pnr: plus nextpnr Fmax for the "
                        "front (ulx3s, icebreaker)")
    p.add_argument("--work-dir", default="build/sweep",
                   help="trained models, builds and plots (shared by this machine's workers)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64], help="hidden layer sizes")
    p.add_argument("--epochs", type=_positive, default=40, help="training epochs per T")
    p.add_argument("--samples", type=_positive, default=360,
                   help="test samples the cycle model runs per trial (360: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heartbeat", type=_positive, default=60,
                   help="seconds between a worker's heartbeats (RDB storages); a trial silent "
                        "for twice as long is failed and retried")
    p.add_argument("--show", action="store_true",
                   help="run no trials: print the study's Pareto table and write the plot")
    p.add_argument("--plot", help="Pareto plot file (default <work-dir>/<study>_pareto.png)")
    p.add_argument("--write-preset", metavar="PATH",
                   help="write the chosen Pareto point as a preset file for "
                        "`python -m hw.build --preset PATH`")
    p.add_argument("--pick", type=int, metavar="TRIAL",
                   help="the Pareto point --write-preset takes (default: the fastest within "
                        "--max-drop of the best accuracy)")
    p.add_argument("--max-drop", type=float, default=0.01,
                   help="accuracy the default pick may give up against the best point")
    p.add_argument("--space", nargs="+", default=[], metavar="NAME=V1,V2",
                   help="narrow the search space, e.g. --space k=4 pe_per_lane=1,2 T=2,4 (names: "
                        "k, pe_per_lane, t_max, fire_div, batch_depth, T, weight_bits)")
    p.add_argument("--pnr-top", type=_positive, default=3,
                   help="--stage pnr: Pareto points placed and routed")
    p.add_argument("--csv", metavar="PATH", help="also write the Pareto table as CSV")
    p.add_argument("--confirm-rtl", type=_positive, metavar="SAMPLES",
                   help="run each Pareto point on its core's RTL (Verilator, a build per core) "
                        "for SAMPLES test digits and compare its cycle counters with the model's")


@command("sweep", "design-space exploration on Optuna: core size and model bits for a board, "
                  "Pareto front of cycles, accuracy, energy and resources", examples=(
                      "spikepack sweep digits --board arty_a7 --trials 30",
                      "spikepack sweep digits --board arty_a7 --stage yosys --trials 8",
                      "spikepack sweep digits --board icebreaker --stage pnr --trials 4 "
                      "--space k=4 pe_per_lane=1,2 --pnr-top 2",
                      "spikepack sweep digits --board arty_a7 --storage "
                      "postgresql+psycopg2://me:pw@db.lan/sweeps --study arty1",
                      "spikepack sweep --show --study digits-arty_a7-model "
                      "--write-preset arty_fast.json",
                  ))
def sweep(args) -> int:
    from sw.research import sweep as sw_sweep

    work = Path(args.work_dir)
    try:
        storage = sw_sweep.open_storage(args.storage, work, heartbeat_interval=args.heartbeat)
        if args.show:
            if args.study is None:
                raise UserError("--show needs --study NAME (and the --storage it lives in)")
            study = sw_sweep.open_study(storage, args.study)
        else:
            if args.net is None:
                raise UserError("name the network to sweep (e.g. `spikepack sweep digits "
                                "--board arty_a7`), or pass --show --study NAME")
            config = sw_sweep.SweepConfig(net=args.net, board=args.board, stage=args.stage,
                                          work_dir=work, hidden=tuple(args.hidden),
                                          epochs=args.epochs, samples=args.samples,
                                          seed=args.seed, space=_space(args.space))
            name = args.study or f"{args.net}-{args.board}-{args.stage}"

            def progress(trial):
                state = trial.state.name.lower()
                extra = trial.user_attrs.get("pruned") or trial.user_attrs.get("error") or ""
                vals = "" if trial.values is None else " ".join(f"{v:.4g}" for v in trial.values)
                print(f"trial {trial.number}: {state} {trial.params} {vals} {extra}".rstrip(),
                      flush=True)

            ran = sw_sweep.run_worker(config, storage, name, args.trials, progress=progress)
            study = sw_sweep.open_study(storage, name)
            print(f"this worker ran {ran} trial(s)")
            if args.stage == "pnr":
                sw_sweep.place_and_route_front(study, config, top=args.pnr_top,
                                               progress=_print_pnr)
        if args.confirm_rtl:
            if args.show:
                config = sw_sweep.SweepConfig(**_stored_config(study))
            sw_sweep.confirm_front_on_rtl(
                study, config, samples=args.confirm_rtl,
                progress=lambda n, v: print(
                    f"RTL trial {n}: model {v['model']:.1f}, RTL {v['rtl']:.1f} cycles per "
                    f"inference over {v['samples']} samples: "
                    f"{'equal (==)' if v['equal'] else 'DIFFERENT'}", flush=True))
        print(sw_sweep.format_table(study))
        if args.csv:
            print(f"csv: {sw_sweep.write_csv(study, args.csv)}")
        if any(True for _ in study.best_trials):
            plot = Path(args.plot) if args.plot else work / f"{study.study_name}_pareto.png"
            sw_sweep.plot_front(study, plot)
            print(f"plot: {plot}")
        if args.write_preset:
            doc = sw_sweep.write_preset(study, args.write_preset, trial=args.pick,
                                        max_drop=args.max_drop)
            print(f"preset: {args.write_preset} (trial {doc['trial']}; build it with "
                  f"`python -m hw.build --preset {args.write_preset}`)")
    except sw_sweep.SweepError as exc:
        raise UserError(str(exc)) from None
    return 0


def _space(items):
    """The ``--space NAME=V1,V2`` items as a :class:`SweepSpace` (defaults for the rest)."""
    import dataclasses

    from sw.research.sweep import SweepSpace

    names = [f.name for f in dataclasses.fields(SweepSpace)]
    changes = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in names:
            raise UserError(f"--space takes NAME=V1,V2 with NAME one of {', '.join(names)}, "
                            f"not {item!r}")
        try:
            changes[name] = tuple(int(v) for v in values.split(","))
        except ValueError:
            raise UserError(f"--space {name}: {values!r} is not a comma-separated list of "
                            f"whole numbers") from None
    return SweepSpace(**changes)


def _print_pnr(trial: int, rec: dict) -> None:
    if rec["status"] == "ok":
        util = ", ".join(f"{bel} {n:,}" for bel, n in rec["utilization"].items())
        print(f"pnr trial {trial}: Fmax {rec['fmax_mhz']:.1f} MHz (target "
              f"{rec['target_mhz']:g}); {util}; {rec['seconds']:.0f} s", flush=True)
    else:
        print(f"pnr trial {trial}: {rec['status']}: {rec['error']}", flush=True)


def _stored_config(study) -> dict:
    """The study's SweepConfig fields, as the worker that created it stored them."""
    from sw.research.sweep import SweepSpace

    cfg = dict(study.user_attrs["config"])
    cfg["hidden"] = tuple(cfg["hidden"])
    cfg["space"] = SweepSpace(**{k: tuple(v) for k, v in cfg["space"].items()})
    return cfg


sweep.configure = _configure
