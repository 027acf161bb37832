"""Fetcher: walks the chunks and passes of a layer, reading spike blocks and weight rows.

For pass ``p = 0..passes-1`` and chunk ``c = 0..chunks-1`` it reads the spike block of input chunk
``c`` (all ``t_max`` bit-planes of ``k`` input neurons) at ``src_base + c`` and the weight row
``w_base + p * chunks + c`` (the ``k`` weights of every PE for that chunk), and sends both as one
stream beat. Both memories are read through synchronous read ports whose enable is the stream's
advance signal, so the read port *is* the output register: one beat per cycle, back-pressure holds
the read data, no skid buffer needed.

Latency: the first beat is valid 2 cycles after ``start`` (address, then data).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import CoreParams
from .pe import beat_layout

__all__ = ["Fetcher", "block_beat_layout"]


def block_beat_layout(params: CoreParams):
    """A spike block (``t_max`` planes x ``k`` neurons, plane-major), its weights, end of pass."""
    return data.StructLayout({
        "block": params.block_bits,
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
    src_addr, w_addr, rd_en : Out
        Read-port address and enable (shared by both memories).
    src_data, w_data : In
        Read-port data, valid the cycle after an enabled read.
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
            "w_addr": Out(range(params.weight_depth)),
            "rd_en": Out(1),
            "src_data": In(params.block_bits),
            "w_data": In(params.weight_row_bits),
            "o": Out(stream.Signature(block_beat_layout(params))),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first valid beat (without back-pressure)."""
        return 2

    def elaborate(self, platform):
        m = Module()
        p = self._params
        c = Signal(16)
        pas = Signal(16)
        chunks = Signal(16)
        passes = Signal(16)
        w_ptr = Signal(range(p.weight_depth))
        src_base = Signal.like(self.src_base)
        last_q = Signal()
        en = Signal()

        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.rd_en.eq(en),
            self.src_addr.eq(src_base + c),
            self.w_addr.eq(w_ptr),
            self.o.payload.block.eq(self.src_data),
            self.o.payload.weights.eq(self.w_data),
            self.o.payload.last.eq(last_q),
        ]
        with m.If(en):
            m.d.sync += [
                self.o.valid.eq(self.busy),
                last_q.eq(c == chunks - 1),
            ]
            with m.If(self.busy):
                m.d.sync += [c.eq(c + 1), w_ptr.eq(w_ptr + 1)]
                with m.If(c == chunks - 1):
                    m.d.sync += [c.eq(0), pas.eq(pas + 1)]
                    with m.If(pas == passes - 1):
                        m.d.sync += self.busy.eq(0)
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
