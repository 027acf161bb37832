"""Reliability figures of the RTL (issue 13), measured: R1 malformed frames, R2 random networks,
R5 a driver soak, and the link's run timeout and overrun.

    python bench/bench_reliability.py [r1] [r2] [r5] [paths] [--malformed N] [--networks N]
        [--inferences N] [--r2-preset arty_a7] [--r5-preset medium] [--seed S]

Without a figure named, runs all four at full size (R1 10,000 malformed frames, R2 1,000 networks
on the Arty A7 build, R5 10,000 inferences): that takes long on a small machine (see
docs/protocol.md for measured times). Prints each figure's counts, hangs, mismatches and wall time;
the seed is printed first (replay with --seed). Builds go to build/ (shared with the tests).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boards import CORE_PRESETS  # noqa: E402
from sim.tb import reliability  # noqa: E402


def _rate(n, seconds):
    return f"{n / seconds:.2f}/s" if seconds > 0 else "-"


def r1(args, seed):
    f = reliability.run_r1(args.malformed, seed)
    refused = sum(n for status, n in f["replies"].items() if status != "OK")
    print(f"R1 malformed frames: {f['malformed']} malformed of {f['frames']} frames sent, "
          f"{refused} error replies, hangs {f['hangs']}, RAM == model after the run "
          f"(bus writes {f['bus_writes']}, all from valid frames), "
          f"{f['sim_us'] / 1e3:.1f} ms simulated, {f['wall_s']:.0f} s wall "
          f"({_rate(f['frames'], f['wall_s'])} frames; {f['total_wall_s']:.0f} s with the build)")
    print(f"   kinds: {json.dumps(f['kinds'])}")
    print(f"   replies: {json.dumps(f['replies'])}")
    return f


def r2(args, seed):
    f = reliability.run_r2(args.networks, seed, preset=args.r2_preset)
    print(f"R2 random networks ({args.r2_preset}): {f['networks']} networks, {f['batches']} "
          f"batches, {f['samples']} samples, mismatched networks {f['mismatched_networks']}, "
          f"{f['wall_s']:.0f} s wall ({_rate(f['networks'], f['wall_s'])} networks; "
          f"{f['total_wall_s']:.0f} s with the build)")
    return f


def r5(args, seed):
    f = reliability.run_r5(args.inferences, seed, preset=args.r5_preset)
    print(f"R5 soak ({args.r5_preset}, network T={f['network']['T']} sizes "
          f"{f['network']['sizes']}): {f['inferences']} inferences in {f['runs']} runs, output "
          f"mismatches {f['output_mismatches']}, counter mismatches {f['counter_mismatches']}, "
          f"resends {f['resends']}, {f['core_cycles']} core cycles, {f['sim_ms']:.1f} ms "
          f"simulated, {f['wall_s']:.0f} s wall ({_rate(f['inferences'], f['wall_s'])} "
          f"inferences; {f['total_wall_s']:.0f} s with the build)")
    return f


def paths(args, seed):
    f = reliability.run_link_paths()
    t = f["run_timeout"]
    print(f"run timeout: RUN of {t['batch']} samples answered ERR_RUN_TIMEOUT after "
          f"{t['reply_after_cycles']} cycles (run_timeout {t['run_timeout']}), core aborted, "
          f"next RUN OK; overrun: replies {f['overrun']['reply_order']}, the third frame wrote "
          f"nothing; {f['total_wall_s']:.0f} s wall with the build")
    return f


FIGURES = {"r1": r1, "r2": r2, "r5": r5, "paths": paths}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figures", nargs="*", metavar="figure",
                    help=f"which figures to measure, of {', '.join(FIGURES)} (default: all)")
    ap.add_argument("--malformed", type=int, default=10_000, help="R1: malformed frames")
    ap.add_argument("--networks", type=int, default=1_000, help="R2: random networks")
    ap.add_argument("--inferences", type=int, default=10_000, help="R5: inferences")
    ap.add_argument("--r2-preset", default="arty_a7", choices=sorted(CORE_PRESETS))
    ap.add_argument("--r5-preset", default="medium", choices=sorted(CORE_PRESETS))
    ap.add_argument("--seed", type=int, default=None, help="base seed (default: random)")
    args = ap.parse_args(argv)
    for name in args.figures:
        if name not in FIGURES:
            ap.error(f"unknown figure {name!r}: choose from {', '.join(FIGURES)}")
    for name in ("malformed", "networks", "inferences"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    seed = random.randrange(1 << 31) if args.seed is None else args.seed
    print(f"seed {seed}")
    failed = []
    for name in args.figures or list(FIGURES):
        try:
            FIGURES[name](args, seed)
        except AssertionError as e:
            print(f"{name}: FAILED: {e}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
