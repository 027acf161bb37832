"""The compiler's front: build targets by name, and what a compiled network uses of a build.

``sw.compile.program_image.build_image`` lays an :class:`sim.golden.ir.IntNetwork` out for one
build's :class:`hw.contract.params.CoreParams` and refuses what does not fit. This module finds
those parameters from a name (a board preset of ``boards`` or a core preset of
``boards.CORE_PRESETS``; a device's identify reply gives them too, see
``sw.host.driver.DeviceInfo.core_params``) and tabulates, for people, how the network landed: per
layer, and per resource against the build's capacity.
"""

from __future__ import annotations

import dataclasses

from boards import CORE_PRESETS
from hw.contract.memory_map import decode_descriptor
from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork, Mode
from sim.golden.model import required_accumulator_bits

from .program_image import ProgramImage

__all__ = ["Target", "target_names", "get_target", "mode_name", "layer_table", "usage_table",
           "Usage", "usage", "GATEWARE_CONV_OPS", "check_gateware"]

#: What the gateware runs of a conv layer beyond the convolution itself (``"pool"``: fused max
#: pooling, ``"residual"``: a shortcut input): both, as the image format holds them (the image
#: golden model, ``sw.compile.image_golden``, runs them). An operation missing here is refused
#: by :func:`check_gateware` by name.
GATEWARE_CONV_OPS: frozenset = frozenset({"pool", "residual"})


@dataclasses.dataclass(frozen=True)
class Target:
    """Build parameters with where they came from.

    Members
    -------
    name : str
        ``"board arty_a7"``, ``"preset small"``, ``"device /dev/ttyUSB1"``.
    params : CoreParams
    baud, clk_freq : int or None
        The board's UART rate and clock (None for a core preset).
    """

    name: str
    params: CoreParams
    baud: int | None = None
    clk_freq: int | None = None


def target_names() -> list[str]:
    """Names ``get_target`` knows: board presets, then core presets that are not boards."""
    from boards import board_names

    boards = board_names()
    return boards + sorted(n for n in CORE_PRESETS if n not in boards)


def get_target(name: str) -> Target:
    """A board preset (``boards``) or, failing that, a core preset (``boards.CORE_PRESETS``)."""
    from boards import BOARDS

    if name in BOARDS:
        b = BOARDS[name]
        return Target(f"board {name}", b.params, b.baud, b.clk_freq)
    if name in CORE_PRESETS:
        return Target(f"preset {name}", CORE_PRESETS[name])
    raise KeyError(f"unknown board or build preset {name!r}; known: {', '.join(target_names())}")


def check_gateware(image: ProgramImage) -> None:
    """Refuse an image the gateware cannot run (a conv operation not in
    :data:`GATEWARE_CONV_OPS`; today it runs pooling and shortcuts, so nothing is refused).

    Raises
    ------
    sw.compile.errors.DoesNotFitError
        Naming the layer and what the gateware lacks.
    """
    from .errors import DoesNotFitError

    for lay in image.layers:
        d = decode_descriptor(lay.descriptor)
        if d["kind"] != 1:
            continue
        missing = [what for what, used in (("pool", d["pool_log2"] != 0),
                                           ("residual", d["res_gain"] != 0))
                   if used and what not in GATEWARE_CONV_OPS]
        if missing:
            names = {"pool": f"max pooling {1 << d['pool_log2']}x{1 << d['pool_log2']}",
                     "residual": "a shortcut (residual) input"}
            raise DoesNotFitError(
                f"layer {lay.index} (conv): {' and '.join(names[m] for m in missing)} is not in "
                f"the gateware (it runs {', '.join(sorted(GATEWARE_CONV_OPS))}); drop it, or run "
                f"the network on the golden model")


def mode_name(layer) -> str:
    """``readout``, ``spikepack``, ``if`` or ``lif k=<leak shift>``."""
    if layer.readout:
        return "readout"
    if layer.mode is Mode.SPIKEPACK:
        return "spikepack"
    return f"lif k={layer.leak_shift}" if layer.leak_shift else "if"


def layer_size(layer) -> str:
    """``n_in -> n_out`` of a dense layer, ``conv C x H x W -> C' x H' x W'`` of a conv layer."""
    if layer.kind != "conv":
        return f"{layer.n_in} -> {layer.n_out}"
    return "conv {}x{}x{} -> {}x{}x{}".format(*layer.in_shape, *layer.out_shape)


def conv_geometry(layer) -> str:
    """``k3x3 s1 p1 pool 2 shortcut 0 x2`` of a conv layer, ``""`` for a dense one."""
    if layer.kind != "conv":
        return ""
    kh, kw = layer.kernel
    pads = layer.padding if layer.padding_w == layer.padding else \
        f"{layer.padding}x{layer.padding_w}"
    text = f"k{kh}x{kw} s{layer.stride} p{pads}"
    if layer.pool is not None:
        text += f" pool {layer.pool.kernel}"
    if layer.residual is not None:
        src = "in" if layer.residual.source < 0 else layer.residual.source
        text += f" shortcut {src} x{layer.residual.gain}"
    return text


def layer_table(net: IntNetwork, image: ProgramImage) -> str:
    """One row per layer: sizes, mode, threshold, placement and accumulator width.

    A conv layer's rows are ``chunks x taps x passes`` (channel chunks per position, kernel
    taps, passes over the output channels); its geometry follows in the last column.
    """
    p = image.params
    sizes = [layer_size(layer) for layer in net.layers]
    wide = max(11, *(len(s) for s in sizes))
    conv = any(lay.taps > 1 for lay in image.layers)
    split = "chunks x taps x passes" if conv else "chunks x passes"
    rows = [f"{'layer':>5s}  {'size':>{wide}s}  {'mode':9s} {'theta':>13s}  "
            f"{split:>15s}  {'weight rows':>11s}  {'b/theta rows':>12s}  "
            f"{'acc bits':>8s}" + ("  conv geometry" if conv else "")]
    for layer, lay, size in zip(net.layers, image.layers, sizes, strict=True):
        theta = layer.theta_vector
        th = str(int(theta[0])) if theta.min() == theta.max() else f"{theta.min()}..{theta.max()}"
        mode = mode_name(layer)
        if layer.readout:
            th = "-"
        shape = (f"{lay.chunks} x {lay.taps} x {lay.passes}" if conv
                 else f"{lay.chunks} x {lay.passes}")
        geometry = conv_geometry(layer)
        rows.append(
            f"{lay.index:5d}  {size:>{wide}s}  {mode:9s} {th:>13s}  "
            f"{shape:>{len(split)}s}  "
            f"{f'{lay.w_base}..{lay.w_base + lay.weight_rows - 1}':>11s}  "
            f"{f'{lay.bt_base}..{lay.bt_base + lay.passes - 1}':>12s}  "
            f"{f'{required_accumulator_bits(layer, net.T)}/{p.acc_bits}':>8s}"
            + (f"  {geometry}" if geometry else ""))
    return "\n".join(rows)


@dataclasses.dataclass(frozen=True)
class Usage:
    """One resource: what the network needs against what the build has."""

    what: str
    used: int
    capacity: int
    unit: str = ""

    @property
    def fraction(self) -> float:
        return self.used / self.capacity


def usage(net: IntNetwork, image: ProgramImage) -> list[Usage]:
    p = image.params
    bt_rows = sum(lay.passes for lay in image.layers)
    return [
        Usage("layers", len(net.layers), p.max_layers, "descriptors"),
        Usage("time steps T", net.T, p.t_max, "bit-planes"),
        Usage("widest layer", max(max(la.n_in, la.n_out) for la in image.layers),
              p.max_neurons, "neurons (conv: channels)"),
        Usage("input", image.in_stride, p.input_blocks, f"spike blocks of {p.k} a sample"),
        Usage("largest map", max([_blocks(la.out_shape, p.k) for la in net.layers[:-1]],
                                 default=0), p.act_chunks, f"spike blocks of {p.k}"),
        Usage("weight memory", image.weight_rows, p.weight_depth,
              f"rows of {p.n_pe * p.k} weights"),
        Usage("bias/theta memory", bt_rows * p.n_pe, p.bt_depth, "entries"),
        Usage("weight width", max(la.weight_bits for la in net.layers), p.weight_bits, "bits"),
        Usage("accumulator", max(required_accumulator_bits(la, net.T) for la in net.layers),
              p.acc_bits, "bits (worst case)"),
    ]


def usage_table(net: IntNetwork, image: ProgramImage) -> str:
    rows = [f"{'resource':18s} {'used':>6s} / {'build':<6s} {'':>5s}"]
    for u in usage(net, image):
        rows.append(f"{u.what:18s} {u.used:6d} / {u.capacity:<6d} {100 * u.fraction:4.0f}%  "
                    f"{u.unit}")
    weights = sum(la.weight.size for la in net.layers)
    rows.append(f"{weights} weights stored in {image.weight_rows * _row(image)} slots "
                f"({100 * weights / max(1, image.weight_rows * _row(image)):.0f}% of the rows "
                f"used are weights, the rest is padding to {image.params.k}-input chunks and "
                f"{image.params.n_pe}-neuron passes)")
    fold = image.input_fold
    if fold is not None:
        first = net.layers[0]
        kh, kw = first.kernel
        rows.append(f"input folded: layer 0's {kw} kernel columns side by side as channels "
                    f"({'x'.join(map(str, fold.in_shape))} -> "
                    f"{'x'.join(map(str, fold.folded_shape))} a sample), so its walk takes "
                    f"{kh} x {-(-fold.folded_shape[0] // image.params.k)} tap-chunks a position "
                    f"and pass instead of {kh * kw} x {-(-first.in_shape[0] // image.params.k)}"
                    f" (exact: the same sums; sw.compile.input_fold)")
        if fold.pad:
            rows.append(f"  its {fold.pad} zero rows above and below are "
                        + ("stored in the folded map (a build without pad_rows)"
                           if fold.rows_stored else "padded by the walk, neither stored nor sent"))
    return "\n".join(rows)


def _blocks(shape, k: int) -> int:
    """Spike blocks of a layer output (channel-chunked HWC for a feature map): the maps the
    ping-pong halves hold; the network's input lives in INPUT."""
    if len(shape) == 3:
        return shape[1] * shape[2] * -(-shape[0] // k)
    return -(-shape[0] // k)


def _row(image: ProgramImage) -> int:
    return image.params.n_pe * image.params.k
