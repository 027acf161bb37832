"""Packed spikes: the one packing module shared by the golden model, the testbenches and the driver.

A packed activation is an unsigned T-bit integer ``a`` in ``[0, 2**T - 1]``. Its spike train is its
binary code, most significant bit first: bit-plane ``t`` (``t = 1..T``) holds the spike at time step
``t``, so ``a = sum_t s_t * 2**(T - t)``.

Arrays use the leading axis for time: ``planes[t - 1]`` is bit-plane ``t``.

Feature maps (conv layers) are ``(C, H, W)`` in the IR; :func:`feature_map_blocks` gives the
memory's channel-chunked HWC blocks (``k`` channels per position) and
:func:`feature_map_from_blocks` reads them back.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3 -- packed spikes.
"""

from __future__ import annotations

import operator

import numpy as np

#: Largest number of time steps the golden model accepts (the hardware's T_max is a build
#: parameter).
T_LIMIT = 16


def check_T(T) -> int:
    """Return ``T`` as an ``int`` after checking that it is a whole number in ``1..T_LIMIT``."""
    try:
        T = operator.index(T)
    except TypeError:
        raise TypeError(f"T must be an integer number of time steps, not {T!r}") from None
    if not 1 <= T <= T_LIMIT:
        raise ValueError(f"T must be in 1..{T_LIMIT}, not {T}")
    return T


def as_int_array(x, name: str = "array") -> np.ndarray:
    """Return ``x`` as an ``int64`` array, refusing non-integer values instead of rounding them.

    Raises
    ------
    TypeError
        If ``x`` holds non-integer values (floats with a fractional part, NaN, infinity, objects)
        or is ragged.
    ValueError
        If a value lies outside the int64 range (``1e30``, ``2**63``): a cast would change it.
    """
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError, OverflowError) as e:  # ragged lists, ints beyond 64 bits
        raise TypeError(f"{name} must be a rectangular array of integers ({e})") from None
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has values beyond int64 (largest {arr.max()}, limit "
                             f"{np.iinfo(np.int64).max})")
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
            raise TypeError(
                f"{name} must hold integers; got non-integer floats (NaN, inf or fractions; "
                f"quantize first, e.g. with sw.compile.quantize)"
            )
        _check_int64_floats(arr, name)
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be an integer array, not dtype {arr.dtype}")


def _check_int64_floats(arr: np.ndarray, name: str) -> None:
    """Refuse whole floats outside ``[-2**63, 2**63)``: a cast would not keep their value."""
    if not arr.size:
        return
    lo, hi = float(arr.min()), float(arr.max())
    # -2**63 and 2**63 are exact floats; every float in [-2**63, 2**63) casts exactly.
    if lo < -(2.0 ** 63) or hi >= 2.0 ** 63:
        bad = lo if lo < -(2.0 ** 63) else hi
        raise ValueError(f"{name} holds {bad:g}, beyond the 64-bit integer range "
                         f"[-2**63, 2**63 - 1]; scale the values down before converting")


def check_packed(a, T: int, name: str = "activations") -> np.ndarray:
    """Return ``a`` as ``int64`` after checking every word lies in ``[0, 2**T - 1]``."""
    T = check_T(T)
    a = as_int_array(a, name)
    if a.size and (a.min() < 0 or a.max() > (1 << T) - 1):
        raise ValueError(
            f"{name} must be packed {T}-bit words in [0, {(1 << T) - 1}]; "
            f"got values in [{a.min()}, {a.max()}]"
        )
    return a


def unpack_bitplanes(a, T: int) -> np.ndarray:
    """Split packed words into bit-planes, MSB first.

    Returns an array of shape ``(T,) + a.shape`` with values 0/1 where ``out[t - 1]`` is the spike
    at time step ``t``.
    """
    T = check_T(T)
    a = check_packed(a, T)
    shifts = np.arange(T - 1, -1, -1, dtype=np.int64).reshape((T,) + (1,) * a.ndim)
    return (a[np.newaxis] >> shifts) & 1


def pack_bitplanes(planes) -> np.ndarray:
    """Join bit-planes (leading axis = time, MSB first) into packed words; inverse of unpack."""
    planes = as_int_array(planes, "bit-planes")
    if planes.ndim < 1:
        raise ValueError("bit-planes need a leading time axis")
    T = check_T(planes.shape[0])
    if planes.size and (planes.min() < 0 or planes.max() > 1):
        raise ValueError("bit-planes must hold only 0 and 1")
    weights = (1 << np.arange(T - 1, -1, -1, dtype=np.int64)).reshape(
        (T,) + (1,) * (planes.ndim - 1))
    return (planes * weights).sum(axis=0)


def plane_words(planes, width: int) -> np.ndarray:
    """Group one bit-plane axis into ``width``-bit words, neuron ``i`` at bit ``i % width``.

    ``planes`` has shape ``(T, N)``; the result has shape ``(T, ceil(N / width))``. This is how the
    packed-spike memory is read: bit ``t`` of ``width`` neurons in one word, so an all-zero chunk
    of a bit-plane is one zero word and can be skipped.
    """
    planes = as_int_array(planes, "bit-planes")
    T, N = planes.shape
    width = operator.index(width)
    chunks = -(-N // width)
    padded = np.zeros((T, chunks * width), dtype=np.int64)
    padded[:, :N] = planes
    weights = 1 << np.arange(width, dtype=np.int64) if width < 63 else None
    if weights is None:
        raise ValueError("plane word width must be below 63 bits for int64 arithmetic")
    return (padded.reshape(T, chunks, width) * weights).sum(axis=2)


def feature_map_blocks(a, k: int) -> np.ndarray:
    """Channel-chunked HWC layout of feature maps: ``(..., C, H, W) -> (..., H, W, ceil(C/k), k)``.

    The IR and the golden model keep feature maps channel-major ``(C, H, W)``; the packed-spike
    memory stores them position by position, ``k`` channels per block: block ``(y, x, j)`` holds
    channels ``j k .. j k + k - 1`` at ``(y, x)``, zero past ``C``. A receptive field is then
    gathered block by block, and a padding position is an all-zero block.
    """
    a = as_int_array(a, "feature maps")
    k = operator.index(k)
    if a.ndim < 3 or k < 1:
        raise ValueError(f"need feature maps (..., C, H, W) and k >= 1, not shape {a.shape}, k={k}")
    c = a.shape[-3]
    chunks = -(-c // k)
    hwc = np.moveaxis(a, -3, -1)
    pad = np.zeros(hwc.shape[:-1] + (chunks * k,), dtype=np.int64)
    pad[..., :c] = hwc
    return pad.reshape(hwc.shape[:-1] + (chunks, k))


def feature_map_from_blocks(blocks, channels: int) -> np.ndarray:
    """Inverse of :func:`feature_map_blocks`: ``(..., H, W, chunks, k) -> (..., C, H, W)``."""
    blocks = as_int_array(blocks, "feature map blocks")
    if blocks.ndim < 4 or not 0 < channels <= blocks.shape[-2] * blocks.shape[-1]:
        raise ValueError(f"blocks of shape {blocks.shape} cannot hold {channels} channels")
    hwc = blocks.reshape(blocks.shape[:-2] + (-1,))[..., :channels]
    return np.moveaxis(hwc, -1, -3)


def quantize_unit_interval(x, T: int) -> np.ndarray:
    """Packed ``T``-bit inputs from values in ``[0, 1]``: ``floor(clip(x, 0, 1) (2^T - 1) + 1/2)``.

    This is the input encoding of every model (float, integer, hardware): the float model sees
    ``a_0 / (2^T - 1)``, the integer model and the board see ``a_0``.
    """
    T = check_T(T)
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs must be finite")
    return np.floor(np.clip(x, 0.0, 1.0) * ((1 << T) - 1) + 0.5).astype(np.int64)


def popcount(a) -> np.ndarray:
    """Number of 1-bits (spikes) in each packed word."""
    a = as_int_array(a, "words")
    out = np.zeros_like(a)
    x = a.copy()
    while np.any(x):
        out += x & 1
        x >>= 1
    return out


def words_to_bytes(words, word_bytes: int, signed: bool = False) -> bytes:
    """Serialize integers little-endian, ``word_bytes`` each (host link and memory images)."""
    words = as_int_array(words, "words").ravel()
    lo = -(1 << (8 * word_bytes - 1)) if signed else 0
    hi = (1 << (8 * word_bytes - 1)) - 1 if signed else (1 << (8 * word_bytes)) - 1
    if words.size and (words.min() < lo or words.max() > hi):
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"values do not fit {word_bytes} byte(s) ({kind})")
    return b"".join(int(w).to_bytes(word_bytes, "little", signed=signed) for w in words)


def bytes_to_words(data: bytes, word_bytes: int, signed: bool = False) -> np.ndarray:
    """Inverse of :func:`words_to_bytes`."""
    if len(data) % word_bytes:
        raise ValueError(f"{len(data)} bytes is not a whole number of {word_bytes}-byte words")
    return np.array(
        [int.from_bytes(data[i : i + word_bytes], "little", signed=signed)
         for i in range(0, len(data), word_bytes)],
        dtype=np.int64,
    )
