"""The SpikePack core: PE array, memories, sequencer and the bus slave, behind ``hw.contract.bus``.

Bus contract (``bus: In(BusSignature)`` of ``hw.contract.bus``; the UART host link drives it)
----------------------------------------------------------------------------------------------
* ``bus.req`` is a ``lib.stream`` of :data:`hw.contract.bus.BusRequest` (``addr`` 24-bit *word*
  address, ``data`` 32 bits, ``write``). Writes are not answered. Each read is answered by exactly
  one 32-bit word on ``bus.resp``, in request order. Both directions may stall: the core holds
  ``req.ready`` low while a read waits for its answer to be handed over. ``req.ready`` depends on
  the core's registers only (never on ``resp.ready`` or ``req.valid``), so no handshake path
  runs from the master through the core and back.
* Throughput: one write per cycle (a request is registered before it is decoded); one read per
  6 cycles (plus the master's ``resp`` stalls, and a cycle or two while the sequencer updates its
  counters). INPUT writes wait while the core is busy.
* Fixed map (``hw.contract.bus``): identify block at ``ID_BASE``
  (:func:`hw.contract.memory_map.identify_words`), ``REG_CONTROL`` (write: bit 0 start, bit 1 abort,
  bits 16..31 batch size; reads 0) and ``REG_STATUS`` (read: bit 0 busy, bit 1 done, bit 2 error,
  bits 8..15 :class:`hw.contract.errors.ErrorCode`). Build-dependent regions:
  :func:`hw.contract.memory_map.memory_map`. Unmapped and write-only addresses read as 0; writes to
  read-only addresses are ignored.
* Run: load PROGRAM/WEIGHTS/BIAS/THETA (``sw.compile.program_image``), write a batch to INPUT, write
  ``REG_CONTROL = batch << 16 | 1``, poll ``REG_STATUS`` until ``done`` (or ``error``), read
  OUTPUT and COUNTERS. A start while busy is ignored; abort stops at once (datapath reset;
  memories keep their contents) and leaves busy, done and error at 0. The host must not write
  INPUT, WEIGHTS, BIAS, THETA or PROGRAM while busy; OUTPUT and COUNTERS read while busy are
  undefined (synthesis may leave those memories' read/write collisions undefined:
  :mod:`hw.common.synth_hints`).

Datapath: fetcher (spike blocks + weight rows) -> plane issuer (zero-skipping) -> PE array
(adder trees, per-plane accumulators) -> firing array (Horner, bias, serial firing / LIF) ->
writer (ping-pong activation memory or output memory). See docs/architecture.md.
"""

from types import SimpleNamespace

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    Mux,
    ResetInserter,
    Signal,
)
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In
from amaranth.utils import exact_log2

from hw.common.skid_buffer import SkidBuffer
from hw.common.stream_queue import StreamQueue
from hw.common.synth_hints import COPY_ATTRS
from hw.contract import bus
from hw.contract.memory_map import (
    COUNTER_WORDS_PER_LAYER,
    DESCRIPTOR_WORDS,
    ID_WORDS,
    identify_words,
    memory_map,
)
from hw.contract.params import CoreParams
from hw.contract.registers import (
    CONTROL_ABORT_BIT,
    CONTROL_BATCH_SHIFT,
    CONTROL_START_BIT,
    STATUS_CODE_SHIFT,
)

from .fetcher import Fetcher, block_beat_layout, spike_bank_rows, spike_banks
from .fire_array import FireArray
from .issuer import PlaneIssuer
from .pe import beat_layout
from .pe_array import PEArray
from .sequencer import Sequencer
from .writer import Writer

__all__ = ["SpikePackCore"]


class SpikePackCore(wiring.Component):
    """A SpikePack SNN accelerator core with a word-addressed stream bus.

    Parameters
    ----------
    params : CoreParams
        Build parameters (see :mod:`hw.contract.params`).

    Members
    -------
    bus : In(hw.contract.bus.BusSignature)
        Requests in, read answers out (see the module docstring).
    """

    bus: In(bus.BusSignature)

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        self._map = memory_map(params)
        super().__init__()

    @property
    def params(self) -> CoreParams:
        return self._params

    @property
    def memory_map(self):
        return self._map

    def elaborate(self, platform):
        m = Module()
        p, mm = self._params, self._map
        abort = Signal()

        # --- datapath ------------------------------------------------------------------------
        blocks = {
            "seq": Sequencer(p), "fetch": Fetcher(p, walk_ready=bool(p.conv)),
            "issue": PlaneIssuer(p),
            "pes": PEArray(p.n_pe, p.k, p.t_max, p.sum_bits, p.weight_bits, p.weight_depth,
                           weight_regs=p.weight_regs, shortcut=bool(p.conv),
                           planes=p.planes_per_beat, read_pairs=p.fire_planes == 2,
                           bank_passes=p.bank_passes,
                           control_copies=bool(p.pe_control_copies)),
            "fire": FireArray(p.n_pe, p.t_max, p.sum_bits, p.acc_bits, p.fire_units,
                              p.bt_mem_rows, lif=bool(p.lif), pool=bool(p.conv),
                              planes=p.fire_planes, out_reg=bool(p.fire_out_reg),
                              leak_mul=bool(p.fire_leak_mul)),
            "writer": Writer(p),
            # Between the issuer and the PE array, so the issuer's (and the fetcher's) handshake
            # does not wait on the array's, which sits across the chip.
            "skid": SkidBuffer(beat_layout(p.k, p.t_max, p.weight_depth, p.chunks_per_pass,
                                           p.planes_per_beat)),
            # Between the fetcher and the issuer, so the fetcher's memory enables do not wait on
            # the issuer's plane selection; with ``fetch_queue`` a queue, so the walk runs ahead
            # of the issuer (over the blocks it drops) instead of waiting on it.
            **({"fetch_queue": StreamQueue(block_beat_layout(p), p.fetch_queue,
                                           two_out=bool(p.pe_control_copies))}
               if p.fetch_queue else
               {"fetch_skid": SkidBuffer(block_beat_layout(p), ready_copies=1 if p.conv else 0)}),
        }
        # An abort resets the datapath. A conv build (a large chip at 100 MHz) gives every block
        # its own register of it (kept apart by synthesis) and its own clock domain, on the
        # core's clock, whose reset is that register alone: the domain's reset sets the
        # register (init 1), so it reaches the block a cycle later, from a flip-flop near it,
        # and no net carries the domain's reset to every flip-flop of the datapath (on the
        # ULX3S that net, with the abort ORed in, was the critical path of some placements).
        # A dense-only build has one abort, ORed into the domain's reset.
        aborts = {name: (Signal(name=f"abort_{name}", init=1, attrs=COPY_ATTRS) if p.conv
                         else abort) for name in blocks}
        for name, block in blocks.items():
            if p.conv:
                cd = ClockDomain(f"dp_{name}", local=True)
                m.domains += cd
                m.d.comb += [cd.clk.eq(ClockSignal("sync")), cd.rst.eq(aborts[name])]
                m.submodules[name] = DomainRenamer({"sync": cd.name})(block)
            else:
                m.submodules[name] = ResetInserter(abort)(block)
        seq, fetch, issue, pes, fire, writer, skid, fetch_skid = blocks.values()
        d = seq.layer
        wiring.connect(m, fetch.o, fetch_skid.i)
        if fetch.credits:  # the walk steps on credits: a block leaving the queue returns one
            m.d.comb += fetch.queue_pop.eq(fetch_skid.o.valid & fetch_skid.o.ready)
        elif p.conv:  # the conv walk reads its own copy of the skid buffer's ready
            m.d.comb += fetch.o_ready_walk.eq(fetch_skid.ready_copy[0])
        wiring.connect(m, fetch_skid.o, issue.i)
        wiring.connect(m, issue.o, skid.i)
        wiring.connect(m, skid.o, pes.i)
        wiring.connect(m, pes.bank, fire.bank)
        wiring.connect(m, fire.o, writer.i)

        # --- memories ------------------------------------------------------------------------
        m.submodules.desc_mem = desc_mem = memory.Memory(
            shape=32, depth=DESCRIPTOR_WORDS * p.max_layers, init=[])
        m.submodules.w_mem = w_mem = memory.Memory(
            shape=p.weight_row_bits, depth=p.weight_depth, init=[])
        # Biases (lanes 0..units-1) beside thresholds (lanes units..2 units-1), a group a row.
        m.submodules.bt_mem = bt_mem = memory.Memory(
            shape=2 * p.fire_units * p.acc_bits, depth=p.bt_mem_rows, init=[])
        # Spike blocks: the two ping-pong halves of the hidden layers, then the batch's inputs.
        # (A spike memory deeper than one block RAM is made of banks one block RAM deep, each
        # its own module with its own ports: hw.core.fetcher.spike_banks.)
        banks = spike_banks(p)
        bank_rows = spike_bank_rows(p)
        spk_mems = []
        for b in range(banks):
            mem = memory.Memory(shape=p.block_bits, depth=bank_rows, init=[])
            if banks == 1:
                m.submodules.spk_mem = mem
            else:
                holder = Module()
                holder.submodules.spk_mem = mem
                m.submodules[f"spk_bank{b}"] = holder
            spk_mems.append(mem)
        m.submodules.out_mem = out_mem = memory.Memory(
            shape=32 * p.fire_units, depth=p.out_rows, init=[])

        # The layer's settings reach each block through a registered copy of its own (kept
        # apart by synthesis, hw.common.synth_hints), so the descriptor register does not fan
        # out across the chip: the long wires end in flip-flops beside each block. The
        # descriptor is complete at the sequencer's VERDICT, so the copies hold it from CHECK
        # on, a cycle before START (``fetch_start``, ``clear``), as the blocks require.
        # A dense-only build (the iCEBreaker's: 12 MHz, its logic cells nearly full) reads the
        # descriptor register directly: the copies serve the 100 MHz conv builds' fan-out.
        def held(block, port, value, name):
            """``port`` := a copy of ``value`` registered for ``block`` (as wide as ``port``)."""
            if not p.conv:
                return port.eq(value)
            copy = Signal(len(port), name=f"{block}_{name}", reset_less=True, attrs=COPY_ATTRS)
            m.d.sync += copy.eq(value)
            return port.eq(copy)

        # Fetcher <-> spike blocks and weights.
        spk_rds, w_rd = [mem.read_port() for mem in spk_mems], w_mem.read_port()
        m.d.comb += [spk_rd.addr.eq(fetch.src_addr) for spk_rd in spk_rds]
        m.d.comb += [spk_rd.en.eq(fetch.src_en) for spk_rd in spk_rds]
        m.d.comb += fetch.src_data.eq(Cat(spk_rd.data for spk_rd in spk_rds))
        m.d.comb += [
            # The weight row of the beat presented to the PE array, read every cycle: the array
            # takes it the cycle after (no memory enable waits on the array's handshake).
            w_rd.addr.eq(skid.o.payload.row), pes.weights.eq(w_rd.data),
            fetch.start.eq(seq.fetch_start), pes.gain.eq(d.res_gain.as_signed()),
            seq.fetch_busy.eq(fetch.busy), seq.issued.eq(fetch.issued),
            held("fetch", fetch.src_base, seq.src_base, "src_base"),
        ]
        fetch_fields = ["chunks", "T", "passes", "w_base"]
        if p.conv:  # (a dense-only fetcher has no use for the geometry)
            fetch_fields += ["in_h", "in_w", "conv_h", "conv_w", "kh", "kw", "stride", "pad",
                             "pool_log2", "n_out", "res_input", "res_base"]
            fetch_fields += ["pad_rows_only"] if p.pad_rows else []
            m.d.comb += [held("fetch", fetch.conv, d.kind == 1, "conv"),
                         held("fetch", fetch.res, d.res_gain != 0, "res"),
                         held("fetch", fetch.in_base, seq.sample_base, "in_base")]
        m.d.comb += [held("fetch", getattr(fetch, name), getattr(d, name), name)
                     for name in fetch_fields]
        # Firing array <-> biases and thresholds (one row of fire_units entries per group).
        bt_rd = bt_mem.read_port()
        bt_lanes = p.fire_units * p.acc_bits
        m.d.comb += [
            bt_rd.addr.eq(fire.bt_addr),
            fire.bias.eq(bt_rd.data[:bt_lanes]),
            fire.clear.eq(seq.clear),
            fire.theta.eq(bt_rd.data[bt_lanes:]),
        ]
        m.d.comb += [held("fire", getattr(fire, name), getattr(d, name), name)
                     for name in ("bt_base", "passes", "pool_log2", "theta_per_channel")]
        m.d.comb += held("fire", fire.theta_layer, d.theta, "theta")
        m.d.comb += [held("fire", getattr(fire.config, name), getattr(d, name), name)
                     for name in ("T", "lif", "readout", "reset_zero", "leak", "fire_above",
                                  "compare_leaked")]
        # Writer -> spike / output memory. The spike memory's one write port is shared with the
        # bus (INPUT writes); the writer never waits, so a bus write waits for a free cycle.
        out_wr = out_mem.write_port()
        # The spike memory's write (one port per bank: a bank takes the writes to its blocks).
        spk_wr = SimpleNamespace(addr=Signal(range(p.spike_rows)), data=Signal(p.block_bits),
                                 en=Signal(p.block_words))
        for b, mem in enumerate(spk_mems):
            port = mem.write_port(granularity=32)
            mine = (spk_wr.addr // bank_rows) == b if banks > 1 else 1
            m.d.comb += [port.addr.eq(spk_wr.addr), port.data.eq(spk_wr.data),
                         port.en.eq(Mux(mine, spk_wr.en, 0))]
        m.d.comb += [
            writer.clear.eq(seq.clear), held("writer", writer.n_out, d.n_out, "n_out"),
            held("writer", writer.final, d.last, "last"),
            held("writer", writer.pos_passes, d.passes, "passes"),
            held("writer", writer.readout, d.readout, "readout"),
            held("writer", writer.pool_log2, d.pool_log2, "pool_log2"),
            held("writer", writer.lif, d.lif, "lif"),
            # A conv layer writes its map where the compiler placed it.
            held("writer", writer.dst_base, Mux(d.kind == 1, d.out_base, seq.dst_base),
                 "dst_base"),
            held("writer", writer.out_base, seq.out_base, "out_base"),
            out_wr.addr.eq(writer.out_addr), out_wr.data.eq(writer.out_data),
            out_wr.en.eq(writer.out_en),
            seq.passes_done.eq(writer.passes), seq.spikes.eq(writer.spikes),
            seq.skipped.eq(fetch.skipped),
        ]

        # --- bus slave -----------------------------------------------------------------------
        # Each request is registered first (``q``), so no decode depends on the master's logic.
        req, resp = self.bus.req, self.bus.resp
        q = Signal(bus.BusRequest)
        q_valid = Signal()
        q_done = Signal()  # the registered request is carried out this cycle (core registers only)
        m.d.comb += req.ready.eq(~q_valid | q_done)
        addr, wdata = q.addr, q.data

        def hit(region, a=addr):
            shift = region.span.bit_length() - 1
            return ((a >> shift) == (region.base >> shift)) & (a[:shift] < region.size)

        def off(region, a=addr):
            return a[:region.span.bit_length() - 1]

        # Which region a request addresses is decided as it is registered.
        write_regions = ("PROGRAM", "WEIGHTS", "BIAS", "THETA", "INPUT")
        q_hit = {name: Signal(name=f"q_hit_{name.lower()}") for name in write_regions}
        q_control = Signal()
        with m.If(req.valid & req.ready):
            m.d.sync += [q.eq(req.payload), q_valid.eq(1),
                         q_control.eq(req.payload.addr == bus.REG_CONTROL)]
            m.d.sync += [q_hit[name].eq(hit(mm[name], req.payload.addr))
                         for name in write_regions]
        with m.Elif(q_done):
            m.d.sync += q_valid.eq(0)

        # Writes: one bus word lands in one lane of a memory row (BIAS and THETA share a row).
        # INPUT shares the spike memory's write port with the writer: it waits while the core
        # runs (the host link never writes inputs during a run).
        wr_input_waits = q_hit["INPUT"] & seq.busy
        wr_now = q_valid & q.write  # (INPUT: and not wr_input_waits)
        with m.If(q_valid & q.write):
            m.d.comb += q_done.eq(~wr_input_waits)
        bt_wr = bt_mem.write_port(granularity=p.acc_bits)
        w_port = None  # (without weight_write_reg: the memory's own write port, made below)
        if p.weight_write_reg:
            # A build whose weights cross a large chip (``weight_write_reg``) registers the
            # weight memory's write port: each row word's write enable is a flip-flop of its
            # own, near that word's block RAM, and the address and the word come from registers
            # too (on the ULX3S the decode of the bus write into every block RAM's enable was
            # the critical path of some placements, 8.9 ns of wire). A write lands a cycle
            # later per stage; the host never writes the weights while the core runs.
            # With 2 a first stage registers the write's strobe and lane instead (below), so
            # the bus decode ends in one flip-flop and each enable's decode sits beside it (a
            # 1,024-add array on the ULX3S: the decode into the enables was its critical path).
            w_wr = w_mem.write_port(granularity=32)
            w_port = SimpleNamespace(addr=Signal.like(w_wr.addr), data=Signal.like(w_wr.data),
                                     en=Signal.like(w_wr.en))
            w_addr_q, w_word_q, w_en_q = w_port.addr, w_port.data[:32], w_port.en
            if p.weight_write_reg == 2:
                # The first stage holds the write's strobe and lane, not its decoded enables:
                # the decode into each enable then sits beside that enable's flip-flop.
                lane_bits = exact_log2(p.weight_row_words)
                o_w = off(mm["WEIGHTS"])
                strobe = Signal(name="w_wr_strobe")
                lane = Signal(max(lane_bits, 1), name="w_wr_lane", reset_less=True)
                addr1 = Signal.like(w_wr.addr, name="w_wr_addr_1", reset_less=True)
                word1 = Signal(32, name="w_wr_word_1", reset_less=True)
                m.d.sync += [strobe.eq(wr_now & q_hit["WEIGHTS"]), addr1.eq(o_w >> lane_bits),
                             word1.eq(wdata[:32])]
                if lane_bits:
                    m.d.sync += lane.eq(o_w[:lane_bits])
                w_addr_q, w_word_q = addr1, word1
                w_en_q = Cat(strobe & (lane == i) for i in range(len(w_wr.en)))
            regs = (Signal.like(w_wr.addr, name="w_wr_addr", reset_less=True),
                    Signal(32, name="w_wr_word", reset_less=True),
                    Signal.like(w_wr.en, name="w_wr_en"))
            m.d.sync += [regs[0].eq(w_addr_q), regs[1].eq(w_word_q), regs[2].eq(w_en_q)]
            w_addr_q, w_word_q, w_en_q = regs
            m.d.comb += [w_wr.addr.eq(w_addr_q), w_wr.data.eq(w_word_q.replicate(len(w_wr.en))),
                         w_wr.en.eq(w_en_q)]
        writes = [
            # region, port, lanes per row, first lane, row offset, lane-major
            ("PROGRAM", desc_mem.write_port(), 1, 0, 0, False),
            ("WEIGHTS", w_port or w_mem.write_port(granularity=32), p.weight_row_words, 0, 0,
             False),
            ("BIAS", bt_wr, p.fire_units, 0, 0, False),
            ("THETA", bt_wr, p.fire_units, p.fire_units, 0, False),
            ("INPUT", spk_wr, p.block_words, 0, p.input_base, True),
        ]
        for name, port, lanes, lane0, row0, lane_major in writes:
            region = mm[name]
            gran = len(port.data) // len(port.en)
            lane_bits = lanes.bit_length() - 1
            o = off(region)
            ok = 1
            if lane_major:
                # INPUT is lane-major (hw.contract.memory_map): word ``w`` of block ``r`` at
                # ``w input_lane_stride + r``, so a host that sends only the words holding the
                # planes below T writes one contiguous run per word (the fetcher ignores the
                # planes at or above T, whatever the memory holds there).
                row_bits = exact_log2(p.input_lane_stride)
                row, lane = o[:row_bits], o[row_bits:row_bits + lane_bits]
                if p.input_lane_stride != p.input_blocks:  # the rows past input_blocks
                    ok = row < p.input_blocks
            else:
                row, lane = o >> lane_bits, o[:lane_bits]
            with m.If(q_hit[name]):
                m.d.comb += [
                    port.addr.eq(row + row0),
                    port.data.eq(wdata[:gran].replicate(len(port.en))),
                ]
                # (Only INPUT writes look at busy: no memory's write enable but the spike
                # memory's waits on the sequencer, across the chip.)
                with m.If(wr_now & (~seq.busy if name == "INPUT" else 1) & ok):
                    m.d.comb += port.en.eq(1 << (lane0 + (lane if lane_bits else 0)))
        with m.If(writer.act_en):  # the writer's blocks own the spike memory during a run
            m.d.comb += [spk_wr.addr.eq(writer.act_addr), spk_wr.data.eq(writer.act_data),
                         spk_wr.en.eq(-1)]
        # Control: start / abort reach the sequencer and the datapath a cycle after the write.
        start, batch = Signal(), Signal(16)
        copies = list({id(a): a for a in aborts.values()}.values())  # one in a dense build
        m.d.sync += [start.eq(0), *(a.eq(0) for a in copies)]
        with m.If(wr_now & q_control):
            m.d.sync += [*(a.eq(wdata[CONTROL_ABORT_BIT]) for a in copies),
                         start.eq(wdata[CONTROL_START_BIT] & ~wdata[CONTROL_ABORT_BIT]),
                         batch.eq(wdata[CONTROL_BATCH_SHIFT:32])]
        m.d.comb += [seq.start.eq(start), seq.batch.eq(batch)]

        # Reads: memories addressed in ADDR (the descriptor and counter memories wait while the
        # sequencer uses them), the answer chosen in READ and held in RESP.
        desc_rd, out_rd = desc_mem.read_port(), out_mem.read_port()
        unit_bits = p.fire_units.bit_length() - 1
        cnt_words = COUNTER_WORDS_PER_LAYER * p.max_layers
        r_cnt = off(mm["COUNTERS"])
        r_out = off(mm["OUTPUT"])
        with m.If(seq.desc_en):
            m.d.comb += desc_rd.addr.eq(seq.desc_addr)
        with m.Else():
            m.d.comb += desc_rd.addr.eq(off(mm["PROGRAM"]))
        # The descriptor memory's output, registered for the sequencer and the bus alike.
        desc_q = Signal(32, reset_less=True)  # (no reset: see hw.build.ecp5_outreg)
        m.d.sync += desc_q.eq(desc_rd.data)
        m.d.comb += [
            seq.desc_data.eq(desc_q),
            out_rd.addr.eq(r_out >> unit_bits),
            seq.counters.addr.eq(r_cnt),
        ]
        # The identify block: a small ROM (a block RAM where one is spare).
        m.submodules.ident_rom = ident_rom = memory.Memory(shape=32, depth=ID_WORDS,
                                                           init=identify_words(p))
        ident_rd = ident_rom.read_port()
        m.d.comb += ident_rd.addr.eq(addr[:ID_WORDS.bit_length() - 1])
        status = Cat(seq.busy, seq.done, seq.error, Const(0, STATUS_CODE_SHIFT - 3),
                     seq.error_code)
        # Where the answer comes from, decided in ADDR. Memory outputs are registered as they are
        # (RAW) before the answer is chosen (READ): block RAM outputs are slow.
        sources = ("ident", "status", "program", "output", "counter", "total")
        src = {name: Signal(name=f"rd_{name}") for name in sources}
        lane = Signal(range(p.fire_units))
        ident_word = Signal(32)
        out_raw = Signal(32 * p.fire_units, reset_less=True)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(q_valid & ~q.write):
                    m.next = "ADDR"
            with m.State("ADDR"):
                in_cnt = hit(mm["COUNTERS"]) & (r_cnt < cnt_words)
                wait_desc = hit(mm["PROGRAM"]) & seq.desc_en
                wait_cnt = in_cnt & ~seq.counters.grant
                m.d.sync += [
                    lane.eq(r_out[:unit_bits] if unit_bits else 0),
                    src["ident"].eq(addr < ID_WORDS),
                    src["status"].eq(addr == bus.REG_STATUS),
                    src["program"].eq(hit(mm["PROGRAM"])),
                    src["output"].eq(hit(mm["OUTPUT"])),
                    src["counter"].eq(in_cnt),
                    src["total"].eq(hit(mm["COUNTERS"]) & (r_cnt == cnt_words)),
                ]
                with m.If(~wait_desc & ~wait_cnt):
                    m.next = "RAW"
            with m.State("RAW"):
                # (the descriptor and counter words are registered where they are shared)
                m.d.sync += [ident_word.eq(ident_rd.data), out_raw.eq(out_rd.data)]
                m.next = "READ"
            with m.State("READ"):
                word = Signal(32)
                m.d.comb += word.eq(
                    Mux(src["ident"], ident_word, 0)
                    | Mux(src["status"], status, 0)
                    | Mux(src["program"], desc_q, 0)
                    | Mux(src["output"], out_raw.word_select(lane, 32), 0)
                    | Mux(src["counter"] & seq.counters.keep, seq.counters.data, 0)
                    | Mux(src["total"], seq.total_cycles, 0))
                m.d.sync += [resp.payload.eq(word), resp.valid.eq(1)]
                # The read is done with ``q`` once its answer is chosen: the next request may be
                # registered (and a write carried out) while the answer waits in RESP.
                m.d.comb += q_done.eq(1)
                m.next = "RESP"
            with m.State("RESP"):
                with m.If(resp.ready):
                    m.d.sync += resp.valid.eq(0)
                    m.next = "IDLE"
        return m
