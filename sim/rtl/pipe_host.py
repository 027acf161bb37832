"""The testbench side of ``sim.rtl.byte_pipe``: bytes in and out of the simulated device in chunks.

:class:`PipeSource` and :class:`PipeSink` offer what ``sw.host.transport.CocotbUartTransport`` and
``sim.tb.serve_tb`` use of cocotbext-uart's ``UartSource``/``UartSink`` (``write_nowait``;
``count``, ``read_nowait``, ``clear``, ``sync``), so the same driver runs on either front end. They
wake Python once per chunk, not once per bit.

Both drive the DUT's inputs at the falling clock edge and read its outputs there, when every
registered value of the cycle has settled: a chunk offered with ``valid`` at a falling edge while
``ready`` is high is taken at the next rising edge, on any simulator.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import Event, FallingEdge, RisingEdge

__all__ = ["PipeSource", "PipeSink", "start_pipe_host"]


class _Port:
    def __init__(self, dut, name: str, chunk: int):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.chunk = chunk
        self.data_bits = 8 * chunk


class PipeSource:
    """Bytes for the device: queued by :meth:`write_nowait`, sent in chunks through ``h2d``."""

    def __init__(self, dut, clk, chunk: int):
        self._port = _Port(dut, "h2d", chunk)
        self._clk = clk
        self._queue = bytearray()
        self._wake = Event()
        self._port.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def write_nowait(self, data) -> None:
        self._queue += bytes(data)
        self._wake.set()

    def count(self) -> int:
        """Bytes not yet handed to the pipe."""
        return len(self._queue)

    async def _run(self):
        p = self._port
        while True:
            if not self._queue:
                p.valid.value = 0
                self._wake.clear()
                await self._wake.wait()
                await FallingEdge(self._clk)
                continue
            if not p.ready.value:
                p.valid.value = 0
                await RisingEdge(p.ready)
                await FallingEdge(self._clk)
                continue
            part = bytes(self._queue[:p.chunk])
            del self._queue[:p.chunk]
            p.payload.value = int.from_bytes(part, "little") | len(part) << p.data_bits
            p.valid.value = 1
            await FallingEdge(self._clk)


class PipeSink:
    """Bytes from the device: every chunk on ``d2h`` is taken as it arrives and kept here."""

    def __init__(self, dut, clk, chunk: int):
        self._port = _Port(dut, "d2h", chunk)
        self._clk = clk
        self._queue = bytearray()
        self.sync = Event()  #: set when bytes arrive (cleared by the reader)
        self._port.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def count(self) -> int:
        return len(self._queue)

    def read_nowait(self, n: int | None = None) -> bytes:
        n = len(self._queue) if n is None else n
        out = bytes(self._queue[:n])
        del self._queue[:n]
        return out

    def clear(self) -> None:
        self._queue.clear()

    async def _run(self):
        p = self._port
        mask = (1 << p.data_bits) - 1
        while True:
            if not p.valid.value:
                p.ready.value = 0
                await RisingEdge(p.valid)
                await FallingEdge(self._clk)
                continue
            word = p.payload.value.to_unsigned()
            count = word >> p.data_bits
            self._queue += (word & mask).to_bytes(p.chunk, "little")[:count]
            self.sync.set()
            p.ready.value = 1
            await FallingEdge(self._clk)


async def start_pipe_host(dut, *, chunk: int, period_ns: float, clock: str = "testbench"):
    """Hold reset, start the clock (``clock="testbench"``; ``"internal"``: the top makes its own,
    ``sim.rtl.byte_pipe.PipedAccelerator(clock_period_ps=...)``), release reset; returns
    ``(PipeSource, PipeSink)``."""
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles

    if clock not in ("testbench", "internal"):
        raise ValueError(f"clock must be 'testbench' or 'internal', not {clock!r}")
    dut.rst.value = 1
    dut.h2d__valid.value = 0
    dut.d2h__ready.value = 0
    if clock == "testbench":
        Clock(dut.clk, period_ns, unit="ns").start()
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    return PipeSource(dut, dut.clk, chunk), PipeSink(dut, dut.clk, chunk)
