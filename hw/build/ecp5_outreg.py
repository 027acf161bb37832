"""Move the flip-flop behind each ECP5 block RAM read port into the block RAM's output register.

An ECP5 ``DP16KD`` without its output register (``REGMODE=NOREG``, all that yosys infers) takes
5.6 ns from the clock to its data pins on the -6 speed grade: more than half of a 100 MHz cycle
before any routing. With ``REGMODE=OUTREG`` the read data passes one more register inside the
block RAM and leaves it 0.7 ns after the clock edge (nextpnr's timing database, from Lattice's).

The gateware already registers every block RAM output once before using it ("block RAM outputs
are slow", in ``hw.core.core``, ``hw.core.fetcher``, ``hw.core.fire_array``,
``hw.core.sequencer``, ``hw.core.pe_array`` and ``hw.link.link_executor``), so each read port's
data pins drive nothing but the D inputs of flip-flops. That register *is* an output register,
placed in a logic slice; yosys has no rule that moves it into the block RAM (Vivado and Quartus do
this on their own). This pass does it on the synthesized netlist (yosys JSON), between yosys and
nextpnr:

for each ``DP16KD`` read port in ``NOREG`` mode whose every used data pin drives exactly one
``TRELLIS_FF`` D input, and whose flip-flops

* are clocked by the port's read clock, on the same edge,
* share one clock enable (or none), which becomes the output clock enable ``OCE``,
* have no set/reset (``LSR`` tied low) and no global set/reset,

the port becomes ``OUTREG``, each data pin drives what its flip-flop's Q drove, and the
flip-flops are removed. The cycle-by-cycle behaviour is that of the netlist before: the word read
at clock edge *n* appears at edge *n + 1*, through the same enable. A port that does not match
is left as it is and reported with the reason; nothing about the design's function depends on
this pass (a plan run without it, e.g. the Amaranth build script, makes the same circuit with
slower block RAM outputs).

In pseudo-dual-port mode (``DATA_WIDTH_A == 36``: port A writes, port B reads 36 bits on
``DOA``/``DOB``), one output register covers all 36 pins; as nextpnr does for the ``PDPW16KD``
primitive, ``REGMODE_A`` and ``REGMODE_B`` are both set, and ``OCEA`` follows ``OCEB``.

``python -m hw.build.ecp5_outreg NETLIST.json`` rewrites a netlist in place and prints what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PortResult", "OutregSummary", "absorb_output_registers", "absorb_file", "main"]

_BRAM = "DP16KD"
_FF = "TRELLIS_FF"


@dataclass(frozen=True)
class PortResult:
    """One block RAM read port: absorbed, or why not."""
    cell: str
    port: str            # "A" or "B" (a pseudo-dual-port RAM's 36-bit read is port "B")
    bits: int            # data pins in use
    absorbed: bool
    reason: str = ""     # why not, when not absorbed


@dataclass
class OutregSummary:
    """What :func:`absorb_output_registers` did to one netlist."""
    ports: list[PortResult] = field(default_factory=list)

    @property
    def absorbed(self) -> list[PortResult]:
        return [p for p in self.ports if p.absorbed]

    @property
    def kept(self) -> list[PortResult]:
        return [p for p in self.ports if not p.absorbed]

    @property
    def flip_flops_removed(self) -> int:
        return sum(p.bits for p in self.absorbed)

    def as_dict(self) -> dict:
        return {"read_ports": len(self.ports), "absorbed": len(self.absorbed),
                "flip_flops_removed": self.flip_flops_removed,
                "kept": [{"cell": p.cell, "port": p.port, "reason": p.reason}
                         for p in self.kept]}

    def describe(self) -> str:
        text = (f"ECP5 block RAM output registers: {len(self.absorbed)}/{len(self.ports)} read "
                f"ports use OUTREG, {self.flip_flops_removed:,} flip-flops moved into block RAMs")
        for p in self.kept:
            text += f"\n  kept NOREG: {p.cell} port {p.port}: {p.reason}"
        return text


def _param(cell, name, default=""):
    # yosys JSON writes a string parameter that looks like a bit vector with a trailing space.
    value = cell["parameters"].get(name, default)
    return value.rstrip(" ") if isinstance(value, str) else value


def _width(cell, name) -> int:
    value = cell["parameters"].get(name, 18)
    return int(value, 2) if isinstance(value, str) else int(value)


def _pin(cell, name):
    """The single bit on a one-bit port: a net number, or a constant "0"/"1"/"x"/"z"."""
    bits = cell["connections"].get(name)
    return bits[0] if bits else "x"


def _data_pins(cell, sides):
    """The connected read data pins of ``sides`` ("A", "B" or "AB"), in pin order."""
    return [f"DO{side}{i}" for side in sides for i in range(18)
            if f"DO{side}{i}" in cell["connections"]]


def _read_ports(cell):
    """(port, read clock pin, data pins, REGMODE parameters, OCE pins) per read side."""
    if _width(cell, "DATA_WIDTH_A") == 36:
        return [("B", "CLKB", _data_pins(cell, "AB"), ("REGMODE_A", "REGMODE_B"),
                 ("OCEB", "OCEA"))]
    return [(side, f"CLK{side}", _data_pins(cell, side), (f"REGMODE_{side}",), (f"OCE{side}",))
            for side in "AB"]


def absorb_output_registers(netlist: dict, top: str = "top") -> OutregSummary:
    """Rewrite ``netlist`` (yosys JSON, module ``top``) in place; see the module docstring."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks = defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        sinks[bit].append((name, port))
    module_outputs = {bit for port in module.get("ports", {}).values()
                      if port["direction"] != "input" for bit in port["bits"]
                      if isinstance(bit, int)}

    summary = OutregSummary()
    removed, orphaned = set(), set()
    for name in sorted(cells):
        cell = cells[name]
        if cell["type"] != _BRAM:
            continue
        for side, clk_pin, pins, regmodes, oce_pins in _read_ports(cell):
            used = [(pin, bit) for pin, bit in ((pin, _pin(cell, pin)) for pin in pins)
                    if isinstance(bit, int) and (sinks.get(bit) or bit in module_outputs)]
            if not used:
                continue
            reason, ffs, enable = _check_port(cell, clk_pin, regmodes, oce_pins, used, cells,
                                              sinks, module_outputs)
            summary.ports.append(PortResult(name, side, len(used), reason is None, reason or ""))
            if reason is not None:
                continue
            for (pin, old_bit), ff_name in zip(used, ffs, strict=True):
                cell["connections"][pin] = list(cells[ff_name]["connections"]["Q"])
                orphaned.add(old_bit)
                removed.add(ff_name)
            for regmode in regmodes:
                cell["parameters"][regmode] = "OUTREG"
            for oce in oce_pins:
                cell["connections"][oce] = [enable]
    for ff_name in removed:
        del cells[ff_name]
    _forget_bits(module, orphaned)
    return summary


def _check_port(cell, clk_pin, regmodes, oce_pins, used, cells, sinks, module_outputs):
    """(None, flip-flops in pin order, enable) when the port can take OUTREG; else (reason, ...)."""
    if any(_param(cell, r, "NOREG") != "NOREG" for r in regmodes):
        return "already registered", None, None
    if _param(cell, f"{clk_pin}MUX", clk_pin) != clk_pin:
        return "inverted read clock", None, None
    if any(_pin(cell, oce) not in ("0", "1") for oce in oce_pins):
        return "output clock enable already in use", None, None
    clock = _pin(cell, clk_pin)
    ffs, enables = [], set()
    for pin, bit in used:
        if bit in module_outputs or len(sinks[bit]) != 1:
            return f"{pin} drives more than one input", None, None
        ff_name, port = sinks[bit][0]
        ff = cells[ff_name]
        if ff["type"] != _FF or port != "DI":
            return f"{pin} drives {ff['type']}.{port}, not a flip-flop's D input", None, None
        if _pin(ff, "CLK") != clock or _param(ff, "CLKMUX", "CLK") != "CLK":
            return f"{pin}'s flip-flop has another clock or edge", None, None
        inactive = {"LSR": "0", "INV": "1"}.get(_param(ff, "LSRMUX", "LSR"))  # LSR pin tie-off
        if _pin(ff, "LSR") != inactive:
            return f"{pin}'s flip-flop has a set/reset", None, None
        if _param(ff, "GSR", "ENABLED") != "DISABLED":
            return f"{pin}'s flip-flop has the global set/reset enabled", None, None
        cemux = _param(ff, "CEMUX", "CE")
        if cemux == "1":
            enables.add("1")
        elif cemux == "CE":
            enables.add(_pin(ff, "CE"))
        else:
            return f"{pin}'s flip-flop has an inverted clock enable", None, None
        ffs.append(ff_name)
    if len(enables) != 1:
        return "the flip-flops have different clock enables", None, None
    return None, ffs, enables.pop()


def _forget_bits(module, orphaned):
    """The old data pins' nets, which nothing drives or reads now, become constant x in the
    net names (a name whose bits are all gone is dropped)."""
    for name in list(module["netnames"]):
        bits = module["netnames"][name]["bits"]
        if any(b in orphaned for b in bits if isinstance(b, int)):
            new = ["x" if isinstance(b, int) and b in orphaned else b for b in bits]
            if all(b == "x" for b in new):
                del module["netnames"][name]
            else:
                module["netnames"][name]["bits"] = new


def absorb_file(path, top: str = "top") -> OutregSummary:
    """Rewrite the yosys JSON netlist at ``path`` in place."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    summary = absorb_output_registers(netlist, top)
    path.write_text(json.dumps(netlist))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.build.ecp5_outreg",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("netlist", help="yosys JSON netlist (synth_ecp5 -json), rewritten in place")
    parser.add_argument("--top", default="top", help="top module name (default: top)")
    args = parser.parse_args(argv)
    try:
        summary = absorb_file(args.netlist, args.top)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot rewrite {args.netlist}: {exc}", file=sys.stderr)
        return 1
    print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
