"""UART transmitter and receiver in Amaranth's simulator."""

import os
import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hw.contract.protocol import baud_divisor
from hw.link.uart_rx import UARTReceiver
from hw.link.uart_tx import UARTTransmitter
from sim.rtl.streams import stream_put


def test_baud_divisor():
    assert baud_divisor(100_000_000, 4_000_000) == 25
    assert baud_divisor(100_000_000, 3_000_000) == 33  # 1 % off: accepted
    with pytest.raises(ValueError, match="clocks per bit"):
        baud_divisor(10_000_000, 5_000_000)
    with pytest.raises(ValueError, match="off"):
        baud_divisor(100_000_000, 12_000_000)  # 100 MHz / 8 is 4.2 % off 12 Mbaud


@pytest.mark.parametrize("divisor", [4, 7, 25])
def test_tx_rx_loopback_back_to_back(divisor):
    """Bytes through TX -> RX; with no producer pauses the characters leave with no gap."""
    seed = int(os.environ.get("SPIKEPACK_SEED", random.randrange(1 << 32)))
    print("seed", seed)
    rng = random.Random(seed)
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [rng.randrange(256) for _ in range(40)]
    got, starts, errors = [], [], []

    async def producer(ctx):
        for i, b in enumerate(data):
            await stream_put(ctx, tx.i, b, rng=rng, pause=0.0 if i < 20 else 0.5)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            if ctx.get(rx.frame_error) or ctx.get(rx.overrun):
                errors.append(1)

    async def accept_monitor(ctx):
        cycle = 0
        async for _clk, _rst, valid, ready in ctx.tick().sample(tx.i.valid, tx.i.ready):
            if valid and ready:
                starts.append(cycle)
            cycle += 1

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_process(accept_monitor)
    sim.run_until(1e-8 * 12 * divisor * (len(data) + 5) * 3)
    assert got == data
    assert not errors
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # The first 20 bytes are offered back to back: every character is exactly 10 bits long.
    assert gaps[:19] == [10 * divisor] * 19



@pytest.mark.parametrize("rate_error", [-0.03, 0.0, 0.03])
def test_rx_tolerates_rate_error_and_flags_bad_stop(rate_error):
    divisor = 16
    rx = UARTReceiver(divisor)
    data = [0x00, 0xFF, 0x55, 0xA5, 0x3C]
    got, frame_errors = [], []
    period = 10.0  # ns
    bit_ns = divisor * period * (1 + rate_error)

    async def driver(ctx):
        # Characters as (byte, stop level); one has a low stop bit (a framing error).
        chars = [(b, 1) for b in data[:3]] + [(0x81, 0)] + [(b, 1) for b in data[3:]]
        await ctx.delay(1e-7)
        for b, stop in chars:
            for level in [0] + [(b >> k) & 1 for k in range(8)] + [stop]:
                ctx.set(rx.rx, level)
                await ctx.delay(bit_ns * 1e-9)
            ctx.set(rx.rx, 1)
            await ctx.delay(bit_ns * 1e-9 * 2)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        async for _clk, _rst, valid, payload, ferr in ctx.tick().sample(rx.o.valid, rx.o.payload,
                                                             rx.frame_error):
            if valid:
                got.append(payload)
            if ferr:
                frame_errors.append(1)

    sim = Simulator(rx)
    sim.add_clock(period * 1e-9)
    sim.add_testbench(driver)
    sim.add_process(consumer)
    sim.run_until(bit_ns * 1e-9 * 13 * 7)
    assert got == data
    assert len(frame_errors) == 1


def test_rx_ignores_glitch_and_flags_overrun():
    divisor = 8
    rx = UARTReceiver(divisor)
    got, overruns = [], []

    async def driver(ctx):
        await ctx.tick().repeat(5)
        ctx.set(rx.rx, 0)  # a 2-cycle glitch is not a start bit
        await ctx.tick().repeat(2)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(30)
        for b in (0x12, 0x34):  # nobody takes the first byte: the second overruns
            for level in [0] + [(b >> k) & 1 for k in range(8)] + [1]:
                ctx.set(rx.rx, level)
                await ctx.tick().repeat(divisor)

    async def monitor(ctx):
        samples = ctx.tick().sample(rx.o.valid, rx.o.payload, rx.overrun)
        async for _clk, _rst, valid, payload, ovr in samples:
            if valid and not got:
                got.append(payload)
            if ovr:
                overruns.append(1)

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_process(monitor)
    sim.run_until(1e-8 * (40 + 25 * divisor))
    assert got == [0x12]
    assert len(overruns) == 1
