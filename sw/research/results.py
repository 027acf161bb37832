"""``spikepack results``: retrain every seed on digits and regenerate docs/results.md with plots.

One run measures, on the fixed digits split (1,437 train / 360 test):

- SpikePack, direct and converted (``sw.research.experiment.train_all``), float and integer
  (golden);
- PSU, IPSU, RPSU (``sw.train.neurons.psu``) and the LIF baseline trained by BPTT, and the LIF-mode
  deployment of the PSU- and LIF-trained networks (``sw.compile.quantize_lif``): the deploy gap;
- CASC (``sw.train.casc``): the ClipQuan ANN, plain IF, CIF and CIF with wake-sleep conversion;
- training time per epoch against T, SpikePack and PSU against LIF BPTT, side by side;
- firing rates per layer;
- the Bit Budget cost of each deployed model and a weight-bits x T sweep
  (``sw.research.bitbudget``);
- the deployed SpikePack, LIF- and PSU-trained networks run on the accelerator's RTL (Verilator,
  the real UART driver, ``sw.research.rtl_results``): outputs and counters against the golden model,
  and the measured cycles and spikes per layer beside the estimate.

Every number in the document is measured by the run that writes it.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from sim.golden.model import run_network
from sim.golden.packing import check_T
from sw.compile.quantize import quantize_spikepack
from sw.compile.quantize_lif import quantize_lif
from sw.train.casc import CascRun, run_casc
from sw.train.data import load_digits_split
from sw.train.models import calibrate_thresholds, spikepack_mlp
from sw.train.train import as_tensor, seed_everything, torch_threads, train_classifier

from .bitbudget import (
    E_AC_PJ,
    E_MAC_PJ,
    E_NEURON_PJ,
    best_at_budget,
    network_cost,
    plot_sweep,
    sweep_network,
)
from .cnn_results import CnnResultsConfig, cnn_section, run_cnn, write_cnn_document
from .experiment import TrainResult, train_all
from .plots import T_axis, figure
from .rtl_results import RtlDeployment, measure_on_rtl
from .seed_experiment import (
    DeployRun,
    SpikingRun,
    deploy_spiking,
    time_epochs_side_by_side,
    train_spiking,
)

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class ResultsConfig:
    """What one ``spikepack results`` run trains and measures.

    Members
    -------
    Ts : tuple of int
        Time steps for the accuracy tables.
    timing_Ts : tuple of int
        Time steps for the training-time table.
    epochs : int
        Training epochs of every model.
    hidden : tuple of int
        Hidden layer sizes of every MLP.
    timing_epochs : int
        Epochs timed per model and T (after one warm-up epoch).
    sweep_Ts : tuple of int
        T values of the Bit Budget sweep (SpikePack; ANN and LIF use those of ``Ts``).
    sweep_weight_bits : tuple of int
        Weight widths of the sweep.
    budgets : tuple of int
        Bit budgets (``b_w b_a T``) at which the best configuration is reported.
    weight_bits : int
        Weight width of the deployed networks in the accuracy tables.
    seed : int
        Seed of the split, initialisations and batches.
    rtl_samples : int
        Test digits the deployed networks run on the accelerator RTL (0: no RTL section).
    rtl_target : str
        Board or core preset the RTL is built for (``sw.compile.targets.get_target``).
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    cnn : CnnResultsConfig or None
        The CNN section (``sw.research.cnn_results``), appended to the document; ``None``: none.
    """

    Ts: tuple[int, ...] = (1, 2, 4, 8)
    timing_Ts: tuple[int, ...] = (1, 4, 8, 16)
    epochs: int = 20
    hidden: tuple[int, ...] = (128, 64)
    timing_epochs: int = 3
    sweep_Ts: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    sweep_weight_bits: tuple[int, ...] = (2, 3, 4, 6, 8)
    budgets: tuple[int, ...] = (8, 16)
    weight_bits: int = 8
    seed: int = 0
    rtl_samples: int = 64
    rtl_target: str = "small"
    simulator: str = "verilator"
    cnn: CnnResultsConfig | None = None

    def __post_init__(self):
        for name in ("Ts", "timing_Ts", "sweep_Ts"):
            for T in getattr(self, name):
                try:
                    check_T(T)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{name}: {e}") from None
        if self.epochs < 1 or self.timing_epochs < 1:
            raise ValueError("epochs and timing_epochs must be at least 1")
        for wb in (*self.sweep_weight_bits, self.weight_bits):
            if not 2 <= wb <= 8:
                raise ValueError(f"weight bits must be in 2..8, got {wb}")
        if not self.hidden:
            raise ValueError("need at least one hidden layer")
        if self.rtl_samples < 0:
            raise ValueError(f"rtl_samples must be at least 0, not {self.rtl_samples}")
        if self.rtl_samples:
            from sw.compile.targets import get_target

            try:
                params = get_target(self.rtl_target).params
            except KeyError as e:
                raise ValueError(e.args[0]) from None
            if not any(T <= params.t_max for T in self.Ts):
                raise ValueError(f"no T of {list(self.Ts)} runs on {self.rtl_target} "
                                 f"(t_max {params.t_max}); add one or pass rtl_samples 0")

    @property
    def rtl_T(self) -> int:
        """T of the networks run on the RTL: 4 if measured, else the largest that fits."""
        from sw.compile.targets import get_target

        t_max = get_target(self.rtl_target).params.t_max
        return 4 if 4 in self.Ts else max(T for T in self.Ts if T <= t_max)


@dataclasses.dataclass
class _PerT:
    spikepack: TrainResult
    spiking: dict[str, SpikingRun]
    deploy: dict[str, DeployRun]
    casc: CascRun


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _spikepack_rates(net, x) -> list[float]:
    res = run_network(net, x)
    return [float(r.spikes.mean()) / (layer.n_out * net.T)
            for r, layer in zip(res.layers, net.layers, strict=True) if not layer.readout]


def _train_spikepack_direct(split, T, cfg):
    x_tr, _ = split.packed(T)
    seed_everything(cfg.seed)
    snn = spikepack_mlp((split.n_features, *cfg.hidden, split.n_classes), T)
    calibrate_thresholds(snn, as_tensor(x_tr))
    train_classifier(snn, x_tr, split.y_train, epochs=cfg.epochs, seed=cfg.seed)
    return snn


def _run_rtl(cfg, split, per_T, build_dir, log) -> list[RtlDeployment]:
    from sw.compile.targets import get_target

    T = cfg.rtl_T
    params = get_target(cfg.rtl_target).params
    _, x_te = split.packed(T)
    x, y = x_te[:cfg.rtl_samples], split.y_test[:cfg.rtl_samples]
    p = per_T[T]
    runs = []
    for name, kind, net in (("SpikePack direct", "spikepack", p.spikepack.levels["direct"].net),
                            ("LIF BPTT -> LIF", "lif", p.deploy["lif"].net),
                            ("PSU -> LIF", "lif", p.deploy["psu"].net)):
        log(f"RTL ({cfg.simulator}, {cfg.rtl_target}): {name}, T={T}, {len(x)} test digits")
        runs.append(measure_on_rtl(name, net, kind, x, params, y, simulator=cfg.simulator,
                                   build_dir=build_dir))
        r = runs[-1]
        log(f"  {'bit-exact' if r.bit_exact else 'NOT bit-exact'}: outputs differ on "
            f"{r.outputs_differ}/{r.n}, counters on {r.counter_runs_differ}/{r.runs} runs; "
            f"{r.total_cycles:.0f} cycles/sample ({r.wall_seconds:.0f} s)")
    return runs


def generate(cfg: ResultsConfig, out: Path, img_dir: Path,
             log: Callable[[str], None] = print, *,
             build_dir=None) -> tuple[str, list[RtlDeployment]]:
    """Run everything in ``cfg``, write the Markdown to ``out`` and plots to ``img_dir``.

    ``build_dir``: where the RTL model is built (default ``sim.rtl.session.default_build_dir``).
    Returns the Markdown text and the RTL runs (empty with ``cfg.rtl_samples == 0``).
    """
    if cfg.rtl_samples:  # refuse a missing simulator before minutes of training
        from sim.rtl.runner import require_simulator

        require_simulator(cfg.simulator)
    t_start = time.perf_counter()
    out, img_dir = Path(out), Path(img_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    split = load_digits_split(cfg.seed)
    per_T: dict[int, _PerT] = {}
    for T in cfg.Ts:
        log(f"T={T}: SpikePack (ANN, direct, converted)")
        sp = train_all(split, T, hidden=cfg.hidden, epochs=cfg.epochs, seed=cfg.seed,
                       weight_bits=cfg.weight_bits)
        spiking, deploy = {}, {}
        for neuron in ("lif", "psu", "ipsu", "rpsu"):
            log(f"T={T}: {neuron.upper()}")
            spiking[neuron] = train_spiking(split, T, neuron, hidden=cfg.hidden, epochs=cfg.epochs,
                                            seed=cfg.seed)
            if neuron in ("lif", "psu"):
                deploy[neuron] = deploy_spiking(spiking[neuron], split, weight_bits=cfg.weight_bits)
        log(f"T={T}: CASC")
        casc = run_casc(split, T, hidden=cfg.hidden, epochs=cfg.epochs, seed=cfg.seed)
        per_T[T] = _PerT(sp, spiking, deploy, casc)

    log("training time per epoch")
    timing = []
    for T in cfg.timing_Ts:
        timing.append({"T": T, **time_epochs_side_by_side(
            split, T, ("spikepack", "psu", "lif"), hidden=cfg.hidden, epochs=cfg.timing_epochs,
            seed=cfg.seed)})

    log("bit budget sweep")
    points = []
    for T in cfg.sweep_Ts:
        _, x_te = split.packed(T)
        model = (per_T[T].spikepack.levels["direct"].model if T in per_T
                 else _train_spikepack_direct(split, T, cfg))
        points += sweep_network(
            "SpikePack direct", "spikepack",
            lambda wb, m=model: quantize_spikepack(m, weight_bits=wb)[0], x_te, split.y_test,
            weight_bits=cfg.sweep_weight_bits)
    for T in cfg.Ts:
        _, x_te = split.packed(T)
        cf = per_T[T].spikepack.levels["converted_clipfloor"].model
        points += sweep_network(
            "ANN (ClipFloor, b_a = T)", "ann",
            lambda wb, m=cf: quantize_spikepack(m, weight_bits=wb)[0], x_te, split.y_test,
            weight_bits=cfg.sweep_weight_bits)
        for neuron, label in (("lif", "LIF (BPTT)"), ("psu", "PSU -> LIF")):
            m = per_T[T].spiking[neuron].model
            points += sweep_network(
                label, "lif", lambda wb, m=m: quantize_lif(m, weight_bits=wb)[0], x_te,
                split.y_test, weight_bits=cfg.sweep_weight_bits)
    rtl = _run_rtl(cfg, split, per_T, build_dir, log) if cfg.rtl_samples else []
    sweep_png = plot_sweep(points, img_dir / "bitbudget_sweep.png", budgets=cfg.budgets)
    acc_png = _plot_accuracy(cfg, per_T, img_dir / "seeds_accuracy_vs_T.png")
    time_png = _plot_timing(timing, img_dir / "training_time_vs_T.png")

    cnn_lines = []
    if cfg.cnn is not None:
        cnn_lines = ["", *cnn_section(run_cnn(cfg.cnn, log), out, img_dir)]
    elapsed = time.perf_counter() - t_start
    text = _render(cfg, split, per_T, timing, points, out, [acc_png, time_png, sweep_png],
                   elapsed, rtl)
    text = text.rstrip("\n") + "\n" + "\n".join(cnn_lines) if cnn_lines else text
    text = keep_bench_sections(out.read_text() if out.exists() else "", text)
    out.write_text(text)
    log(f"wrote {out} and {len(list(img_dir.glob('*.png')))} plot(s) in {img_dir} "
        f"({elapsed:.0f} s)")
    return text, rtl


#: Sections of docs/results.md that a benchmark measures and that are pasted in by hand (this run
#: does not measure them): a rewrite keeps them as they are, after the generated text.
BENCH_SECTIONS = ("MNIST CNN on the RTL",
                  "Dense layers on the RTL: one and two bit-planes per beat",
                  "MNIST MLP on the RTL, beside PyTorch on the host CPU",
                  "Event-driven issuing: sized, not built")


def keep_bench_sections(old: str, new: str) -> str:
    """``new`` with every :data:`BENCH_SECTIONS` section of ``old`` that ``new`` lacks appended,
    word for word (a section: its ``## `` heading up to the next ``## `` heading or the end)."""
    kept = []
    for title in BENCH_SECTIONS:
        heading = f"## {title}\n"
        if heading in new or heading not in old:
            continue
        start = old.index(heading)
        end = old.find("\n## ", start + len(heading))
        kept.append(old[start:] if end < 0 else old[start:end + 1])
    if not kept:
        return new
    return new.rstrip("\n") + "\n\n" + "\n".join(k.rstrip("\n") + "\n" for k in kept)


def _plot_accuracy(cfg, per_T, path) -> Path:
    Ts = list(cfg.Ts)
    series = {
        "SpikePack direct (int)": [per_T[T].spikepack.levels["direct"].int_accuracy for T in Ts],
        "SpikePack ClipFloor conv. (int)":
            [per_T[T].spikepack.levels["converted_clipfloor"].int_accuracy for T in Ts],
        "PSU (float)": [per_T[T].spiking["psu"].accuracy for T in Ts],
        "PSU -> LIF (int)": [per_T[T].deploy["psu"].int_accuracy for T in Ts],
        "IPSU (float)": [per_T[T].spiking["ipsu"].accuracy for T in Ts],
        "RPSU (float)": [per_T[T].spiking["rpsu"].accuracy for T in Ts],
        "LIF BPTT (float)": [per_T[T].spiking["lif"].accuracy for T in Ts],
        "LIF BPTT (int)": [per_T[T].deploy["lif"].int_accuracy for T in Ts],
        "CASC WSC": [per_T[T].casc.wsc_accuracy for T in Ts],
    }
    with figure(path, figsize=(6.5, 4.2)) as (fig, ax):
        ann = per_T[Ts[0]].spikepack.ann_accuracy
        ax.axhline(100 * ann, color="k", ls="--", lw=1, label="float ANN (ReLU)")
        for name, ys in series.items():
            ax.plot(Ts, [100 * y for y in ys], marker="o", ms=3, label=name)
        T_axis(ax, Ts)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return Path(path)


def _plot_timing(timing, path) -> Path:
    Ts = [r["T"] for r in timing]
    with figure(path, figsize=(5.5, 3.6)) as (fig, ax):
        for m, label in (("spikepack", "SpikePack"), ("psu", "PSU"), ("lif", "LIF (BPTT)")):
            ax.plot(Ts, [1000 * r[m] for r in timing], marker="o", label=label)
        T_axis(ax, Ts)
        ax.set_ylabel("training time per epoch (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return Path(path)


def _render(cfg, split, per_T, timing, points, out, pngs, elapsed, rtl) -> str:
    rel = lambda p: os.path.relpath(p, out.parent)  # noqa: E731
    Ts = list(cfg.Ts)
    hid = "-".join(map(str, cfg.hidden))
    sizes = f"{split.n_features}-{hid}-{split.n_classes}"
    lines = [
        "# Results: the seed systems on digits",
        "",
        "Generated by `spikepack results` (`sw/research/results.py`); every figure below was "
        "measured by "
        "that run. Do not edit by hand: rerun the command.",
        "",
        f"- Data: scikit-learn digits, fixed split seed {cfg.seed}: {len(split.y_train)} train / "
        f"{len(split.y_test)} test samples; accuracies are on the test split.",
        f"- Every model: MLP {sizes}, Adam (lr 3e-3, cosine), batch 64, **{cfg.epochs} epochs** "
        f"(chosen so the training takes a minute or two on 2 cores; `spikepack train` "
        f"defaults to 60 epochs, so its SpikePack figures are not these). Integer "
        f"networks use {cfg.weight_bits}-bit weights and run in the NumPy golden model.",
        "- Inputs: packed T-bit words (`Split.packed(T)`); spiking models (LIF, PSU) read them "
        "as bit-planes, MSB first, the same words the accelerator receives. CASC's ANN and CIF "
        "network take the float inputs (the CIF first layer gets them as a constant current).",
        f"- Run: {elapsed:.0f} s wall"
        + (f" ({sum(r.wall_seconds for r in rtl):.0f} s of it on the RTL)" if rtl else "")
        + f", torch {torch.__version__}, {torch.get_num_threads()} torch "
        f"thread(s), {os.cpu_count()} CPU(s), {platform.machine()}, shared with other jobs "
        f"(timings are noisy; the ratios are the point).",
        "",
        f"![accuracy vs T]({rel(pngs[0])})",
        "",
        "## SpikePack (direct and converted)",
        "",
        "`sw.research.experiment.train_all`: the float ReLU ANN on unquantized inputs, "
        "SpikePack trained "
        "directly (straight-through gradient), the ReLU ANN converted with calibrated thresholds, "
        "and a ClipFloor ANN (ClipQuan with L = 2^T - 1) converted exactly. *int* = quantized and "
        "run by the golden model.",
        "",
    ]
    rows = []
    for T in Ts:
        r = per_T[T].spikepack
        d, cr, cf = (r.levels[k] for k in ("direct", "converted_relu", "converted_clipfloor"))
        rows.append([T, _pct(r.ann_accuracy), _pct(d.float_accuracy), _pct(d.int_accuracy),
                     _pct(cr.float_accuracy), _pct(cr.int_accuracy), _pct(cf.float_accuracy),
                     _pct(cf.int_accuracy)])
    lines += [_table(["T", "ANN (ReLU)", "direct float", "direct int", "conv. ReLU float",
                      "conv. ReLU int", "conv. ClipFloor float", "conv. ClipFloor int"], rows), ""]

    lines += [
        "## PSU, IPSU, RPSU and the LIF baseline (BPTT)",
        "",
        "Time-major MLPs (`sw.train.spiking_mlp`), tau = 2, theta = 1, atan surrogate, "
        "readout = mean "
        "over T of the last linear layer. PSU/IPSU/RPSU compute all T membranes in one matrix "
        "product (`sw.train.neurons.psu`); LIF is simulated step by step and trained by "
        "backpropagation through time (`sw.train.neurons.lif`, soft reset). PSU and LIF are "
        "deployed to "
        "the accelerator's LIF mode (`sw.compile.quantize_lif`: PSU tau = 2 -> leak shift k = "
        "1 with the "
        "input halved; LIF tau = 2 -> k = 1); IPSU and RPSU learn matrices that are not a shift "
        "leak and have no LIF-mode form (float only).",
        "",
    ]
    rows = []
    for T in Ts:
        p = per_T[T]
        rows.append([T, _pct(p.spiking["psu"].accuracy), _pct(p.spiking["ipsu"].accuracy),
                     _pct(p.spiking["rpsu"].accuracy), _pct(p.spiking["lif"].accuracy)])
    lines += [_table(["T", "PSU", "IPSU", "RPSU", "LIF (BPTT)"], rows), ""]

    lines += [
        "### Deploy gap: training-time semantics vs the integer LIF mode",
        "",
        "*float* = the model as trained (PSU: reset estimated by sigmoid(A I)); *float deployed* = "
        "the same float weights with the deployed semantics (PSU: reset by its real spikes, i.e. "
        "the charge-then-decay soft-reset LIF); *int* = quantized LIF-mode network in the golden "
        "model (shift leak `v - (v >> k)`, rounded weights). *gap* = int - float; *agree* = "
        "fraction of test samples where int and float-deployed predictions agree.",
        "",
    ]
    rows = []
    for T in Ts:
        for neuron, label in (("psu", "PSU"), ("lif", "LIF")):
            d = per_T[T].deploy[neuron]
            rows.append([label, T, _pct(d.float_accuracy), _pct(d.float_deployed_accuracy),
                         _pct(d.int_accuracy), f"{100 * d.gap:+.1f}", _pct(d.agreement)])
    lines += [_table(["model", "T", "float", "float deployed", "int", "gap (pts)", "agree %"],
                     rows), ""]

    lines += [
        "## CASC (ClipQuan_L ANN -> Consistent IF, wake-sleep conversion)",
        "",
        "`sw.train.casc`: the ANN is trained with ClipQuan_L, L = T, on float inputs and "
        "converted to "
        "CIF neurons with threshold lam. *IF* = T steps, positive spikes only; *CIF* = T steps, "
        "signed spikes, count kept in [0, t]; *WSC* = CIF with T wake steps plus sleep steps "
        "(biases and input zeroed). *count agree* = fraction of hidden neurons whose spike "
        "count equals the ANN's activation level (1.0 = exact conversion).",
        "",
    ]
    rows = []
    for T in Ts:
        c = per_T[T].casc
        rows.append([T, c.sleep_steps, _pct(c.ann_accuracy), _pct(c.if_accuracy),
                     _pct(c.cif_accuracy), _pct(c.wsc_accuracy),
                     f"{c.count_agreement['if']:.3f}", f"{c.count_agreement['cif']:.3f}",
                     f"{c.count_agreement['wsc']:.3f}", _pct(c.wsc_matches_ann)])
    lines += [_table(["T = L", "sleep steps", "ANN ClipQuan", "IF", "CIF", "CIF + WSC",
                      "count agree IF", "count agree CIF", "count agree WSC",
                      "WSC = ANN pred. %"], rows), ""]

    lines += [
        "## Training time per epoch",
        "",
        f"Measured side by side in this run "
        f"(`sw.research.seed_experiment.time_epochs_side_by_side`: same "
        f"data, sizes, batch and optimizer; after a warm-up epoch the three models train one "
        f"epoch in turn, {cfg.timing_epochs} rounds, and each figure is the minimum over the "
        f"rounds, the epoch least disturbed by other jobs). "
        "`python bench/bench_training.py` prints the same table on its own.",
        "",
        f"![training time]({rel(pngs[1])})",
        "",
    ]
    rows = [[r["T"], f"{1000 * r['spikepack']:.0f}", f"{1000 * r['psu']:.0f}",
             f"{1000 * r['lif']:.0f}", f"{r['spikepack'] / r['lif']:.2f}",
             f"{r['psu'] / r['lif']:.2f}"] for r in timing]
    lines += [_table(["T", "SpikePack ms/epoch", "PSU ms/epoch", "LIF BPTT ms/epoch",
                      "SpikePack / LIF", "PSU / LIF"], rows), ""]

    lines += [
        "## Firing rates per layer",
        "",
        "Spikes per neuron per time step on the test split, per hidden layer (layer 1, layer 2). "
        "SpikePack, LIF int and PSU int: integer networks in the golden model (a SpikePack "
        "spike is a 1-bit of the packed word); PSU/IPSU/RPSU/LIF float: training semantics; CASC: "
        "CIF + WSC, spikes of either sign over wake and sleep steps.",
        "",
    ]
    fmt = lambda rs: " / ".join(f"{r:.3f}" for r in rs)  # noqa: E731
    rows = []
    for T in Ts:
        p = per_T[T]
        _, x_te = split.packed(T)
        rows.append([T, fmt(_spikepack_rates(p.spikepack.levels["direct"].net, x_te)),
                     fmt(p.spiking["psu"].firing_rates), fmt(p.deploy["psu"].int_firing_rates),
                     fmt(p.spiking["ipsu"].firing_rates), fmt(p.spiking["rpsu"].firing_rates),
                     fmt(p.spiking["lif"].firing_rates), fmt(p.deploy["lif"].int_firing_rates),
                     fmt(p.casc.firing_rates)])
    lines += [_table(["T", "SpikePack int", "PSU float", "PSU int", "IPSU", "RPSU", "LIF float",
                      "LIF int", "CASC WSC"], rows), ""]

    lines += _render_bitbudget(cfg, split, per_T, points, rel(pngs[2]))
    lines += _render_rtl(cfg, rtl)
    return "\n".join(lines) + "\n"


def _render_bitbudget(cfg, split, per_T, points, png) -> list[str]:
    T0 = 4 if 4 in per_T else max(per_T)
    _, x_te = split.packed(T0)
    p = per_T[T0]
    models = [
        ("SpikePack direct", "spikepack", p.spikepack.levels["direct"].net,
         p.spikepack.levels["direct"].int_accuracy),
        (f"ANN, {T0}-bit act. (ClipFloor)", "ann",
         p.spikepack.levels["converted_clipfloor"].net,
         p.spikepack.levels["converted_clipfloor"].int_accuracy),
        ("LIF BPTT -> LIF", "lif", p.deploy["lif"].net, p.deploy["lif"].int_accuracy),
        ("PSU -> LIF", "lif", p.deploy["psu"].net, p.deploy["psu"].int_accuracy),
    ]
    lines = [
        "## Bit Budget",
        "",
        "`sw.research.bitbudget` (arXiv 2311.10802): per layer, compute bits = b_w x b_a x T "
        "x (n_in "
        "n_out), with b_a and T of the layer's input (spikes: b_a = 1 for T steps; ANN: b_a bits "
        "in one step); storage bits = weights + 32-bit biases + output activations over time "
        "(+ 32-bit membranes for LIF, held between steps); SynOps measured from the golden "
        "model's spikes (ANN: MACs). Energy (compute only, memory traffic not included), 45 nm "
        f"figures from Horowitz, ISSCC 2014: ANN MAC = b_w x b_a-bit mult + int32 add, the "
        f"multiply scaled from the 8 x 8-bit figure by b_w b_a / 64 (array multiplier; the "
        f"same rule gives 3.2 pJ for 32 x 32 bits against Horowitz's 3.1), so {E_MAC_PJ:.2f} pJ "
        f"at 8 x 8 bits; "
        f"SynOp = int32 add = {E_AC_PJ:.2f} pJ; neuron update = 2 int32 adds = "
        f"{E_NEURON_PJ:.2f} pJ per neuron and step.",
        "",
        f"Deployed networks at T = {T0}, {cfg.weight_bits}-bit weights, per test sample:",
        "",
    ]
    rows = []
    for name, kind, net, acc in models:
        c = network_cost(net, kind, x=x_te)
        rows.append([name, f"{c.bits_per_synapse_op}", f"{c.compute_bits / 1e6:.2f}",
                     f"{c.storage_bits / 8e3:.1f}", f"{c.synops:,.0f}",
                     f"{c.energy_pj / 1e3:.2f}", _pct(acc)])
    lines += [_table(["model", "b_w b_a T", "compute Mbit", "storage kB", "SynOps (MACs)",
                      "energy nJ", "int acc %"], rows), ""]
    lines += [
        f"Design-space sweep: SpikePack direct for T in {list(cfg.sweep_Ts)}, the ClipFloor ANN "
        f"(b_a = T), LIF BPTT and PSU -> LIF for T in {list(cfg.Ts)}, each quantized to weight "
        f"bits {list(cfg.sweep_weight_bits)} (post-training) and run by the golden model. Left: "
        "accuracy against bits per synapse-op; right: SpikePack accuracy over weight bits x T.",
        "",
        f"![bit budget sweep]({png})",
        "",
        "Best configuration per model at a fixed budget (b_w x b_a x T <= budget):",
        "",
    ]
    rows = []
    for budget in cfg.budgets:
        for model, pt in sorted(best_at_budget(points, budget).items()):
            rows.append([budget, model, pt.weight_bits, pt.act_bits, pt.T,
                         f"{pt.compute_bits / 1e6:.2f}", f"{pt.storage_bits / 8e3:.1f}",
                         f"{pt.energy_pj / 1e3:.2f}", _pct(pt.accuracy)])
    lines += [_table(["budget", "model", "b_w", "b_a", "T", "compute Mbit", "storage kB",
                      "energy nJ", "int acc %"], rows), ""]
    return lines


def _render_rtl(cfg, rtl: Sequence[RtlDeployment]) -> list[str]:
    lines = ["## On the accelerator RTL: measured cycles and spikes beside the estimate", ""]
    if not rtl:
        return lines + ["Not run in this run (`--rtl-samples 0`).", ""]
    p = rtl[0].params
    T = rtl[0].net.T
    peak = p.synapses_per_cycle
    lines += [
        f"The deployed T = {T} networks of the tables above (SpikePack direct; LIF BPTT and PSU "
        f"quantized to the accelerator's LIF mode), compiled for the `{cfg.rtl_target}` build "
        f"({p.describe()}) and run on the first {rtl[0].n} test digits by the accelerator's "
        f"RTL under {cfg.simulator} (`sim.rtl.session.run_on_rtl`: the real `sw.host.driver` over "
        f"the simulated UART pins, {rtl[0].clk_freq / 1e6:g} MHz core clock, batches of "
        f"{p.batch_depth}), through `sw.research.rtl_results.measure_on_rtl`. *bit-exact* "
        f"compares, with "
        "`==`, every output vector and every batch run's per-layer spike and skip counters "
        "with the golden model's.",
        "",
    ]
    def acc(a):
        return "-" if a is None else _pct(a)

    rows = []
    for r in rtl:
        synops = sum(c.synops for c in r.layers)
        rows.append([
            r.name,
            ("yes" if r.bit_exact else "**NO**")
            + f" ({r.n - r.outputs_differ}/{r.n} outputs, "
              f"{r.runs - r.counter_runs_differ}/{r.runs} runs)",
            acc(r.rtl_accuracy), acc(r.golden_accuracy), f"{r.total_cycles:,.0f}",
            f"{1e6 * r.total_cycles / r.clk_freq:.1f}", f"{synops:,.0f}",
            f"{synops / r.total_cycles:.1f}", f"{r.energy_pj / 1e3:.2f}",
            f"{r.upload_cycles:,}", f"{r.wall_seconds:.0f}"])
    lines += [_table(["model", "bit-exact", "RTL acc %", "golden acc %", "cycles/sample",
                      "us/sample", "SynOps/sample (est.)", "SynOps/cycle", "energy nJ (est.)",
                      "upload cycles", "wall s"], rows), ""]
    lines += [
        "Per layer, means per sample. *est.* columns come from the golden model and the Bit "
        "Budget model without the RTL: compute bits and SynOps (`sw.research.bitbudget`), "
        "output spikes, "
        "and the PE-array work the documented dataflow implies (`sw.research.rtl_results."
        "predicted_work`: P = ceil(n_out / n_pe) passes, each reading ceil(n_in / k) input "
        "chunks of T bit-planes; an all-zero plane-chunk is skipped, every other one is one "
        "*beat*). *RTL* columns are the device's counters. *cycles / beat* above 1 is firing "
        "time not hidden behind accumulation, descriptor fetch and pipeline fill/drain; "
        f"the peak is {peak} synaptic adds (one weight x one spike bit) per beat.",
        "",
    ]
    for r in rtl:
        rows = []
        for i, c in enumerate(r.layers):
            rows.append([i, f"{c.n_in} -> {c.n_out}", c.mode, f"{c.compute_bits / 1e3:.1f}",
                         f"{c.synops:,.0f}", f"{c.golden_spikes:.1f}", f"{c.rtl_spikes:.1f}",
                         f"{c.golden_skipped:.1f}", f"{c.rtl_skipped:.1f}", f"{c.beats:.1f}",
                         f"{c.cycles:.1f}", f"{c.cycles / max(c.beats, 1e-9):.2f}"])
        lines += [f"{r.name}:", "",
                  _table(["layer", "size", "mode", "compute kbit (est.)", "SynOps (est.)",
                          "spikes golden", "spikes RTL", "skipped golden", "skipped RTL",
                          "beats (est.)", "cycles RTL", "cycles / beat"], rows), ""]
    return lines


def run_from_args(args) -> int:
    """Entry point of ``spikepack results`` (arguments from ``sw.cli.main``)."""
    cnn = cnn_config_from_args(args)
    out = Path(args.out) if args.out else REPO / "docs" / "results.md"
    img = Path(args.img_dir) if args.img_dir else out.parent / "img"
    if args.cnn == "only":
        with torch_threads(args.threads):
            run = run_cnn(cnn, log=(lambda s: None) if args.quiet else print)
            write_cnn_document(run, out, img)
        print(f"wrote {out} ({run.seconds:.0f} s)")
        return 0
    cfg = ResultsConfig(
        Ts=tuple(args.T), timing_Ts=tuple(args.timing_T), epochs=args.epochs,
        hidden=tuple(args.hidden), timing_epochs=args.timing_epochs,
        sweep_Ts=tuple(args.sweep_T), sweep_weight_bits=tuple(args.sweep_weight_bits),
        budgets=tuple(args.budget), weight_bits=args.weight_bits, seed=args.seed,
        rtl_samples=args.rtl_samples, rtl_target=args.rtl_board, simulator=args.simulator,
        cnn=cnn if args.cnn == "on" else None)
    missing = [T for T in cfg.sweep_Ts if T not in cfg.Ts]
    if missing:
        print(f"note: sweep T {missing} train SpikePack only (not in --T)")
    with torch_threads(args.threads):
        rtl = generate(cfg, out, img, log=(lambda s: None) if args.quiet else print,
                       build_dir=args.build_dir)[1]
    bad = [r.name for r in rtl if not r.bit_exact]
    if bad:
        print(f"NOT bit-exact on the RTL: {', '.join(bad)} (see {out})")
        return 1
    return 0


def cnn_config_from_args(args) -> CnnResultsConfig:
    """The CNN section's settings from ``spikepack results`` arguments (``--cnn-*``);
    ``--cnn-quick`` starts from :data:`~sw.research.cnn_results.QUICK` and the flags given
    explicitly override it."""
    from .cnn_results import QUICK

    base = QUICK if args.cnn_quick else CnnResultsConfig()
    given = {
        "dataset": args.cnn_dataset, "data_dir": args.data_dir,
        "Ts": tuple(args.cnn_T) if args.cnn_T else None, "epochs": args.cnn_epochs,
        "n_train": args.cnn_train, "n_test": args.cnn_test,
        "weight_bits": args.weight_bits, "seed": args.seed}
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
