"""A tiny design and its cocotb test, for testing ``sim.rtl.runner.run_cocotb`` itself (fast to
build).

:class:`TinyAccumulator` adds its input into a register every cycle; the cocotb test ``tiny``
drives random inputs and checks the sum, then writes ``{"pid", "checked"}`` to the ``out`` file
(``sim.rtl.runner.run_cocotb(env={"out": ...})``) so the caller can tell which runs happened.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from sim.rtl.runner import cocotb_env


class TinyAccumulator(wiring.Component):
    """``total`` adds ``i`` every cycle (modulo ``2**width``).

    Parameters
    ----------
    width : int
        Width of ``i`` and ``total``.
    """

    def __init__(self, width: int = 8):
        self._width = width
        super().__init__({"i": In(width), "total": Out(width)})

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.total.eq(self.total + self.i)
        return m


@cocotb.test()
async def tiny(dut):
    """Random inputs; ``total`` is their running sum."""
    width = int(cocotb_env("width", 8))
    rng = random.Random(int(cocotb_env("seed", 0)))
    Clock(dut.clk, 10, unit="ns").start()
    dut.i.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    total = 0
    for _ in range(200):
        await FallingEdge(dut.clk)
        assert int(dut.total.value) == total
        x = rng.randrange(1 << width)
        dut.i.value = x
        await RisingEdge(dut.clk)
        total = (total + x) % (1 << width)
    out = cocotb_env("out")
    if out:
        with open(out, "w") as f:
            json.dump({"pid": os.getpid(), "checked": 200}, f)
