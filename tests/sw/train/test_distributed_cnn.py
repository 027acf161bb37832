"""``spikepack train --model cnn`` honours ``--device`` and ``--distributed``.

Two ranks started by ``torchrun --nproc-per-node 2`` (gloo on loopback) train the CNN on the
digits with the same seed and global batch as one process running ``train_cnn_all`` here; the
float weights and the integer networks are compared with the bound docs/cli.md states.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim.golden.ir import IntNetwork
from sim.golden.model import run_network

# docs/cli.md ("Training on several processes or machines"): after one epoch of the digits CNN
# the data-parallel float weights differ from one process's by float summation order only.
FLOAT_TOL_CNN = 1e-4        # max |w_ddp - w_single| of the SpikePack CNN
INT_WEIGHTS_DIFFER = 0.01   # fraction of integer weights that may differ (by one step)
ACC_POINTS = 1.5            # golden test accuracy difference, percentage points


def test_cnn_device_cuda_absent_is_one_clear_error(capsys):
    from sw.cli.main import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["train", "--model", "cnn", "--device", "cuda", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device cpu" in err, err


def _tiny(seed):
    """A tiny CNN problem: 45 random 1x6x6 images (45 = 3 x 14 + 3: the last batch splits
    2/1), three classes."""
    from sw.train.conv_models import Conv, cnn

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(45, 1, 6, 6))
    y = rng.integers(0, 3, size=45)
    torch.manual_seed(seed)
    return cnn((1, 6, 6), [Conv(3, 3, padding=1, pool=2)], 3, 2), x, y


def _train_tiny(seed, parallel=None):
    from sw.compile.quantize_conv import quantize_cnn
    from sw.train.conv_models import calibrate_cnn_thresholds
    from sw.train.train import as_tensor, train_classifier

    model, x, y = _tiny(seed)
    calibrate_cnn_thresholds(model, as_tensor(x))
    train_classifier(model, x, y, epochs=2, batch_size=14, seed=seed, parallel=parallel)
    return model.state_dict(), quantize_cnn(model)[0]


def _rank(rank, world, port, seed, out_path):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    from sw.train.distributed import data_parallel

    with data_parallel("cpu") as dp:
        state, net = _train_tiny(seed, dp)
    torch.save(state, f"{out_path}.{rank}")
    net.save(f"{out_path}.{rank}.npz")


def test_two_ranks_cnn_equal_one_process(tmp_path, seed, one_torch_thread):
    """gloo, two spawned ranks, a tiny SpikePack CNN: the same integer network as one process
    (float weights equal up to summation order)."""
    import torch.multiprocessing as mp

    from sw.research.parallel_check import free_loopback_port, int_difference

    out = tmp_path / "ranks"
    mp.spawn(_rank, args=(2, free_loopback_port(), seed, str(out)), nprocs=2)
    single_state, single_net = _train_tiny(seed)
    states = [torch.load(f"{out}.{r}") for r in range(2)]
    for k, v in single_state.items():
        assert torch.equal(states[0][k], states[1][k]), k
        diff = float((states[0][k] - v).abs().max())
        print(f"{k}: max |w_ddp - w_single| = {diff:.2e}")
        assert diff <= FLOAT_TOL_CNN, k
    for r in range(2):
        d = int_difference(single_net, IntNetwork.load(f"{out}.{r}.npz"))
        print(f"rank {r}: {d}")
        assert d.max_weight_step <= 1 and d.weights_differ <= INT_WEIGHTS_DIFFER * d.n_weights


@pytest.mark.slow
def test_torchrun_cnn_matches_single_process(tmp_path, seed, one_torch_thread):
    from sw.research.cnn_experiment import train_cnn_all
    from sw.research.parallel_check import int_difference, run_distributed_train
    from sw.train.conv_models import cnn, mnist_cnn_blocks
    from sw.train.datasets import load_dataset

    seed %= 1000
    T = 2
    r = run_distributed_train(["--model", "cnn", "--dataset", "digits", "--T", T, "--epochs", 1,
                               "--seed", seed, "--device", "cpu"], tmp_path, nproc=2)
    assert r.stdout.count("data-parallel: 2 processes (gloo, cpu)") == 1, r.stdout
    assert r.stdout.count(f"T={T}  CNN") == 1, r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ann_state.pt", f"net_T{T}.npz", f"spikepack_T{T}_state.pt"]

    ds = load_dataset("digits", seed=seed)
    single = train_cnn_all(ds, T, mnist_cnn_blocks(), epochs=1, seed=seed, variants=("direct",),
                           train_ann=False, device="cpu").levels["direct"]
    ddp_model = cnn(ds.image_shape, mnist_cnn_blocks(), ds.n_classes, T)
    ddp_model.load_state_dict(torch.load(tmp_path / f"spikepack_T{T}_state.pt"))
    diff = max(float((a - b).abs().max()) for a, b in
               zip(single.model.state_dict().values(), ddp_model.state_dict().values(),
                   strict=True))
    net = IntNetwork.load(tmp_path / f"net_T{T}.npz")
    d = int_difference(single.net, net)
    _, x_te = ds.packed(T, flat=False)
    acc = float(np.mean(run_network(net, x_te).predictions() == ds.y_test))
    print(f"max |w_ddp - w_single| = {diff:.2e}; {d.weights_differ}/{d.n_weights} integer "
          f"weights differ (max {d.max_weight_step}), {d.biases_differ} biases, "
          f"{d.thetas_differ} thresholds; golden accuracy single {single.int_accuracy:.4f}, "
          f"ddp {acc:.4f}")
    assert diff <= FLOAT_TOL_CNN
    assert d.max_weight_step <= 1 and d.weights_differ <= INT_WEIGHTS_DIFFER * d.n_weights
    assert abs(acc - single.int_accuracy) * 100 <= ACC_POINTS
