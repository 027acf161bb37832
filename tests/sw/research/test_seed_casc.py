"""CASC: ClipQuan_L and its gradient, CIF neurons against their definition, WSC, digits."""

import numpy as np
import pytest
import torch

from sw.train.casc import CIFLayer, CIFNetwork, ClipQuan, casc_ann, run_casc
from sw.train.data import load_digits_split
from sw.train.models import ClipFloor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("L,lam", [(1, 1.0), (3, 0.5), (7, 2.0), (15, 1.3)])
def test_clipquan_forward_is_the_definition(L, lam, rng):
    x = torch.tensor(rng.normal(0.4 * lam, lam, size=500))
    m = ClipQuan(L, lam).double()
    y = m(x).detach().numpy()
    lam = float(m.lam.detach())  # the parameter as stored
    ref = lam * np.floor(L * np.clip(x.numpy() / lam, 0, 1)) / L
    assert np.allclose(y, ref, rtol=0, atol=1e-12)
    assert len(np.unique(np.round(y / lam * L, 9))) <= L + 1


def test_clipquan_gradient_is_clipped_straight_through():
    m = ClipQuan(4, lam=2.0)
    x = torch.tensor([-1.0, -0.01, 0.3, 1.0, 1.99, 2.01, 5.0], requires_grad=True)
    m(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert m.lam.grad is not None and m.lam.grad != 0


@pytest.mark.parametrize("T", [1, 2, 4])
def test_clipquan_with_L_2T_minus_1_is_clipfloor(T, rng):
    lam = 1.7
    cq, cf = ClipQuan((1 << T) - 1, lam).double(), ClipFloor(T, lam).double()
    with torch.no_grad():  # the same lam in float64 (ClipFloor stores the step lam / L)
        cq.lam.fill_(lam)
        cf.inner.theta.fill_(lam / ((1 << T) - 1))
    x1 = torch.tensor(rng.normal(0.5, 1.5, size=300), requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y1, y2 = cq(x1), cf(x2)
    assert torch.allclose(y1, y2, rtol=0, atol=1e-12)
    y1.sum().backward()
    y2.sum().backward()
    assert torch.equal(x1.grad, x2.grad)


def reference_cif(weights, biases, thetas, x, L, sleep, signed=True):
    """CIF network written scalar by scalar from its definition (module docstring of
    sw.train.casc)."""
    n_hidden = len(thetas)
    v = [[0.0] * len(biases[i]) for i in range(n_hidden)]
    n = [[0] * len(biases[i]) for i in range(n_hidden)]
    out = [0.0] * len(biases[-1])
    planes = []
    for t in range(1, L + sleep + 1):
        wake = t <= L
        prev = list(x)
        step = []
        for i in range(n_hidden + 1):
            w, b = weights[i], biases[i]
            cur = []
            for j in range(len(b)):
                c = sum(w[j][k] * prev[k] for k in range(len(prev)))
                cur.append(c + (b[j] if wake else 0.0))
            if i == 0 and not wake:
                cur = [0.0] * len(b)  # no input current in sleep either
            if i == n_hidden:
                out = [o + c for o, c in zip(out, cur, strict=True)]
                break
            s = []
            for j in range(len(b)):
                v[i][j] += cur[j]
                if v[i][j] >= thetas[i] and n[i][j] < min(t, L):
                    sj = 1
                elif signed and v[i][j] < 0 and n[i][j] > 0:
                    sj = -1
                else:
                    sj = 0
                v[i][j] -= thetas[i] * sj
                n[i][j] += sj
                s.append(sj)
            step.append(s)
            prev = [thetas[i] * sj for sj in s]
        planes.append(step)
    return [o / L for o in out], n, planes


def random_net(rng, sizes, L):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        readout = i == len(sizes) - 2
        layers.append(CIFLayer(rng.normal(0, 0.8, size=(b, a)), rng.normal(0.05, 0.2, size=b),
                               1.0 if readout else float(rng.uniform(0.5, 1.5)), readout))
    return CIFNetwork(layers, L)


@pytest.mark.parametrize("L,sleep,signed",
                         [(1, 0, True), (4, 0, False), (4, 3, True), (6, 10, True)])
def test_cif_network_equals_the_scalar_definition(L, sleep, signed, rng):
    net = random_net(rng, (5, 6, 4, 3), L)
    x = rng.uniform(0, 1, size=(4, 5))
    res = net.run(x, sleep_steps=sleep, signed=signed, trace=True)
    for b in range(len(x)):
        logits, counts, planes = reference_cif(
            [layer.weight.tolist() for layer in net.layers],
            [layer.bias.tolist() for layer in net.layers],
            [layer.theta for layer in net.layers[:-1]], x[b].tolist(), L, sleep, signed)
        assert np.allclose(res.logits[b], logits, rtol=0, atol=1e-9)
        for i, c in enumerate(counts):
            assert res.counts[i][b].tolist() == c
        for t, step in enumerate(planes):
            for i, s in enumerate(step):
                assert res.trace[t][i]["spikes"][b].tolist() == s


def test_cif_count_stays_within_0_and_t_and_negative_spikes_only_take_back(rng):
    L = 5
    net = random_net(rng, (8, 12, 10, 4), L)
    res = net.run(rng.uniform(0, 1, size=(64, 8)), sleep_steps=20, trace=True)
    for t, step in enumerate(res.trace, start=1):
        for layer_log in step[:-1]:
            count = layer_log["count"]
            assert count.min() >= 0 and count.max() <= min(t, L)
    assert sum(res.negative_spikes) > 0, "random nets should need some corrections"
    unsigned = net.run(rng.uniform(0, 1, size=(64, 8)), signed=False)
    assert sum(unsigned.negative_spikes) == 0


def test_wsc_sleep_phase_zeroes_biases_and_input(rng):
    L, sleep = 4, 6
    # One hidden neuron with zero weights: only its bias drives it.
    net = CIFNetwork([CIFLayer(np.zeros((1, 2)), np.array([0.6]), 1.0),
                      CIFLayer(np.ones((1, 1)), np.array([0.25]), 1.0, True)], L)
    res = net.run(np.array([[1.0, 1.0]]), sleep_steps=sleep, trace=True)
    for t, step in enumerate(res.trace, start=1):
        hidden, readout = step
        if t <= L:
            assert hidden["current"].tolist() == [[0.6]]
        else:  # sleep: no bias, no input
            assert hidden["current"].tolist() == [[0.0]]
            assert readout["current"].tolist() == hidden["spikes"].tolist()  # W theta s, no bias
    # Integrated bias 4 * 0.6 = 2.4 -> two spikes, and sleep adds none.
    assert res.counts[0].tolist() == [[2.0]]
    assert np.allclose(res.logits, (2.0 + L * 0.25) / L)


def test_wsc_with_enough_sleep_is_exactly_the_clipquan_ann(rng):
    torch.manual_seed(int(rng.integers(1 << 31)))
    L = 4
    ann = casc_ann((10, 16, 12, 5), L).double()
    with torch.no_grad():
        for m in ann:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)
    net = CIFNetwork.from_ann(ann)
    x = rng.uniform(0, 1, size=(200, 10))
    with torch.no_grad():
        ref = ann(torch.tensor(x)).numpy()
    assert np.allclose(net.ann_forward(x), ref, rtol=0, atol=1e-9)
    wsc = net.run(x, sleep_steps=8 * L * 2)
    assert all(a == 1.0 for a in net.count_agreement(wsc, x))
    assert np.allclose(wsc.logits, ref, rtol=0, atol=1e-9)
    no_sleep = net.run(x, signed=False)
    assert min(net.count_agreement(no_sleep, x)) < 1.0, "uneven spikes should cost plain IF"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="L must be in"):
        ClipQuan(0)
    with pytest.raises(ValueError, match="lam must be positive"):
        ClipQuan(3, lam=0.0)
    with pytest.raises(ValueError, match="ends with a readout"):
        CIFNetwork([CIFLayer(np.zeros((1, 1)), np.zeros(1), 1.0)], 3)
    net = CIFNetwork([CIFLayer(np.zeros((1, 2)), np.zeros(1), 1.0),
                      CIFLayer(np.zeros((1, 1)), np.zeros(1), 1.0, True)], 3)
    with pytest.raises(ValueError, match="sleep_steps"):
        net.run(np.zeros((1, 2)), sleep_steps=-1)
    with pytest.raises(ValueError, match="input must have shape"):
        net.run(np.zeros((1, 3)))
    with pytest.raises(TypeError, match="ClipQuan"):
        CIFNetwork.from_ann(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(),
                                                torch.nn.Linear(2, 2)))


def test_casc_trains_on_digits_and_converts():
    r = run_casc(load_digits_split(0), 4, hidden=(96, 48), epochs=8)
    print(f"CASC T=4: ANN {r.ann_accuracy:.3f}, IF {r.if_accuracy:.3f}, CIF {r.cif_accuracy:.3f}, "
          f"WSC {r.wsc_accuracy:.3f}; count agreement {r.count_agreement}")
    assert r.ann_accuracy > 0.85
    assert r.wsc_matches_ann == 1.0
    assert r.count_agreement["wsc"] == 1.0
    assert r.count_agreement["if"] < 1.0
