"""Property-based tests (hypothesis): the loaders, the quantizers and the compiler, fed random and
corrupted inputs, give a clean result or their documented error class, never another exception;
integer limits at the int64 edge are refused or handled exactly.

Example counts are modest so the default tier stays fast; ``HYPOTHESIS_EXAMPLES=500 pytest
tests/sw/compile/test_properties.py -p no:xdist`` runs many more.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from boards import SMALL
from sim.golden.ir import (
    AccumulatorOverflowError,
    IntLayer,
    IntNetwork,
    Mode,
    NetworkFileError,
    Reset,
)
from sim.golden.model import accumulator_bound, required_accumulator_bits, run_network
from sw.compile.image_file import ImageFileError, load_image_file, save_image_file
from sw.compile.program_image import DoesNotFitError, build_image
from sw.compile.quantize import QuantizationError, quantize_spikepack
from sw.compile.quantize_lif import quantize_lif
from sw.train.models import spikepack_mlp
from sw.train.spiking_mlp import spiking_mlp

#: Examples per property: modest by default, ``HYPOTHESIS_EXAMPLES=500`` for a thorough run. No
#: example database (it would be written into the source tree); failures print a reproduce blob.
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "25"))
prop = settings(max_examples=EXAMPLES, deadline=None, print_blob=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Biases that stress the int64 edge, with ordinary ones.
edge_ints = st.one_of(
    st.integers(-50, 50),
    st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 100, 2**62, -(2**62),
                     2**31 - 1, -(2**31), 2**31, 2**23, -(2**23) - 1]),
    st.integers(INT64_MIN, INT64_MAX),
)


def network_from_seed(seed: int, *, T: int | None = None) -> IntNetwork:
    """A valid random network (both modes, per-layer or per-channel theta) from ``seed``."""
    rng = np.random.default_rng(seed)
    T = T or int(rng.integers(1, 9))
    sizes = rng.integers(1, 12, int(rng.integers(2, 5)))
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        last = i == len(sizes) - 2
        wb = int(rng.integers(2, 9))
        lim = 1 << (wb - 1)
        lif = bool(rng.integers(2))
        layers.append(IntLayer(
            weight=rng.integers(-lim, lim, (b, a)), bias=rng.integers(-60, 61, b),
            theta=rng.integers(1, 200, b) if rng.integers(2) else int(rng.integers(1, 200)),
            mode=Mode.LIF if lif else Mode.SPIKEPACK, readout=last, weight_bits=wb,
            leak_shift=int(rng.integers(0, 4)) if lif else 0,
            reset=Reset.ZERO if rng.integers(2) else Reset.SUBTRACT))
    return IntNetwork(tuple(layers), T)


def same_network(a: IntNetwork, b: IntNetwork) -> bool:
    return a.T == b.T and len(a.layers) == len(b.layers) and all(
        np.array_equal(x.weight, y.weight) and np.array_equal(x.bias, y.bias)
        and np.array_equal(x.theta, y.theta)
        and (x.mode, x.readout, x.weight_bits, x.leak_shift, x.reset, x.kind)
        == (y.mode, y.readout, y.weight_bits, y.leak_shift, y.reset, y.kind)
        for x, y in zip(a.layers, b.layers, strict=True))


def corrupt(data: bytes, draw) -> tuple[bytes, bool]:
    """``(corrupted data, single_bit)``: truncation, bit flips, overwritten or inserted bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "flips", "overwrite", "insert"]))
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[: draw(st.integers(0, len(b) - 1))]), False
    if kind == "flip":
        pos = draw(st.integers(0, len(b) - 1))
        b[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(b), True
    if kind == "flips":
        for pos in draw(st.lists(st.integers(0, len(b) - 1), min_size=2, max_size=8)):
            b[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(b), False
    pos = draw(st.integers(0, len(b) - 1))
    junk = draw(st.binary(min_size=1, max_size=16))
    if kind == "overwrite":
        b[pos:pos + len(junk)] = junk
    else:
        b[pos:pos] = junk
    return bytes(b), False


# --- loaders ---------------------------------------------------------------------------------


@prop
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_network_load_of_corrupted_files(seed, data, tmp_path):
    net = network_from_seed(seed)
    buf = io.BytesIO()
    net.save(buf)
    bad, single_bit = corrupt(buf.getvalue(), data.draw)
    path = tmp_path / "n.npz"
    path.write_bytes(bad)
    try:
        loaded = IntNetwork.load(path)
    except NetworkFileError as e:
        assert "n.npz" in str(e)
        return
    # The zip CRC catches any change of the stored arrays; a loaded network is the original
    # (a flip in a field nothing reads) or, after heavier damage, at least a valid network.
    assert isinstance(loaded, IntNetwork)
    if single_bit:
        assert same_network(loaded, net)


@prop
@given(data=st.binary(max_size=400))
def test_network_load_of_random_bytes(data, tmp_path):
    path = tmp_path / "r.npz"
    path.write_bytes(data)
    with pytest.raises(NetworkFileError):
        IntNetwork.load(path)


@prop
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_image_load_of_corrupted_files(seed, data, tmp_path):
    net = network_from_seed(seed)
    try:
        image = build_image(net, SMALL)
    except DoesNotFitError:
        assume(False)
    good = save_image_file(tmp_path / "good.spkimg", image, net).read_bytes()
    bad, single_bit = corrupt(good, data.draw)
    path = tmp_path / "i.spkimg"
    path.write_bytes(bad)
    try:
        loaded = load_image_file(path)
    except ImageFileError as e:
        assert "i.spkimg" in str(e)
        return
    if single_bit:
        assert loaded.image == image and same_network(loaded.net, net)


# --- IntLayer: no silent casts ---------------------------------------------------------------


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-(2.0**64), 2.0**64).map(math.floor),
    st.sampled_from([-(2.0**63), 2.0**63, 1e30, -1e30, 0.5, -0.0]),
)


@prop
@given(bias=st.lists(st.one_of(edge_ints.map(float), finite_or_not), min_size=1, max_size=4))
def test_intlayer_float_biases_are_exact_or_refused(bias):
    try:
        layer = IntLayer(weight=np.ones((len(bias), 1), dtype=np.int64), bias=np.array(bias),
                         theta=1)
    except (ValueError, TypeError) as e:
        assert "bias" in str(e)
        assert any(not math.isfinite(b) or b != math.floor(b) or not -(2**63) <= b < 2**63
                   for b in bias)
        return
    assert [int(v) for v in layer.bias] == [int(b) for b in bias]


@prop
@given(bias=st.lists(edge_ints, min_size=1, max_size=4), T=st.integers(1, 16),
       w=st.integers(-128, 127), lif=st.booleans(), k=st.integers(0, 15))
def test_accumulator_bound_is_exact_at_the_int64_edge(bias, T, w, lif, k):
    layer = IntLayer(weight=np.full((len(bias), 3), w), bias=bias, theta=7,
                     mode=Mode.LIF if lif else Mode.SPIKEPACK, leak_shift=k if lif else 0)
    bound = accumulator_bound(layer, T)
    if not lif:  # the closed form, in Python integers
        assert bound == max(3 * abs(w) * (2**T - 1) + abs(b) for b in bias)
    assert bound >= max(abs(b) for b in bias) >= 0
    assert required_accumulator_bits(layer, T) == bound.bit_length() + 1


# --- compiler --------------------------------------------------------------------------------


@prop
@given(seed=st.integers(0, 2**32 - 1), bias=st.lists(edge_ints, min_size=1, max_size=3),
       data=st.data())
def test_build_image_fits_exactly_or_refuses(seed, bias, data):
    """Whatever the biases: a clean image whose bias words are the biases, or DoesNotFitError;
    a network that fits never overflows the build's accumulator on any input."""
    rng = np.random.default_rng(seed)
    net0 = network_from_seed(seed, T=int(rng.integers(1, SMALL.t_max + 1)))
    first = net0.layers[0]
    n = first.n_out
    b = np.array([bias[i % len(bias)] for i in range(n)], dtype=np.int64)
    layer = IntLayer(weight=first.weight, bias=b, theta=first.theta, mode=first.mode,
                     readout=first.readout, weight_bits=first.weight_bits,
                     leak_shift=first.leak_shift, reset=first.reset)
    net = IntNetwork((layer,) + net0.layers[1:], net0.T)
    try:
        image = build_image(net, SMALL)
    except DoesNotFitError:
        assert max(required_accumulator_bits(la, net.T) for la in net.layers) > SMALL.acc_bits \
            or net.n_in > SMALL.max_neurons
        return
    words = next(w for w in image.writes if w.region == "BIAS").words
    got = [w - (1 << 32) if w >= 1 << 31 else w for w in words[:n]]
    assert got == [int(v) for v in b]
    x = data.draw(st.lists(st.integers(0, 2**net.T - 1), min_size=net.n_in, max_size=net.n_in))
    run_network(net, np.array([x]), acc_bits=SMALL.acc_bits)  # must not raise


@prop
@given(seed=st.integers(0, 2**32 - 1), bias=st.lists(edge_ints, min_size=1, max_size=3))
def test_golden_model_is_exact_or_refuses(seed, bias):
    """A SpikePack readout layer: v = b + W a in Python integers, or AccumulatorOverflowError."""
    rng = np.random.default_rng(seed)
    n_in, n_out, T = int(rng.integers(1, 6)), len(bias), int(rng.integers(1, 17))
    w = rng.integers(-128, 128, (n_out, n_in))
    a = rng.integers(0, 2**T, (2, n_in))
    net = IntNetwork((IntLayer(weight=w, bias=bias, theta=1, readout=True),), T)
    want = [[bias[j] + sum(int(w[j, i]) * int(a[s, i]) for i in range(n_in))
             for j in range(n_out)] for s in range(2)]
    try:
        got = run_network(net, a, acc_bits=None).output.tolist()
    except AccumulatorOverflowError:
        assert accumulator_bound(net.layers[0], T) >= 2**62
        return
    assert got == want


# --- quantizers ------------------------------------------------------------------------------


special = st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30, 0.0, -0.5, 1e-30])


@prop
@given(seed=st.integers(0, 2**32 - 1), edits=st.lists(
    st.tuples(st.sampled_from(["w0", "b0", "w1", "b1", "theta"]), special), max_size=3),
       per_channel=st.booleans(), weight_bits=st.integers(2, 8))
def test_quantize_spikepack_on_random_and_broken_models(seed, edits, per_channel, weight_bits):
    torch.manual_seed(seed % 2**31)
    model = spikepack_mlp([5, 4, 3], 3)
    with torch.no_grad():
        for what, value in edits:
            t = {"w0": model[1].weight, "b0": model[1].bias, "w1": model[3].weight,
                 "b1": model[3].bias, "theta": model[2].theta}[what]
            t.view(-1)[seed % t.numel()] = value
    try:
        net, report = quantize_spikepack(model, weight_bits=weight_bits, per_channel=per_channel)
    except QuantizationError as e:
        assert "layer" in str(e)
        return
    assert float(model[2].theta.detach()) > 0
    for p in model.parameters():
        assert torch.isfinite(p).all()
    assert len(report.layers) == len(net.layers) == 2
    try:
        build_image(net, SMALL)
    except DoesNotFitError:
        pass


@prop
@given(seed=st.integers(0, 2**32 - 1), edits=st.lists(
    st.tuples(st.sampled_from(["w0", "b0", "b1", "theta"]), special), max_size=3),
       neuron=st.sampled_from(["lif", "if", "psu"]))
def test_quantize_lif_on_random_and_broken_models(seed, edits, neuron):
    torch.manual_seed(seed % 2**31)
    model = spiking_mlp([5, 4, 3], 3, neuron)
    with torch.no_grad():
        for what, value in edits:
            if what == "theta":
                model[2].theta = value
                continue
            t = {"w0": model[1].weight, "b0": model[1].bias, "b1": model[3].bias}[what]
            t.view(-1)[seed % t.numel()] = value
    try:
        net, _ = quantize_lif(model)
    except QuantizationError as e:
        assert "layer" in str(e)
        return
    assert all(np.all(la.theta_vector > 0) for la in net.layers)


# --- every single bit flip (deterministic sweeps) ----------------------------------------------


def _flips(data: bytes, every: int, all_bits: bool):
    for pos in range(0, len(data), every):
        for bit in range(8) if all_bits else ((pos * 3) % 8,):
            b = bytearray(data)
            b[pos] ^= 1 << bit
            yield bytes(b)


@pytest.mark.parametrize("all_bits", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["one-bit-per-byte", "every-bit"])
def test_every_bit_flip_of_a_network_file(all_bits):
    """Each flip gives the original network (a field nothing reads) or NetworkFileError.

    Zip flag bits (encryption, patched data) raise RuntimeError/NotImplementedError inside
    zipfile; those must arrive as NetworkFileError too.
    """
    net = network_from_seed(3)
    buf = io.BytesIO()
    net.save(buf)
    outcomes = {"same": 0, "error": 0}
    for bad in _flips(buf.getvalue(), 1, all_bits):
        try:
            loaded = IntNetwork.load(io.BytesIO(bad))
        except NetworkFileError:
            outcomes["error"] += 1
            continue
        assert same_network(loaded, net)
        outcomes["same"] += 1
    assert outcomes["error"] > outcomes["same"] > 0


@pytest.mark.parametrize("every", [16, pytest.param(1, marks=pytest.mark.slow)],
                         ids=["every-16th-byte", "every-byte"])
def test_every_bit_flip_of_an_image_file(every, tmp_path):
    net = network_from_seed(3, T=4)
    image = build_image(net, SMALL)
    data = save_image_file(tmp_path / "good.spkimg", image, net).read_bytes()
    path = tmp_path / "bad.spkimg"
    for bad in _flips(data, every, False):
        path.write_bytes(bad)
        try:
            loaded = load_image_file(path)
        except ImageFileError:
            continue
        assert loaded.image == image and same_network(loaded.net, net)


@pytest.mark.parametrize("every", [16, pytest.param(1, marks=pytest.mark.slow)],
                         ids=["every-16th-byte", "every-byte"])
def test_every_bit_flip_of_a_model_file(every, tmp_path):
    """The original model, or ModelFileError (the SHA-256 catches flips torch's reader misses)."""
    import warnings

    from sw.train.model_io import ModelFileError, load_model, save_model

    torch.manual_seed(3)
    model = spikepack_mlp([8, 4, 3], 2)
    data = save_model(model, tmp_path / "good.pt").read_bytes()
    want = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "bad.pt"
    for bad in _flips(data, every, False):
        path.write_bytes(bad)
        try:
            with warnings.catch_warnings():  # torch warns about odd pickle protocols
                warnings.simplefilter("ignore")
                loaded, meta = load_model(path)
        except ModelFileError:
            continue
        assert meta == {"kind": "spikepack", "sizes": [8, 4, 3], "T": 2}
        assert all(torch.equal(want[k], v) for k, v in loaded.state_dict().items())
