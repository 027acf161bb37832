"""The integer-only golden model of the accelerator (NumPy).

Everything here is integer arithmetic on ``int64`` arrays and is the reference the RTL is checked
against with ``==``. Functions accept a batch: activations have shape ``(..., n_in)`` for a dense
layer and ``(..., C, H, W)`` for a conv layer (channel-major, as in torch).

SpikePack layer (tau = 2)::

    v   = b + W a                                  packed form, one product
    u_0 = 0;  u_t = 2 u_(t-1) + W s_t;  v = b + u_T  serial form, bit-planes MSB first
    r_0 = v;  s_t = [r_(t-1) >= theta 2^(T-t)];  r_t = r_(t-1) - theta 2^(T-t) s_t
    =>  a' = clip(floor(v / theta), 0, 2^T - 1)

LIF layer, one update per time step, shift leak ``k`` (0 = no leak)::

    v_t = v_(t-1) - (v_(t-1) >> k) + W s_t + b;  s'_t = [v_t >= theta];  soft or hard reset

(with ``fire_above``: ``s'_t = [v_t > theta]``; with ``compare_leaked`` the compare is against
``theta - (theta >> k)``; the soft reset still subtracts ``theta``).

Conv layer: the same per output position, with ``W a`` the convolution
``sum_{c_in, ky, kx} W[c, c_in, ky, kx] a[c_in, y s + ky - p, x s + kx - p]`` (zero outside the
input), computed by im2col; ``b`` and ``theta`` are per output channel. A shortcut
(``layer.residual``) adds ``g a_src`` to ``W a`` (and ``g s_src,t`` to ``W s_t``). A fused max pool
takes the largest packed word of each window (SpikePack: equal to firing the largest membrane) or
the OR of the window's spikes per step (LIF). Spike counters count the stored (post-pool) words.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3; docs/numerics.md (conv, pooling, residual).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .ir import NETWORK_INPUT, AccumulatorOverflowError, IntLayer, IntNetwork, MaxPool, Mode, Reset
from .packing import check_packed, check_T, pack_bitplanes, popcount, unpack_bitplanes

#: Accumulator width the golden model checks against by default (the hardware's: a build parameter).
DEFAULT_ACC_BITS = 32


# --- firing ------------------------------------------------------------------------------------


def fire_packed(v, theta, T: int) -> np.ndarray:
    """Closed form of the serial firing: ``clip(floor(v / theta), 0, 2**T - 1)``."""
    T = check_T(T)
    v = np.asarray(v, dtype=np.int64)
    return np.clip(np.floor_divide(v, theta), 0, (1 << T) - 1)


def fire_serial(v, theta, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Serial MSB-first firing by compare and subtract (no divider).

    Returns ``(planes, residual)``: ``planes[t - 1]`` is the spike at step ``t`` and ``residual``
    is ``r_T``, what is left of the membrane after the last reset by subtraction.
    """
    T = check_T(T)
    r = np.array(v, dtype=np.int64)
    theta = np.asarray(theta, dtype=np.int64)
    planes = np.zeros((T,) + r.shape, dtype=np.int64)
    for t in range(1, T + 1):
        theta_t = theta << (T - t)
        s = (r >= theta_t).astype(np.int64)
        r = r - theta_t * s
        planes[t - 1] = s
    return planes, r


# --- accumulation ------------------------------------------------------------------------------


def dense_packed(a, weight, bias) -> np.ndarray:
    """Packed form of the SpikePack input: ``v = b + W a`` (one product per synapse)."""
    a = np.asarray(a, dtype=np.int64)
    return a @ np.asarray(weight, dtype=np.int64).T + np.asarray(bias, dtype=np.int64)


def dense_serial(a, weight, bias, T: int, acc_bits: int | None = None) -> np.ndarray:
    """Serial form: Horner over bit-planes, MSB first (conditional adds and a shift only).

    If ``acc_bits`` is given, every partial value ``u_t`` is checked against a signed accumulator of
    that width and :class:`AccumulatorOverflowError` is raised rather than wrapping.
    """
    planes = unpack_bitplanes(a, T)
    weight = np.asarray(weight, dtype=np.int64)
    u = np.zeros(planes.shape[1:-1] + (weight.shape[0],), dtype=np.int64)
    for t in range(T):
        u = 2 * u + planes[t] @ weight.T
        if acc_bits is not None:
            check_accumulator(u, acc_bits, what=f"partial sum u_{t + 1}")
    return u + np.asarray(bias, dtype=np.int64)


def im2col(a, kernel: tuple[int, int], stride: int = 1, padding=0) -> np.ndarray:
    """Receptive fields of a convolution as rows: ``(..., C, H, W) -> (..., H', W', C kh kw)``.

    Row ``(y, x)`` holds ``a[c, y s + ky - p_h, x s + kx - p_w]`` (zero outside the input) in
    ``(c, ky, kx)`` order, the order of ``weight.reshape(C_out, -1)``; ``padding`` is ``p`` for
    both axes or ``(p_h, p_w)``.
    """
    a = np.asarray(a, dtype=np.int64)
    kh, kw = kernel
    ph, pw = (padding, padding) if np.ndim(padding) == 0 else padding
    if ph or pw:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(ph, ph), (pw, pw)])
    win = np.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(-2, -1))
    win = win[..., ::stride, ::stride, :, :]  # (..., C, H', W', kh, kw)
    win = np.moveaxis(win, -5, -3)  # (..., H', W', C, kh, kw)
    return win.reshape(win.shape[:-3] + (-1,))


def conv2d(a, weight, stride: int = 1, padding=0) -> np.ndarray:
    """The linear part of a conv layer: ``(..., C_in, H, W) -> (..., C_out, H', W')``, no bias;
    ``padding``: both axes' or ``(rows, columns)``."""
    weight = np.asarray(weight, dtype=np.int64)
    cols = im2col(a, weight.shape[2:], stride, padding)
    out = cols @ weight.reshape(weight.shape[0], -1).T  # (..., H', W', C_out)
    return np.moveaxis(out, -1, -3)


def conv_packed(a, weight, bias, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Packed form of a conv layer's input: ``v[c] = b[c] + (W * a)[c]`` at every position."""
    bias = np.asarray(bias, dtype=np.int64)[:, None, None]
    return conv2d(a, weight, stride, padding) + bias


def conv_serial(a, weight, bias, T: int, stride: int = 1, padding: int = 0,
                acc_bits: int | None = None) -> np.ndarray:
    """Serial form of a conv layer: Horner over the input's bit-planes, MSB first.

    Each bit-plane is convolved like a packed input (the fetcher gathers a receptive field of 0/1
    spikes); ``u_t = 2 u_(t-1) + W * s_t``, ``v = b + u_T``. ``acc_bits`` checks every ``u_t``.
    """
    per_plane = conv2d(unpack_bitplanes(a, T), weight, stride, padding)
    u = np.zeros(per_plane.shape[1:], dtype=np.int64)
    for t in range(T):
        u = 2 * u + per_plane[t]
        if acc_bits is not None:
            check_accumulator(u, acc_bits, what=f"partial sum u_{t + 1}")
    return u + np.asarray(bias, dtype=np.int64)[:, None, None]


def _windows(a, pool: MaxPool) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(a, (pool.kernel,) * 2, axis=(-2, -1))
    return win[..., ::pool.stride, ::pool.stride, :, :]


def max_pool(a, pool: MaxPool) -> np.ndarray:
    """Max pooling over the last two axes (no padding, incomplete windows dropped)."""
    return _windows(np.asarray(a, dtype=np.int64), pool).max(axis=(-2, -1))


def or_pool(a, pool: MaxPool) -> np.ndarray:
    """Bitwise OR of the packed words of each window: per time step, a spike if any input spiked.

    This is LIF mode's pooling (docs/numerics.md): ``max`` of the spike of each step.
    """
    return np.bitwise_or.reduce(_windows(np.asarray(a, dtype=np.int64), pool), axis=(-2, -1))


def check_accumulator(values, acc_bits: int, what: str = "membrane") -> None:
    """Raise :class:`AccumulatorOverflowError` if a value does not fit ``acc_bits`` signed bits."""
    values = np.asarray(values)
    if not values.size:
        return
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    vmin, vmax = int(values.min()), int(values.max())
    if vmin < lo or vmax > hi:
        raise AccumulatorOverflowError(
            f"{what} reaches [{vmin}, {vmax}], outside a {acc_bits}-bit signed accumulator "
            f"[{lo}, {hi}]; use smaller weights/bias or a build with a wider accumulator"
        )


def accumulator_bound(layer: IntLayer, T: int) -> int:
    """Largest ``|value|`` any input could drive the layer's accumulator to (a static bound).

    Computed on Python integers (object arrays), so it is exact for every bias and threshold an
    :class:`~sim.golden.ir.IntLayer` holds: in int64, ``|-2**63|`` would wrap to a negative number.
    """
    T = check_T(T)
    w_abs = synapse_abs_sum(layer).astype(object)
    b_abs = np.abs(layer.bias.astype(object))
    theta = layer.theta_vector.astype(object)
    if layer.mode is Mode.SPIKEPACK:
        return int((w_abs * ((1 << T) - 1) + b_abs).max(initial=0))
    # LIF: |v_t| <= |v_(t-1) - leak| + |W s| + |b| (+ theta for what a reset leaves).
    step = w_abs + b_abs
    v = np.zeros_like(step)
    peak = np.zeros_like(step)
    for _ in range(T):
        leaked = v - (v >> layer.leak_shift) if layer.leak_shift else v
        v = leaked + step
        peak = np.maximum(peak, v)
    return int((peak + theta).max(initial=0))


#: Largest accumulator bound the int64 golden model computes exactly (with room for a threshold).
INT64_SAFE_BOUND = (1 << 62) - 1


def check_int64_exact(layer: IntLayer, T: int) -> None:
    """Raise :class:`AccumulatorOverflowError` if int64 arithmetic could wrap on this layer.

    The golden model computes in int64; a layer whose :func:`accumulator_bound` exceeds
    :data:`INT64_SAFE_BOUND` (a bias near ``+-2**63``, say) is refused rather than run wrongly,
    whatever ``acc_bits`` the caller asked for.
    """
    bound = accumulator_bound(layer, T)
    if bound > INT64_SAFE_BOUND:
        raise AccumulatorOverflowError(
            f"membrane values may reach {bound} ({bound.bit_length() + 1} bits), beyond the "
            "64-bit integers of the golden model; use smaller biases/thresholds (requantize)"
        )


def synapse_abs_sum(layer: IntLayer) -> np.ndarray:
    """Per output channel, the sum of ``|weight|`` over its fan-in (conv: ``C_in kh kw`` taps),
    plus ``|gain|`` of a shortcut: the factor of ``2**T - 1`` in :func:`accumulator_bound`.

    Padding only removes terms and max pooling picks one of the values, so neither raises it.
    """
    w_abs = np.abs(layer.weight).reshape(layer.out_channels, -1).sum(axis=1)
    if layer.residual is not None:
        w_abs = w_abs + abs(layer.residual.gain)
    return w_abs


def required_accumulator_bits(layer: IntLayer, T: int) -> int:
    """Signed accumulator width that holds :func:`accumulator_bound` for this layer."""
    return accumulator_bound(layer, T).bit_length() + 1


# --- layers ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerResult:
    """What one layer computed for a batch.

    Members
    -------
    output : ndarray
        Packed ``T``-bit words (firing layer) or membrane values ``v`` (readout), shape
        ``batch + layer.out_shape`` (after any fused pooling).
    membrane : ndarray
        ``v`` for SpikePack (before firing); the final ``v_T`` for LIF; shape
        ``batch + layer.conv_shape`` (before pooling).
    spikes : ndarray
        Number of output spikes (1-bits) of the stored, post-pool ``output`` per sample; zeros for
        a readout layer.
    """

    output: np.ndarray
    membrane: np.ndarray
    spikes: np.ndarray


def _layer_input(layer: IntLayer, a, T: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Check packed inputs; return them shaped ``batch + in_shape`` and the batch shape.

    A conv layer also takes its input flattened in ``(C, H, W)`` order, ``(..., n_in)``.
    """
    a = check_packed(a, T)
    shape = layer.in_shape
    if a.ndim >= len(shape) and a.shape[a.ndim - len(shape):] == shape:
        return a, a.shape[:a.ndim - len(shape)]
    if a.ndim >= 1 and a.shape[-1] == layer.n_in:
        return a.reshape(a.shape[:-1] + shape), a.shape[:-1]
    what = f"{layer.n_in} inputs" if len(shape) == 1 else (
        f"inputs of shape {shape} (or {layer.n_in} values flattened in (C, H, W) order)")
    raise ValueError(f"the {layer.kind} layer takes {what}, got an array of shape {a.shape}")


def _shortcut(layer: IntLayer, residual, T: int, batch: tuple[int, ...]) -> np.ndarray | None:
    """Check the shortcut's packed words against the layer: ``None`` or ``batch + conv_shape``."""
    if layer.residual is None:
        if residual is not None:
            raise ValueError("residual= was given but the layer has no shortcut (layer.residual)")
        return None
    if residual is None:
        raise ValueError(
            f"the layer adds a shortcut from {layer.residual.source}; pass that output as residual="
        )
    src = check_packed(residual, T, "residual input")
    want = batch + layer.conv_shape
    if src.shape != want:
        if src.size == math.prod(want):
            return src.reshape(want)
        raise ValueError(f"the residual input must have shape {want}, not {src.shape}")
    return src


def _per_channel(layer: IntLayer, values) -> np.ndarray:
    """Per-output-channel values shaped to broadcast over ``conv_shape``."""
    values = np.asarray(values, dtype=np.int64)
    return values[:, None, None] if layer.kind == "conv" else values


def synaptic_sum(layer: IntLayer, a) -> np.ndarray:
    """``W a`` of a layer without bias or shortcut: ``batch + in_shape -> batch + conv_shape``.

    Dense: a matrix product. Conv: :func:`conv2d` with the layer's stride and padding. Works on
    packed words and on 0/1 bit-planes alike (it is linear).
    """
    if layer.kind == "conv":
        return conv2d(a, layer.weight, layer.stride, layer.pads)
    return np.asarray(a, dtype=np.int64) @ layer.weight.T


def _count(layer: IntLayer, words) -> np.ndarray:
    axes = tuple(range(-len(layer.out_shape), 0))
    return popcount(words).sum(axis=axes)


def spikepack_layer(layer: IntLayer, a, T: int, *, form: str = "packed",
                    acc_bits: int | None = DEFAULT_ACC_BITS, residual=None) -> LayerResult:
    """Run a SpikePack layer on packed inputs ``a`` in packed or serial form (same result).

    ``form="packed"`` is the closed form: ``v = b + W a + g a_src`` in one product, max pooling
    applied to the membranes, then ``clip(floor(v / theta), 0, 2**T - 1)``. ``form="serial"`` is
    what the hardware does: Horner over the bit-planes of the input and of the shortcut, serial
    compare/subtract firing at every position, then max pooling of the packed words. ``residual``
    is the shortcut's packed words (required exactly when ``layer.residual`` is set).
    """
    a, batch = _layer_input(layer, a, T)
    src = _shortcut(layer, residual, T, batch)
    gain = layer.residual.gain if src is not None else 0
    bias = _per_channel(layer, layer.bias)
    if form == "packed":
        v = synaptic_sum(layer, a) + bias
        if src is not None:
            v = v + gain * src
    elif form == "serial":
        per_plane = synaptic_sum(layer, unpack_bitplanes(a, T))
        if src is not None:
            per_plane = per_plane + gain * unpack_bitplanes(src, T)
        u = np.zeros(per_plane.shape[1:], dtype=np.int64)
        for t in range(T):
            u = 2 * u + per_plane[t]
            if acc_bits is not None:
                check_accumulator(u, acc_bits, what=f"partial sum u_{t + 1}")
        v = u + bias
    else:
        raise ValueError(f"form must be 'packed' or 'serial', not {form!r}")
    if acc_bits is not None:
        check_accumulator(v, acc_bits)
    if layer.readout:
        return LayerResult(v, v, np.zeros(batch, dtype=np.int64))
    theta = _per_channel(layer, layer.theta_vector)
    if form == "packed":
        pooled = v if layer.pool is None else max_pool(v, layer.pool)
        out = fire_packed(pooled, theta, T)
    else:
        out = pack_bitplanes(fire_serial(v, theta, T)[0])
        if layer.pool is not None:
            out = max_pool(out, layer.pool)
    return LayerResult(out, v, _count(layer, out))


def lif_layer(layer: IntLayer, a, T: int, *, acc_bits: int | None = DEFAULT_ACC_BITS,
              residual=None) -> LayerResult:
    """Run a LIF/IF layer: one membrane update per time step, spikes stored as T-bit words.

    At step ``t`` the input's spikes ``s_t`` (and the shortcut's, times its gain) enter the
    membrane. A fused pool ORs the spikes of each window per step (:func:`or_pool`).
    """
    a, batch = _layer_input(layer, a, T)
    src = _shortcut(layer, residual, T, batch)
    per_step = synaptic_sum(layer, unpack_bitplanes(a, T))
    if src is not None:
        per_step = per_step + layer.residual.gain * unpack_bitplanes(src, T)
    bias = _per_channel(layer, layer.bias)
    theta = _per_channel(layer, layer.theta_vector)
    compare = theta + int(layer.fire_above)  # v > theta  <=>  v >= theta + 1
    if layer.compare_leaked and layer.leak_shift:
        compare = compare - (theta >> layer.leak_shift)
    k = layer.leak_shift
    v = np.zeros(per_step.shape[1:], dtype=np.int64)
    out_planes = np.zeros((T,) + v.shape, dtype=np.int64)
    for t in range(T):
        if k:
            v = v - (v >> k)
        v = v + per_step[t] + bias
        if acc_bits is not None:
            check_accumulator(v, acc_bits, what=f"membrane v_{t + 1}")
        if layer.readout:
            continue
        s = (v >= compare).astype(np.int64)
        v = v - theta * s if layer.reset is Reset.SUBTRACT else v * (1 - s)
        out_planes[t] = s
    if layer.readout:
        return LayerResult(v, v, np.zeros(batch, dtype=np.int64))
    out = pack_bitplanes(out_planes)
    if layer.pool is not None:
        out = or_pool(out, layer.pool)
    return LayerResult(out, v, _count(layer, out))


def run_layer(layer: IntLayer, a, T: int, *, form: str = "packed",
              acc_bits: int | None = DEFAULT_ACC_BITS, residual=None) -> LayerResult:
    """Run one layer in its mode (``residual``: the shortcut's packed words, if it has one).

    :func:`check_int64_exact` first: int64 never wraps."""
    check_int64_exact(layer, T)
    if layer.mode is Mode.SPIKEPACK:
        return spikepack_layer(layer, a, T, form=form, acc_bits=acc_bits, residual=residual)
    return lif_layer(layer, a, T, acc_bits=acc_bits, residual=residual)


# --- networks ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NetworkResult:
    """A network's outputs for a batch, with what every layer did.

    Members
    -------
    output : ndarray
        The last layer's output (membrane values for a readout, packed words otherwise), shape
        ``batch + net.out_shape``.
    layers : list of LayerResult
        Per layer, in order.
    input_spikes : ndarray
        Spikes (1-bits) in the input words, per sample.
    """

    output: np.ndarray
    layers: list[LayerResult]
    input_spikes: np.ndarray

    @property
    def spikes_per_layer(self) -> np.ndarray:
        """Output spikes per layer (in the stored, post-pool words): ``(n_layers,) + batch``."""
        return np.stack([r.spikes for r in self.layers])

    @property
    def rows(self) -> np.ndarray:
        """:attr:`output` as one row per sample, ``(n, outputs)`` in ``(C, H, W)`` order: what
        the device's outputs decode to (``sw.compile.program_image.decode_outputs``), also for
        a last conv layer, whose :attr:`output` is ``(n, C, H, W)``."""
        return self.output.reshape(len(self.output), -1)

    def predictions(self) -> np.ndarray:
        """Class index per sample: argmax of a vector output, lowest index on ties."""
        return np.argmax(self.output, axis=-1)


def run_network(net: IntNetwork, x, *, form: str = "packed",
                acc_bits: int | None = DEFAULT_ACC_BITS) -> NetworkResult:
    """Run ``net`` on packed inputs ``x``.

    ``x`` has shape ``(..., n_in)`` for a vector input, ``(..., C, H, W)`` for an image input (a
    network whose first layer is a conv layer; ``(..., C H W)`` flattened in ``(C, H, W)`` order is
    accepted too). A dense layer after a conv layer reads its output flattened in ``(C, H, W)``
    order; a shortcut reads the stored output of its source layer (or ``x``).
    """
    x = check_packed(x, net.T, "network input")
    shape = net.in_shape
    if x.ndim >= len(shape) and x.shape[x.ndim - len(shape):] == shape:
        batch = x.shape[:x.ndim - len(shape)]
    elif x.ndim >= 1 and x.shape[-1] == net.n_in:
        batch = x.shape[:-1]
        x = x.reshape(batch + shape)
    elif len(shape) == 1:
        raise ValueError(f"network takes {net.n_in} inputs, got arrays of width {x.shape[-1:]}")
    else:
        raise ValueError(
            f"network takes images of shape {shape} (or {net.n_in} values flattened in (C, H, W) "
            f"order), got an array of shape {x.shape}"
        )
    input_spikes = popcount(x).sum(axis=tuple(range(len(batch), x.ndim)))
    results: list[LayerResult] = []
    a = x
    for li, layer in enumerate(net.layers):
        a = a.reshape(batch + layer.in_shape)  # conv -> dense: flatten in (C, H, W) order
        src = None
        if layer.residual is not None:
            i = layer.residual.source
            src = x if i == NETWORK_INPUT else results[i].output
        try:
            r = run_layer(layer, a, net.T, form=form, acc_bits=acc_bits, residual=src)
        except AccumulatorOverflowError as e:
            raise AccumulatorOverflowError(f"layer {li}: {e}") from None
        results.append(r)
        a = r.output
    return NetworkResult(a, results, input_spikes)
