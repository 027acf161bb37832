"""End to end through the commands a user types: train on digits -> compile -> deploy to the
accelerator's RTL (Verilator, the driver over the simulated UART) -> infer, and the device's
accuracy must equal the golden model's, bit for bit. A NIR graph written by snnTorch takes the
same way and must give snnTorch's own outputs.

The RTL runs the SMALL build at the fast simulated baud of ``sim.rtl.session.SIM_LINK``; the
Verilator model is built once under build/ (about a minute) and shared by these tests, which run
in one xdist group.
"""

import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from boards import SMALL
from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sim.golden.packing import pack_bitplanes
from sim.rtl.runner import simulator_available
from sw.compile.image_file import load_image_file
from sw.compile.program_image import build_image
from sw.train.data import load_digits_split

pytestmark = [
    pytest.mark.xdist_group("rtl_session_small"),
    pytest.mark.skipif(not simulator_available("verilator"),
                       reason="verilator is not on PATH (bash scripts/setup.sh)"),
]
pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")


def spikepack(*args, timeout=900):
    """``spikepack ARGS`` as a user runs it; returns stdout, fails the test on a non-zero exit."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "sw.cli", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    print(f"$ spikepack {' '.join(map(str, args))}   ({time.monotonic() - t0:.1f} s)")
    print(r.stdout)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    return r.stdout


def figure(pattern, text):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return m.groups()


def digits_flow(tmp_path, seed, n, train_args):
    net_path, image_path = tmp_path / "net.npz", tmp_path / "net.spkimg"
    spikepack("train", "--dataset", "digits", "--T", 4, *train_args, "--seed", seed, "--quiet",
              "--out", net_path)
    out = spikepack("compile", net_path, "--board", "small", "-o", image_path)
    assert "fits; wrote" in out
    net = IntNetwork.load(net_path)
    assert load_image_file(image_path).image == build_image(net, SMALL)

    split = load_digits_split(seed)
    _, x = split.packed(4)
    golden = 100 * np.mean(run_network(net, x[:n]).predictions() == split.y_test[:n])
    out = spikepack("simulate", net_path, "--data", "digits", "--seed", seed, "--limit", n)
    (printed,) = figure(r"golden model \(packed form\): accuracy ([\d.]+)%", out)
    assert float(printed) == pytest.approx(golden, abs=0.005)

    out = spikepack("deploy", image_path, "--sim", "--quiet")
    (words,) = figure(r"uploaded (\d+) words", out)
    assert int(words) == sum(len(w.words) for w in build_image(net, SMALL).writes)
    assert "program memory read back and verified" in out

    out = spikepack("infer", image_path, "--sim", "--data", "digits", "--seed", seed,
                    "--limit", n, "--quiet", "--out", tmp_path / "rtl.npz")
    device, gold = figure(r"accuracy: device ([\d.]+)%, golden model ([\d.]+)%", out)
    assert float(device) == float(gold) == pytest.approx(golden, abs=0.005)
    assert f"bit-exact: all {n} outputs" in out
    with np.load(tmp_path / "rtl.npz") as f:
        assert np.array_equal(f["outputs"], run_network(net, x[:n]).output)
        assert f["spikes"].sum() == run_network(net, x[:n]).spikes_per_layer.sum()
    print(f"seed {seed}: {n} digits, accuracy on the RTL {device}% == golden {gold}%")
    return float(device)


def test_digits_from_training_to_the_simulated_board(tmp_path, seed):
    accuracy = digits_flow(tmp_path, seed, 40, ["--hidden", 32, "--epochs", 20])
    assert accuracy > 75  # a trained network, not noise (typically ~95% on 40 digits)


def test_block_order_through_the_commands(tmp_path, seed):
    """``compile --order-on digits`` stores the layers' inputs in block order (planned on the
    training split); ``simulate --rtl`` on the image is bit-exact: outputs, spike counters, and
    skip counters of the network as the device stores it."""
    net_path, image_path = tmp_path / "net.npz", tmp_path / "o.spkimg"
    spikepack("train", "--dataset", "digits", "--T", 4, "--hidden", 32, "--epochs", 5, "--seed",
              seed, "--quiet", "--out", net_path)
    out = spikepack("compile", net_path, "--board", "small", "--order-on", "digits", "-o",
                    image_path)
    (before, after) = figure(r"beats per pass on them layer 0 ([\d.]+) -> ([\d.]+)", out)
    assert float(after) <= float(before)
    image = load_image_file(image_path).image
    assert image.block_order is not None and image.block_order.orders[0] is not None
    out = spikepack("simulate", image_path, "--rtl", "--data", "digits", "--seed", seed,
                    "--limit", 24, "--quiet")
    assert "bit-exact: all 24 outputs" in out


@pytest.mark.slow
def test_digits_full_test_split_on_the_simulated_board(tmp_path, seed):
    accuracy = digits_flow(tmp_path, seed, 360, ["--hidden", 128, 64, "--epochs", 60])
    assert accuracy > 85


def test_snntorch_graph_runs_on_the_simulated_board_as_in_snntorch(tmp_path, rng):
    import torch

    snn = pytest.importorskip("snntorch")
    import nir
    from snntorch.export_nir import export_to_nir

    T, n_in, n = 6, 24, 12

    def grid_linear(a, b):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(rng.integers(-40, 41, (b, a)) / 8.0))
            lin.bias.copy_(torch.tensor(rng.integers(-8, 9, b) / 8.0))
        return lin

    def if_neurons(k, threshold):
        return snn.Leaky(beta=torch.ones(k), threshold=torch.full((k,), threshold),
                         init_hidden=True, reset_mechanism="zero", reset_delay=False)

    model = torch.nn.Sequential(grid_linear(n_in, 16), if_neurons(16, 1.5),
                                grid_linear(16, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(str(tmp_path / "g.nir"), export_to_nir(model, torch.zeros(n_in)))

    spikes = (rng.random((T, n, n_in)) < 0.4).astype(np.int64)
    np.savez(tmp_path / "in.npz", x=pack_bitplanes(spikes))
    # snnTorch's own forward pass, step by step: the readout summed over the T steps
    for m in model:
        if isinstance(m, snn.Leaky):
            m.reset_mem()
    theirs = np.zeros((n, 5))
    with torch.no_grad():
        for t in range(T):
            theirs += model(torch.tensor(spikes[t], dtype=torch.float32)).numpy()

    out = spikepack("import-nir", tmp_path / "g.nir", "--T", T, "--reset", "zero",
                    "--out", tmp_path / "g.npz")
    assert "exact mapping" in out
    spikepack("compile", tmp_path / "g.npz", "--board", "small", "-o", tmp_path / "g.spkimg")
    out = spikepack("simulate", tmp_path / "g.spkimg", "--rtl", "--data", tmp_path / "in.npz",
                    "--quiet", "--out", tmp_path / "rtl.npz", "--plots", tmp_path / "plots")
    assert f"bit-exact: all {n} outputs" in out
    with np.load(tmp_path / "rtl.npz") as f:
        device = f["outputs"]
    w_int = IntNetwork.load(tmp_path / "g.npz").layers[-1].weight
    w = model[2].weight.detach().numpy()
    scale = (w[w_int != 0] / w_int[w_int != 0])[0]
    assert np.array_equal(device * scale, theirs)
    for name in ("sparsity.png", "raster.png", "cycles.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_port_commands_on_a_virtual_board(tmp_path, seed):
    """--port through pyserial's socket:// to the RTL served by `spikepack serve-sim`: compile
    from the identify reply, deploy, then infer on the model the board keeps (--no-upload)."""
    net_path, image_path = tmp_path / "net.npz", tmp_path / "dev.spkimg"
    spikepack("train", "--T", 4, "--hidden", 16, "--epochs", 5, "--seed", seed, "--quiet",
              "--out", net_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "sw.cli", "serve-sim", "--board", "small", "--tcp", "0",
         "--clients", "3", "--idle-exit", "300"], stdout=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stdout:
            print(line, end="")
            if m := re.search(r"listening on (socket://127\.0\.0\.1:\d+)", line):
                url = m.group(1)
                break
        assert url, "serve-sim stopped before listening"
        out = spikepack("compile", net_path, "--port", url, "--timeout", 10, "-o", image_path)
        assert f"target device {url}" in out
        assert load_image_file(image_path).image == build_image(IntNetwork.load(net_path), SMALL)
        out = spikepack("deploy", image_path, "--port", url, "--timeout", 10, "--quiet")
        assert "program memory read back and verified" in out and "0 resends" in out
        out = spikepack("infer", image_path, "--port", url, "--timeout", 10, "--no-upload",
                        "--data", "digits", "--seed", seed, "--limit", 8)
        assert "bit-exact: all 8 outputs" in out
        device, gold = figure(r"accuracy: device ([\d.]+)%, golden model ([\d.]+)%", out)
        assert device == gold
        assert server.wait(timeout=120) == 0  # three clients served: the board stops
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
