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
from hw.core.pe import SpikePackPE, beat_layout
from hw.core.pe_array import PEArray
from sim.rtl.streams import stream_put


def _add_beat(sums, slot, spikes, planes, chunk_sum):
    """Reference: a beat on beat slot ``slot`` adds ``chunk_sum(spikes of plane i)`` into plane
    ``planes * slot + i`` for each of its planes (``spikes``: ``k * planes`` bits, plane-major)."""
    k = len(spikes) // planes
    for i in range(planes):
        sums[..., planes * slot + i] += chunk_sum(spikes[i * k:(i + 1) * k])


def _random_passes(rng, n_passes, k, t_max, n_pe=None, wb=8, planes=1):
    """Beats (spikes, weights, beat slot) and the expected per-plane sums of each pass."""
    passes, expected = [], []
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1))
    for _ in range(n_passes):
        beats = []
        shape = (k,) if n_pe is None else (n_pe, k)
        sums = np.zeros((t_max,) if n_pe is None else (n_pe, t_max), dtype=np.int64)
        for _b in range(int(rng.integers(1, 12))):
            spikes = rng.integers(0, 2, k * planes)
            weights = rng.integers(lo, hi, shape)
            slot = int(rng.integers(0, t_max // planes))
            _add_beat(sums, slot, spikes, planes, lambda s, w=weights: w @ s)
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
                sums.append([0 if zero else _plane(v, q, self.dut.read_planes) for v in data])
            self.got.append(np.array(sums).T)  # [pe][slot]


#: Planes a beat, and whether the firing side reads pairs of planes.
PLANES = [(1, True), (2, True), (2, False), (4, True), (4, False)]


def _plane(word, q, read_planes):
    """Plane ``q``'s sum in a PE's bank read data (a pair of sums when reads return words)."""
    return int(word) if read_planes == 1 else int(word[q & 1])


def _run_passes(dut, passes, expected, wmem, seed, pause, gain=None):
    """Offer ``passes`` (lists of beat payloads, ``last`` added here) to the PE array under
    back-pressure, read every plane slot of each pass back through the bank interface and
    compare the per-plane sums with ``expected`` (``[pe][plane slot]`` per pass)."""
    t_max = expected[0].shape[-1]
    reader = BankReader(dut, t_max, len(passes), random.Random(seed + 1), pause)

    async def producer(ctx):
        if gain is not None:
            ctx.set(dut.gain, gain)
        r_in = random.Random(seed)
        for beats in passes:
            for n, payload in enumerate(beats):
                await stream_put(ctx, dut.i, {**payload, "last": int(n == len(beats) - 1)},
                                 rng=r_in, pause=pause)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(reader.run)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    assert [g.tolist() for g in reader.got] == [e.tolist() for e in expected]


#: PE arrays under back-pressure: (n_pe, k, t_max, pause, weight_regs).
ARRAYS = [(4, 4, 8, 0.0, 2), (4, 4, 8, 0.6, 2), (2, 16, 16, 0.3, 2), (8, 1, 8, 0.3, 2),
          (4, 4, 8, 0.0, 0), (4, 4, 8, 0.6, 0), (2, 8, 8, 0.3, 1), (2, 4, 2, 0.3, 1)]


@pytest.mark.parametrize("bank_passes", [2, 4])
@pytest.mark.parametrize("n_pe,k,t_max,pause,weight_regs,planes,read_pairs", [
    array + planes for planes in PLANES for array in ARRAYS
    if array[2] % planes[0] == 0])  # (t_max 2 holds no beat slot of four planes)
def test_pe_array_per_plane_sums_with_backpressure(n_pe, k, t_max, pause, weight_regs, planes,
                                                   read_pairs, bank_passes, rng, seed):
    dut = PEArray(n_pe, k, t_max, 20, weight_regs=weight_regs, planes=planes,
                  read_pairs=read_pairs, bank_passes=bank_passes)
    passes, expected = _random_passes(rng, 25, k, t_max, n_pe=n_pe, planes=planes)
    wmem = WeightMemory(dut, n_pe, k)
    beats = [[{"spikes": _bits(spikes), "row": wmem.add(weights), "slot": slot}
              for spikes, weights, slot in pass_beats] for pass_beats in passes]
    _run_passes(dut, beats, expected, wmem, seed, pause)


@pytest.mark.parametrize("planes,read_pairs", PLANES)
@pytest.mark.parametrize("weight_regs", [0, 1, 2])
def test_pe_array_latency_property(weight_regs, planes, read_pairs):
    """A one-beat pass is readable ``latency`` cycles after the beat was accepted (with two
    planes a beat, beat slot 1 is planes 2 and 3: plane 3 has no spike, its sum is 0 but
    written; with four, beat slot 0 is planes 0 to 3)."""
    dut = PEArray(2, 8, 8, 16, weight_regs=weight_regs, planes=planes,
                  read_pairs=read_pairs)
    wmem = WeightMemory(dut, 2, 8)
    row = wmem.add([[1] * 8, [-2] * 8])
    seen = {}

    async def tb(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"spikes": 0xFF << (8 * (2 % planes)), "row": row,
                                "slot": 2 // planes, "last": 1})
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
            seen[q] = None if ctx.get(dut.bank.zero) else [
                _plane(v, q, dut.read_planes) for v in ctx.get(dut.bank.data)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    # Whatever ``planes``: weight read, ``weight_regs``, PE input register, 3 adder levels, 2.
    assert seen["latency"] == dut.latency == weight_regs + 7
    want = [None, None, [8, -16], None, None, None, None, None]
    for q in range(2 // planes * planes, (2 // planes + 1) * planes):  # the beat slot's others
        want[q] = want[q] or [0, 0]
    assert [seen[q] for q in range(8)] == want


@pytest.mark.parametrize("planes,read_pairs", PLANES)
@pytest.mark.parametrize("weight_regs", [0, 2])
def test_pe_array_back_to_back_beats_on_one_slot(weight_regs, planes, read_pairs, rng, seed):
    """Consecutive beats into one (beat) slot (the read-modify-write forwards the last write)."""
    n_pe, k, t_max = 2, 4, 8
    slot = 5 // planes  # plane 5 (and plane 4 with two planes a beat, planes 4 to 7 with four)
    dut = PEArray(n_pe, k, t_max, 16, weight_regs=weight_regs, planes=planes,
                  read_pairs=read_pairs)
    wmem = WeightMemory(dut, n_pe, k)
    want = np.zeros((n_pe, t_max), dtype=np.int64)
    beats = []
    for _ in range(30):
        spikes, weights = rng.integers(0, 2, k * planes), rng.integers(-128, 128, (n_pe, k))
        _add_beat(want, slot, spikes, planes, lambda s, w=weights: w @ s)
        beats.append({"spikes": _bits(spikes), "row": wmem.add(weights), "slot": slot})
    _run_passes(dut, [beats], [want], wmem, seed, 0.0)


@pytest.mark.parametrize("bank_passes", [2, 4])
def test_pe_array_runs_bank_passes_ahead_of_the_firing(bank_passes):
    """One-beat passes offered back to back while nothing is read: the array takes
    ``bank_passes`` of them (its banks' parts) and then holds ``i.ready`` low; one release
    lets exactly one more in, and the passes read back in order with their own sums."""
    dut = PEArray(2, 4, 8, 16, weight_regs=0, bank_passes=bank_passes)
    wmem = WeightMemory(dut, 2, 4)
    rows = [wmem.add([[n + 1] * 4, [-(n + 1)] * 4]) for n in range(bank_passes + 2)]
    seen = {}

    async def tb(ctx):
        accepted = 0
        ctx.set(dut.i.valid, 1)
        for cycle in range(40):
            ctx.set(dut.i.payload, {"spikes": 0b0011, "row": rows[accepted], "slot": 0,
                                    "last": 1})
            if cycle == 30:
                seen["held"] = accepted
                ctx.set(dut.bank.addr, 7)
                ctx.set(dut.bank.release, 1)  # release the first pass (read its last slot)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            ctx.set(dut.bank.release, 0)
            accepted += ready
        ctx.set(dut.i.valid, 0)
        seen["after_release"] = accepted
        for p in range(bank_passes):
            await ctx.tick().until(dut.bank.ready)
            ctx.set(dut.bank.addr, 0)
            await ctx.tick()
            seen[p] = [int(v) for v in ctx.get(dut.bank.data)]
            ctx.set(dut.bank.addr, 7)
            ctx.set(dut.bank.release, 1)
            await ctx.tick()
            ctx.set(dut.bank.release, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_testbench(wmem.run, background=True)
    sim.run()
    assert seen["held"] == bank_passes
    assert seen["after_release"] == bank_passes + 1
    # Pass 0 was released unread; the next ones come out in order (2 spikes x weight n + 1).
    assert [seen[p] for p in range(bank_passes)] == [[2 * (n + 1), -2 * (n + 1)]
                                                     for n in range(1, bank_passes + 1)]


def test_pe_array_rejects_bad_weight_regs():
    # The half-made array is never elaborated: collect it here, its UnusedElaboratable warning
    # silenced (under PYTHONWARNINGS=error it would fail whichever test the collector ran in).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="weight_regs must be 0, 1 or 2"):
            PEArray(2, 4, 8, 16, weight_regs=3)
        gc.collect()


@pytest.mark.parametrize("planes", [0, 3, 8])
def test_pe_array_rejects_bad_planes(planes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="planes must be 1, 2 or 4"):
            PEArray(2, 4, 8, 16, planes=planes)
        with pytest.raises(ValueError, match="planes must be 1, 2 or 4"):
            SpikePackPE(4, 8, 16, planes=planes)
        with pytest.raises(ValueError, match="planes must be 1, 2 or 4"):
            beat_layout(4, 8, 16, planes=planes)
        gc.collect()


def test_pe_rejects_t_max_not_a_multiple_of_planes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=r"t_max \(3\) must be a multiple of planes \(2\)"):
            SpikePackPE(4, 3, 16, planes=2)
        with pytest.raises(ValueError, match=r"t_max \(3\) must be a multiple of planes \(2\)"):
            beat_layout(4, 3, 16, planes=2)
        gc.collect()


def test_beat_layout_planes():
    """Two (four) planes a beat: ``2 k`` (``4 k``) spike bits, ``t_max / 2`` (``/ 4``) beat
    slots; one plane: as before."""
    one, two = beat_layout(16, 8, 64, 2), beat_layout(16, 8, 64, 2, planes=2)
    four = beat_layout(16, 8, 64, 2, planes=4)
    assert one["spikes"].width == 16 and two["spikes"].width == 32
    assert four["spikes"].width == 64
    assert one["slot"].width == 3 and two["slot"].width == 2 and four["slot"].width == 1


@pytest.mark.parametrize("planes,read_pairs", PLANES)
@pytest.mark.parametrize("n_pe,k,weight_regs,pause", [
    (8, 4, 2, 0.3), (4, 4, 0, 0.0), (2, 8, 1, 0.3), (8, 2, 2, 0.0), (16, 4, 1, 0.5)])
def test_pe_array_shortcut_beats_add_the_gain_on_one_lane(n_pe, k, weight_regs, pause, planes,
                                                          read_pairs, rng, seed):
    """Shortcut beats (``res``) mixed with weighted ones, under back-pressure: PE ``n`` adds
    ``gain`` times spike lane ``n mod k`` when the beat's ``group`` is ``n // k``, and nothing
    otherwise, whatever weight row the beat names (its row here holds random weights); with
    two planes a beat, on both planes."""
    t_max = 8
    groups = -(-n_pe // k)
    gain = int(rng.choice([-128, -3, -1, 1, 2, 127]))
    dut = PEArray(n_pe, k, t_max, 20, weight_regs=weight_regs, planes=planes,
                  read_pairs=read_pairs)
    wmem = WeightMemory(dut, n_pe, k)
    lanes, owner = np.arange(n_pe) % k, np.arange(n_pe) // k
    passes, expected = [], []
    for _ in range(12):
        beats, sums = [], np.zeros((n_pe, t_max), dtype=np.int64)
        for _b in range(int(rng.integers(1, 10))):
            spikes = rng.integers(0, 2, k * planes)
            weights = rng.integers(-128, 128, (n_pe, k))
            slot, res = int(rng.integers(0, t_max // planes)), bool(rng.random() < 0.5)
            group = int(rng.integers(0, groups))
            if res:
                _add_beat(sums, slot, spikes, planes,
                          lambda s, g=group: gain * s[lanes] * (owner == g))
            else:
                _add_beat(sums, slot, spikes, planes, lambda s, w=weights: w @ s)
            beats.append({"spikes": _bits(spikes), "row": wmem.add(weights), "slot": slot,
                          "res": int(res), "group": group})
        passes.append(beats)
        expected.append(sums)
    _run_passes(dut, passes, expected, wmem, seed, pause, gain=gain)
