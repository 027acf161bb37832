"""``sw.compile.block_order``: storing the layers' inputs in another order is exact, groups the
inputs that are silent together, and travels with the image (file, ``encode_inputs``).

The oracles are the golden model of the network as written (:func:`sim.golden.model.run_network`)
and the image-level golden model (:func:`sw.compile.image_golden.run_image`, the image run from
its memories alone): an ordered image must give the network's outputs and spikes exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from boards.core_presets import MEDIUM, SMALL
from sim.golden.ir import IntLayer, IntNetwork
from sim.golden.model import run_network
from sim.tb.random_nets import random_conv_network, random_network
from sw.compile.block_order import (
    BlockOrder,
    beat_activity,
    ordered_network,
    plan_block_order,
)
from sw.compile.image_file import load_image_file, save_image_file
from sw.compile.image_golden import run_image
from sw.compile.program_image import build_image, encode_inputs
from sw.research.cycle_model import chunk_plane_counts


def _calibration(rng, n, n_in, T, silent=0.6):
    """Packed inputs where a fixed random subset of the inputs is almost always silent and the
    rest fire at random: the kind of structure (a digit's border) the order exploits."""
    quiet = rng.random(n_in) < silent
    x = rng.integers(0, 1 << T, (n, n_in))
    x[:, quiet] *= rng.random((n, int(quiet.sum()))) < 0.02
    return x


@pytest.mark.parametrize("params", [SMALL, MEDIUM], ids=["small", "medium"])
def test_ordered_image_is_exact_on_random_networks(seed, params):
    """Random dense networks (both modes, readout or not) and random calibration data: the
    planned order is a permutation per layer, the ordered network's golden outputs and spikes on
    the ordered inputs == the network's on the inputs, and the ordered image run from its
    memories on the inputs as the user gives them == the network's golden model."""
    rng = np.random.default_rng(seed)
    reordered = 0
    for _ in range(12):
        net = random_network(rng, params, max_depth=3)
        x = _calibration(rng, 64, net.n_in, net.T)
        order = plan_block_order(net, x, params)
        assert len(order.orders) == len(net.layers)
        for layer, o in zip(net.layers, order.orders, strict=True):
            assert o is None or sorted(o) == list(range(layer.n_in))
        assert order.orders[0] is None or net.n_in > params.k
        reordered += not order.identity
        image = build_image(net, params, order)
        xt = _calibration(rng, image.max_batch, net.n_in, net.T)  # not the calibration data
        golden = run_network(net, xt)
        device = run_network(ordered_network(net, order), order.inputs(xt))
        assert np.array_equal(device.output, golden.output)
        for a, b in zip(device.layers, golden.layers, strict=True):
            assert np.array_equal(np.sort(a.output.reshape(len(xt), -1), axis=1),
                                  np.sort(b.output.reshape(len(xt), -1), axis=1))
        run = run_image(image, xt)
        assert np.array_equal(run.output, golden.rows)
        plain = run_image(build_image(net, params), xt)
        assert np.array_equal(run.spikes, plain.spikes)
    assert reordered >= 6


def test_order_groups_the_silent_inputs():
    """Inputs silent on most samples, spread over every block, end up in blocks of their own:
    on fresh samples of the same kind the ordered layer's beats (the issuer's count) are fewer,
    the blocks it skips more."""
    rng = np.random.default_rng(5)
    T, n_in = 4, 160
    w = rng.integers(-7, 8, (16, n_in))
    net = IntNetwork((IntLayer(w, np.zeros(16, np.int64), 5, readout=True, weight_bits=4),), T)
    x = _calibration(rng, 400, n_in, T, silent=0.5)
    order = plan_block_order(net, x[:200], SMALL)
    beats = [chunk_plane_counts(a, T, SMALL.k, SMALL.planes_per_beat).sum(axis=1).mean()
             for a in (x[200:], order.inputs(x[200:]))]
    print("beats per pass: input order", beats[0], "ordered", beats[1])
    assert beats[1] < 0.75 * beats[0]


def test_beat_activity_counts_the_issuers_beats(rng):
    """``beat_activity`` ORed over a block's inputs is the issuer's beat count
    (``chunk_plane_counts``), for one and two planes per beat and odd ``T``."""
    for T in (1, 3, 4, 5):
        x = rng.integers(0, 1 << T, (20, 48)) * (rng.random((20, 48)) < 0.3)
        for planes in (1, 2):
            act = beat_activity(x, T, planes).reshape(-1, 20, 3, 16).any(axis=3)  # (slot, n, c)
            assert np.array_equal(act.sum(axis=0), chunk_plane_counts(x, T, 16, planes))


def test_identity_where_nothing_is_reordered(rng):
    """A conv network, and layers of one block, keep their order; build_image drops an identity
    order, so the image is the one without an order."""
    conv = dataclasses.replace(SMALL, conv=1)
    net = random_conv_network(rng, conv)
    x = rng.integers(0, 1 << net.T, (8, net.n_in))
    assert plan_block_order(net, x, conv).identity
    k = SMALL.k
    narrow = IntNetwork((IntLayer(rng.integers(-3, 4, (4, k)), np.zeros(4, np.int64), 3,
                                  weight_bits=4),), 2)
    order = plan_block_order(narrow, rng.integers(0, 4, (8, k)), SMALL)
    assert order.orders == (None,)
    assert build_image(narrow, SMALL, order) == build_image(narrow, SMALL)


def test_bad_orders_are_refused(rng):
    net = random_network(rng, SMALL, max_depth=2)
    with pytest.raises(ValueError, match="not a permutation"):
        BlockOrder(((0, 0),))
    with pytest.raises(ValueError, match="layers"):
        build_image(net, SMALL, BlockOrder((None,) * (len(net.layers) + 1)))
    short = (tuple(range(net.n_in - 1)),) + (None,) * (len(net.layers) - 1)
    with pytest.raises(ValueError, match="inputs; its order has"):
        build_image(net, SMALL, BlockOrder(short))
    with pytest.raises(ValueError, match="calibration inputs have"):
        plan_block_order(net, np.zeros((2, net.n_in + 1), np.int64), SMALL)


def test_image_file_keeps_the_order(tmp_path, rng):
    """An ordered image survives its file: the same image back, the order with it, and the
    inputs written in order (``encode_inputs``)."""
    for _ in range(50):
        net = random_network(rng, SMALL, max_depth=2)
        if net.n_in > SMALL.k:
            break
    x = _calibration(rng, 32, net.n_in, net.T)
    order = plan_block_order(net, x, SMALL)
    assert order.orders[0] is not None
    image = build_image(net, SMALL, order)
    save_image_file(tmp_path / "n.spkimg", image, net, "board small")
    back = load_image_file(tmp_path / "n.spkimg")
    assert back.image == image and back.image.block_order == order
    xb = x[:image.max_batch]
    assert encode_inputs(image, xb) == encode_inputs(build_image(net, SMALL),
                                                     order.inputs(xb))
