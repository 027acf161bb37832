"""The host link: UART pins <-> request/reply frames <-> the core's bus."""

import operator

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.common.skid_buffer import SkidBuffer
from hw.contract.bus import ADDR_BITS, BusRequest, BusSignature
from hw.contract.protocol import (
    LINK_MAGIC,
    PROTOCOL_VERSION,
    baud_divisor,
    check_max_payload,
    crc32,
)

from .frame_decoder import FrameDecoder
from .frame_encoder import FrameEncoder
from .link_executor import LinkExecutor
from .uart_rx import UARTReceiver
from .uart_tx import UARTTransmitter

#: Default baud rate: 12 MHz / 3, a rate the FT2232H makes exactly; 25 clocks per bit at 100 MHz.
DEFAULT_BAUD = 4_000_000
#: Default idle time that ends a truncated frame. USB hosts feed the FT2232H in bursts, so a gap of
#: well over a millisecond can fall inside one frame on the wire.
DEFAULT_IDLE_TIMEOUT_S = 0.005
DEFAULT_RUN_TIMEOUT_S = 10.0


class HostLink(wiring.Component):
    """UART receiver -> frame decoder -> executor -> frame encoder -> UART transmitter.

    The executor's bus requests leave through a :class:`hw.common.skid_buffer.SkidBuffer`: its
    handshake (which loads the request, the reply header and the frame buffer's read enable) then
    waits on a register, not on the core's decode across the chip.

    Build parameters (fixed per bitstream, reported by ``IDENTIFY``) are the clock and baud rates,
    the largest payload, the idle and run timeouts, and the address limit. See ``docs/protocol.md``.

    Parameters
    ----------
    clk_freq : int
        Clock frequency in Hz.
    baud : int
        UART rate (8N1).
    max_payload : int
        Largest frame payload in bytes, a multiple of 4 (the frame buffer holds two).
    idle_timeout : int or None
        Idle cycles that end a truncated frame; default ``DEFAULT_IDLE_TIMEOUT_S``.
    run_timeout : int or None
        Cycles a RUN may take before it is aborted; default ``DEFAULT_RUN_TIMEOUT_S``.
    addr_limit : int
        First word address past the core's address map; requests beyond it are refused.

    Members
    -------
    rx : In(1)
        UART from the host (idle high).
    tx : Out(1)
        UART to the host.
    bus : Out(hw.contract.bus.BusSignature)
        To the core (``req`` registered, a request a cycle; ``resp`` straight through).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    bus: Out(BusSignature)

    def __init__(self, *, clk_freq, baud=DEFAULT_BAUD, max_payload=1024, idle_timeout=None,
                 run_timeout=None, addr_limit=1 << ADDR_BITS):
        self._clk_freq = operator.index(int(clk_freq))
        self._baud = operator.index(int(baud))
        self._divisor = baud_divisor(self._clk_freq, self._baud)
        self._max_payload = check_max_payload(max_payload)
        if idle_timeout is None:
            idle_timeout = round(self._clk_freq * DEFAULT_IDLE_TIMEOUT_S)
        idle_timeout = operator.index(idle_timeout)
        if idle_timeout < 12 * self._divisor:
            raise ValueError(
                f"idle_timeout of {idle_timeout} cycles is shorter than a character "
                f"({10 * self._divisor} cycles) plus margin"
            )
        self._idle_timeout = idle_timeout
        if run_timeout is None:
            run_timeout = min(round(self._clk_freq * DEFAULT_RUN_TIMEOUT_S), (1 << 32) - 1)
        self._run_timeout = operator.index(run_timeout)
        self._addr_limit = operator.index(addr_limit)
        if not 1 <= self._addr_limit <= 1 << ADDR_BITS:
            raise ValueError(f"addr_limit must be in 1..{1 << ADDR_BITS}, not {addr_limit}")
        if not 1 <= self._run_timeout < 1 << 32:
            raise ValueError(f"run_timeout must be in 1..2**32 - 1 cycles, not {run_timeout}")
        super().__init__()
        self._executor_args = dict(max_payload=self._max_payload, addr_limit=self._addr_limit,
                                   run_timeout=self._run_timeout, identify=self.identify_words)

    clk_freq = property(lambda self: self._clk_freq)
    baud = property(lambda self: self._baud)
    divisor = property(lambda self: self._divisor, doc="Clocks per UART bit.")
    max_payload = property(lambda self: self._max_payload)
    idle_timeout = property(lambda self: self._idle_timeout)
    run_timeout = property(lambda self: self._run_timeout)
    addr_limit = property(lambda self: self._addr_limit)

    @property
    def link_hash(self):
        """CRC-32 of the protocol version and build parameters (changes when either does)."""
        text = repr((PROTOCOL_VERSION, self._clk_freq, self._baud, self._max_payload,
                     self._idle_timeout, self._run_timeout, self._addr_limit))
        return crc32(text.encode())

    @property
    def identify_words(self):
        """The IDENTIFY reply, in the order of ``hw.contract.protocol.IDENTIFY_FIELDS``."""
        return (LINK_MAGIC, PROTOCOL_VERSION, self._max_payload, self._clk_freq, self._baud,
                self._idle_timeout, self._run_timeout, self._addr_limit, self.link_hash)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UARTReceiver(self._divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self._divisor)
        m.submodules.decoder = decoder = FrameDecoder(max_payload=self._max_payload,
                                                      idle_timeout=self._idle_timeout)
        m.submodules.executor = executor = LinkExecutor(**self._executor_args)
        m.submodules.encoder = encoder = FrameEncoder()

        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.o, decoder.i)
        wiring.connect(m, decoder.o, executor.frame)
        wiring.connect(m, executor.buf, decoder.buf)
        wiring.connect(m, executor.reply, encoder.header)
        wiring.connect(m, executor.reply_data, encoder.data)
        wiring.connect(m, encoder.o, uart_tx.i)
        m.submodules.req_skid = req_skid = SkidBuffer(BusRequest)
        wiring.connect(m, executor.bus.req, req_skid.i)
        wiring.connect(m, req_skid.o, wiring.flipped(self.bus.req))
        wiring.connect(m, wiring.flipped(self.bus.resp), executor.bus.resp)
        return m
