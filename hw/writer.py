"""Writer: stores one pass of fired outputs, masks padding neurons, counts spikes.

A hidden layer's pass (``n_pe`` packed words) becomes ``n_pe // k`` spike blocks for the next
layer (block ``j`` bit ``q*k + i`` = bit ``q`` of neuron ``j*k + i``: a transpose, pure wiring),
written to the ping-pong activation memory at consecutive addresses from ``dst_base``. The final
layer's pass becomes ``n_pe`` 32-bit output words (the membrane for a readout, else the packed
word) written to the output memory from ``out_base``. Neurons at or beyond ``n_out`` (padding of
the last pass) are forced to zero and not counted.

Latency: a pass takes ``n_pe // k`` (hidden) or ``n_pe`` (final) write cycles plus one accept
cycle; ``passes`` increments with its last write.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .fire_array import fire_array_output_layout
from .params import CoreParams

__all__ = ["Writer"]


class Writer(wiring.Component):
    """Pass writer for hidden (activation memory) and final (output memory) layers.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    clear : In(1)
        Pulse at layer start: latch ``dst_base``/``out_base``, zero ``passes`` and ``spikes``.
    n_out : In(16)
        Output neurons of the layer (the rest of the last pass is padding).
    final, readout : In(1)
        Final layer (write output memory); readout (write membranes, no spikes).
    dst_base, out_base : In
        First activation-memory block / output-memory word of the layer.
    passes : Out(16)
        Passes written since ``clear``.
    spikes : Out(32)
        Output 1-bits since ``clear`` (padding excluded).
    act_addr, act_data, act_en : Out
        Activation-memory write port.
    out_addr, out_data, out_en : Out
        Output-memory write port (32-bit words).
    i : In(stream.Signature(fire_array_output_layout(n_pe, t_max, acc_bits)))
    """

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        act_depth = 2 * params.act_chunks
        out_depth = params.batch_depth * params.max_neurons
        super().__init__({
            "clear": In(1),
            "n_out": In(16),
            "final": In(1),
            "readout": In(1),
            "dst_base": In(range(act_depth)),
            "out_base": In(range(out_depth)),
            "passes": Out(16),
            "spikes": Out(32),
            "act_addr": Out(range(act_depth)),
            "act_data": Out(params.block_bits),
            "act_en": Out(1),
            "out_addr": Out(range(out_depth)),
            "out_data": Out(32),
            "out_en": Out(1),
            "i": In(stream.Signature(
                fire_array_output_layout(params.n_pe, params.t_max, params.acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        n_pe, k, t_max = p.n_pe, p.k, p.t_max
        words = [Signal(t_max, name=f"word{n}") for n in range(n_pe)]
        vs = [Signal(32, name=f"v{n}") for n in range(n_pe)]
        base = Signal(16)  # first neuron of the pass being accepted
        idx = Signal(range(n_pe))
        act_ptr = Signal.like(self.act_addr)
        out_ptr = Signal.like(self.out_addr)
        busy = Signal()

        live = [Signal(name=f"live{n}") for n in range(n_pe)]
        for n in range(n_pe):
            m.d.comb += live[n].eq(base + n < self.n_out)
        count = sum(live[n] * self.i.payload[n].spikes for n in range(n_pe))

        m.d.comb += self.i.ready.eq(~busy)
        with m.If(self.i.valid & ~busy):
            m.d.sync += [busy.eq(1), idx.eq(0), base.eq(base + n_pe)]
            m.d.sync += self.spikes.eq(self.spikes + count)
            for n in range(n_pe):
                payload = self.i.payload[n]
                m.d.sync += [
                    words[n].eq(payload.word & live[n].replicate(t_max)),
                    vs[n].eq(payload.v.as_signed() & live[n].replicate(32)),
                ]

        # Block j: bit q*k + i is bit q of neuron j*k + i.
        blocks = [Cat(*(Cat(*(words[j * k + i][q] for i in range(k))) for q in range(t_max)))
                  for j in range(n_pe // k)]
        n_writes = Signal(range(n_pe + 1))
        m.d.comb += n_writes.eq(0)
        with m.If(busy):
            with m.If(self.final):
                m.d.comb += [n_writes.eq(n_pe), self.out_en.eq(1), self.out_addr.eq(out_ptr)]
                for n in range(n_pe):
                    with m.If(idx == n):
                        with m.If(self.readout):
                            m.d.comb += self.out_data.eq(vs[n])
                        with m.Else():
                            m.d.comb += self.out_data.eq(words[n])
                m.d.sync += out_ptr.eq(out_ptr + 1)
            with m.Else():
                m.d.comb += [n_writes.eq(n_pe // k), self.act_en.eq(1),
                             self.act_addr.eq(act_ptr)]
                for j in range(n_pe // k):
                    with m.If(idx == j):
                        m.d.comb += self.act_data.eq(blocks[j])
                m.d.sync += act_ptr.eq(act_ptr + 1)
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == n_writes - 1):
                m.d.sync += [busy.eq(0), self.passes.eq(self.passes + 1)]

        with m.If(self.clear):
            m.d.sync += [
                self.passes.eq(0), self.spikes.eq(0), base.eq(0), busy.eq(0),
                act_ptr.eq(self.dst_base), out_ptr.eq(self.out_base),
            ]
        return m
