"""A tiny random conv network the conv CLI tests share."""

from __future__ import annotations

from sim.golden.ir import IntLayer, IntNetwork, MaxPool


def tiny_cnn(rng, in_shape=(1, 8, 8), T=4):
    """conv k3 s1 p1 + max pool 2 -> conv k3 s2 p1 -> dense readout, random integers."""
    c_in = in_shape[0]
    c1 = IntLayer(weight=rng.integers(-8, 9, (6, c_in, 3, 3)), bias=rng.integers(-4, 5, 6),
                  theta=rng.integers(10, 30, 6), kind="conv", in_shape=in_shape, stride=1,
                  padding=1, pool=MaxPool(2))
    c2 = IntLayer(weight=rng.integers(-8, 9, (8, 6, 3, 3)), bias=rng.integers(-4, 5, 8),
                  theta=int(rng.integers(30, 60)), kind="conv", in_shape=c1.out_shape, stride=2,
                  padding=1)
    out = IntLayer(weight=rng.integers(-8, 9, (10, c2.n_out)), bias=rng.integers(-4, 5, 10),
                   theta=1, readout=True)
    return IntNetwork((c1, c2, out), T)
