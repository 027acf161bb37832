"""The seeds with conv layers: LIF by BPTT, PSU/IPSU/RPSU and CASC on image datasets.

The conv counterpart of :mod:`sw.research.seed_experiment` and ``sw.train.casc.run_casc``:

- :func:`train_spiking_cnn` trains a time-major spiking CNN (``sw.train.spiking_cnn``) on the
  packed images and measures it on the test split (:class:`~.seed_experiment.SpikingRun`);
- :func:`deploy_spiking_cnn` quantizes a LIF- or PSU-trained CNN to integer LIF-mode conv layers
  (``sw.compile.quantize_lif_conv``), runs the golden model and the integer torch model on every
  test image, and measures float, float-deployed and integer accuracy (:class:`ConvDeployRun`);
- :func:`run_casc_cnn` trains a ClipQuan_T CNN on the images in ``[0, 1]`` and converts it to CIF
  neurons with and without wake-sleep conversion (``sw.train.casc.CIFNetwork.from_cnn``).

CASC's conversion needs average pooling (:func:`avg_pool_blocks` swaps each fused max pooling
for an average pooling of the same size). Every figure is measured on the test split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from sim.golden.model import run_network
from sw.compile.int_torch import IntTorchConvNetwork
from sw.compile.quantize_lif_conv import quantize_lif_cnn
from sw.train.casc import CascRun, CIFNetwork
from sw.train.conv_models import AvgPool, Block, Conv, cnn
from sw.train.datasets import Dataset
from sw.train.spiking_cnn import spiking_cnn
from sw.train.spiking_mlp import forward_deployed, layer_spikes
from sw.train.train import accuracy, as_tensor, predict, seed_everything, train_classifier

from .seed_experiment import DeployRun, SpikingRun

__all__ = ["ConvDeployRun", "avg_pool_blocks", "deploy_spiking_cnn", "run_casc_cnn",
           "train_spiking_cnn"]


@dataclasses.dataclass
class ConvDeployRun(DeployRun):
    """:class:`~.seed_experiment.DeployRun` of a CNN, plus the integer torch check.

    Members
    -------
    int_torch_agrees : int
        Test images where ``sw.compile.int_torch.IntTorchConvNetwork`` gives the golden model's
        outputs exactly.
    n_test : int
        Test images.
    """

    int_torch_agrees: int = 0
    n_test: int = 0


def _batched(model, x, batch=250) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.as_tensor(x[i:i + batch])).numpy()
                               for i in range(0, len(x), batch)])


def train_spiking_cnn(ds: Dataset, T: int, neuron: str, blocks: Sequence[Block], *,
                      epochs: int = 10, seed: int = 0, lr: float = 3e-3, batch_size: int = 64,
                      tau: float = 2.0, theta: float = 0.5, progress=None, device=None,
                      parallel=None) -> SpikingRun:
    """Train a time-major spiking CNN with ``neuron`` on packed ``T``-bit images (``tau`` and
    ``theta`` of every neuron; ``device`` and ``parallel`` as in ``train_classifier``).

    ``theta`` defaults to 0.5: a PSU divides its input by ``tau``, and with ``theta = 1`` the
    small fan-in of a first conv layer leaves it nearly silent at initialisation, so it does not
    learn (measured on the digits: 12 % after four epochs against 87 % with 0.5).
    """
    x_tr, x_te = ds.packed(T, flat=False)
    seed_everything(seed)
    model = spiking_cnn(ds.image_shape, blocks, ds.n_classes, T, neuron, tau=tau, theta=theta)
    hist = train_classifier(model, x_tr, ds.y_train, epochs=epochs, lr=lr, seed=seed,
                            batch_size=batch_size, progress=progress, device=device,
                            parallel=parallel)
    pred = np.concatenate([predict(model, x_te[i:i + 250]) for i in range(0, len(x_te), 250)])
    rates = [float(s.mean()) for s in layer_spikes(model, as_tensor(x_te[:500]))]
    return SpikingRun(neuron, T, model, accuracy(pred, ds.y_test), hist, rates)


def deploy_spiking_cnn(run: SpikingRun, ds: Dataset, *, weight_bits: int = 8) -> ConvDeployRun:
    """Quantize ``run.model`` to LIF mode; measure float, float-deployed and integer levels and
    compare the integer torch model with the golden model on every test image."""
    _, x_te = ds.packed(run.T, flat=False)
    net, report = quantize_lif_cnn(run.model, weight_bits=weight_bits)
    golden = run_network(net, x_te)
    int_pred = golden.predictions()
    torch_out = _batched(IntTorchConvNetwork(net), x_te)
    agrees = int(np.all(torch_out == golden.output, axis=-1).sum())
    dep_pred = np.concatenate([
        forward_deployed(run.model, as_tensor(x_te[i:i + 250])).argmax(-1).numpy()
        for i in range(0, len(x_te), 250)])
    rates = [float(r.spikes.mean()) / (layer.n_out * run.T)
             for r, layer in zip(golden.layers, net.layers, strict=True) if not layer.readout]
    return ConvDeployRun(
        float_accuracy=run.accuracy,
        float_deployed_accuracy=accuracy(dep_pred, ds.y_test),
        int_accuracy=accuracy(int_pred, ds.y_test),
        agreement=float(np.mean(dep_pred == int_pred)),
        net=net, report=report, int_firing_rates=rates,
        int_torch_agrees=agrees, n_test=len(x_te))


def avg_pool_blocks(blocks: Sequence[Block]) -> list[Block]:
    """``blocks`` with each ``Conv(..., pool=k)`` split into ``Conv(..., pool=None)`` and
    ``AvgPool(k)`` (CASC converts average pooling only)."""
    out: list[Block] = []
    for b in blocks:
        if isinstance(b, Conv) and b.pool:
            out += [dataclasses.replace(b, pool=None), AvgPool(b.pool)]
        else:
            out.append(b)
    return out


def run_casc_cnn(ds: Dataset, T: int, blocks: Sequence[Block], *, epochs: int = 10,
                 seed: int = 0, sleep_steps: int | None = None, lr: float = 3e-3,
                 batch_size: int = 64, progress=None) -> CascRun:
    """Train a ClipQuan_T CNN (``L = T``) on images in ``[0, 1]`` and measure its conversions:
    plain IF, CIF and CIF with wake-sleep conversion (as ``sw.train.casc.run_casc``).

    ``blocks`` are passed through :func:`avg_pool_blocks`; ``sleep_steps`` defaults to ``2 T``
    times the number of hidden layers.
    """
    blocks = avg_pool_blocks(blocks)
    u_tr, u_te = ds.unit("train"), ds.unit("test")
    seed_everything(seed)
    ann = cnn(ds.image_shape, blocks, ds.n_classes, T, activation="clipquan")
    hist = train_classifier(ann, u_tr, ds.y_train, epochs=epochs, seed=seed, lr=lr,
                            batch_size=batch_size, progress=progress)
    ann_pred = np.concatenate([predict(ann, u_te[i:i + 250]) for i in range(0, len(u_te), 250)])
    net = CIFNetwork.from_cnn(ann)
    n_hidden = len(net.layers) - 1
    sleep = 2 * T * n_hidden if sleep_steps is None else sleep_steps
    plain = net.run(u_te, signed=False)
    cif = net.run(u_te)
    wsc = net.run(u_te, sleep_steps=sleep)
    rates = [s / (c.size * wsc.steps) for s, c in zip(wsc.spikes, wsc.counts, strict=True)]
    ann_counts = net.ann_counts(u_te)
    agree = {name: float(sum(int((c == a).sum()) for c, a in zip(r.counts, ann_counts, strict=True))
                         / sum(a.size for a in ann_counts))
             for name, r in (("if", plain), ("cif", cif), ("wsc", wsc))}
    y = ds.y_test
    return CascRun(T, sleep, accuracy(ann_pred, y), accuracy(plain.predictions(), y),
                   accuracy(cif.predictions(), y), accuracy(wsc.predictions(), y),
                   float(np.mean(wsc.predictions() == ann_pred)), agree, rates,
                   float(np.mean(hist.seconds)), ann)
