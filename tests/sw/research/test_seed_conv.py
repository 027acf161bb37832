"""The seeds with conv layers: LIF (BPTT), PSU/IPSU/RPSU and CASC on images.

- An IF CNN whose weights are integers (a threshold that needs no rounding) runs in the golden
  model spike for spike as in torch: conv, max pooling as the OR of spikes, flatten, dense readout.
- LIF- and PSU-trained CNNs quantize to LIF-mode conv layers; the golden model and the integer
  torch model agree on every test image (==); float-deployed vs integer agreement is measured.
- IPSU and RPSU train with conv layers and are refused by the LIF-mode quantizer with a message.
- A ClipQuan CNN with average pooling converts to CIF neurons; with wake-sleep conversion the
  readout equals the ANN's logits and every spike count equals the ANN's level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sim.golden.ir import Mode
from sim.golden.model import run_network
from sw.compile.int_torch import IntTorchConvNetwork
from sw.compile.quantize_lif_conv import quantize_lif_cnn
from sw.research.cnn_seed_experiment import (
    avg_pool_blocks,
    deploy_spiking_cnn,
    run_casc_cnn,
    train_spiking_cnn,
)
from sw.train.casc import CIFNetwork
from sw.train.conv_models import AvgPool, Conv, Dense, ResBlock, cnn
from sw.train.datasets import Dataset, load_dataset
from sw.train.spiking_cnn import spiking_cnn
from sw.train.spiking_mlp import forward_deployed
from sw.train.train import as_tensor

BLOCKS = [Conv(6, 3, padding=1, pool=2), Conv(8, 3, padding=1)]


@pytest.fixture(scope="module")
def digits_small() -> Dataset:
    """1,437 train / 200 test digits (8x8): a few seconds per model."""
    ds = load_dataset("digits", seed=0)
    return Dataset("digits-small", ds.x_train, ds.y_train, ds.x_test[:200],
                   ds.y_test[:200], ds.class_names, ds.source)


def test_if_cnn_with_integer_weights_is_exact(rng):
    """No rounding anywhere: torch's IF CNN == the golden model's, outputs and predictions."""
    T = 4
    model = spiking_cnn((2, 6, 6), [Conv(3, 3, padding=1, pool=2), Dense(5)], 4, T, "if")
    theta = 7.0
    for m in model.modules():
        if hasattr(m, "theta") and not isinstance(m.theta, torch.Tensor):
            m.theta = theta
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        for lin in layers:
            w = rng.integers(-9, 10, size=lin.weight.shape)
            w.reshape(len(w), -1)[:, 0] = 127  # per-channel max 127: theta_int = theta
            lin.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            lin.bias.copy_(torch.as_tensor(rng.integers(-3, 4, size=lin.bias.shape),
                                           dtype=torch.float32))
    x = rng.integers(0, 1 << T, size=(64, 2, 6, 6))
    net, _ = quantize_lif_cnn(model)
    assert [layer.mode for layer in net.layers] == [Mode.LIF] * 3
    for layer in net.layers[:-1]:
        assert np.all(layer.theta_vector == theta)
    golden = run_network(net, x)
    with torch.no_grad():
        logits = model(as_tensor(x)).double().numpy()
    # readout: v_T = T * mean / s with one scale s = max|W| / 127 = 1
    np.testing.assert_array_equal(golden.output, np.round(logits * T).astype(np.int64))
    assert np.array_equal(IntTorchConvNetwork(net)(torch.as_tensor(x)).numpy(), golden.output)


@pytest.mark.parametrize("neuron", ["lif", "psu"])
def test_lif_psu_cnn_deploy_golden_equals_int_torch(neuron, digits_small, one_torch_thread):
    run = train_spiking_cnn(digits_small, 4, neuron, BLOCKS, epochs=4, seed=1, lr=1e-2)
    dep = deploy_spiking_cnn(run, digits_small)
    print(f"{neuron}: float {dep.float_accuracy:.3f}, float deployed "
          f"{dep.float_deployed_accuracy:.3f}, int {dep.int_accuracy:.3f}, agreement "
          f"{dep.agreement:.3f}, int torch == golden {dep.int_torch_agrees}/{dep.n_test}")
    assert dep.int_torch_agrees == dep.n_test == 200
    kinds = [(layer.kind, layer.mode, layer.leak_shift, layer.pool) for layer in dep.net.layers]
    assert [k[:3] for k in kinds] == [("conv", Mode.LIF, 1), ("conv", Mode.LIF, 1),
                                      ("dense", Mode.LIF, 0)]
    assert kinds[0][3] is not None and kinds[0][3].kernel == 2
    assert run.accuracy > 0.5, "four epochs on the digits learn something"
    # rounding and the shift's floor change a few borderline images only
    assert dep.agreement >= 0.9
    assert abs(dep.int_accuracy - dep.float_deployed_accuracy) <= 0.1


def test_avg_pool_folds_into_the_next_layer(rng, one_torch_thread):
    """An IF CNN with an average pooling: the integer network's pooling-free conv reads the
    unpooled spikes; golden == int torch, and predictions follow the float model."""
    model = spiking_cnn((1, 8, 8), [Conv(4, 3, padding=1), AvgPool(2), Conv(4, 3, padding=1),
                                    AvgPool(2), Dense(6)], 3, 3, "if", theta=0.5)
    x = rng.integers(0, 8, size=(100, 1, 8, 8))
    net, _ = quantize_lif_cnn(model)
    assert [layer.kind for layer in net.layers] == ["conv", "conv", "dense", "dense"]
    assert net.layers[1].stride == 2 and net.layers[1].kernel == (6, 6)
    golden = run_network(net, x)
    assert np.array_equal(IntTorchConvNetwork(net)(torch.as_tensor(x)).numpy(), golden.output)
    with torch.no_grad():
        ref = model(as_tensor(x)).argmax(-1).numpy()
    agree = float(np.mean(ref == golden.predictions()))
    print(f"float IF vs integer predictions agree on {agree:.3f}")
    assert agree >= 0.9


@pytest.mark.parametrize("neuron", ["ipsu", "rpsu"])
def test_ipsu_rpsu_train_with_conv_and_have_no_lif_form(neuron, rng):
    model = spiking_cnn((1, 6, 6), [Conv(3, 3, pool=2)], 3, 4, neuron)
    x = as_tensor(rng.integers(0, 16, size=(8, 1, 6, 6)))
    loss = nn.functional.cross_entropy(model(x), torch.as_tensor(rng.integers(0, 3, size=8)))
    loss.backward()
    learned = [p for n, p in model.named_parameters() if n.endswith(("A_learned", "R"))]
    assert learned and all(p.grad is not None and p.grad.abs().sum() > 0 for p in learned)
    with pytest.raises(TypeError, match="no LIF-mode equivalent"):
        quantize_lif_cnn(model)


def test_psu_cnn_deployed_form_is_the_lif_recurrence(rng):
    """PSU conv layers deploy by their sequential form: forward_deployed == the sequential LIF."""
    model = spiking_cnn((1, 5, 5), [Conv(2, 3, padding=1)], 2, 4, "psu", theta=0.3)
    x = as_tensor(rng.integers(0, 16, size=(6, 1, 5, 5)))
    with torch.no_grad():
        h = model[0](x)
        cur = model[1](h)
        v = torch.zeros_like(cur[0])
        s = torch.zeros_like(cur[0])
        seq = []
        for t in range(4):
            v = (v - 0.3 * s + cur[t]) / 2
            s = (v >= 0.3).float()
            seq.append(s)
        want = model[5](model[4](model[3](torch.stack(seq))))
    assert torch.equal(forward_deployed(model, x), want)


def test_spiking_cnn_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="residual blocks are built for SpikePack"):
        spiking_cnn((1, 6, 6), [Conv(2, 3, padding=1), ResBlock()], 2, 4)
    with pytest.raises(ValueError, match="BatchNorm is folded for SpikePack CNNs only"):
        spiking_cnn((1, 6, 6), [Conv(2, 3, bn=True)], 2, 4)
    with pytest.raises(ValueError, match="neuron must be one of"):
        spiking_cnn((1, 6, 6), [Conv(2, 3)], 2, 4, "alif")


def test_casc_cnn_wake_sleep_equals_the_ann(rng):
    """Random ClipQuan CNN (conv, average pooling, conv, dense): WSC readout == ANN logits."""
    L = 4
    blocks = avg_pool_blocks([Conv(3, 3, padding=1, pool=2), Conv(4, 3, stride=2), Dense(6)])
    assert blocks[1] == AvgPool(2)
    torch.manual_seed(int(rng.integers(1 << 31)))
    ann = cnn((2, 8, 8), blocks, 5, L, activation="clipquan")
    x = rng.random((40, 2, 8, 8))
    net = CIFNetwork.from_cnn(ann)
    assert [la.kind for la in net.layers] == ["conv", "conv", "dense", "dense"]
    wsc = net.run(x, sleep_steps=4 * L * 3)
    with torch.no_grad():
        ann_logits = ann.double()(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(net.ann_forward(x), ann_logits, rtol=0, atol=1e-9)
    np.testing.assert_allclose(wsc.logits, ann_logits, rtol=0, atol=1e-9)
    assert net.count_agreement(wsc, x) == [1.0, 1.0, 1.0]
    plain = net.run(x, signed=False)
    print("plain IF count agreement", net.count_agreement(plain, x))


def test_casc_cnn_refuses_max_pooling():
    ann = cnn((1, 6, 6), [Conv(2, 3, pool=2)], 2, 3, activation="clipquan")
    with pytest.raises(TypeError, match="no max pooling"):
        CIFNetwork.from_cnn(ann)


def test_run_casc_cnn_on_digits(digits_small, one_torch_thread):
    r = run_casc_cnn(digits_small, 4, BLOCKS, epochs=4, seed=0, lr=1e-2)
    print(r)
    assert r.ann_accuracy > 0.5
    assert r.wsc_matches_ann >= 0.99  # float32 training forward vs float64 conversion
    assert r.count_agreement["wsc"] >= r.count_agreement["cif"] - 1e-12
    assert r.count_agreement["wsc"] > 0.999


def test_bit_budget_counts_conv_synapses(rng):
    """A conv layer costs output positions x C_out x C_in k^2 synapses, its weights are stored
    once; with every input spiking at every step the SynOps are exactly synapses x T."""
    from sim.golden.ir import IntLayer, IntNetwork, MaxPool
    from sw.research.bitbudget import network_cost

    T, wb = 3, 4
    conv = IntLayer(weight=rng.integers(-7, 8, size=(5, 2, 3, 3)), bias=np.zeros(5, int),
                    theta=4, weight_bits=wb, kind="conv", in_shape=(2, 7, 7), padding=1,
                    pool=MaxPool(2))
    readout = IntLayer(weight=rng.integers(-7, 8, size=(3, 5 * 3 * 3)), bias=np.zeros(3, int),
                       theta=1, readout=True, weight_bits=wb)
    net = IntNetwork((conv, readout), T)
    x = np.full((4, 2, 7, 7), (1 << T) - 1)
    c = network_cost(net, "spikepack", x=x).layers[0]
    synapses = 7 * 7 * 5 * 2 * 3 * 3  # pre-pool positions (padding 1) x C_out x C_in k^2
    assert c.compute_bits == wb * 1 * T * synapses
    assert c.synops == synapses * T
    assert c.storage_bits == 5 * 2 * 9 * wb + 5 * 32 + 5 * 3 * 3 * 1 * T  # weights, biases, out
    ann = network_cost(net, "ann").layers[0]
    assert ann.compute_bits == wb * T * 1 * synapses and ann.synops == synapses
