"""The host side of an accelerator testbench: the DUT's clock and reset, cocotbext-uart on its
pins, and a ``sw.host.driver.Device`` over them (the driver a board would get).

Used by the accelerator testbenches (``accel_tb``, ``session_tb``, ``serve_tb``); the DUT is a
``hw.accelerator.Accelerator`` (ports ``clk``, ``rst``, ``rx``, ``tx``).
"""

from __future__ import annotations

import logging
import warnings

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.uart import UartSink, UartSource

# cocotbext-uart 0.1.4 calls cocotb 2's deprecated ``setimmediatevalue`` once per UART; that is
# theirs to change, and must not fail runs made with PYTHONWARNINGS=error.
warnings.filterwarnings("ignore", message="Use `handle.set\\(Immediate",
                        category=DeprecationWarning)


async def start_uart_host(dut, *, baud: int, period_ns: float):
    """Hold reset, start the clock, release reset; returns the UART ``(source, sink)``."""
    dut.rst.value = 1  # before the clock runs: no X on the pins
    dut.rx.value = 1
    source = UartSource(dut.rx, baud=baud, bits=8, stop_bits=1)
    sink = UartSink(dut.tx, baud=baud, bits=8, stop_bits=1)
    for h in (dut.rx, dut.tx):
        logging.getLogger(f"cocotb.{h._path}").setLevel(logging.WARNING)
    Clock(dut.clk, period_ns, unit="ns").start()
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    return source, sink


def uart_device(source, sink, *, idle_timeout: int, period_ns: float):
    """The host driver over the testbench's UART (replies may take the link's idle timeout)."""
    from sw.host.driver import Device
    from sw.host.transport import CocotbUartTransport

    return Device(CocotbUartTransport(
        source, sink, default_timeout=(idle_timeout + 5000) * period_ns * 1e-9))
