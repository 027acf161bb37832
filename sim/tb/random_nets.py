"""Random integer networks and inputs for the core testbenches, and the counters they imply.

Everything is drawn from a ``numpy.random.Generator`` so a seed reproduces a case exactly.
"""

from __future__ import annotations

import numpy as np

from sim.golden import model as golden
from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, MaxPool, Mode, Reset, Residual
from sw.compile.input_fold import device_network
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


def random_conv_network(rng: np.random.Generator, params, *, pool: bool = False,
                        residual: bool = True, tries: int = 200) -> IntNetwork:
    """A random network of conv layers then dense ones that the build ``params`` holds.

    1..3 conv layers (kernel 1..5, stride 1..2, padding 0..2, 1..2 channel chunks in and out,
    maps as large as a ping-pong half allows), then 0..1 hidden dense layers and a dense last
    layer (readout or firing); SpikePack or LIF (on a LIF build), T 1..t_max, per-layer or
    per-channel thresholds. ``pool``: conv layers may max-pool 2x2 or 4x4. ``residual``: a conv
    layer may take a shortcut (gain 1..127 or -1..-128, small ones likelier) from the network
    input or an earlier conv layer whose map has its input's size (it then keeps that shape:
    the source's channels, stride 1, an odd kernel with "same" padding). Draws again until
    ``sw.compile.program_image.build_image`` accepts it.
    """
    from sw.compile.program_image import DoesNotFitError, build_image

    p = params
    for _ in range(tries):
        net = _draw_conv_network(rng, p, pool, residual)
        try:
            build_image(net, p)
            return net
        except DoesNotFitError:
            continue
    raise RuntimeError("could not draw a conv network that fits")


def _conv_mode(rng, p, T, fan):
    """Mode keywords and a threshold scale for a layer of fan-in ``fan``."""
    lif = p.lif and rng.random() < 0.3
    typical = max(1.0, np.sqrt(fan) * 3)
    if not lif:
        return {}, typical * (1 << T) / max(1, (1 << T) - 1)
    return dict(mode=Mode.LIF, leak_shift=int(rng.integers(0, 4)),
                reset=Reset.ZERO if rng.random() < 0.5 else Reset.SUBTRACT,
                fire_above=bool(rng.random() < 0.5),
                compare_leaked=bool(rng.random() < 0.5)), typical


def _theta(rng, scale, n):
    if rng.random() < 0.5:
        return int(max(1, rng.integers(1, int(scale) + 2)))
    return rng.integers(1, int(scale) + 2, n)


def _gain(rng) -> int:
    """A non-zero shortcut gain in the 8-bit weight range, small ones likelier."""
    mag = int(rng.choice([rng.integers(1, 4), rng.integers(1, 129)]))
    return -mag if rng.random() < 0.4 else min(mag, 127)


def _draw_conv_network(rng, p, pool, residual=False):
    T = int(rng.integers(1, p.t_max + 1))
    # Maps that fit a ping-pong half (act_chunks blocks): side^2 chunks <= act_chunks.
    side = max(2, int(np.sqrt(p.act_chunks)))
    c = int(rng.integers(1, 2 * p.k + 1))
    shape = (c, int(rng.integers(2, side + 2)), int(rng.integers(2, side + 2)))
    layers = []
    maps = [(NETWORK_INPUT, shape)]  # shortcut sources: the input and each conv layer's map
    for _ in range(int(rng.integers(1, 4))):
        c_in, h, w = shape
        kernel = int(rng.integers(1, 6))
        padding = int(rng.integers(0, 3))
        stride = int(rng.integers(1, 3))
        if kernel > min(h, w) + 2 * padding:
            kernel = int(rng.integers(1, min(h, w) + 2 * padding + 1))
        c_out = int(rng.choice([rng.integers(1, p.k + 1), rng.integers(1, 2 * p.n_pe + 1)]))
        sources = [(src, c) for src, (c, sh, sw) in maps if (sh, sw) == (h, w)]
        res = None
        if residual and sources and rng.random() < 0.5:
            src, c_out = sources[int(rng.integers(len(sources)))]
            kernel = int(rng.choice([1, 3, 5]))
            stride, padding = 1, kernel // 2
            res = Residual(src, _gain(rng))
        fan = c_in * kernel * kernel
        mode, scale = _conv_mode(rng, p, T, fan)
        lim = int(rng.choice([2, 8, 64]))
        weight = rng.integers(-lim, lim, size=(c_out, c_in, kernel, kernel))
        scale *= lim / 6
        bias = rng.integers(-int(scale), int(scale) + 1, size=c_out)
        kw = dict(weight=weight, bias=bias, theta=_theta(rng, scale, c_out), kind="conv",
                  in_shape=shape, stride=stride, padding=padding, residual=res, **mode)
        layer = IntLayer(**kw)
        side = min(layer.conv_shape[1:])
        if pool and side >= 2 and rng.random() < 0.4:
            layer = IntLayer(**kw, pool=MaxPool(4 if side >= 4 and rng.random() < 0.4 else 2))
        layers.append(layer)
        shape = layer.out_shape
        maps.append((len(layers) - 1, shape))
    n_in = int(np.prod(shape))
    sizes = [int(rng.integers(1, 3 * p.n_pe)) for _ in range(int(rng.integers(0, 2)))]
    sizes.append(int(rng.integers(1, 2 * p.n_pe)))
    readout = bool(rng.random() < 0.6)
    for i, n_out in enumerate(sizes):
        mode, scale = _conv_mode(rng, p, T, n_in)
        layers.append(IntLayer(weight=rng.integers(-6, 7, size=(n_out, n_in)),
                               bias=rng.integers(-int(scale), int(scale) + 1, size=n_out),
                               theta=_theta(rng, scale, n_out),
                               readout=readout and i == len(sizes) - 1, **mode))
        n_in = n_out
    return IntNetwork(tuple(layers), T)


def expected_conv_counters(net: IntNetwork, x, params, result: golden.NetworkResult | None = None):
    """Golden spikes and skipped zero plane-chunks per layer for any network (conv or dense),
    summed over the batch, as the core walks it: the skipped plane-chunks are
    :func:`sw.research.rtl_results.predicted_work`'s (which says what the walk reads). A thin
    first layer is counted as the device runs it, folded (:mod:`sw.compile.input_fold`);
    ``result``: the golden model's result of that device network (computed if None).
    """
    net, x = device_network(net, x, params)
    x = np.asarray(x, dtype=np.int64)
    result = result or golden.run_network(net, x, acc_bits=params.acc_bits)
    _, skipped = predicted_work(net, x, params, result)
    return result.spikes_per_layer.sum(axis=1), skipped.sum(axis=0).astype(np.int64)
