"""Amaranth-simulator tests of the skid buffer and the stream queue: order, no loss, full
throughput, back-pressure, and the queue cycle for cycle against the cycle model's."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.common.skid_buffer import SkidBuffer
from hw.common.stream_queue import StreamQueue
from sim.rtl.streams import stream_get, stream_put
from sw.research.cycle_model import _queue_step

BLOCKS = {"skid": lambda: SkidBuffer(16), "queue4": lambda: StreamQueue(16, 4),
          "queue8": lambda: StreamQueue(16, 8, ready_copies=1),
          "queue4_two_out": lambda: StreamQueue(16, 4, two_out=True),
          "queue8_two_out": lambda: StreamQueue(16, 8, ready_copies=1, two_out=True)}


@pytest.mark.parametrize("block", list(BLOCKS))
@pytest.mark.parametrize("pause_in,pause_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_stream_stage_keeps_every_beat_in_order(block, pause_in, pause_out, seed):
    dut = BLOCKS[block]()
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
    # A bound, so that a stage that loses a beat fails here instead of leaving the consumer
    # waiting forever (300 beats take under 1,500 cycles, a few time steps each, at these
    # pauses).
    steps = 0
    while sim.advance():
        steps += 1
        assert steps < 100_000, f"{len(beats) - len(got)} of {len(beats)} beats never left"
    assert got == beats
    if pause_in == pause_out == 0.0:
        # A beat per cycle once the stream flows.
        assert cycles["n"] <= len(beats) + 3


@pytest.mark.parametrize("block", list(BLOCKS))
def test_stream_stage_follows_the_cycle_model(block, seed):
    """Cycle for cycle, random offers (held until taken, as the fetcher holds its block) and a
    random consumer: ``i.ready``, ``o.valid`` and ``o.payload`` == the cycle model's
    ``_queue_step``."""
    dut = BLOCKS[block]()
    entries, skid = (dut.entries, False) if isinstance(dut, StreamQueue) else (1, True)
    rng = random.Random(seed)
    sent, got = [], []

    async def bench(ctx):
        out, queue = None, ()
        offer = None
        for cycle in range(2000):
            if offer is None and rng.random() < 0.7:
                offer = rng.randrange(1 << 16)
            ready_out = rng.random() < (0.2 if cycle % 400 < 150 else 0.8)
            ctx.set(dut.i.valid, offer is not None)
            ctx.set(dut.i.payload, offer or 0)
            ctx.set(dut.o.ready, ready_out)
            assert ctx.get(dut.i.ready) == (len(queue) < entries), cycle
            if isinstance(dut, StreamQueue):
                assert ctx.get(dut.ready_copy[0] if dut._copies else dut.i.ready) == \
                    ctx.get(dut.i.ready)
            taken = out is not None and ready_out
            if taken:
                got.append(out)
            accepted = offer is not None and ctx.get(dut.i.ready)
            out, queue = _queue_step(out, queue, taken, offer, entries, skid=skid)
            if accepted:
                sent.append(offer)
                offer = None
            await ctx.tick()
            assert (ctx.get(dut.o.valid), ctx.get(dut.o.payload) if out is not None else None) \
                == (out is not None, out), cycle

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == sent[:len(got)] and len(sent) - len(got) <= entries + 1


def test_stream_queue_refuses_bad_sizes():
    with pytest.raises(ValueError, match="power of two"):
        StreamQueue(8, 3)
    with pytest.raises(ValueError, match="power of two"):
        StreamQueue(8, 1)
