"""Deployed seeds on the accelerator RTL: LIF- and PSU-trained networks in LIF mode and a SpikePack
network, through the real driver under Verilator, equal to the golden model (outputs and
counters), with the device's cycles and spikes beside the estimate (``sw.research.rtl_results``).

The RTL runs are ``slow`` (``pytest -m slow``); the work predictor runs in the default tier.
"""

import numpy as np
import pytest

from boards import SMALL
from hw.contract.params import CoreParams
from sim.golden.ir import IntLayer, IntNetwork, Mode, Reset
from sim.rtl.runner import simulator_available

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(rng, T, sizes, mode=Mode.SPIKEPACK):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        last = i == len(sizes) - 2
        layers.append(IntLayer(weight=rng.integers(-20, 21, (b, a)), bias=rng.integers(-5, 6, b),
                               theta=8, readout=last, mode=mode, reset=Reset.SUBTRACT,
                               leak_shift=1 if mode is Mode.LIF else 0))
    return IntNetwork(layers=tuple(layers), T=T)


def test_predicted_work_counts_passes_chunks_and_zero_planes(rng):
    from sw.research.rtl_results import predicted_work

    params = CoreParams(n_pe=8, k=4)
    T = 4
    net = _net(rng, T, (10, 20, 3))  # layer 0: C = 3 chunks, P = 3 passes; layer 1: C = 5, P = 1
    top = (1 << T) - 1
    x = np.zeros((3, 10), dtype=np.int64)
    x[1] = top                # every plane of every chunk non-zero (the padded chunk included)
    x[2, 0] = 0b1000          # one spike: plane t = 1 of chunk 0 only
    beats, skipped = predicted_work(net, x, params)
    assert beats.shape == skipped.shape == (3, 2)
    assert beats[:, 0].tolist() == [0, 3 * 3 * T, 3 * 1]
    assert skipped[:, 0].tolist() == [3 * 3 * T, 0, 3 * (3 * T - 1)]
    assert np.all(beats + skipped == np.array([3 * 3 * T, 1 * 5 * T]))  # every plane-chunk once
    # the second layer's work follows the first layer's (golden) output spikes
    from sim.golden.model import run_network
    from sim.golden.packing import unpack_bitplanes

    h = run_network(net, x).layers[0].output  # 20 neurons = 5 whole chunks of k = 4
    planes = unpack_bitplanes(h, T).reshape(T, 3, 5, 4)
    assert beats[:, 1].tolist() == (planes.sum(-1) > 0).sum(axis=(0, 2)).tolist()


@pytest.fixture(scope="module")
def digits():
    from sw.train.data import load_digits_split

    return load_digits_split(0)


@pytest.mark.slow
@pytest.mark.xdist_group("rtl_session_small")
@pytest.mark.skipif(not simulator_available("verilator"),
                    reason="verilator is not on PATH (bash scripts/setup.sh)")
@pytest.mark.parametrize("neuron", ["lif", "psu", "spikepack"])
def test_trained_network_on_the_rtl_equals_the_golden_model(neuron, digits):
    pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")
    from sw.research.experiment import train_all
    from sw.research.rtl_results import measure_on_rtl
    from sw.research.seed_experiment import deploy_spiking, train_spiking

    T, n = 4, 12
    if neuron == "spikepack":
        net, kind = train_all(digits, T, hidden=(48,), epochs=4).levels["direct"].net, "spikepack"
    else:
        run = train_spiking(digits, T, neuron, hidden=(48,), epochs=4)
        net, kind = deploy_spiking(run, digits).net, "lif"
        assert net.layers[0].mode is Mode.LIF and net.layers[0].leak_shift == 1
    _, x = digits.packed(T)
    r = measure_on_rtl(neuron, net, kind, x[:n], SMALL, digits.y_test[:n])
    print(f"{neuron}: {r.total_cycles:.0f} cycles/sample, RTL acc {r.rtl_accuracy}, golden "
          f"{r.golden_accuracy}; per layer cycles {[c.cycles for c in r.layers]}, spikes "
          f"{[c.rtl_spikes for c in r.layers]}, beats {[c.beats for c in r.layers]}")
    assert r.outputs_differ == 0 and r.counter_runs_differ == 0 and r.bit_exact
    assert r.runs == -(-n // SMALL.batch_depth)
    assert r.rtl_accuracy == r.golden_accuracy
    for c in r.layers:
        assert c.rtl_spikes == c.golden_spikes and c.rtl_skipped == c.golden_skipped
        assert c.cycles >= c.beats > 0  # a beat costs at least a cycle
    assert r.layers[0].rtl_spikes > 0 and r.layers[-1].rtl_spikes == 0  # readout fires nothing
    assert r.total_cycles == pytest.approx(sum(c.cycles for c in r.layers))
