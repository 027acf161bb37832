"""The CNN experiment: float ANN, SpikePack CNN trained directly and converted, integer golden.

The conv counterpart of :mod:`sw.research.experiment` (same :class:`LevelResult` per variant):

- ``ann``: float ReLU CNN on unquantized images in ``[0, 1]`` (the reference).
- ``direct``: the SpikePack CNN trained directly (straight-through gradient, learned thresholds).
- ``converted_relu``: the ReLU ANN's weights with thresholds calibrated on training images.
- ``converted_clipfloor``: a ClipFloor CNN trained on the packed inputs, converted exactly.

Each SpikePack model is quantized (:func:`sw.compile.quantize_conv.quantize_cnn`), run by the
golden model and by the integer torch model, and every test image's outputs are compared.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch

from sim.golden.model import run_network
from sw.compile.int_torch import IntTorchConvNetwork
from sw.compile.quantize_conv import quantize_cnn
from sw.train.conv_models import (
    Block,
    calibrate_cnn_thresholds,
    cnn,
    random_shift,
    spikepack_from_ann_cnn,
)
from sw.train.datasets import Dataset
from sw.train.train import accuracy, as_tensor, predict, seed_everything, train_classifier

from .experiment import LevelResult

VARIANTS = ("direct", "converted_relu", "converted_clipfloor")


@dataclasses.dataclass
class CnnResult:
    """What :func:`train_cnn_all` measured (accuracies on the test split)."""

    T: int
    ann_accuracy: float
    levels: dict[str, LevelResult]
    n_test: int
    spikes_per_layer: dict[str, np.ndarray]  #: mean stored-output spikes per test image
    ann: torch.nn.Sequential | None = None


def _integer_level(name, model, x_test, y_test, weight_bits, t0, batch=250):
    float_acc = accuracy(predict(model, x_test), y_test)
    net, report = quantize_cnn(model, weight_bits=weight_bits)
    golden = run_network(net, x_test)
    int_model = IntTorchConvNetwork(net)
    with torch.no_grad():
        torch_out = np.concatenate([int_model(torch.as_tensor(x_test[i:i + batch])).numpy()
                                    for i in range(0, len(x_test), batch)])
    agrees = int(np.all(torch_out == golden.output, axis=-1).sum())
    level = LevelResult(name, float_acc, accuracy(golden.predictions(), y_test), net, report,
                        agrees, time.perf_counter() - t0, model)
    return level, golden.spikes_per_layer.mean(axis=1)  # (n_layers, N) -> per layer


def train_cnn_all(ds: Dataset, T: int, blocks: Sequence[Block], *, epochs: int = 15,
                  seed: int = 0, weight_bits: int = 8, lr: float = 3e-3, batch_size: int = 64,
                  variants: Sequence[str] = VARIANTS, train_ann: bool = True, shift: int = 0,
                  progress=None, device=None, parallel=None) -> CnnResult:
    """Train and measure every variant of one CNN for one ``T``.

    ``shift`` > 0 trains on images shifted by up to ``shift`` pixels (a new random shift per
    image and batch). ``progress(name, epoch, loss, acc)`` is called after every epoch of every
    model. The float
    ReLU ANN is trained if ``train_ann`` or ``"converted_relu"`` is asked for (else
    ``ann_accuracy`` is NaN).

    ``device`` and ``parallel`` (a :class:`sw.train.distributed.DataParallel`) go to every
    :func:`sw.train.train.train_classifier` call, as in :func:`sw.research.experiment.train_all`;
    calibration, evaluation and quantization run on the CPU. With ``parallel`` and ``shift`` > 0
    each rank draws the shifts of its own slice of a batch, not those one process would draw.
    """
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    in_shape = ds.image_shape
    x_tr, x_te = ds.packed(T, flat=False)
    u_tr, u_te = ds.unit("train"), ds.unit("test")

    def cb(name):
        return (lambda e, loss, acc: progress(name, e, loss, acc)) if progress else None

    def fit(model, x, name):
        gen = torch.Generator().manual_seed(seed)  # the same shifts whatever trained before

        def forward(model, xb):
            return model(random_shift(xb, shift, gen) if model.training else xb)

        train_classifier(model, x, ds.y_train, epochs=epochs, seed=seed, lr=lr,
                         batch_size=batch_size, progress=cb(name), forward=forward,
                         device=device, parallel=parallel)

    levels, spikes = {}, {}
    ann, ann_acc = None, float("nan")
    if train_ann or "converted_relu" in variants:
        seed_everything(seed)
        ann = cnn(in_shape, blocks, ds.n_classes, T, activation="relu")
        fit(ann, u_tr, "ann")
        ann_acc = accuracy(predict(ann, u_te), ds.y_test)
    calib = as_tensor(x_tr[:1000])
    if "direct" in variants:
        t0 = time.perf_counter()
        seed_everything(seed)
        snn = cnn(in_shape, blocks, ds.n_classes, T)
        calibrate_cnn_thresholds(snn, calib)
        fit(snn, x_tr, "direct")
        levels["direct"], spikes["direct"] = _integer_level(
            "direct", snn, x_te, ds.y_test, weight_bits, t0)
    if "converted_relu" in variants:
        t0 = time.perf_counter()
        snn = spikepack_from_ann_cnn(ann, T)
        calibrate_cnn_thresholds(snn, calib)
        levels["converted_relu"], spikes["converted_relu"] = _integer_level(
            "converted_relu", snn, x_te, ds.y_test, weight_bits, t0)
    if "converted_clipfloor" in variants:
        t0 = time.perf_counter()
        seed_everything(seed)
        qann = cnn(in_shape, blocks, ds.n_classes, T, activation="clipfloor")
        step = 1.0 / ((1 << T) - 1)
        fit(qann, x_tr * step, "clipfloor ann")
        snn = spikepack_from_ann_cnn(qann, T)
        levels["converted_clipfloor"], spikes["converted_clipfloor"] = _integer_level(
            "converted_clipfloor", snn, x_te, ds.y_test, weight_bits, t0)
    return CnnResult(T, ann_acc, levels, len(ds.y_test), spikes, ann)
