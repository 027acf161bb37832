"""Byte transports for the driver: the board's serial port, and the RTL simulation's UART pins.

The driver (``sw.host.driver``) talks to an abstract :class:`Transport`; the same driver code runs
on the board (:class:`SerialTransport`, any pyserial URL) and on the RTL under cocotb
(:class:`CocotbUartTransport`, the Verilog ``rx``/``tx`` pins driven by cocotbext-uart).
"""

from __future__ import annotations

import abc


class Transport(abc.ABC):
    """A full-duplex byte pipe with timed reads.

    Members
    -------
    description : str
        What the transport is connected to (used in error messages).
    default_timeout : float
        Seconds a request may take on this transport before the driver retries (in the time base of
        the transport: wall-clock for a port, simulated time for the simulation).
    """

    description = "transport"
    default_timeout = 1.0

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending."""

    @abc.abstractmethod
    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes; fewer (possibly none) if ``timeout`` seconds pass first."""

    def discard_input(self) -> None:
        """Drop bytes received but not yet read (stale replies after a timeout)."""
        while self.read(4096, 0.0):
            pass

    def close(self) -> None:
        """Release the transport."""
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """pyserial transport opened from a URL.

    Parameters
    ----------
    url : str
        A device (``/dev/ttyUSB1``: the Arty's FT2232H exposes the FPGA UART as its *second*
        interface), ``socket://host:port`` or ``loop://``; anything ``serial.serial_for_url`` takes.
    baud : int
        Must match the bitstream's build parameter (``IDENTIFY`` reports it).
    """

    default_timeout = 1.0

    def __init__(self, url: str, baud: int, **kwargs):
        import serial

        self.description = f"{url} at {baud} baud"
        try:
            self._port = serial.serial_for_url(url, baudrate=baud, timeout=0, **kwargs)
        except (serial.SerialException, ValueError) as e:
            raise OSError(f"cannot open {self.description}: {e}. Check the device path (Arty A7: "
                          f"the second FT2232H port, often /dev/ttyUSB1), permissions (dialout "
                          f"group) and that the baud rate is supported") from e

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read(self, n: int, timeout: float) -> bytes:
        self._port.timeout = max(0.0, timeout)
        return bytes(self._port.read(n))

    def discard_input(self) -> None:
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()


class CocotbUartTransport(Transport):
    """The RTL's UART pins under cocotb, for driver code running in a ``cocotb.bridge`` thread.

    ``write`` hands bytes to a cocotbext-uart ``UartSource`` on the DUT's ``rx`` pin; ``read`` waits
    on a ``UartSink`` on its ``tx`` pin. Both block the calling thread while the simulator runs, so
    the host side takes no simulated time and cycle counts are exact. Timeouts are in simulated
    seconds. ``sim.rtl.pipe_host``'s ``PipeSource``/``PipeSink`` (the byte pipe of the simulation
    top, a Python wake-up per chunk rather than per bit) stand in for the cocotbext-uart pair.

    Parameters
    ----------
    source, sink : cocotbext.uart.UartSource, cocotbext.uart.UartSink (or the pipe's pair)
    default_timeout : float
        Simulated seconds per request before the driver retries.
    """

    description = "RTL simulation UART"

    def __init__(self, source, sink, *, default_timeout: float = 1e-3):
        from cocotb.task import resume

        self._source, self._sink = source, sink
        self.default_timeout = default_timeout
        self.bytes_written = 0
        self.bytes_read = 0

        @resume
        async def _write(data: bytes) -> None:
            self._source.write_nowait(data)

        @resume
        async def _read(n: int, timeout: float) -> bytes:
            from cocotb.simtime import get_sim_time
            from cocotb.triggers import First, Timer

            deadline = get_sim_time("ns") + timeout * 1e9
            while self._sink.count() < n:
                left = deadline - get_sim_time("ns")
                if left <= 0:
                    break
                self._sink.sync.clear()
                await First(self._sink.sync.wait(), Timer(max(1, round(left)), unit="ns"))
            return bytes(self._sink.read_nowait(min(n, self._sink.count())))

        @resume
        async def _discard() -> None:
            self._sink.clear()

        self._write, self._read, self._discard = _write, _read, _discard

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        self._write(bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        data = self._read(n, timeout)
        self.bytes_read += len(data)
        return data

    def discard_input(self) -> None:
        self._discard()
