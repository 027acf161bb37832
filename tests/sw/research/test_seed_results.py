"""`spikepack results`: registered, validates its arguments, writes the document and plots."""

import re

import pytest

from sw.cli.main import build_parser, main
from sw.research.cnn_results import CnnResultsConfig
from sw.research.results import ResultsConfig, keep_bench_sections

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    with pytest.raises(ValueError, match="rtl_samples must be at least 0"):
        ResultsConfig(rtl_samples=-1)
    assert main(["results", "--rtl-board", "nosuchboard", "--quiet"]) == 2
    assert main(["results", "--cnn-T", "17", "--quiet"]) == 2
    with pytest.raises(ValueError, match="CNN epochs must be at least 1"):
        CnnResultsConfig(epochs=0)
    assert main(["results", "--cnn", "only", "--cnn-epochs", "0", "--quiet"]) == 2
    assert "unknown board or build preset 'nosuchboard'" in capsys.readouterr().err
    assert main(["results", "--T", "16", "--quiet"]) == 2  # the small build's t_max is 8
    assert "no T of [16] runs on small" in capsys.readouterr().err
    assert ResultsConfig(Ts=(2, 16)).rtl_T == 2 and ResultsConfig().rtl_T == 4


def test_results_writes_every_section_and_plot(tmp_path):
    out = tmp_path / "doc" / "results.md"
    out.parent.mkdir()
    # A document the run rewrites: its bench-measured section stays, the rest is regenerated.
    out.write_text("# old\n\n## Bit Budget\n\nOBSOLETE-42\n\n## MNIST CNN on the RTL\n\n"
                   "pasted bench figures 47,209\n")
    rc = main(["results", "--out", str(out), "--img-dir", str(tmp_path / "img"), "--T", "2",
               "--timing-T", "1", "2", "--epochs", "1", "--hidden", "16", "--sweep-T", "2",
               "--sweep-weight-bits", "4", "8", "--timing-epochs", "1", "--budget", "8",
               "--rtl-samples", "0", "--cnn-quick", "--quiet"])
    assert rc == 0
    text = out.read_text()
    for heading in ("## SpikePack", "## PSU, IPSU, RPSU", "### Deploy gap", "## CASC",
                    "## Training time per epoch", "## Firing rates", "## Bit Budget",
                    "## On the accelerator RTL", "## CNN: the seeds with conv layers on digits",
                    "### Accuracy against T", "### Integer checks"):
        assert heading in text
    cnn = text.split("## CNN: the seeds")[1]
    assert "300 train / 100 test images 1x8x8" in cnn
    # every integer network: the integer torch model == the golden model on all 100 images
    checks = next(line for line in cnn.split("### Integer checks")[1].splitlines()
                  if line.startswith("| 2 | "))
    assert checks.count("100/100") == 5, checks
    # the sweep: b_w, b_a, T per model (an ANN reads T-bit words in one step)
    assert "| LIF (BPTT) | 4 | 1 | 2 |" in cnn and "| ANN (ClipFloor, b_a = T) | 8 | 2 | 1 |" in cnn
    assert "Not run in this run (`--rtl-samples 0`)" in text
    for png in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        path = out.parent / png
        assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"
    assert "| 2 |" in text and "Horowitz" in text
    assert text.endswith("## MNIST CNN on the RTL\n\npasted bench figures 47,209\n")
    assert "OBSOLETE-42" not in text and text.count("\n## Bit Budget\n") == 1


def test_keep_bench_sections():
    old = "# R\n\n## A\n\na\n\n## MNIST CNN on the RTL\n\nbench 1\n\n## B\n\nb\n"
    new = "# R\n\n## A\n\nnew a\n"
    assert keep_bench_sections(old, new) == new + "\n## MNIST CNN on the RTL\n\nbench 1\n"
    assert keep_bench_sections("", new) == new  # a first run
    both = new + "\n## MNIST CNN on the RTL\n\nbench 2\n"
    assert keep_bench_sections(old, both) == both  # a run that writes the section wins


@pytest.mark.slow
@pytest.mark.xdist_group("rtl_session_small")
def test_results_rtl_section_reports_the_devices_counters(tmp_path):
    from sim.rtl.runner import simulator_available

    if not simulator_available("verilator"):
        pytest.skip("verilator is not on PATH (bash scripts/setup.sh)")
    pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")
    out = tmp_path / "results.md"
    rc = main(["results", "--out", str(out), "--T", "4", "--timing-T", "1", "--epochs", "2",
               "--hidden", "24", "--sweep-T", "4", "--sweep-weight-bits", "8",
               "--timing-epochs", "1", "--budget", "32", "--rtl-samples", "5", "--quiet"])
    assert rc == 0
    text = out.read_text().split("## On the accelerator RTL")[1]
    print(text)
    for name in ("SpikePack direct", "LIF BPTT -> LIF", "PSU -> LIF"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert "| yes (5/5 outputs, 2/2 runs) |" in row
        assert f"\n{name}:\n" in text
    assert "cycles RTL" in text and "spikes RTL" in text and "lif k=1" in text
