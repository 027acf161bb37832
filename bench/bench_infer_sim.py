"""What ``spikepack infer --sim`` costs its user: MNIST images on the Arty A7 image, in seconds.

Runs the CLI as a user does (a subprocess per command) on the trained 784-128-128-10 MLP
(``sw.research.zoo.mnist_mlp_int_network``, 8-bit weights, T = 4) compiled for the Arty A7
preset:

    spikepack compile mlp.npz --board arty_a7 -o mlp.spkimg
    spikepack deploy mlp.spkimg --sim              # builds the Verilator model the first time
    spikepack infer mlp.spkimg --sim --data mnist-5k --limit 64

``infer --sim`` uploads the image over the simulated UART (4 clocks per bit, the real driver,
protocol and link), runs the images in batches and compares outputs and counters with the golden
model (its "bit-exact" line). Printed: wall and CPU seconds of each command (CPU of the command and
its simulator, so a loaded machine shows in the wall time only), and the simulated cycles.

Then, side by side in this process (``sim.rtl.session.run_on_rtl``, the same image and images):
the session with the clock made by the simulation top (``clock="internal"``, what ``--sim`` uses
under Verilator) and with cocotb's clock on the top's pin (``clock="testbench"``, the way before),
each from an already built model.

    python bench/bench_infer_sim.py [--n 64] [--build-dir DIR] [--repeat 2] [--no-clocks]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def spikepack(args, env=None) -> tuple[str, float, float]:
    """Run ``spikepack ARGS``: ``(stdout, wall seconds, CPU seconds of it and its children)``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "sw.cli", *map(str, args)], capture_output=True,
                       text=True, cwd=ROOT, env=env)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode:
        sys.exit(f"spikepack {' '.join(map(str, args))} failed ({r.returncode}):\n"
                 f"{r.stderr[-3000:]}")
    return r.stdout, wall, cpu


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="MNIST test images (default 64)")
    ap.add_argument("--repeat", type=int, default=2, help="timed infer runs (default 2)")
    ap.add_argument("--build-dir", help="Verilator builds (default: build/ of the checkout)")
    ap.add_argument("--no-clocks", action="store_true",
                    help="skip the side-by-side of the two clocks (builds a second model)")
    args = ap.parse_args(argv)

    from sw.research.zoo import mnist_mlp_int_network

    net, _, _ = mnist_mlp_int_network(T=4)
    build = ["--build-dir", args.build_dir] if args.build_dir else []
    with tempfile.TemporaryDirectory(prefix="bench_infer_sim_") as tmp:
        tmp = Path(tmp)
        net.save(tmp / "mlp.npz")
        spikepack(["compile", tmp / "mlp.npz", "--board", "arty_a7", "-o", tmp / "mlp.spkimg"])
        print(f"`spikepack infer --sim` on the Arty A7 image of the MNIST MLP 784-128-128-10, "
              f"T = {net.T} ({os.cpu_count()} CPUs; wall time depends on the machine's load, CPU "
              f"seconds less so)")
        out, wall, cpu = spikepack(["deploy", tmp / "mlp.spkimg", "--sim", "--quiet", *build])
        (words,) = re.search(r"uploaded (\d+) words", out).groups()
        print(f"  deploy --sim (model build if not cached, upload of {int(words):,} words with "
              f"read-back): {wall:6.1f} s wall, {cpu:6.1f} s CPU")
        for i in range(args.repeat):
            out, wall, cpu = spikepack(["infer", tmp / "mlp.spkimg", "--sim", "--data", "mnist-5k",
                                        "--limit", args.n, "--quiet", *build])
            cycles = re.search(r"; (\d+) cycles with the UART", out)
            exact = re.search(r"^bit-exact: .*$", out, re.M)
            if exact is None:
                sys.exit(f"infer --sim was not bit-exact:\n{out}")
            print(f"  infer --sim --limit {args.n} (upload + {args.n} images), run {i + 1}: "
                  f"{wall:6.1f} s wall, {cpu:6.1f} s CPU, {int(cycles.group(1)):,} simulated "
                  f"cycles; {'under' if wall < 60 else 'over'} 60 s")
        print(f"  {exact.group(0)}")
        print("  " + re.search(r"^accuracy: .*$", out, re.M).group(0))
        if not args.no_clocks:
            clocks(tmp / "mlp.spkimg", args.n, args.build_dir)


def clocks(image_path, n: int, build_dir) -> None:
    """The same session with the top's own clock and with cocotb's, side by side."""
    import numpy as np

    from sim.golden.model import run_network
    from sim.rtl.session import run_on_rtl
    from sw.compile.image_file import load_image_file
    from sw.train.data import load_split

    image = load_image_file(image_path)
    _, x = load_split("mnist-5k", seed=0).packed(image.net.T)
    x = x[:n]
    golden = run_network(image.net, x).output
    print(f"\nthe simulator's clock, side by side (run_on_rtl: upload with read-back and {n} "
          f"images; models built first)")
    for clock, what in (("testbench", "old: cocotb's clock on the top's pin"),
                        ("internal", "new: the top's own clock (verilator --timing)")):
        run_on_rtl(image, x[:0], build_dir=build_dir, clock=clock)  # build, not timed
        run = run_on_rtl(image, x, build_dir=build_dir, clock=clock)
        assert np.array_equal(run.outputs, golden), f"{clock}: outputs differ from the golden model"
        cycles = run.upload_cycles + run.infer_cycles
        cpu = run.upload_cpu + run.infer_cpu
        print(f"  {what:46s}: upload {run.upload_cpu:5.1f} s CPU, {n} images {run.infer_cpu:5.1f} "
              f"s CPU; {cycles:,} cycles, {cycles / cpu:,.0f} cycles per CPU second; outputs == "
              f"golden")


if __name__ == "__main__":
    main()
