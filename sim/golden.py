"""The integer-only golden model of the accelerator (NumPy).

Everything here is integer arithmetic on ``int64`` arrays and is the reference the RTL is checked
against with ``==``. Functions accept a batch: activations have shape ``(..., n_in)``.

SpikePack layer (tau = 2)::

    v   = b + W a                                  packed form, one product
    u_0 = 0;  u_t = 2 u_(t-1) + W s_t;  v = b + u_T  serial form, bit-planes MSB first
    r_0 = v;  s_t = [r_(t-1) >= theta 2^(T-t)];  r_t = r_(t-1) - theta 2^(T-t) s_t
    =>  a' = clip(floor(v / theta), 0, 2^T - 1)

LIF layer, one update per time step, shift leak ``k`` (0 = no leak)::

    v_t = v_(t-1) - (v_(t-1) >> k) + W s_t + b;  s'_t = [v_t >= theta];  soft or hard reset

(with ``fire_above``: ``s'_t = [v_t > theta]``; with ``compare_leaked`` the compare is against
``theta - (theta >> k)``; the soft reset still subtracts ``theta``).

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3; ../shared/DESIGN.md "SpikePack numerics".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .ir import AccumulatorOverflowError, IntLayer, IntNetwork, Mode, Reset
from .packing import check_packed, check_T, pack_bitplanes, popcount, unpack_bitplanes

#: Accumulator width the golden model checks against by default (the hardware's is a build
#: parameter).
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
    """Largest ``|value|`` any input could drive the layer's accumulator to (a static bound)."""
    T = check_T(T)
    w_abs = np.abs(layer.weight).sum(axis=1)
    b_abs = np.abs(layer.bias)
    theta = layer.theta_vector
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
        Packed ``T``-bit words (firing layer) or membrane values ``v`` (readout).
    membrane : ndarray
        ``v`` for SpikePack (before firing); the final ``v_T`` for LIF.
    spikes : ndarray
        Number of output spikes (1-bits) per sample; zeros for a readout layer.
    """

    output: np.ndarray
    membrane: np.ndarray
    spikes: np.ndarray


def spikepack_layer(layer: IntLayer, a, T: int, *, form: str = "packed",
                    acc_bits: int | None = DEFAULT_ACC_BITS) -> LayerResult:
    """Run a SpikePack layer on packed inputs ``a`` in packed or serial form (same result)."""
    a = check_packed(a, T)
    if form == "packed":
        v = dense_packed(a, layer.weight, layer.bias)
        if acc_bits is not None:
            check_accumulator(v, acc_bits)
    elif form == "serial":
        v = dense_serial(a, layer.weight, layer.bias, T, acc_bits)
        if acc_bits is not None:
            check_accumulator(v, acc_bits)
    else:
        raise ValueError(f"form must be 'packed' or 'serial', not {form!r}")
    if layer.readout:
        return LayerResult(v, v, np.zeros(v.shape[:-1], dtype=np.int64))
    if form == "packed":
        out = fire_packed(v, layer.theta_vector, T)
    else:
        out = pack_bitplanes(fire_serial(v, layer.theta_vector, T)[0])
    return LayerResult(out, v, popcount(out).sum(axis=-1))


def lif_layer(layer: IntLayer, a, T: int, *,
              acc_bits: int | None = DEFAULT_ACC_BITS) -> LayerResult:
    """Run a LIF/IF layer: one membrane update per time step, spikes stored as T-bit words."""
    planes = unpack_bitplanes(check_packed(a, T), T)
    weight = layer.weight
    theta = layer.theta_vector
    compare = theta + int(layer.fire_above)  # v > theta  <=>  v >= theta + 1
    if layer.compare_leaked and layer.leak_shift:
        compare = compare - (theta >> layer.leak_shift)
    k = layer.leak_shift
    v = np.zeros(planes.shape[1:-1] + (layer.n_out,), dtype=np.int64)
    out_planes = np.zeros((T,) + v.shape, dtype=np.int64)
    for t in range(T):
        if k:
            v = v - (v >> k)
        v = v + planes[t] @ weight.T + layer.bias
        if acc_bits is not None:
            check_accumulator(v, acc_bits, what=f"membrane v_{t + 1}")
        if layer.readout:
            continue
        s = (v >= compare).astype(np.int64)
        v = v - theta * s if layer.reset is Reset.SUBTRACT else v * (1 - s)
        out_planes[t] = s
    if layer.readout:
        return LayerResult(v, v, np.zeros(v.shape[:-1], dtype=np.int64))
    out = pack_bitplanes(out_planes)
    return LayerResult(out, v, out_planes.sum(axis=(0, -1)))


def run_layer(layer: IntLayer, a, T: int, *, form: str = "packed",
              acc_bits: int | None = DEFAULT_ACC_BITS) -> LayerResult:
    """Run one layer in its mode."""
    if layer.mode is Mode.SPIKEPACK:
        return spikepack_layer(layer, a, T, form=form, acc_bits=acc_bits)
    return lif_layer(layer, a, T, acc_bits=acc_bits)


# --- networks ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NetworkResult:
    """A network's outputs for a batch, with what every layer did.

    Members
    -------
    output : ndarray
        The last layer's output (membrane values for a readout, packed words otherwise).
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
        """Output spikes per layer, shape ``(n_layers,) + batch``."""
        return np.stack([r.spikes for r in self.layers])

    def predictions(self) -> np.ndarray:
        """Class index per sample: argmax of the output, lowest index on ties."""
        return np.argmax(self.output, axis=-1)


def run_network(net: IntNetwork, x, *, form: str = "packed",
                acc_bits: int | None = DEFAULT_ACC_BITS) -> NetworkResult:
    """Run ``net`` on packed inputs ``x`` of shape ``(..., n_in)``."""
    a = check_packed(x, net.T, "network input")
    if a.shape[-1] != net.n_in:
        raise ValueError(f"network takes {net.n_in} inputs, got arrays of width {a.shape[-1]}")
    input_spikes = popcount(a).sum(axis=-1)
    results = []
    for layer in net.layers:
        r = run_layer(layer, a, net.T, form=form, acc_bits=acc_bits)
        results.append(r)
        a = r.output
    return NetworkResult(a, results, input_spikes)
