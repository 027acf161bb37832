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
import io
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
#: then fits int64 for every ``T`` up to ``sim.packing.T_LIMIT``, so no threshold arithmetic wraps.
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
        """Write the network to an ``.npz`` file (read back with :meth:`load`).

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
                 str(layer.leak_shift), layer.reset.value, layer.kind]
            )
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
                mode, readout, wb, k, reset, kind = (str(x) for x in f[f"l{i}_meta"])
                layers.append(IntLayer(
                    weight=f[f"l{i}_weight"], bias=f[f"l{i}_bias"], theta=f[f"l{i}_theta"],
                    mode=Mode(mode), readout=bool(int(readout)), weight_bits=int(wb),
                    leak_shift=int(k), reset=Reset(reset), kind=kind,
                ))
            return cls(layers=tuple(layers), T=int(f["T"]))


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
