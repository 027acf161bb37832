import subprocess
import sys

import pytest

from sw.cli.main import command_names, main


def run(*args):
    return subprocess.run([sys.executable, "-m", "sw.cli", *args], capture_output=True, text=True,
                          timeout=600)


def test_top_level_help_lists_every_command():
    r = run("--help")
    assert r.returncode == 0
    for name in command_names():
        assert name in r.stdout


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(name):
    r = run(name, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: spikepack " + name in r.stdout


@pytest.mark.parametrize("argv,needle", [
    (["train", "--T", "0"], "--T must be in 1..16"),
    (["train", "--dataset", "cifar"], "invalid choice"),
    (["train", "--dataset", "mnist"], "--data-dir"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["bogus"], "invalid choice"),
])
def test_wrong_arguments_give_one_line_and_nonzero_exit(argv, needle, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1, err


def test_train_prints_every_level(tmp_path):
    out = tmp_path / "net.npz"
    r = run("train", "--dataset", "digits", "--T", "2", "--epochs", "3", "--hidden", "16",
            "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    for needle in ("ANN (ReLU", "SpikePack direct", "converted_relu", "converted_clipfloor",
                   "int torch == golden", "360/360", "acc bits"):
        assert needle in r.stdout
    assert out.exists()


def test_model_workflow_through_the_cli(tmp_path):
    """train -> convert -> quantize -> eval -> report, as a user would type them."""
    d = tmp_path
    r = run("train", "--T", "2", "4", "--epochs", "3", "--hidden", "16", "--quiet",
            "--save-dir", str(d), "--json", str(d / "r.json"))
    assert r.returncode == 0, r.stderr
    assert {"ann.pt", "spikepack_T2.pt", "spikepack_T4.pt", "net_T4.npz"} <= {
        p.name for p in d.iterdir()}
    r = run("convert", "--ann", str(d / "ann.pt"), "--T", "4", "--out", str(d / "conv.pt"))
    assert r.returncode == 0 and "SpikePack T=4" in r.stdout, r.stderr
    r = run("quantize", "--model", str(d / "conv.pt"), "--out", str(d / "conv.npz"))
    assert r.returncode == 0 and "integer (golden)" in r.stdout, r.stderr
    r = run("eval", str(d / "conv.npz"))
    assert r.returncode == 0 and "accuracy" in r.stdout and "spikes/sample" in r.stdout, r.stderr
    r = run("report", "--out-dir", str(d / "plots"), "--train-json", str(d / "r.json"),
            "--net", str(d / "net_T4.npz"), "--model", str(d / "spikepack_T4.pt"))
    assert r.returncode == 0, r.stderr
    for name in ("accuracy_vs_T.png", "sparsity.png", "raster.png", "quantization_error.png"):
        png = d / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # wrong kinds of files give one-line errors
    r = run("quantize", "--model", str(d / "ann.pt"), "--out", str(d / "x.npz"))
    assert r.returncode == 2 and "convert" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("convert", "--ann", str(d / "net_T4.npz"), "--out", str(d / "x.pt"))
    assert r.returncode == 2 and "not a spikepack model file" in r.stderr


def test_import_nir_through_the_cli(tmp_path):
    import nir
    import numpy as np

    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([4])),
        nir.Linear(weight=np.array([[1, 2, -1, 0], [0, 1, 1, 1]], np.float32)),
        nir.IF(r=np.ones(2, np.float32), v_threshold=np.full(2, 1.0, np.float32)),
        nir.Output(output_type=np.array([2])),
    )
    nir.write(str(tmp_path / "g.nir"), graph)
    r = run("import-nir", str(tmp_path / "g.nir"), "--T", "4", "--dt", "1", "--reset", "zero",
            "--out", str(tmp_path / "g.npz"))
    assert r.returncode == 0 and "exact mapping" in r.stdout, r.stderr
    r = run("import-nir", str(tmp_path / "g.nir"), "--T", "4", "--reset", "zero",
            "--out", str(tmp_path / "g.npz"))  # an IF integrates dt r I: dt is asked for
    assert r.returncode == 2 and "pass --dt" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run("import-nir", str(tmp_path / "missing.nir"), "--T", "4", "--out", "x.npz")
    assert r.returncode == 2 and "does not exist" in r.stderr
