"""Link throughput and simulation speed of the Arty A7 build, old and new side by side.

Two measurements on the RTL under Verilator, both through the real driver (``sw.host.driver``)
and the real link (the device's UART receiver, frame decoder, executor, encoder, transmitter):

1. **Images/s through the driver with the real UART timing** (100 MHz, 4 Mbaud = 25 clocks per
   bit, the Arty preset): the 784-128-128-10 MNIST MLP on the Arty A7 core, ``--samples`` random
   inputs, ``Device.infer(pipeline=False)`` (old: each batch's replies awaited before the next
   batch goes out) against ``pipeline=True`` (new: every batch's frames in one ordered stream,
   two in flight). Counted in simulated clock cycles (the host takes no simulated time), so the
   figure is the device's and the wire's; a real host adds its USB latency to every round trip the
   old way waits for. Printed against the line-rate limit: ``baud / 10`` bytes/s over the bytes
   one image needs on the wire.
2. **What ``spikepack infer --sim`` costs in wall time** (the simulation link, 4 clocks per bit):
   uploading the same network's image (with read-back of the program) and running
   ``--infer-samples`` samples, with cocotbext-uart on the pins (old: Python wakes for every bit)
   and with ``sim.rtl.byte_pipe`` (new: a Python wake-up per 32-byte chunk).

    python bench/bench_link_perf.py [--samples 64] [--infer-samples 8] [--skip-old-sim]
                                    [--only 1 2] [--build-dir DIR]

Figures vary with the machine's load (wall time only; cycle counts are exact).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The Arty preset's link: 100 MHz, 4 Mbaud (25 clocks per bit). The idle timeout is shortened
#: from the board's 5 ms (it only ends truncated frames; a clean run never meets it).
ARTY_LINK = dict(clk_freq=100_000_000, baud=4_000_000, idle_timeout=1_000)


def mnist_mlp(seed: int):
    """A 784-128-128-10 MLP with random int8 weights (the image is as large as a trained one's)."""
    from sim.tb.bench_core_tb import dense_net

    return dense_net(np.random.default_rng(seed), [784, 128, 128, 10], 4)


def wire_bytes_per_image(image, link_info_max_payload: int = 1024) -> dict:
    """Bytes on the wire per image for the inputs (host -> device) and outputs (device -> host)."""
    from hw.contract.protocol import REPLY_OVERHEAD, REQUEST_OVERHEAD
    from sw.compile import program_image as img

    depth = image.params.batch_depth
    x = np.zeros((depth, image.n_in), np.int64)
    writes = img.encode_inputs(image, x)
    in_words = sum(len(w.words) for w in writes)
    per_frame = link_info_max_payload // 4 - 1
    frames = sum(-(-len(w.words) // per_frame) for w in writes)
    # one READ of the batch's outputs (the words between samples included) + the counters
    out_count = img.output_range(image, depth)[1]
    out_words = out_count + img.counter_range(image)[1]
    reads = -(-out_count // (link_info_max_payload // 4)) + 1
    rx = 4 * in_words + frames * (REQUEST_OVERHEAD + 4) + (REQUEST_OVERHEAD + 4)  # + RUN
    rx += reads * (REQUEST_OVERHEAD + 8)
    tx = 4 * out_words + (reads + frames + 1) * REPLY_OVERHEAD + 4
    return dict(payload=4 * in_words / depth, rx=rx / depth, tx=tx / depth)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64, help="images for the images/s figure")
    ap.add_argument("--infer-samples", type=int, default=8, help="images for `infer --sim`")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-old-sim", action="store_true",
                    help="skip the cocotbext-uart session (minutes of wall time)")
    ap.add_argument("--only", type=int, nargs="+", default=[1, 2], choices=[1, 2],
                    help="measurements to make (default both)")
    ap.add_argument("--build-dir", help="Verilator builds (default: build/ of the checkout)")
    args = ap.parse_args(argv)

    from boards.arty_a7 import ARTY_A7_PARAMS
    from sim.golden.model import run_network
    from sim.rtl.session import SIM_LINK, run_on_rtl
    from sw.compile.program_image import build_image

    print(f"seed {args.seed}")
    net = mnist_mlp(args.seed)
    image = build_image(net, ARTY_A7_PARAMS)
    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 1 << net.T, (args.samples, net.n_in))
    golden = run_network(net, x).output
    words = sum(len(w.words) for w in image.writes)

    # 1. images/s with the real UART timing (one session: pipelined, then batch by batch)
    per = wire_bytes_per_image(image)
    line = ARTY_LINK["baud"] / 10
    if 1 in args.only:
        print(f"\n1. images/s through the driver, Arty A7 core, 784-128-128-10 MLP (T = {net.T}), "
              f"{args.samples} images in batches of {ARTY_A7_PARAMS.batch_depth}, "
              f"{ARTY_LINK['clk_freq'] / 1e6:g} MHz, {ARTY_LINK['baud'] / 1e6:g} Mbaud "
              f"({ARTY_LINK['clk_freq'] // ARTY_LINK['baud']} clocks/bit)")
        print(f"   per image on the wire: {per['payload']:.0f} B input payload, {per['rx']:.1f} B "
              f"host->device with framing, {per['tx']:.1f} B device->host")
        print(f"   line-rate limit: {line / per['payload']:.1f} images/s (payload only), "
              f"{line / per['rx']:.1f} images/s (with the protocol's frames)")
        p = ARTY_A7_PARAMS
        full = 4 * image.in_stride * p.block_words
        print(f"   (INPUT lane-major: {p.input_words_per_block(net.T)} of a block's "
              f"{p.block_words} words hold the planes below T = {net.T}; the block-major layout "
              f"before "
              f"2026-12-03 sent all {p.block_words}, {full} B of input payload an image, a "
              f"line-rate limit of {line / full:.1f} images/s)")
        t0 = time.monotonic()
        run = run_on_rtl(net, x, ARTY_A7_PARAMS, link=ARTY_LINK, front="pipe",
                         batchwise_too=True, build_dir=args.build_dir)
        assert np.array_equal(run.outputs, golden), "RTL outputs differ from the golden model"
        assert run.resends == 0
        compute = int(run.total_cycles.sum())
        for name, cycles in (("old (batch by batch)", run.batchwise_cycles),
                             ("new (pipelined)", run.infer_cycles)):
            seconds = cycles / ARTY_LINK["clk_freq"]
            print(f"   {name:22s}: {cycles:>10,} cycles = {seconds * 1e3:7.2f} ms, "
                  f"{args.samples / seconds:6.1f} images/s = "
                  f"{args.samples / seconds / (line / per['payload']):5.1%} of the payload "
                  f"line rate")
        print(f"   (core busy {compute:,} cycles of it; outputs == golden both ways; one session, "
              f"{time.monotonic() - t0:.0f} s wall)")
    if 2 not in args.only:
        return

    # 2. infer --sim: upload and inference wall time, old and new front end
    print(f"\n2. `spikepack infer --sim` on the Arty A7 core: upload of the 784-128-128-10 image "
          f"({words:,} words, program read back) and {args.infer_samples} images, simulation "
          f"link {SIM_LINK['baud'] / 1e6:g} Mbaud ({SIM_LINK['clk_freq'] // SIM_LINK['baud']} "
          f"clocks/bit)")
    xs = x[:args.infer_samples]
    fronts = [("old: cocotbext-uart, a Python wake-up per bit", "uart", False),
              ("new: byte pipe + pipelined driver", "pipe", True)]
    if args.skip_old_sim:
        fronts = fronts[1:]
    for name, front, pipeline in fronts:
        t0 = time.monotonic()
        run = run_on_rtl(net, xs, ARTY_A7_PARAMS, front=front, pipeline=pipeline,
                         build_dir=args.build_dir)
        wall = time.monotonic() - t0
        assert np.array_equal(run.outputs, golden[:len(xs)]), "RTL outputs differ from golden"
        print(f"   {name:46s}: upload {run.upload_wall:7.1f} s wall, {run.upload_cpu:7.1f} s CPU "
              f"({run.upload_cycles:,} cycles); {len(xs)} images {run.infer_wall:6.1f} s wall, "
              f"{run.infer_cpu:6.1f} s CPU; session {wall:.0f} s wall with build check and "
              f"start-up; outputs == golden")


if __name__ == "__main__":
    main()
