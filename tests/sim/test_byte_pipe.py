"""sim.rtl.byte_pipe in Amaranth's simulator: chunks -> UART line -> chunks, bytes unchanged.

The pipe's transmitter is looped back into its receiver (and, in the second test, through the
``hw.link`` receiver a device uses), with random chunk sizes and random pauses on both streams.
"""

import random

from amaranth.sim import Simulator

from hw.link.uart_rx import UARTReceiver
from sim.rtl.byte_pipe import BytePipe
from sim.rtl.streams import run_bounded, stream_get, stream_put

DIVISOR = 4
CHUNK = 8


def _chunks(r: random.Random, n_bytes: int):
    data = bytes(r.randrange(256) for _ in range(n_bytes))
    chunks, i = [], 0
    while i < len(data):
        n = r.randint(0, CHUNK)
        chunks.append(data[i:i + n])
        i += n
    return data, chunks


def test_byte_pipe_loopback(seed):
    r = random.Random(seed)
    dut = BytePipe(DIVISOR, chunk=CHUNK, depth=4)
    data, chunks = _chunks(r, 120)
    got = bytearray()
    sizes = []

    async def loop(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            ctx.set(dut.rx, tx)

    async def producer(ctx):
        for c in chunks:
            await stream_put(ctx, dut.h2d, {"data": int.from_bytes(c, "little"),
                                            "count": len(c)}, rng=r, pause=0.3)

    async def consumer(ctx):
        while len(got) < len(data):
            p = await stream_get(ctx, dut.d2h, rng=r, pause=0.3)
            assert 1 <= p.count <= CHUNK
            sizes.append(int(p.count))
            got.extend(int(p.data).to_bytes(CHUNK, "little")[:p.count])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(loop)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    run_bounded(sim, 200 * 10 * DIVISOR * 1e-6, "byte pipe loopback")
    assert bytes(got) == data
    # the producer keeps the line busy: bytes are packed into full chunks, not sent one by one
    assert sizes.count(CHUNK) >= len(data) // CHUNK - 2


def test_byte_pipe_line_is_back_to_back(seed):
    """Queued bytes leave as one unbroken character train a device's UART receiver decodes."""
    r = random.Random(seed)
    pipe = BytePipe(DIVISOR, chunk=CHUNK, depth=8)
    rx = UARTReceiver(DIVISOR)
    data = bytes(r.randrange(256) for _ in range(5 * CHUNK))
    got, edges = bytearray(), []

    from amaranth.hdl import Module

    m = Module()
    m.submodules.pipe, m.submodules.rx = pipe, rx
    m.d.comb += rx.rx.eq(pipe.tx)

    async def producer(ctx):
        for i in range(0, len(data), CHUNK):
            c = data[i:i + CHUNK]
            await stream_put(ctx, pipe.h2d, {"data": int.from_bytes(c, "little"),
                                             "count": len(c)})

    async def watch(ctx):
        cycle, last = 0, 1
        async for _, _, tx, valid, byte in ctx.tick().sample(pipe.tx, rx.o.valid, rx.o.payload):
            if last and not tx:
                edges.append(cycle)
            if valid:
                got.append(byte)
            last, cycle = tx, cycle + 1

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_process(watch)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    run_bounded(sim, (len(data) + 5) * 10 * DIVISOR * 1e-6, "byte pipe line")
    assert bytes(got) == data
    # every start bit exactly one character after the previous one: no idle time on the line
    starts = [e for e in edges if (e - edges[0]) % (10 * DIVISOR) == 0]
    assert len(starts) == len(data) and starts[-1] - starts[0] == (len(data) - 1) * 10 * DIVISOR
