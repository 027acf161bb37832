"""Fetcher: walks the chunks and passes of a layer, reading spike blocks and weight rows.

For pass ``p = 0..passes-1`` and chunk ``c = 0..chunks-1`` it reads the spike block of input chunk
``c`` (all ``t_max`` bit-planes of ``k`` input neurons) at ``src_base + c`` and sends it as one
stream beat, with the marks of its non-zero bit-planes and its weight row
``w_base + p * chunks + c`` (the ``k`` weights of every PE for that chunk; the PE array gets them
from the weight memory, read at the beat's row every cycle).

Four stages, each advancing when the next has room: addresses; spike block read (the memory's
read port is the stage register); the block registered as it is, twice (block RAM outputs are
slow: on an ECP5 their clock-to-output takes 60 % of a 100 MHz cycle, and a deep memory adds a
multiplexer, so nothing but a short wire may follow them); the output register: the block with
its plane marks and counts. Every handshake signal of the output is a register, and no memory
enable depends on the data read in the same cycle.

Latency: the first beat is valid 5 cycles after ``start``; then one beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.contract.params import CoreParams

__all__ = ["Fetcher", "block_beat_layout", "exactly_one", "lowest_one"]


def block_beat_layout(params: CoreParams):
    """A spike block (``t_max`` planes x ``k`` neurons, plane-major); which of its planes below
    ``T`` hold a spike, how many (and whether just one), and the lowest of them (0 when none);
    its weight row; end of pass."""
    return data.StructLayout({
        "block": params.block_bits,
        "nonzero": params.t_max,
        "count": range(params.t_max + 1),
        "single": 1,
        "first": range(params.t_max),
        "row": range(params.weight_depth),
        "last": 1,
    })


def lowest_one(bits):
    """``(any, index)``: whether ``bits`` has a 1, and the index of the lowest (0 when none),
    as a tree of ``ceil(log2(len(bits)))`` levels."""
    if len(bits) == 1:
        return bits[0], Const(0, 0)
    half = 1 << (ceil_log2(len(bits)) - 1)  # a power of two: both sides' indices line up
    lo_any, lo_idx = lowest_one(bits[:half])
    hi_any, hi_idx = lowest_one(bits[half:])
    low_bits = Mux(lo_any, lo_idx, hi_idx) if half > 1 else Const(0, 0)
    return lo_any | hi_any, Cat(low_bits, ~lo_any & hi_any)


def exactly_one(bits):
    """Whether ``bits`` holds exactly one 1, as a tree (not through a population count)."""
    def any_many(part):
        if len(part) == 1:
            return part[0], Const(0)
        half = len(part) // 2
        (a_any, a_many), (b_any, b_many) = any_many(part[:half]), any_many(part[half:])
        return a_any | b_any, a_many | b_many | (a_any & b_any)
    any_, many = any_many(bits)
    return any_ & ~many


class Fetcher(wiring.Component):
    """Sequential reader of one layer's spike blocks and weight rows.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    start : In(1)
        Pulse: latch ``chunks``/``passes``/``src_base``/``w_base`` and begin (ignored while busy).
    chunks, passes : In(16)
        Input chunks per pass (1..act_chunks) and passes (1..max_passes); the sequencer checks
        the descriptor before it starts the fetcher.
    T : In(range(t_max + 1))
        Time steps of the layer: planes ``>= T`` are not marked (held during the layer).
    src_base, w_base : In
        First spike-block address and first weight row.
    busy : Out(1)
        Addresses remain to be issued.
    src_addr, src_en, src_data : spike-block read port (data the cycle after an enabled read).
    o : Out(stream.Signature(block_beat_layout(params)))
    """

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        src_depth = params.spike_rows
        super().__init__({
            "start": In(1),
            "chunks": In(16),
            "passes": In(16),
            "T": In(range(params.t_max + 1)),
            "src_base": In(range(src_depth)),
            "w_base": In(range(params.weight_depth)),
            "busy": Out(1),
            "src_addr": Out(range(src_depth)),
            "src_en": Out(1),
            "src_data": In(params.block_bits),
            "o": Out(stream.Signature(block_beat_layout(params))),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first valid beat (without back-pressure)."""
        return 5

    def elaborate(self, platform):
        m = Module()
        p = self._params
        k = p.k
        # Stage A: addresses.
        c = Signal(range(p.act_chunks))
        pas = Signal(range(p.max_passes))
        last_chunk = Signal(range(p.act_chunks))  # chunks - 1
        last_pass = Signal(range(p.max_passes))  # passes - 1
        w_ptr = Signal(range(p.weight_depth))
        src_base = Signal.like(self.src_base)
        # Stage B: the block on the read port.
        valid_b = Signal()
        last_b = Signal()
        w_addr_b = Signal.like(w_ptr)
        # Stages R, S: the block in a register, twice.
        valid_r = Signal()
        last_r = Signal()
        block_r = Signal(p.block_bits, reset_less=True)
        w_addr_r = Signal.like(w_ptr)
        valid_s = Signal()
        last_s = Signal()
        block_s = Signal(p.block_bits, reset_less=True)
        w_addr_s = Signal.like(w_ptr)
        # Stage C: the output register (block, marks, weight row). Data registers have no reset:
        # an abort only needs the valid flags cleared, and a reset costs logic at the input
        # of registers that take block RAM outputs.
        block_c = Signal(p.block_bits, reset_less=True)
        valid_c = self.o.valid
        m.d.comb += self.o.payload.block.eq(block_c)

        adv = Signal()  # every stage moves on
        # The stages move in lockstep: one enable, one LUT from two registers (``o.ready`` is a
        # skid buffer's register in the core), instead of a ready chain through every stage.
        # Bubbles only occur while the pipeline fills, so nothing is lost by not squeezing them.
        m.d.comb += [
            adv.eq(~valid_c | self.o.ready),
            self.src_addr.eq(src_base + c),
            self.src_en.eq(adv),
        ]
        with m.If(adv):
            m.d.sync += [valid_b.eq(self.busy), last_b.eq(c == last_chunk), w_addr_b.eq(w_ptr)]
            with m.If(self.busy):
                m.d.sync += [c.eq(c + 1), w_ptr.eq(w_ptr + 1)]
                with m.If(c == last_chunk):
                    m.d.sync += [c.eq(0), pas.eq(pas + 1)]
                    with m.If(pas == last_pass):
                        m.d.sync += self.busy.eq(0)
        with m.If(adv):
            m.d.sync += [valid_r.eq(valid_b), last_r.eq(last_b), block_r.eq(self.src_data),
                         w_addr_r.eq(w_addr_b)]
        with m.If(adv):
            m.d.sync += [valid_s.eq(valid_r), last_s.eq(last_r), block_s.eq(block_r),
                         w_addr_s.eq(w_addr_r)]
        in_T = Signal(p.t_max)  # planes below T
        m.d.sync += in_T.eq((1 << self.T) - 1)
        nonzero = Signal(p.t_max)
        count = Signal(range(p.t_max + 1))
        m.d.comb += count.eq(sum(nonzero[q] for q in range(p.t_max)))
        m.d.comb += nonzero.eq(
            Cat(*(block_s[q * k:(q + 1) * k].any() for q in range(p.t_max))) & in_T)
        with m.If(adv):
            m.d.sync += [valid_c.eq(valid_s), block_c.eq(block_s),
                         self.o.payload.nonzero.eq(nonzero), self.o.payload.row.eq(w_addr_s),
                         self.o.payload.count.eq(count),
                         self.o.payload.single.eq(exactly_one(nonzero)),
                         self.o.payload.first.eq(lowest_one(nonzero)[1]),
                         self.o.payload.last.eq(last_s)]
        with m.If(self.start & ~self.busy):
            m.d.sync += [
                self.busy.eq(1),
                c.eq(0),
                pas.eq(0),
                last_chunk.eq(self.chunks - 1),
                last_pass.eq(self.passes - 1),
                w_ptr.eq(self.w_base),
                src_base.eq(self.src_base),
            ]
        return m
