"""Amaranth-simulator tests of the adder tree, the SpikePack PE and the PE array (back-pressure)."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.adder_tree import ConditionalAdderTree
from hw.pe import SpikePackPE
from hw.pe_array import PEArray
from sim.tb.streams import stream_get, stream_put


def _random_passes(rng, n_passes, k, t_max, n_pe=None, wb=8):
    """Beats (spikes, weights, slot, last) and the expected per-plane sums of each pass."""
    passes, expected = [], []
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1))
    for _ in range(n_passes):
        beats = []
        shape = (k,) if n_pe is None else (n_pe, k)
        sums = np.zeros((t_max,) if n_pe is None else (n_pe, t_max), dtype=np.int64)
        for _b in range(int(rng.integers(1, 12))):
            spikes = rng.integers(0, 2, k)
            weights = rng.integers(lo, hi, shape)
            slot = int(rng.integers(0, t_max))
            sums[..., slot] += weights @ spikes
            beats.append((spikes, weights, slot))
        passes.append(beats)
        expected.append(sums)
    return passes, expected


def _bits(spikes):
    return int(sum(int(s) << i for i, s in enumerate(spikes)))


@pytest.mark.parametrize("k", [1, 3, 4, 16])
def test_adder_tree_sums_selected_weights(k, rng):
    dut = ConditionalAdderTree(k, 8, tag_bits=8)
    n = 60
    spikes = rng.integers(0, 2, (n, k))
    weights = rng.integers(-128, 128, (n, k))
    enables = rng.random(400) < 0.7
    got = []

    async def tb(ctx):
        i = 0
        for en in enables:
            ctx.set(dut.en, int(en))
            if i < n:
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.i_spikes, _bits(spikes[i]))
                ctx.set(dut.i_weights, [int(w) for w in weights[i]])
                ctx.set(dut.i_tag, i)
            else:
                ctx.set(dut.i_valid, 0)
            _, _, ov, osum, otag = await ctx.tick().sample(dut.o_valid, dut.o_sum, dut.o_tag)
            if en and ov:
                got.append((otag, osum))
            if en and i < n:
                i += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    want = [(i, int(weights[i] @ spikes[i])) for i in range(n)]
    assert got[:len(want)] == want[:len(got)]
    assert len(got) >= n - dut.latency


@pytest.mark.parametrize("k,t_max,pause", [(4, 8, 0.0), (4, 8, 0.4), (16, 16, 0.3), (1, 8, 0.3)])
def test_pe_per_plane_sums_with_backpressure(k, t_max, pause, rng, seed):
    dut = SpikePackPE(k, t_max, 24)
    passes, expected = _random_passes(rng, 25, k, t_max)
    r_in, r_out = random.Random(seed), random.Random(seed + 1)
    got = []

    async def producer(ctx):
        for beats in passes:
            for n, (spikes, weights, slot) in enumerate(beats):
                await stream_put(ctx, dut.i, {
                    "spikes": _bits(spikes), "weights": [int(w) for w in weights],
                    "slot": slot, "last": int(n == len(beats) - 1)}, rng=r_in, pause=pause)

    async def consumer(ctx):
        for _ in passes:
            got.append(list(await stream_get(ctx, dut.o, rng=r_out, pause=pause)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == [list(e) for e in expected]


def test_pe_latency_property():
    dut = SpikePackPE(8, 8, 24)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"spikes": 0xFF, "weights": [1] * 8, "slot": 2, "last": 1})
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for cycle in range(1, 20):
            if ctx.get(dut.o.valid):
                seen["latency"] = cycle
                seen["value"] = list(ctx.get(dut.o.payload))
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen["latency"] == dut.latency
    assert seen["value"] == [0, 0, 8, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("pause", [0.0, 0.3])
def test_pe_array_lockstep(pause, rng, seed):
    n_pe, k, t_max = 4, 4, 8
    dut = PEArray(n_pe, k, t_max, 24)
    passes, expected = _random_passes(rng, 15, k, t_max, n_pe=n_pe)
    r_in, r_out = random.Random(seed), random.Random(seed + 1)
    got = []

    async def producer(ctx):
        for beats in passes:
            for n, (spikes, weights, slot) in enumerate(beats):
                await stream_put(ctx, dut.i, {
                    "spikes": _bits(spikes), "weights": [[int(w) for w in row] for row in weights],
                    "slot": slot, "last": int(n == len(beats) - 1)}, rng=r_in, pause=pause)

    async def consumer(ctx):
        for _ in passes:
            got.append([list(v) for v in await stream_get(ctx, dut.o, rng=r_out, pause=pause)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == [e.tolist() for e in expected]
