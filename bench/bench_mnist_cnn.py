"""The MNIST CNN at T time steps on mnist-5k: float, SpikePack and integer accuracy.

Trains the float ReLU CNN, the SpikePack CNN directly, and the converted SpikePack CNNs (ReLU with
calibrated thresholds, ClipFloor exactly), quantizes each, and prints per variant the float and
integer accuracy on the 1,000 held-out images, whether the integer torch model equals the golden
model on every test image, the mean spikes per image of each layer, and the wall time.

    python bench/bench_mnist_cnn.py [--epochs 12] [--T 4] [--seed 0] [--threads 1] [--shift 2]

On a busy two-core machine ``--threads 1`` trained about three times faster than 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sw.research.cnn_experiment import VARIANTS, train_cnn_all  # noqa: E402
from sw.train.conv_models import cnn, mnist_cnn_blocks  # noqa: E402
from sw.train.datasets import load_dataset  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12, help="epochs per model (default 12)")
    ap.add_argument("--T", type=int, default=4, help="time steps (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--shift", type=int, default=2,
                    help="train on images shifted by up to this many pixels (default 2)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    ds = load_dataset("mnist-5k", seed=args.seed)
    blocks = mnist_cnn_blocks()
    model = cnn(ds.image_shape, blocks, ds.n_classes, args.T)
    n_weights = sum(m.weight.numel() for m in model.modules() if hasattr(m, "weight")
                    and isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    print(f"mnist-5k: {len(ds.y_train)} train / {len(ds.y_test)} test; T={args.T}; "
          f"{n_weights} weights; epochs={args.epochs}; shift={args.shift}; seed={args.seed}")
    n_models = 1 + len(args.variants) - ("converted_relu" in args.variants)
    bar = tqdm(total=n_models * args.epochs, unit="epoch", file=sys.stdout)

    def progress(name, epoch, loss, acc):
        bar.set_description(name)
        bar.set_postfix(loss=f"{loss:.3f}", train_acc=f"{acc:.3f}")
        bar.update(1)

    res = train_cnn_all(ds, args.T, blocks, epochs=args.epochs, seed=args.seed,
                        variants=args.variants, shift=args.shift, progress=progress)
    bar.close()
    print(f"\nfloat ReLU ANN: {res.ann_accuracy:.4f}")
    print(f"{'variant':22s} {'float':>7s} {'integer':>8s} {'int-float':>9s} "
          f"{'torch==golden':>14s}  spikes per layer (mean per image)")
    for name, lvl in res.levels.items():
        spikes = " ".join(f"{s:.0f}" for s in res.spikes_per_layer[name])
        print(f"{name:22s} {lvl.float_accuracy:7.4f} {lvl.int_accuracy:8.4f} "
              f"{100 * (lvl.int_accuracy - lvl.float_accuracy):+8.2f}pt "
              f"{lvl.int_torch_agrees:>6d}/{res.n_test:<6d}  {spikes}")
    for name, lvl in res.levels.items():
        print(f"\n{name}: quantization report\n{lvl.report.table()}")
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
