"""cocotb tests of the whole SpikePack core through its bus (run via tests/hw/core/test_hw_core.py).

Parameters arrive as ``SPIKEPACK_*`` environment variables (``sim.rtl.runner.run_cocotb``): the
build preset, the number of random networks and the base seed. Every case logs its seed; a mismatch
names the seed so it can be replayed alone.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from boards import CORE_PRESETS
from hw.contract import bus, registers
from hw.contract.memory_map import ID_WORDS, as_identified, identify_words, params_from_identify
from sim.golden import model as golden
from sim.rtl.bus_master import BusMaster
from sim.rtl.runner import cocotb_env
from sw.compile import program_image as img
from sw.research.cycle_model import predict_cycles

from .random_nets import (
    expected_conv_counters,
    expected_counters,
    random_conv_network,
    random_inputs,
    random_network,
)

EDGES = (None, None, None, None, "largest", "theta1", "negative")


class TB:
    """Clock, reset and the bus master of one core."""

    def __init__(self, dut, *, stall: float = 0.0, seed: int = 0):
        self.dut = dut
        self.params = CORE_PRESETS[cocotb_env("preset", "small")]
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.bus = BusMaster(dut, dut.clk, stall=stall, rng=random.Random(seed))

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)


async def check_network(tb: TB, net, xs, tag: str) -> list[str]:
    """Load ``net``, run each batch in ``xs``, compare outputs and counters with golden."""
    errors = []
    image = img.build_image(net, tb.params)
    await tb.bus.load(image.writes)
    for x in xs:
        ref = golden.run_network(net, x, acc_bits=tb.params.acc_bits)
        conv = any(layer.kind == "conv" for layer in net.layers)
        spikes, skipped = (expected_conv_counters if conv else expected_counters)(
            net, x, tb.params, ref)
        out, counters, _ = await tb.bus.run_batch(image, x)
        if not np.array_equal(out, ref.output):
            errors.append(f"{tag}: outputs differ\n rtl={out.tolist()}\n ref={ref.output.tolist()}")
        if not np.array_equal(counters.spikes, spikes):
            errors.append(f"{tag}: spikes {counters.spikes.tolist()} != {spikes.tolist()}")
        if not np.array_equal(counters.skipped, skipped):
            errors.append(f"{tag}: skipped {counters.skipped.tolist()} != {skipped.tolist()}")
        if counters.total_cycles != counters.cycles.sum():
            errors.append(f"{tag}: total cycles {counters.total_cycles} != sum per layer")
        model = predict_cycles(net, x, tb.params, ref, batch=len(x)).sum(axis=0)
        if not np.array_equal(counters.cycles, model):
            errors.append(f"{tag}: cycles {counters.cycles.tolist()} != the cycle model's "
                          f"{model.tolist()}")
    return errors


@cocotb.test()
async def identify_and_errors(dut):
    """Identify block, status after reset, bad batch size and bad T are reported as errors."""
    tb = TB(dut)
    await tb.reset()
    p = tb.params
    words = await tb.bus.read(bus.ID_BASE, ID_WORDS)
    assert words == identify_words(p), words
    assert params_from_identify(words) == as_identified(p)
    assert await tb.bus.status() == 0
    await tb.bus.start(0)
    st = await tb.bus.wait_done()
    assert st & registers.STATUS_ERROR and (st >> 8) & 0xFF == 1, hex(st)
    await tb.bus.start(p.batch_depth + 1)
    st = await tb.bus.wait_done()
    assert st & registers.STATUS_ERROR and (st >> 8) & 0xFF == 1, hex(st)
    # A descriptor with T = 0.
    mm = img.memory_map(p)
    await tb.bus.write(mm["PROGRAM"].base, img.encode_descriptor(T=0, last=1, chunks=1, passes=1,
                                                                   n_in=1, n_out=1))
    await tb.bus.start(1)
    st = await tb.bus.wait_done()
    assert st & registers.STATUS_ERROR and (st >> 8) & 0xFF == 2, hex(st)


@cocotb.test()
async def abort_midway(dut):
    """Abort stops a long run at once; the next run is still exact."""
    tb = TB(dut)
    await tb.reset()
    rng = np.random.default_rng(1234)
    net = random_network(rng, tb.params, edge="largest", widest=cocotb_env("widest"))
    x = random_inputs(rng, net, tb.params.batch_depth, "ones")
    image = img.build_image(net, tb.params)
    await tb.bus.load(image.writes)
    await tb.bus.load(img.encode_inputs(image, x))
    await tb.bus.start(len(x))
    await ClockCycles(dut.clk, 50)
    assert await tb.bus.status() & registers.STATUS_BUSY
    await tb.bus.abort()
    assert await tb.bus.status() == 0
    errors = await check_network(tb, net, [x], "after abort")
    assert not errors, "\n".join(errors)


@cocotb.test()
async def random_networks(dut):
    """Many random networks (sizes, depths, T, modes, edge cases), bit-exact with
    sim.golden.model."""
    n = int(cocotb_env("networks", 20))
    base_seed = int(cocotb_env("seed", 0))
    stall = float(cocotb_env("stall", 0.2))
    widest = cocotb_env("widest")
    tb = TB(dut, stall=stall, seed=base_seed)
    await tb.reset()
    errors = []
    for case in range(n):
        seed = base_seed * 100_003 + case
        rng = np.random.default_rng(seed)
        edge = EDGES[case % len(EDGES)]
        net = random_network(rng, tb.params, edge=edge, widest=widest)
        kinds = [None, "zeros", "ones"] if case % 5 == 0 else [None]
        depth = img.build_image(net, tb.params).max_batch  # < batch_depth for wide inputs
        xs = [random_inputs(rng, net, int(rng.integers(1, depth + 1)), kind) for kind in kinds]
        tag = (f"case {case} seed {seed} edge={edge} T={net.T} sizes="
               f"{[net.n_in] + [layer.n_out for layer in net.layers]} "
               f"modes={[layer.mode.value for layer in net.layers]}")
        dut._log.info(tag)
        errors += await check_network(tb, net, xs, tag)
        if len(errors) > 10:
            break
    assert not errors, "\n".join(errors[:10])


def _shortcut_tag(layer) -> str:
    r = layer.residual
    return f"res({r.source},{r.gain})" if r is not None else ""


@cocotb.test()
async def random_conv_networks(dut):
    """Random conv networks (conv layers then dense ones: kernel 1..5, stride 1..2, padding 0..2,
    max pooling 2 or 4 or none, shortcuts from the input or an earlier conv layer, channels, map
    sizes, T, modes), outputs and per-layer counters bit-exact with sim.golden.model, and the
    cycle counters equal to the cycle model's."""
    n = int(cocotb_env("conv_networks", 20))
    base_seed = int(cocotb_env("seed", 0))
    stall = float(cocotb_env("stall", 0.2))
    tb = TB(dut, stall=stall, seed=base_seed)
    await tb.reset()
    errors = []
    for case in range(n):
        seed = base_seed * 100_003 + 50_000 + case
        rng = np.random.default_rng(seed)
        net = random_conv_network(rng, tb.params, pool=True)
        kinds = [None, "zeros", "ones"] if case % 7 == 0 else [None]
        depth = img.build_image(net, tb.params).max_batch  # < batch_depth for wide inputs
        xs = [random_inputs(rng, net, int(rng.integers(1, depth + 1)), kind) for kind in kinds]
        geometry = [f"{layer.in_shape}k{layer.kernel[0]}s{layer.stride}p{layer.padding}"
                    f"{'pool' + str(layer.pool.kernel) if layer.pool else ''}{_shortcut_tag(layer)}"
                    f"->{layer.out_channels}" if layer.kind == "conv" else f"fc{layer.n_out}"
                    for layer in net.layers]
        tag = (f"conv case {case} seed {seed} T={net.T} layers={geometry} "
               f"modes={[layer.mode.value for layer in net.layers]}")
        dut._log.info(tag)
        errors += await check_network(tb, net, xs, tag)
        if len(errors) > 10:
            break
    assert not errors, "\n".join(errors[:10])


@cocotb.test(skip=cocotb_env("digits") is None)
async def digits(dut):
    """Every test digit through the RTL: outputs, predictions and spikes equal golden's."""
    from sim.golden.ir import IntNetwork

    path = cocotb_env("digits")
    net = IntNetwork.load(path + ".net.npz")
    with np.load(path + ".data.npz") as f:
        x, y = f["x"], f["y"]
    tb = TB(dut)
    await tb.reset()
    image = img.build_image(net, tb.params)
    await tb.bus.load(image.writes)
    ref = golden.run_network(net, x, acc_bits=tb.params.acc_bits)
    outs, spikes = [], np.zeros(len(net.layers), dtype=np.int64)
    cycles = 0
    for start in range(0, len(x), image.max_batch):
        out, counters, _ = await tb.bus.run_batch(image, x[start:start + image.max_batch],
                                                  poll=256)
        outs.append(out)
        spikes += counters.spikes
        cycles += counters.total_cycles
    out = np.concatenate(outs)
    pred = np.argmax(out, axis=-1)
    dut._log.info(f"digits: {len(x)} samples, RTL accuracy {np.mean(pred == y):.4f}, "
                  f"golden accuracy {np.mean(ref.predictions() == y):.4f}, "
                  f"{cycles / len(x):.0f} cycles per digit")
    assert np.array_equal(out, ref.output)
    assert np.array_equal(pred, ref.predictions())
    assert np.array_equal(spikes, ref.spikes_per_layer.sum(axis=1))
