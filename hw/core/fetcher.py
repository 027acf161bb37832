"""Fetcher: walks the positions, passes, taps and chunks of a layer, reading spike blocks and
weight rows (im2col on the fly: nothing is expanded in memory).

Dense layer: for pass ``p = 0..passes-1`` and chunk ``c = 0..chunks-1`` it reads the spike block
of input chunk ``c`` (all ``t_max`` bit-planes of ``k`` input neurons) at ``src_base + c`` and
sends it as one stream beat, with the marks of its non-zero bit-planes and its weight row
``w_base + p * chunks + c`` (the ``k`` weights of every PE for that chunk; the PE array gets them
from the weight memory, read at the beat's row every cycle).

Conv layer (``conv``, a conv build): the address stage is a :class:`hw.core.conv_walk.ConvWalk`.
For every pooled output position, pass, conv position of its pooling window, tap inside the map
and channel chunk it gives the block ``src_base + (iy in_w + ix) chunks + j`` and the weight row
``w_base + (p kh kw + ky kw + kx) chunks + j``; taps in the zero padding take no cycle, and a
conv layer with a shortcut adds ``n_pe / k`` shortcut blocks (marked ``res``) per conv position
and pass. A dense layer in a conv build is walked by the same walk (one position whose kernel
rows are the passes) and starts at once.

With ``walk_replay`` (dense and 1x1 conv layers of two or more passes) stage S records the
chunk of every block of a position's first pass that holds a spike below ``T`` in the walk's
list, and the walk reads only those on the position's later passes
(:class:`hw.core.conv_walk.ConvWalk`).

Four stages, each advancing when the next has room: addresses; spike block read (the memory's
read port is the stage register); the block registered as it is, twice (block RAM outputs are
slow: on an ECP5 their clock-to-output takes 60 % of a 100 MHz cycle, and a deep memory adds a
multiplexer, so nothing but a short wire may follow them; a banked memory's words are
registered bank by bank and the bank is picked between the two registers); the output register:
the block with its plane marks and counts. Every handshake signal of the output is a register,
and no memory enable depends on the data read in the same cycle.

The output register also marks which of the block's planes below ``T`` hold a spike (pairs of
planes with two planes per beat, the planes at or above ``T`` then zeroed), counts them, and
finds the lowest, so the issuer's choice of the next beat starts at registers. A block with no
spike below ``T`` is not sent unless it ends a pass: it leaves a bubble in the output register
instead of a cycle of the issuer (the walk still takes its cycle of the address stage).

Counter: ``skipped`` counts the all-zero plane chunks (planes ``q < T``) of the blocks read
from memory since ``start``, sent or not (it lags the blocks by two cycles), a conv layer's
shortcut blocks included; a padding block (read from nowhere) is not counted.

Latency: the first beat of a dense layer is valid 5 cycles after ``start`` (a conv layer adds
its set-up cycles, :func:`hw.core.conv_walk.conv_setup_cycles`); then one beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hw.contract.params import CoreParams

from .conv_walk import ConvWalk, block_ptr_bits, walk_field_members
from .layer_counts import layer_count_bits, layer_passes_bits

__all__ = ["Fetcher", "block_beat_layout", "exactly_one", "lowest_one", "spike_banks",
           "spike_bank_rows", "SPIKE_BANK_ROWS"]

#: Spike blocks per bank of a spike memory deeper than this: one block RAM deep (an ECP5
#: ``DP16KD`` as 512 x 36, a 7-series RAMB36 as 512 x 72), so each bank's output goes straight
#: into a register of its own (the block RAM's output register) and the bank multiplexer comes
#: after it.
SPIKE_BANK_ROWS = 512


def spike_banks(params: CoreParams) -> int:
    """Banks of the spike memory: 1 up to :data:`SPIKE_BANK_ROWS` blocks, else one per
    :data:`SPIKE_BANK_ROWS` blocks (bank ``b`` holds blocks ``b * SPIKE_BANK_ROWS`` on)."""
    return max(1, -(-params.spike_rows // SPIKE_BANK_ROWS))


def spike_bank_rows(params: CoreParams) -> int:
    """Blocks of each bank of the spike memory (all of it when it is one bank)."""
    return params.spike_rows if spike_banks(params) == 1 else SPIKE_BANK_ROWS


def block_beat_layout(params: CoreParams):
    """A spike block (``t_max`` planes x ``k`` neurons, plane-major); which of its beat slots
    (``planes_per_beat`` planes each; a plane when that is 1) below ``T`` hold a spike, how many
    (and whether just one), and the lowest of them (0 when none); its weight row; end of pass;
    ``pad``: an all-zero padding block (no memory read); ``res``: a block of a conv layer's
    shortcut, for the pass's output block ``group`` (its ``k`` channels go to PEs
    ``group k .. group k + k - 1``, no weight row). With two planes per beat the block's planes
    at or above ``T`` are zeroed."""
    slots = params.beat_slots
    fields = {
        "block": params.block_bits,
        "nonzero": slots,
        "count": range(slots + 1),
        "single": 1,
        "first": range(slots),
        "row": range(params.weight_depth),
        "last": 1,
        "pad": 1,
        "res": 1,
        "group": range(params.chunks_per_pass),
    }
    return data.StructLayout(fields)


def lowest_one(bits):
    """``(any, index)``: whether ``bits`` has a 1, and the index of the lowest (0 when none),
    as a tree of ``ceil(log2(len(bits)))`` levels."""
    if len(bits) == 1:
        return bits[0], Const(0, 0)
    half = 1 << (ceil_log2(len(bits)) - 1)  # a power of two: both sides' indices line up
    lo_any, lo_idx = lowest_one(bits[:half])
    hi_any, hi_idx = lowest_one(bits[half:])
    low_bits = Mux(lo_any, lo_idx, hi_idx) if half > 1 else Const(0, 0)
    return lo_any | hi_any, Cat(low_bits, ~lo_any & hi_any)


def exactly_one(bits):
    """Whether ``bits`` holds exactly one 1, as a tree (not through a population count)."""
    def any_many(part):
        if len(part) == 1:
            return part[0], Const(0)
        half = len(part) // 2
        (a_any, a_many), (b_any, b_many) = any_many(part[:half]), any_many(part[half:])
        return a_any | b_any, a_many | b_many | (a_any & b_any)
    any_, many = any_many(bits)
    return any_ & ~many


class Fetcher(wiring.Component):
    """Sequential reader of one layer's spike blocks and weight rows.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    start : In(1)
        Pulse: latch the layer's fields below and begin (ignored while busy).
    chunks, passes : In(16)
        Input chunks per position and pass (1..act_chunks) and passes per position
        (1..max_passes); the sequencer checks the descriptor before it starts the fetcher.
    T : In(range(t_max + 1))
        Time steps of the layer: planes ``>= T`` are not marked (held during the layer).
    src_base, w_base : In
        First spike-block address of the input (map) and first weight row.
    conv : In(1)
        A conv layer: walk the geometry below (else a dense layer: one position, 1x1 kernel).
    in_h, in_w, conv_h, conv_w : In(8)
        Input map and conv output sizes (1..255).
    kh, kw : In(3)
        Kernel (1..7).
    stride, pad : In(2)
        Stride (1..3) and zero padding (0..3).
    pad_rows_only : In(1)
        Builds with ``pad_rows``: the padding adds rows only, no columns (a thin first layer
        folded by the compiler).
    pool_log2 : In(2)
        Max pooling ``2^pool_log2`` (0: none): the walk visits the conv positions of each pooled
        output's window one after the other, per pass (pooled position, pass, window position,
        tap, chunk), so the writer pools one pass's neurons at a time.
    n_out : In(16)
        Output channels of a conv layer (its shortcut map has ``ceil(n_out / k)`` blocks per
        position).
    res, res_input : In(1)
        The conv layer has a shortcut (a non-zero gain); its map is in the sample's INPUT slot
        (else in the ping-pong area).
    res_base : In(11)
        First block of the shortcut's map (from ``in_base`` when ``res_input``, else from 0).
    in_base : In(range(spike_rows))
        First block of the sample's INPUT slot.
    busy : Out(1)
        Addresses remain to be issued.
    issued : Out(layer_passes_bits(params))
        Passes (end-of-pass beats) the walk has issued since ``start``.
    skipped : Out(layer_count_bits(params, act_chunks * t_max))
        All-zero plane chunks below ``T`` of the blocks read since ``start`` (a conv layer
        reads a block per position: 32 bits).
    src_addr, src_en, src_data : spike-block read port (data the cycle after an enabled read).
        A banked spike memory (:func:`spike_banks` above 1) gives every bank's word, bank ``b``
        at bits ``b * block_bits`` on: all banks read the address's low bits, and the fetcher
        registers each bank's word as it comes and picks the addressed bank after that register.
    o : Out(stream.Signature(block_beat_layout(params)))
    o_ready_walk : In(1)
        With ``walk_ready`` (a conv build): a copy of ``o.ready``, the same register's value
        (``hw.common.skid_buffer.SkidBuffer`` ``ready_copy``), which the conv walk's many
        pointer enables read instead of ``o.ready`` (with a copy of ``o.valid`` of its own), so
        the walk does not hang on the fan-out of the one register across the chip.
    queue_pop : In(1)
        With :attr:`credits`: a block leaves the queue that ``o`` feeds (its ``o.valid`` and
        ``o.ready``): the block's credit returns (it counts a cycle later).
    """

    def __init__(self, params: CoreParams, *, walk_ready: bool = False):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        self._credits = params.fetch_credits
        self._walk_ready = bool(walk_ready) and bool(params.conv) and not self._credits
        src_depth = params.spike_rows
        fields = walk_field_members(params)
        members = {
            "start": In(1),
            "chunks": fields.pop("chunks"),
            "passes": fields.pop("passes"),
            "T": In(range(params.t_max + 1)),
            **fields,
            "busy": Out(1),
            "issued": Out(layer_passes_bits(params)),
            "skipped": Out(layer_count_bits(params, params.act_chunks * params.t_max)),
            "src_addr": Out(range(src_depth)),
            "src_en": Out(1),
            "src_data": In(params.block_bits * spike_banks(params)),
            "o": Out(stream.Signature(block_beat_layout(params))),
        }
        if self._walk_ready:
            members["o_ready_walk"] = In(1)
        if self._credits:
            members["queue_pop"] = In(1)
        super().__init__(members)

    @property
    def credits(self) -> bool:
        """The stages never stall; the walk steps on a credit (a conv build with a
        ``fetch_queue``): ``o`` must feed a queue of ``fetch_queue`` blocks whose ``i.ready``
        is then always high when ``o.valid`` is, and ``queue_pop`` must say when a block
        leaves that queue. A step takes a credit; a credit returns when its block leaves the
        queue, or leaves the stages unsent (a block with no spike that ends no pass, a step
        that reads nothing), and counts a cycle after that (a register). The walk steps while
        fewer than ``fetch_queue`` credits are out, by a register set from the next cycle's
        count, so no enable of the walk waits on the queue's handshake across the chip."""
        return self._credits

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first valid beat of a dense layer (no back-pressure)."""
        return 5

    def elaborate(self, platform):
        m = Module()
        p = self._params
        k = p.k
        # --- Stage A: the walk -----------------------------------------------------------------
        # A conv build's walk is a ConvWalk (``hw.core.conv_walk``: positions, passes, pooling
        # windows, inside taps, chunks, shortcut blocks); a dense-only build walks the chunks of
        # each pass below. Block pointers may point before the map (padding): signed.
        if not p.conv:
            j = Signal(range(p.act_chunks))
            pas = Signal(range(p.max_passes))
            last_chunk = Signal(range(p.act_chunks))  # chunks - 1
            last_pass = Signal(range(p.max_passes))  # passes - 1
        blk = Signal(signed(block_ptr_bits(p)))  # block of the step (the read address)
        if not p.conv:
            w_ptr = Signal(range(p.weight_depth))
            # (Never read. It and the order of these statements keep the dense-only netlist
            # byte for byte the one that places on the iCE40UP5K at 98 % of its cells: the
            # same logic written otherwise did not place, 2026-12-01.)
            w_base = Signal(range(p.weight_depth))
            src_base = Signal.like(self.src_base)
            walking = Signal()  # the layer's walk is on
        # Stage B: the block on the read port.
        valid_b = Signal()
        last_b = Signal()
        pad_b = Signal()
        res_b = Signal()
        groups = p.chunks_per_pass  # output blocks of one pass
        grp_b = Signal(range(groups))
        w_addr_b = Signal(range(p.weight_depth))
        # Stages R, S: the block in a register, twice.
        valid_r = Signal()
        last_r = Signal()
        pad_r = Signal()
        res_r = Signal()
        grp_r = Signal(range(groups))
        block_r = Signal(p.block_bits, reset_less=True)
        w_addr_r = Signal.like(w_addr_b)
        valid_s = Signal()
        last_s = Signal()
        pad_s = Signal()
        res_s = Signal()
        grp_s = Signal(range(groups))
        block_s = Signal(p.block_bits, reset_less=True)
        w_addr_s = Signal.like(w_addr_b)
        # Stage C: the output register (block, marks, weight row). Data registers have no reset:
        # an abort only needs the valid flags cleared, and a reset costs logic at the input
        # of registers that take block RAM outputs.
        block_c = Signal(p.block_bits, reset_less=True)
        valid_c = self.o.valid
        m.d.comb += self.o.payload.block.eq(block_c)

        adv = Signal()  # every stage moves on
        send_s = Signal()  # the block in stage S is sent (defined with the plane marks below)
        # The stages move in lockstep: one enable, one LUT from two registers (``o.ready`` is a
        # skid buffer's register in the core), instead of a ready chain through every stage.
        # Bubbles only occur while the pipeline fills, so nothing is lost by not squeezing them.
        # With credits (``credits``) they never stall: the queue after them has room.
        m.d.comb += [
            adv.eq(1 if self._credits else ~valid_c | self.o.ready),
            self.src_addr.eq(blk[:len(self.src_addr)]),
            self.src_en.eq(adv),
        ]
        if p.conv:
            walk = ConvWalk(p, own_ready=self._walk_ready, credits=self._credits)
            walk.add_to(m)
            m.d.comb += [walk.start.eq(self.start)]
            m.d.comb += [getattr(walk, name).eq(getattr(self, name))
                         for name in walk_field_members(p)]
            if self._walk_ready:
                m.d.comb += [walk.send.eq(send_s), walk.ready.eq(self.o_ready_walk)]
            elif self._credits:
                # Credits out: steps taken whose blocks have not left the queue or the stages.
                entries = p.fetch_queue
                out = Signal(range(entries + 1))
                out_next = Signal(range(entries + 2))
                may_step = Signal(init=1)  # out_next < entries, registered: the walk's enable
                tok_b, tok_r, tok_s = Signal(), Signal(), Signal()  # a step in stage B, R, S
                # A credit's return, registered: it counts a cycle later. A block's leaving
                # the queue: the wire from the queue's output (across the chip, beside the
                # issuer) ends in a flip-flop instead of the counter's adder. A step leaving
                # stage S unsent: the send decision's gates stay off the adder's path.
                popped, dropped = Signal(), Signal()
                m.d.sync += [tok_b.eq(walk.took), tok_r.eq(tok_b), tok_s.eq(tok_r),
                             popped.eq(self.queue_pop), dropped.eq(tok_s & ~send_s)]
                m.d.comb += out_next.eq(out + walk.took - popped - dropped)
                m.d.sync += [out.eq(out_next), may_step.eq(out_next < entries)]
                m.d.comb += walk.adv.eq(may_step)
            else:
                m.d.comb += walk.adv.eq(adv)
            m.d.comb += [
                self.busy.eq(walk.busy), self.issued.eq(walk.issued), blk.eq(walk.addr),
                valid_b.eq(walk.step.valid), last_b.eq(walk.step.last),
                pad_b.eq(walk.step.pad), res_b.eq(walk.step.res), grp_b.eq(walk.step.group),
                w_addr_b.eq(walk.step.row),
            ]
            if p.walk_replay:
                # A first pass's step travels with its block to stage S, which records it in
                # the walk's list when the block holds a spike below T (``any_s``).
                rec_r, rec_s = Signal(), Signal()
                off_r, off_s = (Signal.like(walk.step.off, name=f"off_{n}") for n in "rs")
                # (The stages never stall with walk_replay: the walk is on credits.)
                m.d.sync += [rec_r.eq(walk.step.rec & walk.step.valid), off_r.eq(walk.step.off),
                             rec_s.eq(rec_r), off_s.eq(off_r)]
        else:
            # A dense-only build (conv=0): the chunks of each pass, nothing else.
            end_j, end_pas = Signal(), Signal()
            m.d.comb += [end_j.eq(j == last_chunk), end_pas.eq(pas == last_pass)]
            with m.If(adv):
                m.d.sync += [valid_b.eq(walking), last_b.eq(end_j), pad_b.eq(0),
                             w_addr_b.eq(w_ptr)]
            with m.If(adv & walking):
                m.d.sync += [j.eq(j + 1), blk.eq(blk + 1), w_ptr.eq(w_ptr + 1)]
                with m.If(end_j):
                    m.d.sync += [j.eq(0), blk.eq(src_base), pas.eq(pas + 1),
                                 self.issued.eq(self.issued + 1)]
                    with m.If(end_pas):
                        m.d.sync += [self.busy.eq(0), walking.eq(0)]

        # --- stages B..C ---------------------------------------------------------------------
        with m.If(adv):
            m.d.sync += [valid_r.eq(valid_b), last_r.eq(last_b), pad_r.eq(pad_b),
                         res_r.eq(res_b), grp_r.eq(grp_b), w_addr_r.eq(w_addr_b)]
        with m.If(adv):
            m.d.sync += [valid_s.eq(valid_r), last_s.eq(last_r), pad_s.eq(pad_r),
                         res_s.eq(res_r), grp_s.eq(grp_r), w_addr_s.eq(w_addr_r)]
        banks = spike_banks(p)
        if banks == 1:
            with m.If(adv):
                m.d.sync += [block_r.eq(self.src_data), block_s.eq(block_r)]
            block_next = block_r  # what stage S takes
        else:
            # Each bank's word in a register of its own (the block RAM's output register on
            # the ECP5), the bank read chosen after it: no multiplexer behind a block RAM.
            bank_b, bank_r = Signal(range(banks)), Signal(range(banks))
            banks_r = [Signal(p.block_bits, name=f"block_r{b}", reset_less=True)
                       for b in range(banks)]
            lg_rows = exact_log2(spike_bank_rows(p))
            block_next = Signal(p.block_bits)
            m.d.comb += block_next.eq(Array(banks_r)[bank_r])
            with m.If(adv):
                m.d.sync += [bank_b.eq(self.src_addr[lg_rows:]), bank_r.eq(bank_b),
                             block_s.eq(block_next)]
                m.d.sync += [banks_r[b].eq(self.src_data.word_select(b, p.block_bits))
                             for b in range(banks)]
        in_T = Signal(p.t_max)  # planes below T
        m.d.sync += in_T.eq((1 << self.T) - 1)
        # The planes below T with a spike, and whether there is any, found as the block enters
        # stage S and registered there: the output stage's decisions (the marks, whether the
        # block is sent at all, and the walk's copy of that) then start at registers.
        plane_nz = Signal(p.t_max)  # planes below T with a spike (of the block in stage S)
        any_s = Signal()  # ... and it has one
        nz_next = Signal(p.t_max)
        m.d.comb += nz_next.eq(Cat(*(block_next[q * k:(q + 1) * k].any()
                                     for q in range(p.t_max)))
                               & in_T & (~pad_r).replicate(p.t_max))
        with m.If(adv):
            m.d.sync += [plane_nz.eq(nz_next), any_s.eq(nz_next.any())]
        if p.conv and p.walk_replay:
            m.d.comb += [walk.rec_in.eq(valid_s & rec_s & ~pad_s), walk.rec_any.eq(any_s),
                         walk.rec_last.eq(last_s), walk.rec_off.eq(off_s)]
        # Beat slots with a spike (planes_per_beat planes each), and how many.
        ppb, slots = p.planes_per_beat, p.beat_slots
        nonzero = Signal(slots)
        count = Signal(range(slots + 1))
        m.d.comb += [nonzero.eq(plane_nz if ppb == 1 else
                                Cat(*(plane_nz[s * ppb:(s + 1) * ppb].any()
                                      for s in range(slots)))),
                     count.eq(sum(nonzero[s] for s in range(slots)))]
        if ppb == 1:
            keep = (~pad_s).replicate(p.block_bits)
        else:
            # A beat carries whole beat slots: the planes at or above T are zeroed here (the
            # issuer then never looks at T).
            keep = Cat(*(in_T[q].replicate(k) for q in range(p.t_max))) \
                & (~pad_s).replicate(p.block_bits)
        # Skipped planes of each block read: T minus its non-zero planes, registered, then
        # added up (a padding block, read from nowhere, counts none).
        zeros = Signal(range(p.t_max + 1))
        planes_nz = count if ppb == 1 else sum(plane_nz[q] for q in range(p.t_max))
        m.d.sync += zeros.eq(Mux(adv & valid_s & ~pad_s, self.T - planes_nz, 0))
        m.d.sync += self.skipped.eq(self.skipped + zeros)
        # A block with no spike below T is sent only when it ends a pass (then as one empty
        # beat, by the issuer): otherwise the output register takes a bubble.
        m.d.comb += send_s.eq(valid_s & (any_s | last_s))
        with m.If(adv):
            m.d.sync += [valid_c.eq(send_s),
                         block_c.eq(block_s & keep),
                         self.o.payload.nonzero.eq(nonzero), self.o.payload.row.eq(w_addr_s),
                         self.o.payload.count.eq(count),
                         self.o.payload.single.eq(exactly_one(nonzero)),
                         self.o.payload.first.eq(lowest_one(nonzero)[1]),
                         self.o.payload.last.eq(last_s), self.o.payload.pad.eq(pad_s),
                         self.o.payload.res.eq(res_s), self.o.payload.group.eq(grp_s)]
        with m.If(self.start & ~self.busy):
            if p.conv:
                m.d.sync += self.skipped.eq(0)
            else:
                m.d.sync += [
                    self.busy.eq(1),
                    self.issued.eq(0),
                    self.skipped.eq(0),
                    j.eq(0), pas.eq(0),
                    last_chunk.eq(self.chunks - 1),
                    last_pass.eq(self.passes - 1),
                    w_ptr.eq(self.w_base), w_base.eq(self.w_base),
                    src_base.eq(self.src_base), blk.eq(self.src_base),
                    walking.eq(1),
                ]
        return m
