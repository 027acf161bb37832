"""Reply frames: header and payload words -> bytes with a CRC-32 trailer."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.contract.protocol import SYNC_REPLY, Status

from .frame_decoder import LINK_CRC

#: What the executor tells the encoder about a reply; ``length`` is in bytes (a multiple of 4),
#: and that many bytes of payload words follow on the encoder's ``data`` stream.
ReplyHeader = data.StructLayout({
    "command": 8,
    "seq": 8,
    "status": Status,
    "length": 16,
})


class FrameEncoder(wiring.Component):
    """Serialize reply frames.

    For each header taken from ``header``, emits sync, command, seq, status, length, then
    ``length // 4`` words from ``data`` (little-endian), then the CRC-32 of everything after the
    sync byte (little-endian). Words are taken one at a time as the bytes go out, so a slow reader
    on ``o`` back-pressures ``data`` and ``header``.

    Members
    -------
    header : In(stream.Signature(ReplyHeader))
    data : In(stream.Signature(32))
    o : Out(stream.Signature(8))
    """

    header: In(stream.Signature(ReplyHeader))
    data: In(stream.Signature(32))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()

        m.submodules.crc = crc_proc = LINK_CRC(data_width=8).create()

        hdr = Signal(ReplyHeader)
        word = Signal(32)
        words_left = Signal(14)
        index = Signal(2)
        sent = Signal()
        # The CRC takes each byte a cycle after it is sent, from a register (not through the
        # byte multiplexer); the last payload byte is in it before the CRC state reads it
        # (FETCH comes between).
        crc_byte = Signal(8)
        crc_take = Signal()
        counted = Signal()  # this state's byte is under the CRC
        m.d.comb += [
            sent.eq(self.o.valid & self.o.ready),
            crc_proc.data.eq(crc_byte),
            crc_proc.valid.eq(crc_take),
        ]
        m.d.sync += [crc_byte.eq(self.o.payload), crc_take.eq(sent & counted)]

        def emit(value, next_state, crc=True):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
            if crc:
                m.d.comb += counted.eq(1)
            with m.If(sent):
                m.next = next_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.header.ready.eq(1)
                with m.If(self.header.valid):
                    m.d.sync += [
                        hdr.eq(self.header.payload),
                        words_left.eq(self.header.payload.length[2:]),
                    ]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += crc_proc.start.eq(1)
                emit(SYNC_REPLY, "COMMAND", crc=False)
            with m.State("COMMAND"):
                emit(hdr.command, "SEQ")
            with m.State("SEQ"):
                emit(hdr.seq, "STATUS")
            with m.State("STATUS"):
                emit(hdr.status, "LENGTH0")
            with m.State("LENGTH0"):
                emit(hdr.length[:8], "LENGTH1")
            with m.State("LENGTH1"):
                emit(hdr.length[8:], "FETCH")
            with m.State("FETCH"):
                with m.If(words_left == 0):
                    m.d.sync += index.eq(0)
                    m.next = "CRC"
                with m.Else():
                    m.d.comb += self.data.ready.eq(1)
                    with m.If(self.data.valid):
                        m.d.sync += [word.eq(self.data.payload), index.eq(0),
                                     words_left.eq(words_left - 1)]
                        m.next = "WORD"
            with m.State("WORD"):
                emit(word.word_select(index, 8), "WORD")
                with m.If(sent):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 3):
                        m.next = "FETCH"
            with m.State("CRC"):
                emit(crc_proc.crc.word_select(index, 8), "CRC", crc=False)
                with m.If(sent):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 3):
                        m.next = "IDLE"
        return m
