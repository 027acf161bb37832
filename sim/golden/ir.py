"""The integer network: the typed model every stage agrees on.

The quantizer (``sw.compile.quantize``) produces an :class:`IntNetwork`; the golden model
(``sim.golden.model``) runs it; the compiler turns it into a program image for the accelerator. It
holds integers only.

A layer is fully connected (``kind="dense"``, weight ``(n_out, n_in)``) or a 2-D convolution
(``kind="conv"``, weight ``(C_out, C_in, kh, kw)`` shared over positions, input shape
``in_shape = (C_in, H, W)``, one ``stride`` for both axes and a zero ``padding``, the same on both
axes unless ``padding_w`` sets the columns' apart). Its mode is
``"spikepack"`` (packed form, one product per neuron, serial MSB-first firing) or ``"lif"`` (one
membrane update per time step with a shift leak). The last layer of a network is usually a readout:
it returns its membrane value instead of firing.

A conv layer may carry a fused max pooling (:class:`MaxPool`, applied to the fired packed words) and
any layer may carry a shortcut (:class:`Residual`): ``v += gain * a_src`` with ``a_src`` the stored
output of an earlier layer (or the network input) of the same shape as this layer's pre-pool output.
Average pooling is not an IR operation: the quantizer folds it into the next layer
(docs/numerics.md).

Shapes are channel-major, as in torch: a conv layer's output is ``(C, H, W)``; a dense layer after a
conv layer reads it flattened in that ``(C, H, W)`` order (``a.reshape(-1)``). The compiler permutes
weight rows to the memory's channel-chunked HWC layout; the IR does not know it.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import itertools
import math
import operator
import os
import tempfile
from pathlib import Path

import numpy as np

from .packing import T_LIMIT, as_int_array, check_T


class Mode(enum.Enum):
    """Neuron dynamics of a layer."""

    SPIKEPACK = "spikepack"  #: v = b + W a, fire serially MSB first (tau = 2)
    LIF = "lif"  #: v_t = v_(t-1) - (v_(t-1) >> k) + W s_t + b, fire per step


class Reset(enum.Enum):
    """What a LIF neuron does to its membrane after a spike (SpikePack always subtracts)."""

    SUBTRACT = "subtract"  #: soft reset: v -= theta
    ZERO = "zero"  #: hard reset: v = 0


class AccumulatorOverflowError(OverflowError):
    """A membrane value would not fit the accumulator: raised instead of wrapping."""


class NetworkFileError(ValueError):
    """A file is not an integer network :meth:`IntNetwork.save` wrote (the message says why)."""


#: Largest threshold a layer may have: ``theta * 2**(T - 1)`` (the serial firing's first step)
#: then fits int64 for every ``T`` up to ``sim.golden.packing.T_LIMIT``, so no threshold
#: arithmetic wraps.
THETA_MAX = (1 << (63 - T_LIMIT)) - 1


def _check_theta(theta: np.ndarray) -> None:
    """Refuse thresholds that are not positive or that the int64 firing could not shift."""
    if not theta.size:
        return
    if theta.min() <= 0:
        raise ValueError(f"theta must be a positive integer, got minimum {theta.min()}")
    if theta.max() > THETA_MAX:
        raise ValueError(f"theta {theta.max()} is larger than {THETA_MAX} (2**{63 - T_LIMIT} - 1, "
                         "the largest the integer firing shifts without overflow); requantize "
                         "with larger weight and threshold steps")


#: Layer kinds the IR knows (``IntLayer.kind``).
KINDS = ("dense", "conv")

#: ``Residual.source`` value that names the network input instead of a layer.
NETWORK_INPUT = -1


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis: ``(size + 2p - k) // s + 1``.

    Raises
    ------
    ValueError
        If the kernel is larger than the padded input.
    """
    if kernel > size + 2 * padding:
        raise ValueError(
            f"kernel {kernel} is larger than the padded input ({size} + 2 x {padding} padding); "
            f"use a smaller kernel or more padding"
        )
    return (size + 2 * padding - kernel) // stride + 1


def _positive(value, name: str, minimum: int = 1) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """Max pooling fused into a conv layer, applied to its fired packed outputs.

    Windows of ``kernel x kernel`` positions, ``stride`` apart (default: ``kernel``, no overlap), no
    padding, trailing rows/columns that do not fill a window dropped (torch's ``ceil_mode=False``).
    In SpikePack mode the pooled word is the largest packed word of the window, which equals firing
    the largest membrane (firing is monotone). In LIF mode it is the OR of the window's spikes per
    time step (bitwise OR of the words); see docs/numerics.md.

    Parameters
    ----------
    kernel : int
        Window side, at least 1.
    stride : int, optional
        Step between windows, at least 1; ``kernel`` if omitted.
    """

    kernel: int
    stride: int | None = None

    def __post_init__(self):
        k = _positive(self.kernel, "pool kernel")
        s = _positive(k if self.stride is None else self.stride, "pool stride")
        object.__setattr__(self, "kernel", k)
        object.__setattr__(self, "stride", s)

    @classmethod
    def coerce(cls, value) -> MaxPool | None:
        """``None``, a :class:`MaxPool`, an int ``k`` or a pair ``(k, stride)`` as a ``MaxPool``."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, tuple | list):
            if len(value) != 2:
                raise ValueError(f"pool must be (kernel, stride), not {value!r}")
            return cls(*value)
        return cls(value)


@dataclasses.dataclass(frozen=True)
class Residual:
    """A shortcut into a layer's membrane: ``v += gain * a_src`` at every position and channel.

    ``a_src`` is the stored (fired, post-pool) output of layer ``source`` of the network, or the
    network input for ``source = NETWORK_INPUT`` (-1); it must have the shape of this layer's
    pre-pool output. Its bit-planes enter the serial (Horner) accumulation like any input, and in
    LIF mode its spikes enter each step's update; it is exactly a 1x1 conv with weight
    ``gain * identity`` on the concatenated input ``[a, a_src]``, so ``gain`` must fit the layer's
    ``weight_bits``.

    Parameters
    ----------
    source : int
        Index of an earlier layer in the network, or ``NETWORK_INPUT``.
    gain : int
        Signed integer gain, non-zero, within the layer's weight range.
    """

    source: int
    gain: int = 1

    def __post_init__(self):
        src = _positive(self.source, "residual source", NETWORK_INPUT)
        try:
            gain = operator.index(self.gain)
        except TypeError:
            raise TypeError(f"residual gain must be an integer, not {self.gain!r}") from None
        if gain == 0:
            raise ValueError("residual gain must be non-zero (leave residual=None for no shortcut)")
        object.__setattr__(self, "source", src)
        object.__setattr__(self, "gain", gain)

    @classmethod
    def coerce(cls, value) -> Residual | None:
        """``None``, a :class:`Residual` or a pair ``(source, gain)`` as a ``Residual``."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, tuple | list):
            if len(value) != 2:
                raise ValueError(f"residual must be (source, gain), not {value!r}")
            return cls(*value)
        raise TypeError(f"residual must be a Residual or (source, gain), not {value!r}")


@dataclasses.dataclass(frozen=True)
class IntLayer:
    """One integer layer.

    Parameters
    ----------
    weight : ndarray, shape (n_out, n_in) or (C_out, C_in, kh, kw)
        Signed integer weights, each in ``[-2**(weight_bits-1), 2**(weight_bits-1) - 1]``; 2-D for
        ``kind="dense"``, 4-D for ``kind="conv"``.
    bias : ndarray, shape (n_out,) or (C_out,)
        Signed integer bias per output channel, added once (SpikePack) or every time step (LIF).
    theta : int or ndarray, shape (n_out,) or (C_out,)
        Positive integer threshold, per layer (scalar) or per output channel.
    mode : Mode
        ``Mode.SPIKEPACK`` or ``Mode.LIF``.
    readout : bool
        If true the layer returns its membrane value (``v``) and does not fire.
    weight_bits : int
        Width of a weight in bits (2..8).
    leak_shift : int
        LIF only: ``k`` in ``v -= v >> k``; 0 means no leak (IF).
    reset : Reset
        LIF only: soft (subtract theta) or hard (to zero) reset.
    kind : str
        ``"dense"`` or ``"conv"`` (see :data:`KINDS`).
    in_shape : tuple of int, optional
        Conv: the input feature map ``(C_in, H, W)`` (required). Dense: ``(n_in,)`` or omitted.
    stride : int
        Conv only: step between output positions, both axes (at least 1).
    padding : int
        Conv only: zero rows/columns added on every side of the input (at least 0).
    padding_w : int, optional
        Conv only: zero columns added on the left and right, where they differ from the rows'
        (``None``: ``padding``). The compiler's fold of a thin first layer
        (``sw.compile.input_fold``) pads rows only; the program image takes ``padding_w`` equal
        to ``padding`` or 0.
    pool : MaxPool or int or (int, int), optional
        Conv only: fused max pooling ``(kernel, stride)`` of the fired outputs; not on a readout.
    residual : Residual or (int, int), optional
        A shortcut ``(source, gain)`` added into the membrane; checked by :class:`IntNetwork`.
    fire_above : bool
        LIF only: spike when ``v > theta`` (``v >= theta + 1``) instead of ``v >= theta``; a soft
        reset still subtracts ``theta``. This is snnTorch's and NIR's strict compare with a
        threshold that reset by subtraction must remove whole.
    compare_leaked : bool
        LIF only: compare against ``theta - (theta >> k)`` (plus ``fire_above``), the threshold
        after one leak, while a soft reset still subtracts ``theta`` before the leak. With
        ``theta = theta_graph / beta`` this is a subtraction of ``theta_graph`` landing after the
        next leak (snnTorch's ``reset_delay=True``).

    Members
    -------
    out_channels : int
        Output channels (``n_out`` of a dense layer).
    kernel : (int, int)
        ``(kh, kw)``; ``(1, 1)`` for a dense layer.
    conv_shape : tuple of int
        Shape of one sample's membrane / pre-pool output: ``(C_out, H', W')`` or ``(n_out,)``.
    out_shape : tuple of int
        Shape of one sample's stored (post-pool) output.
    n_in, n_out : int
        Input and stored output sizes, flattened.
    fan_in : int
        Synapses per output neuron: ``C_in kh kw`` (``n_in`` for dense), plus one for a shortcut.
    """

    weight: np.ndarray
    bias: np.ndarray
    theta: np.ndarray | int
    mode: Mode = Mode.SPIKEPACK
    readout: bool = False
    weight_bits: int = 8
    leak_shift: int = 0
    reset: Reset = Reset.SUBTRACT
    kind: str = "dense"
    in_shape: tuple[int, ...] | None = None
    stride: int = 1
    padding: int = 0
    padding_w: int | None = None
    pool: MaxPool | None = None
    residual: Residual | None = None
    fire_above: bool = False
    compare_leaked: bool = False

    def __post_init__(self):
        weight = as_int_array(self.weight, "weight")
        if self.kind == "dense" and weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (n_out, n_in), not shape {weight.shape}")
        if self.kind == "conv" and weight.ndim != 4:
            raise ValueError(
                f"a conv weight must be 4-D (C_out, C_in, kh, kw), not shape {weight.shape}"
            )
        n_out = weight.shape[0] if weight.ndim else 0
        bias = as_int_array(self.bias, "bias")
        if bias.shape != (n_out,):
            raise ValueError(f"bias must have shape ({n_out},), not {bias.shape}")
        theta = as_int_array(self.theta, "theta")
        if theta.ndim not in (0, 1) or (theta.ndim == 1 and theta.shape != (n_out,)):
            raise ValueError(f"theta must be a scalar or have shape ({n_out},), not {theta.shape}")
        _check_theta(theta)
        wb = operator.index(self.weight_bits)
        if not 2 <= wb <= 8:
            raise ValueError(f"weight_bits must be in 2..8, not {wb}")
        lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
        if weight.size and (weight.min() < lo or weight.max() > hi):
            raise ValueError(
                f"weights do not fit {wb} bits: range [{weight.min()}, {weight.max()}] is outside "
                f"[{lo}, {hi}]; requantize with a smaller weight scale"
            )
        mode = Mode(self.mode)
        reset = Reset(self.reset)
        k = operator.index(self.leak_shift)
        if not 0 <= k <= 15:
            raise ValueError(f"leak_shift must be in 0..15 (0 = no leak), not {k}")
        self._check_geometry(weight)
        for name, value in (("weight", weight), ("bias", bias), ("theta", theta)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "weight_bits", wb)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "reset", reset)
        object.__setattr__(self, "leak_shift", k)
        object.__setattr__(self, "readout", bool(self.readout))
        object.__setattr__(self, "fire_above", bool(self.fire_above))
        object.__setattr__(self, "compare_leaked", bool(self.compare_leaked))

    def _check_geometry(self, weight: np.ndarray) -> None:
        """Check and store kind, in_shape, stride, padding, pool and residual (conv checks)."""
        if self.kind not in KINDS:
            raise ValueError(f"layer kind must be one of {KINDS}, not {self.kind!r}")
        stride = _positive(self.stride, "stride")
        padding = _positive(self.padding, "padding", 0)
        padding_w = padding if self.padding_w is None else _positive(self.padding_w,
                                                                       "padding_w", 0)
        pool = MaxPool.coerce(self.pool)
        residual = Residual.coerce(self.residual)
        if self.kind == "dense":
            in_shape = (weight.shape[1],)
            if self.in_shape is not None and tuple(self.in_shape) != in_shape:
                raise ValueError(
                    f"a dense layer's in_shape is (n_in,) = {in_shape}, not {tuple(self.in_shape)}"
                )
            if stride != 1 or padding != 0 or padding_w != 0 or pool is not None:
                raise ValueError(
                    "stride, padding and pool apply to conv layers only; a dense layer has none"
                )
        else:
            if self.in_shape is None:
                raise ValueError("a conv layer needs in_shape=(C_in, H, W), its input feature map")
            in_shape = tuple(_positive(n, "in_shape entry") for n in self.in_shape)
            if len(in_shape) != 3:
                raise ValueError(f"a conv in_shape must be (C_in, H, W), not {in_shape}")
            c_out, c_in, kh, kw = weight.shape
            if c_out < 1 or kh < 1 or kw < 1:
                raise ValueError(
                    f"a conv weight needs C_out, kh, kw >= 1, not shape {weight.shape}"
                )
            if c_in != in_shape[0]:
                raise ValueError(
                    f"the conv weight takes {c_in} input channels (shape {weight.shape}) but "
                    f"in_shape {in_shape} has {in_shape[0]}"
                )
            ho = conv_output_size(in_shape[1], kh, stride, padding)
            wo = conv_output_size(in_shape[2], kw, stride, padding_w)
            if pool is not None:
                if self.readout:
                    raise ValueError(
                        "a readout layer returns membranes and cannot pool (pooling is fused "
                        "into firing); pool an earlier layer or end with a dense readout"
                    )
                for size in (ho, wo):
                    if pool.kernel > size:
                        raise ValueError(
                            f"pool kernel {pool.kernel} is larger than the conv output "
                            f"{(ho, wo)}; use a smaller pool or a larger input"
                        )
        if residual is not None:
            wb = operator.index(self.weight_bits)
            lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
            if not lo <= residual.gain <= hi:
                raise ValueError(
                    f"residual gain {residual.gain} does not fit {wb}-bit weights "
                    f"[{lo}, {hi}]; it is the weight of the shortcut's identity synapse"
                )
        object.__setattr__(self, "in_shape", in_shape)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "padding", padding)
        object.__setattr__(self, "padding_w", padding_w)
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "residual", residual)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel(self) -> tuple[int, int]:
        return tuple(self.weight.shape[2:]) if self.kind == "conv" else (1, 1)

    @property
    def pads(self) -> tuple[int, int]:
        """Zero padding ``(rows, columns)`` on each side of the input (``(0, 0)`` for dense)."""
        return (self.padding, self.padding_w)

    @property
    def conv_shape(self) -> tuple[int, ...]:
        if self.kind == "dense":
            return (self.weight.shape[0],)
        kh, kw = self.kernel
        _, h, w = self.in_shape
        return (self.out_channels, conv_output_size(h, kh, self.stride, self.padding),
                conv_output_size(w, kw, self.stride, self.padding_w))

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = self.conv_shape
        if self.pool is None:
            return shape
        k, s = self.pool.kernel, self.pool.stride
        return (shape[0], conv_output_size(shape[1], k, s, 0), conv_output_size(shape[2], k, s, 0))

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    @property
    def fan_in(self) -> int:
        taps = self.weight.shape[1] * self.kernel[0] * self.kernel[1]
        return taps + (self.residual is not None)

    @property
    def theta_vector(self) -> np.ndarray:
        """Threshold broadcast to one value per output channel."""
        return np.broadcast_to(self.theta, (self.out_channels,)).copy()


@dataclasses.dataclass(frozen=True)
class IntNetwork:
    """A feed-forward integer network: ``T`` time steps, layers in order.

    The input is one packed ``T``-bit word per input neuron: a vector ``(n_in,)`` when the first
    layer is dense, an image ``in_shape = (C, H, W)`` when it is a conv layer.

    Consecutive layers must agree: conv -> conv needs ``in_shape == previous out_shape``; conv ->
    dense reads the previous output flattened in ``(C, H, W)`` order, so ``n_in == previous
    n_out``; dense -> dense needs ``n_in == previous n_out``; a conv layer cannot follow a dense
    one. A shortcut (``layer.residual``) names the network input or an earlier layer whose
    stored output shape equals the layer's ``conv_shape``.
    """

    layers: tuple[IntLayer, ...]
    T: int

    def __post_init__(self):
        object.__setattr__(self, "T", check_T(self.T))
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("a network needs at least one layer")
        for i, (a, b) in enumerate(zip(layers, layers[1:], strict=False)):
            if a.readout:
                raise ValueError(f"layer {i} is a readout but is not the last layer")
            if b.n_in != a.n_out:
                raise ValueError(
                    f"layer {i + 1} takes {b.n_in} inputs but layer {i} gives {a.n_out}"
                )
        _check_shapes(layers)
        object.__setattr__(self, "layers", layers)

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one input sample: ``(n_in,)`` or ``(C, H, W)``."""
        return self.layers[0].in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of one output sample (the last layer's ``out_shape``)."""
        return self.layers[-1].out_shape

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def save(self, path) -> None:
        """Write the network to an ``.npz`` file (read back with :meth:`load`).

        Per layer ``l``: ``l{l}_weight``, ``l{l}_bias``, ``l{l}_theta``, ``l{l}_meta`` (strings:
        mode, readout, weight_bits, leak_shift, reset, kind) and ``l{l}_geom`` (integers, see
        :data:`GEOM_FIELDS`). Files written before ``l{l}_geom`` existed load as dense layers.

        ``path`` is a file name (``.npz`` is appended when it has another suffix, as
        :func:`numpy.savez` does) or a binary file object. A file name is written to a temporary
        file beside it and renamed, so an interrupted save never leaves a partial file.
        """
        arrays = {"T": np.array(self.T), "n_layers": np.array(len(self.layers))}
        for i, layer in enumerate(self.layers):
            arrays[f"l{i}_weight"] = layer.weight
            arrays[f"l{i}_bias"] = layer.bias
            arrays[f"l{i}_theta"] = np.asarray(layer.theta)
            arrays[f"l{i}_meta"] = np.array(
                [layer.mode.value, str(int(layer.readout)), str(layer.weight_bits),
                 str(layer.leak_shift), layer.reset.value, layer.kind,
                 str(int(layer.fire_above)), str(int(layer.compare_leaked))]
            )
            arrays[f"l{i}_geom"] = _geom_to_array(layer)
        if not isinstance(path, (str, os.PathLike)):
            np.savez(path, **arrays)
            return
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_file_atomically(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> IntNetwork:
        """Read a network written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        NetworkFileError
            If the file is empty, truncated, damaged or not a network file (the message names the
            file and what is wrong), or holds a network :class:`IntLayer` refuses.
        """
        name = getattr(path, "name", None) if not isinstance(path, (str, os.PathLike)) else path
        what = f"{name}" if name else "the network data"
        _check_npz_magic(path, what)
        try:
            return cls._load(path)
        except FileNotFoundError:
            raise
        except _LOAD_ERRORS as e:
            detail = f"missing entry {e}" if isinstance(e, KeyError) else str(e)
            detail = " ".join(f"{e.__class__.__name__}: {detail}".split())
            raise NetworkFileError(
                f"{what} is not a valid integer network file ({detail}); write it again with "
                "`spikepack quantize`, `spikepack train --out` or IntNetwork.save"
            ) from None

    @classmethod
    def _load(cls, path) -> IntNetwork:
        with np.load(path) as f:
            layers = []
            for i in range(int(f["n_layers"])):
                meta = [str(x) for x in f[f"l{i}_meta"]]
                mode, readout, wb, k, reset, kind = meta[:6]
                above = len(meta) > 6 and bool(int(meta[6]))  # files before these: False
                leaked = len(meta) > 7 and bool(int(meta[7]))
                geom = f[f"l{i}_geom"] if f"l{i}_geom" in f.files else None
                layers.append(IntLayer(
                    weight=f[f"l{i}_weight"], bias=f[f"l{i}_bias"], theta=f[f"l{i}_theta"],
                    mode=Mode(mode), readout=bool(int(readout)), weight_bits=int(wb),
                    leak_shift=int(k), reset=Reset(reset), kind=kind, fire_above=above,
                    compare_leaked=leaked,
                    **_geom_from_array(geom, kind),
                ))
            return cls(layers=tuple(layers), T=int(f["T"]))


#: Order of the integers in a saved layer's ``l{l}_geom`` array (0 where a field does not apply).
GEOM_FIELDS = ("in_c", "in_h", "in_w", "stride", "padding", "pool_kernel", "pool_stride",
               "has_residual", "residual_source", "residual_gain", "padding_w")


def _geom_to_array(layer: IntLayer) -> np.ndarray:
    conv = layer.kind == "conv"
    c, h, w = layer.in_shape if conv else (0, 0, 0)
    pool, res = layer.pool, layer.residual
    return np.array([
        c, h, w, layer.stride, layer.padding,
        pool.kernel if pool else 0, pool.stride if pool else 0,
        int(res is not None), res.source if res else 0, res.gain if res else 0,
        layer.padding_w,
    ], dtype=np.int64)


def _geom_from_array(geom, kind: str) -> dict:
    if geom is None:
        return {}
    values = [int(x) for x in geom]
    if len(values) == len(GEOM_FIELDS) - 1:  # files before padding_w: the rows' padding
        values.append(values[GEOM_FIELDS.index("padding")])
    g = dict(zip(GEOM_FIELDS, values, strict=True))
    out = dict(stride=g["stride"], padding=g["padding"], padding_w=g["padding_w"])
    if kind == "conv":
        out["in_shape"] = (g["in_c"], g["in_h"], g["in_w"])
    if g["pool_kernel"]:
        out["pool"] = MaxPool(g["pool_kernel"], g["pool_stride"])
    if g["has_residual"]:
        out["residual"] = Residual(g["residual_source"], g["residual_gain"])
    return out


def _check_shapes(layers: tuple[IntLayer, ...]) -> None:
    """Check the conv-related agreements between layers (kinds, shapes, shortcut sources)."""
    for i, (a, b) in enumerate(itertools.pairwise(layers)):
        if b.kind == "conv" and a.kind != "conv":
            raise ValueError(
                f"layer {i + 1} is a conv layer after dense layer {i}; a conv layer takes a "
                f"feature map (C, H, W), so put conv layers before dense ones"
            )
        if b.kind == "conv" and b.in_shape != a.out_shape:
            raise ValueError(
                f"layer {i + 1} expects a (C, H, W) input of {b.in_shape} but layer {i} gives "
                f"{a.out_shape}"
            )
    for i, layer in enumerate(layers):
        res = layer.residual
        if res is None:
            continue
        if res.source == NETWORK_INPUT:
            src_name, src_shape = "the network input", layers[0].in_shape
        elif 0 <= res.source < i:
            src_name, src_shape = f"layer {res.source}", layers[res.source].out_shape
        else:
            raise ValueError(
                f"layer {i}'s residual source {res.source} is not an earlier layer; use 0..{i - 1} "
                f"or NETWORK_INPUT ({NETWORK_INPUT})"
            )
        if src_shape != layer.conv_shape:
            raise ValueError(
                f"layer {i}'s residual source, {src_name}, has shape {src_shape} but the layer's "
                f"pre-pool output is {layer.conv_shape}; the shortcut adds position by position"
            )


#: What reading a damaged ``.npz`` can raise: zipfile, numpy's header parser (ValueError,
#: SyntaxError, tokenize.TokenError), zlib, our own checks and more (RuntimeError for zip flag
#: bits) -- any exception while decoding the bytes means the file is damaged, and the message
#: keeps its class and text.
_LOAD_ERRORS = (Exception,)

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def _check_npz_magic(path, what: str) -> None:
    """Say plainly what a file is when it is not a zip archive (numpy's messages mislead)."""
    if isinstance(path, (str, os.PathLike)):
        with open(path, "rb") as fh:  # FileNotFoundError passes through
            head = fh.read(8)
    else:
        pos = path.tell()
        head = path.read(8)
        path.seek(pos)
    if not head:
        raise NetworkFileError(f"{what} is empty (0 bytes); write it again with `spikepack "
                               "quantize`, `spikepack train --out` or IntNetwork.save")
    if head.startswith(_NPY_MAGIC):
        raise NetworkFileError(f"{what} is a single NumPy array (.npy), not an integer network "
                               ".npz archive; write the network with IntNetwork.save")
    if not head.startswith(_ZIP_MAGICS):
        raise NetworkFileError(f"{what} is not an .npz archive (it does not start like a zip "
                               "file); give an integer network from `spikepack quantize`, "
                               "`spikepack train --out` or IntNetwork.save")


def write_file_atomically(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    Readers see the old file or the complete new one, never a partial write; on any error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist "
                                "(create it first)")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)  # mkstemp makes the file 0600; give it what open() would
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
