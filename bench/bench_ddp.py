"""Data-parallel training against one process: how far apart, in float and in integers.

For each seed, ``torchrun --nproc-per-node N -m sw.cli train --distributed`` trains on digits (on
127.0.0.1, gloo, CPU) and the same settings train here in one process; the script prints
``max |w_ddp - w_single|`` of the float ANN and SpikePack models, how many integer weights,
biases and thresholds of the quantized networks differ, and both golden test accuracies.
``--threads-baseline`` prints the same figures for two single-process runs that differ only in
torch's thread count (1 vs 2): the same kind of float summation-order difference, for scale.

    python bench/bench_ddp.py [--T 4] [--hidden 128 64] [--epochs 60] [--seeds 0 1 2] [--nproc 2]
                              [--threads-baseline]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sw.research.experiment import train_all  # noqa: E402
from sw.research.parallel_check import (  # noqa: E402
    compare_with_single,
    int_difference,
    max_weight_difference,
    run_distributed_train,
)
from sw.train.data import load_split  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads-baseline", action="store_true",
                   help="also compare one process on 1 thread with one on 2 threads")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = "-".join(map(str, ["64", *args.hidden, "10"]))
    print(f"digits, T={args.T}, sizes {sizes}, {args.epochs} epochs, batch 64, "
          f"{args.nproc} processes (gloo, CPU) vs 1")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            run_distributed_train(["--T", args.T, "--hidden", *args.hidden, "--epochs",
                                   args.epochs, "--seed", seed], d, nproc=args.nproc,
                                  timeout_s=7200)
            t1 = time.perf_counter()
            split = load_split("digits", seed=seed)
            c = compare_with_single(d, split, args.T, hidden=args.hidden, epochs=args.epochs,
                                    seed=seed)
            t2 = time.perf_counter()
        print(f"\nseed {seed} (torchrun {t1 - t0:.0f} s for 3 models, one process "
              f"{t2 - t1:.0f} s for 2)")
        print("  " + c.table().replace("\n", "\n  "))
        if args.threads_baseline:
            runs = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                runs.append(train_all(split, args.T, hidden=args.hidden, epochs=args.epochs,
                                      seed=seed, variants=("direct",)))
            torch.set_num_threads(1)
            a, b = runs
            d = int_difference(a.levels["direct"].net, b.levels["direct"].net)
            print(f"  baseline, one process, 1 thread vs 2 threads: max |dw| ann "
                  f"{max_weight_difference(a.ann, b.ann):.3e}, spikepack "
                  f"{max_weight_difference(a.levels['direct'].model, b.levels['direct'].model):.3e}"
                  f"; integer {d.weights_differ}/{d.n_weights} weights differ (max "
                  f"{d.max_weight_step} step), {d.biases_differ} biases, {d.thetas_differ} "
                  f"thresholds; accuracy {100 * a.levels['direct'].int_accuracy:.2f} vs "
                  f"{100 * b.levels['direct'].int_accuracy:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
