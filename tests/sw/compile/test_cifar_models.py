"""CIFAR-10-shaped VGG-small and small ResNet: quantized, golden == integer torch, compiled.

No CIFAR-10 here: the images are written in the real CIFAR-10 python-batch format (a pickled dict
with ``data`` (N, 3072) uint8 and ``labels``) and read back by ``sw.train.datasets``' loader.
Each network (random weights, BatchNorm statistics of both signs, thresholds calibrated on the
training images) is quantized to
the IR (BatchNorm folded, shortcuts as ``Residual``), run by the golden model and the integer
torch model (outputs ==, every image), and compiled to a program image for a core sized for it;
the image-level golden model runs the image and gives the network's outputs. Today's presets
refuse both networks with a ``DoesNotFitError`` that says how many spike blocks they need.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from boards import BOARDS, CORE_PRESETS
from hw.contract.params import CoreParams
from sim.golden.ir import Residual
from sim.golden.model import run_network
from sw.compile.image_golden import run_image
from sw.compile.int_torch import IntTorchConvNetwork
from sw.compile.program_image import DoesNotFitError, build_image
from sw.compile.quantize_conv import quantize_cnn
from sw.train.conv_models import (
    calibrate_cnn_thresholds,
    cifar_resnet_small_blocks,
    cifar_vgg_small_blocks,
    cnn,
)
from sw.train.datasets import CIFAR10_FILES, load_dataset
from sw.train.train import as_tensor, predict

T = 4

#: A core sized for these networks: 3x32x32 inputs and 16x32x32 maps are 1,024 blocks of 16
#: channels, so each ping-pong half holds 1,024 (the conv descriptor addresses 2,048 blocks).
CIFAR_CORE = CoreParams(n_pe=16, k=16, t_max=8, acc_bits=24, weight_depth=1024,
                        act_chunks=1024, bt_depth=512, max_layers=16, batch_depth=4)

MODELS = {"vgg_small": cifar_vgg_small_blocks, "resnet_small": cifar_resnet_small_blocks}


def _write_cifar(directory, rng, n_per_batch, n_test):
    """CIFAR-10 python batches: a class-dependent colour and stripe plus noise, so one epoch
    learns a little (the labels are not noise)."""
    directory.mkdir(parents=True)
    for name in CIFAR10_FILES:
        n = n_test if name == "test_batch" else n_per_batch
        labels = rng.integers(0, 10, n)
        img = rng.integers(0, 96, (n, 3, 32, 32))
        for i, c in enumerate(labels):
            img[i, c % 3] += 120
            img[i, :, 3 * c:3 * c + 3, :] += 30
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                 b"data": np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072),
                 b"filenames": [f"{i}.png".encode() for i in range(n)]}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    _write_cifar(d, np.random.default_rng(1234), 6, 16)
    ds = load_dataset("cifar10", d.parent)
    assert ds.image_shape == (3, 32, 32) and len(ds.y_train) == 30 and len(ds.y_test) == 16
    return ds


@pytest.fixture(scope="module")
def trained(cifar):
    """Per network: the float SpikePack model, its integer network, the test images. BatchNorm
    gets running statistics and affine parameters of both signs (so the fold is exercised) and
    the thresholds are calibrated on the training images, layer by layer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    x_tr, x_te = cifar.packed(T, flat=False)
    gen = torch.Generator().manual_seed(0)
    for name, blocks in MODELS.items():
        torch.manual_seed(0)
        model = cnn(cifar.image_shape, blocks(), cifar.n_classes, T)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.05)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
                m.weight.data.copy_(torch.randn(n, generator=gen))
                m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
        model.eval()
        calibrate_cnn_thresholds(model, as_tensor(x_tr), percentile=99.0)
        out[name] = (model, quantize_cnn(model), x_te)
    torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_cifar_network_golden_equals_int_torch_and_compiles(name, trained, one_torch_thread):
    model, (net, report), x_te = trained[name]
    print(report.table())
    kinds = [layer.kind for layer in net.layers]
    if name == "vgg_small":
        assert kinds == ["conv"] * 5 + ["dense"] * 2
    else:
        assert kinds == ["conv"] * 7 + ["dense"]
        # the two blocks: the second conv's membrane adds g times the block input
        res = {i: layer.residual for i, layer in enumerate(net.layers) if layer.residual}
        assert sorted(res) == [2, 5] and all(isinstance(r, Residual) for r in res.values())
        assert res[2].source == 0 and res[5].source == 3
    golden = run_network(net, x_te)
    int_out = IntTorchConvNetwork(net)(torch.as_tensor(x_te)).numpy()
    assert np.array_equal(int_out, golden.output)  # every image, every class
    agree = float(np.mean(predict(model, x_te) == golden.predictions()))
    print(f"{name}: float SpikePack vs integer predictions agree on {agree:.3f}")

    image = build_image(net, CIFAR_CORE)
    run = run_image(image, x_te[:1])  # the image-level model is slow (~10 s an image here)
    assert np.array_equal(run.output, golden.output[:1])


@pytest.mark.parametrize("name", list(MODELS))
def test_todays_presets_refuse_with_the_blocks_needed(name, trained):
    net = trained[name][1][0]
    targets = {**CORE_PRESETS, **{n: b.params for n, b in BOARDS.items()}}
    for target, p in targets.items():
        with pytest.raises(DoesNotFitError) as e:
            build_image(net, p)
        msg = str(e.value)
        print(f"{name} on {target}: {msg}")
        assert "\n" not in msg
        blocks = 32 * 32 * -(-3 // p.k)  # the 3x32x32 input, channel-chunked by k
        assert blocks > p.act_chunks
        if len(net.layers) > p.max_layers:  # checked first: the program holds too few layers
            assert f"the build runs at most {p.max_layers} (max_layers)" in msg, msg
        elif not p.conv:  # a dense-only build (the iCEBreaker's)
            assert "dense layers only (conv=0" in msg, msg
        elif blocks > p.input_blocks:
            assert f"needs {blocks} spike blocks of {p.k} channels" in msg, msg
            assert f"holds {p.input_blocks} (in_blocks)" in msg, msg
        else:  # the image fits INPUT (the Arty's 1,024 blocks), its maps not the halves
            assert (f"a ping-pong half holds {p.act_chunks} (act_chunks)" in msg
                    or f"two halves of {p.act_chunks} blocks" in msg), msg
