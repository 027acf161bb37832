"""Convolutional SpikePack networks in torch, their quantizer and the integer torch conv model.

Random small CNNs (kernel, stride, padding, max and average pooling, residual blocks, BatchNorm)
are folded and quantized; the folded float layers must equal the model's own forward pass, and
the integer torch model must equal the NumPy golden model exactly on random packed inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, MaxPool, Mode, Reset, Residual
from sim.golden.model import run_network
from sw.compile.int_torch import IntTorchConvNetwork, IntTorchNetwork
from sw.compile.quantize_conv import ConvQuantizationError, fold_cnn, quantize_cnn, run_folded
from sw.train.conv_models import (
    AvgPool,
    Conv,
    Dense,
    ResBlock,
    ResidualBlock,
    calibrate_cnn_thresholds,
    cnn,
    spikepack_from_ann_cnn,
)
from sw.train.neurons import InputEncoder, SpikePack
from sw.train.train import train_classifier

T = 4


def _random_blocks(rng, size: int) -> tuple[list, int]:
    """A random stack of conv-like blocks that fits a ``size x size`` input, then maybe a Dense."""
    blocks, h = [], size
    for _ in range(rng.integers(1, 4)):
        kind = rng.choice(["conv", "conv", "res", "avg"])
        if kind == "res" and blocks:
            blocks.append(ResBlock(int(rng.choice([1, 3])), gain=float(rng.choice([0.5, 1, 2])),
                                   bn=bool(rng.integers(2))))
            continue
        if kind == "avg" and h % 2 == 0 and h >= 4 and blocks \
                and not isinstance(blocks[-1], AvgPool):
            blocks.append(AvgPool(2))
            h //= 2
            continue
        k = int(rng.integers(1, min(5, h) + 1))
        p = int(rng.integers(0, k // 2 + 1))
        s = int(rng.integers(1, 3))
        h = (h + 2 * p - k) // s + 1
        pool = 2 if h >= 4 and rng.integers(2) else None
        if pool:
            h //= pool
        blocks.append(Conv(int(rng.integers(2, 6)), k, s, p, pool, bn=bool(rng.integers(2))))
    if rng.integers(2):
        blocks.append(Dense(int(rng.integers(4, 12))))
    return blocks, h


def _randomize(model: nn.Module, x: torch.Tensor, rng) -> None:
    """BatchNorm statistics and affine parameters of both signs, thresholds calibrated."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))  # negative scales included
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    model.eval()
    calibrate_cnn_thresholds(model, x, percentile=99.0)


@pytest.mark.parametrize("case", range(8))
def test_random_cnn_int_torch_equals_golden(case, rng):
    size = int(rng.integers(6, 13))
    c_in = int(rng.integers(1, 4))
    blocks, _ = _random_blocks(rng, size)
    torch.manual_seed(int(rng.integers(1 << 31)))
    model = cnn((c_in, size, size), blocks, int(rng.integers(2, 6)), T)
    x = rng.integers(0, 1 << T, size=(40, c_in, size, size))
    _randomize(model, torch.as_tensor(x, dtype=torch.float32), rng)
    print("blocks:", blocks)

    per_channel = bool(rng.integers(2))
    net, report = quantize_cnn(model, weight_bits=int(rng.choice([4, 6, 8])),
                               per_channel=per_channel)
    assert per_channel or all(np.ndim(layer.theta) == 0 for layer in net.layers[:-1])
    assert len(report.layers) == len(net.layers)
    golden = run_network(net, x)
    assert (run_network(net, x, form="serial").output == golden.output).all()
    out = IntTorchConvNetwork(net)(torch.as_tensor(x)).numpy()
    assert out.dtype == np.int64
    assert (out == golden.output).all()
    n_res = sum(isinstance(b, ResBlock) for b in blocks)
    assert sum(layer.residual is not None for layer in net.layers) == n_res


@pytest.mark.parametrize("case", range(4))
def test_folding_equals_float_forward(case, rng):
    """BatchNorm, average pooling, input steps and shortcuts folded: the float forward is kept."""
    size = int(rng.integers(6, 13))
    blocks, _ = _random_blocks(rng, size)
    blocks = [Conv(3, 3, padding=1, bn=True)] + blocks
    torch.manual_seed(int(rng.integers(1 << 31)))
    model = cnn((2, size, size), blocks, 3, T)
    x = torch.as_tensor(rng.integers(0, 1 << T, size=(32, 2, size, size)), dtype=torch.float64)
    _randomize(model, x.float(), rng)
    model.double()
    T_, layers = fold_cnn(model)
    assert T_ == T
    assert not any(isinstance(m, nn.BatchNorm2d) for m in layers)
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(run_folded(layers, x.numpy(), T), ref, rtol=1e-9, atol=1e-9)


def test_negative_batchnorm_scale_flips_weights():
    """A negative BN scale must flip the channel's weights and bias, not the threshold."""
    model = cnn((1, 4, 4), [Conv(2, 3, padding=1, bn=True)], 2, T)
    bn = model[2]
    bn.weight.data = torch.tensor([2.0, -2.0])
    bn.bias.data = torch.tensor([0.1, 0.3])
    bn.running_mean.copy_(torch.tensor([0.05, -0.05]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0]))
    model.eval()
    _, layers = fold_cnn(model)
    conv = model[1]
    w = conv.weight.detach().double().numpy() * model[0].step
    c = np.array([2.0, -2.0]) / np.sqrt(np.array([1.0, 4.0]) + bn.eps)
    np.testing.assert_allclose(layers[0].weight, w * c[:, None, None, None])
    assert (layers[0].theta > 0).all()
    net, _ = quantize_cnn(model)
    w_int, w_f = net.layers[0].weight, conv.weight.detach().numpy()
    nz = w_int != 0
    assert (np.sign(w_int[0])[nz[0]] == np.sign(w_f[0])[nz[0]]).all()
    assert (np.sign(w_int[1])[nz[1]] == -np.sign(w_f[1])[nz[1]]).all()
    assert (net.layers[0].theta_vector > 0).all()
    x = np.arange(16).reshape(1, 1, 4, 4) % 16
    xt = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        ref = model.double()(xt).numpy()
    np.testing.assert_allclose(run_folded(layers, x, T), ref, rtol=1e-9, atol=1e-12)


def test_residual_gain_is_an_integer_shortcut(rng):
    torch.manual_seed(1)
    model = cnn((2, 6, 6), [Conv(3, 3, padding=1), ResBlock(3, gain=1.0)], 3, T)
    x = rng.integers(0, 16, size=(30, 2, 6, 6))
    calibrate_cnn_thresholds(model, torch.as_tensor(x, dtype=torch.float32))
    net, report = quantize_cnn(model)
    res = net.layers[2].residual
    assert res is not None and res.source == 0 and 1 <= res.gain <= 127
    # the gain was rounded to an integer: the float shortcut is gain * step_src per packed unit,
    # the integer one g * s_j; they agree within one part in theta_int
    _, layers = fold_cnn(model)
    s = layers[2].theta / net.layers[2].theta_vector
    rel = np.abs(res.gain * s - layers[2].residual[1]) / layers[2].residual[1]
    assert (rel <= 1.0 / net.layers[2].theta_vector + 1e-12).all()
    golden = run_network(net, x)
    assert (IntTorchConvNetwork(net)(torch.as_tensor(x)).numpy() == golden.output).all()


def test_int_torch_conv_lif_equals_golden(rng):
    """The integer torch conv model also runs LIF layers (OR pooling, shortcut per step)."""
    for _ in range(5):
        k = int(rng.integers(1, 4))
        lif = dict(mode=Mode.LIF, leak_shift=int(rng.integers(0, 3)),
                   reset=Reset(rng.choice(["subtract", "zero"])))
        c0 = IntLayer(weight=rng.integers(-4, 8, size=(3, 2, k, k)), bias=rng.integers(-2, 3, 3),
                      theta=rng.integers(2, 9, 3), kind="conv", in_shape=(2, 6, 6),
                      padding=k // 2, **lif)
        c1 = IntLayer(weight=rng.integers(-4, 8, size=(3, 3, 3, 3)), bias=rng.integers(-2, 3, 3),
                      theta=7, kind="conv", in_shape=c0.out_shape, padding=1,
                      residual=Residual(0, int(rng.integers(1, 4))), pool=MaxPool(2), **lif)
        fc = IntLayer(weight=rng.integers(-8, 8, size=(4, c1.n_out)), bias=np.zeros(4, int),
                      theta=1, readout=True, **lif)
        net = IntNetwork((c0, c1, fc), T=T)
        x = rng.integers(0, 16, size=(7, 2, 6, 6))
        out = IntTorchConvNetwork(net)(torch.as_tensor(x)).numpy()
        assert (out == run_network(net, x).output).all()


def test_int_torch_conv_runs_dense_networks_like_the_dense_model(rng):
    layers = (IntLayer(weight=rng.integers(-8, 8, size=(6, 10)), bias=rng.integers(-3, 3, 6),
                       theta=rng.integers(3, 20, 6)),
              IntLayer(weight=rng.integers(-8, 8, size=(3, 6)), bias=np.zeros(3, int), theta=1,
                       readout=True, residual=None))
    net = IntNetwork(layers, T=T)
    x = torch.as_tensor(rng.integers(0, 16, size=(9, 10)))
    assert (IntTorchConvNetwork(net)(x) == IntTorchNetwork(net)(x)).all()


def test_network_input_shortcut(rng):
    """A residual block right after the input: the shortcut's source is the network input."""
    torch.manual_seed(3)
    model = cnn((2, 5, 5), [ResBlock(3, gain=2.0, bn=True)], 3, T)
    x = rng.integers(0, 16, size=(20, 2, 5, 5))
    _randomize(model, torch.as_tensor(x, dtype=torch.float32), rng)
    net, _ = quantize_cnn(model)
    assert net.layers[1].residual.source == NETWORK_INPUT
    assert (IntTorchConvNetwork(net)(torch.as_tensor(x)).numpy()
            == run_network(net, x).output).all()


def _toy_images(rng, n=96):
    """Two classes of 8x8 images: a bright left half or a bright right half, with noise."""
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.3, size=(n, 1, 8, 8))
    for i, label in enumerate(y):
        x[i, 0, :, (4 * label):(4 * label + 4)] += 0.6
    return np.clip(x, 0, 1), y


BLOCKS = [Conv(4, 3, padding=1, pool=2, bn=True), ResBlock(3), AvgPool(2), Dense(8)]


def test_direct_training_runs_and_quantizes(rng, one_torch_thread):
    x, y = _toy_images(rng)
    packed = np.floor(x * 15 + 0.5)
    torch.manual_seed(0)
    snn = cnn((1, 8, 8), BLOCKS, 2, T)
    calibrate_cnn_thresholds(snn, torch.as_tensor(packed[:32], dtype=torch.float32))
    before = [p.detach().clone() for p in snn.parameters()]
    hist = train_classifier(snn, packed, y, epochs=3, batch_size=32, lr=1e-2)
    assert all(np.isfinite(hist.loss))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, snn.parameters(),
                                                                strict=True))
    thetas = [float(m.theta.detach()) for m in snn.modules() if isinstance(m, SpikePack)]
    assert len(thetas) == 4 and all(t > 0 for t in thetas)
    net, _ = quantize_cnn(snn)
    xi = packed.astype(np.int64)
    assert (IntTorchConvNetwork(net)(torch.as_tensor(xi)).numpy()
            == run_network(net, xi).output).all()


@pytest.mark.parametrize("activation", ["relu", "clipfloor"])
def test_conversion_runs_and_quantizes(activation, rng, one_torch_thread):
    x, y = _toy_images(rng)
    packed = np.floor(x * 15 + 0.5)
    torch.manual_seed(0)
    ann = cnn((1, 8, 8), BLOCKS, 2, T, activation=activation)
    assert not any(isinstance(m, SpikePack | InputEncoder) for m in ann)
    ann_in = x if activation == "relu" else packed / 15
    train_classifier(ann, ann_in, y, epochs=3, batch_size=32, lr=1e-2)
    snn = spikepack_from_ann_cnn(ann, T)
    assert isinstance(snn[0], InputEncoder) and snn.in_shape == (1, 8, 8)
    assert not any(isinstance(m, nn.ReLU) for m in snn.modules())
    xt = torch.as_tensor(packed, dtype=torch.float32)
    if activation == "relu":
        calibrate_cnn_thresholds(snn, xt)
    else:  # ClipFloor and SpikePack compute the same function: the conversion is exact
        with torch.no_grad():
            np.testing.assert_allclose(snn(xt).numpy(), ann(xt / 15).numpy(), atol=1e-5)
    net, _ = quantize_cnn(snn)
    xi = packed.astype(np.int64)
    assert (IntTorchConvNetwork(net)(torch.as_tensor(xi)).numpy()
            == run_network(net, xi).output).all()


def _seq(*mods, in_shape=(1, 6, 6)):
    model = nn.Sequential(InputEncoder(T), *mods)
    model.in_shape = in_shape
    return model


@pytest.mark.parametrize("mods, message", [
    ((nn.Conv2d(1, 2, 9), SpikePack(T), nn.Flatten(), nn.Linear(2, 2)), "larger than the padded"),
    ((nn.Conv2d(1, 2, 3, dilation=2), SpikePack(T), nn.Flatten(), nn.Linear(8, 2)), "dilation"),
    ((nn.Conv2d(1, 2, 3, groups=1), nn.Conv2d(2, 2, 3, groups=2), SpikePack(T)), "SpikePack"),
    ((nn.Conv2d(1, 2, 3, stride=(1, 2)), SpikePack(T), nn.Flatten(), nn.Linear(32, 2)),
     "differs between the axes"),
    ((nn.Conv2d(1, 2, 3, padding="same"), SpikePack(T), nn.Flatten(), nn.Linear(72, 2)),
     "padding='same'"),
    ((nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(32, 2)), "Sigmoid"),
    ((nn.Flatten(), nn.Linear(36, 4), SpikePack(T), nn.Conv2d(4, 2, 1), SpikePack(T)),
     "before dense"),
    ((nn.Conv2d(1, 2, 3), SpikePack(T), nn.Flatten(), nn.Linear(32, 2), SpikePack(T)),
     "Linear readout"),
    ((nn.Conv2d(1, 2, 3), SpikePack(T), nn.Upsample(scale_factor=2), nn.Flatten(),
      nn.Linear(128, 2)), "Upsample"),
])
def test_unmappable_layers_are_refused_clearly(mods, message):
    with pytest.raises(ConvQuantizationError, match=message):
        quantize_cnn(_seq(*mods))


def test_groups_are_refused():
    model = _seq(nn.Conv2d(1, 2, 3), SpikePack(T), nn.Conv2d(2, 2, 3, groups=2), SpikePack(T),
                 nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(ConvQuantizationError, match="groups=2 is not supported"):
        quantize_cnn(model)


def test_builder_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="larger than the padded input"):
        cnn((1, 4, 4), [Conv(2, 7)], 2, T)
    with pytest.raises(ValueError, match="odd kernel"):
        cnn((1, 4, 4), [ResBlock(2)], 2, T)
    with pytest.raises(ValueError, match="after a dense block"):
        cnn((1, 4, 4), [Dense(4), Conv(2, 1)], 2, T)
    with pytest.raises(ValueError, match="activation must be"):
        cnn((1, 4, 4), [Conv(2, 1)], 2, T, activation="tanh")


def test_avgpool_before_conv_needs_a_multiple_size():
    model = cnn((1, 7, 7), [Conv(2, 2), AvgPool(2), Conv(2, 1)], 2, T)  # 6x6 -> 3x3: fine
    quantize_cnn(model)
    bad = cnn((1, 6, 6), [Conv(2, 2), AvgPool(2), Conv(2, 1)], 2, T)  # 5x5 is not a multiple of 2
    with pytest.raises(ConvQuantizationError, match="multiple of 2"):
        quantize_cnn(bad)


def test_residual_block_module_is_in_the_model():
    model = cnn((2, 5, 5), [ResBlock(3, gain=0.5)], 3, T)
    blocks = [m for m in model if isinstance(m, ResidualBlock)]
    assert len(blocks) == 1 and blocks[0].gain == 0.5


def test_random_shift_moves_each_image_within_range(seed):
    from sw.train.conv_models import random_shift

    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 16, (16, 2, 6, 7))
    out = random_shift(x, 2, gen)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 7])
                   for dy in range(5) for dx in range(5))
    assert random_shift(x, 0) is x


@pytest.mark.slow
def test_cli_trains_the_cnn(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cnn.npz"
    r = subprocess.run([sys.executable, "-m", "sw.cli", "train", "--model", "cnn", "--dataset",
                        "digits", "--T", "2", "--epochs", "1", "--quiet", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for needle in ("SpikePack direct", "converted_relu", "converted_clipfloor",
                   "int torch == golden 360/360", "acc bits"):
        assert needle in r.stdout
    net = IntNetwork.load(out)
    assert net.layers[0].kind == "conv" and net.layers[0].pool == MaxPool(2)
