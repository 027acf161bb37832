"""``compile``, ``simulate``, ``deploy``, ``infer`` as a user types them (no RTL here: see
tests/sw/cli/test_cli_e2e.py). What cannot run gets one line on stderr and exit status 2."""

import re

import numpy as np
import pytest
from cli_runner import run_cli

from boards import SMALL
from sim.golden.ir import IntLayer, IntNetwork
from sim.golden.model import run_network
from sw.compile.image_file import load_image_file
from sw.compile.program_image import build_image
from sw.train.data import load_digits_split


def call(argv, capsys):
    """Run the CLI in-process; ``(exit status, stdout, stderr stripped)``."""
    code, out, err = run_cli(argv, capsys)
    return code, out, err.strip()


def mlp(rng, sizes, T=4, w=40, theta=(200, 900)):
    layers = [IntLayer(weight=rng.integers(-w, w + 1, (b, a)), bias=rng.integers(-20, 21, b),
                       theta=rng.integers(*theta, b), readout=i == len(sizes) - 2)
              for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False))]
    return IntNetwork(tuple(layers), T)


@pytest.fixture
def nets(tmp_path, rng):
    """Network files a user could have: one that fits everywhere, and ones that cannot run."""
    files = {}
    for name, net in {
        "digits": mlp(rng, (64, 24, 10)),
        "wide": mlp(rng, (64, 1500, 10)),  # wider than any build's layers
        "t16": mlp(rng, (64, 8, 10), T=16),  # more time steps than t_max = 8
        # 512 inputs x 127 x (2^8 - 1) needs 25-bit membranes: over the 24-bit accumulators
        "overflow": IntNetwork((IntLayer(weight=np.full((4, 512), 127), bias=np.zeros(4),
                                         theta=1, readout=True),), 8),
        "eight_inputs": mlp(rng, (8, 4, 2)),
    }.items():
        files[name] = tmp_path / f"{name}.npz"
        net.save(files[name])
    return files


def test_compile_prints_the_layout_and_writes_an_image_that_loads(nets, tmp_path, capsys):
    out_path = tmp_path / "digits.spkimg"
    code, out, err = call(["compile", nets["digits"], "--board", "small", "-o", out_path], capsys)
    assert code == 0, err
    net = IntNetwork.load(nets["digits"])
    image = build_image(net, SMALL)
    assert load_image_file(out_path).image == image
    rows = sum(-(-la.n_in // SMALL.k) * -(-la.n_out // SMALL.n_pe) for la in net.layers)
    assert re.search(rf"weight memory\s+{rows} / {SMALL.weight_depth}\b", out), out
    assert re.search(r"time steps T\s+4 / 8\b", out)
    assert "64 -> 24" in out and "24 -> 10" in out and "readout" in out
    words = sum(len(w.words) for w in image.writes)
    assert f"fits; wrote {out_path} ({words} words" in out
    # the default target is the Arty A7 board
    code, out, _ = call(["compile", nets["digits"], "-o", tmp_path / "arty.spkimg"], capsys)
    assert code == 0 and "target board arty_a7" in out
    # an image recompiles for another build from the network it carries
    code, out, _ = call(["compile", out_path, "--board", "icebreaker", "-o",
                         tmp_path / "ice.spkimg"], capsys)
    assert code == 0 and "target board icebreaker" in out


@pytest.mark.parametrize("which,board,needle", [
    ("wide", "medium", "has 1500 outputs; the build's layers are at most 256"),
    ("t16", "small", "T = 16 time steps is more than the build's t_max = 8"),
    ("overflow", "arty_a7", "25-bit membrane values"),
    ("digits", "icebreaker_xl", "unknown board or build preset 'icebreaker_xl'"),
])
def test_compile_refuses_what_cannot_run(nets, tmp_path, capsys, which, board, needle):
    out_path = tmp_path / "x.spkimg"
    code, _, err = call(["compile", nets[which], "--board", board, "-o", out_path], capsys)
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1, err
    assert not out_path.exists()


def test_simulate_golden_prints_the_accuracy_of_the_golden_model(nets, capsys):
    net = IntNetwork.load(nets["digits"])
    split = load_digits_split(3)
    _, x = split.packed(4)
    want = 100 * np.mean(run_network(net, x[:50]).predictions() == split.y_test[:50])
    code, out, err = call(["simulate", nets["digits"], "--data", "digits", "--seed", 3,
                           "--limit", 50], capsys)
    assert code == 0, err
    assert f"golden model (packed form): accuracy {want:.2f}%" in out
    assert "digits test split, 50 samples" in out


def test_simulate_runs_packed_inputs_from_a_file(nets, tmp_path, capsys, rng):
    net = IntNetwork.load(nets["eight_inputs"])
    x = rng.integers(0, 16, (30, 8))
    np.savez(tmp_path / "in.npz", x=x)
    code, out, err = call(["simulate", nets["eight_inputs"], "--data", tmp_path / "in.npz",
                           "--show", 3], capsys)
    assert code == 0, err
    assert "accuracy n/a (no labels)" in out
    assert f"pred {run_network(net, x[:1]).predictions()[0]}" in out


@pytest.mark.parametrize("argv,needle", [
    (["compile", "{digits}"], "the following arguments are required: -o/--out"),
    (["compile", "{missing}", "-o", "x.spkimg"], "does not exist"),
    (["compile", "{digits}", "--board", "small", "--port", "loop://", "-o", "x"],
     "not allowed with argument"),
    (["simulate", "{digits}", "--board", "small"], "--board selects the build --rtl simulates"),
    (["simulate", "{digits}", "--limit", "0"], "--limit must be at least 1"),
    (["simulate", "{digits}", "--data", "cifar"], "--data must be a data set (digits, mnist-5k"),
    (["simulate", "{eight_inputs}"], "the network takes 8 packed inputs; the digits test split "
     "has 1x8x8 images (64 inputs each)"),
    (["simulate", "{digits}", "--data", "mnist"], "--data-dir"),
    (["deploy", "{digits}"], "one of the arguments --port --sim is required"),
    (["deploy", "{digits}", "--port", "/dev/ttyNOPE0"], "no board on /dev/ttyNOPE0"),
    (["deploy", "{digits}", "--port", "socket://127.0.0.1:1"], "Connection refused"),
    (["deploy", "{digits}", "--port", "loop://", "--timeout", "0.05"],
     "no SpikePack board answered on loop://"),
    (["infer", "{digits}", "--port", "loop://", "--timeout", "0.05"],
     "no SpikePack board answered on loop://"),
    (["compile", "{digits}", "--port", "loop://", "--timeout", "0.05", "-o", "x"],
     "no SpikePack board answered on loop://"),
    (["infer", "{digits}", "--sim", "--no-upload"], "--no-upload needs a board"),
    (["infer", "{t16}", "--sim"], "does not fit preset small"),
    (["infer", "{digits}", "--sim", "--board", "nope"], "unknown board or build preset"),
    (["deploy", "{digits}", "--sim", "--simulator", "ghdl"], "invalid choice: 'ghdl'"),
])
def test_wrong_arguments_give_one_line_and_nonzero_exit(argv, needle, nets, tmp_path, capsys):
    files = {**{k: str(v) for k, v in nets.items()}, "missing": str(tmp_path / "missing.npz")}
    code, _, err = call([a.format(**files) for a in argv], capsys)
    assert code == 2, err
    assert needle in err, err
    assert len(err.splitlines()) == 1, err


def test_an_image_for_another_build_is_refused_by_the_simulated_device(nets, tmp_path, capsys):
    image = tmp_path / "arty.spkimg"
    assert call(["compile", nets["digits"], "--board", "arty_a7", "-o", image], capsys)[0] == 0
    code, _, err = call(["infer", image, "--sim", "--board", "small"], capsys)
    assert code == 2 and "compiled for board arty_a7, not small" in err, err
