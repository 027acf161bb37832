"""Amaranth-simulator tests of the adder tree, the SpikePack PE and the PE array (back-pressure:
the bank reader holds halves, so the array's input must wait)."""

import gc
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from hw.core.adder_tree import ConditionalAdderTree
from hw.core.pe_array import PEArray
from sim.rtl.streams import stream_put


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
    dut = ConditionalAdderTree(k, 8)
    n = 60
    spikes = rng.integers(0, 2, (n, k))
    weights = rng.integers(-128, 128, (n, k))
    got = []

    async def tb(ctx):
        for i in range(n + dut.latency):
            if i < n:
                ctx.set(dut.i_spikes, _bits(spikes[i]))
                ctx.set(dut.i_weights, [int(w) for w in weights[i]])
            _, _, osum = await ctx.tick().sample(dut.o_sum)
            # The sum sampled at the tick ending cycle i is that of the beat of cycle i - latency.
            if i >= dut.latency:
                got.append(osum)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    want = [int(weights[i] @ spikes[i]) for i in range(n)]
    assert got == want


class WeightMemory:
    """The weight memory beside a PE array: rows written by the test, read every cycle at the
    row the array's input presents (sync read: the row's weights arrive the cycle after)."""

    def __init__(self, dut, n_pe, k):
        self.dut = dut
        self.rows = [[[0] * k for _ in range(n_pe)]]

    def add(self, weights) -> int:
        self.rows.append([[int(w) for w in row] for row in weights])
        return len(self.rows) - 1

    async def run(self, ctx):
        async for _, _, row in ctx.tick().sample(self.dut.i.payload.row):
            ctx.set(self.dut.weights, self.rows[row])


class BankReader:
    """The firing side of the banks: waits for a finished pass, reads every slot (after random
    idle cycles, so the PE array's input must wait for its halves), releases the half."""

    def __init__(self, dut, t_max, n_passes, rng, pause):
        self.dut, self.t_max, self.n_passes = dut, t_max, n_passes
        self.rng, self.pause = rng, pause
        self.got = []

    async def run(self, ctx):
        bank = self.dut.bank
        for _ in range(self.n_passes):
            await ctx.tick().until(bank.ready)
            while self.rng.random() < self.pause:
                await ctx.tick()
            sums = []
            for q in range(self.t_max):
                ctx.set(bank.addr, q)
                if q == self.t_max - 1:
                    ctx.set(bank.release, 1)
                await ctx.tick()
                ctx.set(bank.release, 0)
                data, zero = ctx.get(bank.data), ctx.get(bank.zero)
                sums.append([0 if zero else int(v) for v in data])
            self.got.append(np.array(sums).T)  # [pe][slot]


@pytest.mark.parametrize("n_pe,k,t_max,pause,weight_regs", [
    (4, 4, 8, 0.0, 2), (4, 4, 8, 0.6, 2), (2, 16, 16, 0.3, 2), (8, 1, 8, 0.3, 2),
    (4, 4, 8, 0.0, 0), (4, 4, 8, 0.6, 0), (2, 8, 8, 0.3, 1)])
def test_pe_array_per_plane_sums_with_backpressure(n_pe, k, t_max, pause, weight_regs, rng,
                                                   seed):
    dut = PEArray(n_pe, k, t_max, 20, weight_regs=weight_regs)
    passes, expected = _random_passes(rng, 25, k, t_max, n_pe=n_pe)
    reader = BankReader(dut, t_max, len(passes), random.Random(seed + 1), pause)
    wmem = WeightMemory(dut, n_pe, k)
    rows = [[wmem.add(weights) for _, weights, _ in beats] for beats in passes]

    async def producer(ctx):
        r_in = random.Random(seed)
        for beats, beat_rows in zip(passes, rows, strict=True):
            for n, ((spikes, _, slot), row) in enumerate(zip(beats, beat_rows, strict=True)):
                await stream_put(ctx, dut.i, {
                    "spikes": _bits(spikes), "row": row, "slot": slot,
                    "last": int(n == len(beats) - 1)}, rng=r_in, pause=pause)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(reader.run)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    assert [g.tolist() for g in reader.got] == [e.tolist() for e in expected]


@pytest.mark.parametrize("weight_regs", [0, 1, 2])
def test_pe_array_latency_property(weight_regs):
    """A one-beat pass is readable ``latency`` cycles after the beat was accepted."""
    dut = PEArray(2, 8, 8, 16, weight_regs=weight_regs)
    wmem = WeightMemory(dut, 2, 8)
    row = wmem.add([[1] * 8, [-2] * 8])
    seen = {}

    async def tb(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"spikes": 0xFF, "row": row, "slot": 2, "last": 1})
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for cycle in range(1, 20):
            if ctx.get(dut.bank.ready):
                seen["latency"] = cycle
                break
            await ctx.tick()
        for q in range(8):
            ctx.set(dut.bank.addr, q)
            await ctx.tick()
            seen[q] = None if ctx.get(dut.bank.zero) else list(ctx.get(dut.bank.data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    assert seen["latency"] == dut.latency
    assert [seen[q] for q in range(8)] == [None, None, [8, -16], None, None, None, None, None]


@pytest.mark.parametrize("weight_regs", [0, 2])
def test_pe_array_back_to_back_beats_on_one_slot(weight_regs, rng):
    """Consecutive beats into one slot (the read-modify-write forwards the last write)."""
    n_pe, k, t_max = 2, 4, 8
    dut = PEArray(n_pe, k, t_max, 16, weight_regs=weight_regs)
    beats = [(rng.integers(0, 2, k), rng.integers(-128, 128, (n_pe, k))) for _ in range(30)]
    want = sum(w @ s for s, w in beats)
    reader = BankReader(dut, t_max, 1, random.Random(0), 0.0)
    wmem = WeightMemory(dut, n_pe, k)
    rows = [wmem.add(weights) for _, weights in beats]

    async def producer(ctx):
        for n, ((spikes, _), row) in enumerate(zip(beats, rows, strict=True)):
            await stream_put(ctx, dut.i, {
                "spikes": _bits(spikes), "row": row, "slot": 5,
                "last": int(n == len(beats) - 1)})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(reader.run)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    assert reader.got[0][:, 5].tolist() == want.tolist()


def test_pe_array_rejects_bad_weight_regs():
    # The half-made array is never elaborated: collect it here, its UnusedElaboratable warning
    # silenced (under PYTHONWARNINGS=error it would fail whichever test the collector ran in).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="weight_regs must be 0, 1 or 2"):
            PEArray(2, 4, 8, 16, weight_regs=3)
        gc.collect()


@pytest.mark.parametrize("n_pe,k,weight_regs,pause", [
    (8, 4, 2, 0.3), (4, 4, 0, 0.0), (2, 8, 1, 0.3), (8, 2, 2, 0.0), (16, 4, 1, 0.5)])
def test_pe_array_shortcut_beats_add_the_gain_on_one_lane(n_pe, k, weight_regs, pause, rng,
                                                          seed):
    """Shortcut beats (``res``) mixed with weighted ones, under back-pressure: PE ``n`` adds
    ``gain`` times spike lane ``n mod k`` when the beat's ``group`` is ``n // k``, and nothing
    otherwise, whatever weight row the beat names (its row here holds random weights)."""
    t_max = 8
    groups = -(-n_pe // k)
    gain = int(rng.choice([-128, -3, -1, 1, 2, 127]))
    dut = PEArray(n_pe, k, t_max, 20, weight_regs=weight_regs)
    wmem = WeightMemory(dut, n_pe, k)
    lanes, owner = np.arange(n_pe) % k, np.arange(n_pe) // k
    passes, expected = [], []
    for _ in range(12):
        beats, sums = [], np.zeros((n_pe, t_max), dtype=np.int64)
        for _b in range(int(rng.integers(1, 10))):
            spikes = rng.integers(0, 2, k)
            weights = rng.integers(-128, 128, (n_pe, k))
            slot, res = int(rng.integers(0, t_max)), bool(rng.random() < 0.5)
            group = int(rng.integers(0, groups))
            if res:
                sums[:, slot] += gain * spikes[lanes] * (owner == group)
            else:
                sums[:, slot] += weights @ spikes
            beats.append((spikes, wmem.add(weights), slot, res, group))
        passes.append(beats)
        expected.append(sums)
    reader = BankReader(dut, t_max, len(passes), random.Random(seed + 1), pause)

    async def producer(ctx):
        ctx.set(dut.gain, gain)
        r_in = random.Random(seed)
        for beats in passes:
            for n, (spikes, row, slot, res, group) in enumerate(beats):
                await stream_put(ctx, dut.i, {
                    "spikes": _bits(spikes), "row": row, "slot": slot, "res": int(res),
                    "group": group, "last": int(n == len(beats) - 1)}, rng=r_in, pause=pause)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(reader.run)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    assert [g.tolist() for g in reader.got] == [e.tolist() for e in expected]
