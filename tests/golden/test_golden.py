"""The golden model agrees with itself: serial == packed == closed form, on thousands of layers."""

import numpy as np
import pytest

from sim.golden.ir import AccumulatorOverflowError, IntLayer, IntNetwork, Mode, Reset
from sim.golden.model import (
    accumulator_bound,
    fire_packed,
    fire_serial,
    lif_layer,
    run_network,
    spikepack_layer,
)
from sim.golden.packing import pack_bitplanes, unpack_bitplanes


def random_layer(rng, T, *, n_in=None, n_out=None, weight_bits=8, mode=Mode.SPIKEPACK,
                 readout=False):
    n_in = n_in or int(rng.integers(1, 65))
    n_out = n_out or int(rng.integers(1, 33))
    hi = 1 << (weight_bits - 1)
    style = rng.integers(0, 4)
    if style == 0:  # extreme weights
        w = rng.choice([-hi, hi - 1], size=(n_out, n_in))
    elif style == 1:  # mostly negative: negative membranes
        w = rng.integers(-hi, hi // 4, size=(n_out, n_in))
    else:
        w = rng.integers(-hi, hi, size=(n_out, n_in))
    b = rng.integers(-2000, 2000, size=n_out)
    theta = 1 if rng.random() < 0.2 else (
        rng.integers(1, 400, size=n_out) if rng.random() < 0.5 else int(rng.integers(1, 400)))
    return IntLayer(w, b, theta, mode=mode, readout=readout, weight_bits=weight_bits,
                    leak_shift=int(rng.integers(0, 4)), reset=rng.choice(list(Reset)))


def test_serial_equals_packed_equals_closed_form_on_thousands_of_layers(rng):
    n_cases = 3000
    negatives = 0
    for _ in range(n_cases):
        T = int(rng.integers(1, 9))
        layer = random_layer(rng, T, weight_bits=int(rng.integers(2, 9)))
        a = rng.integers(0, 1 << T, size=(4, layer.n_in))
        a[0] = 0  # all-zero input
        a[1] = (1 << T) - 1  # all-ones input
        packed = spikepack_layer(layer, a, T, form="packed")
        serial = spikepack_layer(layer, a, T, form="serial")
        v = a @ layer.weight.T + layer.bias
        closed = np.clip(np.floor_divide(v, layer.theta_vector), 0, (1 << T) - 1)
        assert np.array_equal(packed.membrane, v)
        assert np.array_equal(serial.membrane, v)
        assert np.array_equal(packed.output, closed)
        assert np.array_equal(serial.output, closed)
        assert np.array_equal(packed.spikes, serial.spikes)
        negatives += int((v < 0).sum())
    assert negatives > 1000  # the cases really cover negative membranes


def test_serial_firing_is_compare_and_subtract(rng):
    for T in range(1, 9):
        theta = rng.integers(1, 50, size=200)
        v = rng.integers(-2000, 60 << T, size=200)
        planes, residual = fire_serial(v, theta, T)
        a = pack_bitplanes(planes)
        assert np.array_equal(a, fire_packed(v, theta, T))
        # what was not emitted stays in the membrane: v = theta a + r
        assert np.array_equal(v, theta * a + residual)
        inside = (v >= 0) & (v < theta << T)
        assert np.all((residual[inside] >= 0) & (residual[inside] < theta[inside]))


def test_readout_returns_membrane(rng):
    layer = random_layer(rng, 4, readout=True)
    a = rng.integers(0, 16, size=(5, layer.n_in))
    r = spikepack_layer(layer, a, 4)
    assert np.array_equal(r.output, a @ layer.weight.T + layer.bias)
    assert not r.spikes.any()


def lif_reference(layer, a, T):
    """Step-by-step scalar loop, written independently of sim.golden.model.lif_layer."""
    batch, n_out = a.shape[0], layer.n_out
    out = np.zeros((batch, n_out), dtype=np.int64)
    final = np.zeros((batch, n_out), dtype=np.int64)
    for n in range(batch):
        for j in range(n_out):
            v, word = 0, 0
            for t in range(T):
                if layer.leak_shift:
                    v -= v >> layer.leak_shift  # Python >> floors, like an arithmetic shift
                v += int(layer.bias[j])
                for i in range(layer.n_in):
                    v += int(layer.weight[j, i]) * ((int(a[n, i]) >> (T - 1 - t)) & 1)
                s = 0
                if not layer.readout and v >= layer.theta_vector[j]:
                    s = 1
                    v = v - int(layer.theta_vector[j]) if layer.reset is Reset.SUBTRACT else 0
                word = 2 * word + s
            out[n, j], final[n, j] = (v, v) if layer.readout else (word, v)
    return out, final


@pytest.mark.parametrize("readout", [False, True])
def test_lif_layer_matches_step_by_step_reference(readout, rng):
    for _ in range(60):
        T = int(rng.integers(1, 9))
        layer = random_layer(rng, T, n_in=int(rng.integers(1, 12)), n_out=int(rng.integers(1, 6)),
                             mode=Mode.LIF, readout=readout)
        a = rng.integers(0, 1 << T, size=(3, layer.n_in))
        r = lif_layer(layer, a, T)
        ref_out, ref_v = lif_reference(layer, a, T)
        assert np.array_equal(r.output, ref_out)
        assert np.array_equal(r.membrane, ref_v)
        if not readout:
            assert np.array_equal(r.spikes, unpack_bitplanes(r.output, T).sum(axis=(0, -1)))


def test_network_chains_layers_and_counts_spikes(rng):
    T = 4
    l0 = random_layer(rng, T, n_in=20, n_out=16)
    l1 = random_layer(rng, T, n_in=16, n_out=12, mode=Mode.LIF)
    l2 = random_layer(rng, T, n_in=12, n_out=5, readout=True)
    net = IntNetwork((l0, l1, l2), T)
    x = rng.integers(0, 16, size=(9, 20))
    res = run_network(net, x)
    a1 = spikepack_layer(l0, x, T).output
    a2 = lif_layer(l1, a1, T).output
    assert np.array_equal(res.output, a2 @ l2.weight.T + l2.bias)
    assert res.spikes_per_layer.shape == (3, 9)
    assert np.array_equal(res.spikes_per_layer[0], unpack_bitplanes(a1, T).sum(axis=(0, -1)))
    assert np.array_equal(res.predictions(), np.argmax(res.output, axis=-1))


def test_accumulator_overflow_raises_instead_of_wrapping():
    layer = IntLayer(np.full((1, 1000), 127), np.zeros(1), 1)
    x = np.full((1, 1000), 255)
    assert accumulator_bound(layer, 8) == 127 * 1000 * 255
    with pytest.raises(AccumulatorOverflowError, match="outside a 24-bit signed accumulator"):
        spikepack_layer(layer, x, 8, acc_bits=24)
    with pytest.raises(AccumulatorOverflowError, match="partial sum"):
        spikepack_layer(layer, x, 8, form="serial", acc_bits=24)
    assert spikepack_layer(layer, x, 8, acc_bits=26).membrane[0, 0] == 127 * 1000 * 255


def test_lif_accumulator_bound_covers_the_reachable_membrane(rng):
    for _ in range(50):
        T = int(rng.integers(1, 9))
        layer = random_layer(rng, T, mode=Mode.LIF)
        x = rng.integers(0, 1 << T, size=(20, layer.n_in))
        x[0] = (1 << T) - 1
        v_max = 0
        r = lif_layer(layer, x, T, acc_bits=None)
        v_max = max(v_max, int(np.abs(r.membrane).max()))
        assert v_max <= accumulator_bound(layer, T)


@pytest.mark.parametrize("kwargs,message", [
    (dict(weight=[[128]], bias=[0], theta=1), r"weights do not fit 8 bits"),
    (dict(weight=[[8]], bias=[0], theta=1, weight_bits=4), r"weights do not fit 4 bits"),
    (dict(weight=[[1]], bias=[0], theta=0), r"theta must be a positive integer"),
    (dict(weight=[[1]], bias=[0], theta=-3), r"theta must be a positive integer"),
    (dict(weight=[[1.5]], bias=[0], theta=1), r"weight must hold integers"),
    (dict(weight=[[1]], bias=[0.25], theta=1), r"bias must hold integers"),
    (dict(weight=[1, 2], bias=[0], theta=1), r"weight must be 2-D"),
    (dict(weight=[[1]], bias=[0, 1], theta=1), r"bias must have shape"),
    (dict(weight=[[1]], bias=[0], theta=1, weight_bits=9), r"weight_bits must be in 2..8"),
    (dict(weight=[[1]], bias=[0], theta=1, leak_shift=16), r"leak_shift"),
    (dict(weight=[[1]], bias=[0], theta=1, mode="conv"), r"not a valid Mode"),
])
def test_bad_layers_are_refused_with_a_clear_error(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        IntLayer(**kwargs)


def test_bad_networks_and_inputs_are_refused(rng):
    l0 = IntLayer(np.ones((3, 4), dtype=int), np.zeros(3), 2)
    l1 = IntLayer(np.ones((2, 5), dtype=int), np.zeros(2), 2)
    with pytest.raises(ValueError, match="layer 1 takes 5 inputs but layer 0 gives 3"):
        IntNetwork((l0, l1), 4)
    with pytest.raises(ValueError, match="T must be in"):
        IntNetwork((l0,), 0)
    net = IntNetwork((l0,), 4)
    with pytest.raises(ValueError, match="takes 4 inputs"):
        run_network(net, np.zeros((1, 5), dtype=int))
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        run_network(net, np.full((1, 4), 16))
    with pytest.raises(TypeError, match="integers"):
        run_network(net, np.full((1, 4), 0.5))


def test_network_save_load_round_trip(tmp_path, rng):
    T = 5
    net = IntNetwork((random_layer(rng, T, n_in=7, n_out=6, mode=Mode.LIF),
                      random_layer(rng, T, n_in=6, n_out=3, readout=True)), T)
    net.save(tmp_path / "n.npz")
    back = IntNetwork.load(tmp_path / "n.npz")
    x = rng.integers(0, 1 << T, size=(10, 7))
    assert np.array_equal(run_network(back, x).output, run_network(net, x).output)
    for a, b in zip(net.layers, back.layers, strict=True):
        assert ((a.mode, a.reset, a.leak_shift, a.readout)
                == (b.mode, b.reset, b.leak_shift, b.readout))


def test_lif_fire_above_and_compare_leaked_by_hand(tmp_path):
    """One IF/LIF neuron, input current 5 every step, theta 10: the compare is v >= 10, v > 10
    (fire_above) or v >= 10 - (10 >> 1) = 5 (compare_leaked, k = 1); the reset subtracts 10 in
    every case. The settings survive save/load."""
    a = np.array([[0b1111]])  # one input spiking at all T = 4 steps, weight 5

    def run(k, **flags):
        layer = IntLayer([[5]], [0], 10, mode=Mode.LIF, leak_shift=k, **flags)
        net = IntNetwork((layer,), 4)
        net.save(tmp_path / "n.npz")
        loaded = IntNetwork.load(tmp_path / "n.npz").layers[0]
        assert (loaded.fire_above, loaded.compare_leaked) == (layer.fire_above,
                                                              layer.compare_leaked)
        return int(run_network(net, a).output[0, 0])

    assert run(0) == 0b0101  # v = 5, 10 fires (v = 0), 5, 10 fires
    assert run(0, fire_above=True) == 0b0010  # v = 5, 10, 15 fires (v = 5), 10
    assert run(1) == 0b0001  # v = 5, 5 - 2 + 5 = 8, 8 - 4 + 5 = 9, 9 - 4 + 5 = 10 fires
    # v = 5 fires (v = -5), -5 + 3 + 5 = 3, 3 - 1 + 5 = 7 fires (v = -3), -3 + 2 + 5 = 4
    assert run(1, compare_leaked=True) == 0b1010
    # the same against 5 + 1: v = 5, -> 8 fires (v = -2), -1 + 5 = 4, 2 + 5 = 7 fires
    assert run(1, compare_leaked=True, fire_above=True) == 0b0101
