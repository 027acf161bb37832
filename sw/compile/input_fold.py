"""Kernel-column folding of a thin first conv layer: the lanes a 1- or 3-channel image leaves idle.

A spike block carries ``k`` channels of one map position. A first conv layer on a 1-channel image
fills one lane of ``k`` (MNIST: 1 of 16), so its walk takes ``kh kw`` beats per output position
and pass where the array could take the whole kernel row at once. The host writes the image
itself, so it can write it differently: the folded input map stores at position ``(y, x)`` the
``kw`` columns ``x .. x + kw - 1`` of the image, zero-padded left and right, side by side as
channels,

    ``x_f[kx C + c, y, x] = x_padw[c, y, x + kx]``,  shape ``(kw C, H, W + 2 p - kw + 1)``,

and the layer becomes a ``kh x 1`` convolution over it that pads rows only (``padding = p``,
``padding_w = 0``: the descriptor's ``pad_rows_only``), with weights
``W_f[o, kx C + c, ky, 0] = W[o, c, ky, kx]``. The top and bottom padding stays padding: its
taps take no step of the walk and it is not sent. A build without ``pad_rows``
(``hw.contract.params.CoreParams``) stores the ``2 p`` rows of padding in the folded map instead
(``rows_stored``: shape ``(kw C, H + 2 p, W + 2 p - kw + 1)``, a ``kh x 1`` layer without
padding), as every build did until 2026-12-04. Every output is the same sum of the same integer
products in another order, so the folded network's outputs equal the original's exactly (tested
against the golden model); only the walk changes: ``kh ceil(kw C / k)`` tap-chunks per position
and pass instead of ``kh kw ceil(C / k)``.

The fold is a pure function of the network and the build (:func:`plan_input_fold`), made by the
compiler (:func:`sw.compile.program_image.build_image` lays out the folded network and
:func:`sw.compile.program_image.encode_inputs` folds each image) and by everything that predicts
what the device counts (:func:`device_network`: skip counters and cycles of the layer the device
really runs). It is made only where it pays and costs nothing the user sees:

* the first layer is a conv layer with stride 1 and ``kw > 1`` (the fold needs the horizontal
  stride 1; the descriptor has one stride for both axes);
* folding fills fewer blocks per position: ``ceil(kw C / k) < kw ceil(C / k)``;
* no shortcut reads the network input (it would read the folded map);
* the folded map fits the descriptor's 8-bit sides, and the build's INPUT region holds as many
  samples of it as of the unfolded map (``2 p - kw + 1`` more columns, none for a "same"
  convolution; and ``2 p`` more rows where they are stored).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.contract.params import CoreParams
from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork

from .conv_layout import CONV_LIMITS

__all__ = ["InputFold", "plan_input_fold", "folded_network", "device_network"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclasses.dataclass(frozen=True)
class InputFold:
    """The fold of a first conv layer with kernel width ``kw`` and padding ``pad`` over images of
    shape ``in_shape = (C, H, W)``.

    Members
    -------
    folded_shape : (int, int, int)
        The map the device stores per sample: ``(kw C, H, W + 2 pad - kw + 1)``, ``2 pad``
        rows more with ``rows_stored``.
    """

    in_shape: tuple[int, int, int]
    kw: int
    pad: int
    #: The padding rows are stored in the folded map (builds without ``pad_rows``; every image
    #: file before 2026-12-04) rather than padded by the walk.
    rows_stored: bool = True

    @property
    def folded_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        rows = h + 2 * self.pad if self.rows_stored else h
        return (self.kw * c, rows, w + 2 * self.pad - self.kw + 1)

    def fold_inputs(self, x) -> np.ndarray:
        """Fold a batch of images: ``(batch, C, H, W)`` or ``(batch, C H W)`` (the ``(C, H, W)``
        flatten order) -> ``(batch,) + folded_shape``."""
        x = np.asarray(x, dtype=np.int64)
        maps = x.reshape((len(x),) + tuple(self.in_shape))
        p = self.pad
        rows = p if self.rows_stored else 0
        padded = np.pad(maps, ((0, 0), (0, 0), (rows, rows), (p, p)))
        width = self.folded_shape[2]
        cols = [padded[:, :, :, kx:kx + width] for kx in range(self.kw)]  # kx-major channels
        return np.concatenate(cols, axis=1)

    def fold_layer(self, layer: IntLayer) -> IntLayer:
        """The ``kh x 1`` layer over the folded map that computes ``layer``: its padding on the
        rows only (none with ``rows_stored``)."""
        w = np.asarray(layer.weight)
        co, c, kh, kw = w.shape
        folded = w.transpose(0, 3, 1, 2).reshape(co, kw * c, kh, 1)  # [o, kx C + c, ky, 0]
        pad = 0 if self.rows_stored else self.pad
        return dataclasses.replace(layer, weight=folded, in_shape=self.folded_shape,
                                   padding=pad, padding_w=0)


def _blocks(shape, k: int) -> int:
    c, h, w = shape
    return h * w * _ceil_div(c, k)


def plan_input_fold(net: IntNetwork, params: CoreParams) -> InputFold | None:
    """The fold the compiler makes of ``net``'s first layer on a build with ``params``, or
    ``None`` where it would not pay or would cost the user anything (module docstring)."""
    first = net.layers[0]
    if first.kind != "conv" or first.stride != 1 or not params.conv:
        return None
    c, h, w = first.in_shape
    kw, k = first.kernel[1], params.k
    if kw < 2 or _ceil_div(kw * c, k) >= kw * _ceil_div(c, k):
        return None
    if any(layer.residual is not None and layer.residual.source == NETWORK_INPUT
           for layer in net.layers):
        return None
    fold = InputFold((c, h, w), kw, first.padding, rows_stored=not params.pad_rows)
    folded = fold.folded_shape
    if max(folded[1:]) > CONV_LIMITS.side:  # the descriptor's 8-bit sides
        return None
    blocks, before = _blocks(folded, k), _blocks(first.in_shape, k)
    room = params.input_blocks
    if blocks > room or min(params.batch_depth, room // blocks) < min(params.batch_depth,
                                                                      room // before):
        return None
    return fold


def folded_network(net: IntNetwork, params: CoreParams) -> IntNetwork:
    """The network the device runs for ``net`` with ``params``: its first layer folded where
    :func:`plan_input_fold` folds, else ``net`` itself."""
    fold = plan_input_fold(net, params)
    if fold is None:
        return net
    return IntNetwork((fold.fold_layer(net.layers[0]),) + tuple(net.layers[1:]), net.T)


def device_network(net: IntNetwork, x, params: CoreParams) -> tuple[IntNetwork, np.ndarray]:
    """The network and inputs the device runs for ``net`` on ``x`` with ``params``: the folded
    first layer and folded images where :func:`plan_input_fold` folds, else ``net`` and ``x``.

    Every layer's outputs are the same in both (the fold is exact), so a golden result of ``net``
    serves the device network too; what differs is what the first layer's walk fetches."""
    fold = plan_input_fold(net, params)
    if fold is None:
        return net, x
    x = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    return folded_network(net, params), fold.fold_inputs(x)
