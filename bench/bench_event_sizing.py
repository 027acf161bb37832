"""Sizing event-driven issuing (issue: cycles that follow spikes) before building it.

    python bench/bench_event_sizing.py [--images 256] [--draws 200] [--seed 0]

A model, not the RTL: it counts the beats one pass of a dense layer takes (the PE array's
busy cycles; the walk, fill and drain come on top) under three ways of issuing a layer's input,
for ``k`` lanes and ``P`` bit-planes per beat, once for each preset's ``P`` (the Arty A7-35T's
2, the ULX3S's 4):

* **today** (``hw/core/issuer.py``): one beat per ``k``-input block and group of ``P`` planes
  with a spike in any of its lanes (:func:`sw.research.cycle_model.chunk_plane_counts`, the
  count the cycle model checks against the RTL with ``==``); a pass has at least one beat.
* **A, per-lane lists of (block, group)**: every lane walks its own list of the blocks where its
  input spikes in the group of ``P`` planes, all lanes on the same group; a beat takes the next
  entry of every lane, so a group costs the longest lane's list. One weight read per lane per
  beat, each lane at its own address: the dense case takes today's beats.
* **B, per-lane lists per plane, P reads per lane**: as A, one plane at a time, ``P`` entries
  of a lane per beat, so a plane costs ``1 / P`` of the longest list.

Beside A it prints A's **ceiling**: the beats if no lane waited for another (the mean lane's
list instead of the longest). No design that reads one weight per lane per beat, for the
``P`` planes of one input, does better; lanes that take any input (not their own) would
need every weight readable from every lane.

It prints beats per pass on Bernoulli spikes (784 inputs at the densities the issue names) and
on the inputs the 784-128-128-10 MNIST MLP (``sw.research.zoo``) sees on real test images: the
packed images for layer 1 and the golden model's spikes for the hidden layers, in their own
order and in the block order the compiler plans from the training images
(``sw.compile.block_order``, which today's issuing already uses). Either scheme needs a weight
memory addressed per lane and the lists built once per layer and replayed on each pass; neither
is built (docs/results.md, "Event-driven issuing").
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
PRESETS = ("arty_a7", "ulx3s")  # planes per beat 2 and 4


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


def beats_today(a, T: int, planes: int) -> np.ndarray:
    """Beats of one pass per sample, as the core issues them."""
    return np.maximum(chunk_plane_counts(a, T, K, planes).sum(axis=1), 1)


def lane_group_lists(a, T: int, planes: int) -> np.ndarray:
    """Scheme A's list lengths: ``(n, group, lane)``, the blocks where the lane's input spikes
    in the group of ``planes`` planes."""
    s = planes_of(a, T)
    n, _, blocks, k = s.shape
    groups = -(-T // planes)
    full = np.zeros((n, groups * planes, blocks, k), dtype=bool)
    full[:, :T] = s
    return full.reshape(n, groups, planes, blocks, k).any(axis=2).sum(axis=2)


def beats_lane_groups(a, T: int, planes: int) -> np.ndarray:
    """Scheme A: per group of planes, the longest lane's list."""
    return np.maximum(lane_group_lists(a, T, planes).max(axis=2).sum(axis=1), 1)


def beats_lane_groups_ceiling(a, T: int, planes: int) -> np.ndarray:
    """Scheme A with no lane waiting for another: per group, the mean lane's list."""
    return np.maximum(lane_group_lists(a, T, planes).mean(axis=2).sum(axis=1), 1)


def beats_lane_planes(a, T: int, planes: int) -> np.ndarray:
    """Scheme B: per plane, ``1 / planes`` of the longest lane's list (``planes`` reads a lane)."""
    s = planes_of(a, T)
    longest = s.sum(axis=2).max(axis=2)  # (n, plane)
    return np.maximum((-(-longest // planes)).sum(axis=1), 1)


SCHEMES = (beats_today, beats_lane_groups, beats_lane_groups_ceiling, beats_lane_planes)


def density(a, T: int) -> float:
    a = np.asarray(a, dtype=np.int64)
    return float(popcount(a & ((1 << T) - 1)).sum() / (a.size * T))


def row(name: str, a, T: int, planes: int) -> str:
    today, la, ceil, lb = (f(a, T, planes).mean() for f in SCHEMES)
    return (f"{name:<34} {density(a, T):>7.3f} {today:>8.1f} {la:>8.1f} {today / la:>6.2f}x "
            f"{today / ceil:>8.2f}x {lb:>8.1f} {today / lb:>6.2f}x")


HEADER = (f"{'input':<34} {'density':>7} {'today':>8} {'A':>8} {'':>7} {'A ceiling':>9} "
          f"{'B':>8}\n"
          f"{'':<34} {'':>7} {'beats':>8} {'beats':>8} {'gain':>7} {'gain':>9} {'beats':>8} "
          f"{'gain':>7}")


def layer_inputs(net, x) -> list:
    """Each layer's input ``(n, n_in)``: the images, then the golden model's spikes."""
    res = run_network(net, x)
    return [a.reshape(len(x), -1) for a in [x] + [r.output for r in res.layers[:-1]]]


def per_inference(net, x, T: int, planes: int) -> np.ndarray:
    """Beats per inference (``N_PE`` PEs: passes x beats, plus one walk of the blocks per
    layer for A and B) under today, A and B."""
    totals = np.zeros(3)
    for layer, a in zip(net.layers, layer_inputs(net, x), strict=True):
        n_out, n_in = layer.weight.shape
        passes, blocks = -(-n_out // N_PE), -(-n_in // K)
        # today's walk reads every block on every pass, hidden under the beats; A and B walk
        # the blocks once per layer to build the lists
        totals += [passes * beats_today(a, T, planes).mean(),
                   passes * beats_lane_groups(a, T, planes).mean() + blocks,
                   passes * beats_lane_planes(a, T, planes).mean() + blocks]
    return totals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256, help="MNIST test images (of 1,000)")
    ap.add_argument("--draws", type=int, default=200, help="Bernoulli draws per density")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    T = 4
    t0 = time.perf_counter()
    from boards import BOARDS
    from sw.compile.block_order import ordered_network, plan_block_order
    from sw.research.cycle_model import predict_cycles
    from sw.research.zoo import mnist_mlp_int_network
    from sw.train.data import load_split

    net, x, _ = mnist_mlp_int_network(T=T)
    x = x[:args.images]
    x_train, _ = load_split("mnist-5k", seed=0).packed(net.T)
    bits = {}
    rng = np.random.default_rng(args.seed)
    for d in (1.0, 0.5, 0.35, 0.2, 0.05):
        b = rng.random((args.draws, 784, T)) < d
        bits[d] = (b * (1 << np.arange(T))).sum(axis=2)
    print(f"beats per pass of a dense layer, k = {K} lanes, T = {T} (a model of the issuer, not "
          f"the RTL; the walk, fill and drain come on top)")
    print("  today: one beat per block and group of P planes with a spike; A: per-lane lists "
          "of (block, group), one read per lane; A ceiling: A with no lane waiting for another; "
          "B: per-lane lists per plane, P reads per lane")
    for board in PRESETS:
        params = BOARDS[board].params
        P = params.planes_per_beat
        print(f"\n=== {board}: P = {P} planes per beat, {N_PE * K * P:,} adds per cycle ===")
        print(f"\nBernoulli spikes, 784 inputs, {args.draws} draws per density (seed {args.seed})")
        print(HEADER)
        for d, a in bits.items():
            print(row(f"density {d}", a, T, P))
        order = plan_block_order(net, x_train, params)
        dnet, dx = ordered_network(net, order), order.inputs(x)
        for title, n_, x_ in (("in input order", net, x),
                              ("in block order (sw.compile.block_order, as the core runs it)",
                               dnet, dx)):
            print(f"\nMNIST MLP 784-128-128-10 (sw.research.zoo), {len(x)} test images, "
                  f"{title}: each layer's input")
            print(HEADER)
            for i, (layer, a) in enumerate(zip(n_.layers, layer_inputs(n_, x_), strict=True)):
                n_out, n_in = layer.weight.shape
                print(row(f"layer {i + 1} ({n_in} -> {n_out})", a, T, P))
            totals = per_inference(n_, x_, T, P)
            model = np.mean([predict_cycles(n_, x_[i:i + 1], params).sum()
                             for i in range(len(x_))])
            print(f"per inference, one image a run ({N_PE} PEs: passes x beats, plus one walk "
                  f"of the blocks per layer for A and B):")
            print(f"  today {totals[0]:.1f} beats of the cycle model's {model:.1f} cycles "
                  f"({board} preset; the rest is walk, fill, drain and firing)")
            for name, t in (("A", totals[1]), ("B", totals[2])):
                print(f"  {name}     {t:.1f} beats and list walks: {totals[0] - t:.1f} fewer, so "
                      f"about {model - (totals[0] - t):.1f} cycles if nothing else moved")
    print(f"\n{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
