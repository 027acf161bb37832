"""The host side of an accelerator testbench: the DUT's clock and reset, cocotbext-uart on its
pins, and a ``sw.host.driver.Device`` over them (the driver a board would get).

Used by the accelerator testbenches (``accel_tb``, ``session_tb``, ``serve_tb``); the DUT is a
``hw.accelerator.Accelerator`` (ports ``clk``, ``rst``, ``rx``, ``tx``), or with
:func:`start_host` and ``front="pipe"`` a ``sim.rtl.byte_pipe.PipedAccelerator`` (chunks of
bytes through ``sim.rtl.pipe_host``: the same driver, a Python wake-up per chunk, not per bit).
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


async def start_host(dut, *, front: str, baud: int, period_ns: float, chunk: int = 32,
                     clock: str = "testbench"):
    """:func:`start_uart_host` (``front="uart"``) or ``sim.rtl.pipe_host.start_pipe_host``
    (``front="pipe"``, whose top may make its own clock: ``clock="internal"``); returns
    ``(source, sink)``."""
    if front == "pipe":
        from .pipe_host import start_pipe_host

        return await start_pipe_host(dut, chunk=chunk, period_ns=period_ns, clock=clock)
    if front != "uart":
        raise ValueError(f"front must be 'uart' or 'pipe', not {front!r}")
    return await start_uart_host(dut, baud=baud, period_ns=period_ns)


def uart_device(source, sink, *, idle_timeout: int, period_ns: float, baud: int | None = None):
    """The host driver over the testbench's UART (replies may take the link's idle timeout).

    With ``baud``, the timeout also covers the wire time of the first exchange (IDENTIFY, before
    the driver knows the rate and adds the wire time of each request itself).
    """
    from sw.host.driver import Device
    from sw.host.transport import CocotbUartTransport

    wire = 64 * 10 / baud if baud else 0.0
    return Device(CocotbUartTransport(
        source, sink, default_timeout=(idle_timeout + 5000) * period_ns * 1e-9 + wire))
