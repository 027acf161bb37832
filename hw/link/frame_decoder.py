"""Byte stream -> request frames: sync, header, buffered payload, CRC check, idle timeout."""

import operator

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import crc, data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.contract.protocol import SYNC_REQUEST, Status, check_max_payload

#: CRC of the host link, matched by ``hw.contract.protocol.crc32`` (``zlib.crc32``).
LINK_CRC = crc.catalog.CRC32_ISO_HDLC

#: One received frame as the executor sees it. ``status`` is ``OK`` or the reason the frame is
#: bad; the payload itself is in the frame buffer.
FrameInfo = data.StructLayout({
    "command": 8,
    "seq": 8,
    "length": 16,
    "status": Status,
})


def buffer_signature(max_payload):
    """Word read port into the frame at the head of the queue (seen from the reader).

    ``data`` is ``mem[addr]`` one cycle after a cycle with ``en`` high; it holds while ``en``
    is low.
    """
    return wiring.Signature({
        "addr": Out(range(max_payload // 4)),
        "en": Out(1),
        "data": In(32),
    })


class FrameDecoder(wiring.Component):
    """Parse request frames from a byte stream into a two-frame queue.

    Bytes are always accepted. A frame's payload is written to one half of a double buffer; when
    its CRC matches, a :data:`FrameInfo` with ``status=OK`` is queued. The consumer keeps ``o.valid
    & ~o.ready`` while it works on the frame and reads the payload through ``buf``; ``o.ready``
    releases the frame and its buffer half. A new frame can arrive in the other half meanwhile.

    A bad frame queues a :data:`FrameInfo` whose ``status`` says why, and never more than one per
    burst of bytes:

    - ``ERR_TRUNCATED``: no byte for ``idle_timeout`` cycles in the middle of a frame;
    - ``ERR_SYNC`` (first byte not the sync byte), ``ERR_LENGTH`` (over ``max_payload``),
      ``ERR_CRC``, ``ERR_OVERRUN`` (both halves held): the rest of the burst is dropped until the
      line has been idle for ``idle_timeout`` cycles, then the error is queued. A corrupted length
      field therefore cannot make the decoder read the next frame's bytes as payload.

    Parameters
    ----------
    max_payload : int
        Largest payload in bytes (a multiple of 4).
    idle_timeout : int
        Idle cycles that end a truncated frame or a discarded burst.

    Members
    -------
    i : In(stream.Signature(8))
        Received bytes.
    o : Out(stream.Signature(FrameInfo))
        Queued frames.
    buf : In(buffer_signature(max_payload))
        Payload words of the frame at the head of ``o``.
    """

    def __init__(self, *, max_payload=1024, idle_timeout=1000):
        self._max_payload = check_max_payload(max_payload)
        idle_timeout = operator.index(idle_timeout)
        if idle_timeout < 1:
            raise ValueError(f"idle_timeout must be at least 1 cycle, not {idle_timeout}")
        self._idle_timeout = idle_timeout
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(FrameInfo)),
            "buf": In(buffer_signature(self._max_payload)),
        })

    @property
    def max_payload(self):
        return self._max_payload

    @property
    def idle_timeout(self):
        return self._idle_timeout

    def elaborate(self, platform):
        m = Module()

        words = self._max_payload // 4
        half_bits = ceil_log2(words)
        m.submodules.frame_mem = mem = Memory(shape=32, depth=2 << half_bits, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port(transparent_for=())

        # Buffered: the frame at the head of the queue comes from a register.
        m.submodules.queue = queue = SyncFIFOBuffered(width=FrameInfo.size, depth=2)
        wr_half = Signal()
        rd_half = Signal()
        with m.If(queue.w_en & queue.w_rdy):
            m.d.sync += wr_half.eq(~wr_half)
        with m.If(queue.r_en & queue.r_rdy):
            m.d.sync += rd_half.eq(~rd_half)
        m.d.comb += [
            self.o.valid.eq(queue.r_rdy),
            self.o.payload.eq(queue.r_data),
            queue.r_en.eq(self.o.ready),
            rp.addr.eq(Cat(self.buf.addr[:half_bits], rd_half)),
            rp.en.eq(self.buf.en),
            self.buf.data.eq(rp.data),
        ]

        m.submodules.crc = crc_proc = LINK_CRC(data_width=8).create()

        # Halves held after this cycle; a frame starting now overruns if none is free.
        occupied = Signal(range(4))
        m.d.comb += occupied.eq(queue.level + queue.w_en - (queue.r_en & queue.r_rdy))

        info = Signal(FrameInfo)
        m.d.comb += queue.w_data.eq(info)

        byte = self.i.payload
        got = Signal()
        m.d.comb += [self.i.ready.eq(1), got.eq(self.i.valid)]
        m.d.comb += crc_proc.data.eq(byte)

        idle = Signal(range(self._idle_timeout + 1))
        timed_out = Signal()  # idle == idle_timeout, as a register
        with m.If(got):
            m.d.sync += [idle.eq(0), timed_out.eq(0)]
        with m.Elif(~timed_out):
            m.d.sync += [idle.eq(idle + 1), timed_out.eq(idle == self._idle_timeout - 1)]

        count = Signal(16)  # bytes of the current field/payload seen so far
        length = Signal(16)
        left = Signal(16)  # payload bytes still to come after this one
        # The length's low byte, judged as it comes, so that its high byte decides alone.
        lo_zero = Signal()
        lo_over = Signal()  # above the low byte of max_payload
        hi_max = self._max_payload >> 8
        crc_rx = Signal(24)
        overrun = Signal()
        length_byte = Signal(8)

        def fail(status):
            m.d.sync += info.status.eq(status)
            m.next = "DISCARD"

        def truncated():  # the line went idle in the middle of a frame: report it at once
            m.d.sync += info.status.eq(Status.ERR_TRUNCATED)
            m.next = "PUSH"

        def start_frame():  # a byte arrived with no frame open: a new frame starts (or fails)
            m.d.sync += [
                info.command.eq(0), info.seq.eq(0), info.length.eq(0), count.eq(0),
                overrun.eq(occupied >= 2),
            ]
            with m.If(byte == SYNC_REQUEST):
                m.d.comb += crc_proc.start.eq(1)
                m.next = "HEADER"
            with m.Else():
                fail(Status.ERR_SYNC)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(got):
                    start_frame()

            with m.State("HEADER"):
                with m.If(got):
                    m.d.comb += crc_proc.valid.eq(1)
                    m.d.sync += count.eq(count + 1)
                    with m.Switch(count):
                        with m.Case(0):
                            m.d.sync += info.command.eq(byte)
                        with m.Case(1):
                            m.d.sync += info.seq.eq(byte)
                        with m.Case(2):
                            m.d.sync += [length_byte.eq(byte), lo_zero.eq(byte == 0),
                                         lo_over.eq(byte > (self._max_payload & 0xFF))]
                        with m.Case(3):
                            m.d.comb += length.eq(Cat(length_byte, byte))
                            m.d.sync += [info.length.eq(length), count.eq(0),
                                         left.eq(length - 1)]
                            with m.If(overrun):
                                fail(Status.ERR_OVERRUN)
                            with m.Elif((byte > hi_max) | ((byte == hi_max) & lo_over)):
                                fail(Status.ERR_LENGTH)
                            with m.Elif((byte == 0) & lo_zero):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    truncated()

            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.comb += [
                        crc_proc.valid.eq(1),
                        wp.addr.eq(Cat(count[2:2 + half_bits], wr_half)),
                        wp.data.eq(byte.replicate(4)),
                        wp.en.eq(Const(1, 4) << count[:2]),
                    ]
                    m.d.sync += [count.eq(count + 1), left.eq(left - 1)]
                    with m.If(left == 0):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
                with m.Elif(timed_out):
                    truncated()

            with m.State("CRC"):
                with m.If(got):
                    m.d.sync += [count.eq(count + 1), crc_rx.eq(Cat(crc_rx[8:], byte))]
                    with m.If(count == 3):
                        with m.If(Cat(crc_rx, byte) == crc_proc.crc):
                            m.d.sync += info.status.eq(Status.OK)
                            m.next = "PUSH"
                        with m.Else():
                            fail(Status.ERR_CRC)
                with m.Elif(timed_out):
                    truncated()

            with m.State("DISCARD"):
                # Drop bytes until the line is idle, then report once (when the queue has room).
                with m.If(timed_out & queue.w_rdy & ~got):
                    m.d.comb += queue.w_en.eq(1)
                    m.next = "IDLE"

            with m.State("PUSH"):
                # Reached only from a frame that began with a free half, so the queue has room.
                m.d.comb += queue.w_en.eq(1)
                m.next = "IDLE"
                with m.If(got):  # a byte right behind the frame: the start of the next one
                    start_frame()
        return m
