"""Random integer networks and inputs for the core testbenches, and the counters they imply.

Everything is drawn from a ``numpy.random.Generator`` so a seed reproduces a case exactly.
"""

from __future__ import annotations

import numpy as np

from sim.golden import model as golden
from sim.golden.ir import IntLayer, IntNetwork, Mode, Reset
from sw.research.rtl_results import predicted_work


def random_network(rng: np.random.Generator, params, *, max_depth: int = 4,
                   edge: str | None = None, widest: int | None = None) -> IntNetwork:
    """A random network that fits ``params`` (both modes, readout or not, all edge knobs).

    ``edge``: ``"largest"`` makes every layer as wide as the build allows; ``"theta1"`` uses
    theta 1 everywhere; ``"negative"`` uses negative biases (membranes below zero). Draws again
    (with fewer layers) until ``sw.compile.program_image.build_image`` accepts the network.
    ``widest`` caps the layer widths (default: the build's limit).
    """
    from sw.compile.program_image import DoesNotFitError, build_image

    for _ in range(100):
        net = _draw_network(rng, params, max_depth, edge, widest or params.max_neurons)
        try:
            build_image(net, params)
            return net
        except DoesNotFitError:
            max_depth = max(1, max_depth - 1)
    raise RuntimeError("could not draw a network that fits")


def _draw_network(rng, params, max_depth, edge, widest):
    p = params
    T = int(rng.integers(1, p.t_max + 1))
    depth = int(rng.integers(1, max_depth + 1))
    if edge == "largest":
        sizes = [widest] * (depth + 1)
        sizes[-1] = int(rng.integers(1, widest + 1))
    else:
        sizes = [int(rng.choice([rng.integers(1, 9), rng.integers(1, widest + 1)]))
                 for _ in range(depth + 1)]
    readout = bool(rng.random() < 0.6)
    layers = []
    for li in range(depth):
        n_in, n_out = sizes[li], sizes[li + 1]
        wb = int(rng.integers(2, 9))
        lim = 1 << (wb - 1)
        w = rng.integers(-lim, lim, (n_out, n_in))
        mode = Mode.LIF if p.lif and rng.random() < 0.4 else Mode.SPIKEPACK
        typical = max(1.0, np.sqrt(n_in) * lim * 0.5)
        if edge == "negative":
            b = -rng.integers(0, int(typical * (1 << T)) + 2, n_out)
        else:
            b = rng.integers(-int(typical), int(typical) + 1, n_out)
        if mode is Mode.LIF:
            scale = typical
        else:
            scale = typical * (1 << T) / max(1, (1 << T) - 1)
        if edge == "theta1":
            theta = 1
        elif rng.random() < 0.5:
            theta = int(max(1, rng.integers(1, int(scale) + 2)))
        else:
            theta = rng.integers(1, int(scale) + 2, n_out)
        last = li == depth - 1
        layers.append(IntLayer(
            weight=w, bias=b, theta=theta, mode=mode, readout=readout and last,
            weight_bits=wb, leak_shift=int(rng.integers(0, 16)) if rng.random() < 0.7 else 0,
            reset=Reset.ZERO if rng.random() < 0.4 else Reset.SUBTRACT,
            fire_above=mode is Mode.LIF and rng.random() < 0.5,
            compare_leaked=mode is Mode.LIF and rng.random() < 0.5,
        ))
    return IntNetwork(tuple(layers), T)


def random_inputs(rng: np.random.Generator, net: IntNetwork, batch: int,
                  kind: str | None = None) -> np.ndarray:
    """Packed inputs: random density, or ``kind`` = ``"zeros"`` / ``"ones"`` (all bits set)."""
    top = (1 << net.T) - 1
    if kind == "zeros":
        return np.zeros((batch, net.n_in), dtype=np.int64)
    if kind == "ones":
        return np.full((batch, net.n_in), top, dtype=np.int64)
    x = rng.integers(0, top + 1, (batch, net.n_in))
    density = rng.choice([0.05, 0.3, 0.7, 1.0])
    return np.where(rng.random((batch, net.n_in)) < density, x, 0)


def expected_counters(net: IntNetwork, x, params, result: golden.NetworkResult | None = None):
    """Golden spikes and skipped zero plane-chunks per layer, summed over the batch (the skipped
    ones as :func:`sw.research.rtl_results.predicted_work` schedules them)."""
    result = result or golden.run_network(net, x)
    _, skipped = predicted_work(net, np.atleast_2d(x), params, result)
    return result.spikes_per_layer.sum(axis=1), skipped.sum(axis=0)
