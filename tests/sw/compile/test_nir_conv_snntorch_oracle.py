"""snnTorch as the oracle of the NIR import of convolutional graphs.

snnTorch exports ``nn.Conv2d -> snn.Leaky -> nn.AvgPool2d -> ... -> nn.Flatten -> nn.Linear``
(``export_to_nir(net, x, ignore_dims=[0])``); the importer turns it into conv ``IntLayer``s with
the pooling folded into the next layer. Its own simulation of the net, driven by the spike trains
of the 8x8 digits, is compared with the golden model of the imported network: where the importer
says ``exact``, every spike of every hidden layer and every readout sum are equal on every test
digit (a few in the default tier, all 360 in ``slow``). Off-grid weights report their measured
agreement; graphs the IR cannot express get one message naming the node.
"""

import math
import warnings

import nir
import numpy as np
import pytest
import torch

from sim.golden.model import run_network
from sim.golden.packing import unpack_bitplanes
from sw.compile.nir_import import SNNTORCH_DT, NirImportError, import_nir
from sw.train.data import load_digits_split

snn = pytest.importorskip("snntorch")
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch_oracle import snntorch_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T = 4
#: Test digits in the default tier (the slow tier runs all 360).
N_FAST = 60


@pytest.fixture(scope="module")
def digits_x():
    """The packed test digits as (N, 1, 8, 8) images."""
    _, x = load_digits_split(0).packed(T)
    return x.reshape(-1, 1, 8, 8)


def on_grid(rng, module, lim=3, bias_lim=2, low=None):
    """Weights (and bias) of ``module`` on the 1/8 grid: ``w`` in ``[low, lim] / 8``."""
    with torch.no_grad():
        w = rng.integers(-lim if low is None else low, lim + 1, module.weight.shape)
        module.weight.copy_(torch.tensor(w / 8.0))
        if module.bias is not None:
            module.bias.copy_(torch.tensor(rng.integers(-bias_lim, bias_lim + 1,
                                                        module.bias.shape) / 8.0))
    return module


def leaky(shape, beta, thr, reset, delay=True):
    """A Leaky whose beta and threshold have the shape of the feature map (NIR's LIF nodes then
    carry that shape, which snnTorch's export needs to infer the graph's types)."""
    return snn.Leaky(beta=torch.full(shape, float(beta)), threshold=torch.full(shape, thr),
                     init_hidden=True, reset_mechanism=reset, reset_delay=delay)


def conv_net(rng, arch, beta, reset, delay=True):
    """Two small conv nets on 1x8x8 digits, weights on the 1/8 grid.

    ``"pool-conv"``: conv 3x3 s1 p1 (1 -> 4, 8x8) -> Leaky -> AvgPool2d(2) -> conv 3x3 s2 p1
    (4 -> 4, 4x4 -> 2x2, threshold 0.5) -> Leaky -> Flatten -> Linear(16, 10): the pool folds
    into a conv.
    ``"pool-dense"``: conv 3x3 s2 p1 (1 -> 4, 8x8 -> 4x4) -> Leaky -> AvgPool2d(2) -> Flatten ->
    Linear(16, 10): the pool folds into the dense readout.
    """
    nn = torch.nn
    if arch == "pool-conv":
        mods = [on_grid(rng, nn.Conv2d(1, 4, 3, stride=1, padding=1)),
                leaky((4, 8, 8), beta, 1.0, reset, delay), nn.AvgPool2d(2),
                on_grid(rng, nn.Conv2d(4, 4, 3, stride=2, padding=1), low=-1),
                leaky((4, 2, 2), beta, 0.5, reset, delay), nn.Flatten(),
                on_grid(rng, nn.Linear(16, 10))]
    else:
        mods = [on_grid(rng, nn.Conv2d(1, 4, 3, stride=2, padding=1)),
                leaky((4, 4, 4), beta, 1.0, reset, delay), nn.AvgPool2d(2), nn.Flatten(),
                on_grid(rng, nn.Linear(16, 10))]
    return nn.Sequential(*mods)


def export(net):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta = 1 writes tau = inf; nirtorch's deprecation
        return export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])


def conventions(beta, reset, delay=True):
    conv = dict(reset=reset, reset_delay=delay if reset == "subtract" else None)
    if beta != 1.0:
        conv.update(dt=SNNTORCH_DT, discretization="euler")
    return conv


def compare(net, graph, x, **conv):
    """Import ``graph``, run both on packed images ``x``; return the network, the report, per
    hidden layer and for the readout the fraction of digits whose outputs are all equal, and the
    golden result."""
    inet, report = import_nir(graph, T, **conv)
    golden = run_network(inet, x)
    theirs, total = snntorch_run(net, unpack_bitplanes(x, T))
    agree = []
    for li, s in enumerate(theirs):
        ours = unpack_bitplanes(golden.layers[li].output, T)
        assert ours.shape == s.shape
        agree.append(float(np.all(ours == s, axis=tuple(range(2, s.ndim))).mean()))
    steps = np.asarray(report.layers[-1].steps)
    agree.append(float(np.all(golden.output * steps == total, axis=1).mean()))
    return inet, report, agree, golden


def firing_net(rng, x, arch, beta, reset):
    """A net of ``arch`` whose every hidden layer fires on ``x`` in snnTorch."""
    for _ in range(20):
        net = conv_net(rng, arch, beta, reset)
        if all(s.any() for s in snntorch_run(net, unpack_bitplanes(x, T))[0]):
            break
    return net


def sum_pool_graph(graph, net):
    """``graph`` with its AvgPool2d replaced by a SumPool2d and the next weighted node's weights
    divided by ``k^2``: the same function, for the SumPool2d path (snnTorch exports none)."""
    names = list(graph.nodes)
    for name in names:
        node = graph.nodes[name]
        if isinstance(node, nir.AvgPool2d):
            k = int(np.asarray(node.kernel_size).ravel()[0])
            graph.nodes[name] = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride,
                                              padding=node.padding)
            nxt = next(d for s, d in graph.edges if s == name)
            while isinstance(graph.nodes[nxt], nir.Flatten):
                nxt = next(d for s, d in graph.edges if s == nxt)
            w = graph.nodes[nxt]
            w.weight = np.asarray(w.weight, np.float64) / k ** 2
    return graph


CASES = [(arch, beta, reset) for arch in ("pool-conv", "pool-dense") for beta in (1.0, 0.5)
         for reset in ("zero", "subtract")]


def check_exact_case(rng, x, arch, beta, reset, pool):
    net = firing_net(rng, x, arch, beta, reset)
    graph = export(net)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert "Conv2d" in kinds and "AvgPool2d" in kinds and "Flatten" in kinds
    if pool == "sum":
        graph = sum_pool_graph(graph, net)
    inet, report, agree, golden = compare(net, graph, x, **conventions(beta, reset))
    print(f"{arch} {pool} pool, beta={beta} reset={reset}: agreement per layer {agree} on "
          f"{len(x)} digits, spikes per layer {golden.spikes_per_layer.sum(axis=1).tolist()}\n"
          f"{report.table()}\n{report.summary()}")
    assert [layer.kind for layer in inet.layers] == (
        ["conv", "conv", "dense"] if arch == "pool-conv" else ["conv", "dense"])
    assert inet.layers[0].stride == (1 if arch == "pool-conv" else 2)
    assert inet.layers[0].padding == 1 and inet.layers[0].in_shape == (1, 8, 8)
    if arch == "pool-conv":  # avg pool 2 then conv 3x3 s2 p1 == conv 6x6 s4 p2 on the 8x8 map
        assert inet.layers[1].kernel == (6, 6) and inet.layers[1].stride == 4
        assert inet.layers[1].padding == 2 and inet.layers[1].in_shape == (4, 8, 8)
    else:
        assert inet.layers[1].in_shape == (4 * 4 * 4,)
        assert "; as dense 64->10" in report.table()
    assert f"{pool} 2x2 folded" in report.table() and "conv 1x8x8->4x" in report.table()
    if arch == "pool-conv":
        assert "as k6x6 s4 p2 on 4x8x8" in report.table()
    assert all(s > 0 for s in golden.spikes_per_layer.sum(axis=1)[:-1])  # every layer fires
    assert report.exact, report.table()
    assert agree == [1.0] * len(agree)


@pytest.mark.parametrize("arch,beta,reset", CASES)
def test_conv_import_equals_snntorch(arch, beta, reset, digits_x, rng):
    """IF (beta 1) and Leaky (beta 0.5), reset to zero and by subtraction (snnTorch's
    reset_delay=True), conv 3x3 with padding 1 and stride 1 and 2, an average pooling folded into
    a conv or into the dense readout, Flatten: exact, and spike for spike equal to snnTorch's
    simulation on the first test digits."""
    check_exact_case(rng, digits_x[:N_FAST], arch, beta, reset, "avg")


@pytest.mark.parametrize("arch", ["pool-conv", "pool-dense"])
def test_sum_pool_import_equals_snntorch(arch, digits_x, rng):
    """A SumPool2d (the graph's AvgPool2d swapped for one, the next weights divided by 4: the
    same function) folds exactly into the next layer, spike for spike equal to snnTorch."""
    check_exact_case(rng, digits_x[:N_FAST], arch, 0.5, "subtract", "sum")


@pytest.mark.slow
@pytest.mark.parametrize("arch,beta,reset", CASES)
def test_conv_import_equals_snntorch_on_every_test_digit(arch, beta, reset, digits_x, rng):
    """The exact cases above on all 360 test digits."""
    check_exact_case(rng, digits_x, arch, beta, reset, "avg")


def test_random_conv_geometries_equal_snntorch(digits_x, rng):
    """Random square kernels 1..3, strides 1..2, paddings 0..1, channels and an optional average
    pooling, IF or LIF, either reset: every one exact and equal to snnTorch on the first test
    digits. (nir 1.0.8's type inference takes a kernel's height for its width, so snnTorch cannot
    export a non-square kernel; the importer reads both from the weight.)"""
    nn = torch.nn
    x = digits_x[:30]
    for case in range(6):
        kh = kw = int(rng.integers(1, 4))
        stride, padding = int(rng.integers(1, 3)), int(rng.integers(0, 2))
        c_out = int(rng.integers(1, 5))
        beta, reset = float(rng.choice([1.0, 0.5])), str(rng.choice(["zero", "subtract"]))
        conv = nn.Conv2d(1, c_out, (kh, kw), stride=stride, padding=padding)
        shape = tuple(conv(torch.zeros(1, 1, 8, 8)).shape[1:])
        pool = bool(rng.integers(0, 2)) and shape[1] % 2 == 0 and shape[2] % 2 == 0
        n_flat = shape[0] * (shape[1] // 2) * (shape[2] // 2) if pool else math.prod(shape)
        for _ in range(20):  # weights with which the conv layer fires
            on_grid(rng, conv, low=-1)
            mods = [conv, leaky(shape, beta, 0.5, reset)] + ([nn.AvgPool2d(2)] if pool else [])
            net = nn.Sequential(*mods, nn.Flatten(), on_grid(rng, nn.Linear(n_flat, 10)))
            if snntorch_run(net, unpack_bitplanes(x, T))[0][0].any():
                break
        inet, report, agree, golden = compare(net, export(net), x, **conventions(beta, reset))
        print(f"case {case}: kernel {kh}x{kw} stride {stride} padding {padding} -> {shape}, "
              f"pool {pool}, beta {beta}, reset {reset}: agreement {agree}, spikes "
              f"{golden.spikes_per_layer.sum(axis=1).tolist()}")
        assert inet.layers[0].kernel == (kh, kw) and inet.layers[0].conv_shape == shape
        assert report.exact, report.table()
        assert agree == [1.0, 1.0] and golden.spikes_per_layer[0].sum() > 0


@pytest.mark.parametrize("beta,reset", [(1.0, "zero"), (1.0, "subtract"), (0.5, "subtract")])
def test_imported_conv_net_in_a_program_image_equals_the_golden_model(beta, reset, digits_x,
                                                                      rng):
    """The program image of an imported conv net (its descriptors carry fire_above and
    compare_leaked, snnTorch's strict compare and delayed subtraction) run by the image-level
    golden model equals the IR's golden model, and so snnTorch."""
    import dataclasses

    from boards import CORE_PRESETS
    from sw.compile.image_golden import run_image
    from sw.compile.program_image import build_image

    params = dataclasses.replace(CORE_PRESETS["medium"], act_chunks=128)  # 8x8 input maps
    x = digits_x[:params.batch_depth]
    net = firing_net(rng, x, "pool-dense", beta, reset)
    inet, report, agree, golden = compare(net, export(net), x, **conventions(beta, reset))
    assert report.exact and agree == [1.0, 1.0]
    assert inet.layers[0].fire_above == (reset == "subtract")
    run = run_image(build_image(inet, params), x)
    assert np.array_equal(run.output.reshape(golden.output.shape), golden.output)
    assert np.array_equal(run.spikes, golden.spikes_per_layer)


def test_off_grid_conv_weights_report_their_agreement(digits_x, rng):
    """Conv weights off any power-of-two grid: the first layer is approximate, named with its
    rounding error, and the agreement with snnTorch is measured (the later layers, on the grid,
    stay exact as layers)."""
    net = conv_net(rng, "pool-conv", 1.0, "zero")
    with torch.no_grad():
        net[0].weight.add_(torch.tensor(rng.normal(0, 0.01, net[0].weight.shape),
                                        dtype=torch.float32))
    _, report, agree, _ = compare(net, export(net), digits_x[:N_FAST], reset="zero")
    print(f"off-grid conv weights: digits agreeing per layer {agree}\n{report.table()}")
    assert not report.exact and not report.layers[0].exact
    assert report.layers[1].exact and report.layers[2].exact
    assert "off a power-of-two grid" in report.table() and report.layers[0].weight_rel_rms > 0
    assert 0.0 < agree[0] <= 1.0


def test_avg_pool_3_is_exact_in_threshold_and_bias(digits_x, rng):
    """AvgPool2d(3): 1/9 is on no power-of-two grid, so it goes into the next layer's threshold
    and bias (x 9), not its weights: still exact. The 8x8 map pooled by 3 drops its last two rows
    and columns, which the folded dense layer gives zero weights. snnTorch divides by 9 in
    float32, so its sums are compared with the integer ones to that precision."""
    nn = torch.nn
    net = nn.Sequential(on_grid(rng, nn.Conv2d(1, 4, 3, padding=1)),
                        leaky((4, 8, 8), 1.0, 1.0, "zero"), nn.AvgPool2d(3), nn.Flatten(),
                        on_grid(rng, nn.Linear(16, 10)))
    x = digits_x[:N_FAST]
    inet, report = import_nir(export(net), T, reset="zero")
    print(report.table())
    assert report.exact and "avg 3x3 folded, x9 in theta and bias" in report.table()
    assert inet.layers[1].in_shape == (4 * 8 * 8,)
    w = inet.layers[1].weight.reshape(10, 4, 8, 8)
    assert not w[:, :, 6:, :].any() and not w[:, :, :, 6:].any()
    golden = run_network(inet, x)
    theirs, total = snntorch_run(net, unpack_bitplanes(x, T))
    assert np.array_equal(unpack_bitplanes(golden.layers[0].output, T), theirs[0])
    steps = np.asarray(report.layers[-1].steps)
    np.testing.assert_allclose(golden.output * steps, total, rtol=0, atol=1e-5)


@pytest.mark.parametrize("module,match", [
    (lambda: torch.nn.Conv2d(1, 4, 3, padding=1, dilation=2), "dilation"),
    (lambda: torch.nn.Conv2d(2, 4, 3, padding=1, groups=2), "grouped"),
    (lambda: torch.nn.Conv2d(1, 4, 3, padding=(1, 0)), "pads 1 rows and 0 columns"),
    (lambda: torch.nn.Conv2d(1, 4, 3, padding=1, stride=(2, 1)), r"stride \(2, 1\)"),
    (lambda: torch.nn.Conv2d(1, 4, 2, padding="same"), "even kernel"),
])
def test_conv_the_ir_cannot_express_is_refused(module, match):
    """Dilation, groups, padding or strides that differ per axis, 'same' padding of an even
    kernel: one message naming the node and what would map."""
    conv = module()
    c_in = conv.in_channels
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch: 'same' with an even kernel copies the input
        out = conv(torch.zeros(1, c_in, 8, 8))
        net = torch.nn.Sequential(conv, leaky(tuple(out.shape[1:]), 1.0, 1.0, "zero"),
                                  torch.nn.Flatten(), torch.nn.Linear(out[0].numel(), 10))
        graph = export_to_nir(net, torch.zeros(1, c_in, 8, 8), ignore_dims=[0])
    with pytest.raises(NirImportError, match=match) as e:
        import_nir(graph, T, reset="zero")
    assert "node '0'" in str(e.value)


def test_same_padding_of_an_odd_kernel_maps_to_symmetric_padding(digits_x, rng):
    """padding='same' with a 3x3 kernel is padding 1 on every side: exact."""
    nn = torch.nn
    net = nn.Sequential(on_grid(rng, nn.Conv2d(1, 4, 3, padding="same")),
                        leaky((4, 8, 8), 1.0, 1.0, "zero"), nn.Flatten(),
                        on_grid(rng, nn.Linear(256, 10)))
    inet, report, agree, _ = compare(net, export(net), digits_x[:N_FAST], reset="zero")
    assert inet.layers[0].padding == 1 and report.exact and agree == [1.0, 1.0]


def test_graph_shapes_the_importer_cannot_map(rng):
    """Missing input shape (asked for), a pooling that overlaps or ends the graph, a partial
    Flatten, a dense layer on a map, a conv after the Flatten, and a threshold that varies over a
    channel's positions: each refused with one message."""
    net = conv_net(rng, "pool-conv", 1.0, "zero")
    graph = export(net)

    def fresh():
        g = export(net)
        return g

    # the Input node without its shape: asked for, then given
    g = fresh()
    g.nodes["input"].input_type = {"input": None}
    for node in g.nodes.values():
        if isinstance(node, nir.Conv2d):
            node.input_shape = None
    with pytest.raises(NirImportError, match="--input-shape C,H,W"):
        import_nir(g, T, reset="zero")
    inet, report = import_nir(g, T, reset="zero", input_shape=(1, 8, 8))
    assert inet.in_shape == (1, 8, 8) and report.exact
    with pytest.raises(NirImportError, match="disagrees with the graph"):
        import_nir(graph, T, reset="zero", input_shape=(1, 7, 7))

    g = fresh()  # overlapping windows
    g.nodes["2"].stride = np.array([1, 1])
    with pytest.raises(NirImportError, match="non-overlapping"):
        import_nir(g, T, reset="zero")

    g = fresh()  # partial Flatten: (C, H*W)
    g.nodes["5"].start_dim = 1
    with pytest.raises(NirImportError, match="flattens dimensions 1..2"):
        import_nir(g, T, reset="zero")

    g = fresh()  # a threshold that differs between positions of a channel
    thr = np.array(g.nodes["1"].v_threshold, np.float64)
    thr[0, 0, 0] = 2.0
    g.nodes["1"].v_threshold = thr
    with pytest.raises(NirImportError, match="varies over the positions"):
        import_nir(g, T, reset="zero")

    g = fresh()  # a LIF node of the wrong size
    lif = g.nodes["1"]
    g.nodes["1"] = nir.LIF(tau=np.full(4, np.inf), r=np.full(4, np.inf), v_leak=np.zeros(4),
                           v_threshold=np.ones(4), v_reset=np.zeros(4))
    with pytest.raises(NirImportError, match="node '1' has 4 neurons .* gives 4x8x8"):
        import_nir(g, T, reset="zero")
    g.nodes["1"] = lif

    g = fresh()  # a pooling whose windows do not tile the map, then a conv
    g.nodes["2"].kernel_size = g.nodes["2"].stride = np.array([3, 3])
    g.nodes["3"].input_shape = np.array([2, 2])
    with pytest.raises(NirImportError, match="dropping its last 2 row"):
        import_nir(g, T, reset="zero")

    g = fresh()  # a dense layer right after a conv layer's neurons (no Flatten)
    g.edges = [e for e in g.edges if e not in (("4", "5"), ("5", "6"))] + [("4", "6")]
    del g.nodes["5"]
    with pytest.raises(NirImportError, match="put a Flatten before it"):
        import_nir(g, T, reset="zero")

    g = fresh()  # the pool after the readout
    g.nodes["7"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                 padding=np.array([0, 0]))
    g.edges = [e for e in g.edges if e != ("6", "output")] + [("6", "7"), ("7", "output")]
    with pytest.raises(NirImportError, match="node '7' is SumPool2d; after a weighted node"):
        import_nir(g, T, reset="zero")


def test_conv_after_flatten_is_refused(rng):
    """The IR runs conv layers before dense ones."""
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), leaky((4, 8, 8), 1.0, 1.0, "zero"),
                        nn.Flatten(), nn.Linear(256, 16), leaky((16,), 1.0, 1.0, "zero"),
                        nn.Linear(16, 10))
    graph = export(net)
    graph.nodes["3"] = nir.Conv2d(input_shape=None, weight=np.ones((4, 4, 3, 3)), stride=1,
                                  padding=1, dilation=1, groups=1, bias=np.zeros(4))
    with pytest.raises(NirImportError, match="receives a vector"):
        import_nir(graph, T, reset="zero")


def test_conv_graph_round_trips_through_a_file_and_the_cli(tmp_path, rng, digits_x):
    """nir.write / nir.read store padding, stride and shapes as arrays: the import from the file
    equals the import of the graph object, through ``spikepack import-nir`` too."""
    from sim.golden.ir import IntNetwork
    from sw.cli.main import main

    net = firing_net(rng, digits_x[:N_FAST], "pool-conv", 0.5, "subtract")
    graph = export(net)
    path = tmp_path / "conv.nir"
    nir.write(str(path), graph)
    conv = conventions(0.5, "subtract")
    a, _ = import_nir(graph, T, **conv)
    b, report = import_nir(path, T, **conv)
    assert report.exact
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert np.array_equal(la.weight, lb.weight) and la.in_shape == lb.in_shape
    out = tmp_path / "conv.npz"
    rc = main(["import-nir", str(path), "--T", str(T), "--dt", str(SNNTORCH_DT),
               "--discretization", "euler", "--reset", "subtract", "--reset-delay",
               "--input-shape", "1,8,8", "--out", str(out)])
    assert rc == 0
    c = IntNetwork.load(out)
    assert [la.kind for la in c.layers] == ["conv", "conv", "dense"]
    assert np.array_equal(run_network(c, digits_x[:8]).output,
                          run_network(a, digits_x[:8]).output)


def test_cli_checks_the_input_shape(tmp_path, rng, capsys):
    """``--input-shape``: one that disagrees with the graph's Input node, or is not C,H,W, exits
    2 saying what is wrong; ``1x8x8`` is taken. (nir.write cannot store a graph without its
    shapes; the in-memory case is in test_graph_shapes_the_importer_cannot_map.)"""
    from sw.cli.main import main

    path = tmp_path / "cnn.nir"
    nir.write(str(path), export(conv_net(rng, "pool-dense", 1.0, "zero")))
    base = ["import-nir", str(path), "--T", "4", "--reset", "zero", "--out", str(tmp_path / "o")]
    assert main(base + ["--input-shape", "2,8,8"]) == 2
    assert "disagrees with the graph's Input node 'input', (1, 8, 8)" in capsys.readouterr().err
    assert main(base + ["--input-shape", "1,8"]) == 2
    assert "'1,8' is not C,H,W (or N) of positive integers" in capsys.readouterr().err
    assert main(base + ["--input-shape", "1x8x8"]) == 0
    assert "exact mapping" in capsys.readouterr().out
