"""Build parameters of the SpikePack core (fixed when the bitstream is made).

These are the *build* arguments (array shape, memory depths, T_max, accumulator width). Everything a
network changes at run time (layer sizes, T, thresholds, leak, reset, the layer program) lives in
the memories and registers described by ``hw.contract.memory_map`` instead.

The datapath is multiplier-free: a PE adds the int8 weights its ``k`` input spikes select, the
accumulator doubles (Horner) and the firing unit compares and subtracts.
"""

from __future__ import annotations

import dataclasses
import operator

__all__ = ["CoreParams", "parse_settings", "walk_replays"]


def _is_pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


@dataclasses.dataclass(frozen=True)
class CoreParams:
    """Build parameters of :class:`hw.core.core.SpikePackCore`.

    Parameters
    ----------
    n_pe : int
        Processing elements; each owns one output neuron per pass (power of two, multiple of ``k``).
    k : int
        Synapse lanes per PE: input neurons of one bit-plane chunk added per cycle (power of two).
    t_max : int
        Largest number of time steps (bit-planes) a layer may use: 8 or 16.
    weight_bits : int
        Width of a stored weight (8).
    acc_bits : int
        Signed width of the per-plane sums, the membrane and the bias (16..32).
    weight_depth : int
        Weight memory rows; one row holds ``n_pe * k`` weights (power of two).
    act_chunks : int
        Bit-plane chunks (of ``k`` neurons) per layer input or output: a layer is at most
        ``act_chunks * k`` neurons wide (power of two, ``act_chunks * k`` a multiple of ``n_pe``).
    bt_depth : int
        Bias and threshold entries over all layers (power of two, multiple of ``n_pe``).
    max_layers : int
        Layer descriptors in the program memory (power of two).
    batch_depth : int
        Samples of one batch run at most (power of two); fewer when the inputs or outputs of a
        network's samples fill ``in_blocks`` or ``out_words`` first.
    fire_units : int
        Firing units shared by the ``n_pe`` neurons of a pass (power of two dividing ``k``;
        0 means ``k``). Fewer units cost firing time, hidden behind the accumulation of the next
        pass on layers with enough input chunks.
    lif : int
        1: the firing units also run LIF/IF layers; 0: SpikePack layers only (a smaller firing
        unit, for the smallest devices; LIF layers are refused by the compiler and the core).
    conv : int
        1: the fetcher walks conv layers (receptive fields, padding, max pooling) and the writer
        pools; 0: dense layers only (the smallest devices; conv layers are refused by the
        compiler and the core).
    in_blocks : int
        Spike blocks of the INPUT region, shared by the samples of a batch: sample ``b``'s input
        starts ``b * s`` blocks in, ``s`` the blocks of the network's input (its layer 0
        descriptor's ``in_stride``: ``ceil(n_in / k)``, or ``H W ceil(C / k)`` for an image).
        0 (the default) means ``batch_depth * act_chunks``: every sample's input may be as wide
        as a layer. A larger region holds an image map wider than a layer's; a smaller one
        trades batch size on wide inputs for block RAM.
    out_words : int
        Words of the OUTPUT region, shared likewise: sample ``b``'s outputs start ``b * s``
        words in, ``s`` = the last layer's passes ``* n_pe`` (a multiple of ``n_pe``). 0 (the
        default) means ``batch_depth * act_chunks * k`` (every sample's readout as wide as a
        layer).
    weight_regs : int
        Registers on the weight path between the weight memory's output and the PEs' own (0..2):
        2 lets the weights cross a large device at 100 MHz; 0 saves ``2 * n_pe * k *
        weight_bits`` flip-flops where the clock is slow (iCE40 at 12 MHz). Only latency
        changes (one cycle per pass per register).
    planes_per_beat : int
        Bit-planes of one input chunk a beat of the PE array carries: 1, 2 or 4 (each PE has an
        adder tree per plane, all fed the same weight register: a weight row read once serves
        two or four time steps, so the array does ``planes_per_beat * n_pe * k`` adds per cycle
        on the same weight-memory bandwidth). A beat is issued for every *beat slot* (planes
        ``planes_per_beat s .. planes_per_beat (s + 1) - 1``) below ``T`` that holds a spike:
        a block with a spike in any of its four planes of a slot takes the whole beat, so more
        planes a beat raise the peak but skip less.
    fire_pairs : int
        With two or four planes per beat: 1 (default) makes the firing units fire a pair of planes a
        cycle in SpikePack layers (``ceil(T / 2)`` cycles a neuron instead of ``T``,
        about 320 more LUTs a unit on the 7-series); 0 keeps one plane a cycle (smaller and
        shorter firing paths; the ULX3S preset's until 2026-12-01). Ignored with one plane per
        beat. Like ``weight_regs`` it changes cycles, not results, and is not in the identify
        block.
    weight_write_reg : int
        1 registers the weight memory's write port: each row word's write enable is a
        flip-flop of its own, and the address and the word come from registers, so the bus
        decode no longer reaches every weight block RAM in one cycle (the critical path of
        large ECP5 builds); 2 puts a stage before those that registers the write's strobe,
        lane, address and word, each enable then decoded beside its flip-flop. A write lands
        a cycle later per stage (the host never writes weights during a run). Default 0;
        timing only, not in the identify block.
    fetch_queue : int
        Spike blocks the queue between the fetcher and the plane issuer holds beyond its output
        register: 0 (default) is a skid buffer (one more block); 4, 8, 16 or 32 is a queue in
        LUT RAM (:class:`hw.common.stream_queue.StreamQueue`). The walk reads one block a cycle
        and the issuer takes one to ``t_max / planes_per_beat`` cycles a block, none for a
        block with no spike (dropped unless it ends a pass). With a skid buffer the walk stalls
        behind blocks of two beats and the issuer then starves on a run of empty blocks (the
        border of an image); a queue lets the walk run ahead, so a pass takes about the longer
        of its walk and its beats, not their sum. Every block passes the queue's memory: two
        cycles through an empty queue, one more than through the skid buffer (a cycle more per
        layer). Changes cycles, not results; not in the identify block.
    bank_passes : int
        Passes the PEs' sum banks hold (2 or 4, default 4): the PE array accumulates pass
        ``p + 1`` .. ``p + bank_passes - 1`` while the firing array reads pass ``p``. With 2
        (ping-pong, the iCEBreaker's) a pass whose beats are few waits for the firing of the
        pass before last and then for the PE array's latency; with 4 the accumulation runs up
        to three passes ahead (the first conv layer of the MNIST CNN: 8,589 -> 7,149 cycles
        per image by the cycle model; 6,531 on the RTL once the firing array also starts a
        pass that is whole at the release without a cycle in IDLE). The banks are LUT RAM of
        32 (7-series) or 16 (ECP5) words, which hold four passes' ``t_max / planes_per_beat``
        words in the same cells as two, so it costs the bank control only. Changes cycles,
        not results; not in the identify block.
    fire_out_reg : int
        1 registers the firing array's output (every unit's result) once more before the
        writer, so a unit's result register stays beside the unit and the wire to the writer
        has a cycle of its own (a 32-PE ECP5 build's critical path otherwise). One cycle more
        per layer; timing only, not in the identify block.
    pe_control_copies : int
        1 keeps each PE's registers of its bank control (address, enable, first, forward) its
        own: synthesis otherwise merges the ``n_pe`` equal registers into one that drives every
        bank (:class:`hw.core.pe.SpikePackPE`); and gives the fetch queue two output registers
        that load without waiting on its consumer's ready
        (:class:`hw.common.stream_queue.StreamQueue`'s ``two_out``). About ``n_pe * 7``
        flip-flops and a block register more; timing only, not in the identify block.
    seq_prefetch : int
        1: the sequencer reads and checks the next layer's descriptor while a layer runs, and
        adds a finished layer into its counters beside the next one
        (:class:`hw.core.sequencer.Sequencer`): a layer after the first of a run starts two
        cycles after the one before ends, not sixteen (eighteen before a conv layer); the
        run's first layer starts a cycle later. About 400 flip-flops (a second descriptor
        register, the finished layer's counts); timing only, not in the identify block.
    pad_rows : int
        1: the conv walk takes a layer whose zero padding adds rows only, no columns (the
        descriptor's ``pad_rows_only``): the compiler's fold of a thin first layer
        (:mod:`sw.compile.input_fold`) then pads the image's rows in the walk instead of
        storing them, so they are neither sent, stored nor stepped through (MNIST's folded image:
        784 input blocks, not 896). A register and a multiplexer in the walk, within the yosys
        estimate's noise on the Arty A7-35T (docs/boards.md); 0 stores the rows, as every build
        did until 2026-12-04. A build without it walks a ``pad_rows_only`` descriptor as if
        the flag were clear: only the compiler makes one, and only for a build with it (the
        identify block carries it, so an image for one does not run on the other). Always 0 on
        a build without ``conv``.
    walk_replay : int
        1: after the first pass of a position, the conv walk reads only the blocks that pass
        found holding a spike below ``T`` (:class:`hw.core.conv_walk.ConvWalk`, a list of their
        chunks in LUT RAM), for dense layers and 1x1 conv layers without pooling or shortcut
        of two or more passes (:func:`walk_replays`): a pass's walk then follows the input's
        non-empty blocks instead of all of them. Needs a conv build with a ``fetch_queue``
        (the walk on credits). The first replayed pass of a position waits until the first
        pass's last block is recorded (4 cycles). Changes cycles and the skip counters (a
        replayed pass reads no empty block), not results; not in the identify block.
    walk_skid : int
        1: a skid register between the conv walk's second and third position stages
        (:class:`hw.core.conv_walk.ConvWalk`), so its position generator advances on registers
        alone and not on the walker's hand-over of the position before (an ECP5 build's
        critical path with 8 firing units). The walker gets the same positions in the same
        cycles: cycles and results do not change. About 70 flip-flops and their
        multiplexers; timing only, not in the identify block. Always 0 on a build without
        ``conv``.
    fire_leak_mul : int
        1: each firing unit works out the LIF leak (``v - (v >>> leak)``) and the compare's
        leaked threshold as one multiply-add each, ``(x c + 2^16 - 1) >>> 16`` with
        ``c = 2^16 - 2^(16 - leak)`` (:class:`hw.core.fire.FireUnit`), which synthesis maps
        to two DSP slices a unit instead of barrel shifters and subtractors: on the Arty
        A7-35T's 7-series part, whose DSP48E1s are otherwise idle, about 150 LUTs a unit
        fewer. Results and cycles do not change; a resource choice, not in the identify
        block. Always 0 on a build without ``lif``.
    """

    n_pe: int
    k: int
    t_max: int = 8
    weight_bits: int = 8
    acc_bits: int = 24
    weight_depth: int = 512
    act_chunks: int = 16
    bt_depth: int = 256
    max_layers: int = 8
    batch_depth: int = 4
    fire_units: int = 0
    lif: int = 1
    weight_regs: int = 2
    conv: int = 1
    in_blocks: int = 0
    out_words: int = 0
    planes_per_beat: int = 1
    fire_pairs: int = 1
    bank_passes: int = 4
    weight_write_reg: int = 0
    fetch_queue: int = 0
    fire_out_reg: int = 0
    pe_control_copies: int = 0
    seq_prefetch: int = 0
    walk_replay: int = 0
    pad_rows: int = 0
    walk_skid: int = 0
    fire_leak_mul: int = 0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                raise TypeError(f"{f.name} must be an integer, not {value!r}")
            try:
                object.__setattr__(self, f.name, operator.index(value))
            except TypeError:
                raise TypeError(f"{f.name} must be an integer, not {value!r}") from None
        if self.fire_units == 0:
            object.__setattr__(self, "fire_units", self.k)
        pow2 = ("fire_units", "n_pe", "k", "weight_depth", "act_chunks", "bt_depth",
                "max_layers", "batch_depth")
        for name in pow2:
            value = getattr(self, name)
            if not _is_pow2(value):
                raise ValueError(f"{name} must be a power of two, not {value}")
        if self.weight_regs not in (0, 1, 2):
            raise ValueError(f"weight_regs must be 0, 1 or 2, not {self.weight_regs}")
        if self.lif not in (0, 1):
            raise ValueError(f"lif must be 0 or 1, not {self.lif}")
        if self.conv not in (0, 1):
            raise ValueError(f"conv must be 0 or 1, not {self.conv}")
        if self.planes_per_beat not in (1, 2, 4):
            raise ValueError(f"planes_per_beat must be 1, 2 or 4, not {self.planes_per_beat}")
        if self.fire_pairs not in (0, 1):
            raise ValueError(f"fire_pairs must be 0 or 1, not {self.fire_pairs}")
        if self.weight_write_reg not in (0, 1, 2):
            raise ValueError(f"weight_write_reg must be 0, 1 or 2 (register stages on the "
                             f"weight memory's write port), not {self.weight_write_reg}")
        for name in ("fire_out_reg", "pe_control_copies", "seq_prefetch", "walk_replay",
                     "pad_rows", "walk_skid", "fire_leak_mul"):
            if getattr(self, name) not in (0, 1):
                raise ValueError(f"{name} must be 0 or 1, not {getattr(self, name)}")
        if self.fetch_queue not in (0, 4, 8, 16, 32):
            raise ValueError(f"fetch_queue must be 0 (a skid buffer), 4, 8, 16 or 32, not "
                             f"{self.fetch_queue}")
        if not self.conv:  # settings of the conv walk: none without one
            object.__setattr__(self, "pad_rows", 0)
            object.__setattr__(self, "walk_skid", 0)
        if not self.lif:  # the leak's multipliers: none without LIF
            object.__setattr__(self, "fire_leak_mul", 0)
        if self.walk_replay and not (self.conv and self.fetch_queue):
            raise ValueError("walk_replay needs the conv walk on credits: a conv build (conv=1) "
                             "with a fetch_queue")
        if self.bank_passes not in (2, 4):
            raise ValueError(f"bank_passes must be 2 or 4, not {self.bank_passes}")
        if self.k % self.fire_units:
            raise ValueError(f"fire_units ({self.fire_units}) must divide k ({self.k}): a spike "
                             f"block of k neurons is gathered from whole groups of fire_units")
        if self.n_pe % self.k:
            raise ValueError(f"n_pe ({self.n_pe}) must be a multiple of k ({self.k})")
        if self.n_pe * self.k < 4:
            raise ValueError(f"n_pe * k must be at least 4 (one 32-bit bus word of weights), "
                             f"not {self.n_pe * self.k}")
        if self.t_max not in (8, 16):
            raise ValueError(f"t_max must be 8 or 16, not {self.t_max}")
        if self.t_max * self.k < 32:
            raise ValueError(f"t_max * k must be at least 32 (one bus word per spike block), "
                             f"not {self.t_max * self.k}")
        if self.weight_bits != 8:
            raise ValueError(f"weight_bits must be 8 (narrower weights are stored as int8), "
                             f"not {self.weight_bits}")
        if not 16 <= self.acc_bits <= 32:
            raise ValueError(f"acc_bits must be in 16..32, not {self.acc_bits}")
        if self.max_neurons % self.n_pe:
            raise ValueError(f"act_chunks * k ({self.max_neurons}) must be a multiple of n_pe "
                             f"({self.n_pe})")
        if self.bt_depth % self.n_pe:
            raise ValueError(f"bt_depth ({self.bt_depth}) must be a multiple of n_pe ({self.n_pe})")
        if self.max_neurons > 0xFFFF or self.batch_depth > 0xFFFF:
            raise ValueError("layers and batches are limited to 65535 (16-bit fields)")
        if not 0 <= self.in_blocks <= 0xFFFF:
            raise ValueError(f"in_blocks must be in 0..65535 (0: the default), not "
                             f"{self.in_blocks}")
        if self.out_words < 0 or self.out_words % self.n_pe:
            raise ValueError(f"out_words ({self.out_words}) must be a multiple of n_pe "
                             f"({self.n_pe}), a sample's outputs being whole passes (0: the "
                             f"default)")

    # --- derived ------------------------------------------------------------------------------

    @property
    def synapses_per_cycle(self) -> int:
        """Peak synaptic adds per cycle (one weight times one bit-plane):
        ``planes_per_beat * n_pe * k``."""
        return self.planes_per_beat * self.n_pe * self.k

    @property
    def fetch_credits(self) -> bool:
        """The conv walk steps on credits from the fetch queue (a conv build with a
        ``fetch_queue``; :attr:`hw.core.fetcher.Fetcher.credits`), rather than in lock-step on
        the queue's ``ready``."""
        return bool(self.conv) and self.fetch_queue > 0

    @property
    def fire_planes(self) -> int:
        """Planes the firing units take a cycle in SpikePack layers: 2 with two or four planes
        per beat and ``fire_pairs``, else 1."""
        return 2 if self.planes_per_beat >= 2 and self.fire_pairs else 1

    @property
    def beat_slots(self) -> int:
        """Beats a spike block can take: ``t_max / planes_per_beat`` (beat slot ``s`` carries
        planes ``planes_per_beat s ..``)."""
        return self.t_max // self.planes_per_beat

    @property
    def max_neurons(self) -> int:
        """Widest layer input or output, in neurons."""
        return self.act_chunks * self.k

    @property
    def max_passes(self) -> int:
        """Passes of the PE array the widest layer needs."""
        return self.max_neurons // self.n_pe

    @property
    def chunks_per_pass(self) -> int:
        """Output chunks (of ``k`` neurons) one pass of the array produces: ``n_pe // k``."""
        return self.n_pe // self.k

    @property
    def weight_row_bits(self) -> int:
        return self.n_pe * self.k * self.weight_bits

    @property
    def weight_row_words(self) -> int:
        """32-bit bus words per weight row."""
        return self.weight_row_bits // 32

    @property
    def block_bits(self) -> int:
        """Bits of one spike block: ``t_max`` bit-planes of one chunk of ``k`` neurons."""
        return self.t_max * self.k

    @property
    def block_words(self) -> int:
        return self.block_bits // 32

    @property
    def input_lane_stride(self) -> int:
        """Words between one block word of INPUT and the next word of the same block (INPUT is
        lane-major: word ``w`` of block ``r`` at ``w input_lane_stride + r``):
        :attr:`input_blocks` rounded up to a power of two."""
        return 1 << max(0, (self.input_blocks - 1).bit_length())

    def input_words_per_block(self, T: int) -> int:
        """Words of a spike block that hold its planes below ``T`` (plane ``q`` is bits
        ``q k .. q k + k - 1``): the INPUT words a host writes for inputs of ``T`` steps."""
        return min(self.block_words, -(-T * self.k // 32))

    @property
    def bt_rows(self) -> int:
        """Bias/threshold *pass* rows (``n_pe`` entries each), as descriptors count them."""
        return self.bt_depth // self.n_pe

    @property
    def bt_mem_rows(self) -> int:
        """Rows of the bias (and threshold) memory: ``fire_units`` entries each."""
        return self.bt_depth // self.fire_units

    @property
    def sum_bits(self) -> int:
        """Signed width of a per-plane sum: ``max_neurons`` weights of ``weight_bits`` never
        overflow it, whatever the network (at most ``acc_bits``)."""
        return min(self.acc_bits, self.weight_bits + (self.max_neurons - 1).bit_length())

    @property
    def spike_rows(self) -> int:
        """Spike blocks of the spike memory: two ping-pong halves of ``act_chunks`` blocks for
        hidden layers, then the :attr:`input_blocks` of the batch's inputs."""
        return 2 * self.act_chunks + self.input_blocks

    @property
    def input_blocks(self) -> int:
        """Spike blocks of the INPUT region (``in_blocks``, or its default)."""
        return self.in_blocks or self.batch_depth * self.act_chunks

    @property
    def output_words(self) -> int:
        """Words of the OUTPUT region (``out_words``, or its default)."""
        return self.out_words or self.batch_depth * self.max_neurons

    @property
    def input_base(self) -> int:
        """First spike-memory block of the batch's inputs."""
        return 2 * self.act_chunks

    @property
    def out_rows(self) -> int:
        """Output memory rows (``fire_units`` words each)."""
        return self.output_words // self.fire_units

    @property
    def weight_capacity(self) -> int:
        """Weights the build stores (``weight_depth * n_pe * k``)."""
        return self.weight_depth * self.n_pe * self.k

    def _io_note(self) -> str:
        """The input/output regions, where they are not the default ones."""
        notes = []
        if self.in_blocks:
            notes.append(f"{self.in_blocks} input blocks")
        if self.out_words:
            notes.append(f"{self.out_words} output words")
        return f" ({', '.join(notes)} per batch)" if notes else ""

    def describe(self) -> str:
        planes = f" x {self.planes_per_beat} planes" if self.planes_per_beat > 1 else ""
        return (f"{self.n_pe} PEs x {self.k} lanes{planes} ({self.synapses_per_cycle} adds/cycle), "
                f"T <= {self.t_max}, {self.acc_bits}-bit accumulators, "
                f"{self.weight_capacity} weights, layers <= {self.max_neurons} neurons, "
                f"{self.bt_depth} bias/theta entries, {self.max_layers} layers, "
                f"batch <= {self.batch_depth}{self._io_note()}, {self.fire_units} firing unit"
                + ("s" if self.fire_units > 1 else "")
                + ("" if self.lif else ", SpikePack layers only (no LIF)")
                + ("" if self.conv else ", dense layers only (no conv)"))


def walk_replays(params: CoreParams, *, dense: bool, kernel=(1, 1), pooled: bool = False,
                 shortcut: bool = False, passes: int) -> bool:
    """Whether a build with ``params`` replays a layer's walk (``walk_replay``): after the
    first pass of each position only the blocks it found non-empty are read. Dense layers and
    1x1 conv layers without pooling or shortcut, of two or more passes."""
    return bool(params.walk_replay) and passes > 1 and (
        dense or (tuple(kernel) == (1, 1) and not pooled and not shortcut))


def parse_settings(items) -> dict[str, int]:
    """``NAME=VALUE`` strings (the ``--set`` options of ``python -m hw.build`` and
    ``bench/bench_core.py``) as ``{NAME: int(VALUE)}`` (``0x``/``0b`` prefixes allowed).
    ``ValueError`` says which item is malformed; the names are checked where the settings are
    applied (``dataclasses.replace`` of a :class:`CoreParams`)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes NAME=VALUE, not {item!r}")
        try:
            out[name.strip()] = int(value, 0)
        except ValueError:
            raise ValueError(f"--set {name}: {value!r} is not an integer") from None
    return out
