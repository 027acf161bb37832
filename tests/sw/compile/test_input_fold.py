"""``sw.compile.input_fold``: the kernel-column fold of a thin first conv layer is exact, pays, and
is made only where it costs the user nothing.

The oracle is the golden model on the unfolded network (:func:`sim.golden.model.run_network`)
and the image-level golden model (:func:`sw.compile.image_golden.run_image`), which runs the
image from its memories alone: both must give the same outputs for the folded image.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from boards.core_presets import MEDIUM, SMALL
from hw.contract.memory_map import decode_descriptor
from sim.golden.ir import IntLayer, IntNetwork, MaxPool
from sim.golden.model import run_network
from sim.tb.random_nets import random_conv_network, random_inputs
from sw.compile.conv_layout import conv_fetch
from sw.compile.image_file import load_image_file, save_image_file
from sw.compile.image_golden import run_image
from sw.compile.input_fold import InputFold, device_network, plan_input_fold
from sw.compile.program_image import build_image, encode_inputs, input_block_words

SMALL_CONV = dataclasses.replace(SMALL, conv=1)
MEDIUM_CONV = dataclasses.replace(MEDIUM, conv=1)
#: One sample per batch and room for it.
ONE = dataclasses.replace(SMALL_CONV, batch_depth=1, act_chunks=64, in_blocks=128)


def _conv(rng, c, h, w, co, kh, kw, *, stride=1, padding=0, pool=None, wb=4):
    weight = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(co, c, kh, kw))
    return IntLayer(weight, rng.integers(-3, 4, co), int(rng.integers(4, 12)), kind="conv",
                    in_shape=(c, h, w), stride=stride, padding=padding, pool=pool,
                    weight_bits=wb)


def _net(rng, c=1, side=8, kernel=(3, 3), padding=1, pool=None, T=3):
    first = _conv(rng, c, side, side, 4, *kernel, padding=padding, pool=pool)
    n = int(np.prod(first.out_shape))
    fc = IntLayer(rng.integers(-7, 8, (5, n)), np.zeros(5, np.int64), 9, readout=True,
                  weight_bits=4)
    return IntNetwork((first, fc), T)


def test_fold_is_exact_on_random_networks(seed):
    """Golden outputs of the device network (folded layer, folded images) == the network's, on
    random conv networks of two builds; the folded image run from its memories agrees too."""
    rng = np.random.default_rng(seed)
    folded = 0
    for i in range(60):
        params = (SMALL_CONV, MEDIUM_CONV)[i % 2]
        net = random_conv_network(rng, params, pool=bool(i % 3))
        x = random_inputs(rng, net, 2)
        device, xf = device_network(net, x, params)
        if device is net:
            assert plan_input_fold(net, params) is None
            continue
        folded += 1
        want = run_network(net, x)
        got = run_network(device, xf)
        for a, b in zip(want.layers, got.layers, strict=True):
            assert np.array_equal(a.output, b.output)
        image = build_image(net, params)
        assert image.input_fold is not None and image.in_shape == net.in_shape
        n = min(len(x), image.max_batch)
        assert np.array_equal(run_image(image, x[:n]).output, want.output[:n])
    assert folded >= 5, f"only {folded} of 60 random networks were folded (seed {seed})"


def test_fold_layout_and_walk():
    """Channel ``kx C + c`` of the folded map at ``(y, x)`` is the image's ``(c, y, x + kx)``
    padded left and right; the folded layer is ``kh x 1``, pads rows only and walks fewer
    tap-chunks."""
    rng = np.random.default_rng(0)
    net = _net(rng, c=2, side=6, kernel=(3, 3), padding=1)
    fold = plan_input_fold(net, ONE)  # k = 4: 3 x 2 channels in 2 blocks, not 3
    assert fold == InputFold((2, 6, 6), 3, 1, rows_stored=False)  # ONE has pad_rows
    assert fold.folded_shape == (6, 6, 6)  # no stored padding rows
    x = rng.integers(0, 8, (1, 2, 6, 6))
    xf = fold.fold_inputs(x)
    pad = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1)))
    for kx in range(3):
        for c in range(2):
            assert np.array_equal(xf[:, kx * 2 + c], pad[:, c, :, kx:kx + 6])
    layer = fold.fold_layer(net.layers[0])
    assert layer.kernel == (3, 1) and layer.in_shape == (6, 6, 6)
    assert layer.pads == (1, 0)
    assert layer.conv_shape == net.layers[0].conv_shape
    image = build_image(net, ONE)
    assert image.layers[0].taps == 3 and image.layers[0].chunks == 2  # was 9 taps x 1 chunk
    assert image.in_stride == 6 * 6 * 2
    # The descriptor pads the rows only; the compiler's walk leaves the padding rows' taps out.
    desc = decode_descriptor(image.layers[0].descriptor)
    assert desc["pad"] == 1 and desc["pad_rows_only"] == 1
    fetches = {(cy, cx): f for cy, cx, _, f in conv_fetch(desc)}
    assert len(fetches[0, 0]) == 2 * 2 and len(fetches[2, 3]) == 3 * 2  # top row: 2 of 3 taps


def test_a_build_without_pad_rows_stores_the_padding_rows():
    """Without ``pad_rows`` (the Arty A7-35T) the folded map holds the ``2 p`` padding rows and
    the folded layer has no padding: the walk steps through them, the outputs are the same."""
    rng = np.random.default_rng(0)
    net = _net(rng, c=2, side=6, kernel=(3, 3), padding=1)
    params = dataclasses.replace(ONE, pad_rows=0)
    fold = plan_input_fold(net, params)
    assert fold == InputFold((2, 6, 6), 3, 1, rows_stored=True)
    assert fold.folded_shape == (6, 8, 6)
    x = rng.integers(0, 8, (1, 2, 6, 6))
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    xf = fold.fold_inputs(x)
    for kx in range(3):
        for c in range(2):
            assert np.array_equal(xf[:, kx * 2 + c], pad[:, c, :, kx:kx + 6])
    layer = fold.fold_layer(net.layers[0])
    assert layer.pads == (0, 0) and layer.in_shape == (6, 8, 6)
    image = build_image(net, params)
    desc = decode_descriptor(image.layers[0].descriptor)
    assert desc["pad"] == 0 and desc["pad_rows_only"] == 0
    assert image.in_stride == 8 * 6 * 2
    want = run_network(net, x)
    assert np.array_equal(run_network(*device_network(net, x, params)).output, want.output)
    assert np.array_equal(run_image(image, x).output, want.output)


def test_a_same_convolution_folds_into_as_many_blocks():
    """A "same" convolution's folded map has as many positions as the image (no padding rows
    stored; the padding columns replace the kernel's extra columns): the MNIST CNN's first
    layer, 1x28x28 with a 5x5 kernel and padding 2, is 784 blocks folded, as unfolded."""
    rng = np.random.default_rng(5)
    net = _net(rng, c=1, side=28, kernel=(5, 5), padding=2)
    fold = plan_input_fold(net, dataclasses.replace(MEDIUM_CONV, in_blocks=784, batch_depth=1,
                                                    pad_rows=1))
    assert fold is not None and fold.folded_shape == (5, 28, 28)  # 784 blocks of k = 8


@pytest.mark.parametrize("why, build", [
    ("stride 2", lambda rng: _net(rng, kernel=(3, 3), padding=1).layers[0]),
    ("1-wide kernel", lambda rng: _conv(rng, 1, 8, 8, 4, 3, 1)),
    ("channels fill the blocks", lambda rng: _conv(rng, 4, 8, 8, 4, 3, 3, padding=1)),
])
def test_no_fold_where_it_does_not_pay(why, build):
    rng = np.random.default_rng(1)
    layer = build(rng)
    if why == "stride 2":
        layer = dataclasses.replace(layer, stride=2)
    n = int(np.prod(layer.out_shape))
    fc = IntLayer(rng.integers(-7, 8, (3, n)), np.zeros(3, np.int64), 9, readout=True,
                  weight_bits=4)
    net = IntNetwork((layer, fc), 2)
    assert plan_input_fold(net, ONE) is None, why
    assert build_image(net, ONE).input_fold is None


def test_no_fold_when_it_costs_batch_or_room():
    """Padding wider than "same" widens the folded map: that must not cost a sample per batch
    nor overflow INPUT."""
    rng = np.random.default_rng(2)
    net = _net(rng, c=1, side=8, kernel=(3, 3), padding=2)
    # 8 x 8 = 64 blocks unfolded, 8 x 10 = 80 folded.
    assert plan_input_fold(net, dataclasses.replace(SMALL_CONV, in_blocks=128,
                                                    batch_depth=2)) is None  # 2 -> 1 per batch
    assert plan_input_fold(net, dataclasses.replace(SMALL_CONV, in_blocks=160,
                                                    batch_depth=2)) is not None
    assert plan_input_fold(net, dataclasses.replace(SMALL_CONV, in_blocks=72,
                                                    batch_depth=1)) is None  # 80 > 72
    assert plan_input_fold(net, dataclasses.replace(ONE, conv=0)) is None


def test_no_fold_under_a_shortcut_from_the_input():
    rng = np.random.default_rng(3)
    first = _conv(rng, 1, 6, 6, 1, 3, 3, padding=1)
    second = dataclasses.replace(_conv(rng, 1, 6, 6, 1, 3, 3, padding=1), residual=(-1, 2))
    net = IntNetwork((first, second), 2)
    assert plan_input_fold(net, ONE) is None
    assert plan_input_fold(IntNetwork((first,), 2), ONE) is not None  # the same layer alone


@pytest.mark.parametrize("pad_rows", [1, 0])
def test_folded_image_inputs_and_file_round_trip(tmp_path, pad_rows):
    """``encode_inputs`` writes the folded map; the image file keeps the fold (with or without
    its padding rows) and reloads equal."""
    rng = np.random.default_rng(4)
    params = dataclasses.replace(ONE, pad_rows=pad_rows)
    net = _net(rng, c=1, side=8, kernel=(3, 3), padding=1, pool=MaxPool(2, 2))
    image = build_image(net, params)
    assert image.input_fold is not None and image.input_fold.rows_stored == (not pad_rows)
    x = rng.integers(0, 8, (1, 64))
    words = input_block_words(image, x)[0]
    assert words.shape == (image.in_stride, params.block_words)
    assert np.array_equal(words, input_block_words(build_image(net, params), x)[0])
    assert len(encode_inputs(image, x)[0].words) == image.in_stride
    assert np.array_equal(run_image(image, x).output, run_network(net, x).output)
    path = save_image_file(tmp_path / "fold.spkimg", image, net)
    assert load_image_file(path).image == image
