"""Frame decoder and encoder in Amaranth's simulator, against ``hw.contract.protocol``."""

import os
import random

from amaranth.sim import Simulator

from hw.contract.protocol import (
    Command,
    ReplyParser,
    Status,
    decode_reply,
    encode_request,
    payload_words,
    words_payload,
)
from hw.link.frame_decoder import FrameDecoder
from hw.link.frame_encoder import FrameEncoder
from sim.rtl.streams import run_bounded, stream_get, stream_put


def _seeded():
    seed = int(os.environ.get("SPIKEPACK_SEED", random.randrange(1 << 32)))
    print("seed", seed)
    return random.Random(seed)


def test_encoder_frames_match_host_parser_under_back_pressure():
    rng = _seeded()
    dut = FrameEncoder()
    replies = []
    for _ in range(12):
        n = rng.choice([0, 1, 2, 7])
        words = [rng.randrange(1 << 32) for _ in range(n)]
        replies.append((rng.randrange(256), rng.randrange(256), rng.choice(list(Status)), words))
    expected = sum(6 + 4 * len(w) + 4 for *_, w in replies)
    out = bytearray()

    async def headers(ctx):
        for cmd, seq, status, words in replies:
            await stream_put(ctx, dut.header, {"command": cmd, "seq": seq, "status": status,
                                               "length": 4 * len(words)}, rng=rng, pause=0.5)

    async def data(ctx):
        for *_, words in replies:
            for w in words:
                await stream_put(ctx, dut.data, w, rng=rng, pause=0.5)

    async def sink(ctx):
        while len(out) < expected:
            out.append(await stream_get(ctx, dut.o, rng=rng, pause=0.5))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(headers)
    sim.add_testbench(data)
    sim.add_testbench(sink)
    run_bounded(sim, 1e-8 * 100 * expected)
    parser = ReplyParser()
    parser.feed(bytes(out))
    for cmd, seq, status, words in replies:
        reply = parser.pop()
        assert (reply.command, reply.seq, reply.status, reply.words) == (cmd, seq, status, words)
    assert parser.pop() is None and parser.discarded == 0
    # The host side's own encoder agrees byte for byte.
    assert decode_reply(bytes(out[:6 + 4 * len(replies[0][3]) + 4])).words == replies[0][3]


def _run_decoder(stream_bytes, *, max_payload=64, idle_timeout=40, n_frames, rng, gaps=(),
                 hold=0):
    """Feed bytes (with idle gaps after the indices in ``gaps``); collect frames + payload words."""
    dut = FrameDecoder(max_payload=max_payload, idle_timeout=idle_timeout)
    frames = []

    starts = {}  # byte index -> frame number, when a window of two frames is kept
    if isinstance(stream_bytes, list):
        pos = 0
        for k, frame in enumerate(stream_bytes):
            starts[pos] = k
            pos += len(frame)
        stream_bytes = b"".join(stream_bytes)

    async def producer(ctx):
        for i, b in enumerate(stream_bytes):
            while i in starts and len(frames) < starts[i] - 1:  # at most two frames held
                await ctx.tick()
            await stream_put(ctx, dut.i, b, rng=rng, pause=0.3)
            if i in gaps:
                await ctx.tick().repeat(gaps[i] if isinstance(gaps, dict) else idle_timeout + 5)

    async def consumer(ctx):
        await ctx.tick().repeat(hold + 1)
        while len(frames) < n_frames:
            await ctx.tick().repeat(1 + rng.randrange(30))  # a slow executor holds the frame
            await ctx.tick().until(dut.o.valid)
            info = ctx.get(dut.o.payload)
            words = []
            for k in range((info.length + 3) // 4):
                ctx.set(dut.buf.addr, k)
                ctx.set(dut.buf.en, 1)
                await ctx.tick()
                ctx.set(dut.buf.en, 0)
                words.append(ctx.get(dut.buf.data))
            frames.append((info.command, info.seq, info.length, Status(info.status), words))
            ctx.set(dut.o.ready, 1)
            await ctx.tick()
            ctx.set(dut.o.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    gap_cycles = sum(gaps.values()) if isinstance(gaps, dict) else (idle_timeout + 5) * len(gaps)
    run_bounded(sim, 1e-8 * (hold + gap_cycles + 10 * len(stream_bytes) + 100 * n_frames + 2000))
    assert len(frames) == n_frames, f"decoder queued {len(frames)} frames: {frames}"
    return frames


def test_decoder_good_frames_back_to_back():
    rng = _seeded()
    stream, expect = [], []
    for seq in range(10):
        words = [rng.randrange(1 << 32) for _ in range(rng.randrange(0, 17))]
        payload = words_payload(*words)
        stream.append(encode_request(Command.WRITE, seq, payload))
        expect.append((Command.WRITE, seq, len(payload), Status.OK, words))
    assert _run_decoder(stream, n_frames=10, rng=rng) == expect


def test_decoder_bad_frames_one_error_each():
    rng = _seeded()
    good = encode_request(Command.READ, 7, words_payload(0x1000, 4))
    corrupt = bytearray(encode_request(Command.WRITE, 1, words_payload(1, 2, 3)))
    corrupt[9] ^= 0x10
    too_long = encode_request(Command.WRITE, 2, bytes(68))
    truncated = encode_request(Command.WRITE, 3, words_payload(1, 2, 3))[:11]
    garbage = bytes([0x00, 0x13, 0xA5, 0x01])
    pieces = [bytes(corrupt), too_long, truncated, garbage, good]
    stream, gaps = b"", set()
    for p in pieces:
        stream += p
        gaps.add(len(stream) - 1)
    frames = _run_decoder(stream, n_frames=5, rng=rng, gaps=gaps)
    statuses = [f[3] for f in frames]
    assert statuses == [Status.ERR_CRC, Status.ERR_LENGTH, Status.ERR_TRUNCATED, Status.ERR_SYNC,
                        Status.OK]
    assert frames[2][:2] == (Command.WRITE, 3)  # a truncated frame keeps what it had
    assert frames[4][:3] == (Command.READ, 7, 8)
    assert payload_words(words_payload(*frames[4][4])) == [0x1000, 4]


def test_decoder_length_limit_in_either_byte():
    """Lengths around max_payload, over it in the length's low byte or only in its high byte:
    up to max_payload is taken, anything above is ERR_LENGTH."""
    rng = _seeded()
    for max_payload in (64, 1020, 1024):
        lengths = [0, 4, max_payload - 4, max_payload, max_payload + 4, 256, 260, 512,
                   max_payload + 256, (max_payload + 256) & ~0xFF]
        stream, gaps, expect = b"", set(), []
        for seq, length in enumerate(lengths):
            stream += encode_request(Command.WRITE, seq, bytes(length))
            gaps.add(len(stream) - 1)  # an over-long frame is dropped until the line is idle
            expect.append((seq, Status.OK if length <= max_payload else Status.ERR_LENGTH))
        frames = _run_decoder(stream, max_payload=max_payload, n_frames=len(lengths), rng=rng,
                              gaps=gaps)
        assert [(f[1], f[3]) for f in frames] == expect, max_payload
        assert [f[2] for f in frames if f[3] == Status.OK] == [
            n for n in lengths if n <= max_payload]


def test_decoder_third_frame_overruns_while_two_are_held():
    rng = _seeded()
    frames_in = [encode_request(Command.WRITE, s, words_payload(s, s + 1)) for s in range(4)]
    stream = b"".join(frames_in[:3])
    # Frame 3 comes after the line has been idle and the consumer has released frame 0 (a frame
    # right behind the overrun one would be part of the same discarded burst).
    gaps = {len(stream) - 1: 3000}
    stream += frames_in[3]
    frames = _run_decoder(stream, n_frames=4, rng=rng, gaps=gaps, hold=2000)
    assert [(f[1], f[3]) for f in frames] == [
        (0, Status.OK), (1, Status.OK), (2, Status.ERR_OVERRUN), (3, Status.OK)]
    assert frames[3][4] == [3, 4]
