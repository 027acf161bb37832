"""The pipelined driver on the accelerator RTL: bit-exact with the golden model, faster than
batch by batch, and correct when frames are damaged on the way (go-back-N resends).

Random networks and inputs (seeds logged) on the ``small`` build, through ``sim.rtl.session`` with
the byte-pipe front end (the real driver, link, frame decoder and executor).
"""

import numpy as np
import pytest

from boards.core_presets import SMALL
from sim.golden.model import run_network
from sim.rtl.runner import require_simulator

pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")
pytestmark = pytest.mark.xdist_group("rtl_session_small")

#: The session's own build directory: the same small build as the CLI's `--sim` tests.
BUILD = None


def _case(rng):
    from sim.tb.random_nets import random_network

    net = random_network(rng, SMALL, max_depth=3)
    x = rng.integers(0, 1 << net.T, (3 * SMALL.batch_depth - 1, net.n_in))  # 3 batches
    return net, x


def test_pipelined_infer_bit_exact_and_faster(rng):
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl

    net, x = _case(rng)
    golden = run_network(net, x)
    # one session: pipelined, then the same inputs batch by batch (the testbench checks that
    # both give the same outputs)
    run = run_on_rtl(net, x, SMALL, build_dir=BUILD, batchwise_too=True)
    print(f"{len(x)} samples: pipelined {run.infer_cycles} cycles, batch by batch "
          f"{run.batchwise_cycles} cycles")
    assert np.array_equal(run.outputs, golden.output)
    assert len(run.total_cycles) == 3 and run.resends == 0
    # every run's spike counters are the golden model's for its batch
    depth = SMALL.batch_depth
    for b in range(3):
        for li, layer in enumerate(golden.layers):
            assert run.spikes[b, li] == _spikes(layer, b * depth, (b + 1) * depth), (b, li)
    assert 0 < run.infer_cycles < run.batchwise_cycles


def _spikes(layer, start, stop):
    return int(np.sum(layer.spikes[start:stop]))


def test_pipelined_infer_resends_damaged_frames(rng):
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl

    net, x = _case(rng)
    corrupt = sorted(int(i) for i in rng.choice(np.arange(1, 16), 3, replace=False))
    print("damaged frames:", corrupt)
    run = run_on_rtl(net, x, SMALL, build_dir=BUILD, corrupt=corrupt)
    assert np.array_equal(run.outputs, run_network(net, x).output)
    assert run.resends >= len(corrupt)


def test_the_simulation_tops_own_clock_is_the_testbenchs(rng):
    """Under Verilator the piped top makes its clock itself (``clock="internal"``, the default);
    with a cocotb clock on its pin instead the same session takes exactly as many cycles to
    upload and to infer, and gives the same outputs and counters."""
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl

    net, x = _case(rng)
    x = x[:SMALL.batch_depth + 1]
    runs = {clock: run_on_rtl(net, x, SMALL, build_dir=BUILD, clock=clock)
            for clock in ("internal", "testbench")}
    a, b = runs["internal"], runs["testbench"]
    print(f"upload {a.upload_cycles} cycles, {a.upload_cpu:.2f} s CPU with the internal clock, "
          f"{b.upload_cpu:.2f} s with cocotb's")
    assert np.array_equal(a.outputs, run_network(net, x).output)
    assert np.array_equal(a.outputs, b.outputs)
    for field in ("spikes", "cycles", "skipped", "total_cycles"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert (a.upload_cycles, a.infer_cycles) == (b.upload_cycles, b.infer_cycles)
    with pytest.raises(ValueError, match="an internal clock needs Verilator"):
        run_on_rtl(net, x, SMALL, build_dir=BUILD, clock="internal", simulator="icarus")


def test_dense_batches_run_as_maps(rng):
    """``Device.infer`` runs each batch of a dense network as one map (``sw.compile.batch_map``)
    where it fits: outputs == golden, every run's spike and skip counters those of the same
    batch run as a batch, every run's cycles the cycle model's (``predict_run_cycles``) both
    ways, and fewer cycles as maps; the device holds the image's own program afterwards."""
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl
    from sim.tb.random_nets import random_network
    from sw.compile.batch_map import max_map_width
    from sw.research.cycle_model import predict_run_cycles

    for _ in range(500):
        net = random_network(rng, SMALL, max_depth=3)
        if max_map_width(net, SMALL) >= SMALL.batch_depth:
            break
    else:
        raise AssertionError("no mappable network drawn")
    print("layers", [layer.n_out for layer in net.layers], "T", net.T)
    # two whole batches and one of 3 (a map of another width)
    x = rng.integers(0, 1 << net.T, (2 * SMALL.batch_depth + 3, net.n_in))
    golden = run_network(net, x)
    runs = {maps: run_on_rtl(net, x, SMALL, build_dir=BUILD, maps=maps, batchwise_too=maps)
            for maps in (True, False)}
    for maps, run in runs.items():
        assert np.array_equal(run.outputs, golden.output), maps
        assert np.array_equal(run.cycles, predict_run_cycles(net, x, SMALL, maps=maps)), maps
        assert np.array_equal(run.total_cycles, run.cycles.sum(axis=1)), maps
    a, b = runs[True], runs[False]
    assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.skipped, b.skipped)
    print("cycles per run as maps", a.total_cycles, "as batch runs", b.total_cycles)
    assert (a.total_cycles < b.total_cycles).all()


def test_ordered_image_through_the_driver(rng):
    """An image whose layers' inputs are stored in another order (``sw.compile.block_order``)
    through the real driver: the user's inputs in, the network's outputs == golden out; spike
    counters those of the same network compiled without the order; cycles and skip counters
    those the cycle model predicts for the ordered network the device runs."""
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl
    from sim.tb.random_nets import expected_conv_counters, random_network
    from sw.compile.block_order import ordered_network, plan_block_order
    from sw.compile.image_file import ImageFile
    from sw.compile.program_image import build_image
    from sw.research.cycle_model import predict_run_cycles

    for _ in range(500):
        net = random_network(rng, SMALL, max_depth=3)
        if net.n_in > 2 * SMALL.k and len(net.layers) >= 2:
            break
    else:
        raise AssertionError("no network of two layers and three input blocks drawn")
    print("layers", [layer.n_out for layer in net.layers], "n_in", net.n_in, "T", net.T)
    quiet = rng.random(net.n_in) < 0.5  # inputs silent on most samples
    x = rng.integers(0, 1 << net.T, (2 * SMALL.batch_depth + 40, net.n_in))
    x[:, quiet] *= rng.random((len(x), int(quiet.sum()))) < 0.05
    order = plan_block_order(net, x[40:], SMALL)  # calibrated on other samples
    x = x[:2 * SMALL.batch_depth]
    image = build_image(net, SMALL, order)
    assert image.block_order is not None
    ordered = run_on_rtl(ImageFile(image, net, "board small"), x, SMALL, build_dir=BUILD)
    plain = run_on_rtl(net, x, SMALL, build_dir=BUILD)
    golden = run_network(net, x)
    device = ordered_network(net, order)
    for run in (ordered, plain):
        assert np.array_equal(run.outputs, golden.output)
    assert np.array_equal(ordered.spikes, plain.spikes)
    xo = order.inputs(x)
    assert np.array_equal(ordered.cycles, predict_run_cycles(device, xo, SMALL))
    skipped = [expected_conv_counters(device, xo[i:i + 1], SMALL)[1] for i in range(len(x))]
    runs = np.add.reduceat(np.array(skipped), np.arange(0, len(x), image.max_batch))
    assert np.array_equal(ordered.skipped, runs)
    print("cycles per run ordered", ordered.total_cycles, "input order", plain.total_cycles,
          "skipped", ordered.skipped.sum(), "against", plain.skipped.sum())
