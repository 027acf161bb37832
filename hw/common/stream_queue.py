"""Stream queue: an output register and a small LUT-RAM FIFO behind it, ``i.ready`` a register.

A :class:`hw.common.skid_buffer.SkidBuffer` with room for ``entries`` beats instead of one: the
producer may run ``entries`` beats ahead of a consumer that stalls, and the consumer then drains
them while the producer has nothing to give. Full throughput (a beat per cycle); a beat takes one
cycle from ``i`` to ``o`` when the queue is empty (it goes straight to the output register) and
waits behind the queued beats otherwise.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common.synth_hints import COPY_ATTRS

__all__ = ["StreamQueue"]


class StreamQueue(wiring.Component):
    """Registered stream stage with a queue of ``entries`` beats and a registered ``i.ready``.

    A cycle's beat on ``i`` is taken when ``i.ready``: into the output register if that is
    empty or being taken (and the queue is empty), else into the queue. ``i.ready`` is 1 while
    the queue holds fewer than ``entries`` beats (a register, set from the next cycle's count).
    The queue is a memory with an asynchronous read (LUT RAM on the 7-series and ECP5) and two
    pointers; its head is read combinationally into the output register.

    Parameters
    ----------
    shape : ShapeLike
        The payload.
    entries : int
        Beats the queue holds besides the output register (a power of two, at least 2).

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        ``o.payload`` and ``o.valid`` are registers; ``i.ready`` is a register.
    ready_copy : Out(ready_copies)
        With ``ready_copies`` > 0: copies of ``i.ready``, each a register of its own (kept apart
        by synthesis, ``hw.common.synth_hints``), as :class:`hw.common.skid_buffer.SkidBuffer`'s.
    """

    latency = 1

    def __init__(self, shape, entries: int, *, ready_copies: int = 0):
        self._shape = shape
        Shape.cast(shape)
        self._entries = operator.index(entries)
        if self._entries < 2 or self._entries & (self._entries - 1):
            self._MustUse__silence = True  # refused: not a design element left unused
            raise ValueError(f"entries must be a power of two, at least 2, not {entries}")
        self._copies = int(ready_copies)
        if self._copies < 0:
            raise ValueError(f"ready_copies must be at least 0, not {ready_copies}")
        members = {
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        }
        if self._copies:
            members["ready_copy"] = Out(self._copies)
        super().__init__(members)

    @property
    def entries(self) -> int:
        return self._entries

    def elaborate(self, platform):
        m = Module()
        n = self._entries
        m.submodules.mem = mem = memory.Memory(shape=self._shape, depth=n, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        wp = Signal(range(n))
        rp = Signal(range(n))
        count = Signal(range(n + 1))  # beats in the queue (not counting the output register)
        ready = Signal(init=1)
        m.d.comb += self.i.ready.eq(ready)

        take_o = ~self.o.valid | self.o.ready  # the output register can be (re)loaded
        push = self.i.valid & ready
        pop = take_o & (count != 0)
        bypass = take_o & (count == 0)  # the input goes straight to the output register
        to_mem = push & ~bypass
        m.d.comb += [rd.addr.eq(rp), wr.addr.eq(wp), wr.data.eq(self.i.payload),
                     wr.en.eq(to_mem)]
        with m.If(take_o):
            m.d.sync += [self.o.payload.eq(Mux(count != 0, rd.data, self.i.payload)),
                         self.o.valid.eq((count != 0) | self.i.valid)]
        count_next = count + to_mem - pop
        m.d.sync += [count.eq(count_next), ready.eq(count_next < n)]
        with m.If(to_mem):
            m.d.sync += wp.eq(wp + 1)
        with m.If(pop):
            m.d.sync += rp.eq(rp + 1)
        for c in range(self._copies):
            copy = Signal(name=f"ready_copy{c}", init=1, attrs=COPY_ATTRS)
            m.d.sync += copy.eq(count_next < n)
            m.d.comb += self.ready_copy[c].eq(copy)
        return m
