"""The accelerator's measured figures beside the Bit Budget estimate: deployed networks on the RTL.

:func:`measure_on_rtl` runs an integer network on the accelerator's RTL under Verilator through
the real UART driver (:func:`sim.rtl.session.run_on_rtl`) and lines up, per layer and per sample:

- the estimate, made without the RTL: Bit Budget compute bits and SynOps
  (:mod:`sw.research.bitbudget`, SynOps from the golden model's spikes), the golden model's output
  spikes, and the work the documented dataflow implies (``P = ceil(n_out / n_pe)`` passes, each
  reading ``C = ceil(n_in / k)`` input chunks of ``T`` bit-planes, a conv layer's pass the blocks
  of every receptive field inside its input map; an all-zero bit-plane chunk of the golden
  model's activations is skipped, every other one is one beat of the PE array:
  :func:`predicted_work`);
- the measurement: the device's counters (cycles, output spikes and skipped plane-chunks per
  layer, total cycles).

It also checks, with ``==``, that the device's outputs and its per-run spike and skip counters
equal the golden model's, a run holding the image's ``max_batch`` samples as the driver batches
them; :class:`RtlDeployment` says how many did not.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from hw.contract.params import CoreParams, walk_replays
from sim.golden.ir import IntNetwork
from sim.golden.model import run_network
from sim.golden.packing import feature_map_blocks, unpack_bitplanes
from sw.compile.input_fold import device_network
from sw.compile.program_image import build_image
from sw.compile.targets import mode_name

from .bitbudget import network_cost

__all__ = ["RtlLayerFigures", "RtlDeployment", "predicted_work", "measure_on_rtl"]


def predicted_work(net: IntNetwork, x, params: CoreParams, result=None):
    """``(beats, skipped)`` per sample and layer, each of shape ``(n, layers)``, from the golden
    model.

    A dense layer ``l`` runs ``P = ceil(n_out / n_pe)`` passes; each reads the ``C = ceil(n_in /
    k)`` chunks of its input (a conv map's blocks, ``k`` channels per position, when a conv layer
    feeds it), ``T`` bit-planes each. An all-zero plane-chunk is skipped (once per pass); every
    other one is one beat of the PE array (with ``planes_per_beat = 2`` a beat takes the non-zero
    planes of one pair: ``beats`` here stay the non-zero plane-chunks, the work;
    ``sw.research.cnn_rtl.layer_terms`` counts the beats the issuer sends). A conv layer runs
    ``ceil(C_out / n_pe)`` passes; each
    reads, for every output position it computes (with max pooling: the positions of whole
    pooling windows), the blocks of the receptive field that lie inside the input map (a padding
    tap reads nothing and skips nothing), and, with a shortcut, each block of the shortcut's map
    at those positions once over its passes (blocks past its channels are padding). ``x``:
    ``(n, n_in)``, or ``(n, C, H, W)`` for an image network. ``result``: the golden model's
    :class:`sim.golden.model.NetworkResult` for ``x`` (computed if None). A thin
    first layer is counted as the device runs it, folded (:mod:`sw.compile.input_fold`).
    """
    net, x = device_network(net, x, params)
    a = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    result = result or run_network(net, a)
    k, T = params.k, net.T
    x_flat = a
    beats, skipped = [], []
    for i, (layer, r) in enumerate(zip(net.layers, result.layers, strict=True)):
        passes = -(-layer.out_channels // params.n_pe)
        if layer.kind == "conv":
            maps = a.reshape((len(a),) + tuple(layer.in_shape))
            zero, read, empty = _conv_reads(layer, maps, k, T)
        else:
            if i and net.layers[i - 1].kind == "conv":  # a conv map's blocks
                maps = a.reshape((len(a),) + tuple(net.layers[i - 1].out_shape))
                blocks = feature_map_blocks(maps, k).reshape(len(a), -1, k)
            else:
                chunks = -(-layer.n_in // k)
                pad = np.zeros((len(a), chunks * k), dtype=np.int64)
                pad[:, :layer.n_in] = a.reshape(len(a), -1)
                blocks = pad.reshape(len(a), chunks, k)
            per_block = _zero_planes(blocks, T)  # (n, blocks)
            zero, empty = per_block.sum(axis=-1), (per_block == T).sum(axis=-1)
            read = np.full(len(a), blocks.shape[1] * T)
        res_zero = res_read = 0
        if layer.kind == "conv" and layer.residual is not None:
            src = layer.residual.source
            src_map = (x_flat if src < 0 else result.layers[src].output).reshape(
                (len(a),) + tuple(layer.conv_shape))
            res_zero, res_read = _shortcut_reads(layer, src_map, k, T)
        if walk_replays(params, dense=layer.kind != "conv", kernel=layer.kernel,
                        pooled=layer.pool is not None, shortcut=layer.residual is not None,
                        passes=passes):
            # a position's later passes read only the blocks its first found with a spike
            skipped.append(zero + (passes - 1) * (zero - T * empty))
        else:
            skipped.append(passes * zero + res_zero)
        beats.append(passes * (read - zero) + res_read - res_zero)
        a = r.output.reshape(len(a), -1)
    return np.stack(beats, axis=1), np.stack(skipped, axis=1)


def _zero_planes(blocks, T: int) -> np.ndarray:
    """All-zero bit-planes of each spike block ``(..., k)``."""
    return (unpack_bitplanes(blocks, T).sum(axis=-1) == 0).sum(axis=0)


def _shortcut_reads(layer, maps, k: int, T: int):
    """``(zero, read)`` plane-chunks per sample of a conv layer's shortcut over its source maps
    ``(n, C_out, conv_h, conv_w)``: every block once at each conv position computed."""
    z = _zero_planes(feature_map_blocks(maps, k), T).sum(axis=-1)  # (n, conv_h, conv_w)
    _, ch, cw = layer.conv_shape
    if layer.pool is not None:  # the conv positions of whole pooling windows only
        ch, cw = ch - ch % layer.pool.kernel, cw - cw % layer.pool.kernel
    chunks = -(-layer.out_channels // k)
    return z[:, :ch, :cw].sum(axis=(1, 2)), np.full(len(maps), ch * cw * chunks * T)


def _conv_reads(layer, maps, k: int, T: int):
    """``(zero, read, empty)`` per sample of one pass of a conv layer over ``maps``: zero and
    read plane-chunks, and blocks read with no spike below ``T``."""
    per_block = _zero_planes(feature_map_blocks(maps, k), T)  # (n, H, W, chunks)
    z = per_block.sum(axis=-1)  # (n, H, W)
    e = (per_block == T).sum(axis=-1)
    chunks = -(-layer.in_shape[0] // k)
    (ph, pw), s = layer.pads, layer.stride
    around = ((ph, ph), (pw, pw))  # the padding on each side of a map
    zp = np.pad(z, ((0, 0), *around))
    ep = np.pad(e, ((0, 0), *around))
    inside = np.pad(np.ones(z.shape[1:], dtype=np.int64), around)
    _, ch, cw = layer.conv_shape
    if layer.pool is not None:  # the conv positions of whole pooling windows only
        ch, cw = ch // layer.pool.kernel * layer.pool.kernel, cw // layer.pool.kernel * \
            layer.pool.kernel
    kh, kw = layer.kernel
    zero = np.zeros(len(maps), dtype=np.int64)
    empty = np.zeros(len(maps), dtype=np.int64)
    taps = 0
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = slice(ky, ky + s * (ch - 1) + 1, s), slice(kx, kx + s * (cw - 1) + 1, s)
            zero += zp[:, rows, cols].sum(axis=(1, 2))
            empty += ep[:, rows, cols].sum(axis=(1, 2))
            taps += int(inside[rows, cols].sum())
    return zero, np.full(len(maps), taps * chunks * T), empty


@dataclasses.dataclass(frozen=True)
class RtlLayerFigures:
    """One layer of a network run on the RTL; every count is a mean per sample.

    Members
    -------
    n_in, n_out : int
    mode : str
        ``spikepack``, ``lif k=1``, ``readout``, ... (:func:`sw.compile.targets.mode_name`).
    compute_bits : int
        Bit Budget compute bits, ``b_w b_a T n_in n_out``.
    synops : float
        Bit Budget SynOps: input spikes (golden model) times the fan-out.
    golden_spikes, rtl_spikes : float
        Output spikes: the golden model's, and the device's counter.
    beats, golden_skipped, rtl_skipped : float
        PE-array beats and skipped all-zero plane-chunks predicted from the golden model
        (:func:`predicted_work`), and the device's skip counter.
    cycles : float
        The device's cycle counter for the layer (descriptor fetch to counter update).
    """

    n_in: int
    n_out: int
    mode: str
    compute_bits: int
    synops: float
    golden_spikes: float
    rtl_spikes: float
    beats: float
    golden_skipped: float
    rtl_skipped: float
    cycles: float


@dataclasses.dataclass(frozen=True)
class RtlDeployment:
    """A network run on the accelerator RTL beside its golden model and its Bit Budget estimate.

    Members
    -------
    name : str
    net : IntNetwork
    params : CoreParams
        The simulated build (what the device's identify reply said).
    n : int
        Samples run.
    layers : tuple of RtlLayerFigures
    outputs_differ : int
        Samples whose device output differs from the golden model's (0 = bit-exact).
    runs, counter_runs_differ : int
        Batch runs, and runs whose per-layer spike or skip counters differ from the golden
        model's.
    rtl_accuracy, golden_accuracy : float or None
        Accuracy of the device's and the golden model's predictions (None without labels).
    total_cycles : float
        The core's cycle counter per sample (all layers).
    clk_freq : int
        The simulated clock (for microseconds per sample).
    upload_cycles, infer_cycles : int
        Clock cycles of the model upload (with read-back) and of the inference, UART included.
    energy_pj : float
        Bit Budget energy estimate per sample (compute only).
    wall_seconds : float
        Wall time of the session (Verilator build included the first time).
    """

    name: str
    net: IntNetwork
    params: CoreParams
    n: int
    layers: tuple[RtlLayerFigures, ...]
    outputs_differ: int
    runs: int
    counter_runs_differ: int
    rtl_accuracy: float | None
    golden_accuracy: float | None
    total_cycles: float
    clk_freq: int
    upload_cycles: int
    infer_cycles: int
    energy_pj: float
    wall_seconds: float

    @property
    def bit_exact(self) -> bool:
        """Outputs and every run's spike and skip counters equal the golden model's."""
        return self.outputs_differ == 0 and self.counter_runs_differ == 0


def measure_on_rtl(name: str, net: IntNetwork, kind: str, x, params: CoreParams, y=None, *,
                   simulator: str = "verilator", build_dir=None,
                   progress: bool = False) -> RtlDeployment:
    """Run ``net`` on the accelerator RTL built with ``params`` and compare it with the estimate.

    Parameters
    ----------
    name : str
        Label for tables.
    net : IntNetwork
        The integer network (compiled for ``params`` in the session).
    kind : str
        How :func:`sw.research.bitbudget.network_cost` reads it: ``"spikepack"`` or ``"lif"``.
    x : array (n, n_in), or (n, C, H, W) for an image network
        Packed inputs.
    y : array (n,) or None
        Labels, for the accuracy figures.

    Raises what :func:`sim.rtl.session.run_on_rtl` raises (``sim.rtl.runner.SimulatorMissing``,
    ``sim.rtl.session.RtlSessionError``, ``sw.compile.program_image.DoesNotFitError``).
    """
    from sim.rtl.session import run_on_rtl

    x = np.asarray(x, dtype=np.int64).reshape(-1, net.n_in)
    if len(x) == 0:
        raise ValueError("need at least one input sample")
    cost = network_cost(net, kind, x=x)  # validates kind against the layers' modes
    t0 = time.perf_counter()
    run = run_on_rtl(net, x, params, simulator=simulator, build_dir=build_dir,
                     progress=progress)
    wall = time.perf_counter() - t0
    golden = run_network(net, x)
    beats, skipped = predicted_work(net, x, run.params, golden)
    spikes = golden.spikes_per_layer.T  # (n, layers)

    depth = build_image(net, run.params).max_batch  # the driver's batch size
    differ = 0
    for r in range(len(run.spikes)):
        sl = slice(r * depth, (r + 1) * depth)
        differ += int(not (np.array_equal(run.spikes[r], spikes[sl].sum(axis=0))
                           and np.array_equal(run.skipped[r], skipped[sl].sum(axis=0))))
    n = len(x)
    layers = tuple(
        RtlLayerFigures(
            n_in=layer.n_in, n_out=layer.n_out, mode=mode_name(layer),
            compute_bits=c.compute_bits, synops=c.synops,
            golden_spikes=float(spikes[:, i].mean()),
            rtl_spikes=float(run.spikes[:, i].sum() / n),
            beats=float(beats[:, i].mean()), golden_skipped=float(skipped[:, i].mean()),
            rtl_skipped=float(run.skipped[:, i].sum() / n),
            cycles=float(run.cycles[:, i].sum() / n))
        for i, (layer, c) in enumerate(zip(net.layers, cost.layers, strict=True)))

    def acc(pred):
        return None if y is None else float(np.mean(pred == np.asarray(y)[:n]))

    return RtlDeployment(
        name=name, net=net, params=run.params, n=n, layers=layers,
        outputs_differ=int(np.sum(np.any(run.outputs != golden.output, axis=-1))),
        runs=len(run.spikes), counter_runs_differ=differ,
        rtl_accuracy=acc(np.argmax(run.outputs, axis=-1)), golden_accuracy=acc(
            golden.predictions()),
        total_cycles=float(run.total_cycles.sum() / n), clk_freq=run.clk_freq,
        upload_cycles=run.upload_cycles, infer_cycles=run.infer_cycles,
        energy_pj=cost.energy_pj, wall_seconds=wall)
