"""LIF/IF baseline by BPTT and LIF-mode deployment (LIF and PSU) to the integer golden model."""

import math

import numpy as np
import pytest
import torch

from sim.golden.ir import Mode, Reset
from sim.golden.model import run_network
from sim.golden.packing import unpack_bitplanes
from sw.compile.int_torch import IntTorchNetwork
from sw.compile.quantize_lif import leak_of, quantize_lif
from sw.research.seed_experiment import deploy_spiking, train_spiking
from sw.train.data import load_digits_split
from sw.train.spiking_mlp import BitPlaneEncoder, spiking_mlp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bitplane_encoder_is_the_packing_modules_bitplanes(rng):
    a = rng.integers(0, 32, size=(7, 11))
    planes = BitPlaneEncoder(5)(torch.tensor(a, dtype=torch.float32))
    assert np.array_equal(planes.numpy().astype(np.int64), unpack_bitplanes(a, 5))
    with pytest.raises(ValueError, match="packed 5-bit words"):
        BitPlaneEncoder(5)(torch.tensor([[32.0]]))


def _on_grid_if_model(rng, T, sizes=(12, 9, 5), theta_int=64, reset="subtract"):
    """An IF model whose float weights sit exactly on the integer grid the quantizer picks."""
    model = spiking_mlp(sizes, T, "if", reset=reset).double()
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    ints = []
    for i, lin in enumerate(lins):
        w = rng.integers(-127, 128, size=lin.weight.shape)
        w[:, 0] = 127  # every row reaches qmax, so theta_int = floor(127 theta / max|W|) = 64
        b = rng.integers(-40, 41, size=lin.bias.shape)
        scale = 1 / theta_int if i < len(lins) - 1 else 0.5
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w * scale))
            lin.bias.copy_(torch.tensor(b * scale))
        ints.append((w, b))
    return model, ints


@pytest.mark.parametrize("T,reset",
                         [(1, "subtract"), (4, "subtract"), (8, "zero"), (16, "subtract")])
def test_if_model_on_the_integer_grid_deploys_bit_exactly(T, reset, rng):
    model, ints = _on_grid_if_model(rng, T, reset=reset)
    net, _ = quantize_lif(model)
    for layer, (w, b) in zip(net.layers, ints, strict=True):
        assert np.array_equal(layer.weight, w) and np.array_equal(layer.bias, b)
        assert layer.mode is Mode.LIF and layer.leak_shift == 0
    assert net.layers[0].reset is (Reset.SUBTRACT if reset == "subtract" else Reset.ZERO)
    assert np.all(net.layers[0].theta_vector == 64)
    x = rng.integers(0, 1 << T, size=(50, 12))
    golden = run_network(net, x)
    with torch.no_grad():
        logits = model(torch.tensor(x, dtype=torch.float64)).numpy()
    # float readout = mean over T of (W s + b) = s_readout * v_T / T
    assert np.allclose(logits, golden.output * 0.5 / T, rtol=0, atol=1e-9)
    assert np.array_equal(IntTorchNetwork(net)(torch.tensor(x)).numpy(), golden.output)


def test_leak_mapping_and_refusals():
    from sw.train.neurons import IPSU, LIF, PSU, RPSU

    assert leak_of(LIF(tau=2.0)) == (1, 1.0, Reset.SUBTRACT)
    assert leak_of(LIF(tau=8.0, reset="zero")) == (3, 1.0, Reset.ZERO)
    assert leak_of(LIF(tau=math.inf)) == (0, 1.0, Reset.SUBTRACT)
    assert leak_of(PSU(4, tau=2.0)) == (1, 0.5, Reset.SUBTRACT)
    with pytest.raises(ValueError, match="not 2\\^k"):
        leak_of(LIF(tau=3.0))
    with pytest.raises(ValueError, match="only for tau = 2"):
        leak_of(PSU(4, tau=4.0))
    for m in (IPSU(4), RPSU(4)):
        with pytest.raises(TypeError, match="no LIF-mode equivalent"):
            leak_of(m)
    with pytest.raises(TypeError, match="time-major spiking MLP"):
        quantize_lif(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="weight_bits"):
        quantize_lif(spiking_mlp((4, 3, 2), 2, "lif"), weight_bits=9)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(0)


@pytest.mark.parametrize("neuron,T", [("lif", 4), ("psu", 4)])
def test_trains_on_digits_and_deploys_to_integer_lif(neuron, T, digits):
    run = train_spiking(digits, T, neuron, hidden=(96,), epochs=8)
    hist = run.history
    dep = deploy_spiking(run, digits)
    print(f"{neuron} T={T}: loss {hist.loss[0]:.3f} -> {hist.loss[-1]:.3f}; test accuracy float "
          f"{run.accuracy:.3f}, float deployed {dep.float_deployed_accuracy:.3f}, integer "
          f"{dep.int_accuracy:.3f}; agreement {dep.agreement:.3f}")
    print(dep.report.table())
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert run.accuracy > 0.85
    assert dep.net.layers[0].leak_shift == 1
    # Integer LIF vs the float model with the same (deployed) semantics: rounding and the floor of
    # the shift leak flip few decisions.
    assert dep.agreement > 0.95
    assert abs(dep.int_accuracy - dep.float_deployed_accuracy) <= 0.03
    if neuron == "lif":  # a LIF model is trained with the semantics it is deployed with
        assert dep.float_deployed_accuracy == run.accuracy
    assert 0.0 < dep.int_firing_rates[0] < 1.0
