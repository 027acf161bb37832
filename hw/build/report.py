"""Reading tool reports into numbers, and the build report (``report.json`` + ``report.txt``).

* yosys ``stat -json`` after ``synth_xilinx``: device cells counted as a Vivado utilization
  report counts them (LUTs including LUT-as-memory, flip-flops, RAMB36 equivalents, DSP48E1), in
  total and per module (inclusive of submodules), to see which block dominates.
* yosys JSON netlist after ``synth_ice40`` / ``synth_ecp5`` (the open flows' synthesis-only
  estimate, before nextpnr): device cells counted as LUTs, flip-flops, block RAMs and DSPs.
* nextpnr ``--report`` JSON: utilization and the achieved frequency per clock; nextpnr's log for
  the critical path and, when placement fails, the utilization it printed before failing.
* :func:`resource_summary`: any of these reports as the same four figures (LUT, FF, BRAM, DSP).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["XC7_CELLS", "xc7_utilization", "module_breakdown", "nextpnr_report",
           "nextpnr_log_utilization", "critical_path", "lattice_cell_resource",
           "netlist_utilization", "RESOURCE_KEYS", "resource_summary", "REPORT_SCHEMA",
           "validate_report", "format_report"]

SCHEMA_ID = "spikepack.build-report/1"

#: 7-series cells -> (resource, weight). LUT-as-memory counts as Vivado's "Slice LUTs" counts it.
XC7_CELLS = {
    **{f"LUT{i}": ("LUT", 1) for i in range(1, 7)},
    **{c: ("LUT", 1) for c in ("RAM16X1S", "RAM32X1S", "RAM64X1S", "SRL16E", "SRLC16E",
                               "SRLC32E")},
    **{c: ("LUT", 2) for c in ("RAM128X1S", "RAM32X1D", "RAM64X1D")},
    **{c: ("LUT", 4) for c in ("RAM256X1S", "RAM128X1D", "RAM32M", "RAM64M")},
    **{c: ("LUT", 8) for c in ("RAM32M16", "RAM64M8", "RAM256X1D")},
    **{c: ("FF", 1) for c in ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")},
    "RAMB36E1": ("RAMB36", 1.0),
    "RAMB18E1": ("RAMB36", 0.5),
    "DSP48E1": ("DSP48E1", 1),
    "CARRY4": ("CARRY4", 1),
}
XC7_RESOURCES = ("LUT", "FF", "RAMB36", "DSP48E1")


def _strip(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _count(cells_by_type: dict) -> dict:
    out = {"LUT": 0, "FF": 0, "RAMB36": 0.0, "DSP48E1": 0, "CARRY4": 0}
    for cell, n in cells_by_type.items():
        kind = XC7_CELLS.get(_strip(cell))
        if kind is not None:
            out[kind[0]] += kind[1] * n
    return out


def _inclusive(modules: dict) -> dict:
    """Per module: device cells of the module and everything instantiated under it."""
    memo: dict = {}

    def visit(name, depth=0):
        if name in memo:
            return memo[name]
        if depth > 200:
            raise ValueError("module hierarchy too deep (recursive?)")
        cells = modules[name].get("num_cells_by_type", {})
        total = _count(cells)
        for cell, n in cells.items():
            if cell in modules:
                sub = visit(cell, depth + 1)
                for key in total:
                    total[key] += sub[key] * n
        memo[name] = total
        return total

    for name in modules:
        visit(name)
    return memo


def _load_stat(stat_json: Path | dict) -> dict:
    """Per-module statistics keyed by the plain module name (yosys escapes names with ``\\``
    in the keys but not in the cell types that instantiate them)."""
    data = stat_json if isinstance(stat_json, dict) else json.loads(Path(stat_json).read_text())
    return {_strip(name): {**mod, "num_cells_by_type": {
                _strip(cell): n for cell, n in mod.get("num_cells_by_type", {}).items()}}
            for name, mod in data.get("modules", {}).items()}


def xc7_utilization(stat_json, top: str, capacity) -> dict:
    """Totals of the design under ``top`` against ``capacity`` (a ``boards.DeviceCapacity``)."""
    modules = _load_stat(stat_json)
    if top not in modules:
        raise ValueError(f"module {top!r} is not in the yosys statistics")
    total = _inclusive(modules)[top]
    available = {"LUT": capacity.luts, "FF": capacity.ffs, "RAMB36": capacity.brams,
                 "DSP48E1": capacity.dsps}
    return {res: _entry(total[res], available[res]) for res in XC7_RESOURCES} | \
        {"CARRY4": {"used": total["CARRY4"], "available": None, "percent": None}}


def _entry(used, available) -> dict:
    used = int(used) if float(used).is_integer() else float(used)
    percent = round(100.0 * used / available, 1) if available else None
    return {"used": used, "available": available, "percent": percent}


def _pattern(name: str) -> str:
    """``top.accel.core.pes.pe12.tree`` -> ``top.accel.core.pes.pe#.tree``."""
    return ".".join(re.sub(r"\d+$", "#", part) for part in name.split("."))


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def module_breakdown(stat_json, top: str, *, min_fraction=0.02, max_depth=4) -> list[dict]:
    """Where the LUTs and FFs of ``top`` are: one row per module, or per group of replicated
    modules (``pe#``: all ``pe0``, ``pe1``, ...), holding at least ``min_fraction`` of them.

    Amaranth names modules by their hierarchical path (``top.accel.core.pes.pe3``). Each row is
    ``{"module", "depth", "count", "LUT", "FF", "RAMB36", "DSP48E1"}``; counts are inclusive of
    submodules and summed over the ``count`` instances of a group.
    """
    modules = _load_stat(stat_json)
    inclusive = _inclusive(modules)
    if top not in modules:
        raise ValueError(f"module {top!r} is not in the yosys statistics")
    total = inclusive[top]
    groups: dict = {}
    for name in sorted(modules, key=_natural):
        if not (name == top or name.startswith(top + ".")):
            continue
        depth = name.count(".") - top.count(".")
        if depth > max_depth:
            continue
        row = groups.setdefault(_pattern(name), {
            "module": _pattern(name), "depth": depth, "count": 0,
            **{r: 0 for r in XC7_RESOURCES}})
        row["count"] += 1
        for r in XC7_RESOURCES:
            row[r] += inclusive[name][r]
    rows = []
    for row in groups.values():
        if row["depth"] and not any(row[r] >= min_fraction * max(total[r], 1)
                                    for r in ("LUT", "FF")):
            continue
        for r in XC7_RESOURCES:
            row[r] = _entry(row[r], None)["used"]
        rows.append(row)
    return rows


# --- nextpnr -------------------------------------------------------------------------------------

def nextpnr_report(path: Path) -> dict:
    """``{"utilization": {bel: {used, available, percent}}, "fmax": {clock: {achieved_mhz,
    constraint_mhz}}}`` from nextpnr's ``--report`` JSON."""
    data = json.loads(Path(path).read_text())
    util = {bel: _entry(v["used"], v["available"])
            for bel, v in data.get("utilization", {}).items()}
    fmax = {clk: {"achieved_mhz": round(v["achieved"], 2),
                  "constraint_mhz": round(v["constraint"], 2)}
            for clk, v in data.get("fmax", {}).items()}
    return {"utilization": util, "fmax": fmax}


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def nextpnr_log_utilization(log: Path) -> dict:
    """The last 'Device utilisation' block of a nextpnr log (present even when placement fails)."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    util: dict = {}
    for i, line in enumerate(lines):
        if "Device utilisation" in line:
            util = {}
            for follow in lines[i + 1:]:
                match = _UTIL_LINE.match(follow)
                if not match:
                    if util:
                        break
                    continue
                util[match[1]] = _entry(int(match[2]), int(match[3]))
    return util


_SYNTH_SUFFIX = re.compile(r"_(?:LUT4|PFUMX|L6MUX|CCU2|TRELLIS|SB_|ICESTORM|DO[AB]\d|DI[AB]\d|"
                           r"RDATA|WDATA|Q_|Z_|O_)|\$")
_PIN = re.compile(r"\.[A-Z][A-Z0-9]*$")


def _signal_of(cell: str) -> str:
    """``accel.core.fetch.last_q_LUT4_C_Z.F`` -> ``accel.core.fetch.last_q``."""
    return _PIN.sub("", _SYNTH_SUFFIX.split(_PIN.sub("", cell))[0])


def critical_path(log: Path) -> list[str]:
    """The worst path of the main clock in a nextpnr log: the design signals it passes through,
    source to sink (nextpnr's cell names reduced to the signal they were synthesized from), and a
    last entry with its delay split into logic and routing."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return []
    start = None
    for i, line in enumerate(lines):
        if "Critical path report for clock" in line:
            start = i
    if start is None:
        return []
    signals: list[str] = []
    summary = ""
    for line in lines[start + 1:]:
        if "Critical path report" in line or not line.startswith("Info"):
            break
        match = re.search(r"\b(Source|Sink) (\S+)", line)
        if match:
            name = _signal_of(match[2])
            if name and (not signals or signals[-1] != name):
                signals.append(name)
        match = re.search(r"([\d.]+) ns logic, ([\d.]+) ns routing", line)
        if match:
            total = float(match[1]) + float(match[2])
            summary = f"{total:.2f} ns = {match[1]} ns logic + {match[2]} ns routing"
    return signals + ([summary] if summary else [])


# --- open flows: yosys netlist before place and route ----------------------------------------

#: The resources of the synthesis-only estimate, in the device's own units (the block RAM is the
#: iCE40's 4 Kbit EBR or the ECP5's 18 Kbit DP16KD).
LATTICE_RESOURCES = ("LUT", "FF", "BRAM", "DSP")


def lattice_cell_resource(family: str, cell: str) -> tuple[str, int] | None:
    """``(resource, weight)`` of a yosys device cell of ``family`` (``ice40``, ``ecp5``), or None
    for cells that count as none of :data:`LATTICE_RESOURCES` (carries on iCE40, I/O, clocks).

    iCE40: ``SB_LUT4`` a LUT, every ``SB_DFF*`` a flip-flop, ``SB_RAM40_4K`` a block RAM,
    ``SB_MAC16`` a DSP (a logic cell holds one LUT, one flip-flop and one carry, so nextpnr's
    ``ICESTORM_LC`` count is at least the larger of LUT and FF). ECP5: ``LUT4`` a LUT, ``CCU2C``
    (2-bit carry) two, ``TRELLIS_DPR16X4`` (16 x 4 distributed RAM, three slices) six,
    ``TRELLIS_FF`` a flip-flop, ``DP16KD`` a block RAM, ``MULT18X18D`` a DSP.
    """
    # Ref: Lattice FPGA-DS-02012 (ECP5 family data sheet), Table 2.4: distributed RAM slices.
    cell = _strip(cell)
    if family == "ice40":
        if cell == "SB_LUT4":
            return ("LUT", 1)
        if cell.startswith("SB_DFF"):
            return ("FF", 1)
        return {"SB_RAM40_4K": ("BRAM", 1), "SB_MAC16": ("DSP", 1)}.get(cell)
    if family == "ecp5":
        return {"LUT4": ("LUT", 1), "CCU2C": ("LUT", 2), "TRELLIS_DPR16X4": ("LUT", 6),
                "TRELLIS_FF": ("FF", 1), "DP16KD": ("BRAM", 1),
                "MULT18X18D": ("DSP", 1)}.get(cell)
    raise ValueError(f"no cell table for family {family!r} (ice40 or ecp5)")


def netlist_utilization(netlist_json, top: str, family: str, capacity) -> dict:
    """LUTs, flip-flops, block RAMs and DSPs of a yosys JSON netlist (``write_json`` after
    ``synth_ice40`` / ``synth_ecp5``) under module ``top``, against ``capacity`` (a
    ``boards.DeviceCapacity``), in the :func:`xc7_utilization` entry format."""
    data = netlist_json if isinstance(netlist_json, dict) else \
        json.loads(Path(netlist_json).read_text())
    # The netlist also holds the cell library as blackbox modules (``SB_DFF``, ``SB_RAM40_4K``
    # parametrized): a cell is counted by its type, a user module is descended into.
    modules = {_strip(name): mod for name, mod in data.get("modules", {}).items()
               if "blackbox" not in mod.get("attributes", {})}
    if top not in modules:
        raise ValueError(f"module {top!r} is not in the netlist")
    memo: dict = {}

    def visit(name, depth=0):
        if name in memo:
            return memo[name]
        if depth > 200:
            raise ValueError("module hierarchy too deep (recursive?)")
        total = dict.fromkeys(LATTICE_RESOURCES, 0)
        for cell in modules[name].get("cells", {}).values():
            kind = _strip(cell["type"])
            if kind in modules:
                for key, n in visit(kind, depth + 1).items():
                    total[key] += n
                continue
            res = lattice_cell_resource(family, kind)
            if res is not None:
                total[res[0]] += res[1]
        memo[name] = total
        return total

    total = visit(top)
    available = {"LUT": capacity.luts, "FF": capacity.ffs, "BRAM": capacity.brams,
                 "DSP": capacity.dsps}
    return {res: _entry(total[res], available[res]) for res in LATTICE_RESOURCES}


#: The four figures :func:`resource_summary` gives, and the utilization keys each is read from
#: (first present wins): the 7-series estimate, the open flows' synthesis-only estimate, and
#: nextpnr's placed and routed bels. nextpnr-ice40 counts logic cells (``ICESTORM_LC``: a LUT
#: with its flip-flop), so its flip-flops are not known apart (None).
RESOURCE_KEYS = {
    "LUT": ("LUT", "TRELLIS_COMB", "ICESTORM_LC"),
    "FF": ("FF", "TRELLIS_FF"),
    "BRAM": ("RAMB36", "BRAM", "DP16KD", "ICESTORM_RAM"),
    "DSP": ("DSP48E1", "DSP", "MULT18X18D", "ICESTORM_DSP"),
}


def resource_summary(report: dict) -> dict:
    """``{"LUT", "FF", "BRAM", "DSP"}`` of a build report's utilization, whichever flow made it.

    A resource the report does not list is 0 (nextpnr's report lists only the bels in use), but
    the flip-flops of an iCE40 place and route are None: nextpnr counts them inside its logic
    cells."""
    util = report["utilization"]
    placed_ice40 = report.get("family") == "ice40" and "ICESTORM_LC" in util
    out = {}
    for key, aliases in RESOURCE_KEYS.items():
        found = next((util[a]["used"] for a in aliases if a in util), None)
        if found is None:
            out[key] = None if key == "FF" and placed_ice40 else 0.0
        else:
            out[key] = float(found)
    return out


# --- the build report ------------------------------------------------------------------------

#: Top-level keys of report.json and their types (``None`` allowed where the tuple says so).
REPORT_SCHEMA = {
    "schema": (str,),
    "board": (str,),
    "title": (str,),
    "family": (str,),
    "toolchain": (str,),
    "device": (str,),
    "status": (str,),
    "message": (str,),
    "clk_freq_hz": (int,),
    "baud": (int,),
    "params": (dict,),
    "steps": (list,),
    "utilization": (dict,),
    "utilization_source": (str, type(None)),
    "timing": (dict, type(None)),
    "modules": (list,),
    "critical_path": (list,),
    "artifacts": (dict,),
    "tools": (dict,),
    "wall_seconds": (float, int),
}
STATUSES = ("ok", "does_not_fit", "timing_failed", "error")


def validate_report(report: dict) -> None:
    """Raise ``ValueError`` if ``report`` does not follow :data:`REPORT_SCHEMA`."""
    missing = [k for k in REPORT_SCHEMA if k not in report]
    if missing:
        raise ValueError(f"report lacks {missing}")
    for key, types in REPORT_SCHEMA.items():
        if not isinstance(report[key], types):
            raise ValueError(f"report[{key!r}] is {type(report[key]).__name__}, expected "
                             f"{' or '.join(t.__name__ for t in types)}")
    if report["schema"] != SCHEMA_ID:
        raise ValueError(f"report schema {report['schema']!r} is not {SCHEMA_ID!r}")
    if report["status"] not in STATUSES:
        raise ValueError(f"report status {report['status']!r} not in {STATUSES}")
    for res, entry in report["utilization"].items():
        if set(entry) != {"used", "available", "percent"}:
            raise ValueError(f"utilization[{res!r}] must have used, available, percent")
    for step in report["steps"]:
        if set(step) < {"name", "seconds", "ok"}:
            raise ValueError(f"step {step!r} must have name, seconds, ok")
    if not isinstance(report.get("ecp5_outreg", {}), dict):
        raise ValueError("report['ecp5_outreg'] must be a dict")
    if report["timing"] is not None:
        for key in ("target_mhz", "fmax_mhz", "met", "source"):
            if key not in report["timing"]:
                raise ValueError(f"timing lacks {key!r}")


def _fmt_num(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def format_report(report: dict) -> str:
    """The human table of a build report."""
    out = [f"SpikePack build: {report['title']} ({report['board']}), {report['toolchain']}",
           f"  accelerator: {report['params_text']}" if report.get("params_text") else None,
           f"  clock {report['clk_freq_hz'] / 1e6:g} MHz, UART {report['baud']:,} baud",
           f"  status: {report['status']} -- {report['message']}", ""]
    out = [line for line in out if line is not None]
    if report["utilization"]:
        out.append(f"Utilization ({report['utilization_source']}):")
        out.append(f"  {'resource':<28}{'used':>12}{'available':>12}{'use':>8}")
        for res, e in report["utilization"].items():
            pct = "-" if e["percent"] is None else f"{e['percent']:.1f}%"
            out.append(f"  {res:<28}{_fmt_num(e['used']):>12}{_fmt_num(e['available']):>12}"
                       f"{pct:>8}")
        out.append("")
    if report.get("yosys_xaiger1"):
        out.append("yosys: synthesized with `scratchpad -set abc9.xaiger 1`: the first run joined "
                   "nets to two drivers (yosys 0.70's abc9, YosysHQ/yosys#6237); the plan "
                   "archive's yosys script has the same line")
        out.append("")
    outreg = report.get("ecp5_outreg")
    if outreg:
        out.append(f"Block RAM output registers: {outreg['absorbed']}/{outreg['read_ports']} read "
                   f"ports use OUTREG ({outreg['flip_flops_removed']:,} flip-flops moved in)")
        out.extend(f"  kept NOREG: {k['cell']} port {k['port']}: {k['reason']}"
                   for k in outreg["kept"])
        out.append("")
    timing = report["timing"]
    if timing:
        verdict = "met" if timing["met"] else "NOT MET"
        out.append(f"Timing ({timing['source']}): Fmax {timing['fmax_mhz']:.2f} MHz against "
                   f"{timing['target_mhz']:g} MHz target: {verdict}")
        if report["critical_path"]:
            path = list(report["critical_path"])
            summary = path.pop() if " ns = " in path[-1] else "nets"
            out.append(f"  critical path ({summary}):")
            out.append("    " + " -> ".join(path))
        if report.get("nextpnr_args"):
            out.append("  nextpnr " + " ".join(report["nextpnr_args"]))
        out.append("")
    if report["modules"]:
        out.append("Per module (yosys stat, inclusive of submodules):")
        out.append(f"  {'module':<52}{'LUT':>9}{'FF':>9}{'RAMB36':>8}{'DSP':>6}")
        for row in report["modules"]:
            name = "  " * row["depth"] + row["module"].rsplit(".", 1)[-1]
            if row.get("count", 1) > 1:
                name += f" (x{row['count']})"
            out.append(f"  {name:<52}{_fmt_num(row['LUT']):>9}{_fmt_num(row['FF']):>9}"
                       f"{_fmt_num(row['RAMB36']):>8}{_fmt_num(row['DSP48E1']):>6}")
        out.append("")
    out.append("Steps:")
    for step in report["steps"]:
        seconds = "-" if step["seconds"] is None else f"{step['seconds']:.1f} s"
        out.append(f"  {step['name']:<40}{seconds:>10}  {'ok' if step['ok'] else 'FAILED'}")
    out.append(f"  {'total':<40}{report['wall_seconds']:>8.1f} s")
    if report["artifacts"]:
        out.append("")
        out.append("Artifacts:")
        for kind, path in report["artifacts"].items():
            if path:
                out.append(f"  {kind:<16}{path}")
    return "\n".join(out) + "\n"
