"""NIR import: graphs written by a real exporter (snnTorch) and by nir itself, run by the golden
model and compared with the exporter's own forward pass where the semantics match."""

import math
import warnings

import nir
import numpy as np
import pytest
import torch

from sim.golden.ir import Mode, Reset
from sim.golden.model import run_network
from sim.golden.packing import pack_bitplanes, unpack_bitplanes
from sw.compile.nir_import import SNNTORCH_DT, NirImportError, import_nir

snn = pytest.importorskip("snntorch")
from snntorch.export_nir import export_to_nir  # noqa: E402


def grid_linear(rng, n_in, n_out, lim=40):
    """A Linear layer whose weights and biases sit on a 1/8 grid (exactly representable)."""
    lin = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(rng.integers(-lim, lim + 1, (n_out, n_in)) / 8.0))
        lin.bias.copy_(torch.tensor(rng.integers(-8, 9, n_out) / 8.0))
    return lin


def leaky(n, beta, threshold, reset="zero"):
    return snn.Leaky(beta=torch.full((n,), float(beta)),
                     threshold=torch.full((n,), float(threshold)),
                     init_hidden=True, reset_mechanism=reset, reset_delay=False)


def export(net, n_in, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(n_in))
    nir.write(str(path), graph)
    return path


def snntorch_forward(net, spikes):
    """Run the exporter's model over time; return per-step outputs of every Leaky and the last."""
    for m in net:
        if isinstance(m, snn.Leaky):
            m.reset_mem()
    hidden, outs = [], []
    with torch.no_grad():
        for t in range(spikes.shape[0]):
            x = torch.tensor(spikes[t], dtype=torch.float32)
            per_layer = []
            for m in net:
                x = m(x)
                if isinstance(m, snn.Leaky):
                    per_layer.append(x.numpy().copy())
            hidden.append(per_layer)
            outs.append(x.numpy().copy())
    return hidden, np.stack(outs)


def test_snntorch_if_network_imports_bit_exactly(tmp_path, rng):
    T, n_in = 6, 12
    net = torch.nn.Sequential(grid_linear(rng, n_in, 10), leaky(10, 1.0, 1.5),
                              grid_linear(rng, 10, 7), leaky(7, 1.0, 2.0),
                              grid_linear(rng, 7, 4))
    path = export(net, n_in, tmp_path / "if.nir")
    inet, report = import_nir(path, T, reset="zero")
    assert report.exact, report.table()
    assert [layer.mode for layer in inet.layers] == [Mode.LIF] * 3
    assert inet.layers[-1].readout and inet.layers[0].reset is Reset.ZERO
    w_last, w_int = net[4].weight.detach().numpy(), inet.layers[-1].weight
    scale = (w_last[w_int != 0] / w_int[w_int != 0])[0]
    assert np.array_equal(w_int * scale, w_last)
    n_match = 0
    for _ in range(40):
        spikes = (rng.random((T, 1, n_in)) < 0.4).astype(np.int64)
        x = pack_bitplanes(spikes)
        golden = run_network(inet, x)
        hidden, out = snntorch_forward(net, spikes[:, 0].astype(np.float32))
        for li in range(2):
            theirs = np.stack([h[li] for h in hidden]).astype(np.int64)
            ours = unpack_bitplanes(golden.layers[li].output, T)[:, 0]
            assert np.array_equal(ours, theirs)
        # readout: our integer sum over T, times the importer's exact scale, is their sum
        theirs_sum = out.sum(axis=0)
        assert np.array_equal(golden.output[0] * scale, theirs_sum)
        n_match += int(np.argmax(golden.output[0]) == np.argmax(theirs_sum))
    assert n_match == 40


def test_snntorch_lif_network_maps_leak_to_a_shift_and_reports_the_gap(tmp_path, rng):
    """Weights that fill 6 bits on their 1/8 grid leave no room for the 2^7 finer grid that
    would keep the shift leak exact over T = 8: approximate, said so, and measured."""
    T, n_in = 8, 16
    net = torch.nn.Sequential(grid_linear(rng, n_in, 12), leaky(12, 0.5, 1.0),
                              grid_linear(rng, 12, 5))
    inet, report = import_nir(export(net, n_in, tmp_path / "lif.nir"), T, dt=SNNTORCH_DT,
                              discretization="euler", reset="zero")
    assert inet.layers[0].leak_shift == 1 and report.layers[0].beta == pytest.approx(0.5)
    assert not report.layers[0].exact and "floors" in report.table()
    assert report.summary().startswith("approximate mapping: layer 0 ")
    agree = total = 0
    for _ in range(30):
        spikes = (rng.random((T, 1, n_in)) < 0.5).astype(np.int64)
        golden = run_network(inet, pack_bitplanes(spikes))
        hidden, _ = snntorch_forward(net, spikes[:, 0].astype(np.float32))
        theirs = np.stack([h[0] for h in hidden]).astype(np.int64)
        ours = unpack_bitplanes(golden.layers[0].output, T)[:, 0]
        agree += int((ours == theirs).sum())
        total += ours.size
    # float leak v/2 vs the shift's floor differ by at most one LSB a step: spikes mostly agree
    print(f"LIF beta=0.5 spike agreement with snnTorch: {agree}/{total}")
    assert agree / total > 0.9


def test_graph_built_with_nir_itself(rng):
    w0 = rng.integers(-5, 6, (6, 9)).astype(np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([9])),
        nir.Linear(weight=w0),
        nir.IF(r=np.ones(6, np.float32), v_threshold=np.full(6, 3.0, np.float32)),
        nir.Affine(weight=rng.integers(-3, 4, (2, 6)).astype(np.float32),
                   bias=np.zeros(2, np.float32)),
        nir.Output(output_type=np.array([2])),
    )
    inet, report = import_nir(graph, 4, dt=1.0, reset="zero")
    assert report.exact
    layer = inet.layers[0]
    assert np.array_equal(layer.weight, w0.astype(np.int64))
    assert layer.theta_vector.tolist() == [4] * 6  # v > 3  <=>  v >= 4
    # Reference: the IF equations of the NIR spec, step by step
    spikes = (rng.random((4, 1, 9)) < 0.5).astype(np.int64)
    v = np.zeros(6)
    ref = []
    for t in range(4):
        v = v + w0 @ spikes[t, 0]
        s = (v > 3).astype(np.int64)
        v[s == 1] = 0
        ref.append(s)
    ours = unpack_bitplanes(run_network(inet, pack_bitplanes(spikes)).layers[0].output, 4)[:, 0]
    assert np.array_equal(ours, np.stack(ref))


def test_unsupported_node_is_rejected_with_its_name(tmp_path, rng):
    net = torch.nn.Sequential(grid_linear(rng, 5, 4),
                              snn.Synaptic(alpha=torch.full((4,), 0.5), beta=torch.full((4,), 0.5),
                                           threshold=torch.ones(4), init_hidden=True),
                              grid_linear(rng, 4, 2))
    with pytest.raises(NirImportError, match="is CubaLIF"):
        import_nir(export(net, 5, tmp_path / "cuba.nir"), 4)


def test_leak_that_is_not_a_shift_is_rejected_unless_rounding_is_allowed(tmp_path, rng):
    net = torch.nn.Sequential(grid_linear(rng, 5, 4), leaky(4, 0.9, 1.0), grid_linear(rng, 4, 2))
    path = export(net, 5, tmp_path / "b09.nir")
    conv = dict(dt=SNNTORCH_DT, discretization="euler", reset="zero")
    with pytest.raises(NirImportError, match=r"beta = 0\.9.*1 - 2\^-k.*--allow-leak-rounding"):
        import_nir(path, 4, **conv)
    inet, report = import_nir(path, 4, allow_leak_rounding=True, **conv)
    assert inet.layers[0].leak_shift == 3 and not report.exact
    assert "beta = 0.9 rounded to 1 - 2^-3 = 0.875 (|error| 2.50e-02" in report.table()


def test_nonzero_reset_potential_is_rejected():
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([3])),
        nir.Linear(weight=np.ones((2, 3), np.float32)),
        nir.IF(r=np.ones(2, np.float32), v_threshold=np.ones(2, np.float32),
               v_reset=np.full(2, 0.5, np.float32)),
        nir.Output(output_type=np.array([2])),
    )
    with pytest.raises(NirImportError, match="resets to 0.5"):
        import_nir(graph, 4, dt=1.0, reset="zero")


def threshold_graph(rng, thr):
    """Input(9) -> Affine (1/4 grid) -> Threshold -> Affine readout -> Output, built with nir."""
    w0 = (rng.integers(-12, 13, (6, 9)) / 4).astype(np.float32)
    b0 = (rng.integers(-4, 5, 6) / 4).astype(np.float32)
    w1 = rng.integers(-3, 4, (3, 6)).astype(np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([9])),
        nir.Affine(weight=w0, bias=b0),
        nir.Threshold(threshold=np.asarray(thr, np.float32)),
        nir.Affine(weight=w1, bias=np.zeros(3, np.float32)),
        nir.Output(output_type=np.array([3])),
    )
    return graph, w0, b0, w1


def test_threshold_node_maps_exactly_with_one_time_step(rng):
    thr = np.array([0.0, 0.25, 1.0, 1.5, 0.5, 2.0])  # 0: fires on any positive current
    graph, w0, b0, w1 = threshold_graph(rng, thr)
    inet, report = import_nir(graph, 1, dt=1.0)
    assert report.exact and inet.layers[0].reset is Reset.ZERO
    x = rng.integers(0, 2, (200, 9))
    # Reference: the Threshold node of the NIR spec, z = [W x + b > threshold]
    z = ((x @ w0.T.astype(np.float64) + b0) > thr).astype(np.int64)
    golden = run_network(inet, x)
    assert np.array_equal(golden.layers[0].output, z)
    scale = (w1[inet.layers[1].weight != 0] / inet.layers[1].weight[inet.layers[1].weight != 0])[0]
    assert np.array_equal(golden.output * scale, z @ w1.T)
    assert 0 < z.mean() < 1  # both outcomes occur


def test_threshold_node_over_several_time_steps_is_refused(rng):
    graph, *_ = threshold_graph(rng, np.full(6, 0.5))
    with pytest.raises(NirImportError, match=r"'.*' is a Threshold .* only with T = 1 \(not 4\)"):
        import_nir(graph, 4, dt=1.0)


def test_negative_threshold_is_refused(rng):
    graph, *_ = threshold_graph(rng, np.full(6, -0.5))
    with pytest.raises(NirImportError, match="threshold >= 0"):
        import_nir(graph, 1, dt=1.0)


def if_graph(r=1.0, thr=3.0):
    """Input(4) -> Linear -> IF -> Output, built with nir (no exporter's conventions)."""
    return nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([4])),
        nir.Linear(weight=np.array([[1, 2, -1, 0], [0, 1, 1, 1]], np.float32)),
        nir.IF(r=np.full(2, r, np.float32), v_threshold=np.full(2, thr, np.float32)),
        nir.Output(output_type=np.array([2])),
    )


def lif_graph(tau):
    return nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([4])),
        nir.Linear(weight=np.array([[1, 2, -1, 0], [0, 1, 1, 1]], np.float32)),
        nir.LIF(tau=np.full(2, tau), r=np.ones(2), v_leak=np.zeros(2),
                v_threshold=np.full(2, 2.0)),
        nir.Output(output_type=np.array([2])),
    )


def test_conventions_nir_does_not_store_are_asked_for_not_guessed():
    """dt (IF: v += dt r I), the reset, snnTorch's reset_delay and a LIF's discretization: each
    missing one is asked for by its command-line option; none is needed where it changes
    nothing."""
    with pytest.raises(NirImportError, match=r"v_reset = 0.*pass --reset zero .* --reset subtract"):
        import_nir(if_graph(), 4, dt=1.0)
    with pytest.raises(NirImportError, match=r"'.*' is an IF neuron.*pass --dt"):
        import_nir(if_graph(), 4, reset="zero")
    with pytest.raises(NirImportError, match=r"--reset-delay .* --no-reset-delay"):
        import_nir(if_graph(), 4, dt=1.0, reset="subtract")
    with pytest.raises(NirImportError, match=r"--discretization euler .* --discretization exp"):
        import_nir(lif_graph(2.0), 4, dt=1.0, reset="zero")
    with pytest.raises(NirImportError, match=r"--dt must be a positive"):
        import_nir(if_graph(), 4, dt=0.0, reset="zero")
    # the case: r = 1 with snnTorch's dt would make theta_int 30001; at dt = 1 it is 4
    net, report = import_nir(if_graph(), 4, dt=1.0, reset="zero")
    assert net.layers[0].theta_vector.tolist() == [4, 4] and report.exact
    net, _ = import_nir(if_graph(), 4, dt=SNNTORCH_DT, reset="zero")
    assert net.layers[0].theta_vector.tolist() == [30001, 30001]


def test_discretization_sets_the_leak_euler_or_exponential():
    """tau = 1 / ln 2 at dt = 1: exp(-dt/tau) = 0.5 (a shift, exact) but 1 - dt/tau = 0.307
    (refused); tau = 2: Euler's 0.5, exp's 0.6065 (refused)."""
    net, report = import_nir(lif_graph(1 / math.log(2)), 4, dt=1.0, discretization="exp",
                             reset="zero")
    assert net.layers[0].leak_shift == 1 and report.exact, report.table()
    with pytest.raises(NirImportError, match=r"beta = 0\.3068"):
        import_nir(lif_graph(1 / math.log(2)), 4, dt=1.0, discretization="euler", reset="zero")
    net, report = import_nir(lif_graph(2.0), 4, dt=1.0, discretization="euler", reset="zero")
    assert net.layers[0].leak_shift == 1 and report.exact
    with pytest.raises(NirImportError, match=r"beta = 0\.606531"):
        import_nir(lif_graph(2.0), 4, dt=1.0, discretization="exp", reset="zero")


def test_table_shows_reset_and_compare_and_says_approximate_only_with_a_reason():
    """The reset mode and the compare are columns; an exact import's summary says exact, and
    "approximate" comes only with a row that is, its reason listed under the table."""
    _, report = import_nir(if_graph(thr=3.0), 4, dt=1.0, reset="subtract", reset_delay=True)
    lines = report.table().splitlines()
    assert "reset" in lines[0] and "cmp" in lines[0]
    assert "subtract, delayed" in lines[1] and " > " in lines[1]
    assert report.exact and report.summary().startswith("exact mapping")
    assert "reset subtract, reset_delay=True" in report.summary()
    # thr 2.5 with weights on the integer grid: a subtraction of 2.5 needs the 1/2 grid, which
    # the weights (up to 2) fit: still exact
    net, report = import_nir(if_graph(thr=2.5), 4, dt=1.0, reset="subtract", reset_delay=True)
    assert report.exact and net.layers[0].theta_vector.tolist() == [5, 5]
    # a threshold off every power-of-two grid cannot be subtracted whole: the weights keep
    # their grid (the finest that fits 8 bits) and the threshold is rounded on it, sized
    net, report = import_nir(if_graph(thr=2.3), 4, dt=1.0, reset="subtract", reset_delay=True)
    assert not report.exact and "approximate" in report.summary()
    assert report.layers[0].weight_rel_rms == 0 and "threshold not a whole number" in report.table()
    # row 0 (weights up to 2) on the 1/32 grid, row 1 (up to 1) on 1/64: 127 bounds both
    assert net.layers[0].theta_vector.tolist() == [round(2.3 * 32), round(2.3 * 64)]
    assert "up to 5.43e-03 (relative) off" in report.table()  # 74 / 73.6
    _, report = import_nir(if_graph(thr=2.3), 4, dt=1.0, reset="zero")
    assert report.exact and "zero" in report.table().splitlines()[1]  # v > 2.3 <=> v >= 3
