"""Writer: stores the fired outputs of each group, masks padding neurons, counts spikes.

The firing array delivers one group (``units`` consecutive neurons) at a time. For a hidden layer
the groups are gathered into spike blocks for the next layer (block bit ``q*k + i`` = bit ``q`` of
the block's neuron ``i``: a transpose, pure wiring), ``k / units`` groups per block, each block
written to the ping-pong activation memory at consecutive addresses from ``dst_base`` (a conv
layer's output map: the ``ceil(C_out / k)`` blocks of each position in turn). A block wholly past
``n_out`` (padding of the last pass) is not written. For the
final layer each group is one row of the output memory (``units`` 32-bit words: the membrane for a
readout, else the packed word). Neurons at or beyond ``n_out`` (padding of the last pass) are
forced to zero and not counted. After ``pos_passes`` passes the neuron count starts again (the next
output position of a conv layer). ``n_out`` lies in the last pass of a position (``pos_passes =
ceil(n_out / n_pe)``, which the sequencer checks), so only that pass has padding, and which neurons
are live is a mask made from ``n_out`` before the layer starts: every decision behind the live
mask and the pooling window is a register worked out a cycle ahead.

The writer never stalls (``i`` is always ready): it takes a group per cycle and writes it (its
block, its output row) from registers the cycle after. ``passes`` counts the passes whose every
group was written, two cycles after the last write, in the cycle ``spikes`` takes their last
group (the group's words are registered, counted, added up, then accumulated).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hw.contract.params import CoreParams

from .fire_array import fire_array_output_layout
from .layer_counts import layer_count_bits, layer_passes_bits

__all__ = ["Writer"]


class Writer(wiring.Component):
    """Group writer for hidden (activation memory) and final (output memory) layers.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    clear : In(1)
        Pulse at layer start: latch ``dst_base``/``out_base``, zero ``passes`` and ``spikes``.
        ``n_out``, ``pos_passes``, ``pool_log2`` and ``lif`` are held from at least a cycle before
        it (the sequencer's VERDICT and CHECK) to the layer's end.
    n_out : In(16)
        Output neurons (channels) of the layer (the rest of the last pass is padding).
    pos_passes : In(16)
        Passes per output position, ``ceil(n_out / n_pe)`` (held during the layer).
    pool_log2, lif : In
        Max pooling ``2^pool_log2`` (0: none): each pass arrives once per conv position of the
        window (``4^pool_log2`` times in a row); the writer keeps each neuron's largest word
        (``lif``: the OR of the words) and writes and counts only after the window's last.
    final, readout : In(1)
        Final layer (write output memory); readout (write membranes, no spikes).
    dst_base : In
        First activation-memory block of the layer.
    out_base : In
        First output-memory *word* of the layer (a multiple of ``fire_units``).
    passes : Out(layer_passes_bits(params))
        Passes written since ``clear`` (all positions).
    spikes : Out(layer_count_bits(params, n_pe * t_max))
        Output 1-bits since ``clear`` (padding excluded): at most one per neuron, position and
        step.
    act_addr, act_data, act_en : Out
        Activation-memory write port (one spike block).
    out_addr, out_data, out_en : Out
        Output-memory write port (one row of ``fire_units`` 32-bit words).
    i : In(stream.Signature(fire_array_output_layout(fire_units, t_max, acc_bits),
        always_ready=True))
    """

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = p = params
        act_depth = 2 * p.act_chunks
        super().__init__({
            "clear": In(1),
            "n_out": In(16),
            "pos_passes": In(16),
            "pool_log2": In(2),
            "lif": In(1),
            "final": In(1),
            "readout": In(1),
            "dst_base": In(range(act_depth)),
            "out_base": In(range(p.output_words)),
            "passes": Out(layer_passes_bits(p)),
            "spikes": Out(layer_count_bits(p, p.n_pe * p.t_max)),
            "act_addr": Out(range(act_depth)),
            "act_data": Out(p.block_bits),
            "act_en": Out(1),
            "out_addr": Out(range(p.out_rows)),
            "out_data": Out(32 * p.fire_units),
            "out_en": Out(1),
            "i": In(stream.Signature(
                fire_array_output_layout(p.fire_units, p.t_max, p.acc_bits), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        units, k, t_max = p.fire_units, p.k, p.t_max
        per_block = k // units  # groups per spike block
        groups = p.n_pe // units

        lg_pe = exact_log2(p.n_pe)

        # Which neurons are live: only the last pass of an output position holds padding (the
        # sequencer refuses ``n_out`` outside ``((pos_passes - 1) n_pe, pos_passes n_pe]``), and
        # its live neurons are the first ``n_out - (pos_passes - 1) n_pe``, i.e. the first
        # ``((n_out - 1) mod n_pe) + 1``. Every decision is a register worked out a cycle ahead
        # (no compare of a counter sits in front of the live mask, which gates every output bit):
        #   tail     the last pass's live mask (from ``n_out``, held before ``clear``),
        #   rest     the current pass's mask from the current group on (all ones unless it is the
        #            last pass), shifted down a group per group,
        #   live     the current group's mask (``rest``'s low bits, its own register: fan-out),
        #   g_last   the current group is the pass's last,
        #   in_last  the current pass is the position's last; ``pen``: the one before it,
        #   emit     the current conv position is the pooling window's last; ``win0``: its first.
        # ``n_out``, ``pos_passes`` and ``pool_log2`` are held from a cycle before ``clear`` on
        # (the sequencer's VERDICT and CHECK) through the layer.
        tail = Signal(p.n_pe)
        n_low = Signal(lg_pe)
        one_pass, two_pass = Signal(), Signal()
        last_pas = Signal(range(p.max_passes))  # pos_passes - 1
        m.d.comb += n_low.eq(self.n_out[:lg_pe] - 1)  # (n_out - 1) mod n_pe
        m.d.sync += [tail.eq(Cat(*(n_low >= i for i in range(p.n_pe)))),
                     one_pass.eq(self.pos_passes == 1), two_pass.eq(self.pos_passes == 2),
                     last_pas.eq(self.pos_passes - 1)]
        ones = (1 << p.n_pe) - 1
        first_mask = Signal(p.n_pe)  # the mask of a position's first pass
        m.d.comb += first_mask.eq(Mux(one_pass, tail, ones))

        pas_left = Signal(range(p.max_passes))  # passes of the position after the current one
        pen2 = Signal()  # pas_left == 2
        m.d.comb += pen2.eq(pas_left == 2)
        rest = Signal(p.n_pe)
        live = [Signal(name=f"live{f}") for f in range(units)]
        g_last, in_last, pen = Signal(), Signal(), Signal()

        win_left = Signal(6)  # conv positions of the window after the current one
        last_win = Signal(6)  # 4^pool_log2 - 1
        pooling = Signal()
        lif = Signal()
        emit = Signal()
        win0 = Signal()
        if p.conv:
            m.d.sync += [last_win.eq((1 << (self.pool_log2 << 1)) - 1),
                         pooling.eq(self.pool_log2 != 0), lif.eq(self.lif)]
        else:
            m.d.comb += [emit.eq(1), win0.eq(1)]
        g = Signal(range(groups))
        j = Signal(range(per_block))  # group within the block being gathered
        blk = Signal(p.block_bits)
        act_ptr = Signal.like(self.act_addr)
        out_ptr = Signal.like(self.out_addr)

        # The memory write ports are driven from registers: a group is written the cycle after it
        # arrives (the output and spike memories are block RAMs spread over the device, and the
        # group's data and enables come through a few LUTs).
        out_addr, out_data, out_en = (Signal.like(self.out_addr), Signal.like(self.out_data),
                                      Signal())
        act_addr, act_data, act_en = (Signal.like(self.act_addr), Signal.like(self.act_data),
                                      Signal())
        regs = [(self.out_addr, out_addr), (self.out_data, out_data),
                (self.act_addr, act_addr), (self.act_data, act_data)]
        for port, value in regs:
            reg = Signal.like(port, name=f"{port.name}_q", reset_less=True)
            m.d.sync += reg.eq(value)
            m.d.comb += port.eq(reg)
        m.d.sync += [self.out_en.eq(out_en), self.act_en.eq(act_en)]

        res = self.i.payload
        words = [Signal(t_max, name=f"word{f}") for f in range(units)]
        for f in range(units):
            m.d.comb += words[f].eq(res[f].word & live[f].replicate(t_max))

        # Max pooling: the running per-neuron result of the window, one register per neuron of
        # a pass (SpikePack: the largest word = the word of the largest membrane, firing being
        # monotone; LIF: the OR of the spikes of each step). ``emit``: the window's last position.
        # Ref: docs/numerics.md (pooling).
        # (A dense-only build, conv=0, has none of it.)
        pooled = [Signal(t_max, name=f"pooled{f}") for f in range(units)]
        if p.conv:
            best = [[Signal(t_max, name=f"best{gg}_{f}", reset_less=True) for f in range(units)]
                    for gg in range(groups)]
            # The running word of the next group, picked a cycle ahead into a register (the
            # group select stays off the path from the firing array to the counters): the
            # group written this cycle is never the next one, unless there is one group.
            g_next = Signal.like(g)
            m.d.comb += g_next.eq(Mux(self.i.valid, Mux(g_last, 0, g + 1), g))
            for f in range(units):
                if groups > 1:
                    old = Signal(t_max, name=f"old{f}", reset_less=True)
                    m.d.sync += old.eq(Array(best[gg][f] for gg in range(groups))[g_next])
                else:
                    old = best[0][f]
                # The compare takes the unmasked word (a dead neuron's running word stays 0, and
                # the mask comes last): it does not wait for the mask.
                w = res[f].word
                m.d.comb += pooled[f].eq(live[f].replicate(t_max)
                                         & Mux(win0, w, Mux(lif, old | w,
                                                            Mux(old > w, old, w))))
            with m.If(self.i.valid):
                with m.Switch(g):
                    for gg in range(groups):
                        with m.Case(gg):
                            m.d.sync += [best[gg][f].eq(pooled[f]) for f in range(units)]
        else:
            m.d.comb += [pooled[f].eq(words[f]) for f in range(units)]

        # Spike count: the live words (or the firing array's counts) registered, counted the next
        # cycle, added up the next, accumulated the next: no pop count sits behind the pooling
        # compare. ``spikes`` holds a pass's last group the cycle ``passes`` counts it.
        cnt_word = [Signal(t_max, name=f"cnt_word{f}") for f in range(units)]
        cnt_spk = [Signal(range(t_max + 1), name=f"cnt_spk{f}") for f in range(units)]
        counts = [Signal(range(t_max + 1), name=f"count{f}") for f in range(units)]
        group_spikes = Signal(range(units * t_max + 1))
        pass_done = Signal(3)  # the end of a pass, moving with its counts
        m.d.sync += [pass_done.eq(pass_done << 1), group_spikes.eq(sum(counts))]
        for f in range(units):
            take = self.i.valid & live[f] & emit
            m.d.sync += [cnt_word[f].eq(Mux(take, pooled[f], 0)),
                         cnt_spk[f].eq(Mux(take, res[f].spikes, 0))]
            pop = sum(cnt_word[f][q] for q in range(t_max))
            m.d.sync += counts[f].eq(Mux(pooling, pop, cnt_spk[f]))
        m.d.sync += self.spikes.eq(self.spikes + group_spikes)
        with m.If(pass_done[2]):
            m.d.sync += self.passes.eq(self.passes + 1)

        # Output rows (final layer): the packed words, or the membranes of a readout.
        for f in range(units):
            value = Signal(32, name=f"out{f}")
            with m.If(self.readout):
                m.d.comb += value.eq(Mux(live[f], res[f].v, 0))
            with m.Else():
                m.d.comb += value.eq(words[f])
            m.d.comb += out_data[32 * f:32 * (f + 1)].eq(value)
        m.d.comb += out_addr.eq(out_ptr)

        # Spike blocks (hidden layer): group ``j`` of a block fills bits ``q*k + j*units + f``.
        planes = [Cat(*(pooled[f][q] for f in range(units))) for q in range(t_max)]
        block = []
        for q in range(t_max):
            for jj in range(per_block):
                if jj == per_block - 1:
                    block.append(planes[q])
                else:
                    block.append(blk[q * k + jj * units:q * k + (jj + 1) * units])
        m.d.comb += [act_addr.eq(act_ptr), act_data.eq(Cat(*block))]

        # Whether the block being gathered holds a live neuron (its first group's first one).
        blk_live = Signal()
        alive = Signal()
        m.d.comb += alive.eq(Mux(j == 0, live[0], blk_live))

        def load_pass(mask):  # a pass starts: its mask, its first group
            return [rest.eq(mask), *(live[f].eq(mask[f]) for f in range(units))]

        with m.If(self.i.valid):
            m.d.sync += [g.eq(g + 1), g_last.eq(g == groups - 2 if groups > 1 else 1),
                         rest.eq(rest >> units),
                         *(live[f].eq(rest[units + f] if groups > 1 else 0)
                           for f in range(units))]
            with m.If(g_last):
                m.d.sync += [g.eq(0), pass_done[0].eq(1)]

                def next_pass():  # the window's last conv position done: the next pass
                    with m.If(in_last):  # the position's last pass: next position
                        m.d.sync += [pas_left.eq(last_pas), in_last.eq(one_pass),
                                     pen.eq(two_pass), *load_pass(first_mask)]
                    with m.Else():
                        m.d.sync += [pas_left.eq(pas_left - 1), in_last.eq(pen), pen.eq(pen2),
                                     *load_pass(Mux(pen, tail, ones))]

                if p.conv:
                    with m.If(~emit):  # the same pass at the window's next conv position
                        m.d.sync += [win_left.eq(win_left - 1), emit.eq(win_left == 1),
                                     win0.eq(0), *load_pass(Mux(in_last, tail, ones))]
                    with m.Else():
                        m.d.sync += [win_left.eq(last_win), emit.eq(~pooling), win0.eq(1)]
                        next_pass()
                else:
                    next_pass()
            with m.If(self.final):
                m.d.comb += out_en.eq(1)
                m.d.sync += out_ptr.eq(out_ptr + 1)
            with m.Elif(j == per_block - 1):
                m.d.comb += act_en.eq(alive & emit)
                m.d.sync += j.eq(0)
                with m.If(alive & emit):
                    m.d.sync += act_ptr.eq(act_ptr + 1)
            with m.Else():
                m.d.sync += j.eq(j + 1)
                with m.If(j == 0):
                    m.d.sync += blk_live.eq(live[0])
                with m.Switch(j):
                    for jj in range(per_block - 1):
                        with m.Case(jj):
                            for q in range(t_max):
                                lo = q * k + jj * units
                                m.d.sync += blk[lo:lo + units].eq(planes[q])

        with m.If(self.clear):
            m.d.sync += [
                self.passes.eq(0), self.spikes.eq(0), g.eq(0), j.eq(0),
                g_last.eq(groups == 1), pas_left.eq(last_pas), in_last.eq(one_pass),
                pen.eq(two_pass), *load_pass(first_mask),
                act_ptr.eq(self.dst_base), out_ptr.eq(self.out_base >> exact_log2(units)),
                group_spikes.eq(0), pass_done.eq(0), *(c.eq(0) for c in counts),
                *(c.eq(0) for c in cnt_word), *(c.eq(0) for c in cnt_spk),
            ]
            if p.conv:
                m.d.sync += [win_left.eq(last_win), emit.eq(~pooling), win0.eq(1)]
        return m
