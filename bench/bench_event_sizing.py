"""Sizing event-driven issuing (issue: cycles that follow spikes) before building it.

    python bench/bench_event_sizing.py [--images 256] [--draws 200] [--seed 0]

A model, not the RTL: it counts the beats one pass of a dense layer takes (the PE array's
busy cycles; the walk, fill and drain come on top) under three ways of issuing a layer's input,
for ``k`` lanes and two bit-planes per beat as on the Arty and ULX3S presets:

* **today** (``hw/core/issuer.py``): one beat per ``k``-input block and pair of planes with a
  spike in any of its lanes (:func:`sw.research.cycle_model.chunk_plane_counts`, the count the
  cycle model checks against the RTL with ``==``); a pass has at least one beat.
* **A, per-lane lists of (block, pair)**: every lane walks its own list of the blocks where its
  input spikes in the pair, all lanes on the same pair; a beat takes the next entry of every
  lane, so a pair costs the longest lane's list. One weight read per lane per beat, each lane at
  its own address.
* **B, per-lane lists per plane, two reads per lane**: as A, one plane at a time, two entries
  of a lane per beat (a block RAM's two ports), so a plane costs half the longest list.

It prints beats per pass on Bernoulli spikes (784 inputs at the densities the issue names) and
on the inputs the 784-128-128-10 MNIST MLP (``sw.research.zoo``) sees on real test images: the
packed images for layer 1 and the golden model's spikes for the hidden layers. Either scheme
needs a weight memory addressed per lane and the lists built once per layer and replayed on each
pass; neither is built (docs/architecture.md, "Event-driven issuing").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.golden.model import run_network  # noqa: E402
from sim.golden.packing import popcount  # noqa: E402
from sw.research.cycle_model import chunk_plane_counts  # noqa: E402

K = 16  # lanes (inputs per block) of the presets
N_PE = 16  # PEs (outputs per pass) of the Arty A7-35T and ULX3S presets
PLANES = 2  # bit-planes per beat


def planes_of(a, T: int, k: int = K) -> np.ndarray:
    """Packed words ``(n, n_in)`` as spike bits ``(n, T, blocks, k)``, padded to whole blocks;
    plane ``q`` is bit ``q`` of the word."""
    a = np.asarray(a, dtype=np.int64)
    n, n_in = a.shape
    blocks = -(-n_in // k)
    pad = np.zeros((n, blocks * k), dtype=np.int64)
    pad[:, :n_in] = a
    bits = (pad[:, None, :] >> np.arange(T)[None, :, None]) & 1
    return bits.reshape(n, T, blocks, k).astype(bool)


def beats_today(a, T: int) -> np.ndarray:
    """Beats of one pass per sample, as the core issues them."""
    return np.maximum(chunk_plane_counts(a, T, K, PLANES).sum(axis=1), 1)


def beats_lane_pairs(a, T: int) -> np.ndarray:
    """Scheme A: per pair of planes, the longest lane's list of blocks with a spike in it."""
    s = planes_of(a, T)
    n, _, blocks, k = s.shape
    pairs = -(-T // PLANES)
    full = np.zeros((n, pairs * PLANES, blocks, k), dtype=bool)
    full[:, :T] = s
    per_pair = full.reshape(n, pairs, PLANES, blocks, k).any(axis=2)  # (n, pair, block, lane)
    return np.maximum(per_pair.sum(axis=2).max(axis=2).sum(axis=1), 1)


def beats_lane_planes(a, T: int) -> np.ndarray:
    """Scheme B: per plane, half the longest lane's list (two entries of a lane per beat)."""
    s = planes_of(a, T)
    longest = s.sum(axis=2).max(axis=2)  # (n, plane)
    return np.maximum((-(-longest // 2)).sum(axis=1), 1)


def density(a, T: int) -> float:
    a = np.asarray(a, dtype=np.int64)
    return float(popcount(a & ((1 << T) - 1)).sum() / (a.size * T))


def row(name: str, a, T: int) -> str:
    today, la, lb = (f(a, T).mean() for f in (beats_today, beats_lane_pairs, beats_lane_planes))
    return (f"{name:<34} {density(a, T):>7.3f} {today:>8.1f} {la:>8.1f} {today / la:>6.2f}x "
            f"{lb:>8.1f} {today / lb:>6.2f}x")


HEADER = (f"{'input':<34} {'density':>7} {'today':>8} {'A':>8} {'':>7} {'B':>8}\n"
          f"{'':<34} {'':>7} {'beats':>8} {'beats':>8} {'gain':>7} {'beats':>8} {'gain':>7}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256, help="MNIST test images (of 1,000)")
    ap.add_argument("--draws", type=int, default=200, help="Bernoulli draws per density")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    T = 4
    t0 = time.perf_counter()
    print(f"beats per pass of a dense layer, k = {K} lanes, {PLANES} planes per beat, T = {T} "
          f"(a model of the issuer, not the RTL; the walk, fill and drain come on top)")
    print("  today: one beat per block and pair of planes with a spike; A: per-lane lists of "
          "(block, pair); B: per-lane lists per plane, two reads per lane")
    print(f"\nBernoulli spikes, 784 inputs, {args.draws} draws per density (seed {args.seed})")
    print(HEADER)
    rng = np.random.default_rng(args.seed)
    for d in (1.0, 0.5, 0.35, 0.2, 0.05):
        bits = rng.random((args.draws, 784, T)) < d
        a = (bits * (1 << np.arange(T))).sum(axis=2)
        print(row(f"density {d}", a, T))

    from sw.research.zoo import mnist_mlp_int_network
    net, x, _ = mnist_mlp_int_network(T=T)
    x = x[:args.images]
    res = run_network(net, x)
    print(f"\nMNIST MLP 784-128-128-10 (sw.research.zoo), {len(x)} test images: each layer's input")
    print(HEADER)
    inputs = [x] + [r.output for r in res.layers[:-1]]
    totals = np.zeros(3)
    for i, (layer, a) in enumerate(zip(net.layers, inputs, strict=True)):
        n_out, n_in = layer.weight.shape
        a = a.reshape(len(x), -1)
        print(row(f"layer {i + 1} ({n_in} -> {n_out})", a, T))
        passes, blocks = -(-n_out // N_PE), -(-n_in // K)
        # Per inference: every pass issues its beats; A and B also walk the blocks once per
        # layer to build the lists (today's walk reads every block on every pass, hidden under
        # the beats).
        totals += [passes * beats_today(a, T).mean(),
                   passes * beats_lane_pairs(a, T).mean() + blocks,
                   passes * beats_lane_planes(a, T).mean() + blocks]
    from boards import BOARDS
    from sw.research.cycle_model import predict_cycles
    params = BOARDS["arty_a7"].params
    model = np.mean([predict_cycles(net, x[i:i + 1], params).sum() for i in range(len(x))])
    print(f"\nper inference ({N_PE} PEs: passes x beats, plus one walk of the blocks per layer "
          f"for A and B):")
    print(f"  today {totals[0]:.1f} beats of the cycle model's {model:.1f} cycles (Arty A7-35T "
          f"preset; the rest is walk, fill, drain and firing)")
    for name, t in (("A", totals[1]), ("B", totals[2])):
        print(f"  {name}     {t:.1f} beats and list walks: {totals[0] - t:.1f} fewer, so about "
              f"{model - (totals[0] - t):.1f} cycles if nothing else moved")
    print(f"\n{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
