"""Skid buffer: a two-entry stream register whose ``i.ready`` is a register.

Cuts a combinational ``ready`` path between two blocks that sit far apart on the chip: the
producer's handshake then depends on nothing the consumer computes in the same cycle. Full
throughput (a beat per cycle); a beat takes one cycle from ``i`` to ``o``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Registered stream stage with a registered ``i.ready``.

    Parameters
    ----------
    shape : ShapeLike
        The payload.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        ``o.payload`` and ``o.valid`` are registers; ``i.ready`` is a register.
    """

    def __init__(self, shape):
        self._shape = shape
        Shape.cast(shape)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    latency = 1

    def elaborate(self, platform):
        m = Module()
        # ``o`` holds the head beat; ``skid`` the beat accepted while ``o`` was stalled.
        skid = Signal.like(self.i.payload, reset_less=True)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        take_o = ~self.o.valid | self.o.ready  # the output register can be (re)loaded
        # ``skid`` follows ``i.payload`` while it is empty (its enable is a register, so only the
        # output register's enable waits on ``o.ready``); it holds once it keeps a beat.
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)
        with m.If(take_o):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += skid_valid.eq(1)
        return m
