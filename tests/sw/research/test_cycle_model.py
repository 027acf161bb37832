"""The cycle model (sw.research.cycle_model) against the core's RTL counters, with ==."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from boards import CORE_PRESETS
from hw.contract.params import CoreParams
from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, Residual
from sim.golden.model import run_network
from sim.rtl.runner import param_tag, simulator_available
from sim.tb.random_nets import random_inputs, random_network
from sw.research.cycle_model import (
    LayerShape,
    chunk_plane_counts,
    conv_walk_steps,
    layer_cycles,
    measure_cycles_rtl,
    predict_cycles,
)
from sw.research.rtl_results import predicted_work

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")


def _build_dir(name: str, params: CoreParams) -> str:
    # The core tests' build directory (tests/hw/core/test_hw_core.py): one Verilator build.
    return os.path.join(ROOT, "build", "hw_core", f"{name}_{param_tag(params)}")


def _cases(rng, params, n, widest=None):
    cases = []
    for i in range(n):
        net = random_network(rng, params, max_depth=4, widest=widest if i % 2 else 48)
        cases.append((net, random_inputs(rng, net, 2, [None, None, "ones", "zeros"][i % 4])))
    return cases


def _check_equal(params, cases, name):
    measured = measure_cycles_rtl(params, cases, build_dir=_build_dir(name, params))
    for (net, x), rtl in zip(cases, measured, strict=True):
        model = predict_cycles(net, x, params)
        assert np.array_equal(model, rtl), (
            f"T={net.T} layers "
            f"{[(la.n_in, la.n_out, la.mode.name, la.readout) for la in net.layers]}"
            f"\nmodel {model.tolist()}\nrtl   {rtl.tolist()}")


def test_cycle_model_equals_rtl_small(rng):
    """Random networks (both modes, readouts, all-zero and all-one inputs, widest layers) on the
    SMALL build: every layer's cycle counter of every sample == the model's."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    _check_equal(CORE_PRESETS["small"], _cases(rng, CORE_PRESETS["small"], 8), "small")


@pytest.mark.slow
@pytest.mark.parametrize("name, params", [
    ("medium", CORE_PRESETS["medium"]),
    ("sweep_k8_f1_w0", CoreParams(n_pe=8, k=8, t_max=16, weight_depth=256, act_chunks=16,
                                  bt_depth=256, max_layers=4, batch_depth=2, fire_units=1,
                                  weight_regs=0)),
])
def test_cycle_model_equals_rtl_other_builds(rng, name, params):
    """Other array shapes, t_max 16, one shared firing unit, no weight registers (one Verilator
    build each, minutes)."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    _check_equal(params, _cases(rng, params, 12), name)


def test_plane_counts_agree_with_predicted_work(rng):
    """The model's non-zero plane counts imply the beats and skips rtl_results predicts."""
    p = CORE_PRESETS["small"]
    net = random_network(rng, p, max_depth=3)
    x = random_inputs(rng, net, 5)
    beats, skipped = predicted_work(net, x, p)
    a = x
    for li, layer in enumerate(net.layers):
        counts = chunk_plane_counts(a, net.T, p.k)
        passes = -(-layer.n_out // p.n_pe)
        assert np.array_equal(beats[:, li], passes * counts.sum(axis=1))
        assert np.array_equal(skipped[:, li], passes * (counts.shape[1] * net.T
                                                        - counts.sum(axis=1)))
        a = run_network(net, x).layers[li].output


def test_cycles_grow_with_work():
    """More non-zero planes never cost fewer cycles; a wider layer never costs fewer cycles."""
    p = CORE_PRESETS["small"]
    shape = LayerShape(T=4, lif=False, readout=False, n_in=32, n_out=24)
    chunks = 32 // p.k
    by_planes = [layer_cycles(shape, [m] * chunks, p) for m in range(5)]
    assert by_planes == sorted(by_planes) and by_planes[0] < by_planes[-1]
    wide = LayerShape(T=4, lif=False, readout=False, n_in=32, n_out=64)
    assert layer_cycles(wide, [4] * chunks, p) > by_planes[-1]


def test_bad_input():
    p = CORE_PRESETS["small"]
    shape = LayerShape(T=4, lif=False, readout=False, n_in=32, n_out=8)
    with pytest.raises(ValueError, match="counts has 3 chunks; a layer of 32 inputs has 8"):
        layer_cycles(shape, [1, 2, 3], p)
    conv = IntLayer(np.ones((1, 1, 3, 3), dtype=np.int64), np.zeros(1, np.int64), 1,
                    kind="conv", in_shape=(1, 4, 4), padding=1,
                    residual=Residual(source=NETWORK_INPUT))
    with pytest.raises(ValueError, match="res_counts must be given exactly when the layer has"):
        conv_walk_steps(conv, np.zeros((4, 4, 1), np.int64), p)
    with pytest.raises(ValueError, match=r"res_counts has shape \(4, 4\); the shortcut's map"):
        conv_walk_steps(conv, np.zeros((4, 4, 1), np.int64), p, np.zeros((4, 4), np.int64))
    fc1 = IntLayer(np.ones((4, 16), dtype=np.int64), np.zeros(4, np.int64), 1)
    fc2 = IntLayer(np.ones((4, 4), dtype=np.int64), np.zeros(4, np.int64), 1, readout=True,
                   residual=Residual(source=0))
    with pytest.raises(ValueError, match="layer 1: .* shortcut on conv layers only"):
        predict_cycles(IntNetwork((fc1, fc2), T=2), np.zeros((1, 16), np.int64), p)


@pytest.mark.parametrize("planes", [2, 4])
def test_beat_counts_with_planes_per_beat(rng, planes):
    """With two (four) planes per beat a chunk takes a beat per beat slot (planes ``planes s ..
    planes s + planes - 1``) below T with a spike: brute force over random packed words, odd T
    included."""
    mask = (1 << planes) - 1
    for T in (1, 3, 4, 7, 8):
        a = rng.integers(0, 1 << 8, size=(6, 21)) * (rng.random((6, 21)) < 0.3)
        got = chunk_plane_counts(a, T, 4, planes=planes)
        for i in range(6):
            for c in range(-(-21 // 4)):
                word = np.bitwise_or.reduce(a[i, c * 4:c * 4 + 4]) & ((1 << T) - 1)
                slots = sum(1 for s in range(8 // planes) if (int(word) >> (planes * s)) & mask)
                assert got[i, c] == slots, (T, i, c)
        assert np.array_equal(chunk_plane_counts(a, T, 4), chunk_plane_counts(a, T, 4, planes=1))


def test_cycle_model_equals_rtl_two_planes_per_beat(rng):
    """Random networks on the SMALL build with two bit-planes per beat: every layer's cycle
    counter of every sample == the model's."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    p = CORE_PRESETS["small2"]
    _check_equal(p, _cases(rng, p, 8), "small2")


def test_cycle_model_equals_rtl_with_credits_to_spare(rng):
    """The SMALL build with two planes per beat and a queue of 16 blocks: its walk steps on
    credits that do not run out (``small2``'s queue of 4 runs out of them), every layer's cycle
    counter == the model's."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    p = dataclasses.replace(CORE_PRESETS["small2"], fetch_queue=16)
    _check_equal(p, _cases(rng, p, 8), "small2_q16")


def test_cycle_model_equals_rtl_with_fire_out_reg_and_pe_control_copies(rng):
    """The SMALL build with two planes per beat, the firing array's output registered once more
    (``fire_out_reg``: a cycle more per layer) and each PE's bank control its own
    (``pe_control_copies``): outputs == golden inside the testbench, every layer's cycle counter
    == the model's."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    p = dataclasses.replace(CORE_PRESETS["small2"], fire_out_reg=1, pe_control_copies=1)
    _check_equal(p, _cases(rng, p, 8), "small2_outreg_copies")


def test_cycle_model_equals_rtl_with_seq_prefetch(rng):
    """The SMALL build with two planes per beat and the sequencer reading the next layer's
    descriptor while a layer runs (``seq_prefetch``): outputs == golden inside the testbench,
    every layer's cycle counter == the model's (the first layer of a run, the later ones, the
    last)."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    p = dataclasses.replace(CORE_PRESETS["small2"], seq_prefetch=1)
    _check_equal(p, _cases(rng, p, 8), "small2_prefetch")


def test_cycle_model_equals_rtl_with_walk_replay(rng):
    """The SMALL build with two planes per beat whose walk replays, after a position's first
    pass, only the blocks it found non-empty (``walk_replay``): random dense networks and the
    same networks as maps (1x1 conv layers over a row of samples, ``sw.compile.batch_map``):
    outputs == golden inside the testbench, every layer's cycle counter == the model's, and the
    replayed walk takes fewer cycles than the full one on some of them."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    from sw.compile.batch_map import map_inputs, map_network, max_map_width

    p = CORE_PRESETS["small2_replay"]
    cases = _cases(rng, p, 6)
    for net, _ in list(cases):
        width = min(4, max_map_width(net, p))
        if width >= 2:
            xs = random_inputs(rng, net, width, None)
            cases.append((map_network(net, width), map_inputs(xs)))
    # Maps whose first layer reads one block per sample, samples silent or sparse: a position
    # inside the map whose first pass finds no spike still waits for its (empty) list.
    for T, hidden, n_in in ((1, 32, 2), (3, 24, 3)):
        net = IntNetwork((IntLayer(rng.integers(-5, 6, (hidden, n_in)), rng.integers(-2, 3, hidden),
                                   3, weight_bits=4),
                          IntLayer(rng.integers(-5, 6, (4, hidden)), np.zeros(4, np.int64), 3,
                                   readout=True, weight_bits=4)), T)
        x = rng.integers(0, 1 << T, (4, n_in)) * (rng.random((4, n_in)) < 0.3)
        x[1] = 0
        cases += [(map_network(net, 4), map_inputs(x)),
                  (map_network(net, 4), map_inputs(np.zeros_like(x)))]
    assert len(cases) > 10
    _check_equal(p, cases, "small2_replay")
    full = dataclasses.replace(p, walk_replay=0)
    fewer = sum(predict_cycles(net, x, p).sum() < predict_cycles(net, x, full).sum()
                for net, x in cases)
    assert fewer >= 2
