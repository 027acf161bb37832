"""snnTorch as the oracle of the NIR import: its own simulation of a net, driven by the spike
trains of the digits test split, against the imported integer network.

Where the importer says ``exact`` the spikes of every hidden layer and the readout sums equal
snnTorch's on every test digit (golden model here; the RTL in the ``slow`` tier). Where it says
``approximate`` the agreement is measured and printed, and the report names the approximation.
"""

import warnings

import numpy as np
import pytest
import torch

from sim.golden.model import run_network
from sim.golden.packing import unpack_bitplanes
from sim.rtl.runner import simulator_available
from sw.compile.nir_import import SNNTORCH_DT, import_nir
from sw.train.data import load_digits_split

snn = pytest.importorskip("snntorch")
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch_oracle import snntorch_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(0)


def grid_linear(rng, n_in, n_out, lim, bias_lim=2, density=1.0, low=None):
    """Linear layer with weights and biases on the 1/8 grid (``w`` in ``[low, lim] / 8``,
    ``low = -lim`` by default)."""
    lin = torch.nn.Linear(n_in, n_out)
    w = rng.integers(-lim if low is None else low, lim + 1, (n_out, n_in))
    w = w * (rng.random((n_out, n_in)) < density)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w / 8.0))
        lin.bias.copy_(torch.tensor(rng.integers(-bias_lim, bias_lim + 1, n_out) / 8.0))
    return lin


def leaky(n, beta, threshold, reset, delay):
    return snn.Leaky(beta=torch.full((n,), float(beta)), threshold=torch.full((n,), threshold),
                     init_hidden=True, reset_mechanism=reset, reset_delay=delay)


def build(rng, sizes, beta, thr, reset, delay, lim, density=1.0, low=None):
    """``sizes[0] -> ... -> sizes[-1]``: Linear + Leaky per hidden layer, a Linear readout.

    ``thr[i] = None``: the threshold is the layer's largest drive (positive weights + bias) over
    ``2 - beta``, so no membrane can pass twice the threshold."""
    mods = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        mods.append(grid_linear(rng, a, b, lim, density=density, low=low))
        if i < len(sizes) - 2:
            t = thr[i]
            if t is None:
                w, bias = mods[-1].weight.detach().numpy(), mods[-1].bias.detach().numpy()
                drive = (np.clip(w, 0, None).sum(axis=1) + bias).max()
                t = float(max(np.ceil(drive / (2 - beta) * 8) / 8, 0.125))
            mods.append(leaky(b, beta, t, reset, delay))
    return torch.nn.Sequential(*mods)


def export(net, n_in):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta = 1 writes tau = inf (a division by zero)
        return export_to_nir(net, torch.zeros(n_in))


def compare(net, graph, x, T, **conventions):
    """Import ``graph``, run both on packed inputs ``x``; return the report and, per hidden
    layer and for the readout, the fraction of test digits whose outputs are all equal."""
    inet, report = import_nir(graph, T, **conventions)
    golden = run_network(inet, x)
    theirs, total = snntorch_run(net, unpack_bitplanes(x, T))
    agree = []
    for li, s in enumerate(theirs):
        ours = unpack_bitplanes(golden.layers[li].output, T)
        agree.append(float(np.all(ours == s, axis=(0, 2)).mean()))
    steps = np.asarray(report.layers[-1].steps)
    agree.append(float(np.all(golden.output * steps == total, axis=1).mean()))
    return inet, report, agree, golden


def exact_case(rng, x, T, beta, reset, delay, hidden):
    """A snnTorch net of the case whose every hidden layer fires on ``x`` (in snnTorch), and the
    conventions to import it with."""
    sizes = (64,) + (16,) * hidden + (10,)
    thr = [1.0, 1.5]
    lim, density, low = 3, 1.0, None
    if reset == "subtract" and not delay:
        # snnTorch's no-double-reset guard never acts when no membrane can pass 2 theta:
        # sparse rows and a threshold at the largest drive keep it out of reach (rows mostly
        # positive, so that typical digits still make the neurons fire)
        lim, density, low, thr = 3, 0.2, -1, [None, None]
    for _ in range(20):
        net = build(rng, sizes, beta, thr, reset, delay, lim, density, low)
        if all(s.any() for s in snntorch_run(net, unpack_bitplanes(x, T))[0]):
            break
    conv = dict(reset=reset, reset_delay=delay if reset == "subtract" else None)
    if beta != 1.0:
        conv.update(dt=SNNTORCH_DT, discretization="euler")
    return net, conv


CASES = [(beta, reset, delay, hidden) for beta in (1.0, 0.5) for reset in ("zero", "subtract")
         for delay in (True, False) for hidden in (1, 2)]


@pytest.mark.parametrize("beta,reset,delay,hidden", CASES)
def test_import_equals_snntorch_on_every_test_digit(beta, reset, delay, hidden, digits, rng):
    """IF (beta 1) and LIF (beta 0.5), reset to zero and by subtraction, reset_delay True and
    False, one and two hidden layers, weights on the 1/8 grid: the importer says exact, and the
    spikes of every layer and the readout sums equal snnTorch's on every test digit."""
    T = 4
    _, x = digits.packed(T)
    net, conv = exact_case(rng, x, T, beta, reset, delay, hidden)
    inet, report, agree, golden = compare(net, export(net, 64), x, T, **conv)
    print(f"beta={beta} reset={reset} reset_delay={delay} hidden={hidden}: agreement per layer "
          f"{agree}, spikes per layer {golden.spikes_per_layer.sum(axis=1).tolist()}\n"
          f"{report.table()}\n{report.summary()}")
    hidden_layers = inet.layers[:-1]
    assert all(layer.fire_above == (reset == "subtract") for layer in hidden_layers)
    assert all(layer.compare_leaked == (reset == "subtract" and delay and beta != 1.0)
               for layer in hidden_layers)
    assert all(s > 0 for s in golden.spikes_per_layer.sum(axis=1)[:-1])  # every layer fires
    assert report.exact, report.table()
    assert "exact mapping" in report.summary()
    assert agree == [1.0] * (hidden + 1)


def test_subtract_without_delay_names_the_double_reset_guard(digits, rng):
    """Dense rows can pass 2 theta: snnTorch's guard acts, the import says so and the measured
    agreement is below 1."""
    T = 4
    _, x = digits.packed(T)
    net = build(rng, (64, 16, 10), 1.0, [1.0], "subtract", False, 3)
    _, report, agree, _ = compare(net, export(net, 64), x, T, reset="subtract",
                                  reset_delay=False)
    print(f"IF subtract reset_delay=False, dense: digits agreeing per layer {agree}\n"
          f"{report.table()}")
    assert not report.exact and "does not reset twice" in report.table()
    assert agree[0] < 1.0


def test_off_grid_weights_and_rounded_leak_report_their_agreement(digits, rng):
    """Weights off any power-of-two grid, and beta = 0.9 rounded to 0.875: both approximate, each
    named with its size; the agreement with snnTorch is measured."""
    T = 4
    _, x = digits.packed(T)
    net = build(rng, (64, 16, 10), 1.0, [1.0], "zero", False, 3)
    with torch.no_grad():
        net[0].weight.add_(torch.tensor(rng.normal(0, 0.01, (16, 64)), dtype=torch.float32))
    _, report, agree, _ = compare(net, export(net, 64), x, T, reset="zero")
    print(f"off-grid weights: digits agreeing per layer {agree}\n{report.table()}")
    assert not report.exact and not report.layers[0].exact and report.layers[1].exact
    assert "off a power-of-two grid" in report.table() and report.layers[0].weight_rel_rms > 0
    assert 0.5 < agree[0] < 1.0

    net = build(rng, (64, 16, 10), 0.9, [1.0], "zero", False, 3)
    _, report, agree, _ = compare(net, export(net, 64), x, T, reset="zero", dt=SNNTORCH_DT,
                                  discretization="euler", allow_leak_rounding=True)
    print(f"beta 0.9 -> 0.875: digits agreeing per layer {agree}\n{report.table()}")
    assert report.layers[0].leak_shift == 3 and not report.exact
    assert "rounded to 1 - 2^-3 = 0.875" in report.table()
    assert 0.3 < agree[0] < 1.0


def test_leak_without_a_fine_enough_grid_is_approximate(digits, rng):
    """beta 0.5 with weights that fill 8 bits on their own grid: no room for the finer grid that
    keeps the shift leak exact, so the import says the leak floors."""
    T = 4
    _, x = digits.packed(T)
    net = build(rng, (64, 16, 10), 0.5, [1.0], "zero", False, 3)
    with torch.no_grad():  # 1/128 grid, up to 100 steps: x 8 for the leak would need 800
        net[0].weight.copy_(torch.tensor(rng.integers(-100, 101, (16, 64)) / 128.0))
    _, report, agree, _ = compare(net, export(net, 64), x, T, reset="zero", dt=SNNTORCH_DT,
                                  discretization="euler")
    print(f"beta 0.5, no room for the leak's grid: digits agreeing per layer {agree}\n"
          f"{report.table()}")
    assert not report.layers[0].exact and "floors" in report.table()


def test_delayed_subtraction_whose_threshold_is_off_the_grid_is_approximate(digits, rng):
    """beta = 0.75 with reset_delay=True needs theta / beta = 4/3 theta on a power-of-two grid;
    theta = 1 is not: the import names the compare's error, and the agreement is measured."""
    T = 4
    _, x = digits.packed(T)
    net = build(rng, (64, 16, 10), 0.75, [1.0], "subtract", True, 3)
    _, report, agree, _ = compare(net, export(net, 64), x, T, reset="subtract", reset_delay=True,
                                  dt=SNNTORCH_DT, discretization="euler")
    print(f"beta 0.75, reset_delay=True, theta 1: digits agreeing per layer {agree}\n"
          f"{report.table()}")
    assert not report.layers[0].exact and "not a whole number" in report.table()
    assert agree[0] < 1.0


@pytest.mark.slow
@pytest.mark.xdist_group("rtl_session_small")
@pytest.mark.skipif(not simulator_available("verilator"),
                    reason="verilator is not on PATH (bash scripts/setup.sh)")
@pytest.mark.parametrize("beta,reset,delay", [(0.5, "subtract", True), (1.0, "subtract", False),
                                              (0.5, "zero", True), (1.0, "subtract", True)])
def test_imported_snntorch_net_on_the_rtl_equals_snntorch(beta, reset, delay, digits, rng):
    """Two hidden layers of the exact cases (snnTorch's default Leaky first: compare_leaked and
    fire_above) through the real driver on the Verilator RTL: outputs and spike counters equal
    the golden model's, and the readout sums equal snnTorch's, on every digit run."""
    pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")
    from hw.contract.params import SMALL
    from sim.rtl.session import run_on_rtl

    T, n = 4, 24
    _, x = digits.packed(T)
    x = x[:n]
    net, conv = exact_case(rng, x, T, beta, reset, delay, 2)
    inet, report, agree, golden = compare(net, export(net, 64), x, T, **conv)
    assert report.exact and agree == [1.0, 1.0, 1.0], report.table()
    r = run_on_rtl(inet, x, SMALL)
    print(f"beta={beta} reset={reset} reset_delay={delay}: RTL spikes per layer "
          f"{r.spikes.sum(axis=0).tolist()}, cycles {int(r.total_cycles.sum())}")
    assert np.array_equal(r.outputs, golden.output)
    assert r.spikes.sum(axis=0).tolist() == golden.spikes_per_layer.sum(axis=1).tolist()
    _, total = snntorch_run(net, unpack_bitplanes(x, T))
    assert np.array_equal(r.outputs * np.asarray(report.layers[-1].steps), total)
