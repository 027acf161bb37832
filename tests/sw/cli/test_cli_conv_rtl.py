"""Conv networks through every user path that reaches a device: ``simulate --rtl``, ``deploy
--sim`` and ``infer --sim`` (the host driver over the simulated UART pins of the accelerator's
RTL under Verilator, ``sim.rtl.session``), and ``compile``/``deploy``/``infer --port`` on a board
(the same driver over a serial transport: pyserial's ``socket://`` to the RTL that ``spikepack
serve-sim`` serves, as no board is here). Outputs and every run's spike and skip counters must
equal the golden model's, with the runs formed as the driver forms them, ``image.max_batch``
samples each (an 8x8 image is 64 of the SMALL build's 128 input blocks: 2 per run, not its
``batch_depth`` of 4).

The default tier runs a tiny random conv net on the SMALL build, whose Verilator model the RTL
tests share (xdist group ``rtl_session_small``; built once under build/, about a minute); the
slow tier runs the trained MNIST CNN on the Arty A7 build.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from conv_nets import tiny_cnn

from boards import BOARDS, SMALL
from sim.golden.model import run_network
from sim.rtl.runner import simulator_available
from sw.compile.image_file import load_image_file
from sw.compile.program_image import build_image
from sw.research.rtl_results import predicted_work
from sw.train.datasets import load_dataset

pytestmark = [
    pytest.mark.xdist_group("rtl_session_small"),
    pytest.mark.skipif(not simulator_available("verilator"),
                       reason="verilator is not on PATH (bash scripts/setup.sh)"),
]
pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")

#: The checkout these tests belong to: `python -m sw.cli` runs there, not an installed one.
ROOT = Path(__file__).resolve().parents[3]


def spikepack(argv, capsys):
    """``spikepack ARGV`` in this process; its stdout. Fails the test on a non-zero exit."""
    t0 = time.monotonic()
    code, out, err = run_cli([*argv, "--quiet"] if argv[0] != "compile" else argv, capsys)
    print(f"$ spikepack {' '.join(map(str, argv))}   ({time.monotonic() - t0:.1f} s)\n{out}")
    assert code == 0, f"exit {code}: {err[-2000:]}"
    return out


def check_runs(saved, net, x, image):
    """The device's outputs and per-run counters (an ``--out`` file) == the golden model's, the
    runs holding ``image.max_batch`` samples each."""
    golden = run_network(net, x.reshape(len(x), -1))
    _, skipped = predicted_work(net, x, image.params, golden)
    spikes, batch = golden.spikes_per_layer.T, image.max_batch
    with np.load(saved) as f:
        assert np.array_equal(f["outputs"], golden.output)
        assert len(f["spikes"]) == len(f["skipped"]) == -(-len(x) // batch)
        for r in range(len(f["spikes"])):
            assert np.array_equal(f["spikes"][r], spikes[r * batch:(r + 1) * batch].sum(axis=0))
            assert np.array_equal(f["skipped"][r], skipped[r * batch:(r + 1) * batch].sum(axis=0))
    return golden


def test_a_conv_net_on_the_simulated_device(tmp_path, rng, capsys):
    net_path, image_path = tmp_path / "cnn.npz", tmp_path / "cnn.spkimg"
    net = tiny_cnn(rng)
    net.save(net_path)
    out = spikepack(["compile", net_path, "--board", "small", "-o", image_path], capsys)
    image = build_image(net, SMALL)
    assert load_image_file(image_path).image == image and image.max_batch == 2
    assert "conv 1x8x8 -> 6x4x4" in out and "batch: 2 images per run" in out

    # simulate --rtl: the digits' 8x8 images, 7 of them: runs of 2, 2, 2, 1
    n = 7
    out = spikepack(["simulate", image_path, "--rtl", "--data", "digits", "--seed", 1,
                     "--limit", n, "--out", tmp_path / "sim.npz"], capsys)
    assert f"bit-exact: all {n} outputs and the spike and skip counters of all 4 runs" in out
    ds = load_dataset("digits", seed=1)
    _, x = ds.packed(net.T, flat=False)
    golden = check_runs(tmp_path / "sim.npz", net, x[:n], image)
    device, gold = re.search(r"accuracy: device ([\d.]+)%, golden model ([\d.]+)%", out).groups()
    assert float(device) == float(gold) == pytest.approx(
        100 * np.mean(golden.predictions() == ds.y_test[:n]), abs=0.005)
    assert re.search(r"^\s+0\s+conv 1x8x8 -> 6x4x4\s+\d+\.\d\s+"
                     f"{golden.layers[0].spikes.mean():.1f}", out, re.M), out

    # infer --sim: random images from a file as (n, C, H, W)
    n = 5
    maps = rng.integers(0, 16, (n, 1, 8, 8)) * (rng.random((n, 1, 8, 8)) < 0.5)
    np.savez(tmp_path / "in.npz", x=maps)
    out = spikepack(["infer", image_path, "--sim", "--data", tmp_path / "in.npz",
                     "--out", tmp_path / "infer.npz"], capsys)
    assert f"ran {n} samples in 3 batches" in out and f"bit-exact: all {n} outputs" in out
    check_runs(tmp_path / "infer.npz", net, maps, image)


def test_a_conv_net_on_a_board_over_its_serial_port(tmp_path, rng):
    """compile, deploy and infer --port through pyserial's socket:// to a virtual board (the RTL
    served by `spikepack serve-sim`, which keeps its memories between the commands)."""
    net_path, image_path = tmp_path / "cnn.npz", tmp_path / "dev.spkimg"
    net = tiny_cnn(rng)
    net.save(net_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "sw.cli", "serve-sim", "--board", "small", "--tcp", "0",
         "--clients", "3", "--idle-exit", "300"], stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def spikepack_port(*args):
        r = subprocess.run([sys.executable, "-m", "sw.cli", *map(str, args)],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
        print(f"$ spikepack {' '.join(map(str, args))}\n{r.stdout}")
        assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
        return r.stdout

    try:
        url = None
        for line in server.stdout:
            if m := re.search(r"listening on (socket://127\.0\.0\.1:\d+)", line):
                url = m.group(1)
                break
        assert url, "serve-sim stopped before listening"
        out = spikepack_port("compile", net_path, "--port", url, "--timeout", 10, "-o",
                             image_path)
        image = build_image(net, SMALL)
        assert load_image_file(image_path).image == image and "batch: 2 images per run" in out
        out = spikepack_port("deploy", image_path, "--port", url, "--timeout", 10, "--quiet")
        assert "program memory read back and verified" in out and "0 resends" in out
        n = 5
        x = rng.integers(0, 16, (n, 64)) * (rng.random((n, 64)) < 0.5)
        np.savez(tmp_path / "in.npz", x=x)
        out = spikepack_port("infer", image_path, "--port", url, "--timeout", 10, "--no-upload",
                             "--data", tmp_path / "in.npz", "--out", tmp_path / "port.npz")
        assert f"bit-exact: all {n} outputs and the spike and skip counters of all 3 runs" in out
        check_runs(tmp_path / "port.npz", net, x, image)
        assert server.wait(timeout=120) == 0  # three clients served: the board stops
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.slow
@pytest.mark.parametrize("board", ["arty_a7", "ulx3s"])
def test_the_mnist_cnn_on_the_simulated_board(tmp_path, capsys, board):
    """The trained MNIST CNN (sw.research.zoo; trained and cached the first time) through
    `deploy --sim --board B` (the network, compiled for what the device identifies as) and
    `infer --sim` of the image `compile --board B` wrote (its preset's timing-only fields, such
    as fetch_queue=16 and seq_prefetch=1, or the ULX3S's walk_replay and pe_control_copies, are
    not in the identify block and must not make the device refuse it): the folded 28x28 image
    is 896 of the 1,024 input blocks of either preset, one per run."""
    from sw.research.zoo import mnist_cnn_int_network

    net, x_test, y_test = mnist_cnn_int_network()
    net_path, image_path, n = tmp_path / "mnist_cnn.npz", tmp_path / "mnist_cnn.spkimg", 6
    net.save(net_path)
    image = build_image(net, BOARDS[board].params)
    assert image.max_batch == 1
    out = spikepack(["deploy", net_path, "--sim", "--board", board], capsys)
    assert f"uploaded {sum(len(w.words) for w in image.writes)} words" in out
    assert "program memory read back and verified" in out
    spikepack(["compile", net_path, "--board", board, "-o", image_path], capsys)
    assert load_image_file(image_path).image.params == BOARDS[board].params
    out = spikepack(["infer", image_path, "--sim", "--data", "mnist-5k",
                     "--limit", n, "--out", tmp_path / "device.npz"], capsys)
    assert f"ran {n} samples in {n} batches" in out
    assert f"bit-exact: all {n} outputs and the spike and skip counters of all {n} runs" in out
    golden = check_runs(tmp_path / "device.npz", net, x_test[:n], image)
    device, gold = re.search(r"accuracy: device ([\d.]+)%, golden model ([\d.]+)%", out).groups()
    assert float(device) == float(gold) == pytest.approx(
        100 * np.mean(golden.predictions() == y_test[:n]), abs=0.005)
    assert "conv 1x28x28 -> 16x14x14" in out
