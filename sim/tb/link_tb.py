"""cocotb tests of the host link through its UART pins (DUT: ``sim.rtl.bus_ram.LinkTestTop``).

The host side is cocotbext-uart's ``UartSource``/``UartSink`` -- a UART model that is not the
project's own -- driven either by raw frames (``uart_frames``, ``fuzz``) or by the project's driver
``sw.host.driver.Device`` running in a ``cocotb.bridge`` thread (``driver_*``, ``bench_upload``).

Parameters come from ``sim.rtl.runner.run_cocotb(env=...)``: ``clk_freq``, ``baud``,
``max_payload``, ``idle_timeout``, ``depth``, ``identify`` (the link's IDENTIFY words),
``fuzz_frames``, ``min_malformed`` (the fuzz goes on until it has sent this many malformed frames
too), ``seed``, ``run_cycles`` and ``run_timeout`` (the fixture core's busy time per sample and the
link's run timeout, for ``link_timeout_overrun``), ``results`` (a JSON file the tests add their
figures to).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import warnings
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, First, Timer
from cocotbext.uart import UartSink, UartSource

from hw.contract.bus import ID_BASE, ID_MAGIC, REG_STATUS, REGIONS_BASE
from hw.contract.protocol import (
    REQUEST_OVERHEAD,
    SYNC_REQUEST,
    Command,
    ReplyParser,
    Status,
    encode_request,
    words_payload,
)
from sim.rtl.runner import cocotb_env

# cocotbext-uart 0.1.4 calls cocotb 2's deprecated ``setimmediatevalue`` once per UART; that is
# theirs to change, and must not fail runs made with PYTHONWARNINGS=error.
warnings.filterwarnings("ignore", message="Use `handle.set\\(Immediate",
                        category=DeprecationWarning)

CLK_FREQ = cocotb_env("clk_freq", 100_000_000)
BAUD = cocotb_env("baud", 25_000_000)
MAX_PAYLOAD = cocotb_env("max_payload", 1024)
IDLE_TIMEOUT = cocotb_env("idle_timeout", 64)
DEPTH = cocotb_env("depth", 1024)
IDENTIFY = cocotb_env("identify", [])
PERIOD_NS = 1e9 / CLK_FREQ
BYTE_NS = 10e9 / BAUD


def record(key, value):
    path = cocotb_env("results")
    if path is None:
        return
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1))


class TB:
    def __init__(self, dut):
        self.dut = dut
        dut.rst.value = 1  # before the clock runs: no X on the pins (Icarus)
        dut.rx.value = 1
        for name in ("cocotb.top.rx", "cocotb.top.tx", "cocotb.rx", "cocotb.tx"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.source = UartSource(dut.rx, baud=BAUD, bits=8, stop_bits=1)
        self.sink = UartSink(dut.tx, baud=BAUD, bits=8, stop_bits=1)
        logging.getLogger(f"cocotb.{dut.rx._path}").setLevel(logging.WARNING)
        logging.getLogger(f"cocotb.{dut.tx._path}").setLevel(logging.WARNING)
        self.parser = ReplyParser(MAX_PAYLOAD)
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 5)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 5)

    async def send(self, data: bytes):
        await self.source.write(data)

    async def reply(self, timeout_ns):
        """The next reply frame, or ``None`` if none completes within ``timeout_ns``."""
        deadline = get_sim_time("ns") + timeout_ns
        while True:
            reply = self.parser.pop()
            if reply is not None:
                return reply
            if not self.sink.empty():
                self.parser.feed(bytes(self.sink.read_nowait()))
                continue
            left = deadline - get_sim_time("ns")
            if left <= 0:
                return None
            self.sink.sync.clear()
            await First(self.sink.sync.wait(), Timer(max(1, round(left)), unit="ns"))

    def reply_timeout(self, request_len, reply_len=MAX_PAYLOAD + 10):
        """Upper bound for a reply: both frames on the wire, idle timeout, and slack."""
        return (request_len + reply_len + 20) * BYTE_NS + (IDLE_TIMEOUT + 2000) * PERIOD_NS

    async def exchange(self, frame: bytes, *, reply_len=MAX_PAYLOAD + 10):
        await self.send(frame)
        reply = await self.reply(self.reply_timeout(len(frame), reply_len))
        assert reply is not None, f"no reply to {frame[:16].hex()}... (link hung?)"
        return reply


@cocotb.test()
async def uart_frames(dut):
    """Frames exchanged with cocotbext-uart: identify, write, read back, run, abort, refusals."""
    tb = TB(dut)
    await tb.reset()
    r = await tb.exchange(encode_request(Command.IDENTIFY, 1))
    assert (r.seq, r.status, r.words) == (1, Status.OK, IDENTIFY)
    r = await tb.exchange(encode_request(Command.READ, 2, words_payload(ID_BASE, 1)))
    assert r.words == [ID_MAGIC]
    data = [random.Random(5).randrange(1 << 32) for _ in range(40)]
    r = await tb.exchange(encode_request(Command.WRITE, 3, words_payload(REGIONS_BASE + 7, *data)))
    assert (r.seq, r.status, r.payload) == (3, Status.OK, b"")
    r = await tb.exchange(encode_request(Command.READ, 4, words_payload(REGIONS_BASE + 7, 40)))
    assert (r.seq, r.status, r.words) == (4, Status.OK, data)
    r = await tb.exchange(encode_request(Command.RUN, 5, words_payload(2)))
    assert (r.seq, r.status, r.words) == (5, Status.OK, [0b10])
    r = await tb.exchange(encode_request(Command.ABORT, 6))
    assert (r.seq, r.status) == (6, Status.OK)
    r = await tb.exchange(encode_request(Command.READ, 7, words_payload(REG_STATUS, 1)))
    assert r.words == [0]
    r = await tb.exchange(encode_request(Command.WRITE, 8, words_payload(REGIONS_BASE + DEPTH, 1)))
    assert r.status == Status.ERR_ADDRESS
    assert int(dut.writes.value) == 40 + 2  # RAM words, run, abort

    # Turnaround: end of the request's last stop bit to the start of the reply (the reply's own
    # wire time subtracted; the sink reports a byte half a bit into its stop bit).
    turnaround = {}
    for name, frame, reply_len in [
        ("read1", encode_request(Command.READ, 9, words_payload(REGIONS_BASE, 1)), 14),
        ("write1", encode_request(Command.WRITE, 10, words_payload(REGIONS_BASE, 1)), 10),
        ("identify", encode_request(Command.IDENTIFY, 11), 10 + 4 * len(IDENTIFY)),
    ]:
        await tb.source.write(frame)
        await tb.source.wait()
        t0 = get_sim_time("ns")
        r = await tb.reply(tb.reply_timeout(0))
        assert r is not None and r.status == Status.OK
        wire = (reply_len * 10 - 0.5) * 1e9 / BAUD
        turnaround[name] = round((get_sim_time("ns") - t0 - wire) / PERIOD_NS)
    dut._log.info("turnaround in cycles: %s", turnaround)
    record("turnaround_cycles", turnaround)


class Fuzzer:
    """Random valid, corrupted, truncated and refused frames against a model of the RAM."""

    KINDS = ("write", "read", "identify", "corrupt", "truncate", "garbage", "bad_command",
             "bad_address", "bad_length", "too_long", "pair", "run", "paused", "glued")
    WEIGHTS = (14, 12, 3, 18, 10, 6, 4, 5, 5, 3, 6, 2, 3, 5)
    #: Kinds that send a malformed frame (refused with an error status, nothing executed).
    MALFORMED = ("corrupt", "truncate", "garbage", "bad_command", "bad_address", "bad_length",
                 "too_long", "glued")

    def __init__(self, tb, rng):
        self.tb, self.rng = tb, rng
        self.model = [0] * DEPTH
        self.writes = 0
        self.seq = 0
        self.counts = {k: 0 for k in self.KINDS}
        self.statuses = {}

    @property
    def malformed(self):
        """Malformed frames sent so far."""
        return sum(self.counts[k] for k in self.MALFORMED)

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def size(self, max_words):
        """Mostly short transfers (simulation time), now and then up to a full frame."""
        if self.rng.random() < 0.04:
            return self.rng.randrange(1, max_words + 1)
        return self.rng.randrange(1, min(16, max_words) + 1)

    def random_write(self, max_words=None):
        max_words = max_words or (MAX_PAYLOAD // 4 - 1)
        n = self.size(max_words)
        addr = self.rng.randrange(DEPTH - n + 1)
        words = [self.rng.randrange(1 << 32) for _ in range(n)]
        return addr, words, encode_request(Command.WRITE, self.next_seq(),
                                           words_payload(REGIONS_BASE + addr, *words))

    def random_read(self):
        n = self.size(MAX_PAYLOAD // 4)
        addr = self.rng.randrange(DEPTH - n + 1)
        return addr, n, encode_request(Command.READ, self.next_seq(),
                                       words_payload(REGIONS_BASE + addr, n))

    def note(self, status):
        name = Status(status).name if status in Status._value2member_map_ else str(status)
        self.statuses[name] = self.statuses.get(name, 0) + 1

    async def expect_refusal(self, frame, expected=None):
        before = int(self.tb.dut.writes.value)
        r = await self.tb.exchange(frame)
        self.note(r.status)
        assert r.status != Status.OK, f"bad frame {frame.hex()} accepted"
        if expected is not None:
            assert r.status == expected, f"{frame[:24].hex()}: {r.status!r}, not {expected!r}"
        assert int(self.tb.dut.writes.value) == before, "a refused frame wrote to the bus"

    async def valid_write(self):
        addr, words, frame = self.random_write()
        r = await self.tb.exchange(frame)
        self.note(r.status)
        assert (r.seq, r.status) == (frame[2], Status.OK)
        self.model[addr:addr + len(words)] = words
        self.writes += len(words)

    async def valid_read(self):
        addr, n, frame = self.random_read()
        r = await self.tb.exchange(frame)
        self.note(r.status)
        assert (r.seq, r.status) == (frame[2], Status.OK)
        assert r.words == self.model[addr:addr + n], f"read {n} at {addr} differs from the model"

    async def step(self):
        kind = self.rng.choices(self.KINDS, self.WEIGHTS)[0]
        self.counts[kind] += 1
        rng = self.rng
        if kind == "write":
            await self.valid_write()
        elif kind == "read":
            await self.valid_read()
        elif kind == "identify":
            r = await self.tb.exchange(encode_request(Command.IDENTIFY, self.next_seq()))
            self.note(r.status)
            assert (r.status, r.words) == (Status.OK, IDENTIFY)
        elif kind == "corrupt":
            original = rng.choice([self.random_write(16), self.random_read()])[2]
            frame = bytearray(original)
            # (flips that land on one byte may cancel out: flip until the frame differs)
            while frame == original:
                for _ in range(rng.choice([1, 1, 2, 5])):
                    i = rng.randrange(len(frame))
                    frame[i] ^= rng.randrange(1, 256)
            await self.expect_refusal(bytes(frame))
        elif kind == "truncate":
            frame = self.random_write(rng.choice([8, 64]))[2]
            await self.expect_refusal(frame[:rng.randrange(1, len(frame))], Status.ERR_TRUNCATED)
        elif kind == "garbage":
            junk = bytes([rng.choice([b for b in range(256) if b != SYNC_REQUEST])]) + \
                rng.randbytes(rng.randrange(0, 40))
            await self.expect_refusal(junk, Status.ERR_SYNC)
        elif kind == "bad_command":
            command = rng.choice([0, 6, 0x7F, 0xFF])
            await self.expect_refusal(encode_request(command, self.next_seq(),
                                                     rng.randbytes(rng.randrange(0, 12))),
                                      Status.ERR_COMMAND)
        elif kind == "bad_address":
            n = rng.randrange(1, 9)
            addr = rng.choice([REGIONS_BASE + DEPTH - n + 1 + rng.randrange(4), 0xFFFFFF,
                               rng.randrange(1 << 32) | 1 << 30])
            frame = rng.choice([
                encode_request(Command.WRITE, self.next_seq(), words_payload(addr, *range(n))),
                encode_request(Command.READ, self.next_seq(), words_payload(addr, n)),
            ])
            await self.expect_refusal(frame, Status.ERR_ADDRESS)
        elif kind == "bad_length":
            frame = rng.choice([
                encode_request(Command.WRITE, self.next_seq(), words_payload(REGIONS_BASE)[:3]),
                encode_request(Command.WRITE, self.next_seq(),
                               words_payload(REGIONS_BASE, 1) + b"x"),
                encode_request(Command.READ, self.next_seq(), words_payload(REGIONS_BASE, 0)),
                encode_request(Command.READ, self.next_seq(),
                               words_payload(REGIONS_BASE, MAX_PAYLOAD // 4 + 1)),
                encode_request(Command.RUN, self.next_seq(), words_payload(0)),
                encode_request(Command.IDENTIFY, self.next_seq(), b"\0"),
                encode_request(Command.ABORT, self.next_seq(), words_payload(1)),
            ])
            await self.expect_refusal(frame, Status.ERR_LENGTH)
        elif kind == "too_long":
            # Refused at the length field; the rest of the burst is dropped (often sent only in
            # part, to save simulation time).
            frame = encode_request(Command.WRITE, self.next_seq(),
                                   words_payload(REGIONS_BASE) + rng.randbytes(MAX_PAYLOAD - 3))
            if rng.random() < 0.9:
                frame = frame[:rng.randrange(5, 40)]
            await self.expect_refusal(frame, Status.ERR_LENGTH)
        elif kind == "run":
            batch = rng.randrange(1, 4)
            r = await self.tb.exchange(encode_request(Command.RUN, self.next_seq(),
                                                      words_payload(batch)))
            self.note(r.status)
            assert (r.status, r.words) == (Status.OK, [0b10])  # done, not busy
            self.writes += 1
            if rng.random() < 0.5:
                r = await self.tb.exchange(encode_request(Command.ABORT, self.next_seq()))
                self.note(r.status)
                assert r.status == Status.OK
                self.writes += 1
        elif kind == "paused":
            # A valid frame with a pause shorter than the idle timeout inside: still accepted.
            addr, words, frame = self.random_write(16)
            cut = rng.randrange(1, len(frame))
            await self.tb.send(frame[:cut])
            await self.tb.source.wait()
            # The timeout runs from byte to byte (character time included): pause less than
            # idle_timeout minus a character and a bit.
            divisor = round(CLK_FREQ / BAUD)
            await ClockCycles(self.tb.dut.clk, rng.randrange(1, IDLE_TIMEOUT - 11 * divisor))
            r = await self.tb.exchange(frame[cut:])
            self.note(r.status)
            assert (r.seq, r.status) == (frame[2], Status.OK)
            self.model[addr:addr + len(words)] = words
            self.writes += len(words)
        elif kind == "glued":
            # A bad frame with a valid one glued to its end in one burst: the decoder drops the
            # rest of a bad burst, so the burst gets one error reply and the valid frame is lost.
            bad = rng.choice(["corrupt", "truncate", "garbage"])
            frame = bytearray(self.random_write(8)[2])
            if bad == "corrupt":
                frame[rng.randrange(1, len(frame))] ^= rng.randrange(1, 256)
            elif bad == "truncate":
                frame = frame[:rng.randrange(1, len(frame))]
            else:
                frame = bytearray([rng.choice([b for b in range(256) if b != SYNC_REQUEST])])
            valid = rng.choice([self.random_write(8), self.random_read()])[2]
            await self.expect_refusal(bytes(frame) + valid)
        elif kind == "pair":
            # Two valid frames back to back (the link holds two): both answered, in order.
            a_addr, a_words, a = self.random_write(32)
            b_addr, b_n, b = self.random_read()
            await self.tb.send(a + b)
            ra = await self.tb.reply(self.tb.reply_timeout(len(a) + len(b)))
            rb = await self.tb.reply(self.tb.reply_timeout(len(b)))
            assert ra is not None and rb is not None, "no reply to a pair of frames"
            self.note(ra.status)
            self.note(rb.status)
            assert (ra.seq, ra.status, rb.seq, rb.status) == (a[2], Status.OK, b[2], Status.OK)
            self.model[a_addr:a_addr + len(a_words)] = a_words
            self.writes += len(a_words)
            assert rb.words == self.model[b_addr:b_addr + b_n]


@cocotb.test()
async def fuzz(dut):
    """Thousands of random frames; bad ones refused without effect; the link never hangs."""
    seed = cocotb_env("seed", 1)
    n_frames = cocotb_env("fuzz_frames", 2000)
    min_malformed = cocotb_env("min_malformed", 0)
    dut._log.info("fuzz seed %d, %d frames, at least %d malformed", seed, n_frames, min_malformed)
    tb = TB(dut)
    await tb.reset()
    fz = Fuzzer(tb, random.Random(seed))
    t0 = get_sim_time("ns")
    wall0 = time.monotonic()
    sent = 0
    while sent < n_frames or fz.malformed < min_malformed:
        await fz.step()
        sent += 1
        if sent % 1000 == 0:
            dut._log.info("fuzz progress: %d frames, %d malformed, %.0f s", sent, fz.malformed,
                          time.monotonic() - wall0)
    # Afterwards: every word of the RAM matches the model, and only valid writes reached the bus.
    per = MAX_PAYLOAD // 4
    for addr in range(0, DEPTH, per):
        r = await tb.exchange(encode_request(Command.READ, fz.next_seq(),
                                             words_payload(REGIONS_BASE + addr, per)))
        assert r.status == Status.OK and r.words == fz.model[addr:addr + per], \
            f"RAM differs from the model at {addr}..{addr + per}"
    assert int(dut.writes.value) == fz.writes
    assert tb.parser.discarded == 0, "stray bytes between replies"
    result = {"seed": seed, "frames": sent, "malformed": fz.malformed, "kinds": fz.counts,
              "replies": fz.statuses, "bus_writes": fz.writes, "hangs": 0,
              "sim_us": (get_sim_time("ns") - t0) / 1e3, "wall_s": time.monotonic() - wall0}
    dut._log.info("fuzz result %s", json.dumps(result))
    record("fuzz", result)


@cocotb.test()
async def link_timeout_overrun(dut):
    """The link's run timeout and frame overrun, provoked; the link answers right afterwards.

    Run timeout: a RUN whose batch keeps the fixture core busy longer than ``run_timeout`` is
    aborted by the link (a write of the abort bit) and answered ``ERR_RUN_TIMEOUT`` with the last
    status word (busy). Overrun: while a RUN executes and a second frame waits, a third frame is
    refused with ``ERR_OVERRUN`` and writes nothing. (The UART receiver's byte overrun cannot
    happen in ``HostLink``: the frame decoder takes a byte every cycle.)
    """
    run_cycles = cocotb_env("run_cycles", 200)
    run_timeout = cocotb_env("run_timeout", 1_000_000)
    tb = TB(dut)
    await tb.reset()
    seq = iter(range(1, 256))
    figures = {}

    # Run timeout: the smallest batch that outlasts it.
    batch = run_timeout // run_cycles + 2
    assert batch < 1 << 16, "run_timeout too long for a RUN batch to outlast it"
    writes = int(dut.writes.value)
    t0 = get_sim_time("ns")
    frame = encode_request(Command.RUN, next(seq), words_payload(batch))
    await tb.send(frame)
    r = await tb.reply(tb.reply_timeout(len(frame)) + 1.1 * run_timeout * PERIOD_NS)
    assert r is not None, "no reply to a RUN that outlasts run_timeout (link hung?)"
    cycles = round((get_sim_time("ns") - t0) / PERIOD_NS)
    assert (r.seq, r.status) == (frame[2], Status.ERR_RUN_TIMEOUT), r
    assert r.words[0] & 0b1, f"status word {r.words[0]:#x} should show busy"
    assert run_timeout < cycles < run_timeout + 2000 + len(frame) * 10 * BYTE_NS / PERIOD_NS
    assert int(dut.writes.value) == writes + 2, "the link should write start and then abort"
    r = await tb.exchange(encode_request(Command.READ, next(seq), words_payload(REG_STATUS, 1)))
    assert (r.status, r.words) == (Status.OK, [0]), "the core is still busy after the timeout"
    r = await tb.exchange(encode_request(Command.RUN, next(seq), words_payload(2)))
    assert (r.status, r.words) == (Status.OK, [0b10]), "a RUN after the timeout failed"
    figures["run_timeout"] = {"batch": batch, "reply_after_cycles": cycles,
                              "run_timeout": run_timeout}

    # Overrun: RUN (executing), READ (waiting), WRITE (third: refused), as separate bursts.
    data = [0x12345678, 0x9ABCDEF0]
    r = await tb.exchange(encode_request(Command.WRITE, next(seq),
                                         words_payload(REGIONS_BASE, *data)))
    assert r.status == Status.OK
    writes = int(dut.writes.value)
    run = encode_request(Command.RUN, next(seq), words_payload(40))  # 40 * run_cycles busy
    read = encode_request(Command.READ, next(seq), words_payload(REGIONS_BASE, 2))
    third = encode_request(Command.WRITE, next(seq), words_payload(REGIONS_BASE, 0, 0))
    gap_ns = (IDLE_TIMEOUT + 50) * PERIOD_NS  # longer than the idle timeout: separate bursts
    for f in (run, read, third):
        await tb.send(f)
        await tb.source.wait()
        await Timer(round(gap_ns), unit="ns")
    assert 40 * run_cycles * PERIOD_NS > 3 * (gap_ns + 30 * BYTE_NS), "the RUN ends too soon"
    replies = []
    for _ in range(3):
        r = await tb.reply(tb.reply_timeout(0) + 40 * run_cycles * PERIOD_NS)
        assert r is not None, f"only {len(replies)} of 3 replies (link hung?)"
        replies.append(r)
    got = {r.seq: r for r in replies}
    assert sorted(got) == sorted([run[2], read[2], third[2]]), [r.seq for r in replies]
    assert (got[run[2]].status, got[run[2]].words) == (Status.OK, [0b10])
    assert (got[read[2]].status, got[read[2]].words) == (Status.OK, data)
    assert got[third[2]].status == Status.ERR_OVERRUN, got[third[2]]
    assert int(dut.writes.value) == writes + 1, "the overrun frame wrote to the bus"
    r = await tb.exchange(encode_request(Command.READ, next(seq), words_payload(REGIONS_BASE, 2)))
    assert (r.status, r.words) == (Status.OK, data), "the refused WRITE changed the RAM"
    figures["overrun"] = {"reply_order": [Status(r.status).name for r in replies]}
    assert tb.parser.discarded == 0, "stray bytes between replies"
    dut._log.info("timeout/overrun: %s", figures)
    record("link_paths", figures)


@cocotb.test()
async def driver_roundtrip(dut):
    """The project's driver over the simulated UART: identify, verified upload, run, errors,
    retries."""
    from sw.host.driver import Device, DeviceError
    from sw.host.transport import CocotbUartTransport

    tb = TB(dut)
    await tb.reset()
    transport = CocotbUartTransport(tb.source, tb.sink,
                                    default_timeout=(IDLE_TIMEOUT + 3000) * PERIOD_NS * 1e-9)

    class Corrupting:
        """Flips one byte of the 2nd and 5th frames written (the device must ask for a resend)."""

        def __init__(self, inner):
            self.inner, self.n = inner, 0
            self.description, self.default_timeout = inner.description, inner.default_timeout

        def write(self, data):
            self.n += 1
            if self.n in (2, 5):
                data = bytearray(data)
                data[len(data) // 2] ^= 0x40
            self.inner.write(bytes(data))

        def read(self, n, timeout):
            return self.inner.read(n, timeout)

        def discard_input(self):
            self.inner.discard_input()

    rng = random.Random(cocotb_env("seed", 1))
    words = [rng.randrange(1 << 32) for _ in range(DEPTH - 8)]

    def host():
        dev = Device(Corrupting(transport), window=1)
        info = dev.identify()
        assert list(dataclasses.astuple(info.link)) == IDENTIFY
        assert info.core_words[0] == ID_MAGIC
        dev.write_words(REGIONS_BASE + 3, words, verify=True, progress=False)
        assert dev.read_words(REGIONS_BASE + 3, len(words)) == words
        status = dev.run(3)
        dev.abort()
        try:
            dev.transact(Command.READ, words_payload(REGIONS_BASE + DEPTH, 1))
        except DeviceError as e:
            refused = e.status
        else:
            raise AssertionError("an out-of-range read was not refused")
        try:
            dev.read_words(REGIONS_BASE + DEPTH, 1)
        except ValueError:
            pass
        else:
            raise AssertionError("the driver sent an out-of-range read")
        # Two frames in flight: a damaged frame also takes the one behind it (the decoder drops
        # the rest of a bad burst), which is resent after the reply timeout.
        dev2 = Device(Corrupting(transport), window=2)
        dev2.identify()
        words2 = [w ^ 0xFFFF for w in words]
        dev2.write_words(REGIONS_BASE + 3, words2, verify=True, progress=True)
        return status, refused, dev.resends, dev2.resends

    status, refused, resends, resends2 = await bridge(host)()
    assert status == 0b10
    assert refused == Status.ERR_ADDRESS
    assert resends == 2, f"{resends} resends, expected 2 (two corrupted frames)"
    assert resends2 >= 1
    dut._log.info("resends: window 1: %d, window 2: %d", resends, resends2)
    assert int(dut.writes.value) == 2 * len(words) + 2


@cocotb.test()
async def bench_upload(dut):
    """Model-upload throughput in clock cycles: payload bytes/s against the line rate."""
    from sw.host.driver import Device
    from sw.host.transport import CocotbUartTransport

    tb = TB(dut)
    await tb.reset()
    transport = CocotbUartTransport(tb.source, tb.sink,
                                    default_timeout=(IDLE_TIMEOUT + 3000) * PERIOD_NS * 1e-9)
    n_words = cocotb_env("bench_words", DEPTH)
    words = [(i * 2654435761) & 0xFFFFFFFF for i in range(n_words)]
    results = {}
    for window in (1, 2):
        dev = Device(transport, window=window)
        await bridge(dev.identify)()
        t0 = get_sim_time("ns")
        await bridge(dev.write_words)(REGIONS_BASE, words)
        t1 = get_sim_time("ns")
        cycles = round((t1 - t0) / PERIOD_NS)
        seconds = (t1 - t0) * 1e-9
        payload = 4 * n_words
        frames = -(-n_words // (MAX_PAYLOAD // 4 - 1))
        results[f"window{window}"] = {
            "payload_bytes": payload, "frames": frames, "cycles": cycles,
            "payload_Bps": payload / seconds, "line_Bps": BAUD / 10,
            "efficiency": payload / seconds / (BAUD / 10),
            "wire_bytes": payload + frames * (REQUEST_OVERHEAD + 4),
        }
        dut._log.info("upload window %d: %s", window, results[f"window{window}"])
        back = await bridge(dev.read_words)(REGIONS_BASE, n_words)
        assert back == words
    record("bench", results)
