"""Data sets as flat typed splits of inputs in ``[0, 1]`` and integer labels (what the MLPs take).

The data sets themselves (``digits``, ``mnist-5k``, ``mnist``, ``fashion-mnist``, ``cifar10``,
``npz:PATH``) are loaded by :mod:`sw.datasets` as ``(N, C, H, W)`` images; :class:`Split` is their
flat view. Nothing is downloaded at run time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.golden.packing import quantize_unit_interval

from .datasets import DataError, Dataset, dataset_names, load_dataset

__all__ = ["DATASETS", "DataError", "Split", "load_digits_split", "load_mnist_split",
           "load_split"]

DATASETS = dataset_names()


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

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Split:
        """The flat view of ``ds``: ``(N, C*H*W)`` float64 in ``[0, 1]``, in C, H, W order."""
        return cls(ds.name, ds.flat("train"), ds.y_train, ds.flat("test"), ds.y_test,
                   ds.n_classes)


def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn digits, stratified, seeded split (default 1,437 train / 360 test)."""
    return Split.from_dataset(load_dataset("digits", seed=seed, test_fraction=test_fraction))


def load_mnist_split(directory) -> Split:
    """MNIST from the four IDX files (``train-images-idx3-ubyte[.gz]`` ...) in ``directory``."""
    return Split.from_dataset(load_dataset("mnist", directory))


def load_split(name: str, *, seed: int = 0, data_dir=None) -> Split:
    """Load a data set by name (see :data:`sw.datasets.REGISTRY`) as a flat split for the MLPs.

    Raises
    ------
    sw.datasets.DataError
        The name is unknown, or the data set is missing or malformed (one line, what to do).
    """
    return Split.from_dataset(load_dataset(name, data_dir, seed=seed))
