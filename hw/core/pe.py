"""Serial SpikePack processing element: one output neuron, ``k`` synapses per cycle.

A beat brings one ``k``-wide chunk of one bit-plane (the spikes of ``k`` input neurons at one time
step) and the ``k`` weights of this PE's output neuron for that chunk. The conditional adder tree
adds the selected weights; the result is added into the per-plane sum ``P[slot]`` of the plane the
chunk belongs to (``slot`` is the bit position in the packed word: slot ``T - t`` is time step
``t``).

Keeping one sum per plane (rather than doubling on the fly) lets the input chunk be the outer loop
and the planes the inner loop: a weight is held for all the bit-planes it meets, all-zero planes
are skipped without breaking the Horner order, and LIF mode (which needs every time step's input
separately) uses the same datapath. The firing array then does the Horner doubling
``u = 2 u + P[slot]`` MSB first (SpikePack) or the per-step leak and fire (LIF), reading the sums
one plane per cycle.

The sums live in a small memory of two halves (``2 t_max`` words, LUT RAM where the device has
it): the array accumulates one pass into one half while the firing array reads the previous pass
from the other. A PE holds no control of its own; :class:`hw.core.pe_array.PEArray` drives the bank
addresses of all PEs in lockstep.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 4 -- serial PE, weight reuse over T bit-planes.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .adder_tree import ConditionalAdderTree

__all__ = ["beat_layout", "SpikePackPE"]


def beat_layout(k: int, t_max: int, weight_depth: int, groups: int = 1, planes: int = 1):
    """Layout of one beat of the PE array: a spike chunk, its plane slot, the end-of-pass flag,
    and the weight memory row that holds the ``k`` weights of every PE for the chunk (the array
    receives those from the memory a cycle later); ``res``: a chunk of a conv layer's shortcut
    for PEs ``group k .. group k + k - 1`` (``groups = n_pe / k``), weighted by the shortcut's
    gain instead of a weight row."""
    return data.StructLayout({
        "spikes": k * planes,
        "slot": range(t_max // planes),
        "last": 1,
        "row": range(weight_depth),
        "res": 1,
        "group": range(groups),
    })


class SpikePackPE(wiring.Component):
    """One serial SpikePack PE: adder tree plus a two-half bank of per-plane sums.

    Timing, for a beat presented in cycle 0 (``L`` is :attr:`tree_latency`: the input register
    and the tree's adder levels): ``i_weights`` in cycle 0 (the PE registers them), ``i_spikes_q``
    in cycle 1 (the array registers a beat's spikes once for all PEs, next to where they are
    chosen, so the broadcast to the PEs has a cycle of its own);

    * cycle ``L``: the owner presents the beat's bank address on ``addr`` (the old sum is read),
      ``acc`` (the cycle carries a beat), ``first`` (the slot has not been written in this pass:
      the old sum counts as 0) and ``fwd`` (the beat written in this cycle has the same
      address: its new sum is the old one). The PE registers them, so its own logic never waits
      on a signal shared by all PEs;
    * cycle ``L + 1``: the PE writes ``old + sum``.

    The sum of a beat is therefore in the bank from cycle :attr:`latency` on, and beats may follow
    each other on one slot. ``fire_data`` is the bank word at ``fire_addr`` one cycle after the
    address.

    Parameters
    ----------
    k : int
        Synapse lanes.
    t_max : int
        Bit-planes (per-plane sums) of one half of the bank.
    sum_bits : int
        Signed width of a per-plane sum (at least the tree's sum width).
    weight_bits : int
        Signed width of a weight.
    res_lane : int
        The lane a shortcut beat's gain goes to (the PE's channel within its block of ``k``).

    Members
    -------
    i_weights : In
        This PE's ``k`` weights for the beat.
    i_res, i_hit : In(1)
        Beside ``i_weights``: the beat is a shortcut chunk; it is for this PE's block. On a
        shortcut beat the PE registers ``i_gain`` on lane ``res_lane`` if ``i_hit`` and 0 on
        every other lane instead of ``i_weights`` (the zeros are the weight register's
        synchronous reset, a multiplexer is on lane ``res_lane`` only).
    i_gain : In(signed(weight_bits))
        The layer's shortcut gain.
    i_spikes_q : In(k)
        The beat's spike chunk, registered (a cycle after ``i_weights``).
    addr : In(range(2 t_max))
        Bank address (``half * t_max + slot``) of the beat leaving the tree.
    acc, first, fwd : In(1)
        That beat is valid; the old sum is 0; the old sum is the one written this cycle.
    fire_addr : In(range(2 t_max))
        Read address of the firing side.
    fire_data : Out(signed(sum_bits))
        The sum at ``fire_addr`` of the previous cycle.
    """

    def __init__(self, k: int, t_max: int, sum_bits: int, weight_bits: int = 8,
                 res_lane: int = 0):
        self._k = operator.index(k)
        self._res_lane = operator.index(res_lane)
        if not 0 <= self._res_lane < self._k:
            raise ValueError(f"res_lane must be a lane, 0..{self._k - 1}, not {res_lane}")
        self._t_max = operator.index(t_max)
        self._sum_bits = operator.index(sum_bits)
        self._weight_bits = operator.index(weight_bits)
        if self._t_max < 1:
            raise ValueError(f"t_max must be at least 1, not {t_max}")
        self._tree = ConditionalAdderTree(self._k, self._weight_bits)
        if self._sum_bits < self._tree.sum_bits:
            raise ValueError(f"sum_bits ({sum_bits}) is narrower than one chunk sum "
                             f"({self._tree.sum_bits} bits)")
        depth = 2 * self._t_max
        super().__init__({
            "i_weights": In(data.ArrayLayout(signed(self._weight_bits), self._k)),
            "i_res": In(1),
            "i_hit": In(1),
            "i_gain": In(signed(self._weight_bits)),
            "i_spikes_q": In(self._k),
            "addr": In(range(depth)),
            "acc": In(1),
            "first": In(1),
            "fwd": In(1),
            "fire_addr": In(range(depth)),
            "fire_data": Out(signed(self._sum_bits)),
        })

    @property
    def k(self) -> int:
        return self._k

    @property
    def t_max(self) -> int:
        return self._t_max

    @property
    def sum_bits(self) -> int:
        return self._sum_bits

    @property
    def tree_latency(self) -> int:
        """Cycles from a beat at the input to its chunk sum at the tree output (the input
        register, then the tree)."""
        return 1 + self._tree.latency

    @property
    def latency(self) -> int:
        """Cycles from a beat at the input until the bank holds its sum (``tree_latency + 2``)."""
        return self.tree_latency + 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.tree = tree = self._tree
        weights_q = Signal.like(self.i_weights, reset_less=True)
        m.d.sync += weights_q.eq(self.i_weights)
        with m.If(self.i_res):  # a shortcut chunk: the gain on one lane, 0 on the others
            m.d.sync += weights_q.eq(0)
            with m.If(self.i_hit):
                m.d.sync += weights_q[self._res_lane].eq(self.i_gain)
        m.d.comb += [tree.i_spikes.eq(self.i_spikes_q), tree.i_weights.eq(weights_q)]

        m.submodules.bank = bank = memory.Memory(
            shape=signed(self._sum_bits), depth=2 * self._t_max, init=[])
        wr = bank.write_port()
        old_rd = bank.read_port(transparent_for=())
        rd = bank.read_port(transparent_for=())

        # Cycle L: read the old sum, register the chunk sum and this PE's copy of the control.
        chunk = Signal(signed(self._tree.sum_bits), reset_less=True)
        wr_addr = Signal.like(self.addr)
        wr_en = Signal()
        first = Signal()
        fwd = Signal()
        m.d.sync += [chunk.eq(tree.o_sum), wr_addr.eq(self.addr), wr_en.eq(self.acc),
                     first.eq(self.first), fwd.eq(self.fwd)]
        # Cycle L + 1: old + chunk, the old sum from the bank or from the previous write.
        new = Signal(signed(self._sum_bits))
        last = Signal(signed(self._sum_bits), reset_less=True)
        m.d.comb += new.eq(Mux(first, 0, Mux(fwd, last, old_rd.data)) + chunk)
        m.d.sync += last.eq(new)
        m.d.comb += [
            old_rd.addr.eq(self.addr),
            wr.addr.eq(wr_addr),
            wr.en.eq(wr_en),
            wr.data.eq(new),
            rd.addr.eq(self.fire_addr),
            self.fire_data.eq(rd.data),
        ]
        return m
