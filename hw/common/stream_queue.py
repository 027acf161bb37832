"""Stream queue: a small LUT-RAM FIFO with an output register, ``i.ready`` a register.

Like a :class:`hw.common.skid_buffer.SkidBuffer` with room for ``entries`` beats instead of one:
the producer may run ``entries`` beats ahead of a consumer that stalls, and the consumer then
drains them while the producer has nothing to give. Full throughput (a beat per cycle); every
beat passes through the memory, so it takes two cycles from ``i`` to ``o`` when the queue is
empty (written in the first, read into the output register in the second) and waits behind the
queued beats otherwise. There is no path from ``i`` to ``o`` that skips the memory: the output
register takes only the memory's read data, so no multiplexer the width of the payload sits in
front of it.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import memory, wiring

from hw.common.skid_buffer import stream_stage_members
from hw.common.synth_hints import COPY_ATTRS

__all__ = ["StreamQueue"]


class StreamQueue(wiring.Component):
    """Stream FIFO of ``entries`` beats in a memory, an output register and a registered
    ``i.ready``.

    A cycle's beat on ``i`` is written to the memory when ``i.ready``; ``i.ready`` is 1 while
    the memory holds fewer than ``entries`` beats (a register, set from the next cycle's
    count). The output register takes the memory's oldest beat whenever it is empty or being
    taken. The memory has an asynchronous read (LUT RAM on the 7-series and ECP5) and two
    pointers.

    Parameters
    ----------
    shape : ShapeLike
        The payload.
    entries : int
        Beats the memory holds (a power of two, at least 2); the output register holds one more.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        ``o.payload`` and ``o.valid`` are registers (with ``two_out``, one of two registers
        picked by a register); ``i.ready`` is a register.
    ready_copy : Out(ready_copies)
        With ``ready_copies`` > 0: copies of ``i.ready``, each a register of its own (kept apart
        by synthesis, ``hw.common.synth_hints``), as :class:`hw.common.skid_buffer.SkidBuffer`'s.

    With ``two_out``, the output is two registers filled in turn and read in turn, ``o.valid``
    and ``o.payload`` a multiplexer of them on a register (which one is next): a register is
    loaded from the memory when it is empty, so the loads' enables (one per payload flip-flop)
    come from registers only and never wait on ``o.ready``. With one output register its load
    enable is ``~o.valid | o.ready``: the consumer's ready fans out to every payload flip-flop,
    and the placer puts that gate amid them, across the chip from the consumer (the ULX3S
    four-plane core's critical path, 3.2 ns of wire out to the gate and 3.2 back). What the
    consumer sees is the same cycle for cycle (a beat leaves the memory into the register that
    is next to be read, never later than one register would take it), and ``i.ready`` counts
    the beats as one output register would (the second register's beat as if in the memory),
    so the producer sees the same too.
    """

    latency = 2

    def __init__(self, shape, entries: int, *, ready_copies: int = 0, two_out: bool = False):
        self._shape = shape
        self._two_out = bool(two_out)
        self._entries = operator.index(entries)
        if self._entries < 2 or self._entries & (self._entries - 1):
            self._MustUse__silence = True  # refused: not a design element left unused
            raise ValueError(f"entries must be a power of two, at least 2, not {entries}")
        self._copies, members = stream_stage_members(shape, ready_copies)
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
        count = Signal(range(n + 1))  # beats in the memory (not counting the output register)
        ready = Signal(init=1)
        m.d.comb += self.i.ready.eq(ready)

        # The memory's write (its enable fans out to every LUT RAM of the payload) and the
        # count take the same push from two copies of ``ready``, so that synthesis makes two
        # gates of it, each placed beside its loads: with one gate the placer put it by the
        # memory, and the count's adder, and ``ready`` after it, hung on a wire across the
        # chip (the ULX3S's critical path on one placement).
        ready_mem = Signal(init=1, attrs=COPY_ATTRS)
        push = self.i.valid & ready
        push_mem = self.i.valid & ready_mem
        m.d.comb += [rd.addr.eq(rp), wr.addr.eq(wp), wr.data.eq(self.i.payload),
                     wr.en.eq(push_mem)]
        if self._two_out:
            # ``count != 0`` every cycle, on a register of its own for the output registers'
            # load gate (``_two_registers``); set below from the next cycle's count.
            nonempty_copy = Signal(name="nonempty_copy", attrs=COPY_ATTRS)
            pop, held_next = self._two_registers(m, Value.cast(rd.data), count, nonempty_copy)
        else:
            take_o = ~self.o.valid | self.o.ready  # the output register can be (re)loaded
            pop = take_o & (count != 0)
            with m.If(take_o):
                m.d.sync += [self.o.payload.eq(rd.data), self.o.valid.eq(count != 0)]
            held_next = nonempty_copy = None
        # The push (the producer's valid, through its logic, and ``ready``) enters the count
        # and ``ready`` only at their last multiplexer: both outcomes are computed from
        # registers and the pop. As one adder ``count + push - pop`` and a compare after it,
        # the push ran out to the producer's gate and back through both carry chains (the
        # ULX3S preset's critical path: ``ready`` to the fetcher, back into the count's adder,
        # on through the compare into ``ready``).
        stay = Mux(pop, count - 1, count)  # the count after this cycle without a push
        grow = Mux(pop, count, count + 1)  # and with one
        count_next = Mux(push, grow, stay)

        def fits(limit):
            """``count_next < limit``, the push at the last gate."""
            return Mux(push, grow < limit, stay < limit)

        # ``ready``: room for a beat while fewer than ``entries`` wait behind the beat on the
        # output (with ``two_out`` the second register's counts as waiting).
        room = fits(n) if held_next is None else Mux(held_next, fits(n - 1), fits(n))
        m.d.sync += [count.eq(count_next), ready.eq(room), ready_mem.eq(room)]
        if nonempty_copy is not None:
            m.d.sync += nonempty_copy.eq(count_next != 0)
        with m.If(push_mem):
            m.d.sync += wp.eq(wp + 1)
        with m.If(pop):
            m.d.sync += rp.eq(rp + 1)
        for c in range(self._copies):
            copy = Signal(name=f"ready_copy{c}", init=1, attrs=COPY_ATTRS)
            m.d.sync += copy.eq(room)
            m.d.comb += self.ready_copy[c].eq(copy)
        return m

    def _two_registers(self, m, data, count, nonempty_copy):
        """``two_out``'s output registers: ``(pop, held_next)``, the memory's read taken this
        cycle and whether the register not read next holds a beat after it.

        The pointers and the count decide a pop from copies of the registers' state of their
        own (kept apart by synthesis): the loads' gate sits amid the payload flip-flops, and a
        pop decided there would take the count's path out to it and back. For the same reason
        the loads' gate reads whether the memory holds a beat from a register of its own
        (``nonempty_copy``, equal to ``count != 0`` every cycle), not from the count: with the
        count's compare in front of it the ULX3S placer put the gate amid the payload and the
        count by the memory, a wire across the chip each way."""
        width = len(data)
        regs = [Signal(width, name=f"out{j}") for j in range(2)]
        take = Signal()
        rsel = Signal()  # the register read next
        rsel_next = rsel ^ take

        def state(suffix, nonempty, attrs=None):
            """Whether each register holds a beat and which one is loaded next, updated from
            this copy's own registers: ``(full, full_next, wsel, load)``."""
            full = [Signal(name=f"full{j}{suffix}", attrs=attrs) for j in range(2)]
            full_next = [Signal(name=f"full{j}_next{suffix}") for j in range(2)]
            wsel = Signal(name=f"wsel{suffix}", attrs=attrs)  # the register loaded next
            load = Signal(name=f"load{suffix}")
            m.d.comb += load.eq(Mux(wsel, ~full[1], ~full[0]) & nonempty)
            for j in range(2):
                m.d.comb += full_next[j].eq((load & (wsel == j))
                                            | (full[j] & ~(take & (rsel == j))))
                m.d.sync += full[j].eq(full_next[j])
            with m.If(load):
                m.d.sync += wsel.eq(~wsel)
            return full, full_next, wsel, load

        full, _, wsel, load = state("", nonempty_copy)
        _, full_next_c, _, pop = state("_ctl", count != 0, COPY_ATTRS)
        m.d.comb += [self.o.valid.eq(Mux(rsel, full[1], full[0])),
                     self.o.payload.eq(Mux(rsel, regs[1], regs[0])),
                     take.eq(self.o.valid & self.o.ready)]
        for j in range(2):
            with m.If(load & (wsel == j)):
                m.d.sync += regs[j].eq(data)
        with m.If(take):
            m.d.sync += rsel.eq(~rsel)
        held_next = Mux(rsel_next, full_next_c[0], full_next_c[1])
        return pop, held_next
