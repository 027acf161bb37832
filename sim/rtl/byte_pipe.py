"""Simulation-only front end: chunks of bytes <-> the accelerator's UART pins, in gateware.

Driving a UART pin from Python (cocotbext-uart) wakes the Python testbench on every bit of every
character, in both directions; that, not the simulated line rate, made an MNIST-sized upload take
minutes. :class:`BytePipe` moves the bit-level work into the simulated gateware: the testbench
hands it whole chunks of up to ``chunk`` bytes through a FIFO, an ``hw.link`` UART transmitter
puts them on the device's ``rx`` pin back to back (character after character, no idle time), and an
``hw.link`` UART receiver on the device's ``tx`` pin packs what the device sends into chunks for
the testbench. Python then touches each chunk once.

The device behind it (``hw.accelerator.Accelerator``: its own UART receiver, frame decoder,
executor, encoder and transmitter) runs unchanged and bit-accurately at the same divisor: the
pipe's transmitter makes the exact waveform a host UART makes at that rate. The testbench side is
``sim.rtl.pipe_host``; :class:`PipedAccelerator` is the simulation top.

Test fixture, not product code (like ``sim.rtl.bus_ram``): no board top instantiates it.
"""

from __future__ import annotations

import operator

from amaranth.hdl import ClockDomain, Instance, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.accelerator import Accelerator
from hw.link.uart_rx import UARTReceiver
from hw.link.uart_tx import UARTTransmitter

__all__ = ["BytePipe", "PipedAccelerator", "chunk_layout", "SIM_CLOCK_VERILOG"]

#: The clock of a :class:`PipedAccelerator` built with ``clock_period_ps``: a Verilog behavioural
#: oscillator (needs ``verilator --timing``), so the simulator makes every edge itself instead of
#: a cocotb clock writing the pin through VPI twice a cycle (under Verilator the Arty core runs
#: 1.46x the idle cycles per CPU second, 1.27x in an upload-and-infer session).
SIM_CLOCK_VERILOG = """\
`timescale 1ns/1ps
module spikepack_sim_clock #(parameter HALF_PS = 5000) (output reg clk);
  initial clk = 1'b0;
  always #(HALF_PS / 1000.0) clk = ~clk;
endmodule
"""


def chunk_layout(chunk: int) -> data.StructLayout:
    """``data`` (``chunk`` bytes, byte 0 in the low bits) and ``count`` (bytes used, 0..chunk)."""
    return data.StructLayout({"data": 8 * chunk, "count": range(chunk + 1)})


class BytePipe(wiring.Component):
    """Chunks of bytes in -> a UART line out; a UART line in -> chunks of bytes out.

    Parameters
    ----------
    divisor : int
        Clocks per UART bit (the device's).
    chunk : int
        Bytes per chunk.
    depth : int
        Chunks each FIFO holds.

    Members
    -------
    h2d : In(stream.Signature(chunk_layout(chunk)))
        Bytes for the device, ``count`` of them from ``data``'s low byte up.
    d2h : Out(stream.Signature(chunk_layout(chunk)))
        Bytes from the device: a chunk leaves when it is full or when the device's line has
        stayed idle for two bit times after a character's stop bit (the end of a reply).
    tx : Out(1)
        To the device's ``rx`` (idle high).
    rx : In(1)
        From the device's ``tx``.
    """

    def __init__(self, divisor, *, chunk=32, depth=64):
        self._divisor = operator.index(divisor)
        self._chunk = operator.index(chunk)
        self._depth = operator.index(depth)
        if self._chunk < 1 or self._depth < 2:
            raise ValueError(f"chunk must be >= 1 and depth >= 2, not {chunk} and {depth}")
        layout = chunk_layout(self._chunk)
        super().__init__({
            "h2d": In(stream.Signature(layout)),
            "d2h": Out(stream.Signature(layout)),
            "tx": Out(1, init=1),
            "rx": In(1, init=1),
        })

    divisor = property(lambda self: self._divisor)
    chunk = property(lambda self: self._chunk)

    def elaborate(self, platform):
        m = Module()
        layout = chunk_layout(self._chunk)

        # host -> device: FIFO of chunks, unpacked byte by byte into the UART transmitter
        m.submodules.h2d_fifo = h2d_fifo = SyncFIFOBuffered(width=layout.size, depth=self._depth)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self._divisor)
        m.d.comb += [
            h2d_fifo.w_data.eq(self.h2d.payload.as_value()),
            h2d_fifo.w_en.eq(self.h2d.valid),
            self.h2d.ready.eq(h2d_fifo.w_rdy),
            self.tx.eq(uart_tx.tx),
        ]
        head = data.View(layout, h2d_fifo.r_data)
        shift = Signal(8 * self._chunk)
        left = Signal(range(self._chunk + 1))
        m.d.comb += [uart_tx.i.payload.eq(shift[:8]), uart_tx.i.valid.eq(left != 0)]
        with m.If(uart_tx.i.valid & uart_tx.i.ready):
            m.d.sync += [shift.eq(shift >> 8), left.eq(left - 1)]
        with m.If((left == 0) & h2d_fifo.r_rdy):
            m.d.comb += h2d_fifo.r_en.eq(1)
            m.d.sync += [shift.eq(head.data), left.eq(head.count)]

        # device -> host: UART receiver, bytes packed into chunks, FIFO of chunks
        m.submodules.uart_rx = uart_rx = UARTReceiver(self._divisor)
        m.submodules.d2h_fifo = d2h_fifo = SyncFIFOBuffered(width=layout.size, depth=self._depth)
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.d2h.valid.eq(d2h_fifo.r_rdy),
            self.d2h.payload.eq(d2h_fifo.r_data),
            d2h_fifo.r_en.eq(self.d2h.ready),
        ]
        acc = Signal(8 * self._chunk)
        have = Signal(range(self._chunk + 1))
        # the end of a reply: the line stayed high for two bit times after a character's stop
        # bit was sampled (the next start bit would have come half a bit later)
        armed = Signal()
        idle = Signal(range(2 * self._divisor + 1))
        out = data.View(layout, d2h_fifo.w_data)
        m.d.comb += [out.data.eq(acc), out.count.eq(have)]
        m.d.comb += uart_rx.o.ready.eq(have != self._chunk)
        with m.If(uart_rx.o.valid & uart_rx.o.ready):
            m.d.sync += [armed.eq(1), idle.eq(0)]
        with m.Elif(~uart_rx.rx):
            m.d.sync += armed.eq(0)
        with m.Elif(armed & (idle != 2 * self._divisor)):
            m.d.sync += idle.eq(idle + 1)
        flush = (have == self._chunk) | ((have != 0) & armed & (idle == 2 * self._divisor))
        with m.If(flush & d2h_fifo.w_rdy):
            m.d.comb += d2h_fifo.w_en.eq(1)
            m.d.sync += [have.eq(0), acc.eq(0)]
        with m.Elif(uart_rx.o.valid & uart_rx.o.ready):
            m.d.sync += [acc.word_select(have, 8).eq(uart_rx.o.payload), have.eq(have + 1)]
        return m


class PipedAccelerator(wiring.Component):
    """The simulation top: ``hw.accelerator.Accelerator`` with a :class:`BytePipe` on its pins.

    Parameters
    ----------
    params, clk_freq, baud, **link_args
        As for ``hw.accelerator.Accelerator``.
    chunk : int
        Bytes per pipe chunk.

    clock_period_ps : int or None
        None: the ``sync`` domain's clock and reset are the top's ``clk`` and ``rst`` inputs (the
        testbench drives the clock). A period: the clock comes from an instance of
        ``spikepack_sim_clock`` (:data:`SIM_CLOCK_VERILOG`, a source the simulator must be given,
        with ``--timing`` for Verilator) and is the top's internal signal ``clk`` (a testbench
        can still wait for its edges); ``rst`` is an input as before. The accelerator and the
        pipe are the same either way.

    Members
    -------
    h2d, d2h
        The pipe's chunk streams (see :class:`BytePipe`).
    rst : In(1)
        With ``clock_period_ps`` only: the ``sync`` domain's reset.
    """

    def __init__(self, params, clk_freq, baud, *, chunk=32, clock_period_ps=None, **link_args):
        self._accel = Accelerator(params, clk_freq, baud, **link_args)
        self._chunk = operator.index(chunk)
        self._period = None if clock_period_ps is None else operator.index(clock_period_ps)
        if self._period is not None and (self._period < 2 or self._period % 2):
            raise ValueError(f"clock_period_ps must be an even number of picoseconds, "
                             f"not {clock_period_ps}")
        layout = chunk_layout(self._chunk)
        members = {"h2d": In(stream.Signature(layout)), "d2h": Out(stream.Signature(layout))}
        if self._period is not None:
            members["rst"] = In(1)
        super().__init__(members)

    accelerator = property(lambda self: self._accel)
    chunk = property(lambda self: self._chunk)

    def elaborate(self, platform):
        m = Module()
        if self._period is not None:
            m.domains.sync = sync = ClockDomain("sync")
            m.submodules.clock = Instance("spikepack_sim_clock", p_HALF_PS=self._period // 2,
                                          o_clk=sync.clk)
            m.d.comb += sync.rst.eq(self.rst)
        m.submodules.accel = accel = self._accel
        m.submodules.pipe = pipe = BytePipe(accel.link.divisor, chunk=self._chunk)
        wiring.connect(m, wiring.flipped(self.h2d), pipe.h2d)
        wiring.connect(m, pipe.d2h, wiring.flipped(self.d2h))
        m.d.comb += [accel.rx.eq(pipe.tx), pipe.rx.eq(accel.tx)]
        return m
