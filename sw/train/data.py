"""Data sets as typed splits of inputs in ``[0, 1]`` and integer labels.

``digits`` is scikit-learn's 1,797 8x8 handwritten digits (ships with the package: real data,
no download). ``mnist`` reads the original IDX files from a directory the user points to (nothing
is downloaded at run time).
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np

from sim.golden.packing import quantize_unit_interval

DATASETS = ("digits", "mnist")


@dataclasses.dataclass(frozen=True)
class Split:
    """A fixed train/test split. ``x_*`` are float64 in ``[0, 1]``, shape (n, features)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def packed(self, T: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and test inputs as packed ``T``-bit integers (what the accelerator receives)."""
        return quantize_unit_interval(self.x_train, T), quantize_unit_interval(self.x_test, T)


def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn digits, stratified, seeded split (default 1,437 train / 360 test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split("digits", x_tr, y_tr, x_te, y_te, 10)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX data is supported (type {raw[2]:#x})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {data.size} bytes (truncated?)")
    return data.reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(
        f"{stem}[.gz] not found in {directory}; download the MNIST IDX files there first")


def load_mnist_split(directory) -> Split:
    """MNIST from the four IDX files (``train-images-idx3-ubyte[.gz]`` ...) in ``directory``."""
    d = Path(directory)
    x_tr = _read_idx(_find(d, "train-images-idx3-ubyte"))
    y_tr = _read_idx(_find(d, "train-labels-idx1-ubyte"))
    x_te = _read_idx(_find(d, "t10k-images-idx3-ubyte"))
    y_te = _read_idx(_find(d, "t10k-labels-idx1-ubyte"))
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64) / 255.0  # noqa: E731
    return Split("mnist", flat(x_tr), y_tr.astype(np.int64), flat(x_te), y_te.astype(np.int64), 10)


def load_split(name: str, *, seed: int = 0, data_dir=None) -> Split:
    """Load a data set by name (see :data:`DATASETS`)."""
    if name == "digits":
        return load_digits_split(seed)
    if name == "mnist":
        if data_dir is None:
            raise ValueError("mnist needs --data-dir pointing at the MNIST IDX files")
        return load_mnist_split(data_dir)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
