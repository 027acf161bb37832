"""Convolution layers in the program image: feature-map placement, weight rows, descriptors.

:func:`sw.compile.program_image.build_image` hands a network with a conv layer to
:func:`conv_image_parts` and wraps what it returns in a ``ProgramImage``; dense-only networks
never come here, so their images are unchanged.

Layout (docs/architecture.md, "Convolution layers in the image"):

* a feature map ``(C, H, W)`` is stored as ``H W ceil(C / k)`` spike blocks in channel-chunked HWC
  order, block ``(y, x, j)`` (channels ``j k .. j k + k - 1`` at ``(y, x)``, zero past ``C``) at
  ``base + (y W + x) chunks + j`` (:func:`sim.golden.packing.feature_map_blocks`);
* the network input image is written the same way into the sample's INPUT slot;
* a conv layer's weights are ``passes x taps x chunks`` rows: row
  ``w_base + (p kh kw + ky kw + kx) chunks + j``, byte ``n k + i`` =
  ``W[p n_pe + n, j k + i, ky, kx]`` (zero past ``C_out`` and ``C_in``); the same rows serve
  every output position;
* a dense layer after a conv layer reads the map's blocks as its input chunks, its weight columns
  permuted from the IR's ``(C, H, W)`` flatten order to block order (zero columns for the padding
  channels);
* every layer reads its input where the layer before wrote it (layer 0: the sample's INPUT slot);
  a dense layer writes the bottom of ping-pong half ``l % 2``, a conv layer at ``out_base`` (the
  bottom of its half unless a live shortcut source is there);
* a shortcut source (a residual) stays where its layer wrote it; the compiler places later maps
  around it (first fit in the two halves) and refuses a network whose maps do not fit around it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.contract.memory_map import encode_descriptor, memory_map, weight_words
from hw.contract.params import CoreParams
from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, Mode, Reset
from sim.golden.packing import feature_map_blocks

from .errors import DoesNotFitError, check_layer_fits, check_network_fits

__all__ = ["KIND_DENSE", "KIND_CONV", "ConvLimits", "CONV_LIMITS", "conv_image_parts", "conv_fetch",
           "conv_weight_rows", "dense_after_conv_weight", "MapPlacement", "place_feature_maps"]

KIND_DENSE = 0
KIND_CONV = 1


@dataclasses.dataclass(frozen=True)
class ConvLimits:
    """Largest values the conv descriptor fields hold (``memory_map.DESCRIPTOR_FIELDS``)."""

    side: int = 255  #: in_h, in_w, conv_h, conv_w (8 bits)
    kernel: int = 7  #: kh, kw (3 bits)
    stride: int = 3  #: 2 bits
    padding: int = 3  #: 2 bits
    pool_log2: int = 3  #: pool kernel 2, 4, 8 (stride = kernel)
    base: int = (1 << 11) - 1  #: out_base, res_base: block addresses (11 bits)


CONV_LIMITS = ConvLimits()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _where(li: int, layer: IntLayer) -> str:
    if layer.kind == "conv":
        c, h, w = layer.in_shape
        co, ho, wo = layer.out_shape
        return f"layer {li} (conv {c}x{h}x{w} -> {co}x{ho}x{wo})"
    return f"layer {li} ({layer.n_in} -> {layer.n_out})"


def _check_conv(where: str, layer: IntLayer, li: int, n_layers: int, p: CoreParams) -> int:
    """Refuse conv geometry the descriptor or the fetcher cannot express; return log2(pool)."""
    lim = CONV_LIMITS
    if li == n_layers - 1:
        # The core ends a program with a conv layer only as a row of one pass per position
        # (hw.core.sequencer): a batch of dense samples run as one map (sw.compile.batch_map).
        _, ch, _ = layer.conv_shape
        if ch != 1 or _ceil_div(layer.out_channels, p.n_pe) != 1 or layer.pool is not None \
                or layer.residual is not None:
            raise DoesNotFitError(
                f"{where}: the image ends a network with a conv layer only when its output is "
                f"one row of at most {p.n_pe} channels, without pooling or shortcut; end the "
                f"network with a dense layer (readout or firing)")
    elif layer.readout:
        raise DoesNotFitError(f"{where}: a conv readout is not supported; use a dense readout")
    kh, kw = layer.kernel
    _, h, w = layer.in_shape
    _, ch, cw = layer.conv_shape
    if max(kh, kw) > lim.kernel:
        raise DoesNotFitError(f"{where}: kernel {kh}x{kw} is larger than the descriptor's "
                              f"{lim.kernel}x{lim.kernel}; split it or use a smaller kernel")
    if layer.stride > lim.stride:
        raise DoesNotFitError(f"{where}: stride {layer.stride} is more than {lim.stride}")
    if layer.padding > lim.padding:
        raise DoesNotFitError(f"{where}: padding {layer.padding} is more than {lim.padding}")
    if layer.padding_w not in (layer.padding, 0):
        raise DoesNotFitError(f"{where}: padding {layer.padding} rows and {layer.padding_w} "
                              f"columns; the descriptor pads columns as rows or not at all "
                              f"(pad_rows_only); pad the input map itself")
    if max(h, w, ch, cw) > lim.side:
        raise DoesNotFitError(f"{where}: feature maps are at most {lim.side} positions a side")
    pool_log2 = 0
    if layer.pool is not None:
        pk, ps = layer.pool.kernel, layer.pool.stride
        if ps != pk or pk & (pk - 1) or not 2 <= pk <= 1 << lim.pool_log2:
            raise DoesNotFitError(f"{where}: max pooling {pk}x{pk} stride {ps} is not supported; "
                                  f"the writer pools windows of 2, 4 or 8 with stride = kernel")
        pool_log2 = pk.bit_length() - 1
    if layer.residual is not None and not -128 <= layer.residual.gain <= 127:
        raise DoesNotFitError(f"{where}: shortcut gain {layer.residual.gain} does not fit the "
                              f"descriptor's 8-bit gain")
    return pool_log2


def conv_weight_rows(layer: IntLayer, n_pe: int, k: int) -> np.ndarray:
    """Weight rows of a conv layer, shape ``(passes * kh * kw * chunks, n_pe * k)``.

    Row ``(p kh kw + ky kw + kx) chunks + j``, entry ``n k + i`` is
    ``W[p n_pe + n, j k + i, ky, kx]`` (0 past ``C_out`` or ``C_in``).
    """
    co, ci, kh, kw = layer.weight.shape
    chunks, passes = _ceil_div(ci, k), _ceil_div(co, n_pe)
    wpad = np.zeros((passes * n_pe, chunks * k, kh, kw), dtype=np.int64)
    wpad[:co, :ci] = layer.weight
    rows = wpad.reshape(passes, n_pe, chunks, k, kh, kw).transpose(0, 4, 5, 2, 1, 3)
    return rows.reshape(passes * kh * kw * chunks, n_pe * k)


def dense_after_conv_weight(weight, in_shape: tuple[int, int, int], k: int) -> np.ndarray:
    """A dense weight ``(n_out, C H W)`` in ``(C, H, W)`` column order, permuted to block order.

    Column ``((y W + x) chunks + j) k + i`` is the IR's column ``((j k + i) H + y) W + x``; the
    columns of padding channels (``j k + i >= C``) are 0.
    """
    c, h, w = in_shape
    wmat = np.asarray(weight, dtype=np.int64).reshape(-1, c, h, w)
    return feature_map_blocks(wmat, k).reshape(len(wmat), -1)


@dataclasses.dataclass(frozen=True)
class MapPlacement:
    """Where each layer's input, output and shortcut live (spike block addresses).

    Members
    -------
    out_base, out_blocks : tuple of int
        Per layer: first block of its output in the ping-pong area (``[0, 2 act_chunks)``) and
        the blocks it writes (``None`` for the last layer, which writes OUTPUT).
    """

    out_base: tuple
    out_blocks: tuple


def _map_blocks(shape, k: int) -> int:
    c, h, w = shape
    return h * w * _ceil_div(c, k)


def place_feature_maps(net: IntNetwork, p: CoreParams) -> MapPlacement:
    """Place every hidden layer's output in the two ping-pong halves; refuse what does not fit.

    A map is live from the layer that writes it to the last layer that reads it (the next layer,
    and any layer that takes it as a shortcut). Dense layers write the bottom of half ``l % 2``
    (as the dense gateware does); a conv layer takes the first free place, trying the bottom of
    its own half first. A conv layer followed by a dense one must write the bottom of its half,
    where the dense gateware reads.
    """
    A = p.act_chunks
    n = len(net.layers)
    last_use = list(range(1, n + 1))  # output l is read by l + 1
    for li, layer in enumerate(net.layers):
        if layer.residual is not None and layer.residual.source != NETWORK_INPUT:
            s = layer.residual.source
            last_use[s] = max(last_use[s], li)
    bases: list = [None] * n
    sizes: list = [None] * n
    for li, layer in enumerate(net.layers[:-1]):
        where = _where(li, layer)
        if layer.kind == "conv":
            size = _map_blocks(layer.out_shape, p.k)
        else:
            size = _ceil_div(layer.n_out, p.n_pe) * p.n_pe // p.k  # whole passes of blocks
        if size > A:
            raise DoesNotFitError(
                f"{where}: its output needs {size} spike blocks of {p.k} channels; a ping-pong "
                f"half holds {A} (act_chunks): use smaller feature maps or pool earlier")
        # Maps written before li and still read at li or later, and li's own input.
        busy = [(bases[j], bases[j] + sizes[j], j) for j in range(li)
                if last_use[j] >= li and bases[j] is not None]
        home = (li % 2) * A
        pinned = layer.kind != "conv" or net.layers[li + 1].kind == "dense"
        candidates = [home] if pinned else [home] + sorted(
            {e for _, e, _ in busy} | {0, A}
        )
        for base in candidates:
            if base + size <= 2 * A and all(base + size <= b0 or base >= b1 for b0, b1, _ in busy):
                break
        else:
            clash = [j for b0, b1, j in busy if not (home + size <= b0 or home >= b1)]
            raise DoesNotFitError(
                f"{where}: no room for its output ({size} blocks) in the spike memory's two "
                f"halves of {A} blocks while the output of layer(s) {clash} must stay (a "
                f"shortcut source or this layer's input); use smaller maps or shortcut from "
                f"closer layers")
        if base > CONV_LIMITS.base:
            raise DoesNotFitError(f"{where}: block address {base} exceeds the descriptor's "
                                  f"{CONV_LIMITS.base}")
        bases[li], sizes[li] = base, size
    return MapPlacement(tuple(bases), tuple(sizes))


def conv_image_parts(net: IntNetwork, params: CoreParams) -> tuple[list, list]:
    """The layers and writes of a network with conv layers (see the module docstring).

    Returns
    -------
    layers : list of dict
        ``sw.compile.program_image.LayerLayout`` fields of each layer.
    writes : list of tuple
        ``(region, addr, words)`` of the PROGRAM, WEIGHTS, BIAS and THETA writes.
    """
    p, T = params, net.T
    mm = memory_map(p)
    check_network_fits(net, p)
    if not p.conv:
        raise DoesNotFitError("this build runs dense layers only (conv=0: the iCEBreaker's, "
                              "where the conv walk does not fit); use a build with conv=1 (e.g. "
                              "--board arty_a7 or ulx3s, or the small or medium core) or a dense "
                              "network")
    if 2 * p.act_chunks > CONV_LIMITS.base + 1:
        raise DoesNotFitError(f"the build's spike memory ({2 * p.act_chunks} blocks) is beyond "
                              f"the conv descriptor's {CONV_LIMITS.base + 1} block addresses")
    first = net.layers[0]
    in_stride = (_map_blocks(first.in_shape, p.k) if first.kind == "conv"
                 else _ceil_div(first.n_in, p.k))
    if in_stride > p.input_blocks:
        raise DoesNotFitError(
            f"the input image {first.in_shape} needs {in_stride} spike blocks of {p.k} channels; "
            f"the build's INPUT region holds {p.input_blocks} (in_blocks): use a build with a "
            f"larger in_blocks or a smaller image")
    place = place_feature_maps(net, p)
    layers, weights, biases, thetas = [], [], [], []
    w_base = bt_base = 0
    n = len(net.layers)
    prev_shape = None  # out_shape of the previous conv layer, for a dense layer after it
    for li, layer in enumerate(net.layers):
        where = _where(li, layer)
        check_layer_fits(where, layer, p, T)
        passes = _ceil_div(layer.out_channels, p.n_pe)
        per_channel = np.ndim(layer.theta) == 1
        common = dict(
            lif=int(layer.mode is Mode.LIF), readout=int(layer.readout),
            reset_zero=int(layer.reset is Reset.ZERO), last=int(li == n - 1),
            leak=layer.leak_shift if layer.mode is Mode.LIF else 0, T=T,
            fire_above=int(layer.mode is Mode.LIF and layer.fire_above),
            compare_leaked=int(layer.mode is Mode.LIF and layer.compare_leaked),
            theta_per_channel=int(per_channel), passes=passes, w_base=w_base, bt_base=bt_base,
            theta=0 if per_channel else int(layer.theta_vector[0]),
            in_stride=in_stride if li == 0 else 0,
        )
        if layer.kind == "conv":
            pool_log2 = _check_conv(where, layer, li, n, p)
            ci, h, w = layer.in_shape
            co, ch, cw = layer.conv_shape
            kh, kw = layer.kernel
            chunks = _ceil_div(ci, p.k)
            rows = conv_weight_rows(layer, p.n_pe, p.k)
            taps = kh * kw
            res = {}
            if layer.residual is not None:
                src = layer.residual.source
                res = dict(res_gain=layer.residual.gain & 0xFF,
                           res_input=int(src == NETWORK_INPUT),
                           res_base=0 if src == NETWORK_INPUT else place.out_base[src])
            desc = encode_descriptor(
                kind=KIND_CONV, n_in=ci, n_out=co, chunks=chunks,
                out_base=place.out_base[li] or 0,  # (None: the last layer writes OUTPUT)
                in_h=h, in_w=w, conv_h=ch, conv_w=cw, kh=kh, kw=kw, stride=layer.stride,
                pad=layer.padding, pad_rows_only=int(layer.padding_w != layer.padding),
                pool_log2=pool_log2, **res, **common)
            n_in, n_out = ci, co
            prev_shape = layer.out_shape
        else:
            if layer.residual is not None:
                raise DoesNotFitError(f"{where}: a dense layer's shortcut is not supported by "
                                      f"the image; put the shortcut on a conv layer")
            weight = layer.weight
            if prev_shape is not None:
                weight = dense_after_conv_weight(weight, prev_shape, p.k)
                prev_shape = None
            n_in, n_out = layer.n_in, layer.n_out
            chunks = _ceil_div(weight.shape[1], p.k)
            for what, size in (("input blocks", chunks), ("output blocks",
                                                          _ceil_div(n_out, p.k))):
                if size > p.act_chunks:
                    raise DoesNotFitError(f"{where} needs {size} {what} of {p.k} neurons; the "
                                          f"build holds {p.act_chunks} (act_chunks)")
            wpad = np.zeros((passes * p.n_pe, chunks * p.k), dtype=np.int64)
            wpad[:n_out, :weight.shape[1]] = weight
            rows = wpad.reshape(passes, p.n_pe, chunks, p.k).transpose(0, 2, 1, 3)
            rows = rows.reshape(passes * chunks, p.n_pe * p.k)
            taps = 1
            desc = encode_descriptor(kind=KIND_DENSE, n_in=n_in, n_out=n_out, chunks=chunks,
                                     **common)
        weights.append(rows)
        bpad = np.zeros(passes * p.n_pe, dtype=np.int64)
        bpad[:layer.out_channels] = layer.bias
        biases.append(bpad)
        tpad = np.ones(passes * p.n_pe, dtype=np.int64)
        tpad[:layer.out_channels] = layer.theta_vector
        thetas.append(tpad)
        layers.append(dict(index=li, n_in=n_in, n_out=n_out, chunks=chunks, passes=passes,
                           w_base=w_base, bt_base=bt_base, descriptor=tuple(desc), taps=taps,
                           kind=KIND_CONV if layer.kind == "conv" else KIND_DENSE))
        w_base += len(rows)
        bt_base += passes
    if w_base > p.weight_depth:
        raise DoesNotFitError(f"the network needs {w_base} weight rows of {p.n_pe * p.k} "
                              f"weights (conv: passes x taps x channel chunks per layer); the "
                              f"build has {p.weight_depth} (weight_depth)")
    if bt_base > p.bt_rows:
        raise DoesNotFitError(f"the network needs {bt_base * p.n_pe} bias/theta entries (padded "
                              f"to passes of {p.n_pe}); the build has {p.bt_depth} (bt_depth)")
    mask = 0xFFFFFFFF
    program = [wd for lay in layers for wd in lay["descriptor"]]
    writes = [
        ("PROGRAM", mm["PROGRAM"].base, tuple(program)),
        ("WEIGHTS", mm["WEIGHTS"].base, tuple(weight_words(np.concatenate(weights)))),
        ("BIAS", mm["BIAS"].base, tuple(int(v) & mask for v in np.concatenate(biases))),
        ("THETA", mm["THETA"].base, tuple(int(v) & mask for v in np.concatenate(thetas))),
    ]
    return layers, writes


def conv_fetch(d: dict):
    """The conv fetcher's walk over a decoded descriptor, with counters, adds and shifts only.

    Yields ``(cy, cx, p, fetches)`` for each conv position (pooled positions in raster order,
    then the ``2^pool_log2`` square window of each) and pass ``p``: ``fetches`` lists
    ``(block, row)`` for every tap and channel chunk inside the input map, ``block`` relative to
    the input map's first block, ``row`` the weight row. Taps in the padding are left out (an
    all-zero block: no cycle). docs/architecture.md, "The walk", gives the same in formulas; the
    tests check this walk against them and :func:`sw.compile.image_golden.run_image` runs it.
    """
    chunks, kh, kw = d["chunks"], d["kh"], d["kw"]
    stride, pad, pl = d["stride"], d["pad"], d["pool_log2"]
    # The columns' padding (a walk's own dict, without the field, pads both axes alike).
    pad_w = 0 if d.get("pad_rows_only") else pad
    # Per layer: steps by repeated adds (a multiply outside the loop would do as well).
    row_step = 0
    for _ in range(d["in_w"]):
        row_step += chunks  # blocks per input row
    s_col = s_row = 0
    for _ in range(stride):
        s_col += chunks  # blocks per output column step
        s_row += row_step  # blocks per output row step
    pass_rows = 0
    for _ in range(kh * kw):  # kh kw taps: a 3-bit by 3-bit count, once per layer
        pass_rows += chunks
    win = 1 << pl
    py_in, py_addr = -pad, -pad * row_step  # top input row (and its block offset) of the window
    for py in range(d["conv_h"] >> pl):
        px_in, px_addr = -pad_w, -pad_w * chunks
        for px in range(d["conv_w"] >> pl):
            cy_in, cy_addr = py_in, py_addr
            for dy in range(win):
                cx_in, cx_addr = px_in, px_addr
                for dx in range(win):
                    p_row = d["w_base"]
                    for p in range(d["passes"]):
                        fetches = []
                        row = p_row
                        iy, y_addr = cy_in, cy_addr + cx_addr
                        for _ky in range(kh):
                            ix, addr = cx_in, y_addr
                            for _kx in range(kw):
                                inside = 0 <= iy < d["in_h"] and 0 <= ix < d["in_w"]
                                for j in range(chunks):
                                    if inside:
                                        fetches.append((addr + j, row + j))
                                ix, addr, row = ix + 1, addr + chunks, row + chunks
                            iy, y_addr = iy + 1, y_addr + row_step
                        yield (py << pl) + dy, (px << pl) + dx, p, fetches
                        p_row += pass_rows
                    cx_in, cx_addr = cx_in + stride, cx_addr + s_col
                cy_in, cy_addr = cy_in + stride, cy_addr + s_row
            px_in, px_addr = px_in + (stride << pl), px_addr + (s_col << pl)
        py_in, py_addr = py_in + (stride << pl), py_addr + (s_row << pl)
