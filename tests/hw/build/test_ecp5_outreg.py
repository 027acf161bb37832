""":mod:`hw.build.ecp5_outreg` on netlists yosys makes for small memories, and on hand-made netlists
for the cases the accelerator does not have: the register behind a block RAM moves into it exactly
when it is a plain register (same clock, one enable, no reset) and nothing else reads the RAM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import memory

from hw.build.ecp5_outreg import absorb_output_registers, main
from hw.build.tools import resolve_tool


class _Memories(Elaboratable):
    """Four block RAMs, each read into a register of its own kind."""

    def __init__(self):
        self.addr = Signal(9)
        self.en = Signal()
        self.wdata = Signal(36)
        self.wen = Signal()
        # 512 x 36 (pseudo dual port), no enable: OUTREG
        self.wide_q = Signal(36, reset_less=True)
        # 1024 x 16, read and register enabled by ``en``: OUTREG
        self.en_q = Signal(16, reset_less=True)
        self.reset_q = Signal(16)  # registered with a reset: stays NOREG
        self.sum_q = Signal(17)    # the read word goes through an adder: stays NOREG

    def elaborate(self, platform):
        m = Module()
        outs = []
        for name, width, depth in (("wide", 36, 512), ("enabled", 16, 1024), ("reset", 16, 1024),
                                   ("sum", 16, 1024)):
            m.submodules[name] = mem = memory.Memory(shape=width, depth=depth, init=[])
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=())
            m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.wen),
                         rd.addr.eq(~self.addr)]
            outs.append(rd)
        wide, en, reset, summed = outs
        m.d.comb += en.en.eq(self.en)
        m.d.sync += [self.wide_q.eq(wide.data), self.reset_q.eq(reset.data),
                     self.sum_q.eq(summed.data + 1)]
        with m.If(self.en):
            m.d.sync += self.en_q.eq(en.data)
        return m


@pytest.fixture(scope="module")
def netlist(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outreg")
    top = _Memories()
    ports = [top.addr, top.en, top.wdata, top.wen, top.wide_q, top.en_q, top.reset_q, top.sum_q]
    (tmp / "d.il").write_text(rtlil.convert(top, ports=ports))
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                 os.environ.get("PATH", "")]))
    # As hw.common.synth_hints does for the accelerator's memories: a read in the cycle of a write
    # to the same word may return anything (else yosys adds a bypass multiplexer behind the RAM).
    (tmp / "s.ys").write_text("read_rtlil d.il\nsetparam -set COLLISION_X_MASK 1'1 t:$memrd_v2\n"
                              "synth_ecp5 -top top -json n.json\n")
    subprocess.run([resolve_tool("yosys", env), "-q", "-s", "s.ys"], cwd=tmp, check=True)
    return json.loads((tmp / "n.json").read_text())


def _cells(netlist, kind):
    return {n: c for n, c in netlist["modules"]["top"]["cells"].items() if c["type"] == kind}


def _memory(name, rams):
    return [c for n, c in rams.items() if n.startswith(f"{name}.")]


def test_plain_registers_move_into_the_block_rams(netlist):
    before = json.loads(json.dumps(netlist))
    ffs_before = len(_cells(before, "TRELLIS_FF"))
    summary = absorb_output_registers(netlist)
    rams = _cells(netlist, "DP16KD")
    ports = {(p.cell.split(".")[0], p.absorbed) for p in summary.ports}
    assert ports == {("wide", True), ("enabled", True), ("reset", False), ("sum", False)}
    reasons = {p.cell.split(".")[0]: p.reason for p in summary.kept}
    assert "set/reset" in reasons["reset"]
    assert "drives" in reasons["sum"]  # an adder, not (only) a register
    assert summary.flip_flops_removed == 36 + 16
    assert len(_cells(netlist, "TRELLIS_FF")) == ffs_before - 52

    (wide,) = _memory("wide", rams)
    assert (wide["parameters"]["REGMODE_A"], wide["parameters"]["REGMODE_B"]) == ("OUTREG",) * 2
    assert wide["connections"]["OCEA"] == wide["connections"]["OCEB"] == ["1"]
    (en,) = _memory("enabled", rams)
    read = "B" if en["connections"]["WEA"] != ["0"] else "A"
    assert en["parameters"][f"REGMODE_{read}"] == "OUTREG"
    # The output clock enable is the read port's own enable (the register's), a net.
    assert isinstance(en["connections"][f"OCE{read}"][0], int)
    assert en["connections"][f"OCE{read}"] == en["connections"][f"CE{read}"]
    for kept in _memory("reset", rams) + _memory("sum", rams):
        assert {kept["parameters"]["REGMODE_A"], kept["parameters"]["REGMODE_B"]} == {"NOREG"}

    # The block RAMs now drive the module outputs the registers drove.
    top_ports = netlist["modules"]["top"]["ports"]
    driven = {b for ram in (wide, en) for p, bits in ram["connections"].items()
              if p.startswith("DO") for b in bits}
    assert set(top_ports["wide_q"]["bits"]) <= driven
    assert set(top_ports["en_q"]["bits"]) <= driven


def test_a_second_pass_changes_nothing(netlist):
    absorb_output_registers(netlist)
    again = json.loads(json.dumps(netlist))
    summary = absorb_output_registers(again)
    assert summary.flip_flops_removed == 0
    assert again == netlist


# --- hand-made netlists ----------------------------------------------------------------------

def _ram(clk=1, oce="0"):
    conns = {"CLKA": [clk], "CLKB": [clk], "OCEA": ["0"], "OCEB": [oce], "CEB": ["1"],
             "DOB0": [10], "DOB1": [11]}
    dirs = {p: ("output" if p.startswith("DO") else "input") for p in conns}
    return {"type": "DP16KD", "parameters": {"DATA_WIDTH_A": "10010", "DATA_WIDTH_B": "10010",
                                             "REGMODE_A": "NOREG", "REGMODE_B": "NOREG"},
            "attributes": {}, "port_directions": dirs, "connections": conns}


def _ff(d, q, clk=1, ce=None, lsr="0", **params):
    conns = {"CLK": [clk], "DI": [d], "Q": [q], "LSR": [lsr]}
    p = {"CLKMUX": "CLK", "CEMUX": "1 ", "LSRMUX": "LSR", "GSR": "DISABLED", **params}
    if ce is not None:
        conns["CE"], p["CEMUX"] = [ce], "CE"
    dirs = {"CLK": "input", "DI": "input", "Q": "output", "LSR": "input", "CE": "input"}
    return {"type": "TRELLIS_FF", "parameters": p, "attributes": {}, "port_directions": dirs,
            "connections": conns}


def _module(**cells):
    return {"modules": {"top": {"ports": {}, "cells": cells, "netnames": {
        "rd": {"bits": [10, 11]}, "q": {"bits": [20, 21]}}}}}


@pytest.mark.parametrize("case, reason", [
    ({"f1": _ff(11, 21, clk=2)}, "another clock"),
    ({"f1": _ff(11, 21, CLKMUX="INV")}, "another clock"),
    ({"f1": _ff(11, 21, lsr=5)}, "set/reset"),
    ({"f1": _ff(11, 21, GSR="ENABLED")}, "global set/reset"),
    ({"f1": _ff(11, 21, ce=7)}, "different clock enables"),
    ({"f1": _ff(11, 21, CEMUX="INV")}, "inverted clock enable"),
    ({"f1": _ff(11, 21), "f2": _ff(11, 22)}, "more than one input"),
])
def test_registers_that_differ_stay_outside(case, reason):
    net = _module(ram=_ram(), f0=_ff(10, 20), **case)
    summary = absorb_output_registers(net)
    (port,) = summary.ports
    assert not port.absorbed and reason in port.reason
    assert net["modules"]["top"]["cells"]["ram"]["parameters"]["REGMODE_B"] == "NOREG"
    assert "f0" in net["modules"]["top"]["cells"]


def test_enabled_registers_give_the_output_enable():
    net = _module(ram=_ram(), f0=_ff(10, 20, ce=7), f1=_ff(11, 21, ce=7))
    summary = absorb_output_registers(net)
    cells = net["modules"]["top"]["cells"]
    assert summary.flip_flops_removed == 2 and set(cells) == {"ram"}
    assert cells["ram"]["connections"]["OCEB"] == [7]
    assert (cells["ram"]["connections"]["DOB0"], cells["ram"]["connections"]["DOB1"]) == ([20],
                                                                                          [21])
    # The read port's old nets are gone from the names; the registers' names stay.
    assert "rd" not in net["modules"]["top"]["netnames"]
    assert net["modules"]["top"]["netnames"]["q"]["bits"] == [20, 21]


def test_an_output_enable_in_use_is_left_alone():
    net = _module(ram=_ram(oce=9), f0=_ff(10, 20), f1=_ff(11, 21))
    (port,) = absorb_output_registers(net).ports
    assert not port.absorbed and "already in use" in port.reason


def test_command_line_rewrites_the_file(tmp_path, capsys):
    path = tmp_path / "n.json"
    path.write_text(json.dumps(_module(ram=_ram(), f0=_ff(10, 20), f1=_ff(11, 21))))
    assert main([str(path)]) == 0
    assert "1/1 read ports use OUTREG" in capsys.readouterr().out
    ram = json.loads(path.read_text())["modules"]["top"]["cells"]["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert main([str(tmp_path / "missing.json")]) == 1
    assert "cannot rewrite" in capsys.readouterr().err
