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

    ``o_sum = sum(i_weights[j] for j in range(k) if i_spikes[j])``, :attr:`latency` cycles after
    the inputs. Every adder level is registered; the inputs are not, so the owner feeds the tree
    from registers (a PE array registers a beat's spikes once for all its PEs, each PE its own
    weights). The lane selection (AND) is folded into the first adder level, where one LUT
    computes it with the sum bit. The tree runs freely (no clock enable): its owner keeps track
    of which cycles carry a beat.

    Parameters
    ----------
    k : int
        Lanes (synapses added per cycle).
    weight_bits : int
        Signed width of a weight.

    Members
    -------
    i_spikes, i_weights : In
        ``k`` spike bits and ``k`` signed weights.
    o_sum : Out(signed(sum_bits))
        Their conditional sum :attr:`latency` cycles later.
    """

    def __init__(self, k: int, weight_bits: int = 8):
        self._k = operator.index(k)
        self._weight_bits = operator.index(weight_bits)
        if self._k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if not 2 <= self._weight_bits <= 32:
            raise ValueError(f"weight_bits must be in 2..32, not {weight_bits}")
        super().__init__({
            "i_spikes": In(self._k),
            "i_weights": In(data.ArrayLayout(signed(self._weight_bits), self._k)),
            "o_sum": Out(signed(self.sum_bits)),
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
        """Cycles from a beat at the input to its sum at the output: ``levels`` (one stage when
        ``k`` is 1)."""
        return max(1, self.levels)

    @property
    def sum_bits(self) -> int:
        """Signed width of the sum (never overflows)."""
        return self._weight_bits + self.levels

    def elaborate(self, platform):
        m = Module()
        zero = Const(0, signed(self._weight_bits))
        level = [Mux(self.i_spikes[j], self.i_weights[j], zero) for j in range(self._k)]
        if self._k == 1:  # no adder: the selected lane is the sum, registered once
            s = Signal(signed(self.sum_bits), name="s1_0", reset_less=True)
            m.d.sync += s.eq(level[0])
            level = [s]
        for stage in range(1, self.levels + 1):
            width = self._weight_bits + stage
            nxt = []
            for j in range(0, len(level), 2):
                s = Signal(signed(width), name=f"s{stage}_{j // 2}", reset_less=True)
                pair = level[j] + level[j + 1] if j + 1 < len(level) else level[j]
                m.d.sync += s.eq(pair)
                nxt.append(s)
            level = nxt
        assert len(level) == 1
        m.d.comb += self.o_sum.eq(level[0])
        return m
