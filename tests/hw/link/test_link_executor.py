"""Link executor in Amaranth's simulator: frames in, bus traffic against a slow, stalling core
model, replies out. The decoder and encoder around it are the real blocks (byte streams, no UART).
"""

import os
import random
from collections import deque

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hw.contract.bus import REG_CONTROL, REG_STATUS, REGIONS_BASE
from hw.contract.protocol import Command, ReplyParser, Status, encode_request, words_payload
from hw.contract.registers import (
    CONTROL_ABORT,
    CONTROL_START,
    STATUS_BUSY,
    STATUS_DONE,
    STATUS_ERROR,
)
from hw.link.frame_decoder import FrameDecoder
from hw.link.frame_encoder import FrameEncoder
from hw.link.link_executor import LinkExecutor
from sim.rtl.streams import run_bounded, stream_get, stream_put

MAX_PAYLOAD = 64
ADDR_LIMIT = REGIONS_BASE + 256
RUN_TIMEOUT = 3000
IDLE = 40
IDENT = (0x11, 0x22, 0x33)


def build():
    m = Module()
    m.submodules.dec = dec = FrameDecoder(max_payload=MAX_PAYLOAD, idle_timeout=IDLE)
    m.submodules.exe = exe = LinkExecutor(max_payload=MAX_PAYLOAD, addr_limit=ADDR_LIMIT,
                                          run_timeout=RUN_TIMEOUT, identify=IDENT)
    m.submodules.enc = enc = FrameEncoder()
    wiring.connect(m, dec.o, exe.frame)
    wiring.connect(m, exe.buf, dec.buf)
    wiring.connect(m, exe.reply, enc.header)
    wiring.connect(m, exe.reply_data, enc.data)
    return m, dec, exe, enc


class CoreModel:
    """Bus slave: stalls requests at random, answers reads after random delays (in order).

    RAM at REGIONS_BASE; REG_CONTROL start makes it busy for ``batch * 50`` cycles, then done;
    batch 13 ends in error, batch 99 never finishes; abort clears busy.
    """

    def __init__(self, rng, stall=0.4, max_delay=12):
        self.rng, self.stall, self.max_delay = rng, stall, max_delay
        self.mem = {}
        self.writes = []
        self.busy_until = 0
        self.status = 0
        self.cycle = 0

    def status_word(self):
        if self.status & STATUS_BUSY and self.cycle >= self.busy_until:
            self.status = STATUS_DONE | (self.status & STATUS_ERROR)
        return self.status

    def request(self, addr, data, write):
        if write:
            self.writes.append((addr, data))
            if addr == REG_CONTROL:
                batch = data >> 16
                if data & CONTROL_ABORT:
                    self.status = 0
                elif data & CONTROL_START:
                    self.status = STATUS_BUSY | (STATUS_ERROR if batch == 13 else 0)
                    self.busy_until = self.cycle + (10**9 if batch == 99 else 50 * batch)
            else:
                self.mem[addr] = data
            return None
        if addr == REG_STATUS:
            return self.status_word()
        return self.mem.get(addr, 0xDEAD0000 | (addr & 0xFFFF))

    async def run(self, ctx, bus):
        responses, current = deque(), None
        while True:
            ready = self.rng.random() >= self.stall
            ctx.set(bus.req.ready, ready)
            if current is None and responses and responses[0][0] <= self.cycle:
                current = responses.popleft()[1]
            ctx.set(bus.resp.valid, current is not None)
            if current is not None:
                ctx.set(bus.resp.payload, current)
            _, _, rv, rp, sv, sr = await ctx.tick().sample(
                bus.req.valid, bus.req.payload, bus.resp.valid, bus.resp.ready)
            self.cycle += 1
            if rv and ready:
                value = self.request(rp.addr, rp.data, rp.write)
                if value is not None:
                    due = max([self.cycle + self.rng.randrange(self.max_delay)]
                              + [d for d, _ in responses])
                    responses.append((due, value))
            if sv and sr:
                current = None


def exchange(requests, *, seed=None, gap_after=()):
    """Send request frames (a line gap after the indices in ``gap_after``); return the replies."""
    if seed is None:
        seed = int(os.environ.get("SPIKEPACK_SEED", random.randrange(1 << 32)))
    print("seed", seed)
    rng = random.Random(seed)
    m, dec, exe, enc = build()
    core = CoreModel(rng)
    replies = []
    parser = ReplyParser()

    async def host_tx(ctx):
        for i, frame in enumerate(requests):
            while len(replies) < i - 1:  # at most two frames in flight (the decoder holds two)
                await ctx.tick()
            for b in frame:
                await stream_put(ctx, dec.i, b, rng=rng, pause=0.3)
            if i in gap_after:
                await ctx.tick().repeat(IDLE + 10)
            await ctx.tick().repeat(1 + rng.randrange(200))

    async def host_rx(ctx):
        while len(replies) < len(requests):
            parser.feed(bytes([await stream_get(ctx, enc.o, rng=rng, pause=0.5)]))
            reply = parser.pop()
            if reply is not None:
                replies.append(reply)

    async def core_tb(ctx):
        await core.run(ctx, exe.bus)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx)
    sim.add_testbench(core_tb, background=True)
    n_bytes = sum(len(r) for r in requests)
    run_bounded(sim, 1e-8 * (20 * n_bytes + 600 * len(requests) + 4 * RUN_TIMEOUT + 5000))
    assert len(replies) == len(requests), f"only {len(replies)} replies: {replies}"
    return replies, core


def test_write_read_identify_with_back_pressure():
    data = list(range(100, 115))
    reqs = [
        encode_request(Command.WRITE, 1, words_payload(REGIONS_BASE + 3, *data)),
        encode_request(Command.READ, 2, words_payload(REGIONS_BASE + 3, len(data))),
        encode_request(Command.IDENTIFY, 3),
        encode_request(Command.READ, 4, words_payload(REGIONS_BASE + 2, 16)),
        encode_request(Command.WRITE, 5, words_payload(REGIONS_BASE)),  # zero words is fine
    ]
    replies, core = exchange(reqs)
    assert [(r.seq, r.status) for r in replies] == [(s, Status.OK) for s in range(1, 6)]
    assert replies[1].words == data
    assert replies[2].words == list(IDENT)
    assert replies[3].words == [0xDEAD0000 | ((REGIONS_BASE + 2) & 0xFFFF)] + data
    assert core.writes == [(REGIONS_BASE + 3 + i, d) for i, d in enumerate(data)]


def test_run_done_error_timeout_abort():
    reqs = [
        encode_request(Command.RUN, 1, words_payload(3)),
        encode_request(Command.RUN, 2, words_payload(13)),
        encode_request(Command.RUN, 3, words_payload(99)),
        encode_request(Command.ABORT, 4),
    ]
    replies, core = exchange(reqs)
    assert [(r.seq, r.status) for r in replies] == [
        (1, Status.OK), (2, Status.ERR_CORE), (3, Status.ERR_RUN_TIMEOUT), (4, Status.OK)]
    assert replies[0].words == [STATUS_DONE]
    assert replies[1].words[0] & STATUS_ERROR
    assert replies[2].words[0] & STATUS_BUSY
    controls = [d for a, d in core.writes if a == REG_CONTROL]
    assert controls == [CONTROL_START | 3 << 16, CONTROL_START | 13 << 16, CONTROL_START | 99 << 16,
                        CONTROL_ABORT, CONTROL_ABORT]


def test_refused_requests_touch_nothing():
    bad_crc = bytearray(encode_request(Command.WRITE, 1, words_payload(REGIONS_BASE, 5)))
    bad_crc[-1] ^= 1
    reqs = [
        bytes(bad_crc),
        encode_request(0x77, 2),
        encode_request(Command.WRITE, 3, words_payload(ADDR_LIMIT - 1, 1, 2)),
        encode_request(Command.WRITE, 4, words_payload(REGIONS_BASE, 1)[:6]),
        encode_request(Command.READ, 5, words_payload(REGIONS_BASE, 0)),
        encode_request(Command.READ, 6, words_payload(REGIONS_BASE, MAX_PAYLOAD // 4 + 1)),
        encode_request(Command.READ, 7, words_payload(0xFFFFFFFF, 1)),
        encode_request(Command.RUN, 8, words_payload(0)),
        encode_request(Command.IDENTIFY, 9, b"\0\0\0\0"),
        encode_request(Command.WRITE, 10, bytes(MAX_PAYLOAD + 4)),
        encode_request(Command.READ, 11, words_payload(ADDR_LIMIT - 2, 2)),
    ]
    replies, core = exchange(reqs, gap_after={0, 9})
    assert [(r.seq, r.status) for r in replies] == [
        (1, Status.ERR_CRC), (2, Status.ERR_COMMAND), (3, Status.ERR_ADDRESS),
        (4, Status.ERR_LENGTH), (5, Status.ERR_LENGTH), (6, Status.ERR_LENGTH),
        (7, Status.ERR_ADDRESS), (8, Status.ERR_LENGTH), (9, Status.ERR_LENGTH),
        (10, Status.ERR_LENGTH), (11, Status.OK)]
    assert core.writes == []
