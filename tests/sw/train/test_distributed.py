"""Training on a device and data-parallel over processes (torch.distributed, gloo, loopback).

- ``--device``: auto/cpu resolve to the CPU here, CUDA when absent is one clear error, and
  ``device="cpu"`` trains bit for bit as before.
- Two ranks spawned with gloo on 127.0.0.1 train a small MLP with batches whose last one splits
  unevenly (4/3) or leaves a rank empty (1/0): the weights equal the single-process run's up to
  float rounding (the gradient arithmetic is exact, only the summation order differs); a
  SpikePack MLP trains with an empty rank too, its ranks bit-identical.
- ``torchrun --nproc-per-node 2 -m sw.cli train --distributed`` against ``train_all`` in this
  process, same seed and global batch: float weights within the documented tolerance, integer
  networks compared weight by weight within the documented bound (docs/cli.md).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# Light imports only: the spawned ranks import this module.
from sw.train.models import ann_mlp
from sw.train.train import resolve_device, train_classifier

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")

# Documented in docs/cli.md ("Training on several processes or machines"), measured with
# bench/bench_ddp.py: after 2 epochs (64-16-10, six seeds) the ReLU ANN's weights differ by at
# most 6e-8, at most 14 of 1,184 integer weights differ (by one step), accuracy by 0.56 points.
FLOAT_TOL_ANN = 1e-6        # max |w_ddp - w_single| of the ReLU ANN
INT_WEIGHTS_DIFFER = 0.03   # fraction of integer weights that may differ (by one step)
ACC_POINTS = 1.5            # golden test accuracy difference, percentage points


def _cli(argv, capsys):
    from sw.cli.main import main

    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip()


# --- device ------------------------------------------------------------------------------------


def test_device_auto_and_cpu():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")


@no_cuda
def test_device_cuda_absent_is_one_clear_error(capsys):
    with pytest.raises(ValueError, match="use --device cpu"):
        resolve_device("cuda")
    code, err = _cli(["train", "--device", "cuda", "--epochs", "1"], capsys)
    assert code == 2
    assert err.count("\n") == 0 and "'cuda' asked for" in err and "--device cpu" in err, err


def test_device_cpu_trains_exactly_as_before(rng, seed, one_torch_thread):
    """``device="cpu"`` (and ``"auto"`` here) gives the weights of the call without a device."""
    x = rng.normal(size=(50, 7)).astype(np.float32)
    y = rng.integers(0, 3, size=50)
    states = []
    for device in (None, "cpu", *(["auto"] if not torch.cuda.is_available() else [])):
        torch.manual_seed(seed)
        model = ann_mlp((7, 9, 3))
        hist = train_classifier(model, x, y, epochs=3, batch_size=16, seed=seed, device=device)
        assert next(model.parameters()).device.type == "cpu"
        states.append((model.state_dict(), hist.loss))
    for state, loss in states[1:]:
        assert loss == states[0][1]
        for k, v in state.items():
            assert torch.equal(v, states[0][0][k]), k


# --- launch errors -----------------------------------------------------------------------------


def test_distributed_without_torchrun_is_an_error(capsys, monkeypatch):
    for k in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(k, raising=False)
    code, err = _cli(["train", "--distributed", "--epochs", "1"], capsys)
    assert code == 2 and "torchrun --nproc-per-node" in err and err.count("\n") == 0, err


def test_torchrun_without_distributed_is_an_error(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, err = _cli(["train", "--epochs", "1"], capsys)
    assert code == 2 and "add --distributed" in err and err.count("\n") == 0, err


# --- two ranks, spawned ------------------------------------------------------------------------

# (model, samples, batch size): 37 = 3 x 10 + 7 splits the last batch 4/3; 37 = 3 x 12 + 1
# leaves rank 1 with no sample in it.
CASES = (("ann", 37, 10), ("ann", 37, 12), ("spikepack", 37, 12))


def _train_cases(seed, parallel=None):
    from sw.train.models import calibrate_thresholds, spikepack_mlp
    from sw.train.train import as_tensor

    rng = np.random.default_rng(seed)
    out = []
    for kind, n, batch in CASES:
        y = rng.integers(0, 3, size=n)
        torch.manual_seed(seed)
        if kind == "ann":
            x = rng.normal(size=(n, 6)).astype(np.float32)
            model = ann_mlp((6, 8, 3))
        else:
            x = rng.integers(0, 16, size=(n, 6))
            model = spikepack_mlp((6, 8, 3), 4)
            calibrate_thresholds(model, as_tensor(x))
        hist = train_classifier(model, x, y, epochs=3, batch_size=batch, seed=seed,
                                parallel=parallel)
        out.append({"state": model.state_dict(), "loss": hist.loss,
                    "acc": hist.train_accuracy})
    return out


def _rank(rank, world, port, seed, out_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    from sw.train.distributed import data_parallel

    with data_parallel("cpu") as dp:
        result = _train_cases(seed, dp)
    torch.save(result, f"{out_path}.{rank}")


def test_two_ranks_equal_one_process_up_to_rounding(tmp_path, seed, one_torch_thread):
    import torch.multiprocessing as mp

    from sw.research.parallel_check import free_loopback_port

    out = tmp_path / "ranks"
    mp.spawn(_rank, args=(2, free_loopback_port(), seed, str(out)), nprocs=2)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    single = _train_cases(seed)
    for case, (kind, n, batch) in enumerate(CASES):
        a, b, s = ranks[0][case], ranks[1][case], single[case]
        for k in s["state"]:
            # DDP keeps the ranks' weights identical, bit for bit ...
            assert torch.equal(a["state"][k], b["state"][k]), (kind, n, batch, k)
            diff = float((a["state"][k] - s["state"][k]).abs().max())
            print(f"{kind} {n}/{batch} {k}: max |w_ddp - w_single| = {diff:.2e}")
            # ... and, for the ANN, equal to one process's up to float summation order (a
            # SpikePack's floor can turn a rounding difference into a different gradient).
            assert kind != "ann" or diff <= 1e-6, (n, batch, k, diff)
        assert np.all(np.isfinite(a["loss"]))
        if kind == "ann":
            assert a["loss"] == pytest.approx(s["loss"], rel=1e-5)
            assert a["acc"] == b["acc"] == s["acc"]


# --- torchrun, the command line ----------------------------------------------------------------


def test_torchrun_train_matches_single_process(tmp_path, seed, one_torch_thread):
    """``torchrun --nproc-per-node 2 -m sw.cli train --distributed`` vs one process."""
    from sw.research.parallel_check import compare_with_single, run_distributed_train
    from sw.train.data import load_split

    seed %= 1000
    args = ["--T", 4, "--hidden", 16, "--epochs", 2, "--seed", seed]
    r = run_distributed_train(args, tmp_path, nproc=2)
    # rank 0 alone prints and writes
    assert r.stdout.count("data-parallel: 2 processes (gloo, cpu)") == 1, r.stdout
    assert r.stdout.count("T=4  sizes 64-16-10") == 1, r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pt", "net_T4.npz",
                                                         "spikepack_T4.pt"]
    c = compare_with_single(tmp_path, load_split("digits", seed=seed), 4, hidden=[16], epochs=2,
                            seed=seed)
    print(c.table())
    assert c.float_diff["ann"] <= FLOAT_TOL_ANN, c.table()
    d = c.int_diff
    assert d.max_weight_step <= 1 and d.weights_differ <= INT_WEIGHTS_DIFFER * d.n_weights, \
        c.table()
    assert abs(c.acc_ddp - c.acc_single) * 100 <= ACC_POINTS, c.table()
