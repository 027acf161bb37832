"""A batch of a dense network run as one map: every layer a 1x1 convolution over a row of samples.

The core runs a batch sample by sample, and every layer of every sample pays the datapath's fill
and drain (about 40 cycles: descriptor, fetch, PE array, firing, writer; docs/results.md, "The
fixed cost of a layer"). A dense layer ``n_in -> n_out`` on ``B`` samples is exactly a 1x1
convolution ``n_in -> n_out`` over a ``1 x B`` map whose position ``b`` holds sample ``b``: every
position meets the same weights, and the conv walk (``hw.core.conv_walk``) takes position after
position without a gap. So the network

    ``W_l`` dense  ->  ``W_l[:, :, None, None]`` conv 1x1, input map ``(n_in, 1, B)``

computes every sample's outputs in one run of one "sample", and each layer pays its fill and
drain once for the ``B`` samples instead of ``B`` times. Nothing else changes:

* the INPUT words are the same: a conv map is stored as position-major channel chunks
  (``(y W + x) chunks + j``), which is the samples' ``chunks`` blocks one after the other;
* the OUTPUT words are the same: the last layer is a conv row of one pass per position
  (``hw.core.sequencer``), whose position ``b`` writes ``n_pe`` words at ``b n_pe``, where a
  batch run puts sample ``b``'s one pass;
* the weight rows, biases and thresholds are the same (a 1x1 conv's row ``p chunks + j`` is the
  dense layer's), only the descriptors differ (the map's width, layer 0's ``in_stride``);
* the per-layer counters are sums over the batch either way (spikes and skipped plane-chunks
  equal; cycles fewer).

It needs a conv build (``params.conv``), a network of dense layers only with at most ``n_pe``
outputs in its last layer (one pass), and room: each hidden layer's ``B`` outputs in a ping-pong
half (``act_chunks`` blocks), the ``B`` inputs in INPUT and the ``B n_pe`` output words in
OUTPUT (:func:`max_map_width`); the width is also the descriptor's 8-bit map side. Unlike a batch
run it is not bound by ``batch_depth``.

The host driver (``sw.host.driver.Device.infer``) runs each batch of ``B >= 2`` samples of a
dense image this way when the map holds it (:func:`runs_as_map`): it writes the map's descriptors
(:func:`map_program`, made from the image's own, ``8`` words a layer) before the batch's inputs,
runs one "sample", reads the same output words, and writes the image's own descriptors back after
the last map. The batches, and so the per-run counters, are the ones a batch run would have.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.contract.memory_map import decode_descriptor, encode_descriptor
from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork

from .conv_layout import CONV_LIMITS, KIND_CONV, KIND_DENSE
from .program_image import ImageWrite, ProgramImage

__all__ = ["max_map_width", "map_network", "map_inputs", "map_outputs", "image_map_width",
           "runs_as_map", "map_program", "own_program"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def max_map_width(net: IntNetwork, params: CoreParams) -> int:
    """The most samples of ``net`` one map run takes on a build with ``params``; 0 where the
    network cannot run as a map (module docstring: not a conv build, a conv layer or a
    shortcut in the network, a last layer of more than one pass)."""
    if not params.conv or any(layer.kind != "dense" or layer.residual is not None
                              for layer in net.layers):
        return 0
    return _width(params, _ceil_div(net.n_in, params.k),
                  [layer.n_out for layer in net.layers[:-1]], net.layers[-1].n_out)


def map_network(net: IntNetwork, width: int) -> IntNetwork:
    """``net`` (dense layers) as 1x1 conv layers over a ``1 x width`` map of samples."""
    if width < 1:
        raise ValueError(f"the map holds at least one sample, not {width}")
    layers = []
    for li, layer in enumerate(net.layers):
        if layer.kind != "dense" or layer.residual is not None:
            raise ValueError(f"layer {li}: only dense layers without a shortcut run as a map")
        w = np.asarray(layer.weight)
        layers.append(dataclasses.replace(layer, kind="conv", weight=w[:, :, None, None],
                                          in_shape=(w.shape[1], 1, width), stride=1,
                                          padding=0, pool=None))
    return IntNetwork(tuple(layers), net.T)


def map_inputs(x) -> np.ndarray:
    """A batch ``(B, n_in)`` as the one sample of the map network, ``(1, n_in B)`` in its
    ``(C, H, W)`` flatten order."""
    x = np.atleast_2d(np.asarray(x, dtype=np.int64))
    return np.ascontiguousarray(x.T).reshape(1, -1)


def map_outputs(y, width: int) -> np.ndarray:
    """The map network's output ``(1, n_out width)`` (``(C, H, W)`` order) as the batch's
    ``(width, n_out)``."""
    y = np.asarray(y)
    return np.ascontiguousarray(y.reshape(-1, width).T)


def _width(params: CoreParams, in_blocks: int, hidden_outs, last_out: int) -> int:
    """The widest map with ``in_blocks`` input blocks a sample, hidden layers of ``hidden_outs``
    neurons and a last layer of ``last_out``; 0 when the last layer takes two passes or more."""
    if _ceil_div(last_out, params.n_pe) != 1:
        return 0
    width = min(CONV_LIMITS.side, params.input_blocks // in_blocks,
                params.output_words // params.n_pe)
    for n_out in hidden_outs:
        width = min(width, params.act_chunks // _ceil_div(n_out, params.k))
    return max(width, 0)


def image_map_width(image: ProgramImage) -> int:
    """:func:`max_map_width` of the network ``image`` was built from, read off the image (its
    descriptors and build parameters): 0 where the image is not a dense one on a conv build."""
    if not image.params.conv or any(lay.kind != KIND_DENSE for lay in image.layers):
        return 0
    return _width(image.params, image.in_stride, [lay.n_out for lay in image.layers[:-1]],
                  image.layers[-1].n_out)


def runs_as_map(image: ProgramImage, batch: int) -> bool:
    """Whether the driver runs a batch of ``batch`` samples of ``image`` as one map."""
    return 2 <= batch <= image_map_width(image)


def _program_write(image: ProgramImage, descriptors) -> ImageWrite:
    words = tuple(w for d in descriptors for w in d)
    return ImageWrite("PROGRAM", image.memory_map["PROGRAM"].base, words)


def own_program(image: ProgramImage) -> ImageWrite:
    """The PROGRAM write of ``image`` itself (its layers' descriptors)."""
    return _program_write(image, [lay.descriptor for lay in image.layers])


def map_program(image: ProgramImage, width: int) -> ImageWrite:
    """The PROGRAM write that runs ``width`` samples of the dense ``image`` as one map: each
    descriptor a 1x1 conv over a ``1 x width`` map, layer 0's ``in_stride`` the map's blocks, each
    hidden layer's output at the bottom of its ping-pong half (where the dense layer writes).
    The same words as the image of :func:`map_network` (tested)."""
    if not 1 <= width <= image_map_width(image):
        raise ValueError(f"a map of {width} samples does not fit this image (at most "
                         f"{image_map_width(image)})")
    descriptors = []
    last = len(image.layers) - 1
    for li, lay in enumerate(image.layers):
        d = decode_descriptor(lay.descriptor)
        d.update(kind=KIND_CONV, in_h=1, in_w=width, conv_h=1, conv_w=width, kh=1, kw=1,
                 stride=1, pad=0, pool_log2=0,
                 out_base=0 if li == last else (li % 2) * image.params.act_chunks,
                 in_stride=d["in_stride"] * width if li == 0 else 0)
        descriptors.append(encode_descriptor(**d))
    return _program_write(image, descriptors)
