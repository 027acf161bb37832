"""``compile`` and ``simulate`` of conv networks as a user types them, without the RTL (see
tests/sw/cli/test_cli_conv_rtl.py): the layer table, the batch a conv input leaves, image inputs
from files as ``(n, C, H, W)``, ``(n, H, W)`` or ``(n, C*H*W)``, the data sets' image shapes, and
one line on stderr (exit status 2) when shapes do not match. Networks are drawn at random from the
test's logged seed."""

import re

import numpy as np
import pytest
from cli_runner import run_cli
from conv_nets import tiny_cnn

from boards import SMALL
from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sim.golden.packing import quantize_unit_interval
from sw.compile.image_file import load_image_file
from sw.compile.program_image import build_image
from sw.train.datasets import load_dataset


def call(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    return code, out, err.strip()


@pytest.fixture
def cnn(tmp_path, rng):
    path = tmp_path / "cnn.npz"
    tiny_cnn(rng).save(path)
    return path


def shown(out):
    """``{sample: prediction}`` of the ``--show`` lines."""
    return {int(i): int(p) for i, p in re.findall(r"^\s+(\d+)\s+(?:label \d+\s+)?pred (\d+)",
                                                  out, re.M)}


def test_compile_shows_conv_layers_and_the_batch_their_input_leaves(cnn, tmp_path, capsys):
    out_path = tmp_path / "cnn.spkimg"
    code, out, err = call(["compile", cnn, "--board", "small", "-o", out_path], capsys)
    assert code == 0, err
    net = IntNetwork.load(cnn)
    image = build_image(net, SMALL)
    assert load_image_file(out_path).image == image
    rows = {int(m[0]): m for m in re.findall(
        r"^\s+(\d)\s+(conv \S+ -> \S+|\d+ -> \d+)\s+(\S+).*?(\d+) x (\d+) x (\d+)\s+(\d+)\.\.(\d+)"
        r".*?(k\dx\d s\d p\d(?: pool \d)?)?$", out, re.M)}
    assert rows[0][1] == "conv 1x8x8 -> 6x4x4" and rows[0][8] == "k3x3 s1 p1 pool 2"
    assert rows[1][1] == "conv 6x4x4 -> 8x2x2" and rows[1][8] == "k3x3 s2 p1"
    assert rows[2][1] == "32 -> 10" and rows[2][2] == "readout"
    for i, lay in enumerate(image.layers):  # chunks x taps x passes and the weight rows
        assert tuple(int(v) for v in rows[i][3:6]) == (lay.chunks, lay.taps, lay.passes)
        assert (int(rows[i][6]), int(rows[i][7])) == (lay.w_base,
                                                      lay.w_base + lay.weight_rows - 1)
    # an 8x8 image is 64 spike blocks of SMALL's 128 input blocks: 2 per run, not batch_depth 4
    assert image.max_batch == 2 < SMALL.batch_depth
    assert (f"batch: 2 images per run (batch_depth 4; one image takes 64 of the 128 input "
            f"blocks and {image.out_stride} of the {SMALL.output_words} output words)") in out


def test_simulate_runs_a_conv_net_on_the_digits_images(cnn, capsys):
    net = IntNetwork.load(cnn)
    ds = load_dataset("digits", seed=2)
    _, x = ds.packed(4)
    golden = run_network(net, x[:30])
    code, out, err = call(["simulate", cnn, "--data", "digits", "--seed", 2, "--limit", 30,
                           "--show", 30], capsys)
    assert code == 0, err
    acc = 100 * np.mean(golden.predictions() == ds.y_test[:30])
    assert f"golden model (packed form): accuracy {acc:.2f}%" in out
    assert shown(out) == dict(enumerate(golden.predictions().tolist()))
    assert re.search(r"^\s+0\s+conv 1x8x8 -> 6x4x4\s+spikepack\s+"
                     f"{golden.layers[0].spikes.mean():.1f}", out, re.M), out


@pytest.mark.parametrize("form", ["nchw", "flat", "nhw"])
def test_image_inputs_from_a_file_in_any_documented_shape(cnn, tmp_path, capsys, rng, form):
    net = IntNetwork.load(cnn)
    x = rng.integers(0, 16, (7, 1, 8, 8)) * (rng.random((7, 1, 8, 8)) < 0.6)
    y = rng.integers(0, 10, 7)
    stored = {"nchw": x, "flat": x.reshape(7, 64), "nhw": x[:, 0]}[form]
    np.savez(tmp_path / "in.npz", x=stored, y=y)
    code, out, err = call(["simulate", cnn, "--data", tmp_path / "in.npz", "--show", 7], capsys)
    assert code == 0, err
    golden = run_network(net, x.reshape(7, 64))
    assert shown(out) == dict(enumerate(golden.predictions().tolist()))
    assert f"accuracy {100 * np.mean(golden.predictions() == y):.2f}%" in out
    assert "in.npz, 7 samples, T=4" in out


def test_mnist_images_run_on_a_28x28_conv_net(tmp_path, capsys, rng):
    path = tmp_path / "cnn28.npz"
    net = tiny_cnn(rng, (1, 28, 28))
    net.save(path)
    ds = load_dataset("mnist-5k")
    x = quantize_unit_interval(ds.x_test[:12] / 255.0, 4)  # (12, 1, 28, 28)
    code, out, err = call(["simulate", path, "--data", "mnist-5k", "--limit", 12, "--show", 12],
                          capsys)
    assert code == 0, err
    assert "mnist-5k test split, 12 samples" in out and "conv 1x28x28 -> 6x14x14" in out
    assert shown(out) == dict(enumerate(run_network(net, x.reshape(12, -1))
                                        .predictions().tolist()))


@pytest.mark.parametrize("stored,needle", [
    ((5, 1, 8, 7), "'x' of {path} has shape (5, 1, 8, 7): give (n, 1, 8, 8), (n, 8, 8) or "
                   "(n, 64) packed 4-bit words"),
    ((5, 3, 8, 8), "the network takes 1x8x8 images (64 packed inputs each); 'x' of {path} has "
                   "shape (5, 3, 8, 8)"),
    ((5, 63), "has shape (5, 63): give (n, 1, 8, 8)"),
    ((0, 1, 8, 8), "'x' of {path} has no samples (shape (0, 1, 8, 8))"),
])
def test_image_inputs_of_the_wrong_shape_are_refused(cnn, tmp_path, capsys, stored, needle):
    np.savez(tmp_path / "in.npz", x=np.ones(stored, dtype=np.int64))
    for command in (["simulate"], ["infer", "--sim"]):  # refused before any RTL is built
        code, out, err = call([*command, cnn, "--data", tmp_path / "in.npz"], capsys)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert needle.format(path=tmp_path / "in.npz") in err, err


def test_a_data_set_of_other_images_is_refused_with_both_shapes(cnn, tmp_path, capsys, rng):
    code, _, err = call(["simulate", cnn, "--data", "mnist-5k"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert ("the network takes 1x8x8 images (64 packed inputs each); the mnist-5k test split "
            "has 1x28x28 images (784 inputs each)") in err
    # a 3-channel network of 64 inputs is not fed the 1-channel 8x8 digits either
    path = tmp_path / "rgb.npz"
    tiny_cnn(rng, (4, 4, 4)).save(path)
    code, _, err = call(["infer", path, "--sim", "--data", "digits"], capsys)
    assert code == 2 and "takes 4x4x4 images" in err and "has 1x8x8 images" in err, err
