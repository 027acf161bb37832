"""cocotb module behind ``sim.rtl.session``: the host driver runs one session against the
Accelerator RTL through its UART pins (DUT: ``hw.accelerator.Accelerator``).

The session identifies the device, takes the program image (an image file from ``spikepack
compile``, or one compiled here for the parameters the device reports), uploads it with read-back
verification, runs the inputs batch by batch and writes what the *device* returned (identify
words, outputs, per-run counters, cycles) to an ``.npz``. It compares nothing: the caller does.

Parameters (``sim.rtl.runner.run_cocotb(env=...)``): ``clk_freq``, ``baud``, ``idle_timeout``,
``image`` (a ``sw.compile.image_file`` file) or ``net`` (an ``IntNetwork.save`` file), ``inputs``
(``.npy`` of packed inputs, may hold zero rows: upload only), ``out`` (``.npz`` to write),
``progress`` (optional JSON file rewritten as the session goes: ``phase``, ``done``, ``total``),
``front`` (``"uart"``: cocotbext-uart on the pins of an ``Accelerator``; ``"pipe"``: chunks
through the ``sim.rtl.byte_pipe.PipedAccelerator`` top), ``chunk`` (pipe chunk bytes),
``pipeline`` and ``maps`` (``Device.infer``'s, default true), ``corrupt`` (optional list: the
frames written during the inference, counted from 1, in which one byte is flipped on the way, so
the device must refuse them and the driver resend them), ``batchwise_too`` (then run the inputs
again with ``pipeline=False``, check the outputs agree and record its cycles).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.task import bridge
from cocotb.triggers import Timer

from sim.rtl.runner import cocotb_env
from sim.rtl.uart_host import start_host, uart_device
from sw.compile import batch_map

CLK_FREQ = cocotb_env("clk_freq", 100_000_000)
BAUD = cocotb_env("baud", 25_000_000)
IDLE_TIMEOUT = cocotb_env("idle_timeout", 64)
PERIOD_NS = 1e9 / CLK_FREQ


class Corrupting:
    """A transport that flips a byte in the ``frames``-th writes (counted from 1)."""

    def __init__(self, inner, frames):
        self.inner, self.frames, self.n = inner, set(frames), 0
        self.description, self.default_timeout = inner.description, inner.default_timeout

    def write(self, data):
        self.n += 1
        if self.n in self.frames:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        self.inner.write(bytes(data))

    def read(self, n, timeout):
        return self.inner.read(n, timeout)

    def discard_input(self):
        self.inner.discard_input()


class Progress:
    """Writes ``{"phase", "done", "total"}`` to a file the host polls (atomically replaced)."""

    def __init__(self, path):
        self.path = path
        self.state = {"phase": "start", "done": 0, "total": 0}

    def set(self, phase=None, done=None, total=None):
        for key, value in (("phase", phase), ("done", done), ("total", total)):
            if value is not None:
                self.state[key] = value
        if self.path:
            tmp = f"{self.path}.tmp"
            with open(tmp, "w") as f:
                json.dump(self.state, f)
            os.replace(tmp, self.path)


async def watch_upload(transport, progress, total_bytes):
    """Report the bytes sent to the UART while the upload runs (every 20 us of simulated time)."""
    while True:
        progress.set(done=min(transport.bytes_written, total_bytes))
        await Timer(20, unit="us")


@cocotb.test()
async def session(dut):
    """Identify, upload (with read-back) and infer; a refusal by the driver (``DeviceError``:
    an image for another build, a failed transaction) is written to the ``refused`` file, so the
    host can say it in the driver's own words."""
    from sw.host.driver import DeviceError

    try:
        await _session(dut)
    except DeviceError as e:
        if cocotb_env("refused"):
            with open(cocotb_env("refused"), "w") as f:
                f.write(str(e))
        raise


async def _session(dut):
    from hw.contract.protocol import REQUEST_OVERHEAD
    from sim.golden.ir import IntNetwork
    from sw.compile.image_file import load_image_file
    from sw.compile.program_image import build_image

    x = np.load(cocotb_env("inputs"))
    progress = Progress(cocotb_env("progress"))
    progress.set("identify")

    source, sink = await start_host(dut, front=cocotb_env("front", "uart"), baud=BAUD,
                                    period_ns=PERIOD_NS, chunk=cocotb_env("chunk", 32),
                                    clock=cocotb_env("clock", "testbench"))

    dev = uart_device(source, sink, idle_timeout=IDLE_TIMEOUT, period_ns=PERIOD_NS, baud=BAUD)
    info = await bridge(dev.identify)()
    if cocotb_env("image"):
        image = load_image_file(cocotb_env("image")).image
    else:
        image = build_image(IntNetwork.load(cocotb_env("net")), info.core_params())

    words = sum(len(w.words) for w in image.writes)
    per_frame = info.link.max_payload // 4 - 1
    total_bytes = 4 * words + (REQUEST_OVERHEAD + 4) * sum(
        -(-len(w.words) // per_frame) for w in image.writes)
    progress.set("upload", 0, total_bytes)
    watcher = cocotb.start_soon(watch_upload(dev.transport, progress, total_bytes))
    t0, w0, c0 = get_sim_time("ns"), time.monotonic(), time.process_time()
    await bridge(lambda: dev.load_image(image, verify=True, progress=False))()
    t1, w1, c1 = get_sim_time("ns"), time.monotonic(), time.process_time()
    watcher.cancel()

    progress.set("infer", 0, len(x))
    if cocotb_env("corrupt"):
        dev.transport = Corrupting(dev.transport, cocotb_env("corrupt"))
    if len(x):
        result = await bridge(dev.infer)(image, x, pipeline=cocotb_env("pipeline", True),
                                         maps=cocotb_env("maps", True),
                                         progress=lambda done: progress.set(done=done))
        outputs, counters = [result.outputs], result.counters
    else:
        outputs, counters = [], []
    t2, w2, c2 = get_sim_time("ns"), time.monotonic(), time.process_time()
    batchwise_cycles = 0
    if len(x) and cocotb_env("batchwise_too"):  # the same inputs again, batch by batch
        again = await bridge(dev.infer)(image, x, pipeline=False,
                                        maps=cocotb_env("maps", True))
        assert np.array_equal(again.outputs, outputs[0]), "batch-by-batch outputs differ"
        batchwise_cycles = round((get_sim_time("ns") - t2) / PERIOD_NS)
    if len(x) and batch_map.image_map_width(image) >= 2:  # after maps: the image's own program
        own = batch_map.own_program(image)
        back = await bridge(dev.read_words)(own.addr, len(own.words))
        assert back == list(own.words), "the device kept a map's descriptors after infer"

    def per_run(field):
        return np.array([list(getattr(c, field)) for c in counters], dtype=np.int64).reshape(
            len(counters), len(image.layers))

    np.savez(cocotb_env("out"),
             outputs=(np.concatenate(outputs) if outputs
                      else np.zeros((0, image.n_out), dtype=np.int64)),
             spikes=per_run("spikes"), cycles=per_run("cycles"), skipped=per_run("skipped"),
             total_cycles=np.array([c.total_cycles for c in counters], dtype=np.int64),
             link_words=np.array(dataclasses.astuple(info.link), dtype=np.int64),
             core_words=np.array(info.core_words, dtype=np.int64),
             upload_words=words, upload_cycles=round((t1 - t0) / PERIOD_NS),
             infer_cycles=round((t2 - t1) / PERIOD_NS), resends=dev.resends,
             upload_wall=w1 - w0, infer_wall=w2 - w1, upload_cpu=c1 - c0, infer_cpu=c2 - c1,
             batchwise_cycles=batchwise_cycles)
    progress.set("done")

