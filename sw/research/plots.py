"""PNG plots people would rather look at than read: accuracy vs T, sparsity, rasters, rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_T(runs: list[dict], path) -> Path:
    """``runs``: the ``runs`` list of ``spikepack train --json``."""
    plt = _plt()
    Ts = [r["T"] for r in runs]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axhline(100 * runs[0]["ann"], color="k", ls="--", lw=1, label="float ANN (ReLU)")
    for name in runs[0]["levels"]:
        for level, marker in (("float", "o"), ("int", "s")):
            ax.plot(Ts, [100 * r["levels"][name][level] for r in runs], marker=marker,
                    label=f"SpikePack {name} ({level})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(Ts, [str(t) for t in Ts])
    ax.set_xlabel("T (time steps = bits per activation)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def sparsity(result, T: int, path) -> Path:
    """Firing rate per layer (spikes per neuron per time step) of a golden ``NetworkResult``."""
    plt = _plt()
    rates, names = [], []
    for i, r in enumerate(result.layers):
        if r.spikes.any() or r.output.ndim and not np.array_equal(r.output, r.membrane):
            n = r.output.shape[-1]
            rates.append(float(r.spikes.mean()) / (n * T))
            names.append(f"layer {i}\n({n})")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(names, rates, color="tab:blue")
    for x, v in enumerate(rates):
        ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("spikes / neuron / step")
    ax.set_title("firing rate per layer")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def raster(result, x0, T: int, path, sample: int = 0) -> Path:
    """Spike raster of one sample: input and every firing layer, time on the x axis."""
    from sim.golden.packing import unpack_bitplanes

    plt = _plt()
    layers = [("input", x0[sample])] + [
        (f"layer {i}", r.output[sample]) for i, r in enumerate(result.layers)
        if not np.array_equal(r.output, r.membrane)]
    fig, axes = plt.subplots(1, len(layers), figsize=(2.2 * len(layers), 3.6), sharey=False)
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def quantization_error(float_steps: list[np.ndarray], int_steps: list[np.ndarray], path) -> Path:
    """Histogram, per layer, of (integer - float) membrane in output steps (v/theta)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(float_steps), figsize=(3.2 * len(float_steps), 3))
    axes = np.atleast_1d(axes)
    for i, (ax, f, q) in enumerate(zip(axes, float_steps, int_steps, strict=True)):
        d = (q - f).ravel()
        ax.hist(d, bins=60, color="tab:orange")
        ax.set_title(f"layer {i}: mean {d.mean():+.3f}, max |{np.abs(d).max():.3f}|", fontsize=8)
        ax.set_xlabel("int - float membrane (steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def cycles_per_layer(cycles, skipped, path) -> Path:
    """Measured core cycles per sample of every layer, and the all-zero chunks the core skipped."""
    plt = _plt()
    names = [f"layer {i}" for i in range(len(cycles))]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
    for ax, values, color, title in ((axes[0], cycles, "tab:green", "cycles / sample"),
                                     (axes[1], skipped, "tab:gray",
                                      "zero plane-chunks skipped / sample")):
        ax.bar(names, values, color=color)
        for x, v in enumerate(values):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle("RTL counters (measured)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
