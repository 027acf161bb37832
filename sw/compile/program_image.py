"""Program images: an :class:`sim.golden.ir.IntNetwork` laid out in a SpikePack core's memories.

``build_image(net, params)`` maps every layer onto the build (descriptor, weight rows, bias and
threshold rows) and returns the bus writes that load it; it refuses, with :class:`DoesNotFitError`,
any network the build cannot run exactly -- it never truncates or wraps. ``encode_inputs``,
``decode_outputs`` and ``decode_counters`` convert batches and results. The host driver and the
testbenches use the same functions, so both load a core exactly the same way.

Layout (see ``hw.contract.memory_map``): layer ``l`` with ``C = ceil(n_in / k)`` chunks and
``P = ceil(n_out / n_pe)`` passes owns weight rows ``w_base .. w_base + P C - 1`` (row
``w_base + p C + c``, byte ``n k + i`` = ``W[p n_pe + n, c k + i]``) and bias/theta rows
``bt_base .. bt_base + P - 1``. A spike block (chunk ``c`` of an input) has bit ``q k + i`` =
bit ``q`` of the packed word of neuron ``c k + i``. A network with conv layers is laid out by
``sw.compile.conv_layout`` (feature maps as channel-chunked HWC blocks, weight rows per pass, tap
and channel chunk, the conv descriptor words).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.contract.memory_map import (
    COUNTER_WORDS_PER_LAYER,
    MemoryMap,
    decode_descriptor,
    encode_descriptor,
    memory_map,
    weight_words,
)
from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork, Mode, Reset
from sim.golden.packing import check_packed, feature_map_blocks

from .block_order import BlockOrder, ordered_network
from .conv_layout import KIND_CONV
from .errors import DoesNotFitError, check_layer_fits, check_network_fits
from .input_fold import InputFold, folded_network, plan_input_fold

__all__ = ["DoesNotFitError", "ImageWrite", "LayerLayout", "ProgramImage", "build_image",
           "encode_inputs", "input_block_words", "decode_outputs", "output_range",
           "batch_outputs", "decode_counters", "Counters"]


@dataclasses.dataclass(frozen=True)
class ImageWrite:
    """Consecutive 32-bit words written from word address ``addr`` into region ``region``."""

    region: str
    addr: int
    words: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class LayerLayout:
    index: int
    n_in: int
    n_out: int
    chunks: int
    passes: int
    w_base: int
    bt_base: int
    descriptor: tuple[int, ...]
    taps: int = 1  #: kernel taps ``kh kw`` of a conv layer (1 for dense)
    kind: int = 0  #: descriptor kind: 0 dense, 1 conv

    @property
    def weight_rows(self) -> int:
        """Weight rows the layer owns: ``passes x taps x chunks``."""
        return self.passes * self.taps * self.chunks


@dataclasses.dataclass(frozen=True)
class ProgramImage:
    """What to write to load a network, and where its inputs and outputs live.

    Members
    -------
    params : CoreParams
    memory_map : MemoryMap
    layers : tuple of LayerLayout
    writes : tuple of ImageWrite
        PROGRAM, WEIGHTS, BIAS and THETA contents (write them all before a run).
    T, n_in, n_out : int
    readout : bool
        The last layer returns membranes (signed words) rather than packed spikes.
    in_shape : tuple of int
        The network input's shape: ``(n_in,)``, or ``(C, H, W)`` for an image (first layer conv),
        which :func:`encode_inputs` writes as channel-chunked HWC blocks. ``()``: ``(n_in,)``.
    input_fold : InputFold or None
        The kernel-column fold of a thin first conv layer (:mod:`sw.compile.input_fold`): the
        image lays out the folded layer and :func:`encode_inputs` writes each image folded.
    block_order : BlockOrder or None
        The order the layers' inputs are stored in (:mod:`sw.compile.block_order`): the image
        lays out the ordered network and :func:`encode_inputs` writes each sample in order.
    """

    params: CoreParams
    memory_map: MemoryMap
    layers: tuple[LayerLayout, ...]
    writes: tuple[ImageWrite, ...]
    T: int
    n_in: int
    n_out: int
    readout: bool
    in_shape: tuple[int, ...] = ()
    input_fold: InputFold | None = None
    block_order: BlockOrder | None = None

    @property
    def weight_rows(self) -> int:
        return sum(lay.weight_rows for lay in self.layers)

    @property
    def in_stride(self) -> int:
        """Spike blocks of one sample's input in INPUT (layer 0's descriptor ``in_stride``)."""
        return decode_descriptor(self.layers[0].descriptor)["in_stride"]

    @property
    def out_positions(self) -> int:
        """Output positions of one sample: 1, or the width of a last conv layer (a row of one
        pass per position, :mod:`sw.compile.batch_map`)."""
        last = self.layers[-1]
        return decode_descriptor(last.descriptor)["conv_w"] if last.kind == KIND_CONV else 1

    @property
    def out_stride(self) -> int:
        """OUTPUT words of one sample: the last layer's passes of ``n_pe`` neurons (at each of
        its positions)."""
        return self.layers[-1].passes * self.params.n_pe * self.out_positions

    @property
    def max_batch(self) -> int:
        """Samples one batch run of this network takes: ``batch_depth``, or fewer when the
        samples' inputs or outputs fill the INPUT or OUTPUT region first; 1 when the last layer
        is a conv row (the core runs those one sample a run)."""
        p = self.params
        if self.layers[-1].kind == KIND_CONV:
            return 1
        return min(p.batch_depth, p.input_blocks // self.in_stride,
                   p.output_words // self.out_stride)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _words(values: np.ndarray, bits: int) -> list[int]:
    mask = (1 << bits) - 1
    return [int(v) & mask for v in values]


def build_image(net: IntNetwork, params: CoreParams, order: BlockOrder | None = None,
                ) -> ProgramImage:
    """Lay ``net`` out for a core built with ``params``; refuse what does not fit.

    ``order`` (:func:`sw.compile.block_order.plan_block_order`) stores the layers' inputs in that
    order: the image lays out :func:`~sw.compile.block_order.ordered_network` (the same outputs)
    and remembers the order for :func:`encode_inputs`; an identity order is dropped.
    """
    if not isinstance(net, IntNetwork):
        raise TypeError(f"net must be a sim.golden.ir.IntNetwork, not {type(net).__name__}")
    if not isinstance(params, CoreParams):
        raise TypeError("params must be a hw.contract.params.CoreParams, not "
                        f"{type(params).__name__}")
    if order is not None:
        order.check(net)
        if not order.identity:
            image = build_image(ordered_network(net, order), params)
            return dataclasses.replace(image, block_order=order)
    if any(layer.kind == "conv" for layer in net.layers):
        from .conv_layout import conv_image_parts  # conv images: sw.compile.conv_layout
        fold = plan_input_fold(net, params)  # a thin first layer runs folded
        layers, writes = conv_image_parts(folded_network(net, params), params)
        return _check_io(ProgramImage(
            params, memory_map(params), tuple(LayerLayout(**d) for d in layers),
            tuple(ImageWrite(*w) for w in writes), net.T, net.n_in, net.n_out,
            net.layers[-1].readout, in_shape=tuple(net.in_shape), input_fold=fold))
    p, T = params, net.T
    mm = memory_map(p)
    check_network_fits(net, p)
    layers, weights, biases, thetas = [], [], [], []
    w_base = bt_base = 0
    for li, layer in enumerate(net.layers):
        where = f"layer {li} ({layer.n_in} -> {layer.n_out})"
        if layer.kind != "dense":
            raise DoesNotFitError(f"{where}: kind {layer.kind!r} is not supported by the core")
        for what, n in (("inputs", layer.n_in), ("outputs", layer.n_out)):
            if n > p.max_neurons:
                raise DoesNotFitError(f"{where} has {n} {what}; the build's layers are at most "
                                      f"{p.max_neurons} neurons wide (act_chunks * k)")
        check_layer_fits(where, layer, p, T)
        theta = layer.theta_vector
        chunks, passes = _ceil_div(layer.n_in, p.k), _ceil_div(layer.n_out, p.n_pe)
        # Weight rows: (pass, chunk) -> n_pe x k int8.
        wpad = np.zeros((passes * p.n_pe, chunks * p.k), dtype=np.int64)
        wpad[:layer.n_out, :layer.n_in] = layer.weight
        rows = wpad.reshape(passes, p.n_pe, chunks, p.k).transpose(0, 2, 1, 3)
        weights.append(rows.reshape(passes * chunks, p.n_pe * p.k))
        bpad = np.zeros(passes * p.n_pe, dtype=np.int64)
        bpad[:layer.n_out] = layer.bias
        biases.append(bpad)
        per_channel = np.ndim(layer.theta) == 1
        tpad = np.ones(passes * p.n_pe, dtype=np.int64)
        tpad[:layer.n_out] = theta
        thetas.append(tpad)
        desc = encode_descriptor(
            kind=0, lif=int(layer.mode is Mode.LIF), readout=int(layer.readout),
            reset_zero=int(layer.reset is Reset.ZERO), last=int(li == len(net.layers) - 1),
            leak=layer.leak_shift if layer.mode is Mode.LIF else 0, T=T,
            theta_per_channel=int(per_channel), n_in=layer.n_in, n_out=layer.n_out,
            chunks=chunks, passes=passes, w_base=w_base, bt_base=bt_base,
            in_stride=chunks if li == 0 else 0,
            theta=0 if per_channel else int(theta[0]),
            fire_above=int(layer.mode is Mode.LIF and layer.fire_above),
            compare_leaked=int(layer.mode is Mode.LIF and layer.compare_leaked),
        )
        layers.append(LayerLayout(li, layer.n_in, layer.n_out, chunks, passes, w_base, bt_base,
                                  tuple(desc)))
        w_base += passes * chunks
        bt_base += passes
    if w_base > p.weight_depth:
        raise DoesNotFitError(f"the network needs {w_base} weight rows of {p.n_pe * p.k} "
                              f"weights; the build has {p.weight_depth} (weight_depth)")
    if bt_base > p.bt_rows:
        raise DoesNotFitError(f"the network needs {bt_base * p.n_pe} bias/theta entries (padded "
                              f"to passes of {p.n_pe}); the build has {p.bt_depth} (bt_depth)")

    program = [w for lay in layers for w in lay.descriptor]
    writes = (
        ImageWrite("PROGRAM", mm["PROGRAM"].base, tuple(program)),
        ImageWrite("WEIGHTS", mm["WEIGHTS"].base, tuple(weight_words(np.concatenate(weights)))),
        ImageWrite("BIAS", mm["BIAS"].base, tuple(_words(np.concatenate(biases), 32))),
        ImageWrite("THETA", mm["THETA"].base, tuple(_words(np.concatenate(thetas), 32))),
    )
    return _check_io(ProgramImage(p, mm, tuple(layers), writes, T, net.n_in, net.n_out,
                                  net.layers[-1].readout))


def _check_io(image: ProgramImage) -> ProgramImage:
    """Refuse an image one sample of which does not fit the INPUT or OUTPUT region."""
    p = image.params
    if image.in_stride > p.input_blocks:
        shape = f"input {image.in_shape}" if image.in_shape else f"{image.n_in} inputs"
        raise DoesNotFitError(
            f"the network's {shape} needs {image.in_stride} spike blocks of {p.k} channels per "
            f"sample; the build's INPUT region holds {p.input_blocks} (in_blocks): use a build "
            f"with a larger in_blocks or a smaller input")
    if image.out_stride > p.output_words:
        raise DoesNotFitError(
            f"the network's {image.n_out} outputs take {image.out_stride} words per sample "
            f"(whole passes of {p.n_pe}); the build's OUTPUT region holds {p.output_words} "
            f"(out_words)")
    return image


def input_block_words(image: ProgramImage, x) -> np.ndarray:
    """The spike blocks of a batch ``x`` of packed words as INPUT holds them: ``(batch, blocks,
    block_words)`` words, block ``j`` of sample ``b`` being INPUT block ``b in_stride + j``
    (bit ``q k + i`` of a block = bit ``q`` of its ``i``-th neuron; the words from
    ``image.params.input_words_per_block(T)`` on are zero). ``x`` as :func:`encode_inputs`
    takes it."""
    p = image.params
    x = check_packed(np.atleast_2d(x), image.T, "inputs")
    if len(image.in_shape) == 3 and x.shape[1:] == image.in_shape:
        x = x.reshape(len(x), -1)
    if x.shape[1] != image.n_in:
        raise ValueError(f"the network takes {image.n_in} inputs, not {x.shape[1]}")
    if len(x) > image.max_batch:
        raise DoesNotFitError(f"a batch of {len(x)} samples is more than the build holds for "
                              f"this network ({image.max_batch}: {_batch_limit(image)}); split it")
    if image.block_order is not None:  # the inputs in the order the image stores them
        x = image.block_order.inputs(x)
    if len(image.in_shape) == 3:  # an image: channel-chunked HWC blocks, (y W + x) chunks + j
        maps = x.reshape((len(x),) + image.in_shape)
        if image.input_fold is not None:  # the first layer's kernel columns side by side
            maps = image.input_fold.fold_inputs(maps)
        pad = feature_map_blocks(maps, p.k).reshape(len(x), -1)
        chunks = pad.shape[1] // p.k
    else:
        chunks = _ceil_div(image.n_in, p.k)
        pad = np.zeros((len(x), chunks * p.k), dtype=np.int64)
        pad[:, :image.n_in] = x
    # bit q*k + i of block c = bit q of neuron c*k + i
    bits = (pad.reshape(len(x), chunks, 1, p.k) >> np.arange(p.t_max).reshape(1, 1, -1, 1)) & 1
    bits = bits.reshape(len(x), chunks, p.t_max * p.k)
    weights = 1 << np.arange(32, dtype=np.int64)
    return (bits.reshape(len(x), chunks, p.block_words, 32) * weights).sum(axis=-1)


def encode_inputs(image: ProgramImage, x) -> list[ImageWrite]:
    """INPUT writes for a batch ``x`` of packed words, shape ``(batch, n_in)``.

    An image network also takes ``(batch, C, H, W)`` (``(batch, n_in)`` is that flattened in
    ``(C, H, W)`` order).

    INPUT is lane-major (``hw.contract.memory_map``): the batch's blocks are one contiguous run
    of rows, written one block word at a time, and only the words that hold planes below ``T``
    (:meth:`hw.contract.params.CoreParams.input_words_per_block`: 2 of 4 at ``T = 4`` on a
    ``t_max = 8``, ``k = 16`` build). The core reads no plane at or above ``T``, so the other
    words are not sent (they keep whatever they held): one write per block word used, of
    ``(batch - 1) in_stride + blocks`` words each (the rows between samples, if any, as zeros).
    """
    p = image.params
    words = input_block_words(image, x)
    n, chunks = words.shape[:2]
    if n == 0:
        return []
    rows = (n - 1) * image.in_stride + chunks
    run = np.zeros((rows, p.block_words), dtype=np.int64)
    for b in range(n):
        run[b * image.in_stride:b * image.in_stride + chunks] = words[b]
    base = image.memory_map["INPUT"].base
    return [ImageWrite("INPUT", base + w * p.input_lane_stride, tuple(int(v) for v in run[:, w]))
            for w in range(p.input_words_per_block(image.T))]


def _batch_limit(image: ProgramImage) -> str:
    """Why :attr:`ProgramImage.max_batch` is what it is, in words."""
    p = image.params
    if image.max_batch == p.batch_depth:
        return "batch_depth"
    if image.layers[-1].kind == KIND_CONV:
        return "the last layer is a conv row, run one sample a run"
    if p.input_blocks // image.in_stride == image.max_batch:
        return (f"a sample's input is {image.in_stride} spike blocks of the INPUT region's "
                f"{p.input_blocks}")
    return (f"a sample's outputs take {image.out_stride} words of the OUTPUT region's "
            f"{p.output_words}")


def output_range(image: ProgramImage, batch: int) -> tuple[int, int]:
    """``(addr, count)``: one READ that covers the outputs of every sample of a batch (the words
    between them included; :func:`batch_outputs` picks the outputs out of it)."""
    ranges = output_addresses(image, batch)
    start = ranges[0][0]
    return start, ranges[-1][0] + ranges[-1][1] - start


def batch_outputs(image: ProgramImage, batch: int, words) -> list[int]:
    """The words read at :func:`output_range` -> the outputs' words in :func:`output_addresses`
    order (what :func:`decode_outputs` takes)."""
    start, count = output_range(image, batch)
    if len(words) != count:
        raise ValueError(f"{len(words)} words read, not the {count} of the batch's outputs")
    return [w for addr, n in output_addresses(image, batch)
            for w in words[addr - start:addr - start + n]]


def output_addresses(image: ProgramImage, batch: int) -> list[tuple[int, int]]:
    """``(addr, count)`` to read the outputs of each sample of a batch."""
    base = image.memory_map["OUTPUT"].base
    positions = image.out_positions
    step, count = image.out_stride // positions, image.n_out // positions
    return [(base + b * image.out_stride + q * step, count)
            for b in range(batch) for q in range(positions)]


def decode_outputs(image: ProgramImage, words) -> np.ndarray:
    """Outputs of a batch from the words read at :func:`output_addresses`.

    Membranes (signed) for a readout network, packed ``T``-bit words otherwise.
    """
    positions = image.out_positions
    w = np.asarray(words, dtype=np.int64).reshape(-1, positions, image.n_out // positions)
    w = w.transpose(0, 2, 1).reshape(-1, image.n_out)  # (C, H, W) order, as the golden model's
    if image.readout:
        return np.where(w >= 1 << 31, w - (1 << 32), w)
    return w & ((1 << image.T) - 1)


@dataclasses.dataclass(frozen=True)
class Counters:
    """Performance counters of the last run (sums over its batch)."""

    cycles: np.ndarray  #: per layer
    spikes: np.ndarray  #: output 1-bits per layer
    skipped: np.ndarray  #: all-zero plane-chunks skipped per layer
    total_cycles: int


def counter_range(image: ProgramImage) -> tuple[int, int]:
    """``(addr, count)`` of the counter words to read."""
    p = image.params
    return image.memory_map["COUNTERS"].base, (p.max_layers + 1) * COUNTER_WORDS_PER_LAYER


def decode_counters(image: ProgramImage, words) -> Counters:
    w = np.asarray(words, dtype=np.int64)
    n = len(image.layers)
    per = w[:COUNTER_WORDS_PER_LAYER * n].reshape(n, COUNTER_WORDS_PER_LAYER)
    total = int(w[COUNTER_WORDS_PER_LAYER * image.params.max_layers])
    return Counters(per[:, 0].copy(), per[:, 1].copy(), per[:, 2].copy(), total)


