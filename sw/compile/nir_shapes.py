"""Shapes and geometry of NIR's convolutional nodes, as the integer IR expresses them.

:mod:`sw.compile.nir_import` walks a NIR chain and keeps the shape of what flows between nodes:
``(C, H, W)`` after the input or a conv/pool node, ``(n,)`` after a ``Flatten`` or a dense layer.
This module reads the nodes that change it:

``Conv2d``
    ``weight (C_out, C_in, kh, kw)``, ``bias (C_out,)``, ``stride``, ``padding`` (an int, a pair
    ``(ph, pw)``, ``"valid"`` or ``"same"``), ``dilation`` and ``groups``. The IR has one stride
    and one symmetric zero padding for both axes, no dilation and no groups; anything else is
    refused, naming the node and what would map.
``SumPool2d`` / ``AvgPool2d``
    Non-overlapping windows (``stride == kernel``, square, no padding) fold into the next
    weighted layer (:func:`fold_pool_into_conv`, :func:`fold_pool_into_dense`): a sum pool then
    ``W`` is ``W`` repeated over each ``k x k`` window of the unpooled map; an average pool is the
    same with ``1 / k^2``, which the importer puts into the threshold and bias (both times
    ``k^2``) so that it costs no weight precision (docs/numerics.md, "Imported conv graphs").
``Flatten``
    The whole ``(C, H, W)`` map into ``(C H W,)`` in that order, which is the IR's own order for a
    dense layer after a conv layer (``sim.golden.ir``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sim.golden.ir import conv_output_size


class NirImportError(ValueError):
    """The graph has a node or parameter the accelerator cannot map, or needs a convention NIR
    does not store (the message names the command-line option that gives it)."""


def _text(value) -> str | None:
    """A NIR string attribute (``str``, ``bytes`` or a 0-d array of either) as ``str``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    return value if isinstance(value, str) else None


def _pair(name: str, what: str, value) -> tuple[int, int]:
    """An int or a pair of ints (NIR stores either) as ``(h, w)``."""
    arr = np.asarray(value).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(arr == np.round(arr)):
        raise NirImportError(f"node {name!r}: {what} {value!r} is not an integer or a pair of "
                             "integers")
    return int(arr[0]), int(arr[1])


def shape_text(shape) -> str:
    """``(4, 8, 8)`` as ``4x8x8``."""
    return "x".join(str(int(n)) for n in shape)


def parse_shape(value) -> tuple[int, ...] | None:
    """A NIR type array (or ``None``/empty) as a tuple of positive ints, else ``None``."""
    if value is None:
        return None
    arr = np.asarray(value).ravel()
    if arr.size == 0 or arr.dtype == object:
        return None
    return tuple(int(n) for n in arr)


def input_shape(name: str, node, given) -> tuple[int, ...] | None:
    """The network input's shape: the ``Input`` node's, checked against ``given`` (the caller's).

    Returns ``None`` when neither says (a dense first layer takes its width from its weights; a
    conv or pool node then asks for ``input_shape``).
    """
    graph_shape = parse_shape((node.input_type or {}).get("input"))
    if given is not None:
        given = tuple(int(n) for n in given)
        if len(given) not in (1, 3) or min(given) < 1:
            raise NirImportError(f"--input-shape must be C,H,W (an image) or N (a vector) of "
                                 f"positive sizes, not {given}")
    if graph_shape is not None and len(graph_shape) == 4 and graph_shape[0] == 1:
        raise NirImportError(
            f"the Input node {name!r} has shape {graph_shape}: a batch dimension is stored with "
            "it. Export without it (snntorch.export_to_nir(net, x, ignore_dims=[0])) or pass "
            f"--input-shape {','.join(map(str, graph_shape[1:]))} (input_shape= in Python)")
    if graph_shape is not None and len(graph_shape) > 3:
        raise NirImportError(f"the Input node {name!r} has shape {graph_shape}; the accelerator "
                             "takes a vector (n,) or an image (C, H, W)")
    if given is not None and graph_shape is not None and math.prod(given) != math.prod(
            graph_shape):
        raise NirImportError(f"--input-shape {given} disagrees with the graph's Input node "
                             f"{name!r}, {graph_shape}; leave it out or correct it")
    return given if given is not None else graph_shape


def need_input_shape(name: str, what: str) -> NirImportError:
    """The error asking for ``--input-shape`` when node ``name`` (``what``) needs the input's
    shape and the graph does not store it."""
    return NirImportError(
        f"node {name!r} is {what} but the graph does not say the input's shape (its Input node "
        "has none): pass --input-shape C,H,W, e.g. --input-shape 1,8,8 for 8x8 digits "
        "(input_shape=(C, H, W) in Python)")


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """A conv node as the IR holds it.

    Members
    -------
    in_shape : (int, int, int)
        ``(C_in, H, W)`` of its input.
    stride, padding : int
        One stride and one symmetric zero padding for both axes.
    out_shape : (int, int, int)
        ``(C_out, H', W')``.
    """

    in_shape: tuple[int, int, int]
    stride: int
    padding: int
    out_shape: tuple[int, int, int]

    def describe(self, kernel) -> str:
        return (f"conv {shape_text(self.in_shape)}->{shape_text(self.out_shape)} "
                f"k{shape_text(kernel)} s{self.stride} p{self.padding}")


def conv_geometry(name: str, node, shape) -> ConvGeometry:
    """Check a ``Conv2d`` node against what the IR can express; return its geometry.

    ``shape`` is the ``(C, H, W)`` flowing into it (``None``: not known).
    """
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise NirImportError(f"node {name!r}: a Conv2d weight must be 4-D (C_out, C_in, kh, kw), "
                             f"not shape {w.shape}")
    c_out, c_in, kh, kw = w.shape
    groups = int(np.asarray(node.groups).ravel()[0])
    if groups != 1:
        raise NirImportError(f"node {name!r} is a grouped convolution (groups = {groups}); the "
                             "accelerator's conv layers connect every input channel (groups = 1)")
    dil = _pair(name, "dilation", node.dilation)
    if dil != (1, 1):
        raise NirImportError(f"node {name!r} has dilation {dil}; the accelerator's conv layers "
                             "read contiguous windows (dilation 1)")
    sh, sw = _pair(name, "stride", node.stride)
    if sh != sw or sh < 1:
        raise NirImportError(f"node {name!r} has stride {(sh, sw)}; the accelerator's conv "
                             "layers step both axes alike (one stride >= 1)")
    if shape is None:
        spatial = parse_shape(getattr(node, "input_shape", None))
        if spatial is None or len(spatial) != 2:
            raise need_input_shape(name, "a Conv2d")
        shape = (c_in, *spatial)
    shape = tuple(shape)
    if len(shape) != 3:
        raise NirImportError(
            f"node {name!r} is a Conv2d but receives a vector of {shape}; the accelerator runs "
            "conv layers before dense ones (a Flatten or a dense layer ends the conv part)")
    if shape[0] != c_in:
        raise NirImportError(f"node {name!r} takes {c_in} input channels but receives a "
                             f"{shape_text(shape)} map")
    declared = parse_shape(getattr(node, "input_shape", None))
    if declared is not None and declared != shape[1:]:
        raise NirImportError(f"node {name!r} says its input is {shape_text(declared)} but the "
                             f"graph feeds it {shape_text(shape[1:])}; the graph is inconsistent")
    padding = _conv_padding(name, node.padding, (kh, kw), sh)
    try:
        out = (c_out, conv_output_size(shape[1], kh, sh, padding),
               conv_output_size(shape[2], kw, sh, padding))
    except ValueError as e:
        raise NirImportError(f"node {name!r}: {e}") from None
    return ConvGeometry(shape, sh, padding, out)


def _conv_padding(name: str, padding, kernel, stride) -> int:
    """NIR's padding (int, pair, ``"valid"``, ``"same"``) as the IR's one symmetric padding."""
    text = _text(padding)
    if text == "valid":
        return 0
    if text == "same":
        if stride != 1:
            raise NirImportError(f"node {name!r} has padding 'same' with stride {stride}; 'same' "
                                 "is defined for stride 1 only: give the padding as numbers")
        if any(k % 2 == 0 for k in kernel):
            raise NirImportError(
                f"node {name!r} has padding 'same' with the even kernel {shape_text(kernel)}, "
                "which pads one side more than the other; the accelerator pads all sides "
                "alike: use an odd kernel or explicit padding")
        if kernel[0] != kernel[1]:
            raise NirImportError(f"node {name!r} has padding 'same' with the kernel "
                                 f"{shape_text(kernel)}: different padding per axis; the "
                                 "accelerator pads both axes alike (use a square kernel)")
        return (kernel[0] - 1) // 2
    if text is not None:
        raise NirImportError(f"node {name!r} has padding {text!r}; NIR's padding is an int, a "
                             "pair, 'same' or 'valid'")
    ph, pw = _pair(name, "padding", padding)
    if ph != pw or ph < 0:
        raise NirImportError(f"node {name!r} pads {ph} rows and {pw} columns; the accelerator "
                             "pads every side of the input alike (one padding >= 0 for both "
                             "axes)")
    return ph


@dataclasses.dataclass(frozen=True)
class PendingPool:
    """A sum or average pooling waiting to be folded into the next weighted layer.

    Members
    -------
    name : str
        The NIR node.
    average : bool
        ``AvgPool2d`` (true) or ``SumPool2d``.
    kernel : int
        Window side, equal to the stride.
    in_shape : (int, int, int)
        The unpooled map ``(C, H, W)``.
    """

    name: str
    average: bool
    kernel: int
    in_shape: tuple[int, int, int]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return c, h // self.kernel, w // self.kernel

    @property
    def gain(self) -> int:
        """What threshold and bias are multiplied by: ``k^2`` for an average, else 1."""
        return self.kernel ** 2 if self.average else 1

    def describe(self) -> str:
        kind = "avg" if self.average else "sum"
        extra = f", x{self.gain} in theta and bias" if self.average else ""
        return f"{kind} {self.kernel}x{self.kernel} folded{extra}"


def pool(name: str, node, shape, average: bool) -> PendingPool:
    """Check a ``SumPool2d``/``AvgPool2d`` node; return it as a :class:`PendingPool`."""
    kind = "AvgPool2d" if average else "SumPool2d"
    if shape is None:
        raise need_input_shape(name, f"a {kind}")
    if len(shape) != 3:
        raise NirImportError(f"node {name!r} is a {kind} but receives a vector of {shape}; "
                             "pool feature maps (C, H, W) before the Flatten")
    kh, kw = _pair(name, "kernel_size", node.kernel_size)
    stride = _pair(name, "stride", node.stride if node.stride is not None else node.kernel_size)
    pad = _pair(name, "padding", node.padding if node.padding is not None else 0)
    if kh != kw or stride != (kh, kw) or pad != (0, 0) or kh < 1:
        raise NirImportError(
            f"node {name!r} is a {kind} with kernel {(kh, kw)}, stride {stride}, padding {pad}; "
            "the importer folds square, non-overlapping windows (stride = kernel, no padding) "
            "into the next layer")
    if kh > min(shape[1:]):
        raise NirImportError(f"node {name!r}: pool kernel {kh} is larger than its input "
                             f"{shape_text(shape)}")
    return PendingPool(name, average, kh, tuple(shape))


def fold_pool_into_conv(p: PendingPool, weight, stride: int, padding: int):
    """Pooling ``k`` (stride ``k``) then a conv ``(kh, kw, s, p)`` == one conv on the unpooled
    map with kernel ``(k kh, k kw)``, stride ``k s``, padding ``k p``, each weight repeated over a
    ``k x k`` block (sum pool; an average pool adds the ``1 / k^2`` the caller puts elsewhere).

    Exact when the map's height and width are multiples of ``k``: else the wider kernel would
    read the rows and columns the pooling drops, and it is refused.
    """
    k = p.kernel
    c, h, w = p.in_shape
    if h % k or w % k:
        raise NirImportError(
            f"node {p.name!r} pools a {shape_text(p.in_shape)} map by {k}, dropping its last "
            f"{h % k} row(s) / {w % k} column(s), then a conv reads it: folded into the conv "
            f"that would read them again. Use a map whose size is a multiple of {k}")
    weight = np.repeat(np.repeat(np.asarray(weight, np.float64), k, axis=2), k, axis=3)
    return weight, stride * k, padding * k


def fold_pool_into_dense(p: PendingPool, weight):
    """Pooling ``k`` (stride ``k``), Flatten, then a dense ``W`` == a dense layer on the unpooled
    map flattened in ``(C, H, W)`` order, ``W'[j, (c, y, x)] = W[j, (c, y // k, x // k)]`` (0 for a
    trailing row or column the pooling drops)."""
    k = p.kernel
    c, h, w = p.in_shape
    _, hp, wp = p.out_shape
    weight = np.asarray(weight, np.float64)
    if weight.shape[1] != c * hp * wp:
        raise NirImportError(f"the dense layer after {p.name!r} takes {weight.shape[1]} inputs "
                             f"but the pooled map is {shape_text(p.out_shape)} "
                             f"({c * hp * wp} values)")
    w4 = weight.reshape(weight.shape[0], c, hp, wp)
    full = np.zeros((weight.shape[0], c, h, w))
    full[:, :, :hp * k, :wp * k] = np.repeat(np.repeat(w4, k, axis=2), k, axis=3)
    return full.reshape(weight.shape[0], -1)


def flatten(name: str, node, shape) -> tuple[int, ...] | None:
    """Check a ``Flatten`` node: it must turn the whole map into one vector, ``(C H W,)``."""
    if shape is None or len(shape) == 1:
        return None if shape is None else tuple(shape)
    nd = len(shape)
    start = int(np.asarray(node.start_dim).ravel()[0])
    end = int(np.asarray(node.end_dim).ravel()[0])
    start, end = start % nd, end % nd
    if start != 0 or end != nd - 1:
        raise NirImportError(
            f"node {name!r} flattens dimensions {start}..{end} of a {shape_text(shape)} map; "
            "the accelerator flattens the whole (C, H, W) map in that order (a NIR Flatten "
            "with start_dim 0 and end_dim -1, snnTorch's export of nn.Flatten())")
    return (math.prod(shape),)
