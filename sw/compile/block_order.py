"""Neuron order for skipping: inputs that are silent together share a spike block.

The issuer skips a block's beat only when all ``k`` of its inputs are silent in the beat's bit
planes (``hw.core.issuer``; ``planes_per_beat`` planes a beat). Which ``k`` inputs share a block is
the order of the layer's inputs, and that order is free: a dense layer's output is the same sum of
the same integer products whatever order its inputs come in, and a hidden layer's neurons can be
stored in any order as long as the next layer's weight columns follow them. So the compiler may
store every dense layer's inputs in an order of its choosing,

    ``W_l[:, order_l]``,  and for a hidden layer ``l - 1``:  ``W_(l-1)[order_l]``, ``b[order_l]``,
    ``theta[order_l]``,

and the network the device runs computes exactly the original's outputs (the last layer's outputs
keep their order; the network input is put in order by the host, ``encode_inputs``). Only the
skipping changes: the device's skip counters count the blocks of the ordered network, its spike
counters and outputs are the same.

:func:`plan_block_order` picks the orders from sample inputs (calibration data the user supplies,
not the images it is measured on): for each reorderable layer input it forms blocks greedily, each
started from the least active input left and grown by the input that adds the fewest new
non-zero beats over the samples (beats: a sample's ``planes_per_beat`` bit planes, as the issuer
sends them). Inputs that are silent on the same images and in the same planes (the border pixels of
a digit, neurons that answer the same strokes) end up together, and their blocks are skipped where
today's order mixes them with active ones. On the MNIST MLP (docs/results.md) the first layer's
beats per pass drop by about a third.

It applies to networks of dense layers (no conv layer, no shortcut); a conv network's blocks are
channel chunks of a map position that the writer lays out, and are left as they are.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork
from sim.golden.packing import check_packed

__all__ = ["BlockOrder", "plan_block_order", "orderable", "ordered_network", "beat_activity",
           "beats_per_pass"]

#: Calibration samples :func:`plan_block_order` uses at most (the first ones given).
MAX_SAMPLES = 4096


@dataclasses.dataclass(frozen=True)
class BlockOrder:
    """The order the device stores each layer's inputs in.

    Members
    -------
    orders : tuple of (tuple of int or None)
        One entry per layer: ``orders[l][j]`` is the original index of the input layer ``l``
        reads at position ``j`` (``None``: the original order). ``orders[0]`` orders the network
        input (the host writes it so), ``orders[l]`` for ``l >= 1`` the outputs of layer ``l - 1``.
    """

    orders: tuple[tuple[int, ...] | None, ...]

    def __post_init__(self):
        orders = tuple(None if o is None else tuple(int(i) for i in o) for o in self.orders)
        for li, o in enumerate(orders):
            if o is not None and sorted(o) != list(range(len(o))):
                raise ValueError(f"layer {li}'s input order is not a permutation of "
                                 f"0..{len(o) - 1}")
        object.__setattr__(self, "orders", orders)

    @property
    def identity(self) -> bool:
        """True when no layer's inputs are reordered."""
        return all(o is None or list(o) == list(range(len(o))) for o in self.orders)

    def inputs(self, x) -> np.ndarray:
        """A batch ``(n, n_in)`` of network inputs in the order the device stores them."""
        x = np.asarray(x)
        return x if self.orders[0] is None else x[:, list(self.orders[0])]

    def check(self, net: IntNetwork) -> None:
        """Refuse an order that does not belong to ``net``."""
        if len(self.orders) != len(net.layers):
            raise ValueError(f"the order has {len(self.orders)} layers, the network "
                             f"{len(net.layers)}")
        if not orderable(net) and not self.identity:
            raise ValueError("only a network of dense layers without shortcuts is reordered")
        for li, (o, layer) in enumerate(zip(self.orders, net.layers, strict=True)):
            if o is not None and len(o) != layer.n_in:
                raise ValueError(f"layer {li} has {layer.n_in} inputs; its order has {len(o)}")


def orderable(net: IntNetwork) -> bool:
    """A network whose layers' inputs may be stored in any order: dense layers only, no
    shortcut."""
    return all(layer.kind == "dense" and layer.residual is None for layer in net.layers)


def ordered_network(net: IntNetwork, order: BlockOrder) -> IntNetwork:
    """The network the device runs: every layer's inputs in ``order`` (its inputs written by
    :meth:`BlockOrder.inputs`), the same outputs as ``net`` exactly."""
    order.check(net)
    layers = []
    for li, layer in enumerate(net.layers):
        w = np.asarray(layer.weight)
        change = {}
        if order.orders[li] is not None:
            w = w[:, list(order.orders[li])]
            change["weight"] = w
        nxt = order.orders[li + 1] if li + 1 < len(net.layers) else None
        if nxt is not None:  # this layer's outputs stored in the next layer's order
            rows = list(nxt)
            change["weight"] = w[rows]
            change["bias"] = np.asarray(layer.bias)[rows]
            if np.ndim(layer.theta) == 1:
                change["theta"] = np.asarray(layer.theta)[rows]
        layers.append(dataclasses.replace(layer, **change) if change else layer)
    return IntNetwork(tuple(layers), net.T)


def beat_activity(a, T: int, planes: int) -> np.ndarray:
    """Which inputs are non-zero in which beat: bool ``(n slots, n_in)``, one row per sample and
    beat slot (bit planes ``planes s .. planes s + planes - 1`` below ``T``)."""
    a = np.asarray(a, dtype=np.int64) & ((1 << T) - 1)
    slots = -(-T // planes)
    mask = (1 << planes) - 1
    rows = [((a >> (planes * s)) & mask) != 0 for s in range(slots)]
    return np.concatenate(rows, axis=0)


def _mean_beats(a, T: int, params: CoreParams) -> float:
    """Beats one pass takes on inputs ``a`` ``(n, n_in)``, the mean over the samples: the
    (block, beat slot) pairs with a spike, as the issuer sends them."""
    n, n_in = a.shape
    act = beat_activity(a, T, params.planes_per_beat)  # (slots n, n_in)
    act = np.pad(act, ((0, 0), (0, -n_in % params.k)))
    return float(act.reshape(len(act), -1, params.k).any(axis=2).sum() / n)


def beats_per_pass(net: IntNetwork, x, params: CoreParams, order: BlockOrder) -> list:
    """Per layer, ``(before, after)``: the mean beats one pass takes on the golden model's layer
    inputs for ``x`` in their own order and in ``order`` (``None`` where the layer keeps its
    order)."""
    from sim.golden.model import run_network

    x = np.atleast_2d(np.asarray(x))
    res = run_network(net, x)
    inputs = [x] + [r.output.reshape(len(x), -1) for r in res.layers[:-1]]
    return [None if o is None else (_mean_beats(a, net.T, params),
                                    _mean_beats(a[:, list(o)], net.T, params))
            for a, o in zip(inputs, order.orders, strict=True)]


def _greedy_blocks(active: np.ndarray, k: int) -> list[int]:
    """Inputs in blocks of ``k``: each block starts from the least active input left and takes
    the input adding the fewest rows (beats) in which the block is non-zero; ties to the lower
    index. ``active``: bool ``(rows, n)``."""
    n = active.shape[1]
    bits = np.packbits(active, axis=0).T.copy()  # (n, bytes): each input's rows as bits
    counts = np.bitwise_count(bits).sum(axis=1)
    left = list(np.argsort(counts, kind="stable"))
    order: list[int] = []
    while left:
        first = left.pop(0)
        block, cur = [first], bits[first].copy()
        while len(block) < k and left:
            cand = np.array(left)
            new = np.bitwise_count(bits[cand] & ~cur).sum(axis=1)
            j = int(np.argmin(new))
            block.append(int(cand[j]))
            cur |= bits[cand[j]]
            left.pop(j)
        order += [int(i) for i in block]
    assert sorted(order) == list(range(n))
    return order


def plan_block_order(net: IntNetwork, x, params: CoreParams, *,
                     max_samples: int = MAX_SAMPLES) -> BlockOrder:
    """Orders for ``net``'s layer inputs from calibration inputs ``x`` (packed, ``(n, n_in)``),
    for a build with ``params`` (its ``k`` lanes and ``planes_per_beat``). A network that is not
    :func:`orderable` gets the identity (every entry ``None``).

    The last layer's outputs keep their order; a layer input of at most ``k`` neurons (one block)
    keeps its order (nothing to gain)."""
    n_layers = len(net.layers)
    if not orderable(net):
        return BlockOrder((None,) * n_layers)
    from sim.golden.model import run_network

    x = check_packed(np.atleast_2d(np.asarray(x))[:max_samples], net.T, "calibration inputs")
    if x.shape[1] != net.n_in:
        raise ValueError(f"the network takes {net.n_in} inputs; the calibration inputs have "
                         f"{x.shape[1]}")
    if len(x) == 0:
        raise ValueError("plan_block_order needs at least one calibration sample")
    res = run_network(net, x)
    inputs = [x] + [r.output.reshape(len(x), -1) for r in res.layers[:-1]]
    orders = []
    for layer, a in zip(net.layers, inputs, strict=True):
        if layer.n_in <= params.k:
            orders.append(None)
            continue
        active = beat_activity(a, net.T, params.planes_per_beat)
        orders.append(tuple(_greedy_blocks(active, params.k)))
    return BlockOrder(tuple(orders))
