"""The real training run on digits: float, quantized and golden levels measured and compared."""

import numpy as np
import pytest
import torch

from sim.golden.model import run_network
from sw.compile.int_torch import IntTorchNetwork
from sw.compile.quantize import quantize_spikepack
from sw.research.experiment import train_all
from sw.train.data import load_digits_split
from sw.train.models import spikepack_mlp


@pytest.fixture(scope="module")
def t4_result():
    return train_all(load_digits_split(0), 4, epochs=60, seed=0)


def test_split_is_fixed_and_real():
    s = load_digits_split(0)
    assert (len(s.y_train), len(s.y_test)) == (1437, 360)
    assert np.array_equal(s.y_test, load_digits_split(0).y_test)
    _, x = s.packed(4)
    assert x.dtype == np.int64 and x.min() == 0 and x.max() == 15


def test_spikepack_t4_integer_accuracy_within_one_point_of_float_ann(t4_result):
    direct = t4_result.levels["direct"]
    print(f"ANN {t4_result.ann_accuracy:.4f}  SpikePack float {direct.float_accuracy:.4f}  "
          f"integer {direct.int_accuracy:.4f}")
    assert direct.int_accuracy >= t4_result.ann_accuracy - 0.01
    assert t4_result.ann_accuracy > 0.93


def test_integer_golden_and_quantized_torch_give_identical_predictions(t4_result):
    split = load_digits_split(0)
    _, x = split.packed(4)
    for level in t4_result.levels.values():
        assert level.int_torch_agrees == len(split.y_test)
        golden = run_network(level.net, x)
        torch_out = IntTorchNetwork(level.net)(torch.as_tensor(x)).numpy()
        assert np.array_equal(torch_out.argmax(-1), golden.predictions())
        assert np.array_equal(torch_out, golden.output)


def test_clipfloor_conversion_is_exact_at_float_level(t4_result):
    """ClipFloor ANN and SpikePack compute the same function: float accuracy carries over."""
    lv = t4_result.levels["converted_clipfloor"]
    assert lv.float_accuracy > 0.9
    assert abs(lv.int_accuracy - lv.float_accuracy) <= 0.01


def test_quantized_layers_reproduce_float_firing_closely(t4_result, rng):
    """Integer firing vs float firing of the same model: rounding moves few activations."""
    split = load_digits_split(0)
    _, x = split.packed(4)
    net = t4_result.levels["direct"].net
    rep = t4_result.levels["direct"].report
    for q in rep.layers:
        assert q.weight_rel_rms < 0.02
        assert q.acc_bits <= 24
        assert q.weight_range[0] >= -128 and q.weight_range[1] <= 127
    assert net.T == 4 and net.layers[-1].readout


def test_quantizer_respects_weight_bits_and_per_layer_theta(rng):
    torch.manual_seed(0)
    model = spikepack_mlp([10, 8, 3], 3)
    net, report = quantize_spikepack(model, weight_bits=4, per_channel=False)
    assert net.layers[0].theta.ndim == 0
    assert all(-8 <= layer.weight.min() and layer.weight.max() <= 7 for layer in net.layers)
    assert len(report.layers) == 2 and "readout" in report.table()


def test_quantizer_rejects_models_it_cannot_map():
    torch.manual_seed(0)
    with pytest.raises(TypeError, match="expected a SpikePack model"):
        quantize_spikepack(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    bad = spikepack_mlp([4, 3, 2], 4)
    bad[2] = torch.nn.ReLU()
    with pytest.raises(TypeError, match="only SpikePack activations"):
        quantize_spikepack(bad)
    with pytest.raises(ValueError, match="weight_bits"):
        quantize_spikepack(spikepack_mlp([4, 2], 4), weight_bits=12)
