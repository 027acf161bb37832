"""cocotb module behind ``spikepack serve-sim``: the Accelerator RTL as a virtual board on a TCP
port (DUT: ``hw.accelerator.Accelerator``).

Bytes from a TCP client go to the DUT's ``rx`` pin and bytes from its ``tx`` pin go back, so any
host program that opens ``socket://127.0.0.1:PORT`` with pyserial (``spikepack deploy/infer
--port``) talks to the RTL exactly as to a board on a serial port. The device keeps its memories
from one client to the next, as a board does. Clients are served one at a time.

Parameters (``sim.rtl.runner.run_cocotb(env=...)``): ``clk_freq``, ``baud``, ``tcp_port`` (0: any
free port), ``port_file`` (the bound port is written there once listening), ``max_clients`` (stop
after serving this many; 0 = no limit), ``idle_exit`` (stop after this many wall-clock seconds
without a client), ``front`` and ``chunk`` (as in ``sim.tb.session_tb``).
"""

from __future__ import annotations

import os
import select
import socket
import time

import cocotb
from cocotb.triggers import Timer

from sim.rtl.runner import cocotb_env
from sim.rtl.uart_host import start_host

CLK_FREQ = cocotb_env("clk_freq", 100_000_000)
BAUD = cocotb_env("baud", 25_000_000)
PERIOD_NS = 1e9 / CLK_FREQ
#: Simulated time between two looks at the socket: a few UART bytes at the simulated baud.
POLL_NS = max(1, round(4 * 10 * 1e9 / BAUD))


def _listen(port: int) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.setblocking(False)
    return srv


@cocotb.test()
async def serve(dut):
    max_clients = cocotb_env("max_clients", 0)
    idle_exit = cocotb_env("idle_exit", 600)
    srv = _listen(cocotb_env("tcp_port", 0))

    source, sink = await start_host(dut, front=cocotb_env("front", "uart"), baud=BAUD,
                                    period_ns=PERIOD_NS, chunk=cocotb_env("chunk", 32),
                                    clock=cocotb_env("clock", "testbench"))

    port_file = cocotb_env("port_file")
    if port_file:
        with open(f"{port_file}.tmp", "w") as f:
            f.write(str(srv.getsockname()[1]))
        os.replace(f"{port_file}.tmp", port_file)
    dut._log.info("listening on 127.0.0.1:%d", srv.getsockname()[1])

    served, conn, idle_since = 0, None, time.monotonic()
    try:
        while not (max_clients and served >= max_clients):
            if conn is None:
                if select.select([srv], [], [], 0)[0]:
                    conn, peer = srv.accept()
                    conn.setblocking(False)
                    sink.clear()
                    dut._log.info("client %s connected", peer)
                elif time.monotonic() - idle_since > idle_exit:
                    dut._log.info("no client for %s s; stopping", idle_exit)
                    break
            else:
                try:
                    data = conn.recv(4096)
                except BlockingIOError:
                    data = None
                except ConnectionError:
                    data = b""
                if data == b"":  # the client closed
                    conn.close()
                    conn, served, idle_since = None, served + 1, time.monotonic()
                    dut._log.info("client gone (%d served)", served)
                    continue
                if data:
                    source.write_nowait(data)
                if sink.count():
                    try:
                        conn.sendall(bytes(sink.read_nowait()))
                    except ConnectionError:
                        pass  # noticed by the next recv
            await Timer(POLL_NS, unit="ns")
    finally:
        if conn is not None:
            conn.close()
        srv.close()
