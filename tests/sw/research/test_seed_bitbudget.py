"""Bit Budget cost model: formulas, measured SynOps, the ANN/SpikePack identity, the sweep, plot."""

import pytest

from sim.golden.ir import IntLayer, IntNetwork, Mode
from sim.golden.model import run_network
from sim.golden.packing import popcount
from sw.research.bitbudget import (
    E_AC_PJ,
    E_MAC_PJ,
    E_NEURON_PJ,
    ENERGY_PJ,
    best_at_budget,
    layer_cost,
    mac_energy_pj,
    network_cost,
    plot_sweep,
    sweep_network,
)


def test_energy_constants_are_horowitz_45nm():
    assert ENERGY_PJ["int32_add"] == 0.1 and ENERGY_PJ["int8_mult"] == 0.2
    assert ENERGY_PJ["fp32_add"] == 0.9 and ENERGY_PJ["fp32_mult"] == 3.7
    assert E_MAC_PJ == pytest.approx(0.3) and E_AC_PJ == 0.1 and E_NEURON_PJ == pytest.approx(0.2)
    assert mac_energy_pj(8, 8) == pytest.approx(E_MAC_PJ)
    assert mac_energy_pj(32, 32) == pytest.approx(3.2 + 0.1)  # Horowitz: 3.1 pJ + 0.1 pJ
    assert mac_energy_pj(4, 2) == pytest.approx(0.2 / 8 + 0.1)


def test_layer_cost_formulas():
    c = layer_cost(64, 10, weight_bits=4, act_bits=1, T=8, stateful=True, acc_bits=24,
                   bias_bits=16, synops=123.0)
    assert c.compute_bits == 4 * 1 * 8 * 640
    assert c.storage_bits == 640 * 4 + 10 * 16 + 10 * 1 * 8 + 10 * 24
    assert c.synops == 123.0
    assert c.energy_pj == pytest.approx(123 * 0.1 + 10 * 8 * 0.2)
    ann = layer_cost(64, 10, weight_bits=4, act_bits=8, T=1, spiking=False)
    assert ann.compute_bits == c.compute_bits  # b_a = 8 bits in one step == 8 one-bit steps
    assert ann.synops == 640 and ann.energy_pj == pytest.approx(640 * (0.2 * 32 / 64 + 0.1))
    with pytest.raises(ValueError, match="weight_bits"):
        layer_cost(4, 4, weight_bits=0, act_bits=1, T=1)
    with pytest.raises(ValueError, match="T must be"):
        layer_cost(4, 4, weight_bits=4, act_bits=1, T=0)
    with pytest.raises(ValueError, match="layer sizes"):
        layer_cost(0, 4, weight_bits=4, act_bits=1, T=1)


def _net(rng, T, mode, wb=4):
    q = (1 << (wb - 1)) - 1
    l1 = IntLayer(rng.integers(-q, q + 1, (9, 6)), rng.integers(-3, 4, 9), 5, mode=mode,
                  weight_bits=wb, leak_shift=1 if mode is Mode.LIF else 0)
    l2 = IntLayer(rng.integers(-q, q + 1, (3, 9)), rng.integers(-3, 4, 3), 1, mode=mode,
                  readout=True, weight_bits=wb)
    return IntNetwork((l1, l2), T)


@pytest.mark.parametrize("mode,kind", [(Mode.SPIKEPACK, "spikepack"), (Mode.LIF, "lif")])
def test_network_cost_measures_synops_from_spikes(mode, kind, rng):
    T = 4
    net = _net(rng, T, mode)
    x = rng.integers(0, 1 << T, size=(40, 6))
    cost = network_cost(net, kind, x=x)
    res = run_network(net, x)
    in_spikes = popcount(x).sum(axis=-1).mean()
    assert cost.layers[0].synops == pytest.approx(in_spikes * 9)
    assert cost.layers[1].synops == pytest.approx(res.layers[0].spikes.mean() * 3)
    assert cost.compute_bits == 4 * 1 * T * (6 * 9 + 9 * 3)
    dense = network_cost(net, kind)
    assert dense.synops == (6 * 9 + 9 * 3) * T
    assert (kind == "lif") == (cost.storage_bits > network_cost(
        _net(rng, T, Mode.SPIKEPACK), "spikepack").storage_bits)


def test_ann_reading_of_a_spikepack_net_costs_the_same_bits(rng):
    net = _net(rng, 6, Mode.SPIKEPACK)
    a, s = network_cost(net, "ann"), network_cost(net, "spikepack")
    assert a.compute_bits == s.compute_bits
    assert a.layers[0].act_bits == 6 and a.layers[0].T == 1
    assert s.layers[0].act_bits == 1 and s.layers[0].T == 6
    with pytest.raises(ValueError, match="needs LIF-mode"):
        network_cost(net, "lif")
    with pytest.raises(ValueError, match="kind must be"):
        network_cost(net, "cnn")


def test_sweep_best_at_budget_and_plot(rng, tmp_path):
    x = rng.integers(0, 16, size=(30, 6))
    y = rng.integers(0, 3, size=30)
    pts = []
    for T in (2, 4):
        xs = x >> (4 - T)
        pts += sweep_network("SpikePack", "spikepack",
                             lambda wb, T=T: _net(rng, T, Mode.SPIKEPACK, wb),
                             xs, y, weight_bits=(2, 4, 8))
        pts += sweep_network("LIF", "lif", lambda wb, T=T: _net(rng, T, Mode.LIF, wb), xs, y,
                             weight_bits=(2, 4))
    assert {p.bits_per_synapse_op for p in pts if p.model == "SpikePack"} == {4, 8, 16, 32}
    best = best_at_budget(pts, 8)
    assert all(p.bits_per_synapse_op <= 8 for p in best.values())
    within = [p.accuracy for p in pts if p.model == "SpikePack" and p.bits_per_synapse_op <= 8]
    assert best["SpikePack"].accuracy == max(within)
    out = plot_sweep(pts, tmp_path / "sub" / "sweep.png", budgets=[8])
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
