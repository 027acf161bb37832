"""Amaranth-simulator tests of the fetcher (with its memories) and the writer (back-pressure)."""

import dataclasses
import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from hw.common.stream_queue import StreamQueue
from hw.contract.params import CoreParams
from hw.core.fetcher import Fetcher, block_beat_layout
from hw.core.writer import Writer
from sim.rtl.streams import stream_get

P = CoreParams(n_pe=8, k=4, t_max=8, weight_depth=64, act_chunks=8, bt_depth=64, max_layers=2,
               batch_depth=2)


#: How the fetcher's walk waits on its output: lock-step on ``o.ready``; on its own copies of
#: the handshake (``walk_ready``, the skid-buffer conv builds); on credits from a queue of 4 or
#: 8 blocks after it (``fetch_queue``, the conv builds with a queue; 4 is fewer than the steps
#: a credit takes to come back, so the walk waits on credits).
FLOW = {"lockstep": {}, "walk_ready": {"walk_ready": True}, "credits4": {"queue": 4},
        "credits8": {"queue": 8}, "replay4": {"queue": 4, "replay": True},
        "replay8": {"queue": 8, "replay": True}}


class FetchRig(wiring.Component):
    """Fetcher wired to a spike-block memory with known contents. ``walk_ready``: the conv
    walk advances on its own copies of the output handshake (as in the core), its ``ready``
    copy the output's ``ready`` itself. ``queue``: a conv build with ``fetch_queue=queue``,
    the fetcher's output through that queue (as in the core) and its walk on credits; ``out``
    is the stream the rig gives."""

    def __init__(self, blocks, walk_ready=False, queue=0, replay=False):
        params = dataclasses.replace(P, fetch_queue=queue, walk_replay=int(replay))
        self.fetch = Fetcher(params, walk_ready=walk_ready)
        assert self.fetch.credits == bool(queue)
        self._walk_ready = walk_ready
        self._queue = StreamQueue(block_beat_layout(params), queue) if queue else None
        self.out = self._queue.o if queue else self.fetch.o
        self.lost = Signal(name="lost")  # (with a queue) a block was offered and not taken
        self._blocks = blocks
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch = f = self.fetch
        m.submodules.src = src = memory.Memory(shape=P.block_bits, depth=len(self._blocks),
                                               init=self._blocks)
        s_rd = src.read_port()
        m.d.comb += [s_rd.addr.eq(f.src_addr), s_rd.en.eq(f.src_en), f.src_data.eq(s_rd.data)]
        if self._walk_ready:
            m.d.comb += f.o_ready_walk.eq(f.o.ready)
        if self._queue is not None:
            m.submodules.queue = q = self._queue
            wiring.connect(m, f.o, q.i)
            m.d.comb += f.queue_pop.eq(q.o.valid & q.o.ready)
            # Credits keep the queue from filling: a block offered is always taken.
            m.d.sync += self.lost.eq(self.lost | (f.o.valid & ~f.o.ready))
        return m


def _plane_marks(block: int, T: int) -> tuple[int, int]:
    """A block's marks as the fetcher makes them: the planes below ``T`` with a spike (a bit
    each), and how many planes below ``T`` are all zero (what ``skipped`` adds for it)."""
    nonzero = sum(1 << q for q in range(T) if (block >> (q * P.k)) & ((1 << P.k) - 1))
    return nonzero, T - bin(nonzero).count("1")


@pytest.mark.parametrize("flow", list(FLOW))
@pytest.mark.parametrize("pause", [0.0, 0.5])
def test_fetcher_walks_passes_and_chunks(pause, flow, rng, seed):
    """Every block of every pass in order with its plane marks and weight row, except the blocks
    with no spike below ``T`` that do not end a pass (not sent); ``skipped`` counts the zero
    planes below ``T`` of every block read, sent or not. With ``walk_replay`` the passes after
    the first read only the blocks with a spike, the last of them ending the pass (an empty
    padding step when there is none)."""
    replay = FLOW[flow].get("replay", False)
    n_src = P.batch_depth * P.act_chunks
    # Sparse and dense blocks, so the plane mask sees both empty and full planes.
    blocks = [int(b) & int(mask) for b, mask in zip(rng.integers(0, 1 << 31, n_src),
                                                    rng.choice([0, 0xF0F0F0F0, 0xFFFFFFFF], n_src),
                                                    strict=True)]
    rig = FetchRig(blocks, **FLOW[flow])
    f = rig.fetch
    layers = [(3, 2, 5, 7), (1, 4, 0, 30), (8, 1, 8, 0), (6, 3, 2, 9)]  # chunks, passes, bases
    if replay:  # a layer whose blocks are all empty: its later passes are one padding step
        blocks[12:14] = [0, 0]
        layers.append((2, 3, 12, 40))
    T = 6  # planes 6 and 7 are never marked
    want, want_skipped = [], []
    for chunks, passes, src_base, w_base in layers:
        sent, skipped = [], 0
        live = [c for c in range(chunks) if _plane_marks(blocks[src_base + c], T)[0]]
        for p in range(passes):
            if replay and p and passes > 1:
                for c in live:
                    nonzero, zeros = _plane_marks(blocks[src_base + c], T)
                    skipped += zeros
                    sent.append((blocks[src_base + c], nonzero, w_base + p * chunks + c,
                                 int(c == live[-1])))
                if not live:
                    sent.append((0, 0, None, 1))  # the padding step (its row is not read)
                continue
            for c in range(chunks):
                block = blocks[src_base + c]
                nonzero, zeros = _plane_marks(block, T)
                skipped += zeros
                if nonzero or c == chunks - 1:
                    sent.append((block, nonzero, w_base + p * chunks + c, int(c == chunks - 1)))
        want.append(sent)
        want_skipped.append(skipped)
    assert any(len(w) < c * p for w, (c, p, _, _) in zip(want, layers, strict=True))
    got, got_skipped, lost = [], [], []

    async def control(ctx):
        for n, (chunks, passes, src_base, w_base) in enumerate(layers):
            ctx.set(f.chunks, chunks)
            ctx.set(f.passes, passes)
            ctx.set(f.src_base, src_base)
            ctx.set(f.w_base, w_base)
            ctx.set(f.T, T)
            ctx.set(f.start, 1)
            await ctx.tick()
            ctx.set(f.start, 0)
            await ctx.tick().until(~f.busy)
            while len(got) < sum(len(w) for w in want[:n + 1]):
                await ctx.tick()
            await ctx.tick().repeat(3)  # the count lags the blocks by two cycles
            got_skipped.append(ctx.get(f.skipped))
            lost.append(ctx.get(rig.lost))

    async def consumer(ctx):
        r = random.Random(seed)
        for _ in range(sum(len(w) for w in want)):
            beat = await stream_get(ctx, rig.out, rng=r, pause=pause)
            got.append((beat.block, beat.nonzero, beat.row, beat.last))

    sim = Simulator(rig)
    sim.add_clock(1e-6)
    sim.add_testbench(control)
    sim.add_testbench(consumer)
    sim.run()
    expect = [beat for sent in want for beat in sent]
    got = [g if e[2] is not None else (*g[:2], None, g[3])
           for g, e in zip(got, expect, strict=True)]
    assert got == expect
    assert got_skipped == want_skipped
    assert lost and not any(lost)


def _writer_params(units):
    return CoreParams(n_pe=8, k=4, t_max=8, weight_depth=64, act_chunks=8, bt_depth=64,
                      max_layers=2, batch_depth=2, fire_units=units)


async def _put_group(ctx, dut, group, rng, pause):
    """The writer is always ready: a group is one cycle with ``valid``."""
    while rng.random() < pause:
        await ctx.tick()
    ctx.set(dut.i.valid, 1)
    ctx.set(dut.i.payload, group)
    await ctx.tick()
    ctx.set(dut.i.valid, 0)


@pytest.mark.parametrize("final,readout,pause,units", [
    (False, False, 0.0, 4), (False, False, 0.5, 2), (False, False, 0.3, 1),
    (True, True, 0.3, 2), (True, False, 0.3, 4), (True, True, 0.0, 1)])
def test_writer_masks_transposes_counts(final, readout, pause, units, rng, seed):
    p = _writer_params(units)
    dut = Writer(p)
    n_out = 13  # two passes of 8; the last 3 neurons of pass 2 are padding
    flat = []
    for _ in range(2 * p.n_pe):
        w, v = int(rng.integers(0, 256)), int(rng.integers(-5000, 5000))
        flat.append({"word": w, "v": v, "spikes": bin(w).count("1")})
    groups = [flat[n:n + units] for n in range(0, len(flat), units)]
    act, out = {}, {}
    out_base = 12

    async def producer(ctx):
        ctx.set(dut.n_out, n_out)
        ctx.set(dut.final, final)
        ctx.set(dut.readout, readout)
        ctx.set(dut.dst_base, 4)
        ctx.set(dut.out_base, out_base)
        ctx.set(dut.pos_passes, 2)
        await ctx.tick()  # the layer's settings are held from a cycle before clear
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        r = random.Random(seed)
        for group in groups:
            await _put_group(ctx, dut, group, r, pause)

    async def monitor(ctx):
        async for _clk_edge, _, a_en, a_addr, a_data, o_en, o_addr, o_data, n in ctx.tick().sample(
                dut.act_en, dut.act_addr, dut.act_data, dut.out_en, dut.out_addr, dut.out_data,
                dut.passes):
            if a_en:
                act[a_addr] = a_data
            if o_en:
                for f in range(units):
                    out[o_addr * units + f] = (o_data >> (32 * f)) & 0xFFFFFFFF
            if n == 2:
                act["spikes"] = ctx.get(dut.spikes)
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run()
    spikes = act.pop("spikes")
    live = [n < n_out for n in range(len(flat))]
    if final:
        want = {out_base + n: ((e["v"] & 0xFFFFFFFF) if readout else e["word"]) if live[n] else 0
                for n, e in enumerate(flat)}
        assert out == want and not act
    else:
        want = {}
        for j in range(len(flat) // p.k):
            bits = 0
            for q in range(p.t_max):
                for i in range(p.k):
                    n = j * p.k + i
                    bits |= ((flat[n]["word"] >> q) & 1 if live[n] else 0) << (q * p.k + i)
            want[4 + j] = bits
        assert act == want and not out
    assert spikes == sum(e["spikes"] for n, e in enumerate(flat) if live[n])


def test_writer_counts_spikes_of_live_neurons_only():
    p = _writer_params(4)
    dut = Writer(p)
    group = [{"word": 0xFF, "v": 0, "spikes": 8}] * p.fire_units
    result = {}

    async def tb(ctx):
        ctx.set(dut.n_out, 3)
        ctx.set(dut.pos_passes, 1)
        await ctx.tick()  # the layer's settings are held from a cycle before clear
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for _ in range(p.n_pe // p.fire_units):
            await _put_group(ctx, dut, group, random.Random(0), 0.0)
        await ctx.tick().until(dut.passes == 1)
        result["spikes"] = ctx.get(dut.spikes)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert result["spikes"] == 3 * 8


def _conv_walk(d, src_base, blocks, T):
    """The fetcher's beats for a conv descriptor, from ``sw.compile.conv_layout.conv_fetch``
    (pooled position, window position, pass) reordered to the gateware's (pooled position,
    pass, window position); padding taps take no step, and a position with no tap inside the
    map sends one all-zero ``pad`` beat to end its pass; a block with no spike below ``T``
    that does not end its pass is not sent. Returns the beats and the skip count (the zero
    planes below ``T`` of every block read)."""
    from sw.compile.conv_layout import conv_fetch

    win = 1 << (2 * d["pool_log2"])
    steps = list(conv_fetch(d))
    beats, skipped = [], 0
    per_pooled = win * d["passes"]
    pass_rows = d["kh"] * d["kw"] * d["chunks"]
    for start in range(0, len(steps), per_pooled):
        group = steps[start:start + per_pooled]  # window position major, pass minor
        for p in range(d["passes"]):
            for w in range(win):
                cy, cx, pp, fetches = group[w * d["passes"] + p]
                assert pp == p
                walk = []
                for blk, row in fetches:
                    block = blocks[src_base + blk]
                    nonzero, zeros = _plane_marks(block, T)
                    skipped += zeros
                    walk.append((block, nonzero, row, 0, 0))
                if walk:
                    walk[-1] = walk[-1][:3] + (1, 0)
                else:  # no tap inside the map: one all-zero pad beat ends the pass, on the
                    # weight row the walker points at (past the top and left padding)
                    lo_y = max(0, d["pad"] - cy * d["stride"])
                    lo_x = max(0, d["pad"] - cx * d["stride"])
                    row = d["w_base"] + p * pass_rows + (lo_y * d["kw"] + lo_x) * d["chunks"]
                    walk.append((0, 0, row, 1, 1))
                beats += [b for b in walk if b[1] or b[3]]
    return beats, skipped


@pytest.mark.parametrize("flow", list(FLOW))
@pytest.mark.parametrize("pause", [0.0, 0.4])
def test_fetcher_walks_conv_receptive_fields(pause, flow, rng, seed):
    """Random conv geometries (kernel 1..5, stride 1..3, padding 0..3, pooling 1/2/4, channel
    chunks, passes): the beats equal conv_fetch's walk with the pass outside the window,
    padding taps read nothing, blocks without a spike below ``T`` are sent only to end a pass,
    ``skipped`` counts their zero planes and ``issued`` counts every pass."""
    n_src = P.spike_rows
    blocks = [int(b) & int(mask) for b, mask in zip(rng.integers(0, 1 << 31, n_src),
                                                    rng.choice([0, 0xF0F0F0F0, 0xFFFFFFFF], n_src),
                                                    strict=True)]
    rig = FetchRig(blocks, **FLOW[flow])
    f = rig.fetch
    T = int(rng.integers(1, P.t_max + 1))
    layers = []
    while len(layers) < 6:
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stride, pad, pool_log2 = int(rng.integers(1, 4)), int(rng.integers(0, 4)), \
            int(rng.choice([0, 0, 1, 2]))
        chunks = int(rng.integers(1, 3))
        in_h, in_w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        conv_h = (in_h + 2 * pad - kh) // stride + 1
        conv_w = (in_w + 2 * pad - kw) // stride + 1
        passes, w_base = int(rng.integers(1, 3)), int(rng.integers(0, 4))
        if (min(conv_h, conv_w) >> pool_log2 < 1 or in_h * in_w * chunks > P.act_chunks
                or w_base + passes * kh * kw * chunks > P.weight_depth):
            continue
        src_base = int(rng.integers(0, n_src - in_h * in_w * chunks + 1))
        layers.append(dict(chunks=chunks, passes=passes, kh=kh, kw=kw, stride=stride, pad=pad,
                           pool_log2=pool_log2, in_h=in_h, in_w=in_w, conv_h=conv_h,
                           conv_w=conv_w, w_base=w_base, src_base=src_base))
    walks = [_conv_walk(d, d["src_base"], blocks, T) for d in layers]
    want = [beats for beats, _ in walks]
    got, issued, skipped, lost = [], [], [], []

    async def control(ctx):
        for n, d in enumerate(layers):
            for name in ("chunks", "passes", "kh", "kw", "stride", "pad", "pool_log2", "in_h",
                         "in_w", "conv_h", "conv_w", "w_base", "src_base"):
                ctx.set(getattr(f, name), d[name])
            ctx.set(f.conv, 1)
            ctx.set(f.T, T)
            ctx.set(f.start, 1)
            await ctx.tick()
            ctx.set(f.start, 0)
            await ctx.tick().until(~f.busy)
            issued.append(ctx.get(f.issued))
            while len(got) < sum(len(w) for w in want[:n + 1]):
                await ctx.tick()
            await ctx.tick().repeat(3)  # the count lags the blocks by two cycles
            skipped.append(ctx.get(f.skipped))
            lost.append(ctx.get(rig.lost))

    async def consumer(ctx):
        r = random.Random(seed)
        for _ in range(sum(len(w) for w in want)):
            beat = await stream_get(ctx, rig.out, rng=r, pause=pause)
            got.append((beat.block, beat.nonzero, beat.row, beat.last, beat.pad))

    sim = Simulator(rig)
    sim.add_clock(1e-6)
    sim.add_testbench(control)
    sim.add_testbench(consumer)
    sim.run()
    assert got == [b for w in want for b in w]
    assert skipped == [n for _, n in walks]
    assert lost and not any(lost)
    assert issued == [(d["conv_h"] >> d["pool_log2"]) * (d["conv_w"] >> d["pool_log2"])
                      * (1 << 2 * d["pool_log2"]) * d["passes"] for d in layers]

