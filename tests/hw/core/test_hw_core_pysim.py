"""The whole core in Amaranth's simulator: sequencer, memories and bus slave, through the bus.

A request producer and a response consumer run as separate testbenches with random stalls, so the
bus's back-pressure is exercised both ways; results are compared with sim.golden.model.
"""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.contract import bus, registers
from hw.contract.memory_map import identify_words, memory_map
from hw.contract.params import CoreParams
from hw.core.core import SpikePackCore
from sim.golden import model as golden
from sim.rtl.streams import stream_put
from sim.tb.random_nets import expected_counters, random_inputs, random_network
from sw.compile import program_image as img
from sw.research.cycle_model import predict_cycles

P = CoreParams(n_pe=4, k=4, t_max=8, acc_bits=24, weight_depth=64, act_chunks=4, bt_depth=32,
               max_layers=4, batch_depth=2)


class PyBus:
    """Request producer + response consumer over a shared answer list."""

    def __init__(self, dut, seed, pause):
        self.dut, self.pause = dut, pause
        self.r_req, self.r_resp = random.Random(seed), random.Random(seed + 1)
        self.answers = []
        self.reads = 0
        self.finished = False

    async def write(self, ctx, addr, words):
        for n, w in enumerate(words):
            await stream_put(ctx, self.dut.bus.req, {"addr": addr + n, "data": int(w), "write": 1},
                             rng=self.r_req, pause=self.pause)

    async def read(self, ctx, addr, count=1):
        out = []
        for n in range(count):
            self.reads += 1
            await stream_put(ctx, self.dut.bus.req, {"addr": addr + n, "data": 0, "write": 0},
                             rng=self.r_req, pause=self.pause)
            while len(self.answers) < self.reads:
                await ctx.tick()
            out.append(self.answers[self.reads - 1])
        return out

    async def load(self, ctx, net, x, params):
        """Write the network's program image and the batch ``x``; the image."""
        image = img.build_image(net, params)
        for w in list(image.writes) + img.encode_inputs(image, x):
            await self.write(ctx, w.addr, w.words)
        return image

    async def run(self, ctx, batch, polls=4000):
        """Start a run of ``batch`` samples and poll until it is over (at most ``polls`` times,
        about 25 cycles each: a run that never ends returns a busy status, it does not hang the
        test); the final status word."""
        await self.write(ctx, bus.REG_CONTROL, [registers.control_word(batch)])
        for _ in range(polls):
            if not (await self.read(ctx, bus.REG_STATUS))[0] & registers.STATUS_BUSY:
                break
            await ctx.tick().repeat(16)
        return (await self.read(ctx, bus.REG_STATUS))[0]

    async def run_network(self, ctx, net, x, params):
        """Load ``net`` and the batch ``x``, run it, read its outputs and counters: ``(status,
        outputs, counters)``."""
        image = await self.load(ctx, net, x, params)
        status = await self.run(ctx, len(x))
        outputs = await self.read_outputs(ctx, image, len(x))
        caddr, ccount = img.counter_range(image)
        counters = img.decode_counters(image, await self.read(ctx, caddr, ccount))
        return status, outputs, counters

    async def read_outputs(self, ctx, image, batch):
        words = []
        for addr, count in img.output_addresses(image, batch):
            words += await self.read(ctx, addr, count)
        return img.decode_outputs(image, words)

    def simulate(self, host):
        """Run ``host`` (an async testbench) against the core, this bus's consumer beside it."""
        sim = Simulator(self.dut)
        sim.add_clock(1e-6)
        sim.add_testbench(host)
        sim.add_testbench(self.consumer)
        sim.run()

    async def consumer(self, ctx):
        """Take answers (``ready`` low at random) until the host is finished."""
        resp = self.dut.bus.resp
        while not self.finished:
            ready = not (self.pause and self.r_resp.random() < self.pause)
            ctx.set(resp.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(resp.valid, resp.payload)
            if ready and valid:
                self.answers.append(payload)


def check_run(net, x, params, status, out, counters):
    """A batch run of ``net`` on ``x`` (batch run, :meth:`PyBus.run_network`) ended done with
    the golden outputs, spike and skip counters, and the cycle model's cycles per layer."""
    ref = golden.run_network(net, x, acc_bits=params.acc_bits)
    spikes, skipped = expected_counters(net, x, params, ref)
    assert status == registers.STATUS_DONE
    assert np.array_equal(out, ref.output)
    assert np.array_equal(counters.spikes, spikes)
    assert np.array_equal(counters.skipped, skipped)
    model = predict_cycles(net, x, params, ref, batch=len(x))
    assert np.array_equal(counters.cycles, model.sum(axis=0))


@pytest.mark.parametrize("pause,weight_regs,conv,prefetch,depth", [
    (0.0, 2, 1, 0, 2), (0.3, 2, 1, 0, 2), (0.3, 0, 1, 0, 2), (0.3, 2, 0, 0, 2), (0.3, 2, 1, 1, 2),
    (0.3, 0, 0, 1, 2), (0.3, 0, 0, 1, 1)])
def test_core_pysim_networks(pause, weight_regs, conv, prefetch, depth, seed):
    """Random dense networks through the bus, with back-pressure, on conv builds and a
    dense-only one (``conv=0``, the iCEBreaker's, which no other simulation runs), with and
    without the sequencer's prefetch (``seq_prefetch``), batches of up to ``depth`` samples
    (1: no sample bases to step, as the iCEBreaker); the cycle counters == the cycle model
    (for a batch run)."""
    params = dataclasses.replace(P, weight_regs=weight_regs, conv=conv, seq_prefetch=prefetch,
                                 batch_depth=depth)
    dut = SpikePackCore(params)
    pb = PyBus(dut, seed, pause)
    rng = np.random.default_rng(seed)
    cases = []
    for n in range(3):
        net = random_network(rng, params, max_depth=3, edge=("largest", None, "negative")[n])
        depth = img.build_image(net, params).max_batch  # fewer than batch_depth for wide images
        cases.append((net, random_inputs(rng, net, int(rng.integers(1, depth + 1)))))
    results = []

    async def host(ctx):
        assert await pb.read(ctx, bus.ID_BASE, 13) == identify_words(params)[:13]
        for net, x in cases:
            results.append(await pb.run_network(ctx, net, x, params))
        pb.finished = True

    pb.simulate(host)
    assert len(results) == len(cases)
    for (net, x), (status, out, counters) in zip(cases, results, strict=False):
        check_run(net, x, params, status, out, counters)
        assert counters.total_cycles == counters.cycles.sum()
        assert counters.cycles.min() > 0


def test_core_without_lif_reports_lif_layers():
    """On a SpikePack-only build (lif=0) a LIF descriptor stops the run with error NO_LIF, and
    a SpikePack network still runs bit-exactly."""
    from hw.contract.errors import ErrorCode
    from sim.golden.ir import Mode

    p = CoreParams(n_pe=4, k=4, t_max=8, acc_bits=24, weight_depth=64, act_chunks=4, bt_depth=32,
                   max_layers=4, batch_depth=2, lif=0)
    dut = SpikePackCore(p)
    pb = PyBus(dut, 0, 0.0)
    rng = np.random.default_rng(3)
    net = random_network(rng, p, max_depth=2)
    x = random_inputs(rng, net, 2)
    statuses = []

    async def host(ctx):
        image = await pb.load(ctx, net, x, p)
        statuses.append(await pb.run(ctx, len(x)))
        statuses.append(await pb.read_outputs(ctx, image, len(x)))
        # The same program with layer 0 turned into a LIF layer (bit 4 of descriptor word 0).
        prog = memory_map(p)["PROGRAM"].base
        word0 = (await pb.read(ctx, prog))[0]
        await pb.write(ctx, prog, [word0 | 1 << 4])
        statuses.append(await pb.run(ctx, len(x)))
        pb.finished = True

    pb.simulate(host)
    assert not any(layer.mode is Mode.LIF for layer in net.layers)
    assert statuses[0] == registers.STATUS_DONE
    assert np.array_equal(statuses[1], golden.run_network(net, x, acc_bits=p.acc_bits).output)
    assert statuses[2] & registers.STATUS_ERROR and statuses[2] >> 8 == ErrorCode.NO_LIF


def test_core_refuses_bad_batches_and_descriptors_with_their_codes():
    """A start with batch 0, or above batch_depth (even one whose low bits would fit the batch
    register), and each descriptor check of the sequencer broken one at a time in the first
    layer, stop the run with their own code (the batch first, then kind, T, LIF, sizes); the
    program restored, the run is bit-exact again."""
    from hw.contract.errors import ErrorCode
    from hw.contract.memory_map import DESCRIPTOR_WORDS, decode_descriptor, encode_descriptor

    dut = SpikePackCore(P)
    pb = PyBus(dut, 9, 0.1)
    rng = np.random.default_rng(17)
    net = random_network(rng, P, max_depth=1)
    x = random_inputs(rng, net, 1)
    prog = memory_map(P)["PROGRAM"].base
    results = []

    def cases(d):
        covered = d["passes"] * P.n_pe
        return [
            ({}, 0, ErrorCode.BAD_BATCH),
            ({}, P.batch_depth + 1, ErrorCode.BAD_BATCH),
            ({}, 1 << 15, ErrorCode.BAD_BATCH),
            ({"kind": 1}, 1, ErrorCode.BAD_KIND),
            ({"kind": 1}, 0, ErrorCode.BAD_BATCH),
            ({"T": 0}, 1, ErrorCode.BAD_T),
            ({"T": P.t_max + 1, "kind": 0}, 1, ErrorCode.BAD_T),
            ({"chunks": 0}, 1, ErrorCode.BAD_SIZE),
            ({"chunks": P.act_chunks + 1}, 1, ErrorCode.BAD_SIZE),
            ({"passes": 0}, 1, ErrorCode.BAD_SIZE),
            ({"passes": P.max_passes + 1}, 1, ErrorCode.BAD_SIZE),
            ({"n_out": covered + 1}, 1, ErrorCode.BAD_SIZE),
            ({"n_out": covered - P.n_pe}, 1, ErrorCode.BAD_SIZE),
            ({"bt_base": P.bt_rows - d["passes"] + 1}, 1, ErrorCode.BAD_SIZE),
            ({"in_stride": 0}, 1, ErrorCode.BAD_SIZE),
            # Layer 0's input larger than INPUT; a batch whose second input overruns it.
            ({"in_stride": P.input_blocks + 1}, 1, ErrorCode.BAD_BATCH),
            ({"in_stride": P.input_blocks // 2 + 1}, 2, ErrorCode.BAD_BATCH),
        ]

    async def host(ctx):
        image = await pb.load(ctx, net, x, P)
        words = await pb.read(ctx, prog, DESCRIPTOR_WORDS)
        good = decode_descriptor(words)
        for change, batch, code in cases(good):
            await pb.write(ctx, prog, encode_descriptor(**{**good, **change}))
            results.append((change, code, await pb.run(ctx, batch)))
        await pb.write(ctx, prog, words)
        results.append(await pb.run(ctx, 1))
        results.append(await pb.read_outputs(ctx, image, 1))
        pb.finished = True

    pb.simulate(host)
    *refused, done, out = results
    assert len(refused) == 17
    for change, code, status in refused:
        assert status & registers.STATUS_ERROR and not status & registers.STATUS_BUSY, \
            (change, hex(status))
        assert status >> 8 == code, (change, code, hex(status))
    assert done == registers.STATUS_DONE
    assert np.array_equal(out, golden.run_network(net, x, acc_bits=P.acc_bits).output)


def test_core_refuses_a_later_layer_after_counting_the_ones_before():
    """A bad descriptor of layer 1 (T = 0) ends the run with its code once layer 0 is over and
    counted, as a program with no ``last`` layer ends with ``NO_LAST`` after its
    ``max_layers`` layers; the program restored, the run is bit-exact again."""
    from hw.contract.errors import ErrorCode
    from hw.contract.memory_map import DESCRIPTOR_WORDS, decode_descriptor, encode_descriptor

    dut = SpikePackCore(P)
    pb = PyBus(dut, 11, 0.1)
    rng = np.random.default_rng(23)
    net = random_network(rng, P, max_depth=2)
    while len(net.layers) < 2:
        net = random_network(rng, P, max_depth=2)
    x = random_inputs(rng, net, 1)
    prog = memory_map(P)["PROGRAM"].base
    results = {}

    async def host(ctx):
        image = await pb.load(ctx, net, x, P)
        caddr, ccount = img.counter_range(image)
        words = await pb.read(ctx, prog, P.max_layers * DESCRIPTOR_WORDS)
        descs = [decode_descriptor(words[i * DESCRIPTOR_WORDS:(i + 1) * DESCRIPTOR_WORDS])
                 for i in range(P.max_layers)]
        n = len(net.layers)
        await pb.write(ctx, prog + DESCRIPTOR_WORDS, encode_descriptor(**{**descs[1], "T": 0}))
        status = await pb.run(ctx, 1)
        results["bad_t"] = (status, img.decode_counters(image, await pb.read(ctx, caddr, ccount)))
        await pb.write(ctx, prog, words)
        # No layer says ``last``: the run goes through all max_layers descriptors.
        again = {**descs[n - 1], "last": 0}
        for li in range(n - 1, P.max_layers):
            await pb.write(ctx, prog + li * DESCRIPTOR_WORDS, encode_descriptor(**again))
        results["no_last"] = await pb.run(ctx, 1)
        await pb.write(ctx, prog, words)
        results["done"] = await pb.run(ctx, 1)
        results["out"] = await pb.read_outputs(ctx, image, 1)
        pb.finished = True

    pb.simulate(host)
    status, counters = results["bad_t"]
    assert status & registers.STATUS_ERROR and status >> 8 == ErrorCode.BAD_T, hex(status)
    assert counters.cycles[0] > 0 and counters.cycles[1:].sum() == 0, counters
    status = results["no_last"]
    assert status & registers.STATUS_ERROR and status >> 8 == ErrorCode.NO_LAST, hex(status)
    assert results["done"] == registers.STATUS_DONE
    assert np.array_equal(results["out"], golden.run_network(net, x, acc_bits=P.acc_bits).output)


def test_core_params_refuse_a_write_port_of_three_stages():
    with pytest.raises(ValueError, match=r"weight_write_reg must be 0, 1 or 2 .* not 3"):
        dataclasses.replace(P, weight_write_reg=3)


@pytest.mark.parametrize("planes, in_blocks", [(1, 0), (2, 0), (2, 24)])
def test_input_words_above_T_are_never_read(planes, in_blocks, seed):
    """INPUT is lane-major and the host writes only the block words that hold planes below
    ``T`` (``encode_inputs``); the others keep what they held. With every block's second word
    set to all ones first, random dense networks of ``T <= 4`` (one of a block's two words),
    then one of ``T >= 5`` (both words; it leaves its own spikes in the second words), then
    ``T <= 4`` again, give the golden outputs, spike and skip counters, and the cycle model's
    cycles: the core reads no plane at or above ``T`` (one and two planes per beat: the
    fetcher's two paths). With 24 input blocks (not a power of two) each word's run is 32 rows
    long, which the ``T >= 5`` network's second words test; all-ones writes to the 8 rows past
    the 24 of both words change nothing either (the core drops them; without that they would
    land in the ping-pong halves, which a run writes before it reads, so this does not tell)."""
    params = dataclasses.replace(P, n_pe=8, k=8, planes_per_beat=planes, conv=1,
                                 in_blocks=in_blocks)
    assert params.block_words == 2
    dut = SpikePackCore(params)
    pb = PyBus(dut, seed, 0.2)
    rng = np.random.default_rng(seed)
    cases = []
    for wide in (False, False, True, False):
        while True:
            net = random_network(rng, params, max_depth=2)
            if (net.T >= 5) == wide:
                break
        assert params.input_words_per_block(net.T) == (2 if wide else 1)
        depth = img.build_image(net, params).max_batch
        cases.append((net, random_inputs(rng, net, int(rng.integers(1, depth + 1)))))
    region = memory_map(params)["INPUT"]
    results = []

    async def host(ctx):
        await pb.write(ctx, region.base + params.input_lane_stride,
                       [0xFFFFFFFF] * params.input_blocks)
        for w in range(params.block_words):  # the rows past input_blocks, if any
            await pb.write(ctx, region.base + w * params.input_lane_stride + params.input_blocks,
                           [0xFFFFFFFF] * (params.input_lane_stride - params.input_blocks))
        for net, x in cases:
            results.append(await pb.run_network(ctx, net, x, params))
        pb.finished = True

    pb.simulate(host)
    for (net, x), (status, out, counters) in zip(cases, results, strict=True):
        check_run(net, x, params, status, out, counters)
