"""Sizing event-driven issuing (issue: cycles that follow spikes) before building it.

    python bench/bench_event_sizing.py [--images 256] [--draws 200] [--seed 0]

A model, not the RTL: it counts the beats one pass of a dense layer takes (the PE array's
busy cycles; the walk, fill and drain come on top) when ``k`` lanes (the inputs of a block, the
adder trees' inputs) each read one weight row per beat that serves up to ``P`` bit-planes of
one input (``P`` adder trees per PE). The ways of issuing it compares:

* **today** (``hw/core/issuer.py``): one beat per ``k``-input block and group of ``P`` planes
  with a spike in any of its lanes (:func:`sw.research.cycle_model.chunk_plane_counts`, the
  count the cycle model checks against the RTL with ``==``); a pass has at least one beat.
* **A, per-lane lists, fixed groups**: every lane walks its own list of the inputs that spike
  in the group of planes the array is on; a beat takes the next entry of every lane, so a group
  costs the longest lane's list. Each lane reads its own weight bank at its own address; the
  PE keeps its ``P`` adder trees.
* **A drifting**: as A, but a lane goes on to its next group and pass without waiting for the
  others; the layer waits once, at its end. On pass ``p`` lane ``l`` takes the inputs of lane
  ``(l + p) mod k`` (the weights stored rotated), so a lane with a long list on one pass has
  other lanes' lists on the next. Lanes on different passes cannot share an adder tree: a PE
  needs a sum per lane (or per pass in flight) instead of one tree sum.
* **A bound**: A's reads shared by the lanes with none waiting, the mean lane's list. No design
  whose weight read serves one fixed group of ``P`` planes of one input (``P`` adder trees a PE,
  each on its own planes) takes fewer beats.
* **F, flexible planes**: a lane's beat takes one input and any ``P`` of its spiking planes
  (not a fixed group), so an input with spikes in planes 0 and 3 takes one beat, not two. A
  lane's plane can be any of the ``T``: a PE needs ``T`` adder trees, not ``P``. Lanes wait for
  each other at the end of each pass.
* **F drifting**: F with A drifting's rotation.
* **bound**: the weight-row reads every spike needs, shared over the lanes with none waiting:
  ``sum_i ceil(|S_i| / P) / k`` (``S_i``: input ``i``'s spiking planes). No design that reads
  ``k`` rows a beat, each for at most ``P`` planes of one input, takes fewer beats.

Gains are against the **dense** case (every spike set: the blocks times the groups of planes,
what today takes at density 1), the issue's measure, with today's own gain beside them. The
bench prints them for each board preset's array (``k``, ``P`` and PEs, so the passes of a
784x128 layer) and for the shapes with fewer planes a read and more lanes, at the same adds per
beat, with the block RAM their weight memory needs as per-lane banks (every lane reads, at its
own address, its input's weight for every PE: ``PEs x 8`` bits a lane and beat), beside the
preset's other memories.

Then the inputs the 784-128-128-10 MNIST MLP (``sw.research.zoo``) sees on real test images:
the packed images for layer 1 and the golden model's spikes for the hidden layers, in their own
order and in the block order the compiler plans from the training images
(``sw.compile.block_order``, which today's issuing already uses); gains there are against today.
Last, the MNIST CNN's second layer on the Arty A7-35T's array (the layer that bounds that
network there): the beats per image of its positions' receptive fields. None of the
event-driven designs is built (docs/results.md, "Event-driven issuing").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.golden.model import im2col, run_network  # noqa: E402
from sim.golden.packing import popcount, unpack_bitplanes  # noqa: E402
from sw.research.cycle_model import chunk_plane_counts  # noqa: E402

N_IN, N_OUT, T = 784, 128, 4  # the layer
WEIGHT_BITS = 8
PRESETS = ("arty_a7", "arty_a7_100", "ulx3s")
# Block RAM the preset's build uses in all, in the device's unit (docs/boards.md, the build
# results of 2026-12-04), and the read port width the weight memory is built from: RAMB36 as
# 512 x 72 (simple dual port), DP16KD as 512 x 36.
BRAM_USED = {"arty_a7": 44, "arty_a7_100": 94.5, "ulx3s": 99}
PORT_BITS = {"arty_a7": 72, "arty_a7_100": 72, "ulx3s": 36}
DESIGNS = ("today", "A", "A drifting", "A bound", "F", "F drifting", "bound")


def planes_of(a, T: int, k: int) -> np.ndarray:
    """Packed words ``(n, n_in)`` as spike bits ``(n, T, blocks, k)``, padded to whole blocks;
    plane ``q`` is bit ``q`` of the word (:func:`sim.golden.packing.unpack_bitplanes`, whose
    planes run MSB first, reversed)."""
    a = np.asarray(a, dtype=np.int64)
    n, n_in = a.shape
    blocks = -(-n_in // k)
    pad = np.zeros((n, blocks * k), dtype=np.int64)
    pad[:, :n_in] = a
    bits = np.moveaxis(unpack_bitplanes(pad, T)[::-1], 0, 1)  # (n, T, blocks k)
    return bits.reshape(n, T, blocks, k).astype(bool)


def group_lists(a, T: int, k: int, planes: int) -> np.ndarray:
    """A's list lengths ``(n, group, lane)``: the blocks where the lane's input spikes in the
    group of ``planes`` planes."""
    s = planes_of(a, T, k)
    n, _, blocks, _ = s.shape
    groups = -(-T // planes)
    full = np.zeros((n, groups * planes, blocks, k), dtype=bool)
    full[:, :T] = s
    return full.reshape(n, groups, planes, blocks, k).any(axis=2).sum(axis=2)


def flexible_work(a, T: int, k: int, planes: int) -> np.ndarray:
    """F's beats per lane ``(n, lane)``: ``ceil(spiking planes / planes)`` per input, summed over
    the lane's inputs."""
    spikes = planes_of(a, T, k).sum(axis=1)  # (n, blocks, lane)
    return (-(-spikes // planes)).sum(axis=1)


def drifting(work: np.ndarray, passes: int) -> np.ndarray:
    """Beats per pass ``(n,)`` when lanes wait only at the layer's end: lane ``l`` takes lane
    ``(l + p) mod k``'s inputs on pass ``p``, the layer costs the longest lane's sum."""
    total = sum(np.roll(work, -p, axis=1) for p in range(passes))
    return total.max(axis=1) / passes


def beats(a, T: int, k: int, planes: int, passes: int) -> dict[str, np.ndarray]:
    """Beats of one pass per sample ``(n,)`` under each design."""
    lists = group_lists(a, T, k, planes)
    work = flexible_work(a, T, k, planes)
    return {
        "today": np.maximum(chunk_plane_counts(a, T, k, planes).sum(axis=1), 1),
        "A": lists.max(axis=2).sum(axis=1),
        "A drifting": drifting(lists.sum(axis=1), passes),
        "A bound": lists.sum(axis=1).mean(axis=1),
        "F": work.max(axis=1),
        "F drifting": drifting(work, passes),
        "bound": work.mean(axis=1),
    }


def dense_beats(n_in: int, T: int, k: int, planes: int) -> int:
    """Beats of one pass with every spike set: every block, every group of planes."""
    return -(-n_in // k) * -(-T // planes)


def density(a, T: int) -> float:
    a = np.asarray(a, dtype=np.int64)
    return float(popcount(a & ((1 << T) - 1)).sum() / (a.size * T))


def table(rows, against: str) -> str:
    """``rows``: (name, density, {design: mean beats}, reference beats). Each design's beats and
    its gain against the reference."""
    head = f"{'input':<26} {'density':>7}" + "".join(f" {d:>15}" for d in DESIGNS)
    lines = [head, f"{'':<26} {'':>7}" + f" {'beats   ' + against:>15}" * len(DESIGNS)]
    for name, dens, b, ref in rows:
        lines.append(f"{name:<26} {dens:>7.3f}" + "".join(
            f" {b[d]:>7.1f} {ref / b[d]:>6.2f}x" for d in DESIGNS))
    return "\n".join(lines)


def block_ram(board: str, k: int, n_pe: int, params) -> str:
    """Block RAM of the weight memory as ``k`` per-lane banks (a lane reads the weights of its
    input for every PE at its own address: ``n_pe x 8`` bits a row) beside the preset's other
    memories, against the device."""
    from boards import BOARDS

    port = PORT_BITS[board]
    bank_bits = n_pe * WEIGHT_BITS
    need = k * -(-bank_bits // port)
    today = -(-params.n_pe * params.k * WEIGHT_BITS // port)  # one row of every lane today
    others = BRAM_USED[board] - today
    have = BOARDS[board].capacity.brams
    fits = "fits" if need + others <= have else "does NOT fit"
    return (f"per-lane weight banks: {k} x {bank_bits} bits, {need} block RAMs of {port}-bit "
            f"ports (today one {params.n_pe * params.k * WEIGHT_BITS:,}-bit row: {today}), + "
            f"{others:g} for the other memories = {need + others:g} of the device's {have:g}: "
            f"{fits}")


def conv_beats(a, T: int, k: int, planes: int, passes: int, layer) -> dict[str, np.ndarray]:
    """Beats per image ``(n,)`` of conv ``layer`` on feature maps ``a`` ``(n, C, H, W)`` under
    each design: every position's ``passes`` passes over its receptive field
    (:func:`sim.golden.model.im2col`), each tap a block of ``k`` channels per channel chunk, the
    lanes. Padding taps are all-zero blocks, which no design spends a beat on."""
    cols = im2col(a, layer.kernel, layer.stride, layer.pads)  # (n, H', W', C kh kw), c major
    n, c = len(a), a.shape[1]
    taps = np.swapaxes(cols.reshape(-1, c, layer.kernel[0] * layer.kernel[1]), 1, 2)
    chunked = np.zeros(taps.shape[:2] + (-(-c // k) * k,), dtype=np.int64)
    chunked[..., :c] = taps  # (positions, taps, chunks k): a block per tap and chunk
    rows = chunked.reshape(len(chunked), -1)
    return {name: passes * b.reshape(n, -1).sum(axis=1)
            for name, b in beats(rows, T, k, planes, passes).items()}


def layer_inputs(net, x) -> list:
    """Each layer's input ``(n, n_in)``: the images, then the golden model's spikes."""
    res = run_network(net, x)
    return [a.reshape(len(x), -1) for a in [x] + [r.output for r in res.layers[:-1]]]


def bernoulli(args) -> dict[float, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    out = {}
    for d in (1.0, 0.5, 0.35, 0.2, 0.05):
        b = rng.random((args.draws, N_IN, T)) < d
        out[d] = (b * (1 << np.arange(T))).sum(axis=2)
    return out


def shapes(params) -> list[tuple[str, int, int]]:
    """The preset's array and, at the same adds per beat, the shapes with fewer planes a read:
    (label, lanes, planes)."""
    k, P = params.k, params.planes_per_beat
    out = [(f"the preset: k = {k}, P = {P}", k, P)]
    p = P // 2
    while p >= 1:
        out.append((f"k = {k * P // p}, P = {p}", k * P // p, p))
        p //= 2
    return out


def cnn_layer2(args, params) -> None:
    """The MNIST CNN's second layer (conv 16 -> 32 k5 pad 2 on the pooled 16 x 14 x 14 map),
    the layer that bounds it on the Arty A7-35T: its beats per image under each design."""
    from sw.research.zoo import mnist_cnn_int_network

    net, x, _ = mnist_cnn_int_network(T=T)
    x = x[:min(args.images, 64)]
    a = np.asarray(run_network(net, x).layers[0].output)
    conv = net.layers[1]
    k, P = params.k, params.planes_per_beat
    passes = -(-conv.out_channels // params.n_pe)
    b = conv_beats(a, T, k, P, passes, conv)
    print(f"\n=== arty_a7 (k = {k}, P = {P}): MNIST CNN (sw.research.zoo), its second layer "
          f"(conv {a.shape[1]} -> {conv.out_channels} k{conv.kernel[0]} pad {conv.padding}, "
          f"{passes} passes a position), {len(x)} test images, density "
          f"{density(a.reshape(len(x), -1), T):.3f}; beats per image, gains against today ===")
    for name in DESIGNS:
        gain = b["today"].mean() / b[name].mean()
        print(f"  {name:<11} {b[name].mean():>9,.1f} beats {gain:>6.2f}x")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256, help="MNIST test images (of 1,000)")
    ap.add_argument("--draws", type=int, default=200, help="Bernoulli draws per density")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    from boards import BOARDS
    from sw.compile.block_order import ordered_network, plan_block_order
    from sw.research.cycle_model import predict_cycles
    from sw.research.zoo import mnist_mlp_int_network
    from sw.train.data import load_split

    bits = bernoulli(args)
    print(f"beats per pass of a {N_IN} x {N_OUT} layer at T = {T} (a model of the issuer, not the "
          f"RTL; the walk, fill and drain come on top)")
    print("  today: one beat per block and group of P planes with a spike; A: per-lane lists, "
          "fixed groups of planes, lanes in step per group; A drifting: lanes wait only at the "
          "layer's end, inputs rotated over the lanes pass by pass; A bound: A with no lane "
          "waiting; F: any P of an input's "
          "spiking planes a beat (T adder trees a PE), lanes in step per pass; F drifting; "
          "bound: the reads every spike needs, no lane waiting")
    print(f"\nBernoulli spikes, {N_IN} inputs, {args.draws} draws per density (seed {args.seed}); "
          f"gains against the dense case")
    for board in PRESETS:
        params = BOARDS[board].params
        passes = -(-N_OUT // params.n_pe)
        for label, k, P in shapes(params):
            print(f"\n=== {board}, {label}, {params.n_pe} PEs ({params.n_pe * k * P:,} adds per "
                  f"beat, {passes} passes) ===")
            print("  " + block_ram(board, k, params.n_pe, params))
            ref = dense_beats(N_IN, T, k, P)
            rows = [(f"density {d}", density(a, T),
                     {n: b.mean() for n, b in beats(a, T, k, P, passes).items()}, ref)
                    for d, a in bits.items()]
            print(table(rows, "dense"))

    net, x, _ = mnist_mlp_int_network(T=T)
    x = x[:args.images]
    x_train, _ = load_split("mnist-5k", seed=0).packed(net.T)
    for board in ("arty_a7", "ulx3s"):
        params = BOARDS[board].params
        k, P = params.k, params.planes_per_beat
        order = plan_block_order(net, x_train, params)
        for title, n_, x_ in (("in input order", net, x),
                              ("in block order (sw.compile.block_order, as the core runs it)",
                               ordered_network(net, order), order.inputs(x))):
            print(f"\n=== {board} (k = {k}, P = {P}): MNIST MLP 784-128-128-10 "
                  f"(sw.research.zoo), {len(x)} test images, {title}; gains against today ===")
            rows, totals = [], dict.fromkeys(DESIGNS, 0.0)
            for i, (layer, a) in enumerate(zip(n_.layers, layer_inputs(n_, x_), strict=True)):
                n_out, n_in = layer.weight.shape
                passes = -(-n_out // params.n_pe)
                b = {n: v.mean() for n, v in beats(a, T, k, P, passes).items()}
                rows.append((f"layer {i + 1} ({n_in} -> {n_out})", density(a, T), b, b["today"]))
                for name in DESIGNS:
                    # today's walk is hidden under its beats; the list designs walk the blocks
                    # once per layer to build the lists (the bound counts beats only)
                    walk = name not in ("today", "A bound", "bound")
                    totals[name] += passes * b[name] + walk * -(-n_in // k)
            print(table(rows, "today"))
            model = np.mean([predict_cycles(n_, x_[i:i + 1], params).sum()
                             for i in range(len(x_))])
            print(f"per inference, one image a run ({params.n_pe} PEs: passes x beats, plus one "
                  f"walk of the blocks per layer for the list designs, none for the bounds), "
                  f"against the cycle "
                  f"model's {model:.1f} cycles for today (the rest is walk, fill, drain and "
                  f"firing):")
            for name in DESIGNS:
                saved = totals["today"] - totals[name]
                print(f"  {name:<11} {totals[name]:>6.1f} beats: {saved:>6.1f} fewer than today, "
                      f"about {model - saved:.1f} cycles if nothing else moved")
    cnn_layer2(args, BOARDS["arty_a7"].params)
    print(f"\n{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
