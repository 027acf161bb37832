"""Training time per epoch against T: SpikePack, PSU and LIF (BPTT), side by side in one run.

Same data (digits, 1,437 training samples, packed T-bit inputs), same MLP sizes, same batch size
and optimizer; only the neuron differs. After a warm-up epoch the three models train one epoch
in turn for ``--epochs`` rounds; each figure is the minimum over the rounds (least disturbed by
other jobs on a shared machine).

    python bench/bench_training.py [--T 1 4 8 16] [--hidden 128] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sw.research.seed_experiment import time_epochs_side_by_side  # noqa: E402
from sw.train.data import load_digits_split  # noqa: E402

MODELS = ("spikepack", "psu", "lif")


def bench(Ts, hidden, epochs) -> list[dict]:
    split = load_digits_split(0)
    rows = []
    for T in Ts:
        rows.append({"T": T, **time_epochs_side_by_side(split, T, MODELS, hidden=hidden,
                                                         epochs=epochs)})
    return rows


def format_rows(rows) -> str:
    lines = [f"{'T':>3s}  {'SpikePack s/ep':>14s}  {'PSU s/ep':>9s}  {'LIF s/ep':>9s}  "
             f"{'SpikePack/LIF':>13s}  {'PSU/LIF':>8s}"]
    for r in rows:
        lines.append(f"{r['T']:3d}  {r['spikepack']:14.3f}  {r['psu']:9.3f}  {r['lif']:9.3f}  "
                     f"{r['spikepack'] / r['lif']:13.2f}  {r['psu'] / r['lif']:8.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--hidden", type=int, nargs="+", default=[128])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    for T in args.T:
        if not 1 <= T <= 16:
            p.error(f"--T must be in 1..16, got {T}")
    torch.set_num_threads(args.threads)
    print(f"digits, MLP 64-{'-'.join(map(str, args.hidden))}-10, batch 64, Adam; min of "
          f"{args.epochs} interleaved epochs, {args.threads} torch thread(s)")
    print(format_rows(bench(args.T, tuple(args.hidden), args.epochs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
