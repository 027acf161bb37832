"""Data-parallel training checked against one process: the same seed and global batch, compared.

:func:`run_distributed_train` launches ``torchrun --nproc-per-node N -m sw.cli train
--distributed`` on loopback and returns the directory of its saved models;
:func:`compare_with_single` trains the same thing in this process and measures how far apart the
two are, in float weights and in the integer networks (weights, biases, thresholds, test
accuracy). ``tests/sw/train/test_distributed.py`` and ``bench/bench_ddp.py`` use both.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sw.research.experiment import train_all
from sw.train.data import Split
from sw.train.model_io import load_model
from sw.train.train import accuracy

ROOT = Path(__file__).resolve().parents[2]


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for torchrun's ``--master-port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_distributed_train(train_args: Sequence[str], save_dir, *, nproc: int = 2,
                          timeout_s: float = 600.0) -> subprocess.CompletedProcess:
    """Run ``spikepack train --distributed *train_args --save-dir save_dir`` under torchrun.

    ``nproc`` processes on this machine, rendezvous and gloo on 127.0.0.1 only, a free port;
    the package is the one this module belongs to. Raises ``RuntimeError`` with the output when
    the run fails.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           "--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={free_loopback_port()}",
           "-m", "sw.cli", "train", "--distributed", "--quiet", "--save-dir", str(save_dir),
           *map(str, train_args)]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode:
        raise RuntimeError(f"torchrun failed with status {r.returncode}: {' '.join(cmd)}\n"
                           f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
    return r


def max_weight_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """``max |a - b|`` over every parameter and buffer of two models of the same shape."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        raise ValueError(f"the models differ in shape: {sorted(sa)} vs {sorted(sb)}")
    return max((float((sa[k].double() - sb[k].double()).abs().max()) for k in sa
                if sa[k].numel()), default=0.0)


@dataclasses.dataclass
class IntDifference:
    """How two integer networks of the same shape differ.

    Members
    -------
    n_weights, weights_differ, max_weight_step
        Weights in all, how many differ, the largest difference (integer steps).
    biases_differ, thetas_differ
        Biases and thresholds that differ.
    """

    n_weights: int
    weights_differ: int
    max_weight_step: int
    biases_differ: int
    thetas_differ: int

    @property
    def equal(self) -> bool:
        return not (self.weights_differ or self.biases_differ or self.thetas_differ)


def int_difference(a: IntNetwork, b: IntNetwork) -> IntDifference:
    """Compare two integer networks layer by layer (their shapes must agree)."""
    if len(a.layers) != len(b.layers):
        raise ValueError(f"{len(a.layers)} layers vs {len(b.layers)}")
    n = wd = bd = td = 0
    step = 0
    for la, lb in zip(a.layers, b.layers, strict=True):
        if la.weight.shape != lb.weight.shape:
            raise ValueError(f"weight shapes differ: {la.weight.shape} vs {lb.weight.shape}")
        dw = np.abs(la.weight.astype(np.int64) - lb.weight.astype(np.int64))
        n += dw.size
        wd += int(np.count_nonzero(dw))
        step = max(step, int(dw.max(initial=0)))
        bd += int(np.count_nonzero(np.asarray(la.bias) != np.asarray(lb.bias)))
        td += int(np.count_nonzero(la.theta_vector != lb.theta_vector))
    return IntDifference(n, wd, step, bd, td)


@dataclasses.dataclass
class Comparison:
    """A data-parallel run against the single-process run of the same settings.

    Members
    -------
    float_diff : dict[str, float]
        ``max |w_ddp - w_single|`` per float model (``ann``, ``spikepack``).
    int_diff : IntDifference
        The directly trained integer networks compared.
    acc_single, acc_ddp : float
        Their test accuracy in the golden model.
    """

    float_diff: dict[str, float]
    int_diff: IntDifference
    acc_single: float
    acc_ddp: float

    def table(self) -> str:
        d = self.int_diff
        lines = [f"max |w_ddp - w_single| {name:10s} {v:.3e}" for name, v in
                 self.float_diff.items()]
        lines += [f"integer network: {d.weights_differ}/{d.n_weights} weights differ (max "
                  f"{d.max_weight_step} step), {d.biases_differ} biases, {d.thetas_differ} "
                  f"thresholds",
                  f"golden test accuracy: single {100 * self.acc_single:.2f} %, data-parallel "
                  f"{100 * self.acc_ddp:.2f} % (difference "
                  f"{100 * (self.acc_ddp - self.acc_single):+.2f} points)"]
        return "\n".join(lines)


def compare_with_single(save_dir, split: Split, T: int, *, hidden: Sequence[int], epochs: int,
                        seed: int = 0, weight_bits: int = 8) -> Comparison:
    """Train ``train_all`` here, in one process, and compare it with the saved run in
    ``save_dir`` (``ann.pt``, ``spikepack_T<T>.pt``, ``net_T<T>.npz`` of ``spikepack train``)."""
    d = Path(save_dir)
    single = train_all(split, T, hidden=hidden, epochs=epochs, seed=seed,
                       weight_bits=weight_bits, variants=("direct",))
    float_diff = {"ann": max_weight_difference(single.ann, load_model(d / "ann.pt")[0]),
                  "spikepack": max_weight_difference(single.levels["direct"].model,
                                                     load_model(d / f"spikepack_T{T}.pt")[0])}
    net_single = single.levels["direct"].net
    net_ddp = IntNetwork.load(d / f"net_T{T}.npz")
    _, x_test = split.packed(T)
    acc_ddp = accuracy(run_network(net_ddp, x_test).predictions(), split.y_test)
    return Comparison(float_diff, int_difference(net_single, net_ddp),
                      single.levels["direct"].int_accuracy, acc_ddp)
