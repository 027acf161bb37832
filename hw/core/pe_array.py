"""The PE array: ``n_pe`` serial SpikePack PEs fed one spike chunk in lockstep.

Every PE sees the same ``k``-wide bit-plane chunk (broadcast) and its own ``k`` weights, so one
beat performs ``n_pe * k`` synaptic adds (one weight times one bit-plane each). Each PE's pipelined
adder tree sums across its ``k`` lanes; its bank sums across the chunks of a pass, per plane.

With ``planes = 2`` a beat carries two bit-planes of the same chunk (``2 k`` spike bits, beat slot
``s`` holding planes ``2 s`` and ``2 s + 1``, see :func:`hw.core.pe.beat_layout`) and still one
weight row: each PE adds it to both planes with a tree per plane, so a beat performs
``planes * n_pe * k`` adds for the same weight-memory bandwidth; ``planes = 4`` likewise with four
trees (beat slot ``s``: planes ``4 s .. 4 s + 3``). The firing side reads a pair of planes per
read (:data:`bank_read_signature` with ``planes = 2``): with two planes a beat slot's word, with
four the half of it that holds the addressed plane; the latency is the same.

The array's one controller carries the beat's slot and end-of-pass flag beside the trees and
drives the bank addresses of all PEs, so the PEs hold no control of their own. Banks have
``bank_passes`` parts (*halves* when there are two), one pass each, used in turn: while the
firing array reads pass ``p`` from one (:data:`bank_read_signature`), passes ``p + 1`` ..
``p + bank_passes - 1`` accumulate into the others. A beat of pass ``p + bank_passes`` waits
(``i.ready`` low) until the firing array has released pass ``p``'s part; nothing inside the
array ever stalls. More parts let the accumulation run ahead of a slow firing pass, so a pass
with few beats does not wait out the PE array's latency behind the firing of the pass before
last.

A conv layer's shortcut arrives as beats of its own (``res``): a chunk of ``k`` shortcut channels
for the ``k`` PEs of block ``group`` (PE ``n`` owns channel lane ``n mod k`` of block ``n // k``).
On such a beat PE ``n`` adds ``gain`` times spike lane ``n mod k`` if ``group == n // k``, else
nothing: its weights are replaced, not its spikes -- lane ``n mod k`` takes ``gain`` (a
``weight_bits`` 2:1 multiplexer per PE), every other lane 0 (the PE's weight register's
synchronous reset, free in the flip-flop: the PE does it, so synthesis keeping the hierarchy
sees the reset next to its register), so the spikes' broadcast path is unchanged and no weight
row is read. ``gain`` comes from the layer's descriptor through a register per block of ``k``
PEs; the shortcut flag and block match reach each PE from a register of its own (they reset
``k weight_bits`` flip-flops per PE).

Latency: the sums of a pass can be read (``bank.ready``) :attr:`PEArray.latency` cycles after its
last beat was accepted.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common.synth_hints import COPY_ATTRS
from hw.contract.memory_map import weights_layout

from .pe import SpikePackPE, beat_layout, check_planes

__all__ = ["PEArray", "bank_read_signature"]


def bank_read_signature(n_pe: int, t_max: int, sum_bits: int, planes: int = 1
                        ) -> wiring.Signature:
    """The firing side of the banks, seen from the PE array.

    * ``ready``: a whole pass is in the part being read;
    * ``next_ready``: ... and the pass after it is whole too (the firing array may start it
      in the cycle after the release);
    * ``addr`` (plane slot) -> ``data[n]`` (PE ``n``'s sum of that plane; with ``planes = 2``
      the pair of sums of the plane's beat slot, ``data[n][0]`` plane ``addr & ~1`` and
      ``data[n][1]`` plane ``addr | 1``) and ``zero`` (the pass never wrote that beat slot: its
      sums are 0, whatever ``data`` holds) one cycle later;
    * ``release``: pulse when every read of the pass has been issued (reads in the same cycle are
      still answered); the part is cleared and the next pass becomes readable.
    """
    return wiring.Signature({
        "ready": Out(1),
        "next_ready": Out(1),
        "addr": In(range(t_max)),
        "data": Out(data.ArrayLayout(signed(sum_bits) if planes == 1 else
                                     data.ArrayLayout(signed(sum_bits), planes), n_pe)),
        "zero": Out(1),
        "release": In(1),
    })


class PEArray(wiring.Component):
    """``n_pe`` :class:`hw.core.pe.SpikePackPE` in lockstep, with their shared control.

    Parameters
    ----------
    n_pe, k, t_max, sum_bits, weight_bits, weight_depth : int
        Array shape, widths and the weight memory's depth (see
        :class:`hw.contract.params.CoreParams`).
    weight_regs : int
        Registers the weights pass here, between the memory and the PE (0..2; the spikes pass
        ``weight_regs + 2``).
    shortcut : bool
        Build the shortcut's lane select (conv builds); without it (a dense-only build) every
        beat is a weighted one and ``gain`` is unused.
    planes : int
        Bit-planes per beat, 1, 2 or 4 (``t_max`` a multiple of it): a beat does
        ``planes * n_pe * k`` adds with one weight row (a shortcut beat's gain applies to every
        plane it carries). Same :attr:`latency` either way.
    read_pairs : bool
        With two or four planes: the firing side reads a pair of planes per read (a beat
        slot's word, or its half holding the addressed plane); else one plane, chosen in every
        PE (:data:`bank_read_signature` with ``planes = 1``).
    bank_passes : int
        Passes the banks hold, 2 or 4 (:class:`hw.contract.params.CoreParams`).
    control_copies : bool
        Each PE keeps its own registers of the bank control (:class:`hw.core.pe.SpikePackPE`),
        and the array presents that control from registers of its own, worked out a cycle
        ahead from the beat one tree stage earlier: the copies, spread over the chip, then
        hang on flip-flops, not on the controller's decode. The same timing.

    Members
    -------
    i : In(stream.Signature(beat_layout(k, t_max, weight_depth, ceil(n_pe / k), planes)))
        One spike chunk (``planes`` planes of it), its beat slot, the end-of-pass flag and its
        weight row (or: a shortcut chunk and its block).
    weights : In(weights_layout(n_pe, k, weight_bits))
        The weight row of the beat presented in the previous cycle: the owner reads the weight
        memory at ``i.payload.row`` every cycle (so no memory enable waits on ``i.ready``).
    gain : In(signed(weight_bits))
        The running conv layer's shortcut gain (held during the layer).
    bank : Out(bank_read_signature(n_pe, t_max, sum_bits, read_planes))
        The per-plane sums of finished passes, in pass order.
    """

    def __init__(self, n_pe: int, k: int, t_max: int, sum_bits: int, weight_bits: int = 8,
                 weight_depth: int = 1024, *, weight_regs: int = 2, shortcut: bool = True,
                 planes: int = 1, read_pairs: bool = True, bank_passes: int = 2,
                 control_copies: bool = False):
        self._shortcut = bool(shortcut)
        self._weight_regs = operator.index(weight_regs)
        if self._weight_regs not in (0, 1, 2):
            raise ValueError(f"weight_regs must be 0, 1 or 2, not {weight_regs}")
        self._n_pe = operator.index(n_pe)
        if self._n_pe < 1:
            raise ValueError(f"n_pe must be at least 1, not {n_pe}")
        self._t_max = operator.index(t_max)
        if self._t_max < 2 or self._t_max & (self._t_max - 1):
            raise ValueError(f"t_max must be a power of two, at least 2, not {t_max}")
        self._planes = check_planes(planes, self._t_max)
        self._bank_passes = operator.index(bank_passes)
        if self._bank_passes not in (2, 4):
            raise ValueError(f"bank_passes must be 2 or 4, not {bank_passes}")
        self._k = operator.index(k)
        self._control_copies = bool(control_copies)
        self._groups = -(-self._n_pe // self._k)
        self._read_planes = 2 if self._planes >= 2 and read_pairs else 1  # a firing read's planes
        self._pes = [SpikePackPE(k, self._t_max, sum_bits, weight_bits, res_lane=n % self._k,
                                 planes=self._planes, read_pairs=bool(read_pairs),
                                 passes=self._bank_passes, control_copies=control_copies)
                     for n in range(self._n_pe)]
        super().__init__({
            "i": In(stream.Signature(beat_layout(k, self._t_max, weight_depth, self._groups,
                                                 self._planes))),
            "weights": In(weights_layout(self._n_pe, k, weight_bits)),
            "gain": In(signed(weight_bits)),
            "bank": Out(bank_read_signature(self._n_pe, self._t_max, sum_bits,
                                            self._read_planes)),
        })

    @property
    def n_pe(self) -> int:
        return self._n_pe

    @property
    def planes(self) -> int:
        """Bit-planes per beat (a beat does ``planes * n_pe * k`` adds)."""
        return self._planes

    @property
    def read_planes(self) -> int:
        """Planes a firing-side read returns (2: ``planes`` 2 and ``read_pairs``)."""
        return self._read_planes

    @property
    def latency(self) -> int:
        """Cycles from accepting the last beat of a pass to ``bank.ready``: the weights' memory
        read and ``weight_regs`` registers, then the PE latency (whatever ``planes``)."""
        return 1 + self._weight_regs + self._pes[0].latency

    def elaborate(self, platform):
        m = Module()
        t_max = self._t_max
        slots = t_max // self._planes  # beat slots of a half
        # A beat's weights come from the memory a cycle later, pass ``weight_regs`` registers
        # here (the first next to the memory: block RAM outputs are slow; the second on the way
        # to the PEs), then the PE's own (next to its adders); its spikes pass
        # ``weight_regs + 2`` registers here.
        wregs = self._weight_regs
        tree_latency = 1 + wregs + self._pes[0].tree_latency

        # --- input side: which part (half) the incoming pass fills; parts held until released -
        parts = self._bank_passes
        in_half = Signal(range(parts))
        hold = Signal(parts)  # a complete pass was accepted into the part, not yet released
        accept = self.i.valid & self.i.ready
        # ``i.ready`` (the part being filled is not held) is a register of its own, set from
        # the next state of ``hold`` and ``in_half``: it gates the issuer's skid buffer, whose
        # output register addresses every weight block RAM, so it leaves a flip-flop that the
        # placer can put beside that buffer (on a 1,024-add ULX3S build the decode of
        # ``hold`` at ``in_half`` into it was 10.5 ns of wire).
        hold_next, in_half_next = Signal.like(hold), Signal.like(in_half)
        ready = Signal(init=1, name="ready_q")
        m.d.sync += [hold.eq(hold_next), in_half.eq(in_half_next),
                     ready.eq(~hold_next.bit_select(in_half_next, 1))]
        m.d.comb += [hold_next.eq(hold), in_half_next.eq(in_half), self.i.ready.eq(ready)]

        # Control beside the trees: valid, half, slot, last of the beat in each tree stage.
        tag = data.StructLayout({"valid": 1, "half": range(parts), "slot": range(slots),
                                 "last": 1})
        stage = Signal(tag)
        m.d.comb += [
            stage.valid.eq(accept), stage.half.eq(in_half),
            stage.slot.eq(self.i.payload.slot), stage.last.eq(self.i.payload.last),
        ]
        for n in range(tree_latency):
            before_tree = stage  # (after the loop: the beat one stage before the trees' output)
            nxt = Signal(tag, name=f"tag{n + 1}")
            m.d.sync += nxt.eq(stage)
            stage = nxt
        at_tree = stage  # the beat whose chunk sum leaves the trees this cycle
        at_bank = Signal(tag)  # the beat being written this cycle
        m.d.sync += at_bank.eq(at_tree)

        # --- bank side: which (beat) slots of each half the pass has written; finished passes --
        # For the beat leaving the trees: its address; whether the beat being written now has the
        # same one (its sum is then the old sum); whether the slot is new in this pass.
        touched = Array(Signal(slots, name=f"touched{h}") for h in range(parts))
        complete = Signal(parts)
        addr = Cat(at_tree.slot, at_tree.half)
        fwd = at_bank.valid & (at_bank.half == at_tree.half) & (at_bank.slot == at_tree.slot)
        first = ~fwd & ~touched[at_tree.half].bit_select(at_tree.slot, 1)
        acc = at_tree.valid

        # --- read side ------------------------------------------------------------------------
        rd_half = Signal(range(parts))
        fire_addr = Cat(self.bank.addr, rd_half)
        zero = Signal()
        rd_slot = self.bank.addr[self._planes.bit_length() - 1:]  # its beat slot
        m.d.sync += zero.eq(~touched[rd_half].bit_select(rd_slot, 1))
        rd_next = Signal.like(rd_half)
        m.d.comb += rd_next.eq(rd_half + 1)
        m.d.comb += [self.bank.ready.eq(complete.bit_select(rd_half, 1)),
                     self.bank.next_ready.eq(complete.bit_select(rd_next, 1)),
                     self.bank.zero.eq(zero)]

        if self._control_copies:
            # The same four for the beat one stage earlier, registered: in the next cycle that
            # beat leaves the trees, the beat leaving them now is the one written, and
            # ``touched`` holds this cycle's write and not a part released in this cycle.
            pre = before_tree
            addr_r = Signal.like(addr, name="addr_r")
            acc_r, fwd_r = Signal(name="acc_r"), Signal(name="fwd_r")
            first_r = Signal(name="first_r")
            fwd_next = at_tree.valid & (at_tree.half == pre.half) & (at_tree.slot == pre.slot)
            written = at_bank.valid & (at_bank.half == pre.half) & (at_bank.slot == pre.slot)
            cleared = self.bank.release & (rd_half == pre.half)
            touched_next = (touched[pre.half].bit_select(pre.slot, 1) | written) & ~cleared
            m.d.sync += [addr_r.eq(Cat(pre.slot, pre.half)), acc_r.eq(pre.valid),
                         fwd_r.eq(fwd_next), first_r.eq(~fwd_next & ~touched_next)]
            addr, acc, fwd, first = addr_r, acc_r, fwd_r, first_r

        # A beat's spikes, registered here for all PEs (their broadcast gets its own cycle), and
        # its weights registered once before they travel to the PEs.
        spikes_q = self.i.payload.spikes
        for n in range(wregs + 2):
            reg = Signal(spikes_q.shape(), name=f"spikes_q{n}", reset_less=True)
            m.d.sync += reg.eq(spikes_q)
            spikes_q = reg
        weights_q = self.weights
        for n in range(wregs):
            reg = Signal.like(self.weights, name=f"weights_q{n + 1}", reset_less=True)
            m.d.sync += reg.eq(weights_q)
            weights_q = reg
        # A shortcut beat, and which block of PEs it is for, beside its weights (one cycle of
        # memory read, then ``weight_regs``), the last register a copy per PE (kept apart by
        # synthesis, ``hw.common.synth_hints``); the gain, a copy per block of PEs.
        k, groups = self._k, self._groups
        res_q, group_q = self.i.payload.res, self.i.payload.group
        if not self._shortcut:  # a dense-only build: no shortcut beats, no lane select
            res_q = 0
        for n in range(wregs if self._shortcut else 0):
            res_r = Signal(name=f"res_q{n + 1}")
            group_r = Signal.like(group_q, name=f"group_q{n + 1}")
            m.d.sync += [res_r.eq(res_q), group_r.eq(group_q)]
            res_q, group_q = res_r, group_r
        gains = [Signal.like(self.gain, name=f"gain{g}", attrs=COPY_ATTRS) for g in range(groups)]
        if self._shortcut:
            m.d.sync += [gain.eq(self.gain) for gain in gains]
        for n, pe in enumerate(self._pes):
            m.submodules[f"pe{n}"] = pe
            res_pe = Signal(name=f"res_pe{n}", attrs=COPY_ATTRS)
            hit_pe = Signal(name=f"hit_pe{n}", attrs=COPY_ATTRS)
            if self._shortcut:
                m.d.sync += [res_pe.eq(res_q), hit_pe.eq(group_q == n // k)]
            m.d.comb += [
                pe.i_weights.eq(weights_q[n]),
                pe.i_res.eq(res_pe), pe.i_hit.eq(hit_pe), pe.i_gain.eq(gains[n // k]),
                pe.i_spikes_q.eq(spikes_q),
                pe.addr.eq(addr), pe.acc.eq(acc), pe.first.eq(first), pe.fwd.eq(fwd),
                pe.fire_addr.eq(fire_addr),
                self.bank.data[n].eq(pe.fire_data),
            ]

        # Updates: a part is never written and released in the same cycle (a part is released
        # only when complete, and no beat of it is in flight then).
        with m.If(accept & self.i.payload.last):
            m.d.comb += [in_half_next.eq(in_half + 1), hold_next.bit_select(in_half, 1).eq(1)]
        with m.If(at_bank.valid):
            m.d.sync += touched[at_bank.half].bit_select(at_bank.slot, 1).eq(1)
            with m.If(at_bank.last):
                m.d.sync += complete.bit_select(at_bank.half, 1).eq(1)
        with m.If(self.bank.release):
            m.d.sync += [
                touched[rd_half].eq(0),
                complete.bit_select(rd_half, 1).eq(0),
                rd_half.eq(rd_half + 1),
            ]
            m.d.comb += hold_next.bit_select(rd_half, 1).eq(0)
        return m
