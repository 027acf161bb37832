"""The build-dependent address map, the layer descriptor format and the identify block.

Plain Python data computed from :class:`hw.contract.params.CoreParams`: the gateware decodes these
addresses, ``sw.compile.program_image`` writes to them, and the host computes the same map from the
identify reply (:func:`params_from_identify` then :func:`memory_map`). All addresses are 32-bit
*word* addresses on the core bus (``hw.contract.bus``).

Regions follow ``hw.contract.bus.REGIONS_BASE``; each is aligned to its size rounded up to a power
of two so the core decodes it with a mask:

========  ========================================================================================
PROGRAM   ``max_layers`` descriptors of :data:`DESCRIPTOR_WORDS` words (layer ``l`` at ``8 l``)
WEIGHTS   ``weight_depth`` rows of ``n_pe * k`` int8 weights; row ``r`` word ``w`` at
          ``r * weight_row_words + w``; PE ``n`` lane ``i`` is byte ``n * k + i`` of the row
BIAS      ``bt_depth`` signed biases, one per word (row ``r`` = ``n_pe`` entries of one pass)
THETA     ``bt_depth`` thresholds, one per word
INPUT     ``input_blocks`` spike blocks of ``block_words`` words, lane-major: word ``w`` of
          block ``r`` at ``w * input_lane_stride + r`` (``input_blocks`` rounded up to a power
          of two), so the words holding a block's planes below ``T`` are one contiguous run per
          word; sample ``b``'s input from block ``b * in_stride`` (layer 0's descriptor: the
          blocks of one sample's input)
OUTPUT    ``output_words`` words (membrane or packed word per neuron): sample ``b``'s from word
          ``b * passes * n_pe`` (``passes`` of the last layer)
COUNTERS  per layer ``l``: ``4 l + 0`` cycles, ``+1`` output spikes, ``+2`` skipped zero
          plane-chunks (sums over the batch); then ``4 max_layers + 0`` total cycles of the run
========  ========================================================================================

WEIGHTS, BIAS, THETA and INPUT are write-only (reads return 0); PROGRAM, OUTPUT and COUNTERS are
readable.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
from amaranth.hdl import signed
from amaranth.lib import data

from hw.contract import bus

from .params import CoreParams

__all__ = [
    "DESCRIPTOR_WORDS", "DESCRIPTOR_FIELDS", "descriptor_layout", "encode_descriptor",
    "decode_descriptor", "Region", "MemoryMap", "memory_map", "identify_words",
    "params_from_identify", "as_identified", "identity_mismatch", "CORE_VERSION",
    "COUNTER_WORDS_PER_LAYER",
    "weights_layout", "weight_words",
]

# --- layer descriptor --------------------------------------------------------------------------

DESCRIPTOR_WORDS = 8
COUNTER_WORDS_PER_LAYER = 4

#: (name, word, lsb, width) of every descriptor field.
DESCRIPTOR_FIELDS = (
    ("kind", 0, 0, 4),  # 0 = dense, 1 = conv (hidden, firing layers only; else BAD_KIND)
    ("lif", 0, 4, 1),  # 0 = SpikePack, 1 = LIF/IF
    ("readout", 0, 5, 1),  # return the membrane, do not fire
    ("reset_zero", 0, 6, 1),  # LIF: 0 = subtract theta, 1 = reset to zero
    ("last", 0, 7, 1),  # last layer of the program
    ("leak", 0, 8, 4),  # LIF: v -= v >> leak; 0 = no leak
    ("T", 0, 12, 5),  # time steps, 1..t_max
    ("theta_per_channel", 0, 17, 1),  # 1: thetas from THETA memory; 0: word 5
    ("fire_above", 0, 18, 1),  # LIF: 1 = spike when v > theta (v >= theta + 1), 0 = v >= theta
    ("compare_leaked", 0, 19, 1),  # LIF: compare against theta - (theta >> leak) (+ fire_above)
    ("out_base", 0, 20, 11),  # conv: first spike block of the output map (dense: 0, half l % 2)
    ("pad_rows_only", 0, 31, 1),  # conv: the padding adds rows only, no columns (a folded layer)
    ("n_in", 1, 0, 16),
    ("n_out", 1, 16, 16),
    ("chunks", 2, 0, 16),  # ceil(n_in / k)
    ("passes", 2, 16, 16),  # ceil(n_out / n_pe)
    ("w_base", 3, 0, 32),  # first weight row
    ("bt_base", 4, 0, 16),  # first bias/theta row
    # Layer 0 only: spike blocks of one sample's input, the step between samples in INPUT.
    ("in_stride", 4, 16, 16),
    ("theta", 5, 0, 32),  # layer threshold when theta_per_channel = 0
    # Words 6 and 7: convolution geometry (0 for a dense layer). For conv, n_in / n_out are the
    # channels C_in / C_out and chunks = ceil(C_in / k) channel chunks per position.
    ("in_h", 6, 0, 8),  # input map height
    ("in_w", 6, 8, 8),  # input map width
    ("conv_h", 6, 16, 8),  # conv output height (before pooling)
    ("conv_w", 6, 24, 8),  # conv output width (before pooling)
    ("kh", 7, 0, 3),  # kernel height, 1..7
    ("kw", 7, 3, 3),  # kernel width, 1..7
    ("stride", 7, 6, 2),  # 1..3
    ("pad", 7, 8, 2),  # zero padding, 0..3
    ("pool_log2", 7, 10, 2),  # max pool 2^pool_log2 (stride = kernel); 0 = none
    ("res_gain", 7, 12, 8),  # shortcut gain, two's complement; 0 = no shortcut
    ("res_input", 7, 20, 1),  # shortcut from the sample's input slot (else the ping-pong area)
    ("res_base", 7, 21, 11),  # first spike block of the shortcut's map
)

_ID_FIELDS_V = ("n_pe", "k", "t_max", "weight_bits", "acc_bits", "weight_depth", "act_chunks",
                "bt_depth", "max_layers", "batch_depth", "fire_units", "lif", "conv",
                "in_blocks", "out_words", "planes_per_beat", "pad_rows")
CORE_VERSION = zlib.crc32(repr(("spikepack-core", 2, DESCRIPTOR_FIELDS, _ID_FIELDS_V)).encode())


def descriptor_layout() -> data.StructLayout:
    """The descriptor as an Amaranth layout (bit ``32 w + lsb`` is field bit 0)."""
    fields = {}
    pos = 0
    for name, word, lsb, width in DESCRIPTOR_FIELDS:
        start = 32 * word + lsb
        if start > pos:
            fields[f"_pad{pos}"] = start - pos
        fields[name] = width
        pos = start + width
    if pos < 32 * DESCRIPTOR_WORDS:
        fields[f"_pad{pos}"] = 32 * DESCRIPTOR_WORDS - pos
    return data.StructLayout(fields)


def encode_descriptor(**values) -> list[int]:
    """Descriptor words from field values (missing fields are 0)."""
    known = {f[0] for f in DESCRIPTOR_FIELDS}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown descriptor fields {sorted(unknown)}")
    words = [0] * DESCRIPTOR_WORDS
    for name, word, lsb, width in DESCRIPTOR_FIELDS:
        v = int(values.get(name, 0))
        if not 0 <= v < (1 << width):
            raise ValueError(f"descriptor field {name}={v} does not fit {width} bits")
        words[word] |= v << lsb
    return words


def decode_descriptor(words) -> dict[str, int]:
    return {name: (int(words[word]) >> lsb) & ((1 << width) - 1)
            for name, word, lsb, width in DESCRIPTOR_FIELDS}


# --- regions -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Region:
    """A block of bus words: ``base`` (word address), ``size`` (words used), ``span`` (aligned)."""

    name: str
    base: int
    size: int
    span: int
    writable: bool
    readable: bool

    def __contains__(self, addr: int) -> bool:
        return self.base <= addr < self.base + self.size


@dataclasses.dataclass(frozen=True)
class MemoryMap:
    params: CoreParams
    regions: tuple[Region, ...]

    def __getitem__(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def end(self) -> int:
        return max(r.base + r.span for r in self.regions)


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def memory_map(params: CoreParams) -> MemoryMap:
    """Lay out the regions of ``params`` after :data:`hw.contract.bus.REGIONS_BASE`."""
    p = params
    wanted = [
        ("PROGRAM", p.max_layers * DESCRIPTOR_WORDS, True, True),
        ("WEIGHTS", p.weight_depth * p.weight_row_words, True, False),
        ("BIAS", p.bt_depth, True, False),
        ("THETA", p.bt_depth, True, False),
        ("INPUT", (p.block_words - 1) * p.input_lane_stride + p.input_blocks, True, False),
        ("OUTPUT", p.output_words, False, True),
        ("COUNTERS", (p.max_layers + 1) * COUNTER_WORDS_PER_LAYER, False, True),
    ]
    # Largest first: every base stays aligned to its own span.
    order = sorted(wanted, key=lambda w: -_pow2_ceil(w[1]))
    addr = bus.REGIONS_BASE
    placed = {}
    for name, size, wr, rd in order:
        span = _pow2_ceil(size)
        addr = -(-addr // span) * span
        placed[name] = Region(name, addr, size, span, wr, rd)
        addr += span
    if addr > 1 << bus.ADDR_BITS:
        raise ValueError(f"the memory map needs {addr} words, more than the bus addresses")
    return MemoryMap(params, tuple(placed[w[0]] for w in wanted))


# --- identify ----------------------------------------------------------------------------------

_ID_PARAMS = _ID_FIELDS_V
ID_WORDS = 32


def identify_words(params: CoreParams) -> list[int]:
    """The identify block at :data:`hw.contract.bus.ID_BASE`: magic, version, build parameters,
    padding.

    Word 2 + i is ``CoreParams`` field ``_ID_PARAMS[i]`` (``n_pe, k, t_max, weight_bits,
    acc_bits, weight_depth, act_chunks, bt_depth, max_layers, batch_depth, fire_units, lif,
    conv, in_blocks, out_words, planes_per_beat, pad_rows``); word 19 is
    :data:`DESCRIPTOR_WORDS`.
    """
    words = [bus.ID_MAGIC, CORE_VERSION] + [getattr(params, f) for f in _ID_PARAMS]
    words.append(DESCRIPTOR_WORDS)
    return words + [0] * (ID_WORDS - len(words))


def as_identified(params: CoreParams) -> CoreParams:
    """``params`` as :func:`params_from_identify` rebuilds them: the fields the identify block
    does not carry (timing only: ``weight_regs``, ``fire_pairs``, ``bank_passes``,
    ``weight_write_reg``, ``fetch_queue``, ``fire_out_reg``, ``pe_control_copies``,
    ``seq_prefetch``, ``walk_replay``, ``walk_skid``, ``fire_leak_mul``) at their defaults."""
    defaults = CoreParams(n_pe=params.n_pe, k=params.k)
    return dataclasses.replace(params, **{f.name: getattr(defaults, f.name)
                                          for f in dataclasses.fields(CoreParams)
                                          if f.name not in _ID_PARAMS})


def identity_mismatch(device: CoreParams, image: CoreParams) -> str | None:
    """Why a device of build ``device`` cannot run a program image compiled for ``image``, or
    None when it can.

    Only the fields the identify block carries decide (the rest are those ``as_identified``
    resets: timing-only fields change when a result comes out, never what the memories hold), so
    an image compiled for a preset (``spikepack compile --board arty_a7``) runs on a device that
    identifies as it. The reason names each differing field as ``name image -> device``.
    """
    diff = [f"{f} {getattr(image, f)} -> {getattr(device, f)}" for f in _ID_PARAMS
            if getattr(image, f) != getattr(device, f)]
    return ", ".join(diff) or None


def params_from_identify(words) -> CoreParams:
    """Rebuild the build parameters from an identify reply (refuses a foreign or newer core)."""
    words = [int(w) for w in words]
    if len(words) < 2 + len(_ID_PARAMS) or words[0] != bus.ID_MAGIC:
        raise ValueError(f"not a SpikePack core (magic {words[0] if words else None:#x})")
    if words[1] != CORE_VERSION:
        raise ValueError(f"core version {words[1]:#010x} is not {CORE_VERSION:#010x} "
                         f"(host and bitstream differ)")
    return CoreParams(**dict(zip(_ID_PARAMS, words[2:2 + len(_ID_PARAMS)], strict=False)))


# --- weight rows -------------------------------------------------------------------------------


def weights_layout(n_pe: int, k: int, weight_bits: int = 8) -> data.ArrayLayout:
    """One weight memory row as the PE array sees it: ``row[n][i]`` is PE ``n``'s weight of
    lane ``i``, so PE ``n`` lane ``i`` is byte ``n * k + i`` of the row (8-bit weights)."""
    return data.ArrayLayout(data.ArrayLayout(signed(weight_bits), k), n_pe)


def weight_words(rows) -> list[int]:
    """WEIGHTS region words of weight rows (shape ``(rows, n_pe * k)``, signed 8-bit values):
    four weights per little-endian word, in the byte order of :func:`weights_layout`."""
    wbytes = (np.asarray(rows, dtype=np.int64) & 0xFF).astype(np.uint32).reshape(-1, 4)
    words = wbytes[:, 0] | wbytes[:, 1] << 8 | wbytes[:, 2] << 16 | wbytes[:, 3] << 24
    return [int(w) for w in words]
