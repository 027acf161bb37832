"""Conditional adder tree: the multiplier-free synapse datapath of one PE.

Each of the ``k`` lanes holds a signed weight and one input spike (a bit of a bit-plane word); the
tree adds the weights whose spike is 1. No multiplier: a lane is an AND gate, the tree is adders.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 4 -- serial input, conditional accumulation.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["ConditionalAdderTree"]


class ConditionalAdderTree(wiring.Component):
    """Pipelined sum of the weights selected by a spike vector.

    ``o_sum = sum(i_weights[j] for j in range(k) if i_spikes[j])``, with one register stage after
    the input and one after every adder level. The pipeline advances only while ``en`` is
    high (a clock enable, so a stream stage around it can stall it); ``i_tag`` travels alongside the
    data unchanged.

    Parameters
    ----------
    k : int
        Lanes (synapses added per cycle).
    weight_bits : int
        Signed width of a weight.
    tag_bits : int
        Width of the side-band tag carried with each beat.

    Members
    -------
    en : In(1)
        Advance the pipeline this cycle.
    i_valid, i_spikes, i_weights, i_tag : In
        One beat: valid flag, ``k`` spike bits, ``k`` signed weights, tag.
    o_valid, o_sum, o_tag : Out
        The beat :attr:`latency` advancing cycles later.
    """

    def __init__(self, k: int, weight_bits: int = 8, tag_bits: int = 1):
        self._k = operator.index(k)
        self._weight_bits = operator.index(weight_bits)
        self._tag_bits = operator.index(tag_bits)
        if self._k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if not 2 <= self._weight_bits <= 32:
            raise ValueError(f"weight_bits must be in 2..32, not {weight_bits}")
        if self._tag_bits < 1:
            raise ValueError(f"tag_bits must be at least 1, not {tag_bits}")
        super().__init__({
            "en": In(1),
            "i_valid": In(1),
            "i_spikes": In(self._k),
            "i_weights": In(data.ArrayLayout(signed(self._weight_bits), self._k)),
            "i_tag": In(self._tag_bits),
            "o_valid": Out(1),
            "o_sum": Out(signed(self.sum_bits)),
            "o_tag": Out(self._tag_bits),
        })

    @property
    def k(self) -> int:
        return self._k

    @property
    def levels(self) -> int:
        """Adder levels: ``ceil(log2(k))``."""
        return ceil_log2(self._k)

    @property
    def latency(self) -> int:
        """Advancing cycles from a beat at the input to its sum at the output."""
        return 1 + self.levels

    @property
    def sum_bits(self) -> int:
        """Signed width of the sum (never overflows)."""
        return self._weight_bits + self.levels

    def elaborate(self, platform):
        m = Module()
        valid = self.i_valid
        tag = self.i_tag
        # Stage 0 registers the raw spikes and weights (flip-flops only); the lane selection (AND)
        # is folded into the first adder level, where a LUT computes it with the sum bit.
        spikes_r = Signal(self._k)
        weights_r = Signal.like(self.i_weights)
        with m.If(self.en):
            m.d.sync += [spikes_r.eq(self.i_spikes), weights_r.eq(self.i_weights)]
        zero = Const(0, signed(self._weight_bits))
        level = [Mux(spikes_r[j], weights_r[j], zero) for j in range(self._k)]
        for stage in range(self.latency):
            v_r = Signal(name=f"valid{stage}")
            t_r = Signal(self._tag_bits, name=f"tag{stage}")
            with m.If(self.en):
                m.d.sync += [v_r.eq(valid), t_r.eq(tag)]
            valid, tag = v_r, t_r
            if stage == 0:
                continue
            width = self._weight_bits + stage
            nxt = []
            for j in range(0, len(level), 2):
                s = Signal(signed(width), name=f"s{stage}_{j // 2}")
                pair = level[j] + level[j + 1] if j + 1 < len(level) else level[j]
                with m.If(self.en):
                    m.d.sync += s.eq(pair)
                nxt.append(s)
            level = nxt
        assert len(level) == 1
        m.d.comb += [
            self.o_valid.eq(valid),
            self.o_sum.eq(level[0]),
            self.o_tag.eq(tag),
        ]
        return m

