"""Conv walk: the fetcher's address stage in a conv build. It steps through a layer's spike
blocks and weight rows, one block a cycle, and takes no step for a tap in the zero padding.

Conv layer (``conv``): for every pooled output position in raster order, pass ``p``, conv
position ``(oy, ox)`` of its ``2^pool_log2`` square window (one position without pooling), tap
``(ky, kx)`` inside the map and channel chunk ``j``, the block at
``src_base + (iy in_w + ix) chunks + j`` (``iy = oy stride + ky - pad``,
``ix = ox stride + kx - pad_w``; ``pad_w`` is ``pad``, or 0 with ``pad_rows_only``) with
weight row ``w_base + (p kh kw + ky kw + kx) chunks + j`` -- the walk of
``sw.compile.conv_layout.conv_fetch`` with the pass outside the window and the padding taps
left out. The walk keeps pointers and adds steps to them (no multiplier on the
per-cycle path); the steps ``in_w chunks``, ``stride chunks``, ``stride in_w chunks`` (each
times ``2^pool_log2`` per pooled position), ``kw chunks``, ``kh kw chunks`` and the padding
offset are worked out by shift-and-add in ``ceil(log2(act_chunks + 1)) + 3`` set-up cycles at
the start of a conv layer.

The walk has three parts:

* the **position generator** (G1) steps through the conv positions (pooled row and column,
  pass, window row and column), one position ahead of the walker;
* two register stages (G2, G3) work out the position's taps inside the map (per axis
  ``lo = max(0, -c)``, ``hi = min(k - 1, in - 1 - c)`` from the position's top-left input
  coordinate ``c``; ``lo`` is at most 3, so its offsets are 4:1 multiplexers of registers made
  in set-up) and the block and weight row of its first inside tap;
* the **tap walker** steps through the inside taps only (chunk, tap column, tap row) and takes
  the next position in the cycle the last one ends. Its end flags are registers set a step
  ahead, so the hand-over and G1's enable start at registers.

With ``walk_skid`` a skid register between G2 and G3 takes G2's position when G3 holds on, so
G1 and G2 advance on their own valid flags and the skid's, not on the hand-over (whose chain
from the walker's end flags through G3, G2 and G1 into G1's pointer adders was an ECP5 build's
critical path). G3 takes the skid's position first. The walker gets the same positions in the
same cycles as without it.

A position with no tap inside the map takes one step: an all-zero block marked ``pad`` (read
from nowhere) that ends its pass. A dense layer is walked by the tap walker alone (one position
whose kernel rows are the passes: row step 0, weight row step ``chunks``) and starts at once.

With ``walk_replay`` a layer whose passes read the same blocks at every position (a dense
layer, or a 1x1 conv layer without pooling or shortcut) of two or more passes is walked in full
on each position's first pass only: the fetcher's stage S writes the chunk of each block of that
pass that holds a spike below ``T`` into a list (LUT RAM, ``act_chunks`` entries), and the
position's later passes step through the list (block ``row_blk + entry``, weight row
``w_row + entry``; one padding step when it is empty). The first replayed pass waits until the
list is whole: its first step comes 5 cycles or more after the first pass's last.

A conv layer with a shortcut (``res``) adds, after the taps of each conv position ``(cy, cx)``
and pass ``p``, one step per output block of the pass: ``b = 0 .. n_pe / k - 1``, block
``j = p n_pe / k + b`` of the shortcut's map (the conv output's shape, channel-chunked HWC) at
``res_base + (cy conv_w + cx) co_chunks + j`` (``co_chunks = ceil(n_out / k)``; counted from the
sample's INPUT slot when ``res_input``), marked ``res`` with ``group = b`` and no weight row. A
block ``j >= co_chunks`` is padding (read from nowhere, sent only to end the pass); the pass
ends on the last shortcut step instead of the last tap. The shortcut's position pointers move
like the input's (steps ``co_chunks``, ``conv_w co_chunks`` and both times ``2^pool_log2``,
made in the same set-up cycles), so a shortcut costs ``n_pe / k`` address steps per conv
position and pass and no multiplier.

Latency: a dense layer's first step is on ``step`` the cycle after ``start`` (``addr`` holds
its block in that cycle); a conv layer's :func:`conv_setup_cycles` later. Then one step per
cycle in which the fetcher's stages advance.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.common.synth_hints import COPY_ATTRS
from hw.contract.params import CoreParams

from .layer_counts import layer_passes_bits

__all__ = ["ConvWalk", "conv_walk_signature", "walk_step_layout", "walk_field_members",
           "block_ptr_bits", "conv_setup_cycles"]


def conv_setup_cycles(params: CoreParams) -> int:
    """Set-up cycles of a conv layer before the walk: a shift-and-add step per bit of
    ``chunks``, 3 for the strides, pooling and padding offsets, then 3 while the first position
    passes the position generator's stages to the tap walker."""
    return ceil_log2(params.act_chunks + 1) + 6


def block_ptr_bits(params: CoreParams) -> int:
    """Bits of a (signed) block pointer: the spike memory's rows, with room for a pointer before
    the map (padding) and for the steps added to it."""
    return ceil_log2(params.spike_rows + 1) + 4


def walk_step_layout(params: CoreParams):
    """One step of the walk, as the block read at its address travels with it: ``valid``; end of
    pass (``last``); ``pad`` (an all-zero block, read from nowhere); ``res`` (a shortcut block
    for the pass's output block ``group``); the weight ``row``; with ``walk_replay``, ``rec``
    (a step of a position's first pass, whose block is recorded if it holds a spike) and
    ``off`` (its chunk: the step's block and weight row less the pass's first)."""
    fields = {
        "valid": 1, "last": 1, "pad": 1, "res": 1,
        "group": range(params.chunks_per_pass), "row": range(params.weight_depth),
    }
    if params.walk_replay:  # a step of a recording pass, and its chunk in the position's walk
        fields |= {"rec": 1, "off": range(params.act_chunks)}
    return data.StructLayout(fields)


def walk_field_members(params: CoreParams) -> dict:
    """The members for the layer's fields that the walk latches at ``start``
    (:class:`hw.core.fetcher.Fetcher` takes the same, and documents them)."""
    src_depth = params.spike_rows
    rows_only = {"pad_rows_only": In(1)} if params.pad_rows else {}
    return {
        "chunks": In(16), "passes": In(16),
        "src_base": In(range(src_depth)), "w_base": In(range(params.weight_depth)),
        "conv": In(1),
        "in_h": In(8), "in_w": In(8), "conv_h": In(8), "conv_w": In(8),
        "kh": In(3), "kw": In(3), "stride": In(2), "pad": In(2), **rows_only,
        "pool_log2": In(2), "n_out": In(16), "res": In(1), "res_input": In(1), "res_base": In(11),
        "in_base": In(range(src_depth)),
    }


def conv_walk_signature(params: CoreParams, own_ready: bool = False,
                        credits: bool = False) -> wiring.Signature:
    """The ports of a :class:`ConvWalk` (``In``: what its owner drives)."""
    members = {"start": In(1), **walk_field_members(params)}
    if own_ready:
        members |= {"send": In(1), "ready": In(1)}
    else:
        members["adv"] = In(1)
    if credits:
        members["took"] = Out(1)
    if params.walk_replay:
        members |= {"rec_in": In(1), "rec_any": In(1), "rec_last": In(1),
                    "rec_off": In(range(params.act_chunks))}
    members |= {
        "busy": Out(1),
        "issued": Out(layer_passes_bits(params)),
        "addr": Out(signed(block_ptr_bits(params))),
        "step": Out(walk_step_layout(params)),
    }
    return wiring.Signature(members)


class ConvWalk:
    """The address stage of a conv build's fetcher: a layer's walk, one step a cycle.

    Not a component of its own: :meth:`add_to` puts its logic into its owner's module (the
    fetcher's), beside the stages it feeds. As a submodule it cost the Arty's yosys estimate,
    which keeps every module boundary, about 250 LUTs and 68 flip-flops that the fetcher's
    module shares with it (2026-12-01); the ports below are its interface all the same.

    Parameters
    ----------
    params : CoreParams
        A conv build (``params.conv``).
    own_ready : bool
        Advance on copies of the fetcher's handshake registers of the walk's own (``send``,
        ``ready``) instead of the fetcher's ``adv``.
    credits : bool
        The fetcher's stages never stall (they feed a queue with room for every step in
        flight): ``adv`` only lets the walk step (a register, the fetcher's credit), ``step``
        takes a bubble in a cycle without a step, and ``took`` says the walk stepped.

    Ports (:func:`conv_walk_signature`)
    -------------------------------------
    start : In(1)
        Pulse: latch the fields and begin (ignored while busy).
    chunks, passes, src_base, w_base, conv, in_h, in_w, conv_h, conv_w, kh, kw, stride, pad,
    pad_rows_only (builds with ``pad_rows``), pool_log2, n_out, res, res_input, res_base,
    in_base : In
        The layer's fields (:class:`hw.core.fetcher.Fetcher`'s members of the same names).
    adv : In(1)
        Without ``own_ready``: the fetcher's stages advance this cycle (the walk steps, and
        ``step`` takes the step); with ``credits``: the walk may step this cycle.
    took : Out(1)
        With ``credits``: the walk takes a step this cycle (``adv`` and a position held).
    send, ready : In(1)
        With ``own_ready``: the fetcher's output register takes a block this cycle, and a copy
        of the output's ``ready``; the walk keeps a copy of the output's ``valid`` from
        ``send`` and advances on ``~valid | ready``, which is the fetcher's ``adv`` exactly.
    busy : Out(1)
        Steps remain to be taken.
    issued : Out(layer_passes_bits(params))
        Passes (end-of-pass steps) the walk has taken since ``start``.
    addr : Out(signed(block_ptr_bits(params)))
        The block of this cycle's step (the read port's address; meaningless on a ``pad`` step).
    step : Out(walk_step_layout(params))
        The step whose block the read port returns now: a register the cycle after the step.
    """

    def __init__(self, params: CoreParams, *, own_ready: bool = False, credits: bool = False):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        if not params.conv:
            raise ValueError("the conv walk is for conv builds (params.conv); a dense-only "
                             "fetcher walks its chunks itself")
        if own_ready and credits:
            raise ValueError("own_ready and credits exclude each other: with credits the "
                             "walk's enable is the fetcher's credit register")
        self._params = params
        self._own_ready = bool(own_ready)
        self._credits = bool(credits)
        self.signature = conv_walk_signature(params, self._own_ready, self._credits)
        ports = self.signature.create(path=("walk",))
        for name in self.signature.members:
            setattr(self, name, getattr(ports, name))

    def add_to(self, m: Module):
        """Add the walk's logic to ``m`` (its ports are driven and read there)."""
        p = self._params
        k = p.k
        nb = ceil_log2(p.act_chunks + 1)  # shift-and-add steps of the set-up
        ptr_bits = block_ptr_bits(p)
        groups = p.chunks_per_pass  # output blocks of one pass
        # --- the walker's pointers and the layer's counts ----------------------------------------
        j = Signal(range(p.act_chunks))  # chunk of the tap
        pas = Signal(range(p.max_passes))  # pass of the position (G1's)
        last_chunk = Signal(range(p.act_chunks))  # chunks - 1
        last_pass = Signal(range(p.max_passes))  # passes - 1
        blk = self.addr  # block of the tap and chunk
        w_ptr = Signal(range(p.weight_depth))  # its weight row
        w_base = Signal(range(p.weight_depth))
        src_base = Signal.like(self.src_base)
        walking = Signal()  # the walker holds a position (a dense layer: the layer)
        end_pas = Signal()
        m.d.comb += end_pas.eq(pas == last_pass)
        # --- descriptor fields and the steps worked out in set-up -------------------------------
        last_kx, last_ky = Signal(3), Signal(3)
        last_win = Signal(3)  # 2^pool_log2 - 1
        last_px, last_py = Signal(8), Signal(8)
        in_h, in_w = Signal(8), Signal(8)
        stride = Signal(2)
        pstride = Signal(5)  # stride 2^pool_log2: input step per pooled position
        pad = Signal(2)  # zero rows above and below the map
        # Minus the zero columns left and right: -pad, or 0 with pad_rows_only (builds with
        # ``pad_rows``; without, the same as the rows').
        npad_w = Signal(signed(3)) if p.pad_rows else None
        neg_pad_w = npad_w if p.pad_rows else -pad  # the column pointers' restart
        pool = Signal(2)
        chunks = Signal(range(p.act_chunks + 1))
        row_step = Signal(ptr_bits)  # in_w chunks: blocks per input row
        row3 = Signal(ptr_bits)  # 3 row_step
        chunks3 = Signal(ptr_bits)  # 3 chunks
        kc = Signal(range(p.weight_depth * 8))  # kw chunks: weight rows per kernel row
        kc3 = Signal(range(p.weight_depth * 8))  # 3 kc
        kkc = Signal(range(p.weight_depth * 64))  # kh kw chunks: weight rows per pass
        s_col = Signal(ptr_bits)  # stride chunks
        s_row = Signal(ptr_bits)  # stride in_w chunks
        ps_col = Signal(ptr_bits)  # s_col 2^pool_log2
        ps_row = Signal(ptr_bits)  # s_row 2^pool_log2
        # The map's bounds, as the generator's tap-(0, 0) positions compare with them.
        in_w1, in_h1 = Signal(8), Signal(8)  # in_w - 1, in_h - 1
        x_lim, y_lim = Signal(signed(10)), Signal(signed(10))  # in_w - last_kx, in_h - last_ky
        x_low, y_low = Signal(signed(10)), Signal(signed(10))  # -last_kx, -last_ky
        setup = Signal(range(nb + 4))
        mul_a = Signal(ptr_bits)  # in_w << step
        mul_b = Signal(range(p.act_chunks + 1))  # chunks >> step
        mul_k = Signal.like(kc)  # kw << step
        # The shortcut (conv layers with ``res``): its map has the conv output's shape,
        # ``co_chunks`` blocks per conv position; pointers to the first block of the conv
        # position, window row, pooled position and pooled row, as for the input map.
        res_on = Signal()
        co_chunks = Signal(range(p.act_chunks + 1))
        res_abs = Signal(ptr_bits)  # first block of the shortcut's map
        rs_row = Signal(ptr_bits)  # conv_w co_chunks: blocks per shortcut row
        rps_col = Signal(ptr_bits)  # co_chunks 2^pool_log2
        rps_row = Signal(ptr_bits)  # rs_row 2^pool_log2
        mul2_a = Signal(ptr_bits)  # conv_w << step
        mul2_b = Signal(range(p.act_chunks + 1))  # co_chunks >> step

        # --- G1: the position generator ---------------------------------------------------------
        dx, dy = Signal(3), Signal(3)
        px, py = Signal(8), Signal(8)
        c_iy, c_ix = Signal(signed(10)), Signal(signed(10))  # the position's tap (0, 0)
        p_iy, p_ix = Signal(signed(10)), Signal(signed(10))  # of the pooled position's first
        c_blk = Signal(signed(ptr_bits))  # block of the position's tap (0, 0), chunk 0
        wrow_blk = Signal(signed(ptr_bits))  # c_blk of the window row's first position
        p_blk = Signal(signed(ptr_bits))  # c_blk of the pooled position's first position
        prow_blk = Signal(signed(ptr_bits))  # p_blk of the pooled row's first position
        g_row = Signal(range(p.weight_depth))  # the pass's first weight row
        r_c, r_wrow, r_p, r_prow = (Signal(ptr_bits, name=f"r_{n}")
                                    for n in ("c", "wrow", "p", "prow"))
        pass_off = Signal(range(p.max_passes * groups))  # pass groups
        g1_valid = Signal()
        # G2: the position's inside taps; G3: its first block and weight row.
        g2_valid, g3_valid = Signal(), Signal()
        g2_cols, g2_rows, g3_cols, g3_rows = (Signal(3, name=f"g{n}") for n in
                                              ("2_cols", "2_rows", "3_cols", "3_rows"))
        g2_empty, g3_empty, g2_final, g3_final = Signal(), Signal(), Signal(), Signal()
        g3_cols0, g3_rows0 = Signal(), Signal()  # one inside tap column, row
        g2_first, g3_first = Signal(), Signal()  # the position's first pass
        g2_offx = Signal(ptr_bits)  # chunks lo_x: blocks (and weight rows) of the left padding
        g2_offy = Signal(ptr_bits)  # row_step lo_y: blocks of the top padding
        g2_offw = Signal.like(kc)  # kc lo_y: weight rows of the top padding
        g2_blk = Signal(signed(ptr_bits))
        g2_row = Signal.like(g_row)
        g2_rblk, g3_rblk = Signal(ptr_bits), Signal(ptr_bits)  # first shortcut block
        g2_off, g3_off = Signal.like(pass_off), Signal.like(pass_off)
        g3_blk = Signal(signed(ptr_bits))
        g3_row = Signal.like(g_row)

        # --- the tap walker ----------------------------------------------------------------------
        # The walker's end flags are registers, set a step ahead from its counters, so its
        # hand-over to the next position (and G1's enable) starts at registers.
        kx_left = Signal(3)  # tap columns after this one
        cols = Signal(3)  # inside tap columns - 1
        end_j = Signal()  # j == chunks - 1
        end_kx, end_ky = Signal(), Signal()  # kx_left == 0, ky_left == 0
        cols0, chunk1 = Signal(), Signal()  # cols == 0, chunks == 1
        ky_left = Signal(range(max(8, p.max_passes)))  # tap rows after this one (dense: passes)
        row_blk = Signal(signed(ptr_bits))  # block of the kernel row's first inside tap
        w_row = Signal.like(w_ptr)  # its weight row
        empty = Signal()  # the position has no tap inside the map
        dense = Signal()  # a dense layer: kernel rows are passes
        w_final = Signal()  # the layer's last position
        w_rblk = Signal(ptr_bits)  # the position's first shortcut block
        res_phase = Signal()  # the walk is at the shortcut's blocks
        rb = Signal(range(groups))  # block of the pass
        res_j = Signal(range(p.max_passes * groups))  # block of the position (pass groups + rb)
        # --- walk replay (``walk_replay``): the chunks of a position's first pass that hold a
        # spike, recorded as the fetcher's stage S sees them, walked again by its later passes.
        replay = bool(p.walk_replay)
        rp_on = Signal()  # the layer replays (dense or 1x1 conv, no pooling or shortcut, 2+ passes)
        rec = Signal()  # the walker's pass is a first pass: its steps are recorded
        rep = Signal()  # the walker's pass replays the list
        rep_ld = Signal()  # ... and waits for the list to be whole, then loads its first step
        rec_pend = Signal()  # a first pass has ended and its last block is not recorded yet
        rec_end = Signal()  # this step ends a first pass
        li = Signal(range(p.act_chunks))  # the replayed step's entry
        li2 = Signal(range(p.act_chunks))  # li + 2: the list's read address, a register
        li_end = Signal()  # it is the list's last (a register, set a step ahead)
        rep_none = Signal()  # the list is empty: the pass is one padding step
        rcount = Signal(range(p.act_chunks + 1))  # entries recorded
        lst0 = Signal(range(p.act_chunks))  # entry 0, in a register
        lst1 = Signal(range(p.act_chunks))  # entry 1, in a register
        ent_next = Signal(range(p.act_chunks))  # the entry after li's, read a step ahead
        if replay:
            m.submodules.walk_list = lst = memory.Memory(shape=range(p.act_chunks),
                                                         depth=p.act_chunks, init=[])
            lst_w = lst.write_port()
            lst_r = lst.read_port(domain="comb")

        if self._own_ready:
            # The walk's own copies of the output stage's handshake registers: the fetcher's
            # ``adv`` exactly, from registers placed near the walk's pointers.
            valid_w = Signal(name="valid_walk", attrs=COPY_ATTRS)
            adv_w = Signal()
            with m.If(adv_w):  # (adv_w == the fetcher's adv, every cycle)
                m.d.sync += valid_w.eq(self.send)
            m.d.comb += adv_w.eq(~valid_w | self.ready)
        else:
            adv_w = self.adv
        step = Signal()  # the walker takes a step this cycle
        end_rb, res_pad = Signal(), Signal()
        taps_done = Signal()  # this step is the position's last tap (or its padding step)
        walk_last = Signal()  # this step ends the pass
        layer_end = Signal()  # ... and the layer
        sent = Signal()  # this step reads a block
        take = Signal()  # the walker takes G3's position (when G3 holds one)
        tap_end = empty | (end_j & end_kx & (end_ky | dense))
        m.d.comb += [
            step.eq(adv_w & walking & ~rep_ld if replay else adv_w & walking),
            end_rb.eq(rb == groups - 1),
            res_pad.eq(res_j >= co_chunks),
            taps_done.eq(Mux(rep, li_end | rep_none, tap_end) if replay else tap_end),
            walk_last.eq(Mux(res_phase, end_rb, taps_done & ~res_on)),
            layer_end.eq(Mux(dense, end_ky, w_final)),
            sent.eq(Mux(res_phase, ~res_pad, Mux(rep, ~rep_none, ~empty) if replay else ~empty)),
            take.eq(~walking | (step & walk_last)),
        ]
        if replay:
            m.d.comb += rec_end.eq(step & rec & walk_last)
        with m.If(adv_w):
            m.d.sync += [self.step.valid.eq((walking & ~rep_ld if replay else walking)
                                            & (sent | walk_last)),
                         self.step.last.eq(walk_last), self.step.pad.eq(~sent),
                         self.step.res.eq(res_phase), self.step.group.eq(rb),
                         self.step.row.eq(w_ptr)]
            if replay:
                m.d.sync += [self.step.rec.eq(rec), self.step.off.eq(j)]
        if self._credits:  # the stages after the walk move every cycle: a bubble without a step
            m.d.comb += self.took.eq(step)
            with m.If(~adv_w):
                m.d.sync += self.step.valid.eq(0)
        walks_taps = step & ~res_phase & ~empty
        with m.If(walks_taps & ~rep if replay else walks_taps):
            m.d.sync += [j.eq(j + 1), blk.eq(blk + 1), w_ptr.eq(w_ptr + 1),
                         end_j.eq(j + 1 == last_chunk)]
            with m.If(end_j):
                m.d.sync += [j.eq(0), end_j.eq(chunk1)]
                with m.If(~end_kx):
                    m.d.sync += [kx_left.eq(kx_left - 1), end_kx.eq(kx_left == 1)]
                with m.Else():  # end of a kernel row (a dense layer: of a pass)
                    m.d.sync += [kx_left.eq(cols), end_kx.eq(cols0),
                                 ky_left.eq(ky_left - 1), end_ky.eq(ky_left == 1),
                                 row_blk.eq(row_blk + row_step), blk.eq(row_blk + row_step),
                                 w_row.eq(w_row + kc), w_ptr.eq(w_row + kc)]
                    with m.If(end_ky & res_on):  # the shortcut's blocks next
                        m.d.sync += [res_phase.eq(1), rb.eq(0), blk.eq(w_rblk)]
                    if replay:
                        with m.If(rec & dense):  # a dense layer's first pass: the next replay
                            m.d.sync += [rec.eq(0), rep.eq(1), rep_ld.eq(1)]
        if replay:
            # A replayed step: the next entry's block and weight row, from ``ent_next`` (a
            # register: the list, LUT RAM, is read at li + 2 into it a step ahead, so no read
            # sits before the pointers' adders); a dense layer's next pass replays from entry 0.
            m.d.comb += lst_r.addr.eq(li2)
            with m.If(step & rep):
                m.d.sync += [li.eq(li + 1), li2.eq(li2 + 1), li_end.eq(li + 2 == rcount),
                             blk.eq(row_blk + ent_next), w_ptr.eq(w_row + ent_next),
                             ent_next.eq(lst_r.data)]
                with m.If(walk_last & dense):
                    m.d.sync += [ky_left.eq(ky_left - 1), end_ky.eq(ky_left == 1),
                                 w_row.eq(w_row + kc), w_ptr.eq(w_row + kc + lst0),
                                 blk.eq(row_blk + lst0), li.eq(0), li2.eq(2),
                                 li_end.eq(rcount == 1), ent_next.eq(lst1)]
            # A replayed pass after a first pass waits until stage S has recorded that pass's
            # last block (``rec_pend``), then loads its first step: 4 cycles after that step.
            with m.If(rep_ld & ~rec_pend):
                m.d.sync += [rep_ld.eq(0), blk.eq(row_blk + lst0), w_ptr.eq(w_row + lst0),
                             li.eq(0), li2.eq(2), li_end.eq(rcount == 1),
                             rep_none.eq(rcount == 0), ent_next.eq(lst1)]
            # The fetcher's stage S records the first pass's blocks that hold a spike.
            m.d.comb += [lst_w.addr.eq(rcount), lst_w.data.eq(self.rec_off),
                         lst_w.en.eq(self.rec_in & self.rec_any)]
            with m.If(self.rec_in & self.rec_any):
                m.d.sync += rcount.eq(rcount + 1)
                with m.If(rcount == 0):
                    m.d.sync += lst0.eq(self.rec_off)
                with m.If(rcount == 1):
                    m.d.sync += lst1.eq(self.rec_off)
            with m.If(self.rec_in & self.rec_last):
                m.d.sync += rec_pend.eq(0)
            with m.If(rec_end):
                m.d.sync += rec_pend.eq(1)
        with m.If(step & res_phase):
            m.d.sync += [rb.eq(rb + 1), res_j.eq(res_j + 1), blk.eq(blk + 1)]
            with m.If(end_rb):
                m.d.sync += [rb.eq(0), res_phase.eq(0)]
        with m.If(step & walk_last):
            m.d.sync += self.issued.eq(self.issued + 1)
            with m.If(~dense):
                m.d.sync += walking.eq(0)  # until it takes the next position (below)
            with m.If(layer_end):
                m.d.sync += [self.busy.eq(0), walking.eq(0)]
        with m.If(take & g3_valid):
            m.d.sync += [walking.eq(1), j.eq(0), end_j.eq(chunk1),
                         kx_left.eq(g3_cols), cols.eq(g3_cols), end_kx.eq(g3_cols0),
                         cols0.eq(g3_cols0), ky_left.eq(g3_rows), end_ky.eq(g3_rows0),
                         blk.eq(g3_blk), row_blk.eq(g3_blk),
                         w_ptr.eq(g3_row), w_row.eq(g3_row), empty.eq(g3_empty),
                         w_final.eq(g3_final), w_rblk.eq(g3_rblk), res_j.eq(g3_off),
                         res_phase.eq(g3_empty & res_on), rb.eq(0)]
            if replay:
                # A position's first pass records; its later passes replay the list, from its
                # entry 0 at once when the list is whole (else after ``rep_ld``).
                first, later = rp_on & g3_first & ~g3_empty, rp_on & ~g3_first & ~g3_empty
                m.d.sync += [rec.eq(first), rep.eq(later),
                             rep_ld.eq(later & (rec_pend | rec_end)),
                             li.eq(0), li2.eq(2), li_end.eq(rcount == 1), rep_none.eq(rcount == 0),
                             ent_next.eq(lst1)]
                with m.If(later):
                    m.d.sync += [blk.eq(g3_blk + lst0), w_ptr.eq(g3_row + lst0)]
                with m.If(first):
                    m.d.sync += rcount.eq(0)

        # --- G1..G3: the positions, a step ahead of the walker ---------------------------------
        ld3, ld2, g1_adv = Signal(), Signal(), Signal()
        g1_final = Signal()
        end_dx, end_dy, end_px, end_py = Signal(), Signal(), Signal(), Signal()
        # With ``walk_skid`` a skid register (S) between G2 and G3 holds G2's position when
        # G3 cannot take it, so G2 (and G1) advance on registers alone, not on the walker's
        # hand-over: G3 takes S's position when it holds one, else G2's.
        s_valid = Signal()
        m.d.comb += [
            ld3.eq(~g3_valid | take),
            ld2.eq(~g2_valid | (~s_valid if p.walk_skid else ld3)),
            g1_adv.eq(g1_valid & ld2),
            end_dx.eq(dx == last_win), end_dy.eq(dy == last_win),
            end_px.eq(px == last_px), end_py.eq(py == last_py),
            g1_final.eq(end_dx & end_dy & end_pas & end_px & end_py),
        ]
        # G2: the inside taps of the position at (c_iy, c_ix): lo = max(0, -c) (the padding,
        # at most 3), hi = min(last, in - 1 - c); none when c >= in or c + last < 0.
        lo_x, lo_y = Signal(2), Signal(2)
        hi_x, hi_y = Signal(3), Signal(3)
        m.d.comb += [
            lo_x.eq(Mux(c_ix < 0, -c_ix[:2], 0)), lo_y.eq(Mux(c_iy < 0, -c_iy[:2], 0)),
            hi_x.eq(Mux(c_ix >= x_lim, in_w1[:3] - c_ix[:3], last_kx)),
            hi_y.eq(Mux(c_iy >= y_lim, in_h1[:3] - c_iy[:3], last_ky)),
        ]
        with m.If(ld2):
            m.d.sync += [
                g2_valid.eq(g1_valid),
                g2_cols.eq(hi_x - lo_x), g2_rows.eq(hi_y - lo_y),
                g2_empty.eq((c_ix >= in_w) | (c_ix < x_low) | (c_iy >= in_h) | (c_iy < y_low)),
                g2_final.eq(g1_final),
                g2_offx.eq(Array([0, chunks, chunks << 1, chunks3])[lo_x]),
                g2_offy.eq(Array([0, row_step, row_step << 1, row3])[lo_y]),
                g2_offw.eq(Array([0, kc, kc << 1, kc3])[lo_y]),
                g2_blk.eq(c_blk), g2_row.eq(g_row),
                g2_rblk.eq(r_c + pass_off), g2_off.eq(pass_off),
            ]
            if replay:
                m.d.sync += g2_first.eq(pas == 0)
        # G3's position, worked out from G2's.
        g3_in = [
            (g3_valid, g2_valid),
            (g3_cols, g2_cols), (g3_rows, g2_rows), (g3_empty, g2_empty),
            (g3_cols0, g2_cols == 0), (g3_rows0, g2_rows == 0),
            (g3_final, g2_final),
            # An empty position of a layer with a shortcut starts at its shortcut.
            (g3_blk, Mux(g2_empty & res_on, g2_rblk, g2_blk + g2_offy + g2_offx)),
            (g3_row, g2_row + g2_offw + g2_offx),
            (g3_rblk, g2_rblk), (g3_off, g2_off),
        ]
        if replay:
            g3_in.append((g3_first, g2_first))
        if p.walk_skid:
            skid = [Signal.like(dst, name=f"s_{dst.name}") for dst, _ in g3_in[1:]]
            with m.If(ld3):  # from S when it holds a position (then G2 waited), else from G2
                m.d.sync += [dst.eq(Mux(s_valid, s_reg, src))
                             for (dst, src), s_reg in zip(g3_in[1:], skid, strict=True)]
                m.d.sync += [g3_valid.eq(s_valid | g2_valid), s_valid.eq(0)]
            with m.Elif(~s_valid):  # G3 holds on: S takes G2's position
                m.d.sync += [s_reg.eq(src)
                             for (_, src), s_reg in zip(g3_in[1:], skid, strict=True)]
                m.d.sync += s_valid.eq(g2_valid)
        else:
            with m.If(ld3):
                m.d.sync += [dst.eq(src) for dst, src in g3_in]

        def goto_conv(iy_, ix_, blk_):
            """G1 moves to the conv position whose tap (0, 0) is at ``(iy_, ix_)``, block
            ``blk_``."""
            m.d.sync += [c_iy.eq(iy_), c_ix.eq(ix_), c_blk.eq(blk_)]

        with m.If(g1_adv):
            m.d.sync += g1_valid.eq(~g1_final)
            with m.If(~end_dx):  # next position of the window row
                m.d.sync += [dx.eq(dx + 1), r_c.eq(r_c + co_chunks)]
                goto_conv(c_iy, c_ix + stride, c_blk + s_col)
            with m.Elif(~end_dy):  # next window row
                m.d.sync += [dx.eq(0), dy.eq(dy + 1), wrow_blk.eq(wrow_blk + s_row),
                             r_wrow.eq(r_wrow + rs_row), r_c.eq(r_wrow + rs_row)]
                goto_conv(c_iy + stride, p_ix, wrow_blk + s_row)
            with m.Else():  # end of the window: next pass
                m.d.sync += [dx.eq(0), dy.eq(0), pas.eq(pas + 1), g_row.eq(g_row + kkc),
                             wrow_blk.eq(p_blk), r_c.eq(r_p), r_wrow.eq(r_p),
                             pass_off.eq(pass_off + groups)]
                goto_conv(p_iy, p_ix, p_blk)
                with m.If(end_pas):  # next pooled position
                    m.d.sync += [pas.eq(0), g_row.eq(w_base), pass_off.eq(0)]
                    with m.If(~end_px):
                        m.d.sync += [px.eq(px + 1), p_ix.eq(p_ix + pstride),
                                     p_blk.eq(p_blk + ps_col), wrow_blk.eq(p_blk + ps_col),
                                     r_p.eq(r_p + rps_col), r_wrow.eq(r_p + rps_col),
                                     r_c.eq(r_p + rps_col)]
                        goto_conv(p_iy, p_ix + pstride, p_blk + ps_col)
                    with m.Else():  # next pooled row
                        m.d.sync += [px.eq(0), py.eq(py + 1), p_ix.eq(neg_pad_w),
                                     p_iy.eq(p_iy + pstride),
                                     prow_blk.eq(prow_blk + ps_row),
                                     p_blk.eq(prow_blk + ps_row),
                                     wrow_blk.eq(prow_blk + ps_row),
                                     r_prow.eq(r_prow + rps_row), r_p.eq(r_prow + rps_row),
                                     r_wrow.eq(r_prow + rps_row),
                                     r_c.eq(r_prow + rps_row)]
                        goto_conv(p_iy + pstride, neg_pad_w, prow_blk + ps_row)

        # --- conv set-up: the walk's steps by shift-and-add (no multiplier) ------------------
        def times(x, n):
            """``x * n`` for a small ``n`` (2 or 3 bits): a shift-and-add, one adder per bit
            after the first."""
            return sum(Mux(n[i], x << i, 0) for i in range(len(n)))

        with m.If(self.busy & ~walking & (setup <= nb + 2)):
            m.d.sync += setup.eq(setup + 1)
            with m.If(setup < nb):
                with m.If(mul_b[0]):
                    m.d.sync += [row_step.eq(row_step + mul_a), kc.eq(kc + mul_k)]
                with m.If(mul2_b[0]):  # the shortcut's: conv_w co_chunks
                    m.d.sync += rs_row.eq(rs_row + mul2_a)
                m.d.sync += [mul_a.eq(mul_a << 1), mul_b.eq(mul_b >> 1), mul_k.eq(mul_k << 1),
                             mul2_a.eq(mul2_a << 1), mul2_b.eq(mul2_b >> 1)]
            with m.Elif(setup == nb):
                m.d.sync += [s_col.eq(times(chunks, stride)), s_row.eq(times(row_step, stride)),
                             mul_a.eq(row_step + (Mux(npad_w == 0, 0, chunks) if p.pad_rows
                                                   else chunks)),
                             row3.eq(row_step + (row_step << 1)), kc3.eq(kc + (kc << 1)),
                             chunks3.eq(chunks + (chunks << 1)),
                             kkc.eq(times(kc, last_ky) + kc),
                             in_w1.eq(in_w - 1), in_h1.eq(in_h - 1),
                             x_lim.eq(in_w - last_kx), y_lim.eq(in_h - last_ky),
                             x_low.eq(-last_kx), y_low.eq(-last_ky)]
            with m.Elif(setup == nb + 1):
                m.d.sync += [mul_a.eq(times(mul_a, pad)), ps_col.eq(s_col << pool),
                             ps_row.eq(s_row << pool), rps_col.eq(co_chunks << pool),
                             rps_row.eq(rs_row << pool)]
            with m.Else():  # G1 takes the first position
                start_blk = src_base - mul_a
                m.d.sync += [p_blk.eq(start_blk), prow_blk.eq(start_blk),
                             wrow_blk.eq(start_blk), p_iy.eq(-pad), p_ix.eq(neg_pad_w),
                             r_c.eq(res_abs), r_wrow.eq(res_abs), r_p.eq(res_abs),
                             r_prow.eq(res_abs), g1_valid.eq(1)]
                goto_conv(-pad, neg_pad_w, start_blk)

        with m.If(self.start & ~self.busy):
            conv = self.conv
            if p.pad_rows:
                m.d.sync += npad_w.eq(Mux(self.pad_rows_only, 0, -self.pad))
            m.d.sync += [
                self.busy.eq(1), self.issued.eq(0),
                pas.eq(0), last_chunk.eq(self.chunks - 1), last_pass.eq(self.passes - 1),
                w_base.eq(self.w_base), src_base.eq(self.src_base),
                dense.eq(~conv), walking.eq(~conv), setup.eq(0),
                g1_valid.eq(0), g2_valid.eq(0), g3_valid.eq(0), s_valid.eq(0),
                dx.eq(0), dy.eq(0), px.eq(0), py.eq(0),
                last_kx.eq(Mux(conv, self.kw - 1, 0)),
                last_ky.eq(Mux(conv, self.kh - 1, 0)),
                last_win.eq(Mux(conv, (1 << self.pool_log2) - 1, 0)),
                last_px.eq(Mux(conv, (self.conv_w >> self.pool_log2) - 1, 0)),
                last_py.eq(Mux(conv, (self.conv_h >> self.pool_log2) - 1, 0)),
                in_h.eq(self.in_h), in_w.eq(self.in_w),
                stride.eq(self.stride),
                pstride.eq(self.stride << self.pool_log2),
                pool.eq(self.pool_log2),
                pad.eq(self.pad),
                chunks.eq(self.chunks),
                row_step.eq(0), mul_a.eq(self.in_w), mul_b.eq(self.chunks),
                kc.eq(Mux(conv, 0, self.chunks)), mul_k.eq(self.kw),
                g_row.eq(self.w_base), pass_off.eq(0),
                # A dense layer walks at once from its first block (no set-up): one position,
                # a kernel row per pass.
                j.eq(0), kx_left.eq(0), cols.eq(0), ky_left.eq(self.passes - 1),
                chunk1.eq(self.chunks == 1), end_j.eq(self.chunks == 1), end_kx.eq(1),
                cols0.eq(1), end_ky.eq(self.passes == 1),
                blk.eq(self.src_base), row_blk.eq(self.src_base),
                w_ptr.eq(self.w_base), w_row.eq(self.w_base),
                empty.eq(0), w_final.eq(0), res_phase.eq(0), rb.eq(0),
                res_on.eq(conv & self.res),
                co_chunks.eq((self.n_out + k - 1) >> ceil_log2(k)),
                res_abs.eq(self.res_base + Mux(self.res_input, self.in_base, 0)),
                rs_row.eq(0), mul2_a.eq(self.conv_w),
                mul2_b.eq((self.n_out + k - 1) >> ceil_log2(k)),
            ]
            if replay:
                on = (self.passes > 1) & (~conv | ((self.kh == 1) & (self.kw == 1)
                                                   & (self.pool_log2 == 0) & ~self.res))
                m.d.sync += [rp_on.eq(on), rec.eq(on & ~conv), rep.eq(0), rep_ld.eq(0),
                             rec_pend.eq(0), rcount.eq(0)]
