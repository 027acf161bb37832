"""Amaranth-simulator tests of the firing unit and array against sim.golden.model
(back-pressure)."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.core.fire import FireUnit, leak_scale, leaked
from hw.core.fire_array import FireArray
from sim.golden import model as golden
from sim.golden.ir import IntLayer, Mode, Reset
from sim.golden.packing import popcount

T_MAX, ACC = 8, 24


def _golden_case(sums, bias, theta, T, mode, readout, leak, reset, fire_above=False,
                 compare_leaked=False):
    """Golden output for per-plane sums ``sums[slot]``, built as a layer with one input per step.

    Input neuron ``j`` spikes only at step ``j + 1`` (slot ``T - 1 - j``) and has weight
    ``sums[T - 1 - j]``, so the layer's plane-``t`` input is exactly ``sums[T - t]``.
    """
    w = np.array([[sums[T - 1 - j] for j in range(T)]])
    a = np.array([1 << (T - 1 - j) for j in range(T)])
    layer = IntLayer(w, [bias], theta, mode=mode, readout=readout, leak_shift=leak, reset=reset,
                     fire_above=fire_above, compare_leaked=compare_leaked)
    r = golden.run_layer(layer, a, T, acc_bits=ACC)
    out = int(r.output[0])
    if readout:
        return 0, out, 0
    return out, None, int(popcount(r.output)[0])


def _cases(rng, n):
    cases = []
    for _ in range(n):
        T = int(rng.integers(1, T_MAX + 1))
        mode = Mode.LIF if rng.random() < 0.5 else Mode.SPIKEPACK
        sums = [int(s) for s in rng.integers(-128, 128, T)] + [0] * (T_MAX - T)
        theta = int(rng.choice([1, rng.integers(1, 40), rng.integers(1, 400)]))
        bias = int(rng.integers(-100, 100))
        readout = bool(rng.random() < 0.25)
        leak = int(rng.integers(0, 16)) if mode is Mode.LIF and rng.random() < 0.7 else 0
        reset = Reset.ZERO if rng.random() < 0.4 else Reset.SUBTRACT
        above = mode is Mode.LIF and rng.random() < 0.5  # spike when v > theta
        leaked = mode is Mode.LIF and rng.random() < 0.5  # against theta - (theta >> leak)
        if leaked and rng.random() < 0.7:  # a short leak, so that theta >> leak is not 0
            leak = int(rng.integers(1, 4))
        cases.append((sums, bias, theta, T, mode, readout, leak, reset, above, leaked))
    return cases


def _config(T, mode, readout, leak, reset, fire_above=False, compare_leaked=False):
    return {"T": T, "lif": int(mode is Mode.LIF), "readout": int(readout),
            "reset_zero": int(reset is Reset.ZERO), "leak": leak, "fire_above": int(fire_above),
            "compare_leaked": int(compare_leaked)}


def _layer_key(case):
    """The per-layer part of a case (T, mode, readout, leak, reset, fire_above,
    compare_leaked)."""
    return case[3:]


def _beat_sums(sums, T, lif, pairs):
    """A neuron's beats, first to last: the plane sums from slot ``T - 1`` down, or with
    ``pairs`` (SpikePack) ``2 P[2s+1] + P[2s]`` from the top pair down (``P[T] = 0``)."""
    if pairs and not lif:
        n = FireUnit.beats(T, lif, pairs)
        return [2 * sums[2 * s + 1] + sums[2 * s] for s in reversed(range(n))]
    return [sums[T - 1 - j] for j in range(T)]


async def _drive_neurons(ctx, dut, cases, rng, pause, starts):
    """Beats of each case on the unit's schedule (extra idle cycles at random between neurons);
    ``starts`` gets the cycle of each neuron's first beat."""
    cycle = 0
    for sums, bias, theta, T, mode, *_ in cases:
        lif = mode is Mode.LIF
        offsets = FireUnit.beat_offsets(T, lif, dut.pairs)
        beats = _beat_sums(sums, T, lif, dut.pairs)
        starts.append(cycle)
        for off in range(FireUnit.period(T, lif, dut.pairs)):
            if off in offsets:
                j = offsets.index(off)
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"sum": beats[j], "first": int(j == 0),
                                        "last": int(j == len(beats) - 1), "bias": bias,
                                        "theta": theta})
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.i.valid, 0)
        while rng.random() < pause:
            await ctx.tick()
            cycle += 1
    return cycle


@pytest.mark.parametrize("pause,lif,pairs,leak_mul", [
    (0.0, True, False, False), (0.4, True, False, False), (0.3, False, False, False),
    (0.0, True, True, False), (0.3, True, True, False), (0.0, False, True, False),
    (0.0, True, False, True), (0.3, True, True, True)])
def test_fire_unit_matches_golden(pause, lif, pairs, leak_mul, rng, seed):
    """Random neurons of every mode, back to back, against sim.golden.model; each result comes
    exactly ``latency`` cycles after its neuron's first beat. A unit built without LIF runs the
    SpikePack cases the same; a unit with ``pairs`` takes SpikePack neurons as pair sums (two
    bits a firing step), LIF ones as before; a unit with ``leak_mul`` leaks by products (the
    same results and cycles)."""
    dut = FireUnit(T_MAX, 18 if pairs else 16, ACC, lif=lif, pairs=pairs, leak_mul=leak_mul)
    cases = sorted(_cases(rng, 200), key=lambda c: (c[4] is Mode.LIF, c[3]))
    if not lif:
        cases = [c for c in cases if c[4] is Mode.SPIKEPACK]
    layers = {}
    for case in cases:
        layers.setdefault(_layer_key(case), []).append(case)
    r = random.Random(seed)
    got, starts = [], []

    async def driver(ctx):
        cycle = 0
        for key, group in layers.items():
            ctx.set(dut.config, _config(*key))
            await ctx.tick()  # the configuration is held a cycle before a layer's beats
            cycle += 1
            s = []
            end = cycle + await _drive_neurons(ctx, dut, group, r, pause, s)
            starts.extend(x + cycle for x in s)
            cycle = end
            T, mode, readout = key[0], key[1], key[2]
            drain = FireUnit.latency(T, mode is Mode.LIF, readout, pairs)
            await ctx.tick().repeat(drain)  # let the last result out before the next layer
            cycle += drain

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            cycle += 1
            if valid:
                got.append((cycle, payload.word, payload.v, payload.spikes))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    ordered = [c for group in layers.values() for c in group]
    assert len(got) == len(ordered)
    for case, start, (cycle, word, v, spikes) in zip(ordered, starts, got, strict=True):
        want_word, want_v, want_spikes = _golden_case(*case)
        T, mode, readout = case[3], case[4], case[5]
        if readout:
            assert v == want_v, case
        else:
            assert (word, spikes) == (want_word, want_spikes), case
        # ``cycle`` counts ticks: the result was visible in the cycle before that tick.
        assert cycle - 1 - start == FireUnit.latency(T, mode is Mode.LIF, readout, pairs), case


def test_leak_multiply_add_is_the_shift_and_subtract_at_the_extremes(seed):
    """``leaked(x, leak_scale(k))`` (a unit's leak with ``leak_mul``) equals ``x - (x >>> k)``
    for every ``k`` on the membrane's whole 24-bit range, and ``leaked(theta, scale, above)``
    the leaked or plain threshold plus ``fire_above``, at the range's ends and at random."""
    m = Module()
    x, th, k, above = Signal(signed(ACC)), Signal(unsigned(ACC)), Signal(4), Signal()
    c = Signal(unsigned(17))
    lk, th_leaked, th_plain = Signal(signed(ACC)), Signal(unsigned(ACC)), Signal(unsigned(ACC))
    m.d.comb += [c.eq(leak_scale(k)), lk.eq(leaked(x, c)), th_leaked.eq(leaked(th, c, above)),
                 th_plain.eq(leaked(th, 1 << 16, above))]
    r = random.Random(seed)
    top = 1 << (ACC - 1)
    xs = [-top, top - 1, -1, 0, 1, -top + 1] + [r.randrange(-top, top) for _ in range(300)]
    ths = [0, 1, top - 1, top - 2, 2, 3] + [r.randrange(top) for _ in range(300)]
    bad = []

    async def tb(ctx):
        for kv in range(16):
            for xv, tv in zip(xs, ths, strict=True):
                av = r.randrange(2)
                ctx.set(x, xv)
                ctx.set(th, tv)
                ctx.set(k, kv)
                ctx.set(above, av)
                want = (xv - (xv >> kv) if kv else xv, (tv - (tv >> kv) if kv else tv) + av,
                        tv + av)
                got = (ctx.get(lk), ctx.get(th_leaked), ctx.get(th_plain))
                if got != want:
                    bad.append((xv, tv, kv, av, got, want))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert not bad, bad[:3]


@pytest.mark.parametrize("pairs", [False, True])
def test_fire_unit_extreme_thresholds(pairs):
    """theta at the largest value a build allows, theta 1, and large negative membranes (with
    ``pairs``: the thresholds 2 theta 4^j and 3 theta 4^j above any membrane too)."""
    rng = np.random.default_rng(7)
    theta_max = (1 << (ACC - 1)) - 1
    cases = []
    near_top = theta_max - (1 << 20)  # with small sums: v between 2 theta and 3 theta above
    for T in (1, 2, 3, 4, 7, 8):
        # 3 theta and 2 theta just past 2^(ACC-1) (the pairs' compares against them must say
        # "below"), and a threshold whose 4^j multiples cross it within the word.
        for theta in (1, 2, theta_max, theta_max // 3, theta_max // 3 + 2, theta_max // 2 + 1,
                      (theta_max >> 7) + 5):
            for bias in (-(1 << 20), 0, 1 << 20, theta_max - (1 << 15) * 255, near_top):
                lim = (1 << 19) >> T if bias == near_top else 1 << 15  # v stays below 2^(ACC-1)
                sums = [int(x) for x in rng.integers(-lim, lim, T)] + [0] * (T_MAX - T)
                cases.append((sums, bias, theta, T, Mode.SPIKEPACK, False, 0, Reset.SUBTRACT))
    dut = FireUnit(T_MAX, 18 if pairs else 16, ACC, pairs=pairs)
    got = []

    async def driver(ctx):
        for T in (1, 2, 3, 4, 7, 8):
            group = [c for c in cases if c[3] == T]
            ctx.set(dut.config, _config(T, Mode.SPIKEPACK, False, 0, Reset.SUBTRACT))
            await ctx.tick()
            await _drive_neurons(ctx, dut, group, random.Random(0), 0.0, [])
            await ctx.tick().repeat(2 * T + 2)

    async def monitor(ctx):
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                got.append((payload.word, payload.spikes))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    for case, (word, spikes) in zip(cases, got, strict=True):
        sums, bias, theta, T = case[:4]
        v = sum(int(sums[q]) << q for q in range(T)) + bias  # the packed form of the sums
        want = int(golden.fire_packed(np.array([v]), theta, T)[0])
        assert (word, spikes) == (want, bin(want).count("1")), case


class BankModel:
    """The PE array's bank read side and the bias/theta memory, in Python: sync reads (data the
    cycle after the address), passes offered in order, each dropped on its release. With two
    planes a word, a read gives the pair of the addressed plane's beat slot and its zero flag."""

    def __init__(self, dut, passes, zero, bias_rows, theta_rows, next_ready=True):
        self.dut = dut
        self.next_ready = next_ready  # tell the array the next pass is whole before its turn
        self.planes = dut.planes
        self.passes, self.zero = passes, zero  # passes[p][n][plane], zero[p][beat slot]
        self.bias_rows, self.theta_rows = bias_rows, theta_rows
        self.released = 0

    async def run(self, ctx):
        dut = self.dut
        await ctx.tick().repeat(3)  # the layer's configuration settles before its first pass
        ctx.set(dut.bank.ready, 1)
        async for _, _, addr, release, bt_addr in ctx.tick().sample(
                dut.bank.addr, dut.bank.release, dut.bt_addr):
            if self.released < len(self.passes):
                pas, zero = self.passes[self.released], self.zero[self.released]
                if self.planes == 1:
                    ctx.set(dut.bank.data, [int(s[addr]) for s in pas])
                else:
                    lo = addr & ~1
                    ctx.set(dut.bank.data, [[int(s[lo]), int(s[lo + 1])] for s in pas])
                ctx.set(dut.bank.zero, int(zero[addr // self.planes]))
            ctx.set(dut.bias, self.bias_rows[bt_addr])
            ctx.set(dut.theta, self.theta_rows[bt_addr])
            if release:
                self.released += 1
            ctx.set(dut.bank.ready, int(self.released < len(self.passes)))
            ctx.set(dut.bank.next_ready,
                    int(self.next_ready and self.released + 1 < len(self.passes)))


@pytest.mark.parametrize("units,T,mode,readout,planes", [
    (4, 6, Mode.SPIKEPACK, False, 1), (2, 3, Mode.SPIKEPACK, True, 1),
    (1, 8, Mode.SPIKEPACK, False, 1), (2, 5, Mode.LIF, False, 1), (4, 1, Mode.LIF, True, 1),
    (1, 1, Mode.SPIKEPACK, False, 1),
    (4, 6, Mode.SPIKEPACK, False, 2), (2, 3, Mode.SPIKEPACK, True, 2),
    (1, 7, Mode.SPIKEPACK, False, 2), (2, 5, Mode.LIF, False, 2), (4, 8, Mode.LIF, True, 2),
    (2, 1, Mode.SPIKEPACK, False, 2), (4, 4, Mode.SPIKEPACK, False, 2)])
@pytest.mark.parametrize("next_ready", [True, False])
@pytest.mark.parametrize("out_reg", [False, True])
def test_fire_array_reads_banks_and_fires_groups(units, T, mode, readout, planes, next_ready,
                                                 out_reg, rng, seed):
    """Every neuron of every pass fired by its unit, with its own bias and threshold rows, in
    group order; untouched slots read as 0; one pass every ``pass_cycles`` (a cycle more when
    the next pass is not whole at the release). With two planes a
    bank word, SpikePack layers read pairs (``ceil(T / 2)`` cycles a group), LIF layers one
    plane of a word a beat. ``out_reg``: the same results, :meth:`FireArray.latency` one
    cycle longer."""
    n_pe, sum_bits, n_passes, bt_base = 4, 16, 6, 2
    dut = FireArray(n_pe, T_MAX, sum_bits, ACC, units, bt_rows=64, planes=planes,
                    out_reg=out_reg)
    passes = rng.integers(-128, 128, (n_passes, n_pe, T_MAX))  # _golden_case: weights
    if planes == 2:  # planes at or above T hold 0, as the fetcher's zeroing leaves the banks
        passes[:, :, T:] = 0
    zero = rng.random((n_passes, T_MAX // planes)) < 0.2  # per beat slot
    rows = (bt_base + n_passes) * dut.groups
    bias = rng.integers(-500, 500, (64, units))
    theta = rng.integers(1, 900, (64, units))
    model = BankModel(dut, passes.tolist(), zero.tolist(), bias.tolist(), theta.tolist(),
                      next_ready=next_ready)
    leak, reset = int(rng.integers(0, 5)), Reset.SUBTRACT
    above = mode is Mode.LIF and T % 2 == 1  # both compares of the LIF cases
    leaked = mode is Mode.LIF and not readout
    per_channel, theta_layer = T % 2 == 0, int(rng.integers(1, 900))  # both threshold sources
    got = []

    async def control(ctx):
        ctx.set(dut.config, _config(T, mode, readout, leak, reset, above, leaked))
        ctx.set(dut.theta_per_channel, per_channel)
        ctx.set(dut.theta_layer, theta_layer)
        ctx.set(dut.bt_base, bt_base)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            cycle += 1
            if valid:
                got.append((cycle, [(r.word, r.v, r.spikes) for r in payload]))
            if len(got) == n_passes * dut.groups:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(control)
    sim.add_testbench(model.run, background=True)
    sim.add_testbench(monitor)
    sim.run()
    assert rows <= 64 and model.released == n_passes
    for p in range(n_passes):
        for g in range(dut.groups):
            _, results = got[p * dut.groups + g]
            for f, (word, v, spikes) in enumerate(results):
                n = g * units + f
                sums = [0 if zero[p][q // planes] else int(passes[p][n][q])
                        for q in range(T_MAX)]
                row = (bt_base + p) * dut.groups + g
                th = int(theta[row][f]) if per_channel else theta_layer
                want = _golden_case(sums, int(bias[row][f]), th, T, mode, readout, leak, reset,
                                    above, leaked)
                if readout:
                    assert v == want[1], (p, n)
                else:
                    assert (word, spikes) == (want[0], want[2]), (p, n)
    # Steady state: passes follow each other every pass_cycles when the next pass is whole at
    # the release (``next_ready``), a cycle later when the array waits for ``ready`` in IDLE.
    starts = [got[p * dut.groups][0] for p in range(n_passes)]
    gaps = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    assert gaps == {dut.pass_cycles(T, mode is Mode.LIF) + (0 if next_ready else 1)}
    # The first group's results on ``o`` ``latency`` cycles after its first read, which this
    # bench issues in the same cycle in every case (``out_reg``: a cycle later).
    assert got[0][0] - dut.latency(T, mode is Mode.LIF, readout) == 5
