"""The integer network: the typed model every stage agrees on.

The quantizer (``sw.quantize``) produces an :class:`IntNetwork`; the golden model (``sim.golden``)
runs it; the compiler turns it into a program image for the accelerator. It holds integers only.

A layer is fully connected (``kind="dense"``; the field leaves room for convolutions). Its mode is
``"spikepack"`` (packed form, one product per neuron, serial MSB-first firing) or ``"lif"`` (one
membrane update per time step with a shift leak). The last layer of a network is usually a readout:
it returns its membrane value instead of firing.
"""

from __future__ import annotations

import dataclasses
import enum
import operator

import numpy as np

from .packing import as_int_array, check_T


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


@dataclasses.dataclass(frozen=True)
class IntLayer:
    """One integer layer.

    Parameters
    ----------
    weight : ndarray, shape (n_out, n_in)
        Signed integer weights, each in ``[-2**(weight_bits-1), 2**(weight_bits-1) - 1]``.
    bias : ndarray, shape (n_out,)
        Signed integer bias, added once (SpikePack) or every time step (LIF).
    theta : int or ndarray, shape (n_out,)
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
    fire_above : bool
        LIF only: spike when ``v > theta`` (``v >= theta + 1``) instead of ``v >= theta``; a soft
        reset still subtracts ``theta``. This is snnTorch's and NIR's strict compare with a
        threshold that reset by subtraction must remove whole.
    compare_leaked : bool
        LIF only: compare against ``theta - (theta >> k)`` (plus ``fire_above``), the threshold
        after one leak, while a soft reset still subtracts ``theta`` before the leak. With
        ``theta = theta_graph / beta`` this is a subtraction of ``theta_graph`` landing after the
        next leak (snnTorch's ``reset_delay=True``).
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
    fire_above: bool = False
    compare_leaked: bool = False

    def __post_init__(self):
        weight = as_int_array(self.weight, "weight")
        if weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (n_out, n_in), not shape {weight.shape}")
        n_out, _ = weight.shape
        bias = as_int_array(self.bias, "bias")
        if bias.shape != (n_out,):
            raise ValueError(f"bias must have shape ({n_out},), not {bias.shape}")
        theta = as_int_array(self.theta, "theta")
        if theta.ndim not in (0, 1) or (theta.ndim == 1 and theta.shape != (n_out,)):
            raise ValueError(f"theta must be a scalar or have shape ({n_out},), not {theta.shape}")
        if theta.size and theta.min() <= 0:
            raise ValueError(f"theta must be a positive integer, got minimum {theta.min()}")
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
        if self.kind != "dense":
            raise ValueError(f"layer kind {self.kind!r} is not supported yet (only 'dense')")
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

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]

    @property
    def theta_vector(self) -> np.ndarray:
        """Threshold broadcast to one value per output channel."""
        return np.broadcast_to(self.theta, (self.n_out,)).copy()


@dataclasses.dataclass(frozen=True)
class IntNetwork:
    """A feed-forward integer network: ``T`` time steps, layers in order.

    The input is one packed ``T``-bit word per input neuron.
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
        object.__setattr__(self, "layers", layers)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def save(self, path) -> None:
        """Write the network to an ``.npz`` file (read back with :meth:`load`)."""
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
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> IntNetwork:
        with np.load(path) as f:
            layers = []
            for i in range(int(f["n_layers"])):
                meta = [str(x) for x in f[f"l{i}_meta"]]
                mode, readout, wb, k, reset, kind = meta[:6]
                above = len(meta) > 6 and bool(int(meta[6]))  # files before these: False
                leaked = len(meta) > 7 and bool(int(meta[7]))
                layers.append(IntLayer(
                    weight=f[f"l{i}_weight"], bias=f[f"l{i}_bias"], theta=f[f"l{i}_theta"],
                    mode=Mode(mode), readout=bool(int(readout)), weight_bits=int(wb),
                    leak_shift=int(k), reset=Reset(reset), kind=kind, fire_above=above,
                    compare_leaked=leaked,
                ))
            return cls(layers=tuple(layers), T=int(f["T"]))
