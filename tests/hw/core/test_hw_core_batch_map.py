"""A batch of a dense network run as one map (``sw.compile.batch_map``) on the core, in Amaranth's
simulator: outputs equal the dense network's on each sample, spike and skip counters equal the
batch run's, cycles equal the cycle model's and are fewer than the batch run's; the map image
writes the same INPUT words and weights as the dense image; a last conv layer that is not a row
of one pass per position stays refused."""

import dataclasses

import numpy as np
import pytest
from test_hw_core_conv import P, _check_runs, _run_cases
from test_hw_core_pysim import PyBus

from hw.contract import registers
from hw.contract.errors import ErrorCode
from hw.contract.memory_map import decode_descriptor, encode_descriptor
from hw.core.core import SpikePackCore
from sim.golden import model as golden
from sim.golden.ir import IntLayer, IntNetwork
from sim.tb.random_nets import expected_conv_counters, random_inputs, random_network
from sw.compile import program_image as img
from sw.compile.batch_map import (
    image_map_width,
    map_inputs,
    map_network,
    map_outputs,
    map_program,
    max_map_width,
    own_program,
    runs_as_map,
)
from sw.compile.errors import DoesNotFitError
from sw.research.cycle_model import predict_cycles


def _mappable(rng, params, min_width=2, readout=None):
    """A random dense network whose last layer is one pass (a readout or not, when
    ``readout`` says), and a map width for it."""
    for _ in range(500):
        net = random_network(rng, params, max_depth=3)
        most = max_map_width(net, params)
        if most >= min_width and readout in (None, net.layers[-1].readout):
            return net, int(rng.integers(min_width, most + 1))
    raise RuntimeError("no mappable network drawn")


def test_map_image_writes_what_the_batch_image_writes(seed):
    """Weights, biases, thresholds and every sample's INPUT words are the same; only the
    descriptors differ; outputs and counters of the golden model agree."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        net, width = _mappable(rng, P)
        x = random_inputs(rng, net, width)
        mnet = map_network(net, width)
        dense, mapped = img.build_image(net, P), img.build_image(mnet, P)
        assert ([w for w in dense.writes if w.region != "PROGRAM"]
                == [w for w in mapped.writes if w.region != "PROGRAM"])
        # The batch's INPUT blocks, sample after sample, are the map's.
        dense_in = np.concatenate([img.input_block_words(dense, x[b:b + 1])[0]
                                   for b in range(width)])
        assert np.array_equal(dense_in, img.input_block_words(mapped, map_inputs(x))[0])
        assert mapped.out_stride == width * P.n_pe
        # The driver's program words, made from the dense image alone, are the map image's.
        assert image_map_width(dense) == max_map_width(net, P)
        assert [w for w in dense.writes if w.region == "PROGRAM"] == [own_program(dense)]
        assert [w for w in mapped.writes if w.region == "PROGRAM"] == [map_program(dense, width)]
        assert runs_as_map(dense, width) and not runs_as_map(dense, 1)
        assert not runs_as_map(dense, image_map_width(dense) + 1)
        # Spike and skip counters of the map are the batch run's.
        for want, got in zip(expected_conv_counters(net, x, P),
                             expected_conv_counters(mnet, map_inputs(x), P), strict=True):
            assert np.array_equal(want, got)
        ref = golden.run_network(net, x, acc_bits=P.acc_bits)
        mref = golden.run_network(mnet, map_inputs(x), acc_bits=P.acc_bits)
        assert np.array_equal(map_outputs(mref.output, width), ref.output)


def test_max_map_width_names_the_limits():
    """The width is bound by INPUT, OUTPUT, a ping-pong half and the descriptor's side; a
    network with a conv layer, or a last layer of two passes, or a dense-only build, has none."""
    def dense(n_in, n_out, readout=False):
        return IntLayer(weight=np.ones((n_out, n_in), int), bias=np.zeros(n_out, int), theta=1,
                        readout=readout)
    # P: in_blocks 32 (INPUT), act_chunks 16, output_words 64 / n_pe 4 = 16 positions.
    assert max_map_width(IntNetwork((dense(4, 4, True),), 2), P) == min(
        P.input_blocks, P.output_words // P.n_pe, 255)
    assert max_map_width(IntNetwork((dense(12, 4, True),), 2), P) == min(
        P.input_blocks // 3, P.output_words // P.n_pe)
    assert max_map_width(IntNetwork((dense(4, 8), dense(8, 4, True)), 2), P) == min(
        P.act_chunks // 2, P.output_words // P.n_pe, P.input_blocks)
    assert max_map_width(IntNetwork((dense(4, 5, True),), 2), P) == 0  # two passes
    import dataclasses
    assert max_map_width(IntNetwork((dense(4, 4, True),), 2),
                         dataclasses.replace(P, conv=0)) == 0


def test_core_pysim_batch_as_one_map(seed):
    """Random dense networks: the batch as one map on the core gives each sample's outputs,
    the batch run's spike and skip counters and the cycle model's cycles, in fewer cycles than
    the batch run (which the same simulation runs beside it)."""
    rng = np.random.default_rng(seed)
    cases, dense_cases = [], []
    for readout in (True, False, None):
        net, width = _mappable(rng, P, min_width=P.batch_depth, readout=readout)
        x = random_inputs(rng, net, width)
        cases.append((map_network(net, width), map_inputs(x)))
        dense_cases.append((net, x[:P.batch_depth]))
    dut = SpikePackCore(P)
    results = _run_cases(dut, PyBus(dut, seed, 0.2), cases + dense_cases)
    _check_runs(cases, results[:len(cases)], P)  # outputs, counters, cycles of the maps
    for (mnet, mx), (net, x), (_, out, counters), (_, _, dense_counters) in zip(
            cases, dense_cases, results[:len(cases)], results[len(cases):], strict=True):
        width = mx.size // net.n_in
        ref = golden.run_network(net, mx.reshape(net.n_in, width).T, acc_bits=P.acc_bits)
        assert np.array_equal(map_outputs(out, width), ref.output)
        # The first batch_depth samples as a batch run: per sample the map costs less.
        model = predict_cycles(mnet, mx, P)
        assert counters.cycles.sum() == model.sum()
        per_sample_map = counters.total_cycles / width
        per_sample_batch = dense_counters.total_cycles / len(x)
        assert per_sample_map < per_sample_batch, (per_sample_map, per_sample_batch)


def test_core_pysim_maps_with_walk_replay(seed):
    """The maps of random dense networks (1x1 conv layers of several passes) on a build whose
    walk replays, after a position's first pass, only the blocks it found with a spike
    (``walk_replay``): outputs, spike and skip counters == golden, cycles == the cycle model."""
    params = dataclasses.replace(P, fetch_queue=4, walk_replay=1)
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < 3:
        net, width = _mappable(rng, params, min_width=2)
        if max(layer.n_out for layer in net.layers) > params.n_pe:  # a layer of 2+ passes
            x = random_inputs(rng, net, width)
            cases.append((map_network(net, width), map_inputs(x)))
    dut = SpikePackCore(params)
    results = _run_cases(dut, PyBus(dut, seed, 0.2), cases, params=params)
    _check_runs(cases, results, params)


@pytest.mark.parametrize("change", [{"conv_h": 2}, {"passes": 2}, {"pool_log2": 1},
                                    {"last": 0, "readout": 1}])
def test_core_refuses_a_last_conv_layer_that_is_not_a_row(change, seed):
    """A last conv layer runs only as a row of one pass per position, and a conv readout only
    as the last layer: BAD_KIND otherwise (BAD_SIZE where the change breaks the geometry first);
    the compiler refuses the same, and a shortcut or pooling there, before the core sees it.
    The row runs one sample a run (BAD_BATCH for two; the image's ``max_batch`` is 1)."""
    rng = np.random.default_rng(seed)
    net, width = _mappable(rng, P)
    mnet = map_network(net, width)
    x = map_inputs(random_inputs(rng, net, width))
    prog = img.memory_map(P)["PROGRAM"].base
    dut = SpikePackCore(P)
    pb = PyBus(dut, 3, 0.1)
    statuses = []

    async def host(ctx):
        image = await pb.load(ctx, mnet, x, P)
        words = image.layers[-1].descriptor
        where = prog + (len(image.layers) - 1) * len(words)
        bad = encode_descriptor(**{**decode_descriptor(words), **change})
        await pb.write(ctx, where, bad)
        statuses.append(await pb.run(ctx, 1))
        await pb.write(ctx, where, words)
        statuses.append(await pb.run(ctx, 2))  # a conv row runs one sample a run
        statuses.append(await pb.run(ctx, 1))
        pb.finished = True

    pb.simulate(host)
    refused, two, done = statuses
    assert two & registers.STATUS_ERROR and two >> 8 == ErrorCode.BAD_BATCH, hex(two)
    # (pooling a row leaves no pooled row: BAD_SIZE)
    codes = {ErrorCode.BAD_KIND} | ({ErrorCode.BAD_SIZE} if "passes" in change
                                    or "pool_log2" in change else set())
    assert refused & registers.STATUS_ERROR and refused >> 8 in codes, hex(refused)
    assert done == registers.STATUS_DONE, hex(done)
    assert img.build_image(mnet, P).max_batch == 1
    tall = IntLayer(weight=np.ones((2, 3, 1, 1), int), bias=np.zeros(2, int), theta=1,
                    readout=True, kind="conv", in_shape=(3, 2, 2))
    with pytest.raises(DoesNotFitError, match="one row of at most"):
        img.build_image(IntNetwork((tall,), 2), P)
