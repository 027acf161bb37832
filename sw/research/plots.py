"""PNG plots people would rather look at than read: accuracy vs T, sparsity, rasters, rounding."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed); imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure(path, *args, **kwargs):
    """``with figure(path, 1, 2, figsize=...) as (fig, axes):`` draw, then the figure is laid out,
    written to ``path`` as a 120 dpi PNG (its folder made) and closed. Arguments go to
    ``plt.subplots``."""
    plt = pyplot()
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def T_axis(ax, Ts, label: str = "T (time steps)") -> None:
    """A log2 x axis with one tick per time-step count."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(Ts, [str(t) for t in Ts])
    ax.set_xlabel(label)


def accuracy_vs_T(runs: list[dict], path) -> Path:
    """``runs``: the ``runs`` list of ``spikepack train --json``. Several T: accuracy against T,
    one line per level; one T: a bar per level, labelled with its accuracy."""
    Ts = [r["T"] for r in runs]
    levels = [(name, level) for name in runs[0]["levels"] for level in ("float", "int")]
    with figure(path, figsize=(5.5, 3.6)) as (fig, ax):
        if len(runs) == 1:
            r = runs[0]
            names = ["float ANN"] + [f"{name}\n({level})" for name, level in levels]
            values = [100 * r["ann"]] + [100 * r["levels"][n][lv] for n, lv in levels]
            ax.bar(names, values, color=["k"] + ["tab:blue", "tab:orange"] * len(runs[0]["levels"]))
            for x, v in enumerate(values):
                ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
            ax.set_ylim(max(0, min(values) - 10), 100)
            ax.set_title(f"SpikePack at T = {Ts[0]}: test accuracy per level", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
        else:
            ax.axhline(100 * runs[0]["ann"], color="k", ls="--", lw=1, label="float ANN (ReLU)")
            for name, level in levels:
                ax.plot(Ts, [100 * r["levels"][name][level] for r in runs],
                        marker="o" if level == "float" else "s",
                        label=f"SpikePack {name} ({level})")
            T_axis(ax, Ts, "T (time steps = bits per activation)")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        ax.set_ylabel("test accuracy (%)")
    return Path(path)


def sparsity(result, T: int, path) -> Path:
    """Firing rate per layer (spikes per neuron per time step) of a golden ``NetworkResult``."""
    rates, names = [], []
    for i, r in enumerate(result.layers):
        if r.spikes.any() or r.output.ndim and not np.array_equal(r.output, r.membrane):
            n = r.output.shape[-1]
            rates.append(float(r.spikes.mean()) / (n * T))
            names.append(f"layer {i}\n({n})")
    with figure(path, figsize=(5, 3.2)) as (fig, ax):
        ax.bar(names, rates, color="tab:blue")
        for x, v in enumerate(rates):
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("spikes / neuron / step")
        ax.set_title("firing rate per layer")
    return Path(path)


def raster(result, x0, T: int, path, sample: int = 0, labels=None) -> Path:
    """Spike raster of one sample: input and every firing layer, time on the x axis. The title
    names the sample, its label (``labels[sample]`` when given) and the network's prediction."""
    from sim.golden.packing import unpack_bitplanes

    layers = [("input", np.ravel(x0[sample]))] + [
        (f"layer {i}", np.ravel(r.output[sample])) for i, r in enumerate(result.layers)
        if not np.array_equal(r.output, r.membrane)]
    title = f"sample {sample}"
    if labels is not None:
        title += f", label {labels[sample]}"
    if np.ndim(result.output) == 2:
        title += f", prediction {result.predictions()[sample]}"
    with figure(path, 1, len(layers), figsize=(2.2 * len(layers), 3.8),
                sharey=False) as (fig, axes):
        axes = np.atleast_1d(axes)
        for ax, (name, words) in zip(axes, layers, strict=True):
            planes = unpack_bitplanes(words, T)  # (T, n)
            t, n = np.nonzero(planes)
            ax.scatter(t + 1, n, s=12, marker="|", color="k")
            ax.set_xlim(0.5, T + 0.5)
            ax.set_ylim(-1, planes.shape[1])
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("t")
        axes[0].set_ylabel("neuron")
        fig.suptitle(title, fontsize=10)
    return Path(path)


def quantization_error(float_steps: list[np.ndarray], int_steps: list[np.ndarray], path) -> Path:
    """Histogram, per layer, of (integer - float) membrane in output steps (v/theta)."""
    with figure(path, 1, len(float_steps), figsize=(3.2 * len(float_steps), 3)) as (fig, axes):
        axes = np.atleast_1d(axes)
        for i, (ax, f, q) in enumerate(zip(axes, float_steps, int_steps, strict=True)):
            d = (q - f).ravel()
            ax.hist(d, bins=60, color="tab:orange")
            ax.set_title(f"layer {i}: mean {d.mean():+.3f}, max |{np.abs(d).max():.3f}|",
                         fontsize=8)
            ax.set_xlabel("int - float membrane (steps)")
    return Path(path)


def cycles_per_layer(cycles, skipped, path) -> Path:
    """Measured core cycles per sample of every layer, and the all-zero chunks the core skipped."""
    names = [f"layer {i}" for i in range(len(cycles))]
    with figure(path, 1, 2, figsize=(7, 3.2)) as (fig, axes):
        for ax, values, color, title in ((axes[0], cycles, "tab:green", "cycles / sample"),
                                         (axes[1], skipped, "tab:gray",
                                          "zero plane-chunks skipped / sample")):
            ax.bar(names, values, color=color)
            for x, v in enumerate(values):
                ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
            ax.set_title(title, fontsize=9)
        fig.suptitle("RTL counters (measured)", fontsize=10)
    return Path(path)
