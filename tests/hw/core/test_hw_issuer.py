"""Amaranth-simulator tests of the zero-skipping plane issuer (back-pressure, cycles)."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.contract.params import CoreParams
from hw.core.issuer import PlaneIssuer
from sim.rtl.streams import stream_get, stream_put

P = CoreParams(n_pe=4, k=4, t_max=8, weight_depth=16, act_chunks=32, bt_depth=16, max_layers=2,
               batch_depth=2)


def _marks(block, T):
    """The fetcher's plane marks: bit q set if plane q < T of the block has a spike; their
    count (and whether it is 1); the lowest marked plane."""
    nonzero = sum(1 << q for q in range(T) if (block >> (q * P.k)) & ((1 << P.k) - 1))
    first = (nonzero & -nonzero).bit_length() - 1 if nonzero else 0
    count = bin(nonzero).count("1")
    return {"nonzero": nonzero, "count": count, "single": int(count == 1), "first": first}


def _expected(blocks, T):
    """Beats the issuer must send: non-zero planes q < T in slot order; empty last -> one beat."""
    beats = []
    for block, row, last in blocks:
        planes = [(block >> (q * P.k)) & ((1 << P.k) - 1) for q in range(P.t_max)]
        nz = [q for q in range(T) if planes[q]]
        for n, q in enumerate(nz):
            beats.append((planes[q], row, q, int(last and n == len(nz) - 1)))
        if not nz and last:
            beats.append((0, row, 0, 1))
    return beats


@pytest.mark.parametrize("T,pause", [(8, 0.0), (8, 0.4), (3, 0.3), (1, 0.2)])
def test_issuer_skips_zero_planes(T, pause, rng, seed):
    dut = PlaneIssuer(P)
    blocks = []
    for n in range(80):
        density = rng.choice([0.0, 0.05, 0.5])
        bits = rng.random(P.block_bits) < density
        block = int(sum(int(b) << i for i, b in enumerate(bits)))
        row = int(rng.integers(0, P.weight_depth))
        blocks.append((block, row, int(rng.random() < 0.3 or n == 79)))
    beats = _expected(blocks, T)
    r_in, r_out = random.Random(seed), random.Random(seed + 1)
    got = []

    async def producer(ctx):
        for block, row, last in blocks:
            await stream_put(ctx, dut.i, {"block": block, **_marks(block, T),
                                          "row": row, "last": last},
                             rng=r_in, pause=pause)

    async def consumer(ctx):
        for _ in beats:
            b = await stream_get(ctx, dut.o, rng=r_out, pause=pause)
            got.append((b.spikes, b.row, b.slot, b.last))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == beats


def test_issuer_one_cycle_per_nonzero_plane():
    """Without stalls, a block costs max(1, non-zero planes) cycles: zero planes are free."""
    dut = PlaneIssuer(P)
    T = 8
    # Blocks with 0, 1, 3 and 8 non-zero planes.
    planes = [[], [2], [0, 4, 7], list(range(8))]
    blocks = [sum(1 << (q * P.k) for q in qs) for qs in planes]
    cycles = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        for n, block in enumerate(blocks):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"block": block, **_marks(block, T),
                                    "row": 0, "last": 0})
            count = 0
            while True:
                count += 1
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    break
            cycles[n] = count
        ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert cycles == {0: 1, 1: 1, 2: 3, 3: 8}
    assert np.all(np.array(list(cycles.values())) >= 1)


def test_plane_mark_trees_every_input():
    """The fetcher's trees over a block's plane marks: the index of the lowest 1 (0 when none),
    and whether there is exactly one 1; widths 1..9."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from hw.core.fetcher import exactly_one, lowest_one

    for n in range(1, 10):
        bits = Signal(n)
        any_, index = lowest_one(bits)
        m = Module()
        got_any, got_index, got_one = Signal(), Signal(8), Signal()
        m.d.comb += [got_any.eq(any_), got_index.eq(index), got_one.eq(exactly_one(bits))]

        async def bench(ctx, n=n, bits=bits, got_any=got_any, got_index=got_index,
                        got_one=got_one):
            for x in range(1 << n):
                ctx.set(bits, x)
                expect = (x & -x).bit_length() - 1 if x else 0
                assert (ctx.get(got_any), ctx.get(got_index)) == (int(x != 0), expect), (n, x)
                assert ctx.get(got_one) == int(bin(x).count("1") == 1), (n, x)

        sim = Simulator(m)
        sim.add_testbench(bench)
        sim.run()
