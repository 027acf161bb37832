"""Amaranth-simulator tests of the firing unit and array against sim.golden (back-pressure)."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.fire import FireUnit
from hw.fire_array import FireArray
from sim import golden
from sim.ir import IntLayer, Mode, Reset
from sim.packing import popcount
from sim.tb.streams import stream_get, stream_put

T_MAX, ACC = 8, 24


def _golden_case(sums, bias, theta, T, mode, readout, leak, reset):
    """Golden output for per-plane sums ``sums[slot]``, built as a layer with one input per step.

    Input neuron ``j`` spikes only at step ``j + 1`` (slot ``T - 1 - j``) and has weight
    ``sums[T - 1 - j]``, so the layer's plane-``t`` input is exactly ``sums[T - t]``.
    """
    w = np.array([[sums[T - 1 - j] for j in range(T)]])
    a = np.array([1 << (T - 1 - j) for j in range(T)])
    layer = IntLayer(w, [bias], theta, mode=mode, readout=readout, leak_shift=leak, reset=reset)
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
        cases.append((sums, bias, theta, T, mode, readout, leak, reset))
    return cases


def _config(T, mode, readout, leak, reset):
    return {"T": T, "lif": int(mode is Mode.LIF), "readout": int(readout),
            "reset_zero": int(reset is Reset.ZERO), "leak": leak}


@pytest.mark.parametrize("pause", [0.0, 0.4])
def test_fire_unit_matches_golden(pause, rng, seed):
    dut = FireUnit(T_MAX, ACC)
    cases = _cases(rng, 150)
    r_in, r_out = random.Random(seed), random.Random(seed + 1)
    got = []
    cfg_ready = []

    async def producer(ctx):
        for sums, bias, theta, T, mode, readout, leak, reset in cases:
            # The configuration is a per-layer setting: change it only between results.
            while len(got) < len(cfg_ready):
                await ctx.tick()
            ctx.set(dut.config, _config(T, mode, readout, leak, reset))
            cfg_ready.append(1)
            await stream_put(ctx, dut.i, {"sums": sums, "bias": bias, "theta": theta},
                             rng=r_in, pause=pause)

    async def consumer(ctx):
        for _ in cases:
            got.append(await stream_get(ctx, dut.o, rng=r_out, pause=pause))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    for case, out in zip(cases, got, strict=False):
        word, v, spikes = _golden_case(*case)
        readout = case[5]
        if readout:
            assert out.v == v, case
        else:
            assert (out.word, out.spikes) == (word, spikes), case


@pytest.mark.parametrize("T,mode,readout", [(1, Mode.SPIKEPACK, False), (5, Mode.SPIKEPACK, False),
                                            (5, Mode.SPIKEPACK, True), (8, Mode.LIF, False),
                                            (3, Mode.LIF, True)])
def test_fire_latency_property(T, mode, readout):
    dut = FireUnit(T_MAX, ACC)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.config, _config(T, mode, readout, 0, Reset.SUBTRACT))
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"sums": [3] * T_MAX, "bias": 1, "theta": 2})
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for cycle in range(1, 40):
            if ctx.get(dut.o.valid):
                seen["latency"] = cycle
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen["latency"] == FireUnit.latency(T, mode is Mode.LIF, readout)


@pytest.mark.parametrize("units", [4, 2, 1])
def test_fire_array_units_are_independent(units, rng, seed):
    n_pe = 4
    dut = FireArray(n_pe, T_MAX, ACC, units)
    T = 6
    batches = []
    for _ in range(20):
        sums = rng.integers(-128, 128, (n_pe, T)).tolist()
        bias = rng.integers(-50, 50, n_pe).tolist()
        theta = rng.integers(1, 60, n_pe).tolist()
        batches.append(([s + [0] * (T_MAX - T) for s in sums], bias, theta))
    got = []
    r_in, r_out = random.Random(seed), random.Random(seed + 1)

    async def producer(ctx):
        ctx.set(dut.config, _config(T, Mode.SPIKEPACK, False, 0, Reset.SUBTRACT))
        for sums, bias, theta in batches:
            await stream_put(ctx, dut.i, {"sums": sums, "bias": bias, "theta": theta},
                             rng=r_in, pause=0.3)

    async def consumer(ctx):
        for _ in batches:
            got.append(await stream_get(ctx, dut.o, rng=r_out, pause=0.3))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    for (sums, bias, theta), out in zip(batches, got, strict=False):
        for n in range(n_pe):
            word, _, spikes = _golden_case(sums[n], bias[n], theta[n], T, Mode.SPIKEPACK, False,
                                           0, Reset.SUBTRACT)
            assert (out[n].word, out[n].spikes) == (word, spikes)
