"""Bad input gets one line saying what is wrong and what to do (exit 2), never a traceback, and
no output file is written (issue 13, part 3). Each case of the issue text is one test here."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_cli as run_main

from boards import SMALL
from sim.golden.ir import AccumulatorOverflowError, IntLayer, IntNetwork, NetworkFileError
from sim.golden.model import accumulator_bound, required_accumulator_bits, run_network
from sw.compile.image_file import ImageFileError, load_image_file, save_image_file
from sw.compile.program_image import DoesNotFitError, build_image
from sw.compile.quantize import QuantizationError, quantize_spikepack
from sw.train.model_io import ModelFileError, load_model, save_model
from sw.train.models import ann_mlp, spikepack_mlp

ROOT = Path(__file__).resolve().parents[3]


def assert_one_line_error(code, err, *needles):
    """Exit 2, one ``spikepack CMD: error: ...`` line on stderr, no traceback, all needles."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spikepack ") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def small_net(rng, n_in=6, T=4) -> IntNetwork:
    return IntNetwork((
        IntLayer(weight=rng.integers(-20, 21, (5, n_in)), bias=rng.integers(-9, 10, 5),
                 theta=int(rng.integers(5, 40))),
        IntLayer(weight=rng.integers(-20, 21, (3, 5)), bias=rng.integers(-9, 10, 3), theta=1,
                 readout=True),
    ), T)


def net_bytes(net) -> bytes:
    buf = io.BytesIO()
    net.save(buf)
    return buf.getvalue()


def image_bytes(tmp_path, net) -> bytes:
    path = save_image_file(tmp_path / "good.spkimg", build_image(net, SMALL), net, "preset small")
    return path.read_bytes()


def damaged(data: bytes, how: str, rng) -> bytes:
    """``data`` emptied, truncated, with flipped bits, or replaced by other bytes."""
    if how == "empty":
        return b""
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "bit-flipped":
        b = bytearray(data)
        for pos in rng.choice(np.arange(100, len(b) - 100), 3, replace=False):
            b[pos] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if how == "random":
        return rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    if how == "npy":
        buf = io.BytesIO()
        np.save(buf, np.arange(10))
        return buf.getvalue()
    raise AssertionError(how)


DAMAGE = ("empty", "truncated", "bit-flipped", "random", "npy")


# --- damaged network and image files ---------------------------------------------------------


@pytest.mark.parametrize("how", DAMAGE)
def test_compile_of_a_damaged_network_file(how, tmp_path, rng, capsys):
    src = tmp_path / "e.npz"
    src.write_bytes(damaged(net_bytes(small_net(rng)), how, rng))
    out = tmp_path / "o.spkimg"
    code, _, err = run_main(["compile", src, "--board", "small", "-o", out], capsys)
    line = assert_one_line_error(code, err, "e.npz")
    assert not out.exists()
    assert "pickled" not in line and "context manager" not in line
    if how == "npy":
        assert ".npy" in line
    if how == "empty":
        assert "empty" in line


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_image_file(how, tmp_path, rng, capsys):
    net = small_net(rng)
    src = tmp_path / "net.spkimg"
    src.write_bytes(damaged(image_bytes(tmp_path, net), how, rng))
    with pytest.raises(ImageFileError, match="net.spkimg"):
        load_image_file(src)
    code, _, err = run_main(["simulate", src, "--data", "digits"], capsys)
    assert_one_line_error(code, err, "net.spkimg")
    out = tmp_path / "re.spkimg"
    code, _, err = run_main(["compile", src, "--board", "small", "-o", out], capsys)
    assert_one_line_error(code, err, "net.spkimg")
    assert not out.exists()


def test_an_image_header_layer_without_descriptor(tmp_path, rng, capsys):
    net = small_net(rng)
    path = save_image_file(tmp_path / "a.spkimg", build_image(net, SMALL), net)
    with np.load(path) as f:
        arrays = dict(f)
    header = json.loads(str(arrays["header"]))
    del header["layers"][0]["descriptor"]
    arrays["header"] = np.array(json.dumps(header))
    with open(tmp_path / "b.spkimg", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ImageFileError, match="descriptor"):
        load_image_file(tmp_path / "b.spkimg")
    code, _, err = run_main(["simulate", tmp_path / "b.spkimg", "--limit", "3"], capsys)
    assert_one_line_error(code, err, "b.spkimg", "descriptor", "compile")


def test_the_issues_command_as_a_process(tmp_path):
    """``: > e.npz; spikepack compile e.npz --board small -o o.spkimg`` in a real process."""
    (tmp_path / "e.npz").write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "sw.cli", "compile", "e.npz", "--board", "small",
                        "-o", "o.spkimg"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert_one_line_error(r.returncode, r.stderr, "e.npz is empty")
    assert "Traceback" not in r.stdout
    assert not (tmp_path / "o.spkimg").exists()


def test_a_failed_compile_leaves_an_existing_output_alone(tmp_path, rng, capsys):
    (tmp_path / "e.npz").write_bytes(b"PK\x03\x04 not really")
    out = tmp_path / "o.spkimg"
    out.write_bytes(b"the previous image")
    code, _, err = run_main(["compile", tmp_path / "e.npz", "--board", "small", "-o", out],
                            capsys)
    assert_one_line_error(code, err, "e.npz")
    assert out.read_bytes() == b"the previous image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz", "o.spkimg"]


def test_network_loader_names_the_file_and_the_fix(tmp_path, rng):
    path = tmp_path / "t.npz"
    path.write_bytes(net_bytes(small_net(rng))[:-40])
    with pytest.raises(NetworkFileError, match=r"t\.npz is not a valid integer network file "
                                               r".*spikepack quantize"):
        IntNetwork.load(path)
    with pytest.raises(FileNotFoundError):
        IntNetwork.load(tmp_path / "missing.npz")


def test_saves_leave_no_temporary_files(tmp_path, rng):
    net = small_net(rng)
    net.save(tmp_path / "n")  # numpy's rule: ".npz" is appended
    save_image_file(tmp_path / "i.spkimg", build_image(net, SMALL), net)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.spkimg", "n.npz"]
    assert IntNetwork.load(tmp_path / "n.npz").layers[0].bias.tolist() == \
        net.layers[0].bias.tolist()


# --- accumulator overflow at run time --------------------------------------------------------


def overflowing_net(n_in=4) -> IntNetwork:
    """Fits IntLayer, but its membranes leave a 32-bit accumulator for most inputs."""
    return IntNetwork((IntLayer(weight=np.full((2, n_in), 100), bias=[2**31 - 10] * 2, theta=1,
                                readout=True),), 4)


def test_simulate_data_that_overflows_the_accumulator(tmp_path, capsys):
    overflowing_net().save(tmp_path / "big.npz")
    np.savez(tmp_path / "x.npz", x=np.full((3, 4), 15))
    code, _, err = run_main(["simulate", tmp_path / "big.npz", "--data", tmp_path / "x.npz"],
                            capsys)
    assert_one_line_error(code, err, "layer 0", "32-bit signed accumulator", "smaller")


def test_eval_that_overflows_the_accumulator(tmp_path, capsys):
    overflowing_net(64).save(tmp_path / "big.npz")
    code, _, err = run_main(["eval", tmp_path / "big.npz"], capsys)
    assert_one_line_error(code, err, "layer 0", "accumulator")


# --- input files -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["zero samples", "empty file", "npy", "no x", "3-D"])
def test_bad_input_data_files(content, tmp_path, rng, capsys):
    small_net(rng, n_in=4).save(tmp_path / "net.npz")
    data = tmp_path / "in.npz"
    if content == "zero samples":
        np.savez(data, x=np.zeros((0, 4), dtype=np.int64))
    elif content == "empty file":
        data.write_bytes(b"")
    elif content == "npy":
        with open(data, "wb") as f:
            np.save(f, np.zeros((2, 4), dtype=np.int64))
    elif content == "no x":
        np.savez(data, y=np.zeros(2))
    else:
        np.savez(data, x=np.zeros((2, 2, 4), dtype=np.int64))
    code, out, err = run_main(["simulate", tmp_path / "net.npz", "--data", data], capsys)
    assert_one_line_error(code, err, "in.npz")
    assert "nan" not in out


# --- float models: quantize and convert ------------------------------------------------------


def _spikepack_model(edit):
    torch.manual_seed(0)
    model = spikepack_mlp([64, 12, 10], 4)
    with torch.no_grad():
        edit(model)
    return model


BAD_FLOAT_MODELS = {
    "nan bias": (lambda m: m[1].bias.__setitem__(0, math.nan), "NaN"),
    "inf bias": (lambda m: m[3].bias.__setitem__(1, math.inf), "NaN/infinite"),
    "1e30 bias": (lambda m: m[1].bias.__setitem__(2, 1e30), "bias 1e+30"),
    "theta 0": (lambda m: m[2].theta.fill_(0.0), "theta = 0 is zero"),
    "negative theta": (lambda m: m[2].theta.fill_(-0.25), "theta = -0.25 is negative"),
    "nan weight": (lambda m: m[3].weight.__setitem__((0, 0), math.nan), "weight"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLOAT_MODELS))
def test_quantize_of_a_bad_float_model(case, tmp_path, capsys):
    edit, needle = BAD_FLOAT_MODELS[case]
    model = _spikepack_model(edit)
    save_model(model, tmp_path / "m.pt")
    out = tmp_path / "q.npz"
    code, _, err = run_main(["quantize", "--model", tmp_path / "m.pt", "--out", out], capsys)
    assert_one_line_error(code, err, needle)
    assert not out.exists()
    # the library says the same without the file: QuantizationError (a ValueError)
    with pytest.raises(QuantizationError):
        quantize_spikepack(model)


def test_model_loader_refuses_non_finite_parameters(tmp_path):
    model = _spikepack_model(BAD_FLOAT_MODELS["nan bias"][0])
    save_model(model, tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match=r"m\.pt: 1\.bias holds 1 NaN"):
        load_model(tmp_path / "m.pt")


def test_convert_of_an_ann_with_a_nan_weight(tmp_path, capsys):
    ann = ann_mlp([64, 12, 10])
    with torch.no_grad():
        ann[0].weight[3, 7] = math.nan
    save_model(ann, tmp_path / "ann.pt")
    out = tmp_path / "snn.pt"
    code, _, err = run_main(["convert", "--ann", tmp_path / "ann.pt", "--out", out], capsys)
    assert_one_line_error(code, err, "ann.pt", "0.weight", "NaN", "retrain")
    assert not out.exists()


@pytest.mark.parametrize("how", ["empty", "random", "truncated"])
def test_a_damaged_model_file(how, tmp_path, rng, capsys):
    save_model(_spikepack_model(lambda m: None), tmp_path / "good.pt")
    (tmp_path / "m.pt").write_bytes(damaged((tmp_path / "good.pt").read_bytes(), how, rng))
    out = tmp_path / "q.npz"
    code, _, err = run_main(["quantize", "--model", tmp_path / "m.pt", "--out", out], capsys)
    assert_one_line_error(code, err, "m.pt is not a spikepack model file")
    assert not out.exists()


def test_a_model_file_that_does_not_match_its_sizes(tmp_path, capsys):
    model = _spikepack_model(lambda m: None)
    torch.save({"kind": "spikepack", "sizes": [64, 13, 10], "T": 4,
                "state_dict": model.state_dict()}, tmp_path / "m.pt")
    code, _, err = run_main(["quantize", "--model", tmp_path / "m.pt", "--out",
                             tmp_path / "q.npz"], capsys)
    assert_one_line_error(code, err, "m.pt is a damaged spikepack model file")


# --- integer limits at the int64 edge --------------------------------------------------------


@pytest.mark.parametrize("bias", [-(2**63), 2**63 - 100, 2**62, -(2**31) - 1])
def test_int64_edge_biases_are_refused_not_truncated(bias, tmp_path, capsys):
    layer = IntLayer(weight=[[127]], bias=[bias], theta=1, readout=True)
    want = 127 * 15 + abs(bias)  # exact, in Python integers
    assert accumulator_bound(layer, 4) == want
    assert required_accumulator_bits(layer, 4) == want.bit_length() + 1 > 32
    net = IntNetwork((layer,), 4)
    with pytest.raises(DoesNotFitError, match="membrane values"):
        build_image(net, SMALL)
    net.save(tmp_path / "edge.npz")
    out = tmp_path / "o.spkimg"
    code, _, err = run_main(["compile", tmp_path / "edge.npz", "--board", "small", "-o", out],
                            capsys)
    assert_one_line_error(code, err, "does not fit", "bits")
    assert not out.exists()


def test_the_golden_model_never_wraps_int64():
    net = IntNetwork((IntLayer(weight=[[127]], bias=[2**63 - 100], theta=1, readout=True),), 4)
    with pytest.raises(AccumulatorOverflowError, match="64-bit integers"):
        run_network(net, [[15]], acc_bits=None)
    # just inside: computed exactly
    ok = IntNetwork((IntLayer(weight=[[127]], bias=[2**62 - 1 - 127 * 15], theta=1,
                              readout=True),), 4)
    assert run_network(ok, [[15]], acc_bits=None).output.tolist() == [[2**62 - 1]]


@pytest.mark.parametrize("bias,error", [([1e30], ValueError), ([-1e30], ValueError),
                                        ([2.0**63], ValueError), ([math.nan], TypeError),
                                        ([math.inf], TypeError), ([0.5], TypeError)])
def test_intlayer_refuses_values_a_cast_would_change(bias, error):
    with pytest.raises(error, match="bias"):
        IntLayer(weight=[[1]], bias=bias, theta=1)


def test_intlayer_keeps_exact_int64_edges():
    layer = IntLayer(weight=[[1]], bias=[-(2.0**63)], theta=1)
    assert int(layer.bias[0]) == -(2**63)
    with pytest.raises(ValueError, match="theta"):
        IntLayer(weight=[[1]], bias=[0], theta=2**62)


def test_end_to_end_a_nan_bias_stops_at_quantize(tmp_path, capsys):
    """The issue's chain: NaN bias -> quantize (file written) -> compile "fits" -> deploy."""
    save_model(_spikepack_model(BAD_FLOAT_MODELS["nan bias"][0]), tmp_path / "m.pt")
    code, _, err = run_main(["quantize", "--model", tmp_path / "m.pt", "--out",
                             tmp_path / "q.npz"], capsys)
    assert_one_line_error(code, err, "NaN")
    code, _, err = run_main(["compile", tmp_path / "q.npz", "--board", "small", "-o",
                             tmp_path / "q.spkimg"], capsys)
    assert_one_line_error(code, err, "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


@pytest.mark.parametrize("where", ["missing directory", "a directory"])
def test_compile_to_an_unwritable_output(where, tmp_path, rng, capsys):
    small_net(rng).save(tmp_path / "net.npz")
    out = tmp_path / "nowhere" / "o.spkimg" if where == "missing directory" else tmp_path
    code, _, err = run_main(["compile", tmp_path / "net.npz", "--board", "small", "-o", out],
                            capsys)
    assert_one_line_error(code, err, "cannot write", "does not exist" if where ==
                          "missing directory" else "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]


def test_report_of_a_json_file_that_is_not_from_train(tmp_path, capsys):
    (tmp_path / "t.json").write_text('{"dataset": "digits"}')
    code, _, err = run_main(["report", "--out-dir", tmp_path / "plots", "--train-json",
                             tmp_path / "t.json"], capsys)
    assert_one_line_error(code, err, "t.json is not a `spikepack train --json` file")


def test_saved_files_get_the_usual_permissions(tmp_path, rng):
    small_net(rng).save(tmp_path / "n.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "n.npz").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("how", ["empty", "random"])
def test_import_nir_of_a_damaged_graph_file(how, tmp_path, rng, capsys):
    (tmp_path / "g.nir").write_bytes(damaged(b"\x89HDF" + bytes(400), how, rng))
    out = tmp_path / "n.npz"
    code, _, err = run_main(["import-nir", tmp_path / "g.nir", "--T", "4", "--out", out], capsys)
    assert_one_line_error(code, err, "g.nir is not a readable NIR graph file", "nir.write")
    assert not out.exists()


@pytest.mark.parametrize("edit,needle", [
    (lambda a: a[0].weight.__setitem__((1, 2), math.nan), "CIF layer 0: weight holds 1 NaN"),
    (lambda a: a[2].bias.__setitem__(0, math.inf), "CIF layer 1: bias"),
    (lambda a: a[1].lam.fill_(-0.5), "lam = -0.5 is not a positive number"),
])
def test_casc_conversion_refuses_a_broken_ann(edit, needle):
    from sw.train.casc import CIFNetwork, casc_ann

    torch.manual_seed(0)
    ann = casc_ann([6, 5, 3], L=4)
    with torch.no_grad():
        edit(ann)
    with pytest.raises(ValueError, match=needle):
        CIFNetwork.from_ann(ann)


def test_a_flipped_weight_bit_in_a_model_file_is_caught(tmp_path):
    """torch's zip reader checks no CRC: the saved SHA-256 does."""
    model = _spikepack_model(lambda m: None)
    save_model(model, tmp_path / "m.pt")
    data = bytearray((tmp_path / "m.pt").read_bytes())
    pos = bytes(data).find(model[1].weight.detach().numpy().tobytes()[:32])
    assert pos > 0
    data[pos + 5] ^= 0x10
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"bad\.pt is damaged: .*checksum"):
        load_model(tmp_path / "bad.pt")
    # a file from before the checksum still loads
    torch.save({"kind": "spikepack", "sizes": [64, 12, 10], "T": 4,
                "state_dict": model.state_dict()}, tmp_path / "old.pt")
    loaded, meta = load_model(tmp_path / "old.pt")
    assert meta == {"kind": "spikepack", "sizes": [64, 12, 10], "T": 4}
    assert torch.equal(loaded[1].weight, model[1].weight)
