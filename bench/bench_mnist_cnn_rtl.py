"""The MNIST CNN on the core's RTL (Verilator): cycles, adds per cycle, accuracy, Bit Budget.

    python bench/bench_mnist_cnn_rtl.py [--n 64] [--preset NAME] [--T 4] [--simulator verilator]

Runs the trained integer MNIST CNN (``sw.research.zoo.mnist_cnn_int_network``: conv 1->16 k5
pad 2 + max pool 2, conv 16->32 k5 pad 2 + max pool 2, dense 1568 -> 10 readout) on the first
``--n`` held-out mnist-5k images, one image per batch run, through the core's RTL, and checks with
``==`` the outputs and the per-image ``spikes`` and ``skipped`` counters against the golden model
(``sim.tb.random_nets.expected_conv_counters``) and the ``cycles`` counters against the cycle
model (``sw.research.cycle_model.predict_cycles``). Prints per layer the mean cycles per image,
the synaptic adds per image (``sw.research.cnn_rtl.array_adds``), adds per cycle against the
array's peak ``n_pe k`` and against what the layer's lanes allow, the three terms the cycles are
bounded by (fetcher walk, plane-serial beats, firing array), and the Bit Budget estimate
(``sw.research.bitbudget.network_cost``) beside them; then the totals, images/s at 100 MHz, the
accuracy, and what the cycle model predicts for the same images on the ULX3S preset's array.
"exact" is printed only for what was compared with ``==`` and was equal.

The core: ``--preset NAME`` (``boards.CORE_PRESETS``), by default the Arty A7 preset if the
compiler accepts the CNN for it, else the Arty array with spike memory for feature maps
(``sw.research.cnn_rtl.feature_map_core``); the script says which ran and why. One Verilator
build per parameter set, cached in build/mnist_cnn_rtl/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from boards import BOARDS, CORE_PRESETS  # noqa: E402
from hw.core.conv_walk import conv_setup_cycles  # noqa: E402
from sim.golden.model import run_network  # noqa: E402
from sim.rtl.runner import param_tag  # noqa: E402
from sim.tb.rtl_checks import exactness_checks  # noqa: E402
from sw.compile.errors import DoesNotFitError  # noqa: E402
from sw.compile.program_image import build_image  # noqa: E402
from sw.research.bitbudget import network_cost  # noqa: E402
from sw.research.cnn_rtl import (  # noqa: E402
    array_adds,
    choose_core,
    feature_map_core,
    layer_terms,
    measure_counters_rtl,
    usable_lanes,
)
from sw.research.cycle_model import predict_cycles  # noqa: E402
from sw.research.zoo import mnist_cnn_int_network  # noqa: E402

CLOCK_HZ = 100e6
#: The issue's targets (issue 15): cycles per image, and the fraction of the peak every conv
#: layer of 16 or more taps x channels reaches.
TARGET_CYCLES = 10_000
TARGET_PEAK = 0.8


def describe(layer) -> str:
    if layer.kind == "conv":
        c_in = layer.in_shape[0]
        pool = f"+pool{layer.pool.kernel}" if layer.pool is not None else ""
        return f"conv {c_in}->{layer.out_channels} k{layer.kernel[0]}p{layer.padding}{pool}"
    return f"dense {layer.n_in}->{layer.n_out}" + (" readout" if layer.readout else "")


def verdict(equal: bool, what: str, n: int) -> str:
    return f"exact ({what}, {n}/{n} images ==)" if equal else f"DIFFERS ({what})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="held-out test images (default 64)")
    ap.add_argument("--preset", default=None, choices=sorted(CORE_PRESETS),
                    help="core build (default: arty_a7 if the CNN fits it, else its array with "
                         "memory for feature maps)")
    ap.add_argument("--T", type=int, default=4, help="time steps of the CNN (default 4)")
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n must be at least 1, not {args.n}")

    net, x_test, y_test = mnist_cnn_int_network(T=args.T)
    if args.n > len(x_test):
        ap.error(f"--n {args.n}: there are {len(x_test)} held-out images")
    x = x_test[:args.n].reshape(args.n, -1)
    y = np.asarray(y_test[:args.n])
    try:
        name, params, why = choose_core(net, args.preset)
    except DoesNotFitError as e:
        print(f"the MNIST CNN does not fit the {args.preset} preset: {e}\n"
              "run without --preset to use the feature-map core", file=sys.stderr)
        return 2
    print(f"MNIST CNN (T={net.T}): " + ", ".join(describe(layer) for layer in net.layers))
    print(f"core: {name}: {params.describe()}")
    print(f"  why: {why}")

    golden = run_network(net, x, acc_bits=params.acc_bits)

    build = ROOT / "build" / "mnist_cnn_rtl" / f"{name}_{param_tag(params)}"
    print(f"\nrunning {len(x)} images on the RTL ({args.simulator}, build "
          f"{build.relative_to(ROOT)}) ...", flush=True)
    t0 = time.perf_counter()
    log = build / "last_run.log"
    rtl = measure_counters_rtl(net, x, params, build_dir=build, simulator=args.simulator,
                               log_file=log)
    print(f"  {time.perf_counter() - t0:.0f} s wall (Verilator build included if it was made; "
          f"simulation log: {log.relative_to(ROOT)})")

    n = len(x)
    checks = exactness_checks(net, x, params, golden, rtl)
    print()
    for ok, what in checks:
        print("  " + verdict(ok, what, n))
    all_exact = all(ok for ok, _ in checks)

    adds = array_adds(net, x, params, golden)
    terms = layer_terms(net, x, params, golden)
    lanes = usable_lanes(net, params)
    cost = network_cost(net, "spikepack", x=x)
    peak = params.synapses_per_cycle
    lanes_peak = params.n_pe * params.k  # what one plane of a beat can fill
    cyc = rtl.cycles.mean(axis=0)

    planes = f" x {params.planes_per_beat} planes" if params.planes_per_beat > 1 else ""
    print(f"\nper layer, means per image (peak {params.n_pe} PEs x {params.k} lanes{planes} = "
          f"{peak} adds/cycle):")
    print(f"  {'layer':<24} {'cycles':>8} {'adds':>9} {'adds/cyc':>8} {'of peak':>7} "
          f"{'lanes':>7} {'PEs':>5} {'usable':>6} {'passes':>6} {'cyc/pass':>8} {'walk':>7} "
          f"{'beats':>7} {'fire':>7} {'bound':>5}")
    for li, layer in enumerate(net.layers):
        rate = adds[:, li].mean() / cyc[li]
        lane, pe = lanes[li]
        t = {key: terms[key][:, li].mean() for key in ("walk", "beats", "fire")}
        bound = max(t, key=t.get)
        passes = terms["passes"][0, li]
        print(f"  {describe(layer):<24} {cyc[li]:>8.0f} {adds[:, li].mean():>9.0f} "
              f"{rate:>8.1f} {rate / peak:>7.2f} {lane:>4.1f}/{params.k:<2} "
              f"{pe:>2.0f}/{params.n_pe:<2} {lane * pe / lanes_peak:>6.2f} {passes:>6} "
              f"{cyc[li] / passes:>8.1f} {t['walk']:>7.0f} {t['beats']:>7.0f} {t['fire']:>7.0f}"
              f" {bound:>5}")
    print("  (usable: the fraction of the peak the layer's lanes and PEs allow; passes: per "
          "computed position, ceil(C_out / n_pe); walk: fetcher cycles, a tap and chunk each, "
          "padding taps take none; beats: one per non-zero bit-plane of a block read (per "
          "non-zero pair of planes with two planes per beat); fire: firing-array cycles; "
          "bound: the largest of the three)")

    print("\nper layer, means per image: counters and the Bit Budget estimate "
          "(spikepack, b_w 8, b_a 1, T steps):")
    print(f"  {'layer':<24} {'spikes':>8} {'skipped':>8} {'compute kbit':>12} {'SynOps':>9} "
          f"{'storage kbit':>12} {'energy nJ':>9}")
    for li, (layer, c) in enumerate(zip(net.layers, cost.layers, strict=True)):
        print(f"  {describe(layer):<24} {rtl.spikes[:, li].mean():>8.1f} "
              f"{rtl.skipped[:, li].mean():>8.1f} {c.compute_bits / 1e3:>12.1f} "
              f"{c.synops:>9.0f} {c.storage_bits / 1e3:>12.1f} {c.energy_pj / 1e3:>9.3f}")

    total = rtl.total_cycles.mean()
    rtl_acc = float(np.mean(np.argmax(rtl.outputs, axis=1) == y))
    gold_acc = float(np.mean(golden.predictions() == y))
    print(f"\ntotal: {total:,.0f} cycles per image (min {rtl.total_cycles.min():,}, max "
          f"{rtl.total_cycles.max():,}); {CLOCK_HZ / total:,.0f} images/s at 100 MHz "
          f"({'exact' if all_exact else 'NOT exact'} against golden and cycle model)")
    mean_adds = adds.sum(axis=1).mean()
    print(f"  adds per image {mean_adds:,.0f}; {mean_adds / total:.1f} adds/cycle = "
          f"{mean_adds / total / peak:.2f} of peak; the same adds at the peak rate would take "
          f"{mean_adds / peak:,.0f} cycles")
    print(f"accuracy on these {n} images: RTL {100 * rtl_acc:.1f} %, golden model "
          f"{100 * gold_acc:.1f} %")
    print(f"Bit Budget: {cost.compute_bits / 1e6:.1f} Mbit compute, "
          f"{cost.storage_bits / 1e3:.0f} kbit storage, {cost.synops:,.0f} SynOps, "
          f"{cost.energy_pj / 1e3:.3f} nJ per image (estimate, compute only)")

    conv = [li for li, layer in enumerate(net.layers)
            if layer.kind == "conv" and layer.fan_in >= 16]
    worst = min(adds[:, li].mean() / cyc[li] / peak for li in conv) if conv else None
    print(f"\ntarget (issue 15): <= {TARGET_CYCLES:,} cycles per image -> measured "
          f"{total:,.0f} ({total / TARGET_CYCLES:.1f}x the target)")
    if worst is not None:
        print(f"target: conv layers of >= 16 taps x channels at >= {TARGET_PEAK} of peak -> "
              f"measured " + ", ".join(f"{describe(net.layers[li])}: "
                                       f"{adds[:, li].mean() / cyc[li] / peak:.2f}"
                                       for li in conv))

    if params != CORE_PRESETS[name.removesuffix("-fmap")]:
        own = CORE_PRESETS[name.removesuffix("-fmap")]
        pred = predict_cycles(net, x, own).sum(axis=1).mean()
        print(f"\ncycle model, {own.n_pe} x {own.k} array with the {name.removesuffix('-fmap')} "
              f"preset's own memories (conv set-up {conv_setup_cycles(own)} cycles instead of "
              f"{conv_setup_cycles(params)}; predicted, not run): {pred:,.0f} cycles per image")

    # The ULX3S preset's array, by the cycle model only (with memory for feature maps if its
    # preset cannot hold the input map).
    ulx = BOARDS["ulx3s"].params
    note = "as preset"
    try:
        build_image(net, ulx)
    except DoesNotFitError:
        ulx, note = feature_map_core(ulx), f"with act_chunks={feature_map_core(ulx).act_chunks}"
    pred = predict_cycles(net, x, ulx)
    ptotal = pred.sum(axis=1).mean()
    print(f"\ncycle model, ULX3S array ({ulx.n_pe} PEs x {ulx.k} lanes, {ulx.fire_units} firing "
          f"units, {note}; predicted, not run): "
          + ", ".join(f"{v:,.0f}" for v in pred.mean(axis=0))
          + f" cycles per layer; {ptotal:,.0f} per image, {CLOCK_HZ / ptotal:,.0f} images/s at "
          "100 MHz")
    return 0 if all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
