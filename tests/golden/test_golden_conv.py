"""Convolution, max pooling and residual shortcuts in the golden model.

Each property is checked against a reference written here independently of ``sim.golden.model``: a
conv by shifted slices (not im2col), the same layer unrolled into a dense (Toeplitz) layer, pooling
by shifted slices, and ``torch.nn.functional.conv2d`` as an outside oracle for the linear part.
"""

import dataclasses

import numpy as np
import pytest

from sim.golden.ir import (
    NETWORK_INPUT,
    AccumulatorOverflowError,
    IntLayer,
    IntNetwork,
    MaxPool,
    Mode,
    Reset,
    Residual,
)
from sim.golden.model import (
    accumulator_bound,
    conv2d,
    conv_packed,
    conv_serial,
    fire_packed,
    fire_serial,
    lif_layer,
    max_pool,
    or_pool,
    run_layer,
    run_network,
    spikepack_layer,
)
from sim.golden.packing import (
    feature_map_blocks,
    feature_map_from_blocks,
    pack_bitplanes,
    popcount,
)

# --- independent references ----------------------------------------------------------------------


def ref_conv(a, w, stride, padding):
    """Convolution by one shifted, strided slice per kernel tap (no im2col)."""
    *batch, c_in, h, wd = a.shape
    c_out, _, kh, kw = w.shape
    ap = np.zeros((*batch, c_in, h + 2 * padding, wd + 2 * padding), dtype=np.int64)
    ap[..., padding:padding + h, padding:padding + wd] = a
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((*batch, c_out, ho, wo), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            ys = slice(ky, ky + stride * (ho - 1) + 1, stride)
            xs = slice(kx, kx + stride * (wo - 1) + 1, stride)
            patch = ap[..., ys, xs]
            out += np.einsum("...chw,oc->...ohw", patch, w[:, :, ky, kx])
    return out


def ref_pool(x, k, s, op):
    """Pooling by one shifted, strided slice per window offset, reduced with ``op``."""
    ho, wo = (x.shape[-2] - k) // s + 1, (x.shape[-1] - k) // s + 1
    out = None
    for dy in range(k):
        for dx in range(k):
            part = x[..., dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s]
            out = part if out is None else op(out, part)
    return out


def toeplitz(layer):
    """The conv layer as a dense weight matrix ``(C_out H' W', C_in H W [+ C_out H' W'])``.

    Rows and columns in (C, H, W) order; a shortcut becomes ``gain * identity`` columns on the
    concatenated input ``[a, a_src]``.
    """
    c_out, c_in, kh, kw = layer.weight.shape
    _, h, w = layer.in_shape
    _, ho, wo = layer.conv_shape
    s, p = layer.stride, layer.padding
    c, ci, y, x, ky, kx = np.meshgrid(np.arange(c_out), np.arange(c_in), np.arange(ho),
                                      np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    iy, ix = y * s + ky - p, x * s + kx - p
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = ((c * ho + y) * wo + x)[inside]
    cols = ((ci * h + iy) * w + ix)[inside]
    n_out = c_out * ho * wo
    extra = n_out if layer.residual is not None else 0
    m = np.zeros((n_out, layer.n_in + extra), dtype=np.int64)
    np.add.at(m, (rows, cols), layer.weight[c, ci, ky, kx][inside])
    if extra:
        m[:, layer.n_in:] = layer.residual.gain * np.eye(n_out, dtype=np.int64)
    return m


def as_dense(layer):
    """The conv layer unrolled (no pooling): same mode, bias and theta repeated per position."""
    _, ho, wo = layer.conv_shape
    return IntLayer(toeplitz(layer), np.repeat(layer.bias, ho * wo),
                    np.repeat(layer.theta_vector, ho * wo), mode=layer.mode, readout=layer.readout,
                    weight_bits=layer.weight_bits, leak_shift=layer.leak_shift, reset=layer.reset)


# --- random layers -------------------------------------------------------------------------------


def random_weights(rng, shape, weight_bits):
    hi = 1 << (weight_bits - 1)
    style = rng.integers(0, 4)
    if style == 0:  # extreme weights
        return rng.choice([-hi, hi - 1], size=shape)
    if style == 1:  # mostly negative: negative membranes
        return rng.integers(-hi, hi // 4 + 1, size=shape)
    return rng.integers(-hi, hi, size=shape)


def random_conv_layer(rng, *, mode=None, in_shape=None, c_out=None, kernel=None, stride=None,
                      padding=None, pool="random", residual="random", readout=None):
    mode = mode or rng.choice([Mode.SPIKEPACK, Mode.LIF])
    kh, kw = kernel or (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    p = int(rng.integers(0, 3)) if padding is None else padding
    s = int(rng.integers(1, 3)) if stride is None else stride
    if in_shape is None:
        in_shape = (int(rng.integers(1, 5)), int(rng.integers(max(1, kh - 2 * p), 10)),
                    int(rng.integers(max(1, kw - 2 * p), 10)))
    c_out = c_out or int(rng.integers(1, 5))
    wb = int(rng.integers(2, 9))
    w = random_weights(rng, (c_out, in_shape[0], kh, kw), wb)
    b = rng.integers(-300, 300, size=c_out)
    theta = (rng.integers(1, 200, size=c_out) if rng.random() < 0.5
             else int(2 ** rng.uniform(0, 8)))
    readout = bool(rng.random() < 0.1) if readout is None else readout
    probe = IntLayer(w, b, theta, kind="conv", in_shape=in_shape, stride=s, padding=p)
    _, ho, wo = probe.conv_shape
    if pool == "random":
        pool = None
        if not readout and min(ho, wo) >= 2 and rng.random() < 0.5:
            k = int(rng.integers(1, min(3, ho, wo) + 1))
            pool = MaxPool(k, int(rng.integers(1, k + 1)))
    if residual == "random":
        residual = None
        if rng.random() < 0.4:
            hi = 1 << (wb - 1)
            gain = int(rng.choice([g for g in range(-hi, hi) if g]))
            residual = Residual(int(rng.integers(0, 3)), gain)
    return IntLayer(w, b, theta, mode=mode, readout=readout, weight_bits=wb,
                    leak_shift=int(rng.integers(0, 4)), reset=rng.choice(list(Reset)),
                    kind="conv", in_shape=in_shape, stride=s, padding=p, pool=pool,
                    residual=residual)


def random_inputs(rng, layer, T, batch=2):
    a = rng.integers(0, 1 << T, size=(batch, *layer.in_shape))
    a[0] = rng.choice([0, (1 << T) - 1])  # all-zero or all-ones sample
    src = None
    if layer.residual is not None:
        src = rng.integers(0, 1 << T, size=(batch, *layer.conv_shape))
    return a, src


# --- thousands of random layers ------------------------------------------------------------------


def test_conv_serial_equals_packed_equals_closed_form_on_thousands_of_layers(rng):
    n_cases = 2000
    seen = dict.fromkeys(["spikepack", "lif", "pool", "residual", "per_channel", "padding",
                          "stride2", "readout", "negative", "mid", "saturated"], 0)
    for _ in range(n_cases):
        T = int(rng.integers(1, 9))
        layer = random_conv_layer(rng)
        a, src = random_inputs(rng, layer, T)
        gain = layer.residual.gain if src is not None else 0
        v = ref_conv(a, layer.weight, layer.stride, layer.padding) + layer.bias[:, None, None]
        if src is not None:
            v = v + gain * src
        theta = layer.theta_vector[:, None, None]
        if layer.mode is Mode.SPIKEPACK:
            packed = spikepack_layer(layer, a, T, form="packed", residual=src)
            serial = spikepack_layer(layer, a, T, form="serial", residual=src)
            assert np.array_equal(packed.membrane, v)
            assert np.array_equal(serial.membrane, v)
            if layer.readout:
                closed = v
            else:
                fired = np.clip(np.floor_divide(v, theta), 0, (1 << T) - 1)
                closed = fired if layer.pool is None else ref_pool(
                    fired, layer.pool.kernel, layer.pool.stride, np.maximum)
                seen["mid"] += int(((closed > 0) & (closed < (1 << T) - 1)).sum())
                seen["saturated"] += int((closed == (1 << T) - 1).sum())
            assert np.array_equal(packed.output, closed)
            assert np.array_equal(serial.output, closed)
            assert np.array_equal(packed.spikes, serial.spikes)
            result = packed
        else:
            result = lif_layer(layer, a, T, residual=src)
            # the same layer unrolled to a dense LIF layer on the concatenated input [a, a_src]
            flat = a.reshape(len(a), -1)
            if src is not None:
                flat = np.concatenate([flat, src.reshape(len(a), -1)], axis=1)
            dense = lif_layer(as_dense(layer), flat, T)
            assert np.array_equal(result.membrane.reshape(len(a), -1), dense.membrane)
            out = dense.output.reshape((len(a),) + layer.conv_shape)
            if layer.pool is not None:
                out = ref_pool(out, layer.pool.kernel, layer.pool.stride, np.bitwise_or)
            assert np.array_equal(result.output, out)
        # the counters count the stored (post-pool) words
        expected_spikes = 0 if layer.readout else popcount(result.output).sum(axis=(1, 2, 3))
        assert np.array_equal(result.spikes, np.broadcast_to(expected_spikes, (len(a),)))
        assert result.output.shape == (len(a),) + layer.out_shape
        seen[layer.mode.value] += 1
        seen["pool"] += layer.pool is not None
        seen["residual"] += layer.residual is not None
        seen["per_channel"] += np.ndim(layer.theta) == 1
        seen["padding"] += layer.padding > 0
        seen["stride2"] += layer.stride == 2
        seen["readout"] += layer.readout
        seen["negative"] += int((v < 0).sum())
    print(seen)
    # the cases really cover every feature, and outputs are neither all silent nor all saturated
    assert min(seen.values()) > 100, seen


def test_conv_helpers_match_the_layer_and_check_partial_sums(rng):
    for _ in range(100):
        T = int(rng.integers(1, 9))
        layer = random_conv_layer(rng, mode=Mode.SPIKEPACK, pool=None, residual=None,
                                  readout=True)
        a, _ = random_inputs(rng, layer, T)
        v = spikepack_layer(layer, a, T).membrane
        args = (layer.weight, layer.bias)
        assert np.array_equal(conv_packed(a, *args, layer.stride, layer.padding), v)
        assert np.array_equal(conv_serial(a, *args, T, layer.stride, layer.padding), v)
    layer = IntLayer(np.full((1, 2, 3, 3), 127), [0], 1, kind="conv", in_shape=(2, 4, 4),
                     readout=True, residual=Residual(NETWORK_INPUT, 127))
    x = np.full((1, 2, 4, 4), 255)
    src = np.full((1, 1, 2, 2), 255)
    assert accumulator_bound(layer, 8) == (18 + 1) * 127 * 255  # C_in kh kw taps + the shortcut
    v = spikepack_layer(layer, x, 8, residual=src).membrane
    assert v.max() == accumulator_bound(layer, 8)  # the bound is reached
    with pytest.raises(AccumulatorOverflowError, match="partial sum"):
        spikepack_layer(layer, x, 8, form="serial", residual=src, acc_bits=20)
    with pytest.raises(AccumulatorOverflowError, match="membrane v_"):
        lif_layer(layer, x, 8, residual=src, acc_bits=14)  # 4 steps of 19 x 127 > 2^13


def test_accumulator_bound_covers_conv_layers(rng):
    for _ in range(200):
        T = int(rng.integers(1, 9))
        layer = random_conv_layer(rng)
        a, src = random_inputs(rng, layer, T, batch=4)
        a[1] = (1 << T) - 1
        r = run_layer(layer, a, T, residual=src, acc_bits=None)
        assert np.abs(r.membrane).max() <= accumulator_bound(layer, T)


# --- torch as an outside oracle ------------------------------------------------------------------


def test_conv_matches_torch_conv2d(rng, one_torch_thread):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for i in range(300):
        T = int(rng.integers(1, 9))
        big = i % 5 == 0  # kernels up to 7 x 7 and stride 3 as well
        kernel = tuple(int(n) for n in rng.integers(1, 8, size=2)) if big else None
        layer = random_conv_layer(rng, residual=None, pool=None, readout=True, kernel=kernel,
                                  stride=int(rng.integers(1, 4)) if big else None)
        a, _ = random_inputs(rng, layer, T, batch=3)
        # float64 holds these integers exactly (|v| < 2^53)
        ref = F.conv2d(torch.from_numpy(a.astype(np.float64)),
                       torch.from_numpy(layer.weight.astype(np.float64)),
                       torch.from_numpy(layer.bias.astype(np.float64)),
                       stride=layer.stride, padding=layer.padding)
        assert np.array_equal(conv2d(a, layer.weight, layer.stride, layer.padding)
                              + layer.bias[:, None, None], ref.numpy().astype(np.int64))
        assert np.array_equal(spikepack_layer(layer, a, T, form="serial").membrane,
                              ref.numpy().astype(np.int64))
    # Rows and columns padded apart (``padding_w``; the compiler's fold pads rows only).
    for _ in range(100):
        T = int(rng.integers(1, 9))
        layer = random_conv_layer(rng, residual=None, pool=None, readout=True)
        need = -(-max(0, layer.kernel[1] - layer.in_shape[2]) // 2)  # the kernel must fit
        pw = int(rng.integers(need, 4))
        layer = dataclasses.replace(layer, padding_w=pw)
        a, _ = random_inputs(rng, layer, T, batch=2)
        ref = F.conv2d(torch.from_numpy(a.astype(np.float64)),
                       torch.from_numpy(layer.weight.astype(np.float64)),
                       torch.from_numpy(layer.bias.astype(np.float64)),
                       stride=layer.stride, padding=(layer.padding, pw)).numpy().astype(np.int64)
        assert layer.conv_shape == ref.shape[1:]
        assert np.array_equal(spikepack_layer(layer, a, T, form="serial").membrane, ref)
        assert np.array_equal(spikepack_layer(layer, a, T, form="packed").membrane, ref)
    # torch's max pooling, and its (C, H, W) flatten order, on the golden outputs
    x = rng.integers(0, 256, size=(2, 3, 9, 7))
    for k, s in ((1, 1), (2, 2), (3, 2), (2, 1), (3, 3)):
        ref = F.max_pool2d(torch.from_numpy(x.astype(np.float64)), k, s)
        assert np.array_equal(max_pool(x, MaxPool(k, s)), ref.numpy().astype(np.int64))
    assert np.array_equal(torch.flatten(torch.from_numpy(x), 1).numpy(), x.reshape(2, -1))


# --- pooling -------------------------------------------------------------------------------------


def test_max_pool_commutes_with_firing(rng):
    for _ in range(300):
        T = int(rng.integers(1, 9))
        c, h, w = (int(n) for n in rng.integers(1, 9, size=3))
        k = int(rng.integers(1, min(h, w, 4) + 1))
        pool = MaxPool(k, int(rng.integers(1, k + 1)))
        v = rng.integers(-500, 60 << T, size=(3, c, h, w))
        theta = (rng.integers(1, 120, size=c) if rng.random() < 0.5
                 else np.full(c, int(rng.integers(1, 120))))[:, None, None]
        fire_then_pool = max_pool(fire_packed(v, theta, T), pool)
        pool_then_fire = fire_packed(max_pool(v, pool), theta, T)
        assert np.array_equal(fire_then_pool, pool_then_fire)
        serial = max_pool(pack_bitplanes(fire_serial(v, theta, T)[0]), pool)
        assert np.array_equal(serial, pool_then_fire)


def test_lif_pooling_is_or_of_spikes_and_not_a_max(rng):
    """LIF pooling: a spike at step t if any neuron of the window spiked at t."""
    differ = 0
    for _ in range(100):
        T = int(rng.integers(2, 9))
        words = rng.integers(0, 1 << T, size=(2, 3, 6, 6))
        pool = MaxPool(2)
        ored = or_pool(words, pool)
        biggest = max_pool(words, pool)
        assert np.array_equal(ored, ref_pool(words, 2, 2, np.bitwise_or))
        assert np.all(ored >= biggest)  # the OR holds every window word's spikes
        assert np.all(popcount(ored) >= popcount(biggest))
        differ += int((ored != biggest).sum())
    assert differ > 0  # it is not the SpikePack max: the two pools are different operations


def test_average_pooling_folds_into_the_next_dense_layer(rng, one_torch_thread):
    """avg-pool (k, stride k) then dense == dense with weights repeated over each window and
    k^2 in theta and bias (docs/numerics.md); torch's avg_pool2d is the oracle."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for _ in range(100):
        T = int(rng.integers(1, 9))
        k = int(rng.choice([2, 4]))  # 1 / k^2 is exact in float64
        c, h, w = int(rng.integers(1, 5)), int(rng.integers(k, 3 * k + 2)), int(rng.integers(k, 13))
        hp, wp = h // k, w // k
        n_out = int(rng.integers(1, 8))
        weight = rng.integers(-8, 8, size=(n_out, c, hp, wp))
        bias = rng.integers(-100, 100, size=n_out)
        theta = rng.integers(1, 50, size=n_out)
        folded_w = np.zeros((n_out, c, h, w), dtype=np.int64)
        folded_w[:, :, :hp * k, :wp * k] = weight.repeat(k, axis=2).repeat(k, axis=3)
        folded = IntLayer(folded_w.reshape(n_out, -1), k * k * bias, k * k * theta, weight_bits=4)
        a = rng.integers(0, 1 << T, size=(3, c, h, w))
        avg = F.avg_pool2d(torch.from_numpy(a.astype(np.float64)), k).numpy()
        v = bias + avg.reshape(3, -1) @ weight.reshape(n_out, -1).T.astype(np.float64)
        want = np.clip(np.floor(v / theta), 0, (1 << T) - 1).astype(np.int64)
        assert np.array_equal(spikepack_layer(folded, a.reshape(3, -1), T).output, want)


def test_average_pooling_folds_into_the_next_conv_layer(rng, one_torch_thread):
    """avg-pool (k, stride k) then conv (kh, kw, s, p) == conv (k kh, k kw, k s, k p) with each
    weight repeated over a k x k block and k^2 in theta and bias, for H, W multiples of k."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for _ in range(100):
        T = int(rng.integers(1, 9))
        k = int(rng.choice([2, 4]))
        kh, kw, s, p = (int(n) for n in (*rng.integers(1, 4, size=2), rng.integers(1, 3),
                                          rng.integers(0, 2)))
        c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        hp, wp = int(rng.integers(max(1, kh - 2 * p), 6)), int(rng.integers(max(1, kw - 2 * p), 6))
        weight = rng.integers(-8, 8, size=(c_out, c_in, kh, kw))
        bias = rng.integers(-100, 100, size=c_out)
        theta = rng.integers(1, 50, size=c_out)
        folded = IntLayer(weight.repeat(k, axis=2).repeat(k, axis=3), k * k * bias,
                          k * k * theta, weight_bits=4, kind="conv",
                          in_shape=(c_in, hp * k, wp * k), stride=k * s, padding=k * p)
        a = rng.integers(0, 1 << T, size=(2, c_in, hp * k, wp * k))
        avg = F.avg_pool2d(torch.from_numpy(a.astype(np.float64)), k)
        v = F.conv2d(avg, torch.from_numpy(weight.astype(np.float64)),
                     torch.from_numpy(bias.astype(np.float64)), stride=s, padding=p).numpy()
        want = np.clip(np.floor(v / theta[:, None, None]), 0, (1 << T) - 1).astype(np.int64)
        assert np.array_equal(spikepack_layer(folded, a, T, form="serial").output, want)


# --- networks ------------------------------------------------------------------------------------


def conv(rng, in_shape, c_out, k, **kw):
    """A 6-bit conv layer that fires often: positive-leaning weights, theta ~ the weight sum (a
    mid-range input then gives a mid-range output)."""
    w = rng.integers(-20, 32, size=(c_out, in_shape[0], k, k))
    theta = np.maximum(1, w.sum(axis=(1, 2, 3)) + rng.integers(-5, 6, size=c_out))
    return IntLayer(w, rng.integers(-20, 20, size=c_out), theta, weight_bits=6,
                    kind="conv", in_shape=in_shape, **kw)


def test_residual_network_equals_layer_by_layer_reference(rng):
    T = 4
    l0 = conv(rng, (3, 8, 8), 4, 3, padding=1)
    l1 = conv(rng, (4, 8, 8), 4, 3, padding=1, residual=Residual(0, 2))
    l2 = conv(rng, (4, 8, 8), 3, 1, residual=Residual(NETWORK_INPUT, -3), mode=Mode.LIF)
    l3 = conv(rng, (3, 8, 8), 3, 5, padding=2, residual=Residual(2, 1), pool=MaxPool(2))
    l4 = IntLayer(rng.integers(-8, 8, size=(5, 3 * 4 * 4)), rng.integers(-50, 50, size=5), 1,
                  readout=True, weight_bits=4)
    net = IntNetwork((l0, l1, l2, l3, l4), T)
    x = rng.integers(0, 1 << T, size=(6, 3, 8, 8))
    packed, serial = run_network(net, x), run_network(net, x, form="serial")
    for p, s in zip(packed.layers, serial.layers, strict=True):
        assert np.array_equal(p.output, s.output)
        assert np.array_equal(p.membrane, s.membrane)

    def fire(layer, v):
        return np.clip(np.floor_divide(v, layer.theta_vector[:, None, None]), 0, (1 << T) - 1)

    a0 = fire(l0, ref_conv(x, l0.weight, 1, 1) + l0.bias[:, None, None])
    a1 = fire(l1, ref_conv(a0, l1.weight, 1, 1) + l1.bias[:, None, None] + 2 * a0)
    flat = np.concatenate([a1.reshape(6, -1), x.reshape(6, -1)], axis=1)
    a2 = lif_layer(as_dense(l2), flat, T).output.reshape(6, 3, 8, 8)
    v3 = ref_conv(a2, l3.weight, 1, 2) + l3.bias[:, None, None] + a2
    a3 = ref_pool(fire(l3, v3), 2, 2, np.maximum)
    out = a3.reshape(6, -1) @ l4.weight.T + l4.bias
    for got, want in zip(packed.layers, (a0, a1, a2, a3, out), strict=True):
        assert np.array_equal(got.output, want)
    assert np.array_equal(packed.output, out)
    assert packed.spikes_per_layer[3].sum() == popcount(a3).sum()  # post-pool words counted
    for a in (a0, a1, a2, a3):  # the test sees real activity, neither silence nor saturation
        assert (a > 0).mean() > 0.2 and (a == (1 << T) - 1).mean() < 0.8


def test_residual_is_an_identity_conv_on_the_concatenated_input(rng):
    """Same-size, stride-1 conv with a shortcut == conv on [a, a_src] with g * identity taps."""
    for _ in range(200):
        T = int(rng.integers(1, 9))
        k = int(rng.choice([1, 3, 5]))
        layer = random_conv_layer(rng, kernel=(k, k), padding=k // 2, stride=1, pool=None,
                                  residual=Residual(0, int(rng.integers(-2, 2)) or 1))
        c_out, c_in = layer.weight.shape[:2]
        layer = IntLayer(layer.weight, layer.bias, layer.theta, mode=layer.mode,
                         readout=layer.readout, weight_bits=layer.weight_bits,
                         leak_shift=layer.leak_shift, reset=layer.reset, kind="conv",
                         in_shape=layer.in_shape, padding=k // 2, residual=layer.residual)
        extra = np.zeros((c_out, c_out, k, k), dtype=np.int64)
        extra[np.arange(c_out), np.arange(c_out), k // 2, k // 2] = layer.residual.gain
        cat = IntLayer(np.concatenate([layer.weight, extra], axis=1), layer.bias, layer.theta,
                       mode=layer.mode, readout=layer.readout, weight_bits=layer.weight_bits,
                       leak_shift=layer.leak_shift, reset=layer.reset, kind="conv",
                       in_shape=(c_in + c_out,) + layer.in_shape[1:], padding=k // 2)
        a = rng.integers(0, 1 << T, size=(2, *layer.in_shape))
        src = rng.integers(0, 1 << T, size=(2, *layer.conv_shape))
        r = run_layer(layer, a, T, residual=src)
        r_cat = run_layer(cat, np.concatenate([a, src], axis=1), T)
        assert np.array_equal(r.output, r_cat.output)
        assert np.array_equal(r.membrane, r_cat.membrane)


def test_conv_to_dense_flattens_in_chw_order(rng):
    T = 3
    l0 = conv(rng, (2, 7, 6), 3, 3, padding=1, stride=2, pool=MaxPool(2, 1))
    assert l0.out_shape == (3, 3, 2)
    c, y, x = 2, 1, 0  # pick one position with a one-hot dense row
    row = np.zeros((1, l0.n_out), dtype=np.int64)
    row[0, (c * 3 + y) * 2 + x] = 1
    dense = IntLayer(np.concatenate([row, rng.integers(-4, 4, size=(4, l0.n_out))]),
                     np.zeros(5, dtype=np.int64), 1, readout=True, weight_bits=4)
    net = IntNetwork((l0, dense), T)
    xs = rng.integers(0, 1 << T, size=(8, 2, 7, 6))
    res = run_network(net, xs)
    a0 = res.layers[0].output
    assert np.array_equal(res.output[:, 0], a0[:, c, y, x])
    assert np.array_equal(res.output, a0.reshape(8, -1) @ dense.weight.T)
    # the network also takes its image flattened in (C, H, W) order, and any batch shape
    assert np.array_equal(run_network(net, xs.reshape(8, -1)).output, res.output)
    assert run_network(net, xs.reshape(2, 4, 2, 7, 6)).output.shape == (2, 4, 5)
    assert net.in_shape == (2, 7, 6) and net.n_in == 84 and net.out_shape == (5,)


def test_conv_network_save_load_round_trip(tmp_path, rng):
    T = 4
    l0 = conv(rng, (2, 6, 6), 3, 3, padding=1, mode=Mode.LIF, leak_shift=2)
    l1 = conv(rng, (3, 6, 6), 3, 3, padding=1, stride=1, pool=MaxPool(3, 2),
              residual=Residual(0, -5))
    l0 = dataclasses.replace(l0, in_shape=(2, 6, 4), padding_w=2)  # rows and columns apart
    l2 = IntLayer(rng.integers(-8, 8, size=(4, l1.n_out)), np.zeros(4, dtype=np.int64), 1,
                  weight_bits=4, readout=True)
    net = IntNetwork((l0, l1, l2), T)
    net.save(tmp_path / "conv.npz")
    back = IntNetwork.load(tmp_path / "conv.npz")
    for a, b in zip(net.layers, back.layers, strict=True):
        for field in ("kind", "in_shape", "stride", "padding", "padding_w", "pool", "residual",
                      "mode",
                      "readout", "weight_bits", "leak_shift", "reset"):
            assert getattr(a, field) == getattr(b, field), field
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.theta, b.theta)
    x = rng.integers(0, 1 << T, size=(5, 2, 6, 4))
    assert np.array_equal(run_network(back, x).output, run_network(net, x).output)


def test_files_without_geometry_still_load(tmp_path, rng):
    """A dense network saved before conv layers existed (no ``l{i}_geom``) loads unchanged."""
    w0, w1 = rng.integers(-8, 8, size=(5, 7)), rng.integers(-8, 8, size=(3, 5))
    old = {"T": np.array(4), "n_layers": np.array(2)}
    for i, (w, meta) in enumerate(((w0, ["lif", "0", "8", "1", "zero", "dense"]),
                                   (w1, ["spikepack", "1", "8", "0", "subtract", "dense"]))):
        old.update({f"l{i}_weight": w, f"l{i}_bias": np.zeros(len(w), dtype=np.int64),
                    f"l{i}_theta": np.array(3), f"l{i}_meta": np.array(meta)})
    np.savez(tmp_path / "old.npz", **old)
    net = IntNetwork.load(tmp_path / "old.npz")
    assert [layer.kind for layer in net.layers] == ["dense", "dense"]
    assert net.layers[0].mode is Mode.LIF and net.layers[0].reset is Reset.ZERO
    assert net.layers[1].readout and net.in_shape == (7,)
    assert all(layer.residual is None and layer.pool is None for layer in net.layers)


def test_dense_layers_take_a_shortcut_too(rng):
    T = 5
    l0 = IntLayer(rng.integers(-8, 8, size=(6, 10)), rng.integers(-20, 20, size=6), 7)
    l1 = IntLayer(rng.integers(-8, 8, size=(6, 6)), rng.integers(-20, 20, size=6), 9,
                  residual=Residual(0, 3))
    net = IntNetwork((l0, l1), T)
    x = rng.integers(0, 1 << T, size=(4, 10))
    res = run_network(net, x)
    a0 = res.layers[0].output
    v1 = a0 @ l1.weight.T + l1.bias + 3 * a0
    assert np.array_equal(res.output, np.clip(v1 // 9, 0, (1 << T) - 1))
    assert np.array_equal(run_network(net, x, form="serial").output, res.output)


# --- errors --------------------------------------------------------------------------------------

W = np.ones((2, 3, 3, 3), dtype=np.int64)


@pytest.mark.parametrize("kwargs,message", [
    (dict(in_shape=(3, 2, 2)), r"kernel 3 is larger than the padded input \(2 \+ 2 x 0"),
    (dict(in_shape=(3, 1, 5), padding=0), r"kernel 3 is larger than the padded input"),
    (dict(in_shape=(4, 5, 5)), r"takes 3 input channels .* has 4"),
    (dict(), r"needs in_shape=\(C_in, H, W\)"),
    (dict(in_shape=(3, 5)), r"in_shape must be \(C_in, H, W\)"),
    (dict(in_shape=(3, 0, 5)), r"in_shape entry must be at least 1"),
    (dict(weight=np.ones((2, 3, 3))), r"conv weight must be 4-D"),
    (dict(in_shape=(3, 5, 5), stride=0), r"stride must be at least 1"),
    (dict(in_shape=(3, 5, 5), padding=-1), r"padding must be at least 0"),
    (dict(in_shape=(3, 5, 5), padding_w=-1), r"padding_w must be at least 0"),
    (dict(in_shape=(3, 5, 1), padding=1, padding_w=0), r"kernel 3 is larger than the padded"),
    (dict(in_shape=(3, 5, 5), stride=1.5), r"stride must be an integer"),
    (dict(in_shape=(3, 5, 5), pool=(4, 1)), r"pool kernel 4 is larger than the conv output"),
    (dict(in_shape=(3, 5, 5), pool=(2, 0)), r"pool stride must be at least 1"),
    (dict(in_shape=(3, 5, 5), pool=(2, 2, 2)), r"pool must be \(kernel, stride\)"),
    (dict(in_shape=(3, 5, 5), pool=2, readout=True), r"readout layer .* cannot pool"),
    (dict(in_shape=(3, 5, 5), residual=(0, 0)), r"residual gain must be non-zero"),
    (dict(in_shape=(3, 5, 5), residual=(0, 8), weight_bits=4), r"gain 8 does not fit 4-bit"),
    (dict(in_shape=(3, 5, 5), residual=(-2, 1)), r"residual source must be at least -1"),
    (dict(in_shape=(3, 5, 5), residual=3), r"residual must be a Residual or \(source, gain\)"),
    (dict(in_shape=(3, 5, 5), kind="conv3d"), r"kind must be one of"),
])
def test_bad_conv_layers_are_refused_with_a_clear_error(kwargs, message):
    kwargs = {"weight": W, "bias": [0, 0], "theta": 1, "kind": "conv", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        IntLayer(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    (dict(pool=2), r"stride, padding and pool apply to conv layers only"),
    (dict(padding=1), r"stride, padding and pool apply to conv layers only"),
    (dict(padding_w=1), r"stride, padding and pool apply to conv layers only"),
    (dict(in_shape=(3, 1, 1)), r"a dense layer's in_shape is \(n_in,\) = \(3,\)"),
])
def test_bad_dense_geometry_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IntLayer(np.ones((2, 3), dtype=np.int64), [0, 0], 1, **kwargs)


def test_bad_conv_networks_and_inputs_are_refused(rng):
    def c(in_shape, c_out=2, **kw):
        return IntLayer(np.ones((c_out, in_shape[0], 3, 3), dtype=np.int64), np.zeros(c_out), 1,
                        kind="conv", in_shape=in_shape, padding=1, **kw)

    dense = IntLayer(np.ones((18, 4), dtype=np.int64), np.zeros(18), 1)
    with pytest.raises(ValueError, match="conv layer after dense layer 0"):
        IntNetwork((dense, c((2, 3, 3))), 4)
    with pytest.raises(ValueError, match=r"layer 1 expects a \(C, H, W\) input of \(2, 4, 3\) but "
                                         r"layer 0 gives \(2, 3, 4\)"):
        IntNetwork((c((1, 3, 4)), c((2, 4, 3))), 4)
    with pytest.raises(ValueError, match="layer 1 takes 20 inputs but layer 0 gives 24"):
        IntNetwork((c((1, 3, 4)), IntLayer(np.ones((2, 20), dtype=np.int64), [0, 0], 1)), 4)
    with pytest.raises(ValueError, match=r"residual source 1 is not an earlier layer; use 0..0"):
        IntNetwork((c((2, 3, 4)), c((2, 3, 4), residual=(1, 1))), 4)
    with pytest.raises(ValueError, match=r"residual source, layer 0, has shape \(2, 4, 4\) but the "
                                         r"layer's pre-pool output is \(2, 2, 2\)"):
        IntNetwork((c((2, 4, 4)), c((2, 4, 4), pool=2), c((2, 2, 2), residual=(0, 1))), 4)
    with pytest.raises(ValueError, match=r"the network input, has shape \(1, 4, 4\)"):
        IntNetwork((c((1, 4, 4), residual=(NETWORK_INPUT, 1)),), 4)
    net = IntNetwork((c((2, 4, 4)), c((2, 4, 4), residual=Residual(NETWORK_INPUT, 1))), 4)
    with pytest.raises(ValueError, match=r"images of shape \(2, 4, 4\) \(or 32 values flattened"):
        run_network(net, np.zeros((1, 2, 4, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        run_network(net, np.full((1, 2, 4, 4), 16))
    layer = net.layers[1]
    with pytest.raises(ValueError, match="pass that output as residual="):
        run_layer(layer, np.zeros((1, 2, 4, 4), dtype=np.int64), 4)
    with pytest.raises(ValueError, match=r"residual input must have shape \(1, 2, 4, 4\)"):
        run_layer(layer, np.zeros((1, 2, 4, 4), dtype=np.int64), 4,
                  residual=np.zeros((1, 2, 3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="the layer has no shortcut"):
        run_layer(net.layers[0], np.zeros((1, 2, 4, 4), dtype=np.int64), 4,
                  residual=np.zeros((1, 2, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"conv layer takes inputs of shape \(2, 4, 4\)"):
        run_layer(net.layers[0], np.zeros((1, 3, 4, 4), dtype=np.int64), 4)


# --- memory layout -------------------------------------------------------------------------------


def test_feature_map_blocks_round_trip_and_layout(rng):
    for _ in range(50):
        c, h, w, k = (int(n) for n in rng.integers(1, 9, size=4))
        a = rng.integers(0, 256, size=(2, c, h, w))
        blocks = feature_map_blocks(a, k)
        assert blocks.shape == (2, h, w, -(-c // k), k)
        assert np.array_equal(feature_map_from_blocks(blocks, c), a)
        n, y, x, ch = (int(rng.integers(0, m)) for m in (2, h, w, c))
        assert blocks[n, y, x, ch // k, ch % k] == a[n, ch, y, x]
        assert not blocks.reshape(2, h, w, -1)[..., c:].any()  # channels past C are zero
    with pytest.raises(ValueError, match="cannot hold 9 channels"):
        feature_map_from_blocks(np.zeros((2, 2, 2, 4)), 9)
