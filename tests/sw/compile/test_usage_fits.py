"""``sw.compile.targets.usage``: a network that compiles uses no resource beyond its build.

Found from the CLI side (``spikepack compile`` of a conv network): the "largest map" row counted
the network's input map, which lives in the INPUT region (``in_blocks``), against a ping-pong half
(``act_chunks``), so the MNIST CNN on the Arty A7 printed ``784 / 256  306%`` and then ``fits``.
The input now has a row of its own against ``in_blocks``.
"""

import numpy as np
import pytest

from boards import BOARDS, SMALL
from sim.golden.ir import IntLayer, IntNetwork, MaxPool
from sw.compile.program_image import build_image
from sw.compile.targets import usage


def mnist_cnn_shaped(rng):
    """The MNIST CNN's shapes (conv 16 k5 + pool 2, conv 32 k5 + pool 2, dense 1568 -> 10)."""
    c1 = IntLayer(weight=rng.integers(-8, 9, (16, 1, 5, 5)), bias=np.zeros(16, np.int64),
                  theta=500, kind="conv", in_shape=(1, 28, 28), padding=2, pool=MaxPool(2))
    c2 = IntLayer(weight=rng.integers(-8, 9, (32, 16, 5, 5)), bias=np.zeros(32, np.int64),
                  theta=900, kind="conv", in_shape=c1.out_shape, padding=2, pool=MaxPool(2))
    out = IntLayer(weight=rng.integers(-8, 9, (10, c2.n_out)), bias=np.zeros(10, np.int64),
                   theta=1, readout=True)
    return IntNetwork((c1, c2, out), 4)


def small_cnn(rng):
    """A 1x8x8 input (64 blocks of 4 channels) on SMALL, whose halves hold 32 blocks."""
    c1 = IntLayer(weight=rng.integers(-8, 9, (6, 1, 3, 3)), bias=np.zeros(6, np.int64),
                  theta=20, kind="conv", in_shape=(1, 8, 8), padding=1, pool=MaxPool(2))
    out = IntLayer(weight=rng.integers(-8, 9, (10, c1.n_out)), bias=np.zeros(10, np.int64),
                   theta=1, readout=True)
    return IntNetwork((c1, out), 4)


@pytest.mark.parametrize("make,params", [(mnist_cnn_shaped, BOARDS["arty_a7"].params),
                                         (mnist_cnn_shaped, BOARDS["ulx3s"].params),
                                         (small_cnn, SMALL)],
                         ids=["mnist_cnn-arty_a7", "mnist_cnn-ulx3s", "small_cnn-small"])
def test_a_network_that_fits_uses_at_most_its_build(rng, make, params):
    net = make(rng)
    image = build_image(net, params)  # it fits
    over = [f"{u.what} {u.used} / {u.capacity}" for u in usage(net, image) if u.fraction > 1]
    assert not over, f"a network that fits reports more than its build has: {over}"
