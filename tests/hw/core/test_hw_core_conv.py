"""Conv layers on the core in Amaranth's simulator (the cocotb suite in test_hw_core.py runs
hundreds): random conv networks (with max pooling and shortcuts) bit-exact with sim.golden.model,
counters included; shortcuts from the input and from an earlier conv layer, with and without
pooling, SpikePack and LIF, on builds of one and two output blocks per pass; a conv descriptor as
the last layer, or with a geometry it cannot walk, is refused with its error code and a dense
image loaded after it runs bit-exactly; the compiler's gateware check names what is missing."""

import dataclasses
import re

import numpy as np
import pytest
from test_hw_core_pysim import PyBus

from hw.contract import registers
from hw.contract.errors import ErrorCode
from hw.contract.memory_map import decode_descriptor, encode_descriptor
from hw.contract.params import CoreParams
from hw.core.core import SpikePackCore
from sim.golden import model as golden
from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, MaxPool, Mode, Reset, Residual
from sim.tb.random_nets import (
    expected_conv_counters,
    random_conv_network,
    random_inputs,
    random_network,
)
from sw.compile import program_image as img
from sw.compile import targets
from sw.compile.errors import DoesNotFitError
from sw.compile.targets import check_gateware
from sw.research.cycle_model import predict_cycles

#: Small enough for Amaranth's simulator: 4 PEs x 4 lanes, two firing units (two groups per pass:
#: the pooling writer picks among groups), 3x3 maps of 8 channels.
P = CoreParams(n_pe=4, k=4, t_max=8, acc_bits=24, weight_depth=256, act_chunks=16, bt_depth=32,
               fire_units=2,
               max_layers=8, batch_depth=2)


def _run_cases(dut, pb, cases, extra=None, params=P):
    results = []

    async def host(ctx):
        for net, x in cases:
            image = await pb.load(ctx, net, x, params)
            status = await pb.run(ctx, len(x), polls=20000)
            outputs = await pb.read_outputs(ctx, image, len(x))
            caddr, ccount = img.counter_range(image)
            counters = img.decode_counters(image, await pb.read(ctx, caddr, ccount))
            results.append((status, outputs, counters))
        if extra is not None:
            await extra(ctx, results)
        pb.finished = True

    pb.simulate(host)
    return results


@pytest.mark.parametrize("walk_skid", [0, 1])
def test_core_pysim_random_conv_networks(walk_skid, seed):
    """Random conv networks with max pooling: outputs, counters == golden, cycles == the cycle
    model; with and without the walk's skid register (``walk_skid``, which changes no
    cycle)."""
    rng = np.random.default_rng(seed)
    params = dataclasses.replace(P, walk_skid=walk_skid)
    cases = []
    for _ in range(3):
        net = random_conv_network(rng, params, pool=True)
        depth = img.build_image(net, params).max_batch  # fewer than batch_depth: wide images
        cases.append((net, random_inputs(rng, net, int(rng.integers(1, depth + 1)))))
    dut = SpikePackCore(params)
    results = _run_cases(dut, PyBus(dut, seed, 0.2), cases, params=params)
    for _, (_, _, counters) in zip(cases, results, strict=True):
        assert counters.total_cycles == counters.cycles.sum() > 0
    # The cycle model (sw.research.cycle_model, docs/architecture.md) is exact.
    _check_runs(cases, results, params)


def test_core_pysim_folded_first_layer_pads_rows_only(seed):
    """A thin first layer runs folded (``sw.compile.input_fold``): ``kh x 1`` over the image's
    columns side by side, its padding on the rows only (the descriptor's ``pad_rows_only``, the
    walk's column pointers starting at 0). Kernels 3 and 5, padding 0..2 rows, with and without
    pooling: outputs, counters and cycles == golden and the cycle model."""
    rng = np.random.default_rng(seed)
    params = dataclasses.replace(P, act_chunks=64, in_blocks=128, pad_rows=1)
    cases, rows_only = [], 0
    for i in range(4):
        kh, pad = (3, 5)[i % 2], int(rng.integers(0, 3))
        side = 5
        first = IntLayer(weight=rng.integers(-3, 4, size=(4, 1, kh, kh)),
                         bias=rng.integers(-2, 3, 4), theta=3, kind="conv",
                         in_shape=(1, side, side), padding=pad,
                         pool=MaxPool(2) if i >= 2 and (side + 2 * pad - kh + 1) >= 2 else None)
        n = int(np.prod(first.out_shape))
        fc = IntLayer(weight=rng.integers(-3, 4, size=(3, n)), bias=np.zeros(3, int), theta=1,
                      readout=True)
        net = IntNetwork((first, fc), T=int(rng.integers(1, 5)))
        image = img.build_image(net, params)
        assert image.input_fold is not None
        rows_only += decode_descriptor(image.layers[0].descriptor)["pad_rows_only"]
        cases.append((net, random_inputs(rng, net, image.max_batch)))
    assert rows_only >= 1 or all(net.layers[0].padding == 0 for net, _ in cases)
    dut = SpikePackCore(params)
    results = _run_cases(dut, PyBus(dut, seed, 0.2), cases, params=params)
    _check_runs(cases, results, params)


def _check_runs(cases, results, params):
    """Outputs, spike and skip counters == golden, cycles == the cycle model, for each case."""
    for (net, x), (status, out, counters) in zip(cases, results, strict=True):
        ref = golden.run_network(net, x, acc_bits=params.acc_bits)
        spikes, skipped = expected_conv_counters(net, x, params, ref)
        assert status == registers.STATUS_DONE, hex(status)
        assert np.array_equal(out, ref.rows)
        assert np.array_equal(counters.spikes, spikes)
        assert np.array_equal(counters.skipped, skipped)
        model = predict_cycles(net, x, params, ref, batch=len(x))
        assert np.array_equal(counters.cycles, model.sum(axis=0))


def _shortcut_net(rng, *, source, c_in, c_out, pool, lif, T):
    """A conv layer on a 4x4 map with a shortcut from the input (``source`` -1) or from an
    earlier conv layer (0), optionally max-pooled 2x2, then a dense readout."""
    mode = dict(mode=Mode.LIF, leak_shift=int(rng.integers(0, 3)),
                reset=Reset.ZERO if rng.random() < 0.5 else Reset.SUBTRACT) if lif else {}
    layers, shape = [], (c_in, 4, 4)
    if source == 0:
        layers.append(IntLayer(weight=rng.integers(-3, 4, size=(c_out, c_in, 3, 3)),
                               bias=rng.integers(-2, 3, c_out), theta=4, kind="conv",
                               in_shape=shape, padding=1, **mode))
        shape = (c_out, 4, 4)
    gain = int(rng.choice([-3, -2, -1, 1, 2, 5]))
    layers.append(IntLayer(weight=rng.integers(-3, 4, size=(c_out, shape[0], 3, 3)),
                           bias=rng.integers(-2, 3, c_out), theta=rng.integers(3, 8, c_out),
                           kind="conv", in_shape=shape, padding=1,
                           residual=Residual(NETWORK_INPUT if source < 0 else source, gain),
                           pool=MaxPool(2) if pool else None, **mode))
    n = int(np.prod(layers[-1].out_shape))
    layers.append(IntLayer(weight=rng.integers(-3, 4, size=(3, n)), bias=np.zeros(3, int),
                           theta=1, readout=True))
    return IntNetwork(tuple(layers), T=T)


#: Maps of 4x4 positions and 5 channels (two blocks per position): 4 PEs make two passes of one
#: output block each, 8 PEs one pass of two blocks (the second past 3 channels: padding).
P_RES = dataclasses.replace(P, act_chunks=32, in_blocks=64)


@pytest.mark.parametrize("n_pe", [4, 8])
def test_core_pysim_conv_shortcuts(n_pe, seed):
    """Shortcuts from the input and from an earlier conv layer, with and without pooling,
    SpikePack and LIF: outputs, counters == golden, cycles == the cycle model. The build of
    8 PEs has the walk's skid register (``walk_skid``)."""
    rng = np.random.default_rng(seed)
    params = dataclasses.replace(P_RES, n_pe=n_pe, walk_skid=int(n_pe == 8))
    shapes = [(-1, 5, 5, False, False), (-1, 2, 2, True, True), (0, 2, 5, True, False),
              (0, 2, 5, False, True)] if n_pe == 4 else [(-1, 3, 3, True, False),
                                                         (0, 2, 5, False, True)]
    cases = []
    for source, c_in, c_out, pool, lif in shapes:
        net = _shortcut_net(rng, source=source, c_in=c_in, c_out=c_out, pool=pool, lif=lif,
                            T=int(rng.integers(2, 5)))
        cases.append((net, random_inputs(rng, net, 1)))
    dut = SpikePackCore(params)
    results = _run_cases(dut, PyBus(dut, seed, 0.1), cases, params=params)
    _check_runs(cases, results, params)


def test_core_pysim_banked_spike_memory(seed, monkeypatch):
    """A spike memory deeper than a bank (hw.core.fetcher.spike_banks; banks of 16 blocks here
    instead of a block RAM's 512, so the small core has 4: the ping-pong halves in banks 0 and
    1, INPUT in 2 and 3): each bank has its own ports, the fetcher registers every bank's word
    and picks one after that register; random conv and dense networks stay bit-exact, counters
    and cycles included (the same cycles as one memory)."""
    import hw.core.fetcher as fetcher

    monkeypatch.setattr(fetcher, "SPIKE_BANK_ROWS", 16)
    assert (fetcher.spike_banks(P), fetcher.spike_bank_rows(P)) == (4, 16)
    rng = np.random.default_rng(seed)
    nets = [random_conv_network(rng, P, pool=True), random_conv_network(rng, P, pool=False),
            random_network(rng, P, max_depth=3)]
    cases = [(net, random_inputs(rng, net, img.build_image(net, P).max_batch)) for net in nets]
    dut = SpikePackCore(P)
    results = _run_cases(dut, PyBus(dut, seed, 0.2), cases)
    for (net, x), (status, out, counters) in zip(cases, results, strict=True):
        ref = golden.run_network(net, x, acc_bits=P.acc_bits)
        assert status == registers.STATUS_DONE, hex(status)
        assert np.array_equal(out, ref.output)
        model = predict_cycles(net, x, P, ref, batch=len(x))
        assert np.array_equal(counters.cycles, model.sum(axis=0))


def _conv_net(rng, **conv_kw):
    conv = IntLayer(weight=rng.integers(-3, 4, size=(4, 2, 3, 3)), bias=np.zeros(4, int),
                    theta=5, kind="conv", in_shape=(2, 4, 4), padding=1, **conv_kw)
    n = int(np.prod(conv.out_shape))
    fc = IntLayer(weight=rng.integers(-3, 4, size=(3, n)), bias=np.zeros(3, int), theta=1,
                  readout=True)
    return IntNetwork((conv, fc), T=3)


def test_core_refuses_bad_pooling_and_last_conv_then_runs_dense(rng):
    """Each conv descriptor the gateware does not run stops the run with its code; a dense
    network loaded afterwards runs bit-exactly."""
    conv_net = _conv_net(rng)
    conv_x = random_inputs(rng, conv_net, 1)
    dense_net = random_network(rng, P, max_depth=2)
    dense_x = random_inputs(rng, dense_net, 2)
    prog = img.memory_map(P)["PROGRAM"].base
    changes = [({"pool_log2": 3}, ErrorCode.BAD_SIZE),
               ({"last": 1}, ErrorCode.BAD_KIND), ({"readout": 1}, ErrorCode.BAD_KIND),
               ({"kind": 2}, ErrorCode.BAD_KIND), ({"kh": 0}, ErrorCode.BAD_SIZE),
               ({"stride": 0}, ErrorCode.BAD_SIZE), ({"conv_w": 0}, ErrorCode.BAD_SIZE)]
    dut = SpikePackCore(P)
    pb = PyBus(dut, 3, 0.1)
    statuses = []

    async def host(ctx):
        image = await pb.load(ctx, conv_net, conv_x, P)
        words = image.layers[0].descriptor
        for change, _ in changes:
            bad = encode_descriptor(**{**decode_descriptor(words), **change})
            await pb.write(ctx, prog, bad)
            statuses.append(await pb.run(ctx, 1))
        await pb.write(ctx, prog, words)
        statuses.append(await pb.run(ctx, 1))
        statuses.append(await pb.read_outputs(ctx, image, 1))
        image = await pb.load(ctx, dense_net, dense_x, P)
        statuses.append(await pb.run(ctx, 2))
        statuses.append(await pb.read_outputs(ctx, image, 2))
        pb.finished = True

    pb.simulate(host)
    for (change, code), st in zip(changes, statuses, strict=False):
        assert st & registers.STATUS_ERROR and st >> 8 == code, (change, hex(st))
    *_, conv_done, conv_out, dense_done, dense_out = statuses
    assert conv_done == dense_done == registers.STATUS_DONE
    assert np.array_equal(conv_out, golden.run_network(conv_net, conv_x).output)
    assert np.array_equal(dense_out,
                          golden.run_network(dense_net, dense_x, acc_bits=P.acc_bits).output)


def test_compiler_gateware_check_names_what_is_missing(rng, monkeypatch):
    """The gateware runs plain, pooled and shortcut conv layers: the gateware check passes them;
    an operation missing from ``GATEWARE_CONV_OPS`` is refused by name."""
    conv = IntLayer(weight=rng.integers(-3, 4, size=(2, 2, 3, 3)), bias=np.zeros(2, int),
                    theta=5, kind="conv", in_shape=(2, 4, 4), padding=1,
                    residual=Residual(-1, 2))
    fc = IntLayer(weight=rng.integers(-3, 4, size=(3, 32)), bias=np.zeros(3, int), theta=1,
                  readout=True)
    image = img.build_image(IntNetwork((conv, fc), T=3), P)
    check_gateware(image)
    monkeypatch.setattr(targets, "GATEWARE_CONV_OPS", frozenset({"pool"}))
    with pytest.raises(DoesNotFitError,
                       match=re.escape("layer 0 (conv): a shortcut (residual) input is not in "
                                       "the gateware (it runs pool); drop it")):
        check_gateware(image)
    monkeypatch.undo()
    check_gateware(img.build_image(_conv_net(rng), P))
    check_gateware(img.build_image(_conv_net(rng, pool=MaxPool(2)), P))


def test_compiler_refuses_conv_sums_wider_than_the_planes(rng):
    """A conv layer's fan-in (C_in kh kw) can exceed a dense layer's: the compiler refuses one
    whose per-plane sum would not fit the build's sum_bits."""
    conv = IntLayer(weight=np.full((4, 16, 5, 5), 127), bias=np.zeros(4, int), theta=5,
                    kind="conv", in_shape=(16, 3, 3), padding=2)
    fc = IntLayer(weight=np.ones((3, 36), int), bias=np.zeros(3, int), theta=1, readout=True)
    small = CoreParams(n_pe=4, k=4, act_chunks=64, weight_depth=1024, bt_depth=32)
    assert small.sum_bits == 16
    with pytest.raises(DoesNotFitError, match="per-plane sums are 16-bit"):
        img.build_image(IntNetwork((conv, fc), T=2), small)


def test_dense_only_build_refuses_conv_and_runs_dense(rng):
    """A build with conv=0 (the iCEBreaker's): the compiler refuses a conv network naming the
    parameter, the core answers a conv descriptor with BAD_KIND, and dense networks run
    bit-exactly on its dense-only fetcher and writer."""
    import dataclasses

    p0 = dataclasses.replace(P, conv=0)
    conv_net = _conv_net(rng)
    with pytest.raises(DoesNotFitError, match=r"dense layers only \(conv=0"):
        img.build_image(conv_net, p0)
    conv_image = img.build_image(conv_net, P)  # the same layout, loaded by hand
    dense = [random_network(rng, p0, max_depth=3) for _ in range(2)]
    xs = [random_inputs(rng, net, 2) for net in dense]
    dut = SpikePackCore(p0)
    pb = PyBus(dut, 5, 0.2)
    results = []

    async def host(ctx):
        await pb.write(ctx, img.memory_map(p0)["PROGRAM"].base, conv_image.layers[0].descriptor)
        results.append(await pb.run(ctx, 1))
        for net, x in zip(dense, xs, strict=True):
            image = await pb.load(ctx, net, x, p0)
            results.append(await pb.run(ctx, len(x)))
            results.append(await pb.read_outputs(ctx, image, len(x)))
            caddr, ccount = img.counter_range(image)
            results.append(img.decode_counters(image, await pb.read(ctx, caddr, ccount)))
        pb.finished = True

    pb.simulate(host)
    refused, *rest = results
    assert refused & registers.STATUS_ERROR and refused >> 8 == ErrorCode.BAD_KIND, hex(refused)
    for (net, x), status, out, counters in zip(zip(dense, xs, strict=True), rest[::3],
                                               rest[1::3], rest[2::3], strict=True):
        assert status == registers.STATUS_DONE
        assert np.array_equal(out, golden.run_network(net, x, acc_bits=p0.acc_bits).output)
        # The dense-only build reads the layer settings without the conv builds' copies: the
        # same cycles, as the cycle model has them.
        assert np.array_equal(counters.cycles, predict_cycles(net, x, p0, batch=len(x)).sum(axis=0))


def test_batch_shares_input_and_output_regions_at_the_networks_strides(rng):
    """Samples' inputs lie ``in_stride`` blocks apart in INPUT and their outputs ``passes n_pe``
    words apart in OUTPUT: with a small INPUT region, a 4x4 image (16 blocks) leaves room for
    one sample, not two. The core runs the first sample of a batch of two and stops the second
    with BAD_BATCH (it would overrun INPUT) without touching the first's outputs; a dense network
    of 3 input chunks then runs a batch of two at a 3-block stride."""
    import dataclasses

    p = dataclasses.replace(P, in_blocks=24)  # INPUT: 24 blocks; spike memory 56 rows
    conv = IntLayer(weight=rng.integers(-3, 4, size=(4, 2, 3, 3)), bias=np.zeros(4, int),
                    theta=3, kind="conv", in_shape=(2, 4, 4), padding=1)
    fc = IntLayer(weight=rng.integers(-3, 4, size=(3, 64)), bias=np.zeros(3, int), theta=1,
                  readout=True)
    net = IntNetwork((conv, fc), T=3)
    x = random_inputs(rng, net, 2)
    image = img.build_image(net, p)
    assert (image.in_stride, image.out_stride, image.max_batch) == (16, 4, 1)
    with pytest.raises(DoesNotFitError, match="batch of 2 samples"):
        img.encode_inputs(image, x)
    dense = random_network(rng, p, max_depth=2)
    while -(-dense.n_in // p.k) != 3:
        dense = random_network(rng, p, max_depth=2)
    xd = random_inputs(rng, dense, 2)
    dut = SpikePackCore(p)
    pb = PyBus(dut, 7, 0.2)
    results = []

    async def host(ctx):
        await pb.load(ctx, net, x[:1], p)
        # The second sample's input, written past the end of what the region holds for it
        # (its first 8 words' blocks, each word of them at its lane-major address).
        for second in img.encode_inputs(image, x[1:]):
            await pb.write(ctx, second.addr + image.in_stride,
                           second.words[:max(1, 8 // p.block_words)])
        results.append(await pb.run(ctx, 2, polls=20000))
        results.append(await pb.read_outputs(ctx, image, 1))
        dimage = await pb.load(ctx, dense, xd, p)
        results.append(dimage.in_stride)
        results.append(await pb.run(ctx, 2))
        results.append(await pb.read_outputs(ctx, dimage, 2))
        pb.finished = True

    pb.simulate(host)
    status, out, stride, dstatus, dout = results
    assert status & registers.STATUS_ERROR and status >> 8 == ErrorCode.BAD_BATCH, hex(status)
    assert np.array_equal(out, golden.run_network(net, x[:1], acc_bits=p.acc_bits).output)
    assert stride == 3 and dstatus == registers.STATUS_DONE
    assert np.array_equal(dout, golden.run_network(dense, xd, acc_bits=p.acc_bits).output)
