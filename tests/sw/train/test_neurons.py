import math

import numpy as np
import pytest
import torch

from sim.golden.model import fire_packed, fire_serial
from sim.golden.packing import pack_bitplanes
from sw.train.neurons import LIF, SpikePack, atan_spike


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_spikepack_packed_matches_the_integer_contract(T, rng):
    theta = float(rng.integers(1, 20))
    v = rng.integers(-500, 40 * (1 << T), size=400)
    m = SpikePack(T, theta=theta)
    a = m.packed(torch.tensor(v, dtype=torch.float64)).detach().numpy()
    assert np.array_equal(a.astype(np.int64), fire_packed(v, int(theta), T))


@pytest.mark.parametrize("T", [1, 3, 4, 8])
def test_spikepack_serial_form_equals_packed_form_for_tau_2(T, rng):
    theta = float(rng.integers(1, 9))
    z = torch.tensor(rng.integers(-100, 12 * (1 << T), size=300), dtype=torch.float64)
    packed = SpikePack(T, theta=theta, form="packed")
    serial = SpikePack(T, theta=theta, form="serial")
    assert torch.equal(packed(z), serial(z))
    planes = serial.serial_spikes(z).numpy().astype(np.int64)
    ref_planes, _ = fire_serial(z.numpy().astype(np.int64), int(theta), T)
    assert np.array_equal(planes, ref_planes)
    want = packed.packed(z).detach().numpy().astype(np.int64)
    assert np.array_equal(pack_bitplanes(planes), want)


def test_general_tau_serial_form_fires_greedily_in_base_tau():
    m = SpikePack(3, theta=1.0, tau=3.0, form="serial")
    # 3^2 + 3^0 = 10 -> spikes at t = 1 and t = 3
    assert m.serial_spikes(torch.tensor([10.0]))[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert m.levels == 13.0
    assert float(m(torch.tensor([100.0])).detach()) == 13.0


def test_spikepack_straight_through_gradient():
    m = SpikePack(2, theta=1.0)
    z = torch.tensor([-1.0, 0.5, 2.5, 10.0], requires_grad=True)
    m(z).sum().backward()
    # ramp inside [0, levels * theta], flat outside
    assert z.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert m.theta.grad is not None


def test_spikepack_rejects_bad_parameters():
    with pytest.raises(ValueError, match="T must be in"):
        SpikePack(0)
    with pytest.raises(ValueError, match="theta must be positive"):
        SpikePack(4, theta=0.0)
    with pytest.raises(ValueError, match="tau must be greater than 1"):
        SpikePack(4, tau=1.0, form="serial")
    with pytest.raises(ValueError, match="closed form for tau = 2"):
        SpikePack(4, tau=3.0)


def test_lif_matches_a_scalar_loop(rng):
    x = torch.tensor(rng.normal(0.6, 1.0, size=(6, 3, 5)))
    for reset in ("subtract", "zero"):
        for tau in (2.0, math.inf):
            s = LIF(tau=tau, theta=1.0, reset=reset)(x)
            for b in range(3):
                for n in range(5):
                    v = 0.0
                    for t in range(6):
                        v = v * (1 - (0 if math.isinf(tau) else 1 / tau)) + float(x[t, b, n])
                        spike = float(v >= 1.0)
                        assert float(s[t, b, n]) == spike
                        if spike:
                            v = v - 1.0 if reset == "subtract" else 0.0


def test_atan_surrogate_gradient_peaks_at_threshold():
    x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    atan_spike(x, alpha=2.0).sum().backward()
    assert x.grad[1] == pytest.approx(1.0)
    assert x.grad[0] == x.grad[2] < 1.0
