"""UART receiver, 8N1, rate fixed at build time: input synchronizer and mid-bit sampling."""

import operator

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hw.contract.protocol import MIN_DIVISOR


class UARTReceiver(wiring.Component):
    """8N1 UART receiver: bytes from ``rx`` on the ``o`` stream.

    ``rx`` passes a two-flop synchronizer. A start bit is confirmed half a bit after the falling
    edge; every data bit and the stop bit are sampled in the middle. The receiver is looking for the
    next start bit from the middle of the stop bit on, so back-to-back characters are received.

    A byte whose stop bit is low is dropped, ``frame_error`` pulses, and the receiver waits for the
    line to go high again. A byte that completes while
    the previous one has not been taken is dropped and ``overrun`` pulses (the stream never loses a
    byte it has offered: ``valid`` stays up until ``ready``).

    Parameters
    ----------
    divisor : int
        Clocks per bit (see :func:`hw.contract.protocol.baud_divisor`).

    Members
    -------
    rx : In(1)
        The serial line, idle high.
    o : Out(stream.Signature(8))
        Received bytes.
    frame_error, overrun : Out(1)
        One-cycle pulses.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    frame_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        divisor = operator.index(divisor)
        if divisor < MIN_DIVISOR:
            raise ValueError(f"divisor must be at least {MIN_DIVISOR}, not {divisor}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()

        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self._divisor))
        shreg = Signal(8)
        bit = Signal(range(8))

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self._divisor - 1), bit.eq(0)]
                    m.next = "DATA"
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [
                        timer.eq(self._divisor - 1),
                        shreg.eq(Cat(shreg[1:], rx)),
                        bit.eq(bit + 1),
                    ]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.next = "IDLE"
                    with m.If(~rx):
                        m.d.comb += self.frame_error.eq(1)
                        m.next = "BREAK"
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shreg)]
            with m.State("BREAK"):
                # After a low stop bit, wait for the line to go high before hunting a start bit.
                with m.If(rx):
                    m.next = "IDLE"
        return m
