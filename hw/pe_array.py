"""The PE array: ``n_pe`` serial SpikePack PEs fed one spike chunk in lockstep.

Every PE sees the same ``k``-wide bit-plane chunk (broadcast) and its own ``k`` weights, so one
beat performs ``n_pe * k`` synaptic adds (one weight times one bit-plane each). Each PE's pipelined
adder tree sums across its ``k`` lanes; its accumulator bank sums across the chunks of a pass, per
plane. The array emits, once per pass, the per-plane sums of all ``n_pe`` output neurons.

All PEs run the same control on the same beats, so their handshakes agree cycle for cycle; the
array exposes PE 0's ``ready``/``valid`` (synthesis merges the identical control registers).
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .pe import SpikePackPE, beat_layout

__all__ = ["PEArray", "sums_layout"]


def sums_layout(n_pe: int, t_max: int, acc_bits: int):
    """Per-plane sums of every PE: ``payload[pe][slot]``."""
    return data.ArrayLayout(data.ArrayLayout(signed(acc_bits), t_max), n_pe)


class PEArray(wiring.Component):
    """``n_pe`` :class:`hw.pe.SpikePackPE` in lockstep.

    Parameters
    ----------
    n_pe, k, t_max, acc_bits, weight_bits : int
        Array shape and widths (see :class:`hw.params.CoreParams`).

    Members
    -------
    i : In(stream.Signature(beat_layout(k, t_max, weight_bits, n_pe)))
        One spike chunk, the weights of every PE for it, its plane slot and the end-of-pass flag.
    o : Out(stream.Signature(sums_layout(n_pe, t_max, acc_bits)))
        Per-plane sums of the ``n_pe`` neurons of a pass, :attr:`latency` cycles after its last
        beat.
    """

    def __init__(self, n_pe: int, k: int, t_max: int, acc_bits: int, weight_bits: int = 8):
        self._n_pe = operator.index(n_pe)
        if self._n_pe < 1:
            raise ValueError(f"n_pe must be at least 1, not {n_pe}")
        self._pes = [SpikePackPE(k, t_max, acc_bits, weight_bits) for _ in range(self._n_pe)]
        super().__init__({
            "i": In(stream.Signature(beat_layout(k, t_max, weight_bits, self._n_pe))),
            "o": Out(stream.Signature(sums_layout(self._n_pe, t_max, acc_bits))),
        })

    @property
    def n_pe(self) -> int:
        return self._n_pe

    @property
    def latency(self) -> int:
        """Cycles from accepting the last beat of a pass to ``o.valid`` (without stalls)."""
        return self._pes[0].latency

    def elaborate(self, platform):
        m = Module()
        for n, pe in enumerate(self._pes):
            m.submodules[f"pe{n}"] = pe
            m.d.comb += [
                pe.i.valid.eq(self.i.valid),
                pe.i.payload.spikes.eq(self.i.payload.spikes),
                pe.i.payload.weights.eq(self.i.payload.weights[n]),
                pe.i.payload.slot.eq(self.i.payload.slot),
                pe.i.payload.last.eq(self.i.payload.last),
                pe.o.ready.eq(self.o.ready),
                self.o.payload[n].eq(pe.o.payload),
            ]
        m.d.comb += [
            self.i.ready.eq(self._pes[0].i.ready),
            self.o.valid.eq(self._pes[0].o.valid),
        ]
        return m
