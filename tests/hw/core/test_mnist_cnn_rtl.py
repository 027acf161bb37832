"""The trained MNIST CNN through the core's RTL (Verilator): 64 held-out images, outputs and
per-image counters == the golden model, cycles == the cycle model (slow tier: the CNN trains for
a few minutes the first time, then it is cached; the RTL run takes about a minute)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim.golden.model import run_network
from sim.rtl.runner import param_tag, simulator_available
from sim.tb.random_nets import expected_conv_counters
from sw.research.cycle_model import predict_cycles

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
N_IMAGES = int(os.environ.get("SPIKEPACK_CNN_IMAGES", 64))


@pytest.mark.slow
def test_mnist_cnn_on_rtl_equals_golden_and_cycle_model():
    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH")
    zoo = pytest.importorskip("sw.research.zoo")
    from sw.research.cnn_rtl import choose_core, measure_counters_rtl

    net, x_test, y_test = zoo.mnist_cnn_int_network(T=4)
    x = x_test[:N_IMAGES].reshape(N_IMAGES, -1)
    name, params, _ = choose_core(net)
    # The bench's build directory (bench/bench_mnist_cnn_rtl.py): one Verilator build.
    build = os.path.join(ROOT, "build", "mnist_cnn_rtl", f"{name}_{param_tag(params)}")
    rtl = measure_counters_rtl(net, x, params, build_dir=build)

    golden = run_network(net, x, acc_bits=params.acc_bits)
    assert np.array_equal(rtl.outputs, golden.output)
    for i in range(N_IMAGES):
        spikes, skipped = expected_conv_counters(net, x[i:i + 1], params)
        assert np.array_equal(rtl.spikes[i], spikes), f"image {i}: spike counters"
        assert np.array_equal(rtl.skipped[i], skipped), f"image {i}: skip counters"
    assert np.array_equal(rtl.cycles, predict_cycles(net, x, params, golden))
    assert np.array_equal(rtl.total_cycles, rtl.cycles.sum(axis=1))
    # The network is a trained one, not a degenerate case: it fires and it classifies.
    assert rtl.spikes[:, :2].min() > 0
    assert np.mean(np.argmax(rtl.outputs, axis=1) == np.asarray(y_test[:N_IMAGES])) > 0.8
