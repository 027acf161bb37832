"""PSU, IPSU, RPSU: forward semantics against explicit loops, the LIF they are, digits training."""

import math

import numpy as np
import pytest
import torch

from sw.train.data import load_digits_split
from sw.train.neurons import IPSU, LIF, PSU, RPSU, psu_matrices
from sw.train.spiking_mlp import forward_deployed, spiking_mlp
from sw.train.train import accuracy, as_tensor, predict, seed_everything, train_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def loop_membrane(x, a, r):
    """Reference, term by term: V_t = sum_(j<=t) a[t,j] I_j + sum_(j<t) r[t,j] sigmoid(U_j)."""
    T = x.shape[0]
    xf = x.reshape(T, -1).double()
    u = torch.zeros_like(xf)
    for t in range(T):
        for j in range(t + 1):
            u[t] += a[t, j] * xf[j]
    v = u.clone()
    for t in range(T):
        for j in range(t):
            v[t] += r[t, j] * torch.sigmoid(u[j])
    return v.reshape(x.shape)


@pytest.mark.parametrize("T,tau", [(1, 2.0), (3, 2.0), (4, 2.0), (8, 1.5), (5, 3.0)])
def test_psu_matrices_follow_the_definition(T, tau):
    a, b = psu_matrices(T, tau, dtype=torch.float64)
    for t in range(T):
        for j in range(T):
            assert a[t, j] == (tau ** -(t - j + 1) if j <= t else 0.0)
            assert b[t, j] == (-(tau ** -(t - j)) if j < t else 0.0)


@pytest.mark.parametrize("T,tau,theta",
                         [(1, 2.0, 1.0), (4, 2.0, 1.0), (6, 1.5, 0.7), (8, 3.0, 2.0)])
def test_psu_membrane_and_spikes_equal_the_explicit_loop(T, tau, theta, seed):
    torch.manual_seed(seed)
    x = torch.randn(T, 7, 5, dtype=torch.float64) * 2
    m = PSU(T, tau=tau, theta=theta).double()
    a, b = psu_matrices(T, tau, dtype=torch.float64)
    ref = loop_membrane(x, a, theta * b)
    assert torch.allclose(m.membrane(x), ref, rtol=0, atol=1e-12)
    assert torch.equal(m(x), (ref >= theta).double())


def test_ipsu_and_rpsu_use_their_learned_matrices_and_only_the_triangles(seed):
    torch.manual_seed(seed)
    T = 5
    x = torch.randn(T, 9, 3, dtype=torch.float64)
    ip = IPSU(T).double()
    rp = RPSU(T, theta=0.8).double()
    with torch.no_grad():
        ip.A_learned.copy_(torch.randn(T, T))
        rp.R.copy_(torch.randn(T, T))
    a, b = psu_matrices(T, 2.0, dtype=torch.float64)
    ref_ip = loop_membrane(x, torch.tril(ip.A_learned.detach()), 1.0 * b)
    ref_rp = loop_membrane(x, a, torch.tril(rp.R.detach(), diagonal=-1))
    assert torch.allclose(ip.membrane(x), ref_ip, rtol=0, atol=1e-12)
    assert torch.allclose(rp.membrane(x), ref_rp, rtol=0, atol=1e-12)
    # Masked entries get no gradient, so they never learn.
    ip(x).sum().backward()
    rp(x).sum().backward()
    assert torch.all(torch.triu(ip.A_learned.grad, diagonal=1) == 0)
    assert torch.all(torch.triu(rp.R.grad) == 0)
    assert torch.any(torch.tril(ip.A_learned.grad) != 0)
    assert torch.any(torch.tril(rp.R.grad, diagonal=-1) != 0)


def test_variants_start_as_psu(seed):
    torch.manual_seed(seed)
    x = torch.randn(4, 10, 6)
    p = PSU(4)
    for v in (IPSU(4), RPSU(4)):
        assert torch.equal(v.membrane(x), p.membrane(x))


def charge_then_decay_lif(x, tau, theta):
    """V_t = (V_(t-1) - theta S_(t-1) + I_t) / tau; S_t = [V_t >= theta] -- written out longhand."""
    T = x.shape[0]
    v_prev = np.zeros(x.shape[1:])
    s_prev = np.zeros(x.shape[1:])
    vs, ss = [], []
    for t in range(T):
        v = (v_prev - theta * s_prev + x[t]) / tau
        s = (v >= theta).astype(float)
        vs.append(v)
        ss.append(s)
        v_prev, s_prev = v, s
    return np.stack(vs), np.stack(ss)


@pytest.mark.parametrize("T,tau,theta",
                         [(4, 2.0, 1.0), (8, 2.0, 0.5), (6, 1.7, 1.3), (16, 2.0, 1.0)])
def test_psu_with_real_spikes_is_the_soft_reset_charge_then_decay_lif(T, tau, theta, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 2.0, size=(T, 40, 8))
    v_ref, s_ref = charge_then_decay_lif(x, tau, theta)
    assert 0.05 < s_ref.mean() < 0.95, "inputs should make the neurons fire sometimes"
    m = PSU(T, tau=tau, theta=theta).double()
    xt = torch.tensor(x)
    s, v = m.forward_spiking(xt)
    assert np.allclose(v.numpy(), v_ref, rtol=0, atol=1e-12)
    assert np.array_equal(s.numpy(), s_ref)
    # The matrix form with the real spikes in place of sigmoid(A I) gives the same membranes.
    a, b = psu_matrices(T, tau, dtype=torch.float64)
    v_mat = torch.einsum("tj,j...->t...", a, xt) + theta * torch.einsum("tj,j...->t...", b, s)
    assert torch.allclose(v_mat, v, rtol=0, atol=1e-12)


def test_psu_tau2_with_real_spikes_equals_lif_module_fed_half_the_input(seed):
    """For tau = 2, V_t = V+_(t-1) (1 - 1/2) + I_t / 2: sw.train.neurons.LIF(tau=2) on I / 2."""
    torch.manual_seed(seed)
    x = torch.randn(8, 30, 4, dtype=torch.float64) * 3 + 1
    s_psu, _ = PSU(8, tau=2.0).double().forward_spiking(x)
    s_lif = LIF(tau=2.0, theta=1.0, reset="subtract")(x / 2)
    assert torch.equal(s_psu, s_lif)


def test_psu_surrogate_gradient_is_atan(seed):
    """Backward equals the gradient of the smooth atan function the surrogate stands for."""
    torch.manual_seed(seed)
    alpha, theta = 2.0, 1.0
    x1 = (torch.randn(4, 6, 3, dtype=torch.float64) * 2).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    m = PSU(4, alpha=alpha, theta=theta).double()
    g_out = torch.randn(4, 6, 3, dtype=torch.float64)
    (m(x1) * g_out).sum().backward()
    smooth = torch.atan(math.pi / 2 * alpha * (m.membrane(x2) - theta)) / math.pi + 0.5
    (smooth * g_out).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-12, atol=1e-14)


def test_bad_parameters_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="T must be in"):
        PSU(0)
    with pytest.raises(ValueError, match="T must be in"):
        psu_matrices(17)
    for tau in (1.0, 0.5, -2.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="tau must be"):
            PSU(4, tau=tau)
    with pytest.raises(ValueError, match="theta must be positive"):
        RPSU(4, theta=0.0)
    with pytest.raises(ValueError, match="expects time-major input"):
        PSU(4)(torch.zeros(3, 2, 5))
    with pytest.raises(TypeError, match="only PSU has the sequential"):
        IPSU(4).forward_spiking(torch.zeros(4, 2))


@pytest.mark.parametrize("kind", ["psu", "ipsu", "rpsu"])
def test_psu_family_trains_on_digits(kind):
    split = load_digits_split(0)
    x_tr, x_te = split.packed(4)
    seed_everything(0)
    model = spiking_mlp((64, 96, 10), 4, kind)
    hist = train_classifier(model, x_tr, split.y_train, epochs=8, seed=0)
    acc = accuracy(predict(model, x_te), split.y_test)
    print(f"{kind}: loss {hist.loss[0]:.3f} -> {hist.loss[-1]:.3f}, test accuracy {acc:.3f}")
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert acc > 0.85
    if kind == "psu":
        # Deployed semantics (real-spike reset) still classify, the gap is measured in results.
        dep = accuracy(forward_deployed(model, as_tensor(x_te)).argmax(-1).numpy(), split.y_test)
        assert dep > 0.75
