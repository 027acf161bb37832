"""``sw.research.rtl_results.predicted_work`` on conv networks: the PE-array beats and skipped
all-zero plane-chunks of every layer, against a brute-force walk of the receptive fields and the
testbenches' own count (``sim.tb.random_nets.expected_conv_counters``, which the RTL's counters
equal in tests/hw/core/test_hw_core_conv.py). Random networks from the logged seed."""

import numpy as np
import pytest

from boards import MEDIUM, SMALL
from sim.golden.model import run_network
from sim.golden.packing import feature_map_blocks, unpack_bitplanes
from sim.tb.random_nets import expected_conv_counters, random_conv_network
from sw.research.rtl_results import predicted_work


def brute_force(net, x, params):
    """``(beats, skipped)`` per sample and layer, one plane-chunk read at a time (a shortcut's
    blocks once per conv position, spread over the passes)."""
    k, T = params.k, net.T
    result = run_network(net, x)
    a = x
    beats = np.zeros((len(x), len(net.layers)), dtype=np.int64)
    skipped = np.zeros_like(beats)
    for li, layer in enumerate(net.layers):
        passes = -(-layer.out_channels // params.n_pe)
        prev = net.layers[li - 1] if li else None
        for n in range(len(x)):
            reads = []  # spike blocks one pass reads, in any order
            once = []  # blocks read once over all passes (a shortcut's)
            if layer.kind == "conv":
                blocks = feature_map_blocks(a[n].reshape(layer.in_shape), k)  # (H, W, chunks, k)
                _, h, w = layer.in_shape
                _, ch, cw = layer.conv_shape
                if layer.pool is not None:
                    ch -= ch % layer.pool.kernel
                    cw -= cw % layer.pool.kernel
                kh, kw = layer.kernel
                for oy in range(ch):
                    for ox in range(cw):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy = oy * layer.stride + ky - layer.padding
                                ix = ox * layer.stride + kx - layer.padding
                                if 0 <= iy < h and 0 <= ix < w:
                                    reads.extend(blocks[iy, ix])
                        if layer.residual is not None:
                            src = layer.residual.source
                            src_map = x[n] if src < 0 else result.layers[src].output[n]
                            once.extend(feature_map_blocks(
                                np.reshape(src_map, layer.conv_shape), k)[oy, ox])
            elif prev is not None and prev.kind == "conv":
                reads.extend(feature_map_blocks(a[n].reshape(prev.out_shape), k).reshape(-1, k))
            else:
                flat = np.zeros(-(-layer.n_in // k) * k, dtype=np.int64)
                flat[:layer.n_in] = a[n]
                reads.extend(flat.reshape(-1, k))
            for times, blocks_read in ((passes, reads), (1, once)):
                for block in blocks_read:
                    zero = int((unpack_bitplanes(block, T).sum(axis=-1) == 0).sum())
                    skipped[n, li] += times * zero
                    beats[n, li] += times * (T - zero)
        a = result.layers[li].output.reshape(len(x), -1)
    return beats, skipped


@pytest.mark.parametrize("params", [SMALL, MEDIUM], ids=["small", "medium"])
def test_conv_work_equals_a_walk_of_the_receptive_fields(rng, params):
    for _ in range(6):
        net = random_conv_network(rng, params, pool=True)
        x = rng.integers(0, 1 << net.T, (2, net.n_in)) * (rng.random((2, net.n_in)) < 0.5)
        beats, skipped = predicted_work(net, x, params)
        want_beats, want_skipped = brute_force(net, x, params)
        assert np.array_equal(beats, want_beats)
        assert np.array_equal(skipped, want_skipped)
        # the testbenches' count, per batch
        assert np.array_equal(skipped.sum(axis=0), expected_conv_counters(net, x, params)[1])


def test_conv_work_of_an_image_batch_given_as_maps(rng):
    net = random_conv_network(rng, SMALL)
    x = rng.integers(0, 1 << net.T, (3, net.n_in))
    maps = x.reshape((3,) + net.in_shape)
    assert all(np.array_equal(a, b) for a, b in zip(predicted_work(net, maps, SMALL),
                                                    predicted_work(net, x, SMALL), strict=True))


@pytest.mark.xdist_group("rtl_session_small")
def test_measure_on_rtl_splits_a_conv_nets_runs_by_max_batch(rng):
    """``measure_on_rtl`` on the RTL (the SMALL build the session tests share): an 8x8 image is
    64 of SMALL's 128 input blocks, so the driver runs 2 per batch (batch_depth is 4); the
    per-run spike and skip counters must equal the golden model's split the same way."""
    from sim.rtl.runner import simulator_available

    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH (bash scripts/setup.sh)")
    pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")
    from sim.golden.ir import IntLayer, IntNetwork, MaxPool
    from sw.compile.program_image import build_image
    from sw.research.rtl_results import measure_on_rtl

    conv = IntLayer(weight=rng.integers(-8, 9, (6, 1, 3, 3)), bias=rng.integers(-4, 5, 6),
                    theta=rng.integers(10, 30, 6), kind="conv", in_shape=(1, 8, 8), padding=1,
                    pool=MaxPool(2))
    net = IntNetwork((conv, IntLayer(weight=rng.integers(-8, 9, (10, conv.n_out)),
                                     bias=rng.integers(-4, 5, 10), theta=1, readout=True)), 4)
    assert build_image(net, SMALL).max_batch == 2 < SMALL.batch_depth
    x = rng.integers(0, 16, (5, net.n_in)) * (rng.random((5, net.n_in)) < 0.5)
    r = measure_on_rtl("tiny cnn", net, "spikepack", x, SMALL)
    assert r.runs == 3 and r.outputs_differ == 0 and r.counter_runs_differ == 0 and r.bit_exact
    beats, skipped = predicted_work(net, x, SMALL)
    assert [la.rtl_skipped for la in r.layers] == pytest.approx(skipped.mean(axis=0).tolist())
    print(f"tiny cnn on SMALL: {r.total_cycles:.0f} cycles/image, {r.runs} runs, bit-exact")
