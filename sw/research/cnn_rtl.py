"""A conv network on the core's RTL: its counters per image, and the PE-array work behind them.

What ``bench/bench_mnist_cnn_rtl.py`` and ``tests/hw/core/test_mnist_cnn_rtl.py`` share:

- :func:`choose_core`: the build a network runs on (a board-less or board core preset by name,
  or, when the network's input map does not fit a preset's spike memory, the same array with
  memory for feature maps, :func:`feature_map_core`);
- :func:`measure_counters_rtl`: every image through the core's RTL under Verilator
  (``sim.tb.cycles_tb``, one image per batch run), the outputs and the ``cycles``, ``spikes``
  and ``skipped`` counters of each image;
- :func:`array_adds`: the synaptic adds the PE array does per image and layer, the idea of
  ``bench/bench_core.py`` (one weight meets one bit-plane word: an add per lane) and of
  :func:`sw.research.rtl_results.predicted_work` (an all-zero bit-plane of a block is skipped,
  every other one is a beat) carried over to conv layers: a beat of a block with ``c`` real
  channels for a pass with ``o`` real output neurons does ``c o`` adds; padding taps read
  nothing (they cost a fetcher cycle but no beat);
- :func:`usable_lanes`: the lanes (of ``k``) and PEs (of ``n_pe``) a layer's beats can fill;
- :func:`layer_terms`: per image and layer, the three terms the cycle count is bounded by: the
  fetcher's walk (one address-stage cycle per tap and channel chunk inside the map),
  the issuer's beats (one per non-zero bit-plane of a block, plane-serial) and the firing
  array's time (per pass ``n_pe / fire_units`` groups of ``FireUnit.period`` cycles).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork, Mode
from sim.golden.model import run_network
from sw.compile.input_fold import device_network, folded_network

from .cycle_model import chunk_plane_counts, conv_walk_steps, map_plane_counts

__all__ = ["FEATURE_MAP_ACT_CHUNKS", "feature_map_core", "choose_core", "RtlCounters",
           "measure_counters_rtl", "array_adds", "usable_lanes", "layer_terms"]

#: Spike blocks per ping-pong half of :func:`feature_map_core`: a 28 x 28 input map (784 blocks)
#: fits.
FEATURE_MAP_ACT_CHUNKS = 1024


def feature_map_core(params: CoreParams) -> CoreParams:
    """``params``' array with spike memory for feature maps and the conv walk: ``act_chunks`` =
    :data:`FEATURE_MAP_ACT_CHUNKS`, one image per batch (the memory a batch of them would
    need), ``conv=1`` (a dense-only build, as the iCEBreaker preset is, gains the conv
    fetcher and writer). Its cycle counts equal ``params``' array's except a conv layer's set-up
    (``hw.core.conv_walk.conv_setup_cycles`` grows with ``act_chunks``)."""
    return dataclasses.replace(params, act_chunks=max(params.act_chunks, FEATURE_MAP_ACT_CHUNKS),
                               batch_depth=1, in_blocks=0, out_words=0, conv=1)


def choose_core(net: IntNetwork, preset: str | None = None,
                default: str = "arty_a7") -> tuple[str, CoreParams, str]:
    """The build ``net`` runs on: ``(name, params, why)``.

    ``preset``: a name of :data:`boards.CORE_PRESETS`, used as it is; the compiler's refusal
    (:class:`sw.compile.errors.DoesNotFitError`) propagates. None: ``default`` if the compiler
    accepts ``net`` for it, else :func:`feature_map_core` of it (named ``<default>-fmap``);
    ``why`` says which and why.
    """
    from boards import CORE_PRESETS
    from sw.compile.errors import DoesNotFitError
    from sw.compile.program_image import build_image

    name = default if preset is None else preset
    if name not in CORE_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of "
                         f"{', '.join(sorted(CORE_PRESETS))}")
    params = CORE_PRESETS[name]
    if preset is not None:
        build_image(net, params)
        return name, params, f"--preset {name}"
    try:
        build_image(net, params)
        return name, params, f"the compiler accepts the network for {name}"
    except DoesNotFitError as e:
        fmap = feature_map_core(params)
        build_image(net, fmap)
        return (f"{name}-fmap", fmap,
                f"{name} refuses it ({e}); its array with act_chunks={fmap.act_chunks}, "
                f"batch_depth={fmap.batch_depth} holds the feature maps")


@dataclasses.dataclass(frozen=True)
class RtlCounters:
    """A network's images run one per batch on the core's RTL.

    Members
    -------
    outputs : ndarray (n, n_out)
        The core's outputs (the testbench also checks them ``==`` the golden model's).
    cycles, spikes, skipped : ndarray (n, layers)
        The core's counters per image and layer.
    total_cycles : ndarray (n,)
        The core's ``total_cycles`` counter per image.
    wall_seconds : float
        Wall time of the simulation (the Verilator build included when it had to be made).
    """

    outputs: np.ndarray
    cycles: np.ndarray
    spikes: np.ndarray
    skipped: np.ndarray
    total_cycles: np.ndarray
    wall_seconds: float


def measure_counters_rtl(net: IntNetwork, x, params: CoreParams, *, build_dir,
                         simulator: str = "verilator", log_file=None) -> RtlCounters:
    """Run every sample of ``x`` through the core built with ``params`` (one per batch run).

    Parameters
    ----------
    net : IntNetwork
    x : array (n, ...) of packed inputs
    params : CoreParams
        The build (compiled once per parameter set and cached in ``build_dir``; only the core's
        ports are made visible to the testbench, a faster Verilator model).
    build_dir : path
    simulator : str
    log_file : path or None
        Where the simulation's log goes (None: stdout).

    Raises ``sim.rtl.runner.SimulatorMissing`` without the simulator, ``AssertionError`` when
    an output differs from the golden model's (the testbench's check).
    """
    from hw.core.core import SpikePackCore
    from sim.rtl.runner import VERILATOR_MAKEFLAGS, require_simulator, run_cocotb

    require_simulator(simulator)
    x = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    if len(x) == 0:
        raise ValueError("need at least one input sample")
    flags = os.environ.get("MAKEFLAGS", "")
    if simulator == "verilator" and "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {VERILATOR_MAKEFLAGS}".strip()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spikepack_cnn_rtl_") as tmp:
        tmp = Path(tmp)
        net.save(tmp / "net.npz")
        np.save(tmp / "x.npy", x)
        results = tmp / "counters.json"
        run_cocotb(SpikePackCore(params), toplevel="spikepack_core",
                   test_module="sim.tb.cycles_tb", build_dir=build_dir, simulator=simulator,
                   public="ports", log_file=None if log_file is None else Path(log_file),
                   env={"params": dataclasses.asdict(params),
                        "cases": [[str(tmp / "net.npz"), str(tmp / "x.npy")]],
                        "results": str(results)})
        runs = json.loads(results.read_text())[0]
    wall = time.perf_counter() - t0

    def col(key):
        return np.array([r[key] for r in runs], dtype=np.int64)

    return RtlCounters(outputs=col("outputs").reshape(len(x), -1), cycles=col("cycles"),
                       spikes=col("spikes"), skipped=col("skipped"),
                       total_cycles=col("total_cycles"), wall_seconds=wall)


def _real_channels(channels: int, k: int) -> np.ndarray:
    """Real channels of each of the ``ceil(channels / k)`` blocks (the last may be partial)."""
    chunks = -(-channels // k)
    return np.minimum(k, channels - k * np.arange(chunks))


def _layer_inputs(net: IntNetwork, x, params: CoreParams, result):
    """Per layer: the input as ``(maps (n, C, H, W) or None, flat (n, n_in))``."""
    a = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    result = result or run_network(net, a, acc_bits=params.acc_bits)
    shape_in = tuple(net.layers[0].in_shape)
    out = []
    for layer, r in zip(net.layers, result.layers, strict=True):
        maps = a.reshape((len(a),) + shape_in) if len(shape_in) == 3 else None
        out.append((maps, a))
        a = np.asarray(r.output, dtype=np.int64).reshape(len(a), -1)
        shape_in = tuple(layer.out_shape)
    return out


def _shortcut_counts(net: IntNetwork, layer, inputs, T: int, k: int, planes: int = 1):
    """Non-zero planes (beat slots of ``planes`` planes) of the blocks of ``layer``'s shortcut
    map, ``(n, conv_h, conv_w, ceil(C_out / k))`` (``None`` without a shortcut): the network
    input or the output of layer ``source``, which is layer ``source + 1``'s input (``inputs``:
    :func:`_layer_inputs`)."""
    if layer.residual is None:
        return None
    src = layer.residual.source
    flat = inputs[0][1] if src < 0 else inputs[src + 1][1]
    maps = flat.reshape((len(flat),) + tuple(layer.conv_shape))
    return map_plane_counts(maps, T, k, planes)


def _computed_positions(layer) -> tuple[int, int]:
    """Rows and columns of conv positions the core computes (whole pooling windows only)."""
    _, ch, cw = layer.conv_shape
    if layer.pool is not None:
        pk = layer.pool.kernel
        ch, cw = ch // pk * pk, cw // pk * pk
    return ch, cw


def array_adds(net: IntNetwork, x, params: CoreParams, result=None) -> np.ndarray:
    """Synaptic adds the PE array does, per sample and layer: ``(n, layers)``.

    Every beat is one non-zero bit-plane of one spike block met by one weight row; it does
    ``c o`` adds, ``c`` the block's real channels (of ``k`` lanes) and ``o`` the pass's real
    output neurons (of ``n_pe``). Summed over passes, a block read with ``q`` non-zero planes
    adds ``q c n_out``. A conv layer reads, at every computed position (the whole pooling
    windows), the blocks of its receptive field inside the map; a dense layer reads its input's
    chunks (a conv map's blocks) once per pass. A conv layer's shortcut adds, at every computed
    position, ``q c`` per block of its map (the gain times each real channel's spikes, one PE
    per channel). ``result``: the golden model's :class:`sim.golden.model.NetworkResult` for
    ``x`` (computed if None).

    These are the adds of ``net`` as written, the useful work: a folded first layer
    (:mod:`sw.compile.input_fold`) computes the same sums but also meets the image's zero
    padding in its lanes, which is not counted.
    """
    k, T = params.k, net.T
    inputs = _layer_inputs(net, x, params, result)
    out = np.zeros((len(inputs[0][1]), len(net.layers)), dtype=np.int64)
    for li, (layer, (maps, flat)) in enumerate(zip(net.layers, inputs, strict=True)):
        if maps is not None:
            counts = map_plane_counts(maps, T, k)  # (n, H, W, chunks)
            per_block = counts * _real_channels(maps.shape[1], k)
        if layer.kind == "conv":
            z = per_block.sum(axis=-1)  # (n, H, W): plane-channel products at each position
            (ph, pw), s = layer.pads, layer.stride
            zp = np.pad(z, ((0, 0), (ph, ph), (pw, pw)))
            ch, cw = _computed_positions(layer)
            kh, kw = layer.kernel
            total = np.zeros(len(z), dtype=np.int64)
            for ky in range(kh):
                for kx in range(kw):
                    total += zp[:, ky:ky + s * (ch - 1) + 1:s,
                                kx:kx + s * (cw - 1) + 1:s].sum(axis=(1, 2))
            out[:, li] = total * layer.out_channels
            res = _shortcut_counts(net, layer, inputs, T, k)
            if res is not None:
                ch, cw = _computed_positions(layer)
                out[:, li] += (res[:, :ch, :cw] * _real_channels(layer.out_channels, k)).sum(
                    axis=(1, 2, 3))
        else:
            if maps is not None:
                total = per_block.reshape(len(per_block), -1).sum(axis=1)
            else:
                counts = chunk_plane_counts(flat, T, k)
                total = (counts * _real_channels(layer.n_in, k)).sum(axis=1)
            out[:, li] = total * layer.n_out
    return out


def usable_lanes(net: IntNetwork, params: CoreParams) -> list[tuple[float, float]]:
    """Per layer ``(lanes, pes)``: the mean real channels a block (or chunk) of the layer's
    input gives the ``k`` lanes, and the mean real output neurons a pass gives the ``n_pe``
    PEs. ``lanes * pes`` is the most adds per beat the layer can reach (``n_pe k`` when both
    divide evenly); a 1-channel first conv layer uses 1 lane of ``k``, or ``kw`` lanes where
    the compiler folds its kernel columns (:mod:`sw.compile.input_fold`: the layers as the
    device runs them)."""
    k, n_pe = params.k, params.n_pe
    net = folded_network(net, params)
    out = []
    shape_in = tuple(net.layers[0].in_shape)
    for layer in net.layers:
        # A conv map (the input of a conv layer, or of a dense layer after one) is read as
        # blocks of its channels; a flat input as chunks of k of its n_in.
        channels = shape_in[0]
        lanes = channels / -(-channels // k)
        outs = layer.out_channels
        out.append((float(lanes), float(outs / -(-outs // n_pe))))
        shape_in = tuple(layer.out_shape)
    return out


def layer_terms(net: IntNetwork, x, params: CoreParams, result=None) -> dict[str, np.ndarray]:
    """Per sample and layer, the terms the layer's cycles are bounded by: ``(n, layers)``
    arrays under ``"passes"`` (datapath passes: per computed position, ``ceil(C_out / n_pe)``),
    ``"walk"`` (the fetcher's address-stage cycles: a step per tap and chunk inside the map,
    one for a position with none, and ``n_pe / k`` per shortcut, over every position and pass),
    ``"beats"`` (the issuer's: a beat per
    non-zero plane -- beat slot of ``planes_per_beat`` planes -- of a block read, one for an
    empty block that ends a pass) and ``"fire"`` (the
    firing array's: ``n_pe / fire_units`` groups of ``FireUnit.period(T, lif)`` cycles a pass).
    A thin first layer's terms are those of its fold (:mod:`sw.compile.input_fold`), the walk
    the device makes.
    """
    from hw.core.fire import FireUnit

    net, x = device_network(net, x, params)
    k, T, ppb = params.k, net.T, params.planes_per_beat
    inputs = _layer_inputs(net, x, params, result)
    n = len(inputs[0][1])
    terms = {key: np.zeros((n, len(net.layers)), dtype=np.int64)
             for key in ("passes", "walk", "beats", "fire")}
    groups = params.n_pe // params.fire_units
    for li, (layer, (maps, flat)) in enumerate(zip(net.layers, inputs, strict=True)):
        period = FireUnit.period(T, layer.mode == Mode.LIF, params.fire_planes == 2)
        per_pass_out = -(-layer.out_channels // params.n_pe)
        if layer.kind == "conv":
            ch, cw = _computed_positions(layer)
            passes = ch * cw * per_pass_out
            counts = map_plane_counts(maps, T, k, ppb)
            res = _shortcut_counts(net, layer, inputs, T, k, ppb)
            for i in range(n):
                steps = conv_walk_steps(layer, counts[i], params,
                                        None if res is None else res[i])
                terms["walk"][i, li] = len(steps)
                terms["beats"][i, li] = sum(max(q, int(last)) for step in steps
                                            if step is not None for q, last in [step])
        else:
            passes = per_pass_out
            counts = (map_plane_counts(maps, T, k, ppb).reshape(n, -1) if maps is not None
                      else chunk_plane_counts(flat, T, k, ppb))
            terms["walk"][:, li] = passes * counts.shape[1]
            terms["beats"][:, li] = passes * (counts.sum(axis=1) + (counts[:, -1] == 0))
        terms["passes"][:, li] = passes
        terms["fire"][:, li] = passes * groups * period
    return terms

