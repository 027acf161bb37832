"""The PE-array work of conv networks (sw.research.cnn_rtl) against brute-force counts, and the
choice of the core the MNIST CNN runs on (the RTL runs are in tests/hw/core/test_mnist_cnn_rtl.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from boards import CORE_PRESETS
from hw.contract.params import CoreParams
from hw.core.fire import FireUnit
from sim.golden.ir import IntLayer, IntNetwork, MaxPool, Mode
from sim.golden.model import run_network
from sim.tb.random_nets import expected_conv_counters, random_conv_network, random_inputs
from sw.compile.errors import DoesNotFitError
from sw.research.cnn_rtl import (
    array_adds,
    choose_core,
    feature_map_core,
    layer_terms,
    usable_lanes,
)

#: A small build: 4 PEs x 4 lanes, 2 firing units; random channel counts give partial passes and
#: partial blocks.
P = CoreParams(n_pe=4, k=4, t_max=8, acc_bits=24, weight_depth=1024, act_chunks=64,
               bt_depth=64, fire_units=2, max_layers=8, batch_depth=2)


def _brute_force(net: IntNetwork, x, params: CoreParams):
    """Adds, walk steps, beats, firing cycles and skipped planes per sample and layer, by
    walking every position, pass, tap, chunk and bit-plane one at a time (a shortcut: the
    pass's ``n_pe / k`` blocks of its map after the taps)."""
    k, n_pe, T = params.k, params.n_pe, net.T
    res = run_network(net, x, acc_bits=params.acc_bits)
    n = len(x)
    adds, walk, beats, fire, skipped = (np.zeros((n, len(net.layers)), dtype=np.int64)
                                        for _ in range(5))
    a = np.asarray(x).reshape((n,) + tuple(net.layers[0].in_shape))
    groups = n_pe // k
    for li, layer in enumerate(net.layers):
        outs = layer.out_channels
        pass_outs = [min(n_pe, outs - p * n_pe) for p in range(-(-outs // n_pe))]
        period = (FireUnit.period(T, layer.mode == Mode.LIF, params.fire_planes == 2)
                  * (n_pe // params.fire_units))
        for i in range(n):
            if a.ndim == 4:  # a feature map (C, H, W): blocks of k channels per position
                c, h, w = a.shape[1:]
                blocks = {(yy, xx, j): [int(a[i, ch, yy, xx]) for ch in range(j * k,
                                                                           min(c, j * k + k))]
                          for yy in range(h) for xx in range(w) for j in range(-(-c // k))}
            else:
                flat = a[i].ravel()
                blocks = {(0, 0, j): [int(v) for v in flat[j * k:j * k + k]]
                          for j in range(-(-len(flat) // k))}

            def planes(words):
                return sum(1 for t in range(T) if any((v >> t) & 1 for v in words))

            res_blocks = None
            if layer.residual is not None:
                src = layer.residual.source
                src_map = np.reshape(x[i] if src < 0 else res.layers[src].output[i],
                                     layer.conv_shape)
                c_out = layer.conv_shape[0]
                res_blocks = {(yy, xx, j): [int(src_map[ch, yy, xx])
                                            for ch in range(j * k, min(c_out, j * k + k))]
                              for yy in range(src_map.shape[1]) for xx in range(src_map.shape[2])
                              for j in range(-(-c_out // k))}

            if layer.kind == "conv":
                _, ch_out, cw_out = layer.conv_shape
                if layer.pool is not None:
                    pk = layer.pool.kernel
                    ch_out, cw_out = ch_out // pk * pk, cw_out // pk * pk
                kh, kw = layer.kernel
                chunks = -(-a.shape[1] // k)
                for oy in range(ch_out):
                    for ox in range(cw_out):
                        for p, o in enumerate(pass_outs):
                            fire[i, li] += period
                            # The taps inside the map (padding takes no step); the last
                            # ends the pass, or one empty step when none is inside.
                            inside = [blocks[iy, ix, j]
                                      for ky in range(kh) for kx in range(kw)
                                      for iy in [oy * layer.stride + ky - layer.padding]
                                      for ix in [ox * layer.stride + kx - layer.padding]
                                      for j in range(chunks) if (iy, ix, j) in blocks]
                            if not inside and res_blocks is None:
                                walk[i, li] += 1
                                beats[i, li] += 1
                            for t, words in enumerate(inside):
                                walk[i, li] += 1
                                last = t == len(inside) - 1 and res_blocks is None
                                q = planes(words)
                                adds[i, li] += q * len(words) * o
                                beats[i, li] += max(q, int(last))
                                skipped[i, li] += T - q
                            for b in range(groups if res_blocks is not None else 0):
                                walk[i, li] += 1
                                last = b == groups - 1
                                words = res_blocks.get((oy, ox, p * groups + b))
                                if words is None:  # past the shortcut's channels: padding
                                    beats[i, li] += int(last)
                                    continue
                                q = planes(words)
                                adds[i, li] += q * len(words)  # one PE per channel
                                beats[i, li] += max(q, int(last))
                                skipped[i, li] += T - q
            else:
                order = sorted(blocks)  # HWC order: position, then chunk
                for o in pass_outs:
                    fire[i, li] += period
                    for bi, key in enumerate(order):
                        q = planes(blocks[key])
                        walk[i, li] += 1
                        adds[i, li] += q * len(blocks[key]) * o
                        beats[i, li] += max(q, int(bi == len(order) - 1))
                        skipped[i, li] += T - q
        a = np.asarray(res.layers[li].output)
        if len(layer.out_shape) == 3:
            a = a.reshape((n,) + tuple(layer.out_shape))
    return adds, walk, beats, fire, skipped


@pytest.mark.parametrize("case", range(8))
def test_array_adds_and_terms_match_brute_force(rng, case):
    net = random_conv_network(rng, P, pool=True)
    x = random_inputs(rng, net, 2, [None, None, "ones", "zeros"][case % 4])
    adds, walk, beats, fire, skipped = _brute_force(net, x, P)
    # The brute force walks the blocks the core reads: its skipped planes are the golden
    # counters the RTL is checked against.
    for i in range(len(x)):
        assert np.array_equal(skipped[i], expected_conv_counters(net, x[i:i + 1], P)[1])
    assert np.array_equal(array_adds(net, x, P), adds)
    terms = layer_terms(net, x, P)
    assert np.array_equal(terms["walk"], walk)
    assert np.array_equal(terms["beats"], beats)
    assert np.array_equal(terms["fire"], fire)
    # No beat does more adds than the array has lanes.
    assert np.all(adds <= beats * P.n_pe * P.k)


def test_array_adds_all_ones_dense_is_synapses_times_T(rng):
    """With every bit set, a dense layer's adds are n_in n_out T (bench/bench_core.py's adds)."""
    w = rng.integers(-3, 4, size=(7, 10))
    net = IntNetwork((IntLayer(weight=w, bias=np.zeros(7, int), theta=3, readout=True),), T=3)
    x = np.full((1, 10), 7)
    assert array_adds(net, x, P)[0, 0] == 10 * 7 * 3


def test_array_adds_conv_counts_only_taps_inside_the_map():
    """A 1-channel 3x3 map, kernel 3, padding 1, all bits set: each output position adds over
    its in-bounds taps only (4 corners x 4 + 4 edges x 6 + centre 9 = 49 taps)."""
    conv = IntLayer(weight=np.ones((2, 1, 3, 3), int), bias=np.zeros(2, int), theta=5,
                    kind="conv", in_shape=(1, 3, 3), padding=1)
    dense = IntLayer(weight=np.ones((1, 18), int), bias=np.zeros(1, int), theta=1, readout=True)
    net = IntNetwork((conv, dense), T=2)
    adds = array_adds(net, np.full((1, 9), 3), P)
    assert adds[0, 0] == 49 * 2 * 2  # taps x out channels x planes


def test_usable_lanes_thin_first_layer():
    conv = IntLayer(weight=np.ones((16, 1, 5, 5), int), bias=np.zeros(16, int), theta=5,
                    kind="conv", in_shape=(1, 8, 8), padding=2, pool=MaxPool(2))
    conv2 = IntLayer(weight=np.ones((20, 16, 3, 3), int), bias=np.zeros(20, int), theta=5,
                     kind="conv", in_shape=(16, 4, 4), padding=1)
    dense = IntLayer(weight=np.ones((2, 320), int), bias=np.zeros(2, int), theta=1,
                     readout=True)
    net = IntNetwork((conv, conv2, dense), T=4)
    params = CoreParams(n_pe=16, k=16, t_max=8, acc_bits=24, weight_depth=512, act_chunks=64,
                        bt_depth=64, fire_units=4, max_layers=8, batch_depth=1)
    # conv: 1 channel of 16 lanes, 16 outputs on 16 PEs; conv2: 16 of 16 lanes, 20 outputs in
    # 2 passes (10 of 16 PEs); dense after conv2: blocks of its 20 channels (2 per position).
    assert usable_lanes(net, params) == [(1.0, 16.0), (16.0, 10.0), (10.0, 2.0)]


def test_choose_core_falls_back_to_feature_maps(rng):
    big = IntLayer(weight=rng.integers(-2, 3, size=(4, 1, 3, 3)), bias=np.zeros(4, int),
                   theta=4, kind="conv", in_shape=(1, 28, 28), padding=1, pool=MaxPool(2))
    net = IntNetwork((big, IntLayer(weight=np.ones((3, 4 * 14 * 14), int),
                                    bias=np.zeros(3, int), theta=1, readout=True)), T=4)
    # The Arty preset holds a 784-block image; the medium preset (256 input blocks) does not.
    assert choose_core(net)[:2] == ("arty_a7", CORE_PRESETS["arty_a7"])
    name, params, why = choose_core(net, default="medium")
    assert name == "medium-fmap" and "refuses" in why
    assert params == feature_map_core(CORE_PRESETS["medium"])
    assert (params.n_pe, params.k, params.fire_units) == (CORE_PRESETS["medium"].n_pe,
                                                          CORE_PRESETS["medium"].k,
                                                          CORE_PRESETS["medium"].fire_units)
    with pytest.raises(DoesNotFitError):
        choose_core(net, "medium")
    with pytest.raises(ValueError, match="unknown preset"):
        choose_core(net, "nonsense")
