"""Layer sequencer: runs a batch through the program of layer descriptors, keeps the counters.

For each sample ``b`` of the batch and each layer ``l`` (until the descriptor with ``last``): read
descriptor ``l`` word by word (8 cycles; a conv layer's geometry words 6 and 7 take 2 more), check
it and the batch size (2 cycles), start the fetcher and clear the per-layer counters of the
datapath, wait until the fetcher has issued every pass (every output position's, for a conv
layer) and the writer has stored them all, then add the layer's cycles, output spikes and
skipped zero plane-chunks into the counters of layer ``l`` (5 cycles). Layer 0 reads the
sample's input blocks (sample ``b``'s ``b * in_stride`` blocks into INPUT, ``in_stride`` from
layer 0's descriptor); layer ``l`` writes ping-pong half ``l % 2`` of the spike memory (a conv
layer: at its descriptor's ``out_base``) and layer ``l + 1`` reads it; the last layer writes the
sample's output words (sample ``b``'s ``b * passes * n_pe`` words into OUTPUT, ``passes`` the
last layer's; a last conv layer, a row, writes ``conv_w n_pe`` words in a batch of one).

Refused (the run ends with an error code): a kind other than dense and conv, a conv readout that
is not the last layer, a last conv layer that is not a row of one pass per position (output
height 1, one pass: ``BAD_KIND``); a conv layer with a zero size, kernel or stride, or no pooled
position (``BAD_SIZE``); a batch whose samples' inputs or outputs overrun INPUT or OUTPUT
(``BAD_BATCH``, at the first sample that does not fit: the host's compiler refuses such a batch
before it is sent; a program whose last layer is a conv row runs in a batch of one sample, and
its ``conv_w n_pe`` words must fit OUTPUT). ``NO_CONV_OP`` is not raised any more (conv layers
with max pooling and a shortcut both run); the code stays reserved for a conv operation a later
descriptor may name.
A conv layer's shortcut from the network input reads the sample's INPUT slot
(:attr:`sample_base`).

The per-layer counters live in a small memory owned by this block (``4`` words per layer:
cycles, spikes, skipped, 0); the bus reads it through :attr:`counters`, which waits while the
sequencer itself uses the memory. Layers not run since the last start read as 0.

Layer overhead: 17 cycles of sequencing plus the pipeline fill/drain of the datapath.

With ``seq_prefetch`` (:class:`hw.contract.params.CoreParams`) the next layer's descriptor is
read into a second register (``next_desc``) and checked while a layer runs (from the layer's
CHECK: ready 10 cycles after its START, 12 for a conv layer), the finished layer's counts are
kept in registers and added into the counter memory beside the next layer, and the next layer
starts two cycles after the end is seen (SETTLE, CHECK): 2 cycles of sequencing between layers
instead of 16 (18 before a conv layer). The run's first layer is read the same way but taken as
soon as its last word is in (11 cycles before its START, one more than without the prefetch),
the run's last keeps its counter update (:attr:`ACC_CYCLES`). A layer's
``cycles`` counter then runs from the cycle after the layer before ended (the run's start) to
the cycle its end is seen (plus the counter update for the run's last layer).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hw.contract.errors import ErrorCode
from hw.contract.memory_map import COUNTER_WORDS_PER_LAYER, DESCRIPTOR_WORDS, descriptor_layout
from hw.contract.params import CoreParams

from .layer_counts import layer_passes_bits

__all__ = ["ErrorCode", "Sequencer", "counter_read_signature", "DESCRIPTOR_WORDS_READ"]

#: Descriptor words the sequencer reads (words 6 and 7, the conv geometry, only for a conv layer).
DESCRIPTOR_WORDS_READ = 8
#: Descriptor words of a dense layer (the rest are 0).
DENSE_WORDS_READ = 6


def counter_read_signature(max_layers: int) -> wiring.Signature:
    """Reading the counters (seen from the sequencer): ``addr`` is read in a cycle with
    ``grant``; two cycles later ``data`` holds the memory word (registered as it came from the
    memory) and ``keep`` says whether it counts (else the counter reads as 0)."""
    return wiring.Signature({
        "addr": In(range(COUNTER_WORDS_PER_LAYER * max_layers)),
        "grant": Out(1),
        "data": Out(32),
        "keep": Out(1),
    })


class Sequencer(wiring.Component):
    """Batch and layer control of :class:`hw.core.core.SpikePackCore`.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    start : In(1)
        Pulse: run ``batch`` samples (ignored while busy).
    batch : In(16)
    desc_addr, desc_en : Out
        Descriptor memory read port (32-bit words): ``desc_en`` marks the cycles the sequencer
        uses it (the bus may use it in the others).
    desc_data : In(32)
        The word read, *registered*: two cycles after its address (block RAM outputs are slow;
        the core registers them before anything else).
    layer : Out(descriptor_layout())
        The current layer's descriptor (held during the layer).
    src_base, dst_base, out_base, fetch_start, clear : Out
        Per-layer datapath set-up (spike-memory blocks read and written, output word);
        ``fetch_start``/``clear`` pulse at layer start.
    sample_base : Out(range(spike_rows))
        First block of the running sample's INPUT slot (a shortcut from the network input).
    passes_done, spikes, skipped : In
        Writer pass count, writer spike count, fetcher skip count of the running layer.
    fetch_busy, issued : In
        The fetcher is walking; the passes it has issued (the layer is done when it is not
        walking and the writer has stored every pass it issued).
    busy, done, error, error_code : Out
        Status (``done``/``error`` hold until the next start).
    total_cycles : Out(32)
        Cycles of the last run.
    counters : Out(counter_read_signature(max_layers))
        Per layer ``l``: word ``4 l`` cycles, ``4 l + 1`` spikes, ``4 l + 2`` skipped, summed over
        the batch.
    """

    #: Cycles of a layer's counter update (ACC: ``cnt_sel`` 0..4). Without ``seq_prefetch``
    #: every layer's follow the cycle its end is seen; with it only the run's last layer's
    #: (until ``busy`` falls), the others' run beside the next layer. They count to the layer.
    ACC_CYCLES = 5

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = p = params
        super().__init__({
            "start": In(1),
            "batch": In(16),
            "desc_addr": Out(range(DESCRIPTOR_WORDS * p.max_layers)),
            "desc_en": Out(1),
            "desc_data": In(32),
            "layer": Out(descriptor_layout()),
            "src_base": Out(range(p.spike_rows)),
            "sample_base": Out(range(p.spike_rows)),
            "dst_base": Out(range(2 * p.act_chunks)),
            "out_base": Out(range(p.output_words)),
            "fetch_start": Out(1),
            "clear": Out(1),
            "passes_done": In(layer_passes_bits(p)),
            "fetch_busy": In(1),
            "issued": In(layer_passes_bits(p)),
            "spikes": In(32),
            "skipped": In(32),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(8),
            "total_cycles": Out(32),
            "counters": Out(counter_read_signature(p.max_layers)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lyr = Signal(range(p.max_layers))
        sample = Signal(range(p.batch_depth))
        batch = Signal(range(p.batch_depth + 1))  # (meaningless when bad_batch: the run fails)
        bad_batch = Signal()  # the start's batch is 0 or above batch_depth (acted on in CHECK)
        # One past the region's end is a value they take (after a sample that fills it): one
        # bit more than the ports, so the next sample's check sees it rather than a wrap to 0.
        # A build of one sample a batch (the iCEBreaker's) keeps them constant: no adders.
        multi = p.batch_depth > 1
        in_base = Signal(range(p.spike_rows + 1), init=p.input_base) if multi else p.input_base
        out_base = Signal(range(p.output_words + 1)) if multi else 0
        m.d.comb += self.out_base.eq(out_base)
        # Layer 0's in_stride (blocks of one sample's input; more than INPUT holds is refused).
        in_step = Signal(range(p.input_blocks + 1))
        pe_bits = p.n_pe.bit_length() - 1
        layer_cycles = Signal(32)
        d = self.layer

        m.d.comb += [self.dst_base.eq(lyr[0] * p.act_chunks), self.sample_base.eq(in_base)]
        with m.If(lyr == 0):
            m.d.comb += self.src_base.eq(in_base)
        with m.Else():
            m.d.comb += self.src_base.eq((~lyr[0]) * p.act_chunks)

        with m.If(self.busy):
            m.d.sync += [self.total_cycles.eq(self.total_cycles + 1),
                         layer_cycles.eq(layer_cycles + 1)]

        # --- counter memory: one read port shared with the bus, the sequencer first ----------
        m.submodules.cnt_mem = cnt_mem = memory.Memory(
            shape=32, depth=COUNTER_WORDS_PER_LAYER * p.max_layers, init=[])
        cnt_wr = cnt_mem.write_port()
        cnt_rd = cnt_mem.read_port()
        ran = Signal(p.max_layers)  # layers whose counters this run has written
        cnt_use = Signal()  # the sequencer reads the counters this cycle
        cnt_sel = Signal(3)  # step of the counter update (ACC)
        # The layer whose counters are updated: the running one, or (prefetching) the one that
        # just ended, while the next runs.
        acc_lyr = Signal(range(p.max_layers)) if p.seq_prefetch else lyr
        bus_ran = Signal()
        bus_zero = Signal()
        bus_layer = self.counters.addr >> 2
        with m.If(cnt_use):
            m.d.comb += cnt_rd.addr.eq(Cat(cnt_sel[:2], acc_lyr))
        with m.Else():
            m.d.comb += [cnt_rd.addr.eq(self.counters.addr), self.counters.grant.eq(1)]
        # The write port is driven from registers (the sum lands a cycle after it is made): a
        # block RAM's inputs come from registers, never through logic.
        cnt_wr_addr = Signal.like(cnt_wr.addr, reset_less=True)
        cnt_wr_data = Signal(32, reset_less=True)
        cnt_wr_en = Signal()
        m.d.sync += cnt_wr_en.eq(0)
        m.d.comb += [cnt_wr.addr.eq(cnt_wr_addr), cnt_wr.data.eq(cnt_wr_data),
                     cnt_wr.en.eq(cnt_wr_en)]
        # The counter memory's output, registered (block RAM outputs are slow); no reset, so the
        # ECP5 flow can make it the block RAM's output register (hw.build.ecp5_outreg).
        old = Signal(32, reset_less=True)
        bus_keep = Signal()
        m.d.sync += [bus_ran.eq(ran.bit_select(bus_layer, 1)),
                     bus_zero.eq(self.counters.addr[:2] == COUNTER_WORDS_PER_LAYER - 1),
                     bus_keep.eq(bus_ran & ~bus_zero), old.eq(cnt_rd.data)]
        m.d.comb += [self.counters.data.eq(old), self.counters.keep.eq(bus_keep)]

        def fail(code):
            m.d.sync += [self.busy.eq(0), self.error.eq(1), self.error_code.eq(code)]
            m.next = "IDLE"

        # Every output the datapath or the core's memory ports see is a register (the state
        # register's decode would otherwise fan out across the chip): the pulses of START are
        # set in CHECK, the descriptor memory's enable a cycle ahead of the word it reads.
        m.d.sync += [self.fetch_start.eq(0), self.clear.eq(0), self.desc_en.eq(0)]
        # The end of ACC and where it goes, registered a cycle ahead (cnt_sel = 3), so the
        # enables of ``lyr``, ``word`` and the state register hang on a register each.
        acc_end, to_idle, to_sample, no_last = Signal(), Signal(), Signal(), Signal()
        m.d.sync += acc_end.eq(0)

        # A dense-only build (conv=0) reads 6 words of every layer (words 6, 7 stay 0).
        words_read = DESCRIPTOR_WORDS_READ if p.conv else DENSE_WORDS_READ
        word = Signal(range(DESCRIPTOR_WORDS_READ + 2))
        # The descriptor read: the running layer's, or (prefetching) the next layer's.
        read_lyr = Signal(range(p.max_layers), name="next_lyr") if p.seq_prefetch else lyr
        m.d.comb += self.desc_addr.eq(Cat(word[:3], read_lyr))
        add_value = Signal(32)
        old_keep = Signal()
        # The checks of a layer, judged in VERDICT (bad_batch at the start), acted on in CHECK.
        bad_kind, bad_t, no_lif = Signal(), Signal(), Signal(name="no_lif")
        bad_io = Signal()  # bad_batch, or this sample's input or outputs do not fit their region
        bad_size = Signal(7)  # chunks, passes, n_out (2), bias/theta rows, in_stride, conv geometry
        last_sample = Signal()
        # The layer's end, registered: the walk over and every pass it issued stored. The wide
        # compare stays off the state register's path (WAIT sees it a cycle later).
        all_stored = Signal()
        m.d.sync += all_stored.eq(~self.fetch_busy & (self.passes_done == self.issued))

        def load(desc):
            """A cycle of reading the descriptor into ``desc``: address word ``word`` (while
            there are words left); word ``word - 2`` arrives (registered) and goes into
            ``desc``. Returns the last cycle's condition (a dense layer stops after its 6 words:
            kind arrived with word 0)."""
            # (``desc_en`` in the cycle of ``word`` is ``word < words_read``.)
            m.d.sync += [word.eq(word + 1), self.desc_en.eq(word < words_read - 1)]
            with m.Switch(word):
                for w in range(2, words_read + 2):
                    with m.Case(w):
                        m.d.sync += desc.as_value()[32 * (w - 2):32 * (w - 1)].eq(self.desc_data)
                        if w == 2:  # a dense layer's geometry words read as 0
                            m.d.sync += desc.as_value()[32 * DENSE_WORDS_READ:].eq(0)
            return (((word == DENSE_WORDS_READ + 1) & (desc.kind == 0))
                    | (word == words_read + 1))

        def verdict(desc, at_lyr, at_in_base, at_out_base, at_sample):
            """The checks of descriptor ``desc`` for layer ``at_lyr`` of the sample numbered
            ``at_sample`` whose input starts at block ``at_in_base`` and outputs at word
            ``at_out_base``, each registered on its own; CHECK picks the error."""
            covered = desc.passes << (p.n_pe.bit_length() - 1)  # neurons the passes hold
            conv = desc.kind == 1
            big_stride = desc.in_stride > p.input_blocks
            # A conv layer may end the program as a row of positions: one pass per position and
            # an output height of 1 (so no pooling: BAD_SIZE; a batch of dense samples run as
            # one map, ``sw.compile.batch_map``); its outputs are then ``conv_w`` positions of
            # ``n_pe`` words, in the layout of as many samples of one pass. It runs in a batch
            # of one sample (its OUTPUT slot is ``conv_w n_pe`` words). (A shortcut would only
            # read; the compiler refuses one there.)
            row_end = (desc.passes == 1) & (desc.conv_h == 1)
            m.d.sync += [
                bad_kind.eq((desc.kind > p.conv)
                            | (conv & ((desc.readout & ~desc.last) | (desc.last & ~row_end)))),
                bad_t.eq((desc.T == 0) | (desc.T > p.t_max)),
                no_lif.eq(desc.lif & (p.lif == 0)),
                bad_size.eq(Cat(
                    (desc.chunks == 0) | (desc.chunks > p.act_chunks),
                    (desc.passes == 0) | (desc.passes > p.max_passes),
                    desc.n_out > covered, desc.n_out + p.n_pe <= covered,
                    desc.bt_base + desc.passes > p.bt_rows,
                    (at_lyr == 0) & (desc.in_stride == 0),
                    conv & ((desc.in_h == 0) | (desc.in_w == 0) | (desc.kh == 0)
                            | (desc.kw == 0) | (desc.stride == 0)
                            | ((desc.conv_h >> desc.pool_log2) == 0)
                            | ((desc.conv_w >> desc.pool_log2) == 0)))),
                last_sample.eq(at_sample + 1 == batch),
                # The sample's input (layer 0) and outputs (last layer) inside INPUT and
                # OUTPUT: the batch is too large for this network's sample size (or the
                # start's batch size is out of range: the same error code).
                bad_io.eq(bad_batch
                          | ((at_lyr == 0) & (big_stride | (at_in_base
                                                            + desc.in_stride[:len(in_step)]
                                                            > p.spike_rows)))
                          | (desc.last & (at_out_base + (desc.passes << pe_bits)
                                          > p.output_words))
                          | (desc.last & conv & ((batch != 1)
                                                 | (desc.conv_w > p.output_words >> pe_bits)))),
            ]

        failed = bad_io | bad_kind | bad_t | no_lif | bad_size.any()
        fail_code = Mux(bad_io, ErrorCode.BAD_BATCH,
                        Mux(bad_kind, ErrorCode.BAD_KIND,
                            Mux(bad_t, ErrorCode.BAD_T,
                                Mux(no_lif, ErrorCode.NO_LIF, ErrorCode.BAD_SIZE))))

        def acc_step(values):
            """A cycle of the counter update of layer ``acc_lyr``: counter c (0 cycles, 1 spikes,
            2 skipped, ``values``) read at cnt_sel = c, its value chosen at c + 1 (old word
            registered), the sum made at c + 2 and written the cycle after."""
            m.d.sync += [cnt_sel.eq(cnt_sel + 1), old_keep.eq(ran.bit_select(acc_lyr, 1))]
            with m.Switch(cnt_sel):
                for c, value in enumerate(values):
                    with m.Case(c + 1):
                        m.d.sync += add_value.eq(value)
            m.d.sync += [cnt_wr_addr.eq(Cat((cnt_sel - 2)[:2], acc_lyr)),
                         cnt_wr_data.eq(Mux(old_keep, old, 0) + add_value),
                         cnt_wr_en.eq(cnt_sel >= 2),
                         acc_end.eq(cnt_sel == 3)]  # high at cnt_sel = 4

        if p.seq_prefetch:
            # --- the next layer's descriptor, read and checked while a layer runs ------------
            nd = Signal(descriptor_layout(), name="next_desc")
            n_sample = Signal(range(p.batch_depth), name="next_sample")
            n_in_base = Signal.like(in_base, name="next_in_base") if multi else p.input_base
            n_out_base = Signal.like(out_base, name="next_out_base") if multi else 0
            loading = Signal()  # the next descriptor's words are read (``word`` counts them)
            judging = Signal()  # its checks are made (VERDICT)
            picking = Signal()  # its error is picked (CHECK)
            ready = Signal()  # ``next_desc`` and its verdict (``bad``, ``code``) are complete
            bad = Signal()
            code = Signal(8)
            with m.If(loading):
                with m.If(load(nd)):
                    m.d.sync += [loading.eq(0), judging.eq(1)]
            with m.If(judging):
                verdict(nd, read_lyr, n_in_base, n_out_base, n_sample)
                m.d.sync += [judging.eq(0), picking.eq(1)]
            with m.If(picking):
                m.d.sync += [bad.eq(failed), code.eq(fail_code), picking.eq(0), ready.eq(1)]

            # --- the counter update of the layer that ended, beside the next layer -----------
            acc_busy = Signal()
            acc_cycles = Signal(32)
            acc_spikes = Signal.like(self.spikes)
            acc_skipped = Signal.like(self.skipped)
            with m.If(acc_busy):
                m.d.comb += cnt_use.eq(cnt_sel < 3)
                acc_step([acc_cycles, acc_spikes, acc_skipped])
                with m.If(acc_end):
                    m.d.sync += [ran.bit_select(acc_lyr, 1).eq(1), acc_busy.eq(0)]

            def prefetch(lyr_v, sample_v, in_base_v, out_base_v):
                m.d.sync += [read_lyr.eq(lyr_v), n_sample.eq(sample_v), loading.eq(1),
                             ready.eq(0), word.eq(0), self.desc_en.eq(1)]
                if multi:
                    m.d.sync += [n_in_base.eq(in_base_v), n_out_base.eq(out_base_v)]

            def adopt():
                """The read layer becomes the running one."""
                m.d.sync += [d.eq(nd), lyr.eq(read_lyr), sample.eq(n_sample), ready.eq(0)]
                if multi:
                    m.d.sync += [in_base.eq(n_in_base), out_base.eq(n_out_base)]
                with m.If(read_lyr == 0):
                    m.d.sync += in_step.eq(nd.in_stride)

            def take():
                """The next layer becomes the running one (or the run fails on its checks)."""
                with m.If(bad):
                    fail(code)
                with m.Else():
                    adopt()
                    m.next = "SETTLE"

            def finish(tail):
                """The running layer has ended: its counts kept for its counter update (the
                layer's cycles are this one and ``tail`` more)."""
                m.d.sync += [acc_busy.eq(1), cnt_sel.eq(0), acc_lyr.eq(lyr), layer_cycles.eq(0),
                             acc_cycles.eq(layer_cycles + 1 + tail),
                             acc_spikes.eq(self.spikes), acc_skipped.eq(self.skipped)]

            # The run ends after the running layer (the last of the last sample), or fails
            # there (no descriptor marked last): registered in CHECK.
            ends, ends_bad = Signal(), Signal()
            with m.FSM():
                with m.State("IDLE"):
                    with m.If(self.start):
                        m.d.sync += [self.done.eq(0), self.error.eq(0), self.error_code.eq(0),
                                     self.total_cycles.eq(0), ran.eq(0),
                                     bad_batch.eq((self.batch == 0)
                                                  | (self.batch > p.batch_depth)),
                                     self.busy.eq(1), batch.eq(self.batch),
                                     layer_cycles.eq(0)]
                        prefetch(0, 0, p.input_base, 0)
                        m.next = "FIRST"
                with m.State("FIRST"):
                    # The run's first layer: taken as soon as its descriptor is complete (its
                    # checks are made in this cycle), not after its error is picked.
                    with m.If(judging):
                        adopt()
                        m.d.sync += picking.eq(0)
                        m.next = "CHECK_FIRST"
                with m.State("CHECK_FIRST"):
                    # (the blocks' copies of the descriptor are made in this cycle)
                    with m.If(failed):
                        fail(fail_code)
                    with m.Else():
                        m.next = "CHECK"

                with m.State("SETTLE"):
                    # A later layer's descriptor is in ``d``; the blocks' copies of it are made
                    # (they hold it from CHECK on, a cycle before START, as the blocks require).
                    m.next = "CHECK"
                with m.State("CHECK"):
                    # The layer starts (the pulses are high in START) and the next layer's read
                    # starts, unless the run ends after this layer.
                    run_ends = d.last & last_sample
                    layers_end = ~d.last & (lyr == p.max_layers - 1)
                    m.d.sync += [self.fetch_start.eq(1), self.clear.eq(1),
                                 ends.eq(run_ends), ends_bad.eq(layers_end)]
                    with m.If(~run_ends & ~layers_end):
                        prefetch(Mux(d.last, 0, lyr + 1), sample + d.last,
                                 Mux(d.last, in_base + in_step, in_base),
                                 Mux(d.last, out_base + (d.passes << pe_bits), out_base))
                    m.next = "START"
                with m.State("START"):
                    m.d.sync += all_stored.eq(0)  # the counters of the layer before are stale
                    m.next = "WAIT"
                with m.State("WAIT"):
                    with m.If(all_stored & ~acc_busy):
                        with m.If(ends | ends_bad):
                            finish(self.ACC_CYCLES)
                            m.next = "FINAL"
                        with m.Elif(ready):
                            finish(0)
                            take()
                with m.State("FINAL"):
                    with m.If(acc_end):
                        with m.If(ends_bad):
                            fail(ErrorCode.NO_LAST)
                        with m.Else():
                            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                            m.next = "IDLE"
            return m

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    # The batch size is acted on with layer 0's descriptor (CHECK), not here:
                    # no compare sits in front of the enables of the run's registers.
                    m.d.sync += [self.done.eq(0), self.error.eq(0), self.error_code.eq(0),
                                 self.total_cycles.eq(0), ran.eq(0),
                                 bad_batch.eq((self.batch == 0) | (self.batch > p.batch_depth)),
                                 self.busy.eq(1), batch.eq(self.batch), sample.eq(0),
                                 lyr.eq(0), layer_cycles.eq(0), word.eq(0), self.desc_en.eq(1)]
                    if multi:
                        m.d.sync += [in_base.eq(p.input_base), out_base.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(load(d)):
                    m.next = "VERDICT"
            with m.State("VERDICT"):
                verdict(d, lyr, in_base, out_base, sample)
                with m.If(lyr == 0):
                    m.d.sync += in_step.eq(d.in_stride)
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(failed):
                    fail(fail_code)
                with m.Else():
                    m.d.sync += [self.fetch_start.eq(1), self.clear.eq(1)]
                    m.next = "START"
            with m.State("START"):
                # (fetch_start and clear are high in this cycle: set in CHECK)
                m.d.sync += all_stored.eq(0)  # the counters of the layer before are stale
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(all_stored):
                    m.d.sync += cnt_sel.eq(0)
                    m.next = "ACC"
            with m.State("ACC"):
                m.d.comb += cnt_use.eq(cnt_sel < 3)
                # (read at cnt_sel = 1) This cycle and the ones after it belong to the layer too.
                acc_step([layer_cycles + (self.ACC_CYCLES - 1), self.spikes, self.skipped])
                m.d.sync += [to_idle.eq(d.last & last_sample),
                             to_sample.eq(d.last & ~last_sample),
                             no_last.eq(~d.last & (lyr == p.max_layers - 1))]
                with m.If(acc_end):
                    m.d.sync += [ran.bit_select(lyr, 1).eq(1), layer_cycles.eq(0), word.eq(0)]
                    with m.If(to_idle):
                        m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Elif(to_sample):
                        m.d.sync += [sample.eq(sample + 1), lyr.eq(0), self.desc_en.eq(1)]
                        if multi:
                            m.d.sync += [in_base.eq(in_base + in_step),
                                         out_base.eq(out_base + (d.passes << pe_bits))]
                        m.next = "LOAD"
                    with m.Elif(no_last):
                        fail(ErrorCode.NO_LAST)
                    with m.Else():
                        m.d.sync += [lyr.eq(lyr + 1), self.desc_en.eq(1)]
                        m.next = "LOAD"
        return m
