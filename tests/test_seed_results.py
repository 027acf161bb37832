"""`spikepack results`: registered, validates its arguments, writes the document and plots."""

import re

import pytest
import torch

from sw.cli import build_parser, main
from sw.results import ResultsConfig


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small MLPs train faster on one thread, and pytest -n 2 already fills both cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_results_command_is_registered():
    args = build_parser().parse_args(["results", "--T", "2", "4"])
    assert args.command == "results" and args.T == [2, 4] and args.epochs == 20


def test_bad_configuration_is_refused(capsys):
    with pytest.raises(ValueError, match="T must be in 1..16"):
        ResultsConfig(Ts=(0,))
    with pytest.raises(ValueError, match="weight bits"):
        ResultsConfig(sweep_weight_bits=(1,))
    with pytest.raises(ValueError, match="epochs"):
        ResultsConfig(epochs=0)
    assert main(["results", "--T", "17", "--quiet"]) == 2
    assert "T must be in 1..16" in capsys.readouterr().err


def test_results_writes_every_section_and_plot(tmp_path):
    out = tmp_path / "doc" / "results.md"
    rc = main(["results", "--out", str(out), "--img-dir", str(tmp_path / "img"), "--T", "2",
               "--timing-T", "1", "2", "--epochs", "1", "--hidden", "16", "--sweep-T", "2",
               "--sweep-weight-bits", "4", "8", "--timing-epochs", "1", "--budget", "8",
               "--quiet"])
    assert rc == 0
    text = out.read_text()
    for heading in ("## SpikePack", "## PSU, IPSU, RPSU", "### Deploy gap", "## CASC",
                    "## Training time per epoch", "## Firing rates", "## Bit Budget"):
        assert heading in text
    for png in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        path = out.parent / png
        assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"
    assert "| 2 |" in text and "Horowitz" in text
