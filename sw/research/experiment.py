"""The training experiment: float ANN, SpikePack trained directly and converted, integer golden.

One call trains everything for one ``T`` on one split and measures each level on the test split:

- ``ann``: float ReLU MLP on unquantized inputs (the reference).
- ``direct``: SpikePack MLP trained directly (straight-through gradient, learned thresholds).
- ``converted_relu``: the ReLU ANN's weights with thresholds calibrated on training data.
- ``converted_clipfloor``: a ClipFloor ANN (CASC's ClipQuan with ``L = 2^T - 1``) trained, then
  converted; ClipFloor and SpikePack compute the same function, so this conversion is exact.
- ``int_*``: each SpikePack model quantized to integers and run by the NumPy golden model.

Every figure here is measured; nothing is assumed equal.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch

from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sw.compile.int_torch import IntTorchNetwork
from sw.compile.quantize import QuantReport, quantize_spikepack
from sw.train.data import Split
from sw.train.models import ann_mlp, calibrate_thresholds, spikepack_from_ann, spikepack_mlp
from sw.train.train import accuracy, as_tensor, predict, seed_everything, train_classifier


@dataclasses.dataclass
class LevelResult:
    """One model variant measured at the float and the integer level."""

    name: str
    float_accuracy: float
    int_accuracy: float
    net: IntNetwork
    report: QuantReport
    int_torch_agrees: int  #: test samples where the torch integer model == golden (outputs)
    seconds: float
    model: torch.nn.Sequential | None = None  #: the float SpikePack model


@dataclasses.dataclass
class TrainResult:
    T: int
    sizes: tuple[int, ...]
    ann_accuracy: float
    levels: dict[str, LevelResult]
    n_test: int
    ann: torch.nn.Sequential | None = None  #: the float ReLU ANN

    def rows(self) -> list[tuple[str, float, float]]:
        return [(r.name, r.float_accuracy, r.int_accuracy) for r in self.levels.values()]


def _integer_level(name, model, split: Split, T, weight_bits, t0) -> LevelResult:
    _, x_test = split.packed(T)
    float_acc = accuracy(predict(model, x_test), split.y_test)
    net, report = quantize_spikepack(model, weight_bits=weight_bits)
    golden = run_network(net, x_test)
    int_acc = accuracy(golden.predictions(), split.y_test)
    with torch.no_grad():
        torch_out = IntTorchNetwork(net)(torch.as_tensor(x_test)).numpy()
    agrees = int(np.all(torch_out == golden.output, axis=-1).sum())
    return LevelResult(name, float_acc, int_acc, net, report, agrees, time.perf_counter() - t0,
                       model)


def train_all(split: Split, T: int, *, hidden: Sequence[int] = (128, 64), epochs: int = 60,
              seed: int = 0, weight_bits: int = 8, progress=None,
              variants: Sequence[str] = ("direct", "converted_relu", "converted_clipfloor"),
              device=None, parallel=None) -> TrainResult:
    """Train and measure every variant for one ``T``. ``progress(name, epoch, loss, acc)``.

    ``device`` and ``parallel`` (a :class:`sw.train.distributed.DataParallel`) go to every
    :func:`sw.train.train.train_classifier` call; evaluation and quantization run on the CPU.
    """
    sizes = (split.n_features, *hidden, split.n_classes)
    x_tr_packed, _ = split.packed(T)

    def cb(name):
        return (lambda e, loss, acc: progress(name, e, loss, acc)) if progress else None

    seed_everything(seed)
    ann = ann_mlp(sizes, "relu")
    kw = {"device": device, "parallel": parallel}
    train_classifier(ann, split.x_train, split.y_train, epochs=epochs, seed=seed,
                     progress=cb("ann"), **kw)
    ann_acc = accuracy(predict(ann, split.x_test), split.y_test)

    levels = {}
    if "direct" in variants:
        t0 = time.perf_counter()
        seed_everything(seed)
        snn = spikepack_mlp(sizes, T)
        calibrate_thresholds(snn, as_tensor(x_tr_packed))
        train_classifier(snn, x_tr_packed, split.y_train, epochs=epochs, seed=seed,
                         progress=cb("direct"), **kw)
        levels["direct"] = _integer_level("direct", snn, split, T, weight_bits, t0)
    if "converted_relu" in variants:
        t0 = time.perf_counter()
        snn = spikepack_from_ann(ann, T)
        calibrate_thresholds(snn, as_tensor(x_tr_packed))
        levels["converted_relu"] = _integer_level("converted_relu", snn, split, T, weight_bits, t0)
    if "converted_clipfloor" in variants:
        t0 = time.perf_counter()
        seed_everything(seed)
        qann = ann_mlp(sizes, "clipfloor", T)
        # The ClipFloor ANN trains on the same packed inputs the SNN will see.
        step = 1.0 / ((1 << T) - 1)
        train_classifier(qann, x_tr_packed * step, split.y_train, epochs=epochs, seed=seed,
                         progress=cb("clipfloor ann"), **kw)
        snn = spikepack_from_ann(qann, T)
        levels["converted_clipfloor"] = _integer_level(
            "converted_clipfloor", snn, split, T, weight_bits, t0)
    return TrainResult(T, sizes, ann_acc, levels, len(split.y_test), ann)
