"""UART transmitter, 8N1, rate fixed at build time."""

import operator

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.contract.protocol import MIN_DIVISOR


class UARTTransmitter(wiring.Component):
    """8N1 UART transmitter: bytes from ``i`` out on ``tx``, least significant bit first.

    A byte offered while the stop bit of the previous one ends is taken in that cycle, so a
    continuous stream leaves the wire with no idle time between characters.

    Parameters
    ----------
    divisor : int
        Clocks per bit (see :func:`hw.contract.protocol.baud_divisor`).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line, idle high.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

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

        shreg = Signal(10, init=0x3FF)  # start bit, 8 data bits, stop bit; LSB on the wire
        bits_left = Signal(range(11))
        timer = Signal(range(self._divisor))

        m.d.comb += self.tx.eq(shreg[0])
        with m.If(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    timer.eq(self._divisor - 1),
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    bits_left.eq(bits_left - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)

        # Ready when idle, or in the last cycle of the stop bit (no gap between characters).
        m.d.comb += self.i.ready.eq((bits_left == 0) | ((bits_left == 1) & (timer == 0)))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                bits_left.eq(10),
                timer.eq(self._divisor - 1),
            ]
        return m
