"""Fetcher: walks the positions, passes, taps and chunks of a layer, reading spike blocks and
weight rows (im2col on the fly: nothing is expanded in memory).

Dense layer: for pass ``p = 0..passes-1`` and chunk ``c = 0..chunks-1`` it reads the spike block
of input chunk ``c`` (all ``t_max`` bit-planes of ``k`` input neurons) at ``src_base + c`` and
sends it as one stream beat, with the marks of its non-zero bit-planes and its weight row
``w_base + p * chunks + c`` (the ``k`` weights of every PE for that chunk; the PE array gets them
from the weight memory, read at the beat's row every cycle).

Conv layer (``conv``): for every pooled output position in raster order, pass ``p``, conv
position ``(oy, ox)`` of its ``2^pool_log2`` square window (one position without pooling), tap
``(ky, kx)`` and channel chunk ``j``, the block at ``src_base + (iy in_w + ix) chunks + j``
(``iy = oy stride + ky - pad``, ``ix = ox stride + kx - pad``) with weight row
``w_base + (p kh kw + ky kw + kx) chunks + j`` -- the walk of
``sw.compile.conv_layout.conv_fetch`` with the pass outside the window. The walk keeps pointers
and adds steps to them (no multiplier on the per-cycle path); the steps ``in_w chunks``,
``stride chunks``, ``stride in_w chunks`` (each times ``2^pool_log2`` per pooled position),
``kw chunks``, ``kh kw chunks`` and the padding offset are worked out by shift-and-add in
``ceil(log2(act_chunks + 1)) + 3`` set-up cycles at the start of a conv layer.

Taps in the zero padding take no cycle. A position generator steps through the conv positions
(pooled position, pass, window position) one position ahead of a tap walker; two register
stages between them work out the position's taps inside the map (per axis ``lo = max(0, -c)``,
``hi = min(k - 1, in - 1 - c)`` from the position's top-left input coordinate ``c``) and the
block and weight row of its first inside tap. The walker steps through the inside taps only and
takes the next position in the cycle the last one ends. A position with no tap inside the map
takes one step: an all-zero block marked ``pad`` (read from nowhere) that ends its pass (its
planes are not counted as skipped). The first position reaches the walker 3 cycles after the
set-up (:func:`conv_setup_cycles` counts them). A dense layer is walked by the tap walker alone
(one position whose kernel rows are the passes) and starts at once.

A conv layer with a shortcut (``res``) adds, after the taps of each conv position ``(cy, cx)``
and pass ``p``, one step per output block of the pass: ``b = 0 .. n_pe / k - 1``, block
``j = p n_pe / k + b`` of the shortcut's map (the conv output's shape, channel-chunked HWC) at
``res_base + (cy conv_w + cx) co_chunks + j`` (``co_chunks = ceil(n_out / k)``; counted from the
sample's INPUT slot when ``res_input``), sent marked ``res`` with ``group = b`` and no weight row.
A block ``j >= co_chunks`` is padding (read from nowhere, sent only to end the pass); the pass
ends on the last shortcut step instead of the last tap. The shortcut's position pointers move
like the input's (steps ``co_chunks``, ``conv_w co_chunks`` and both times ``2^pool_log2``,
made in the same set-up cycles), so a shortcut costs ``n_pe / k`` address steps per conv
position and pass and no multiplier.

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
its set-up cycles); then one beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hw.common.synth_hints import COPY_ATTRS
from hw.contract.params import CoreParams

__all__ = ["Fetcher", "block_beat_layout", "exactly_one", "lowest_one", "layer_passes_bits",
           "layer_count_bits", "spike_banks", "spike_bank_rows",
           "conv_setup_cycles", "MAX_SIDE", "SPIKE_BANK_ROWS"]

#: Largest conv map side (the descriptor's 8-bit ``in_h``, ``in_w``, ``conv_h``, ``conv_w``).
MAX_SIDE = 255

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


def conv_setup_cycles(params: CoreParams) -> int:
    """Set-up cycles of a conv layer before the fetcher's walk: a shift-and-add step per bit of
    ``chunks``, 3 for the strides, pooling and padding offsets, then 3 while the first position
    passes the position generator's stages to the tap walker."""
    return ceil_log2(params.act_chunks + 1) + 6


def layer_passes_bits(params: CoreParams) -> int:
    """Bits of a count of the datapath passes of one layer: a conv layer runs ``passes`` per
    output position, up to ``MAX_SIDE ** 2`` positions (a dense-only build: ``max_passes``)."""
    positions = MAX_SIDE * MAX_SIDE if params.conv else 1
    return (positions * params.max_passes).bit_length()


def layer_count_bits(params: CoreParams, per_pass: int) -> int:
    """Bits of a per-layer counter that grows by at most ``per_pass`` per pass (32 when conv
    layers run: their passes repeat per position)."""
    return 32 if params.conv else (params.max_passes * per_pass).bit_length()


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
    """

    def __init__(self, params: CoreParams, *, walk_ready: bool = False):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        self._walk_ready = bool(walk_ready) and bool(params.conv)
        src_depth = params.spike_rows
        members = {
            "start": In(1),
            "chunks": In(16),
            "passes": In(16),
            "T": In(range(params.t_max + 1)),
            "src_base": In(range(src_depth)),
            "w_base": In(range(params.weight_depth)),
            "conv": In(1),
            "in_h": In(8),
            "in_w": In(8),
            "conv_h": In(8),
            "conv_w": In(8),
            "kh": In(3),
            "kw": In(3),
            "stride": In(2),
            "pad": In(2),
            "pool_log2": In(2),
            "n_out": In(16),
            "res": In(1),
            "res_input": In(1),
            "res_base": In(11),
            "in_base": In(range(src_depth)),
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
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first valid beat of a dense layer (no back-pressure)."""
        return 5

    @property
    def setup_cycles(self) -> int:
        """Set-up cycles a conv layer spends before its walk (:func:`conv_setup_cycles`)."""
        return conv_setup_cycles(self._params)

    @property
    def _mul_steps(self) -> int:
        return ceil_log2(self._params.act_chunks + 1)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        k = p.k
        # Block pointers may point before the map (padding): signed, with room for the steps.
        ptr_bits = ceil_log2(p.spike_rows + 1) + 4
        # --- Stage A: the walk -----------------------------------------------------------------
        # A conv layer's walk has three parts. The position generator (G1) steps through the
        # conv positions: pooled row py, pooled column px, pass, window row dy, window column
        # dx (max pooling: the conv positions of one pooled output; without pooling the window
        # is one position). Two register stages (G2, G3) work out each position's taps inside
        # the map and its first block and weight row. The tap walker takes a position from G3
        # and steps through its inside taps only: chunk j, tap column, tap row. The generator
        # runs ahead of the walker, so a position starts the cycle after the last one ends.
        j = Signal(range(p.act_chunks))
        pas = Signal(range(p.max_passes))
        last_chunk = Signal(range(p.act_chunks))  # chunks - 1
        last_pass = Signal(range(p.max_passes))  # passes - 1
        blk = Signal(signed(ptr_bits))  # block of the tap and chunk
        w_ptr = Signal(range(p.weight_depth))
        w_base = Signal(range(p.weight_depth))
        src_base = Signal.like(self.src_base)
        walking = Signal()  # the walker holds a position (a dense layer: the layer)
        # Stage B: the block on the read port.
        valid_b = Signal()
        last_b = Signal()
        pad_b = Signal()
        res_b = Signal()
        groups = p.chunks_per_pass  # output blocks of one pass
        grp_b = Signal(range(groups))
        w_addr_b = Signal.like(w_ptr)
        # Stages R, S: the block in a register, twice.
        valid_r = Signal()
        last_r = Signal()
        pad_r = Signal()
        res_r = Signal()
        grp_r = Signal(range(groups))
        block_r = Signal(p.block_bits, reset_less=True)
        w_addr_r = Signal.like(w_ptr)
        valid_s = Signal()
        last_s = Signal()
        pad_s = Signal()
        res_s = Signal()
        grp_s = Signal(range(groups))
        block_s = Signal(p.block_bits, reset_less=True)
        w_addr_s = Signal.like(w_ptr)
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
        m.d.comb += [
            adv.eq(~valid_c | self.o.ready),
            self.src_addr.eq(blk[:len(self.src_addr)]),
            self.src_en.eq(adv),
        ]
        end_j, end_pas = Signal(), Signal()
        m.d.comb += [end_j.eq(j == last_chunk), end_pas.eq(pas == last_pass)]
        if not p.conv:
            # A dense-only build (conv=0): the chunks of each pass, nothing else.
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
        else:
            self._conv_walk(m, ptr_bits, adv, send_s, dict(
                j=j, pas=pas, last_chunk=last_chunk, last_pass=last_pass, blk=blk, w_ptr=w_ptr,
                w_base=w_base, src_base=src_base, walking=walking, end_j=end_j,
                end_pas=end_pas, valid_b=valid_b, last_b=last_b, pad_b=pad_b, res_b=res_b,
                grp_b=grp_b, w_addr_b=w_addr_b))

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
            m.d.sync += [
                self.busy.eq(1),
                self.issued.eq(0),
                self.skipped.eq(0),
                j.eq(0), pas.eq(0),
                last_chunk.eq(self.chunks - 1),
                last_pass.eq(self.passes - 1),
                w_ptr.eq(self.w_base), w_base.eq(self.w_base),
                src_base.eq(self.src_base), blk.eq(self.src_base),
            ]
            if not p.conv:
                m.d.sync += walking.eq(1)
        return m

    def _conv_walk(self, m, ptr_bits, adv, send_s, s):
        """Stage A of a conv build: the position generator (G1), its two stages (G2, G3) and
        the tap walker; ``s`` holds the signals stage A shares with the rest of the fetcher.
        A dense layer in a conv build is walked by the tap walker alone: one position whose
        kernel rows are the passes (row step 0, weight row step ``chunks``)."""
        p = self._params
        k = p.k
        nb = self._mul_steps
        j, pas, blk, w_ptr, walking = s["j"], s["pas"], s["blk"], s["w_ptr"], s["walking"]
        end_pas = s["end_pas"]
        groups = p.chunks_per_pass
        # --- descriptor fields and the steps worked out in set-up -------------------------------
        last_kx, last_ky = Signal(3), Signal(3)
        last_win = Signal(3)  # 2^pool_log2 - 1
        last_px, last_py = Signal(8), Signal(8)
        in_h, in_w = Signal(8), Signal(8)
        stride = Signal(2)
        pstride = Signal(5)  # stride 2^pool_log2: input step per pooled position
        pad = Signal(2)
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

        if self._walk_ready:
            # The walk's own copies of the output stage's handshake registers: ``adv``
            # exactly, from registers placed near the walk's pointers.
            valid_w = Signal(name="valid_walk", attrs=COPY_ATTRS)
            adv_w = Signal()
            with m.If(adv_w):  # (adv_w == adv, every cycle)
                m.d.sync += valid_w.eq(send_s)
            m.d.comb += adv_w.eq(~valid_w | self.o_ready_walk)
        else:
            adv_w = adv
        step = Signal()  # the walker takes a step this cycle
        end_rb, res_pad = Signal(), Signal()
        taps_done = Signal()  # this step is the position's last tap (or its padding step)
        walk_last = Signal()  # this step ends the pass
        layer_end = Signal()  # ... and the layer
        sent = Signal()  # this step reads a block
        take = Signal()  # the walker takes G3's position (when G3 holds one)
        m.d.comb += [
            step.eq(adv_w & walking),
            end_rb.eq(rb == groups - 1),
            res_pad.eq(res_j >= co_chunks),
            taps_done.eq(empty | (end_j & end_kx & (end_ky | dense))),
            walk_last.eq(Mux(res_phase, end_rb, taps_done & ~res_on)),
            layer_end.eq(Mux(dense, end_ky, w_final)),
            sent.eq(Mux(res_phase, ~res_pad, ~empty)),
            take.eq(~walking | (step & walk_last)),
        ]
        with m.If(adv_w):
            m.d.sync += [s["valid_b"].eq(walking & (sent | walk_last)),
                         s["last_b"].eq(walk_last), s["pad_b"].eq(~sent),
                         s["res_b"].eq(res_phase), s["grp_b"].eq(rb), s["w_addr_b"].eq(w_ptr)]
        with m.If(step & ~res_phase & ~empty):
            m.d.sync += [j.eq(j + 1), blk.eq(blk + 1), w_ptr.eq(w_ptr + 1),
                         end_j.eq(j + 1 == s["last_chunk"])]
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

        # --- G1..G3: the positions, a step ahead of the walker ---------------------------------
        ld3, ld2, g1_adv = Signal(), Signal(), Signal()
        g1_final = Signal()
        end_dx, end_dy, end_px, end_py = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            ld3.eq(~g3_valid | take), ld2.eq(~g2_valid | ld3), g1_adv.eq(g1_valid & ld2),
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
        with m.If(ld3):
            m.d.sync += [
                g3_valid.eq(g2_valid),
                g3_cols.eq(g2_cols), g3_rows.eq(g2_rows), g3_empty.eq(g2_empty),
                g3_cols0.eq(g2_cols == 0), g3_rows0.eq(g2_rows == 0),
                g3_final.eq(g2_final),
                # An empty position of a layer with a shortcut starts at its shortcut.
                g3_blk.eq(Mux(g2_empty & res_on, g2_rblk, g2_blk + g2_offy + g2_offx)),
                g3_row.eq(g2_row + g2_offw + g2_offx),
                g3_rblk.eq(g2_rblk), g3_off.eq(g2_off),
            ]

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
                    m.d.sync += [pas.eq(0), g_row.eq(s["w_base"]), pass_off.eq(0)]
                    with m.If(~end_px):
                        m.d.sync += [px.eq(px + 1), p_ix.eq(p_ix + pstride),
                                     p_blk.eq(p_blk + ps_col), wrow_blk.eq(p_blk + ps_col),
                                     r_p.eq(r_p + rps_col), r_wrow.eq(r_p + rps_col),
                                     r_c.eq(r_p + rps_col)]
                        goto_conv(p_iy, p_ix + pstride, p_blk + ps_col)
                    with m.Else():  # next pooled row
                        m.d.sync += [px.eq(0), py.eq(py + 1), p_ix.eq(-pad),
                                     p_iy.eq(p_iy + pstride),
                                     prow_blk.eq(prow_blk + ps_row),
                                     p_blk.eq(prow_blk + ps_row),
                                     wrow_blk.eq(prow_blk + ps_row),
                                     r_prow.eq(r_prow + rps_row), r_p.eq(r_prow + rps_row),
                                     r_wrow.eq(r_prow + rps_row),
                                     r_c.eq(r_prow + rps_row)]
                        goto_conv(p_iy + pstride, -pad, prow_blk + ps_row)

        # --- conv set-up: the walk's steps by shift-and-add (no multiplier) ------------------
        def times(x, n):
            """``x * n`` for a 2-bit ``n``: one adder."""
            return Mux(n[1], x << 1, 0) + Mux(n[0], x, 0)

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
                             mul_a.eq(row_step + chunks),
                             row3.eq(row_step + (row_step << 1)), kc3.eq(kc + (kc << 1)),
                             chunks3.eq(chunks + (chunks << 1)),
                             kkc.eq(Mux(last_ky[0], kc, 0) + Mux(last_ky[1], kc << 1, 0)
                                    + Mux(last_ky[2], kc << 2, 0) + kc),
                             in_w1.eq(in_w - 1), in_h1.eq(in_h - 1),
                             x_lim.eq(in_w - last_kx), y_lim.eq(in_h - last_ky),
                             x_low.eq(-last_kx), y_low.eq(-last_ky)]
            with m.Elif(setup == nb + 1):
                m.d.sync += [mul_a.eq(times(mul_a, pad)), ps_col.eq(s_col << pool),
                             ps_row.eq(s_row << pool), rps_col.eq(co_chunks << pool),
                             rps_row.eq(rs_row << pool)]
            with m.Else():  # G1 takes the first position
                start_blk = s["src_base"] - mul_a
                m.d.sync += [p_blk.eq(start_blk), prow_blk.eq(start_blk),
                             wrow_blk.eq(start_blk), p_iy.eq(-pad), p_ix.eq(-pad),
                             r_c.eq(res_abs), r_wrow.eq(res_abs), r_p.eq(res_abs),
                             r_prow.eq(res_abs), g1_valid.eq(1)]
                goto_conv(-pad, -pad, start_blk)

        with m.If(self.start & ~self.busy):
            conv = self.conv
            m.d.sync += [
                dense.eq(~conv), walking.eq(~conv), setup.eq(0),
                g1_valid.eq(0), g2_valid.eq(0), g3_valid.eq(0),
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
