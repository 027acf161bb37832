"""Training and deployment runs for the time-major seeds (LIF by BPTT, PSU, IPSU, RPSU).

:func:`train_spiking` trains one model on packed inputs and measures it on the test split;
:func:`deploy_spiking` quantizes a LIF- or PSU-trained model to integer LIF-mode layers
(``sw.compile.quantize_lif``), runs it in the golden model and measures three levels side by side:

- ``float``: the model with its training semantics (PSU: sigmoid reset estimate),
- ``float_deployed``: the same float weights with the deployed semantics (PSU: real-spike reset),
- ``int``: the integer network run by ``sim.golden.model.run_network`` (shift leak, rounding).

Every figure is measured on the test split; nothing is assumed equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sw.compile.quantize import QuantReport
from sw.compile.quantize_lif import quantize_lif
from sw.train.data import Split
from sw.train.spiking_mlp import forward_deployed, layer_spikes, spiking_mlp
from sw.train.train import History, accuracy, as_tensor, predict, seed_everything, train_classifier


@dataclasses.dataclass
class SpikingRun:
    """One trained time-major model.

    Members
    -------
    neuron : str
        ``"lif"``, ``"if"``, ``"psu"``, ``"ipsu"`` or ``"rpsu"``.
    T : int
        Time steps.
    model : torch.nn.Sequential
        The trained float model.
    accuracy : float
        Test accuracy with the training semantics.
    history : History
        Loss, train accuracy and seconds per epoch.
    firing_rates : list of float
        Per hidden layer: mean spikes per neuron per time step on the test split.
    """

    neuron: str
    T: int
    model: torch.nn.Sequential
    accuracy: float
    history: History
    firing_rates: list[float]

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.history.seconds))


@dataclasses.dataclass
class DeployRun:
    """A LIF- or PSU-trained model deployed to integer LIF-mode layers.

    Members
    -------
    float_accuracy, float_deployed_accuracy, int_accuracy : float
        Test accuracy at the three levels (see the module docstring).
    agreement : float
        Fraction of test samples where the integer and the float-deployed predictions agree.
    net : IntNetwork
        The integer network.
    report : QuantReport
        Rounding per layer.
    int_firing_rates : list of float
        Per firing layer of the integer network: spikes per neuron per step on the test split.
    """

    float_accuracy: float
    float_deployed_accuracy: float
    int_accuracy: float
    agreement: float
    net: IntNetwork
    report: QuantReport
    int_firing_rates: list[float]

    @property
    def gap(self) -> float:
        """``int - float`` accuracy (training semantics to deployed integer), in [−1, 1]."""
        return self.int_accuracy - self.float_accuracy


def train_spiking(split: Split, T: int, neuron: str, *, hidden: Sequence[int] = (128,),
                  epochs: int = 15, seed: int = 0, lr: float = 3e-3, tau: float = 2.0,
                  reset: str = "subtract", progress=None) -> SpikingRun:
    """Train a time-major spiking MLP with ``neuron`` on packed ``T``-bit inputs."""
    x_tr, x_te = split.packed(T)
    sizes = (split.n_features, *hidden, split.n_classes)
    seed_everything(seed)
    model = spiking_mlp(sizes, T, neuron, tau=tau, reset=reset)
    hist = train_classifier(model, x_tr, split.y_train, epochs=epochs, lr=lr, seed=seed,
                            progress=progress)
    acc = accuracy(predict(model, x_te), split.y_test)
    rates = [float(s.mean()) for s in layer_spikes(model, as_tensor(x_te))]
    return SpikingRun(neuron, T, model, acc, hist, rates)


def deploy_spiking(run: SpikingRun, split: Split, *, weight_bits: int = 8) -> DeployRun:
    """Quantize ``run.model`` to LIF mode and measure float, float-deployed and integer levels."""
    _, x_te = split.packed(run.T)
    net, report = quantize_lif(run.model, weight_bits=weight_bits)
    golden = run_network(net, x_te)
    int_pred = golden.predictions()
    dep_pred = forward_deployed(run.model, as_tensor(x_te)).argmax(-1).numpy()
    rates = [float(r.spikes.mean()) / (layer.n_out * run.T)
             for r, layer in zip(golden.layers, net.layers, strict=True) if not layer.readout]
    return DeployRun(
        float_accuracy=run.accuracy,
        float_deployed_accuracy=accuracy(dep_pred, split.y_test),
        int_accuracy=accuracy(int_pred, split.y_test),
        agreement=float(np.mean(dep_pred == int_pred)),
        net=net, report=report, int_firing_rates=rates,
    )


def _timing_model(split: Split, T: int, neuron: str, hidden: Sequence[int], seed: int):
    from sw.train.models import calibrate_thresholds, spikepack_mlp

    x_tr, _ = split.packed(T)
    sizes = (split.n_features, *hidden, split.n_classes)
    seed_everything(seed)
    if neuron == "spikepack":
        model = spikepack_mlp(sizes, T)
        calibrate_thresholds(model, as_tensor(x_tr))
    else:
        model = spiking_mlp(sizes, T, neuron)
    return model, x_tr


def time_epochs_side_by_side(split: Split, T: int, neurons: Sequence[str], *,
                             hidden: Sequence[int] = (128,), epochs: int = 3,
                             seed: int = 0) -> dict[str, float]:
    """Seconds per training epoch of each model in ``neurons`` (a spiking MLP neuron kind or
    ``"spikepack"``), same data, sizes, batch size and optimizer.

    After one warm-up epoch each, the models train one epoch in turn, ``epochs`` rounds, so
    load from other jobs hits them alike; each figure is the *minimum* over the rounds (the
    least disturbed epoch), the usual estimator on a shared machine.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    setups = {n: _timing_model(split, T, n, hidden, seed) for n in neurons}
    for model, x_tr in setups.values():
        train_classifier(model, x_tr, split.y_train, epochs=1, seed=seed)  # warm-up
    best = {n: float("inf") for n in neurons}
    for r in range(epochs):
        for n, (model, x_tr) in setups.items():
            hist = train_classifier(model, x_tr, split.y_train, epochs=1, seed=seed + 1 + r)
            best[n] = min(best[n], hist.seconds[0])
    return best


def time_epochs(split: Split, T: int, neuron: str, *, hidden: Sequence[int] = (128,),
                epochs: int = 3, seed: int = 0) -> float:
    """Seconds per training epoch of one model (see :func:`time_epochs_side_by_side`)."""
    return time_epochs_side_by_side(split, T, [neuron], hidden=hidden, epochs=epochs,
                                    seed=seed)[neuron]
