"""Skid buffer: a two-entry stream register whose ``i.ready`` is a register.

Cuts a combinational ``ready`` path between two blocks that sit far apart on the chip: the
producer's handshake then depends on nothing the consumer computes in the same cycle. Full
throughput (a beat per cycle); a beat takes one cycle from ``i`` to ``o``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common.synth_hints import COPY_ATTRS

__all__ = ["SkidBuffer", "stream_stage_members"]


def stream_stage_members(shape, ready_copies: int) -> tuple[int, dict]:
    """``(copies, members)`` of a registered stream stage with ``ready_copies`` registered
    copies of ``i.ready``: ``i``, ``o`` and, with copies, ``ready_copy``."""
    Shape.cast(shape)
    copies = int(ready_copies)
    if copies < 0:
        raise ValueError(f"ready_copies must be at least 0, not {ready_copies}")
    members = {
        "i": In(stream.Signature(shape)),
        "o": Out(stream.Signature(shape)),
    }
    if copies:
        members["ready_copy"] = Out(copies)
    return copies, members


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
    ready_copy : Out(ready_copies)
        With ``ready_copies`` > 0: copies of ``i.ready``, each a register of its own (kept apart
        by synthesis, ``hw.common.synth_hints``), for a producer whose logic reading ``ready``
        is spread wide: that logic reads a copy placed near it instead of one register's
        fan-out.
    """

    def __init__(self, shape, *, ready_copies: int = 0):
        self._shape = shape
        self._copies, members = stream_stage_members(shape, ready_copies)
        super().__init__(members)

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
        # The copies follow skid_valid register for register (the same next-state logic).
        for n in range(self._copies):
            full = Signal(name=f"skid_valid_copy{n}", attrs=COPY_ATTRS)
            m.d.comb += self.ready_copy[n].eq(~full)
            with m.If(take_o):
                with m.If(skid_valid):
                    m.d.sync += full.eq(0)
            with m.Elif(self.i.valid & self.i.ready):
                m.d.sync += full.eq(1)
        return m
