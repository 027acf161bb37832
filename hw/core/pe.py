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

The sums live in a small memory of ``passes`` parts (``passes t_max`` sums, LUT RAM where the
device has it; 2 parts is ping-pong): the array accumulates the next passes into the other parts
while the firing array reads a finished pass from one. A PE holds no control of its own;
:class:`hw.core.pe_array.PEArray` drives the bank addresses of all PEs in lockstep.

With ``planes = 2`` (or 4) a beat carries two (four) planes of the same chunk (``planes k`` spike
bits) and one set of ``k`` weights: the PE has one adder tree per plane, all fed the same weight
register (weight reuse across time steps), so a beat does ``planes * k`` adds and writes
``planes`` per-plane sums. The bank is then ``passes t_max / planes`` words of ``planes`` sums
each (one word per *beat slot*); the firing side reads a pair of planes of a word per read and
picks a plane or combines the two itself (:class:`hw.core.fire_array.FireArray`; with four planes
the PE picks the pair by the read address, after the bank). The latency is the same as with one
plane.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 4 -- serial PE, weight reuse over T bit-planes.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common.synth_hints import COPY_ATTRS

from .adder_tree import ConditionalAdderTree

__all__ = ["beat_layout", "check_planes", "SpikePackPE"]


def check_planes(planes: int, t_max: int) -> int:
    """``planes`` as an int: bit-planes per beat, 1, 2 or 4, a divisor of ``t_max``."""
    planes = operator.index(planes)
    if planes not in (1, 2, 4):
        raise ValueError(f"planes must be 1, 2 or 4, not {planes}")
    if t_max % planes:
        raise ValueError(f"t_max ({t_max}) must be a multiple of planes ({planes})")
    return planes


def beat_layout(k: int, t_max: int, weight_depth: int, groups: int = 1, planes: int = 1):
    """Layout of one beat of the PE array: a spike chunk, its beat slot, the end-of-pass flag,
    and the weight memory row that holds the ``k`` weights of every PE for the chunk (the array
    receives those from the memory a cycle later); ``res``: a chunk of a conv layer's shortcut
    for PEs ``group k .. group k + k - 1`` (``groups = n_pe / k``), weighted by the shortcut's
    gain instead of a weight row.

    ``planes`` (1, 2 or 4; ``t_max`` a multiple of it): the bit-planes of the chunk a beat carries.
    Beat slot ``s`` (``range(t_max // planes)``) carries planes ``planes s + i``,
    ``i = 0 .. planes - 1``, plane ``planes s + i`` in spike bits ``i k .. i k + k - 1`` (so the
    beat's ``k planes`` spikes are bits ``s planes k .. (s + 1) planes k - 1`` of a plane-major
    spike block). With ``planes = 1`` the beat slot is the plane slot."""
    planes = check_planes(planes, t_max)
    return data.StructLayout({
        "spikes": k * planes,
        "slot": range(t_max // planes),
        "last": 1,
        "row": range(weight_depth),
        "res": 1,
        "group": range(groups),
    })


class SpikePackPE(wiring.Component):
    """One serial SpikePack PE: adder tree(s) plus a bank of per-plane sums for ``passes`` passes.

    A beat does ``planes * k`` conditional adds: one :class:`ConditionalAdderTree` per plane it
    carries, all fed the same weight register.

    Timing, for a beat presented in cycle 0 (``L`` is :attr:`tree_latency`: the input register
    and the tree's adder levels): ``i_weights`` in cycle 0 (the PE registers them), ``i_spikes_q``
    in cycle 1 (the array registers a beat's spikes once for all PEs, next to where they are
    chosen, so the broadcast to the PEs has a cycle of its own);

    * cycle ``L``: the owner presents the beat's bank address on ``addr`` (the old sums are
      read), ``acc`` (the cycle carries a beat), ``first`` (the beat slot has not been written in
      this pass: the old sums count as 0) and ``fwd`` (the beat written in this cycle has the
      same address: its new sums are the old ones). The PE registers them, so its own logic
      never waits on a signal shared by all PEs;
    * cycle ``L + 1``: the PE writes ``old + sum`` for each of the beat's ``planes`` planes (a
      plane without a spike in the beat gets ``old + 0``).

    The sums of a beat are therefore in the bank from cycle :attr:`latency` on, and beats may
    follow each other on one slot. ``fire_data`` is the sum of the plane at ``fire_addr`` (plane
    units, whatever ``planes``; with ``read_pairs`` the pair of planes holding it) one cycle
    after the address.

    Parameters
    ----------
    k : int
        Synapse lanes.
    t_max : int
        Bit-planes (per-plane sums) of one pass in the bank.
    sum_bits : int
        Signed width of a per-plane sum (at least the tree's sum width).
    weight_bits : int
        Signed width of a weight.
    res_lane : int
        The lane a shortcut beat's gain goes to (the PE's channel within its block of ``k``).
    planes : int
        Bit-planes per beat, 1, 2 or 4 (``t_max`` a multiple of it), see :func:`beat_layout`.
    read_pairs : bool
        With two or four planes: ``fire_data`` is a pair of planes of a beat slot's word, the
        pair holding the plane ``fire_addr`` names (the firing array picks a plane or fires the
        pair); else that plane.
    passes : int
        Passes the bank holds (a power of two): its parts, ``t_max`` sums each.
    control_copies : bool
        Keep this PE's registers of ``addr``, ``acc``, ``first`` and ``fwd`` its own
        (:data:`hw.common.synth_hints.COPY_ATTRS`): every PE registers the same inputs, so
        synthesis would otherwise merge the registers of all PEs into one that drives every
        bank across the chip (the critical path of a 32-PE ECP5 build). Costs
        ``bits(addr) + 3`` flip-flops a PE; off where flip-flops are scarce.

    Members
    -------
    i_weights : In
        This PE's ``k`` weights for the beat.
    i_res, i_hit : In(1)
        Beside ``i_weights``: the beat is a shortcut chunk; it is for this PE's block. On a
        shortcut beat the PE registers ``i_gain`` on lane ``res_lane`` if ``i_hit`` and 0 on
        every other lane instead of ``i_weights`` (the zeros are the weight register's
        synchronous reset, a multiplexer is on lane ``res_lane`` only); the gain applies to
        every plane of the beat.
    i_gain : In(signed(weight_bits))
        The layer's shortcut gain.
    i_spikes_q : In(k planes)
        The beat's spike chunk(s), registered (a cycle after ``i_weights``); plane ``i`` of the
        beat in bits ``i k .. i k + k - 1``.
    addr : In(range(passes t_max / planes))
        Bank address (``part * t_max / planes + beat slot``) of the beat leaving the tree.
    acc, first, fwd : In(1)
        That beat is valid; the old sums are 0; the old sums are the ones written this cycle.
    fire_addr : In(range(passes t_max))
        Read address of the firing side (``part * t_max + plane slot``).
    fire_data : Out(signed(sum_bits)), with ``read_pairs`` Out(ArrayLayout(signed(sum_bits), 2))
        The sum at ``fire_addr`` of the previous cycle; with ``read_pairs`` the pair of planes
        ``2 j, 2 j + 1`` holding it (low first).
    """

    def __init__(self, k: int, t_max: int, sum_bits: int, weight_bits: int = 8,
                 res_lane: int = 0, planes: int = 1, read_pairs: bool = True, passes: int = 2,
                 control_copies: bool = False):
        self._k = operator.index(k)
        self._control_copies = bool(control_copies)
        self._res_lane = operator.index(res_lane)
        if not 0 <= self._res_lane < self._k:
            raise ValueError(f"res_lane must be a lane, 0..{self._k - 1}, not {res_lane}")
        self._t_max = operator.index(t_max)
        self._sum_bits = operator.index(sum_bits)
        self._weight_bits = operator.index(weight_bits)
        if self._t_max < 1:
            raise ValueError(f"t_max must be at least 1, not {t_max}")
        self._planes = check_planes(planes, self._t_max)
        self._passes = operator.index(passes)
        if self._passes < 2 or self._passes & (self._passes - 1):
            raise ValueError(f"passes must be a power of two, at least 2, not {passes}")
        self._read_pairs = self._planes >= 2 and bool(read_pairs)
        self._trees = [ConditionalAdderTree(self._k, self._weight_bits)
                       for _ in range(self._planes)]
        self._tree = self._trees[0]
        if self._sum_bits < self._tree.sum_bits:
            raise ValueError(f"sum_bits ({sum_bits}) is narrower than one chunk sum "
                             f"({self._tree.sum_bits} bits)")
        depth = self._passes * self._t_max
        super().__init__({
            "i_weights": In(data.ArrayLayout(signed(self._weight_bits), self._k)),
            "i_res": In(1),
            "i_hit": In(1),
            "i_gain": In(signed(self._weight_bits)),
            "i_spikes_q": In(self._k * self._planes),
            "addr": In(range(depth // self._planes)),
            "acc": In(1),
            "first": In(1),
            "fwd": In(1),
            "fire_addr": In(range(depth)),
            "fire_data": Out(data.ArrayLayout(signed(self._sum_bits), 2) if self._read_pairs
                             else signed(self._sum_bits)),
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
    def planes(self) -> int:
        return self._planes

    @property
    def tree_latency(self) -> int:
        """Cycles from a beat at the input to its chunk sum at the tree output (the input
        register, then the tree)."""
        return 1 + self._tree.latency

    @property
    def latency(self) -> int:
        """Cycles from a beat at the input until the bank holds its sum (``tree_latency + 2``)."""
        return self.tree_latency + 2

    def _control_registers(self):
        """This PE's registers of ``addr``, ``acc``, ``first``, ``fwd`` (kept apart from the
        other PEs' with ``control_copies``)."""
        attrs = COPY_ATTRS if self._control_copies else {}
        return (Signal.like(self.addr, name="wr_addr", attrs=attrs),
                Signal(name="wr_en", attrs=attrs), Signal(name="first", attrs=attrs),
                Signal(name="fwd", attrs=attrs))

    def _weight_register(self, m):
        """The PE's weight register (every plane's tree reads it): ``i_weights``, or on a
        shortcut beat the gain on lane ``res_lane`` (if ``i_hit``) and 0 on the others."""
        weights_q = Signal.like(self.i_weights, reset_less=True)
        m.d.sync += weights_q.eq(self.i_weights)
        with m.If(self.i_res):  # a shortcut chunk: the gain on one lane, 0 on the others
            m.d.sync += weights_q.eq(0)
            with m.If(self.i_hit):
                m.d.sync += weights_q[self._res_lane].eq(self.i_gain)
        return weights_q

    def elaborate(self, platform):
        if self._planes > 1:
            return self._elaborate_planes()
        m = Module()
        m.submodules.tree = tree = self._tree
        weights_q = self._weight_register(m)
        m.d.comb += [tree.i_spikes.eq(self.i_spikes_q), tree.i_weights.eq(weights_q)]

        m.submodules.bank = bank = memory.Memory(
            shape=signed(self._sum_bits), depth=self._passes * self._t_max, init=[])
        wr = bank.write_port()
        old_rd = bank.read_port(transparent_for=())
        rd = bank.read_port(transparent_for=())

        # Cycle L: read the old sum, register the chunk sum and this PE's copy of the control.
        chunk = Signal(signed(self._tree.sum_bits), reset_less=True)
        wr_addr, wr_en, first, fwd = self._control_registers()
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

    def _elaborate_planes(self):
        """``planes > 1``: a tree per plane on one weight register; a bank word per beat slot
        holding its ``planes`` sums (side by side, plane ``i`` at bits ``i sum_bits``)."""
        m = Module()
        planes, k, sb = self._planes, self._k, self._sum_bits
        weights_q = self._weight_register(m)
        for i, tree in enumerate(self._trees):
            m.submodules[f"tree{i}"] = tree
            m.d.comb += [tree.i_spikes.eq(self.i_spikes_q[i * k:(i + 1) * k]),
                         tree.i_weights.eq(weights_q)]

        m.submodules.bank = bank = memory.Memory(
            shape=planes * sb, depth=self._passes * self._t_max // planes, init=[])
        wr = bank.write_port()
        old_rd = bank.read_port(transparent_for=())
        # Planes per firing read, of the word's: the read picks a pair or a plane of the word
        # by ``pick_bits`` address bits (below), or reads the whole word.
        shift = planes.bit_length() - 1
        pick_bits = shift - (1 if self._read_pairs else 0)
        rd = (bank.read_port(domain="comb") if pick_bits
              else bank.read_port(transparent_for=()))

        # Cycle L: read the old sums, register the chunk sums and this PE's copy of the control.
        wr_addr, wr_en, first, fwd = self._control_registers()
        m.d.sync += [wr_addr.eq(self.addr), wr_en.eq(self.acc),
                     first.eq(self.first), fwd.eq(self.fwd)]
        news = []
        for i, tree in enumerate(self._trees):
            chunk = Signal(signed(tree.sum_bits), name=f"chunk{i}", reset_less=True)
            m.d.sync += chunk.eq(tree.o_sum)
            # Cycle L + 1: old + chunk, the old sum from the bank or from the previous write.
            new = Signal(signed(sb), name=f"new{i}")
            last = Signal(signed(sb), name=f"last{i}", reset_less=True)
            old = old_rd.data[i * sb:(i + 1) * sb].as_signed()
            m.d.comb += new.eq(Mux(first, 0, Mux(fwd, last, old)) + chunk)
            m.d.sync += last.eq(new)
            news.append(new)
        # Firing side: the word of the plane's beat slot (``t_max`` is a multiple of ``planes``,
        # so ``fire_addr >> log2(planes)`` is the word), then by the address's low bits a pair
        # of it (``read_pairs``: the firing array picks a plane or fires the pair; with two
        # planes the whole word) or a plane. Where a part is picked, the pick comes before the
        # read's register (the memory read without one, the multiplexer on the address's own
        # bits, then the register): the sum leaves the PE from a flip-flop, as the whole word
        # does, and the firing array's path from it to its units is the same whatever
        # ``planes``. (Picked after the register, by a register of the address bits that
        # synthesis merged into one for all PEs, the multiplexer was a 1,024-add ULX3S build's
        # critical path into the firing units: 88.6 MHz.)
        if pick_bits == 0:
            fire_data = rd.data
        else:
            words = [rd.data[i * sb:(i + 1) * sb] for i in range(planes)]
            if self._read_pairs:
                pick = [Cat(words[i], words[i + 1]) for i in range(0, planes, 2)]
            else:
                pick = words
            sel = self.fire_addr[shift - pick_bits:shift]
            fire_data = Signal(len(pick[0]), name="fire_q", reset_less=True)
            m.d.sync += fire_data.eq(Mux(sel, pick[1], pick[0]) if len(pick) == 2
                                     else Array(pick)[sel])
            if not self._read_pairs:
                fire_data = fire_data.as_signed()
        m.d.comb += [
            old_rd.addr.eq(self.addr),
            wr.addr.eq(wr_addr),
            wr.en.eq(wr_en),
            wr.data.eq(Cat(*news)),
            rd.addr.eq(self.fire_addr[shift:]),
            self.fire_data.eq(fire_data),
        ]
        return m
