import subprocess
import sys

import pytest

from sw.cli import COMMANDS, main


def run(*args):
    return subprocess.run([sys.executable, "-m", "sw.cli", *args], capture_output=True, text=True,
                          timeout=600)


def test_top_level_help_lists_every_command():
    r = run("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
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
