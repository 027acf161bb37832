"""Serial SpikePack processing element: one output neuron, ``k`` synapses per cycle.

A beat brings one ``k``-wide chunk of one bit-plane (the spikes of ``k`` input neurons at one time
step) and the ``k`` weights of this PE's output neuron for that chunk. The conditional adder tree
adds the selected weights; the result is added into the per-plane sum ``P[slot]`` of the plane the
chunk belongs to (``slot`` is the bit position in the packed word: slot ``T - t`` is time step
``t``). The last beat of a pass emits ``P[0..t_max-1]`` and clears the bank, so the next pass
starts without a bubble.

Keeping one sum per plane (rather than doubling on the fly) lets the input chunk be the outer loop
and the planes the inner loop: a weight is held for all the bit-planes it meets, all-zero planes
are skipped without breaking the Horner order, and LIF mode (which needs every time step's input
separately) uses the same datapath. The firing unit then does the Horner doubling
``u = 2 u + P[slot]`` MSB first (SpikePack) or the per-step leak and fire (LIF).

# Ref: arXiv 2501.14484 (SpikePack), Sec. 4 -- serial PE, weight reuse over T bit-planes.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .adder_tree import ConditionalAdderTree

__all__ = ["beat_layout", "SpikePackPE"]


def beat_layout(k: int, t_max: int, weight_bits: int = 8, n_pe: int | None = None):
    """Layout of one PE beat: a spike chunk, its weights, the plane slot, the end-of-pass flag.

    With ``n_pe`` given, ``weights`` holds the ``k`` weights of each of ``n_pe`` PEs (the array
    beat); otherwise the ``k`` weights of one PE.
    """
    w = data.ArrayLayout(signed(weight_bits), k)
    if n_pe is not None:
        w = data.ArrayLayout(w, n_pe)
    return data.StructLayout({
        "spikes": k,
        "weights": w,
        "slot": range(t_max),
        "last": 1,
    })


class SpikePackPE(wiring.Component):
    """One serial SpikePack PE: adder tree plus per-plane accumulator bank.

    Parameters
    ----------
    k : int
        Synapse lanes.
    t_max : int
        Bit-planes (per-plane sums) the bank holds.
    acc_bits : int
        Signed width of a per-plane sum.
    weight_bits : int
        Signed width of a weight.

    Members
    -------
    i : In(stream.Signature(beat_layout(k, t_max, weight_bits)))
        Beats; ``last`` closes a pass.
    o : Out(stream.Signature(ArrayLayout(signed(acc_bits), t_max)))
        ``P[slot]`` for every slot, once per pass, :attr:`latency` cycles after the last beat
        was accepted (when not stalled). Slots the pass never touched are 0.

    The pipeline stalls only when a pass ends while the previous pass's sums are still waiting
    on ``o``. A finished bank is copied out (flip-flops only, no multiplexer) the cycle after its
    last beat, while the next pass's first beat is already being added.
    """

    def __init__(self, k: int, t_max: int, acc_bits: int, weight_bits: int = 8):
        self._k = operator.index(k)
        self._t_max = operator.index(t_max)
        self._acc_bits = operator.index(acc_bits)
        self._weight_bits = operator.index(weight_bits)
        if self._t_max < 1:
            raise ValueError(f"t_max must be at least 1, not {t_max}")
        self._tree = ConditionalAdderTree(self._k, self._weight_bits,
                                          tag_bits=_slot_bits(self._t_max) + 1)
        if self._acc_bits < self._tree.sum_bits:
            raise ValueError(f"acc_bits ({acc_bits}) is narrower than one chunk sum "
                             f"({self._tree.sum_bits} bits)")
        super().__init__({
            "i": In(stream.Signature(beat_layout(self._k, self._t_max, self._weight_bits))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(self._acc_bits), self._t_max))),
        })

    @property
    def k(self) -> int:
        return self._k

    @property
    def t_max(self) -> int:
        return self._t_max

    @property
    def latency(self) -> int:
        """Cycles from accepting the last beat of a pass to ``o.valid`` (without stalls)."""
        return self._tree.latency + 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.tree = tree = self._tree
        slot_bits = _slot_bits(self._t_max)

        tail_slot = tree.o_tag[:slot_bits]
        tail_last = tree.o_tag[slot_bits]
        # ``emit``: the bank holds a finished pass; this cycle it is copied to ``o.payload`` and
        # cleared (while the first beat of the next pass may already be added into it).
        emit = Signal()
        stall = emit & self.o.valid & ~self.o.ready
        en = Signal()
        m.d.comb += [
            en.eq(~stall),
            tree.en.eq(en),
            tree.i_valid.eq(self.i.valid),
            tree.i_spikes.eq(self.i.payload.spikes),
            tree.i_weights.eq(self.i.payload.weights),
            tree.i_tag.eq(Cat(self.i.payload.slot, self.i.payload.last)),
            self.i.ready.eq(en),
        ]

        bank = Array(Signal(signed(self._acc_bits), name=f"p{q}") for q in range(self._t_max))
        add = en & tree.o_valid
        new = Signal(signed(self._acc_bits))
        m.d.comb += new.eq(Mux(emit, 0, bank[tail_slot]) + tree.o_sum)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(en):
            m.d.sync += emit.eq(add & tail_last)
            with m.If(emit):
                m.d.sync += self.o.valid.eq(1)
                for q in range(self._t_max):
                    m.d.sync += [self.o.payload[q].eq(bank[q]), bank[q].eq(0)]
            with m.If(add):
                m.d.sync += bank[tail_slot].eq(new)
        return m


def _slot_bits(t_max: int) -> int:
    """Bits of a slot index ``0..t_max-1``."""
    return max(1, (t_max - 1).bit_length())
