"""Fetcher: walks the chunks and passes of a layer, reading spike blocks and weight rows.

For pass ``p = 0..passes-1`` and chunk ``c = 0..chunks-1`` it reads the spike block of input chunk
``c`` (all ``t_max`` bit-planes of ``k`` input neurons) at ``src_base + c`` and the weight row
``w_base + p * chunks + c`` (the ``k`` weights of every PE for that chunk), and sends both as one
stream beat, with a mask of the block's non-zero bit-planes.

Three stages, each advancing when the next has room: addresses; spike block read (the memory's
read port is the stage register); block register with its plane mask, beside the weight read
(again the read port is the register). The weight row is read one cycle after its block, so the
block can be examined in between: every handshake signal of the output is a register, and no
memory enable depends on the data read in the same cycle.

Latency: the first beat is valid 3 cycles after ``start``; then one beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import CoreParams
from .pe import beat_layout

__all__ = ["Fetcher", "block_beat_layout"]


def block_beat_layout(params: CoreParams):
    """A spike block (``t_max`` planes x ``k`` neurons, plane-major), which of its planes hold a
    spike, its weights, end of pass."""
    return data.StructLayout({
        "block": params.block_bits,
        "nonzero": params.t_max,
        "weights": beat_layout(params.k, params.t_max, params.weight_bits, params.n_pe)
        .members["weights"],
        "last": 1,
    })


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
        Input chunks per pass (>= 1) and passes (>= 1).
    src_base, w_base : In
        First spike-block address and first weight row.
    busy : Out(1)
        Addresses remain to be issued.
    src_addr, src_en, src_data : spike-block read port (data the cycle after an enabled read).
    w_addr, w_en, w_data : weight read port (likewise).
    o : Out(stream.Signature(block_beat_layout(params)))
    """

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        src_depth = max(params.batch_depth, 2) * params.act_chunks
        super().__init__({
            "start": In(1),
            "chunks": In(16),
            "passes": In(16),
            "src_base": In(range(src_depth)),
            "w_base": In(range(params.weight_depth)),
            "busy": Out(1),
            "src_addr": Out(range(src_depth)),
            "src_en": Out(1),
            "src_data": In(params.block_bits),
            "w_addr": Out(range(params.weight_depth)),
            "w_en": Out(1),
            "w_data": In(params.weight_row_bits),
            "o": Out(stream.Signature(block_beat_layout(params))),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first valid beat (without back-pressure)."""
        return 3

    def elaborate(self, platform):
        m = Module()
        p = self._params
        k = p.k
        # Stage A: addresses.
        c = Signal(16)
        pas = Signal(16)
        chunks = Signal(16)
        passes = Signal(16)
        w_ptr = Signal(range(p.weight_depth))
        src_base = Signal.like(self.src_base)
        # Stage B: the block on the read port.
        valid_b = Signal()
        last_b = Signal()
        w_addr_b = Signal.like(w_ptr)
        # Stage C: the output register (block, mask) and the weights on their read port.
        block_c = self.o.payload.block
        valid_c = self.o.valid

        adv_c = Signal()
        adv_b = Signal()
        m.d.comb += [
            adv_c.eq(~valid_c | self.o.ready),
            adv_b.eq(~valid_b | adv_c),
            self.src_addr.eq(src_base + c),
            self.src_en.eq(adv_b),
            self.w_addr.eq(w_addr_b),
            self.w_en.eq(adv_c),
            self.o.payload.weights.eq(self.w_data),
        ]
        with m.If(adv_b):
            m.d.sync += [valid_b.eq(self.busy), last_b.eq(c == chunks - 1), w_addr_b.eq(w_ptr)]
            with m.If(self.busy):
                m.d.sync += [c.eq(c + 1), w_ptr.eq(w_ptr + 1)]
                with m.If(c == chunks - 1):
                    m.d.sync += [c.eq(0), pas.eq(pas + 1)]
                    with m.If(pas == passes - 1):
                        m.d.sync += self.busy.eq(0)
        with m.If(adv_c):
            nonzero = Cat(*(self.src_data[q * k:(q + 1) * k].any() for q in range(p.t_max)))
            m.d.sync += [valid_c.eq(valid_b), block_c.eq(self.src_data),
                         self.o.payload.nonzero.eq(nonzero), self.o.payload.last.eq(last_b)]
        with m.If(self.start & ~self.busy):
            m.d.sync += [
                self.busy.eq(1),
                c.eq(0),
                pas.eq(0),
                chunks.eq(self.chunks),
                passes.eq(self.passes),
                w_ptr.eq(self.w_base),
                src_base.eq(self.src_base),
            ]
        return m
