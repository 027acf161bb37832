"""Amaranth-simulator test of the skid buffer: order, no loss, full throughput, back-pressure."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.common.skid_buffer import SkidBuffer
from sim.rtl.streams import stream_get, stream_put


@pytest.mark.parametrize("pause_in,pause_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_skid_buffer_keeps_every_beat_in_order(pause_in, pause_out, seed):
    dut = SkidBuffer(16)
    beats = [random.Random(seed).randrange(1 << 16) for _ in range(300)]
    got, cycles = [], {}

    async def producer(ctx):
        r = random.Random(seed + 1)
        for b in beats:
            await stream_put(ctx, dut.i, b, rng=r, pause=pause_in)

    async def consumer(ctx):
        r = random.Random(seed + 2)
        start = None
        for _ in beats:
            got.append(await stream_get(ctx, dut.o, rng=r, pause=pause_out))
            start = start if start is not None else ctx.get(cycle_count)
        cycles["n"] = ctx.get(cycle_count) - start

    cycle_count = Signal(32)
    top = Module()
    top.submodules.dut = dut
    top.d.sync += cycle_count.eq(cycle_count + 1)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == beats
    if pause_in == pause_out == 0.0:
        # A beat per cycle once the stream flows.
        assert cycles["n"] <= len(beats) + 2
