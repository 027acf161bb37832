"""Design-space sweep figures: the cycle model against the RTL, the Bit Budget on measured
hardware, and a digits sweep for the Arty with a yosys estimate per point.

    python bench/bench_sweep.py validate [--networks 20]
    python bench/bench_sweep.py bitbudget [--budgets 16 24 32] [--rtl]
    python bench/bench_sweep.py arty [--trials 12] [--rtl]

``validate``: random networks on several core builds (one Verilator build each, cached under
build/hw_core/); every layer's cycle counter of every sample against
:func:`sw.research.cycle_model.predict_cycles`; prints the number of equal and differing
counters and the largest difference.

``bitbudget``: the Bit Budget question (arXiv 2311.10802) on this hardware: at a fixed core (the
SMALL build, i.e. a fixed resource budget), the digits MLP quantized at every ``(weight bits, T)``
pair whose product ``b_w T`` is one of the budgets; accuracy, Bit Budget compute bits and energy,
and the cycles per inference (cycle model; with ``--rtl`` confirmed on the RTL with ``==``).

``arty``: ``spikepack sweep digits --board arty_a7 --stage yosys`` in-process (storage
build/bench_sweep/arty.db, resumable), the Pareto table and plot; with ``--rtl`` each Pareto
point's cycles are measured on its own core's RTL (one Verilator build per point, minutes each).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from boards import CORE_PRESETS  # noqa: E402
from hw.contract.params import CoreParams  # noqa: E402
from sim.rtl.runner import param_tag  # noqa: E402

#: Builds the validation runs on: the two board-less presets and one with t_max 16, a single
#: firing unit and no weight registers (the iCEBreaker's setting).
VALIDATION_BUILDS = {
    "small": CORE_PRESETS["small"],
    "medium": CORE_PRESETS["medium"],
    "sweep_k8_f1_w0": CoreParams(n_pe=8, k=8, t_max=16, weight_depth=256, act_chunks=16,
                                 bt_depth=256, max_layers=4, batch_depth=2, fire_units=1,
                                 weight_regs=0),
}


def _build_dir(name, params):
    return ROOT / "build" / "hw_core" / f"{name}_{param_tag(params)}"


def validate(args) -> int:
    from sim.tb.random_nets import random_inputs, random_network
    from sw.research.cycle_model import measure_cycles_rtl, predict_cycles

    print("cycle model (sw.research.cycle_model) vs the core's per-layer cycle counters (RTL, "
          "Verilator), one sample per run")
    print(f"  {'build':<16} {'networks':>8} {'counters':>9} {'equal':>6} {'max |diff|':>10} "
          f"{'seconds':>8}")
    total_bad = 0
    for name, params in VALIDATION_BUILDS.items():
        rng = np.random.default_rng(args.seed)
        cases = []
        for i in range(args.networks):
            net = random_network(rng, params, max_depth=4, widest=None if i % 2 else 48)
            cases.append((net, random_inputs(rng, net, 2,
                                             [None, None, "ones", "zeros"][i % 4])))
        t0 = time.time()
        rtl = measure_cycles_rtl(params, cases, build_dir=_build_dir(name, params))
        model = [predict_cycles(n, x, params) for n, x in cases]
        counters = sum(m.size for m in model)
        equal = sum(int((m == r).sum()) for m, r in zip(model, rtl, strict=True))
        worst = max(int(np.abs(m - r).max()) for m, r in zip(model, rtl, strict=True))
        total_bad += counters - equal
        print(f"  {name:<16} {len(cases):>8} {counters:>9} {equal:>6} {worst:>10} "
              f"{time.time() - t0:>8.0f}")
    print("exact (==) on every counter" if total_bad == 0 else f"{total_bad} counters differ")
    return 0 if total_bad == 0 else 1


def bitbudget(args) -> int:
    from sw.research import sweep as sw_sweep
    from sw.research.bitbudget import network_cost
    from sw.research.cycle_model import measure_cycles_rtl, predict_cycles

    params = CORE_PRESETS["small"]
    config = sw_sweep.SweepConfig(net="digits", board="arty_a7", hidden=tuple(args.hidden),
                                  epochs=args.epochs, work_dir=ROOT / "build" / "bench_sweep")
    print(f"Bit Budget on the SMALL core ({params.describe()}), digits MLP "
          f"64-{'-'.join(map(str, args.hidden))}-10, {args.epochs} epochs per T; cycles per "
          f"inference over {args.samples} test samples")
    print(f"  {'b_w*T':>5} {'w_bits':>6} {'T':>3} {'accuracy':>8} {'compute Mbit':>12} "
          f"{'energy pJ':>9} {'cycles':>8} {'rtl cycles':>10}")
    rows = []
    for budget in args.budgets:
        for wb in range(2, 9):
            if budget % wb or not 1 <= budget // wb <= params.t_max:
                continue
            T = budget // wb
            net, x, y = sw_sweep.quantized_network(config, T, wb)
            from sim.golden.model import run_network
            acc = float(np.mean(run_network(net, x).predictions() == y))
            xs = x[:args.samples]
            cost = network_cost(net, "spikepack", x=xs)
            cycles = predict_cycles(net, xs, params)
            rows.append((budget, wb, T, acc, cost, cycles, net, xs))
    measured = None
    if args.rtl:
        measured = measure_cycles_rtl(params, [(r[6], r[7]) for r in rows],
                                      build_dir=_build_dir("small", params))
    bad = 0
    for i, (budget, wb, T, acc, cost, cycles, _, _) in enumerate(rows):
        rtl = "-"
        if measured is not None:
            same = np.array_equal(measured[i], cycles)
            bad += not same
            rtl = f"{measured[i].sum(axis=1).mean():.1f}" + ("" if same else " !=")
        print(f"  {budget:>5} {wb:>6} {T:>3} {100 * acc:>7.1f}% "
              f"{cost.compute_bits / 1e6:>12.2f} {cost.energy_pj:>9.0f} "
              f"{cycles.sum(axis=1).mean():>8.1f} {rtl:>10}")
    if measured is not None:
        print("RTL cycle counters == cycle model for every point" if not bad else
              f"{bad} points differ from the RTL")
    return 0 if not bad else 1


def arty(args) -> int:
    from sw.research import sweep as sw_sweep
    work = ROOT / "build" / "bench_sweep"
    space = sw_sweep.SweepSpace(k=(8, 16), pe_per_lane=(1, 2), fire_div=(1, 4),
                                batch_depth=(1,), T=(2, 3, 4, 6), weight_bits=(4, 6, 8))
    config = sw_sweep.SweepConfig(net="digits", board="arty_a7", stage="yosys", work_dir=work,
                                  hidden=tuple(args.hidden), epochs=args.epochs,
                                  samples=args.samples, space=space)
    storage = sw_sweep.open_storage(str(work / "arty.db"), work)
    t0 = time.time()

    def progress(t):
        print(f"  trial {t.number}: {t.state.name.lower()} {t.params} "
              f"{t.user_attrs.get('seconds', '')} s {t.user_attrs.get('pruned', '')}", flush=True)

    sw_sweep.run_worker(config, storage, "arty", args.trials, progress=progress)
    study = sw_sweep.open_study(storage, "arty")
    print(f"sweep: {time.time() - t0:.0f} s\n")
    print(sw_sweep.format_table(study))
    plot = sw_sweep.plot_front(study, work / "arty_pareto.png")
    print(f"plot: {plot}")
    if args.rtl:
        print("\nRTL confirmation of each Pareto point's cycles (its own core, Verilator):")
        sw_sweep.confirm_front_on_rtl(
            study, config, samples=args.rtl_samples,
            progress=lambda n, v: print(f"  trial {n}: {v['samples']} samples, model "
                                        f"{v['model']:.1f}, RTL {v['rtl']:.1f} cycles per "
                                        f"inference, {'==' if v['equal'] else '!='}",
                                        flush=True))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--networks", type=int, default=20)
    v.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bitbudget")
    b.add_argument("--budgets", type=int, nargs="+", default=[16, 24, 32])
    b.add_argument("--hidden", type=int, nargs="+", default=[64])
    b.add_argument("--epochs", type=int, default=40)
    b.add_argument("--samples", type=int, default=100)
    b.add_argument("--rtl", action="store_true")
    a = sub.add_parser("arty")
    a.add_argument("--trials", type=int, default=12)
    a.add_argument("--hidden", type=int, nargs="+", default=[64])
    a.add_argument("--epochs", type=int, default=40)
    a.add_argument("--samples", type=int, default=360)
    a.add_argument("--rtl", action="store_true")
    a.add_argument("--rtl-samples", type=int, default=8)
    args = ap.parse_args(argv)
    return {"validate": validate, "bitbudget": bitbudget, "arty": arty}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
