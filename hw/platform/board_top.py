"""Board top: clock generator + reset synchronizer + the accelerator on the board's UART and LEDs.

The ``sync`` domain is made here, never by the platform's default: the preset's clock generator
(``hw.platform.clocks_xilinx`` MMCM, ``hw.platform.clocks_ecp5`` PLL, or the oscillator directly)
drives it, and a reset synchronizer holds it in reset until the clock generator has locked (and
while the board's reset button, if any, is pressed).
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from .clocks_ecp5 import ECP5ClockGenerator
from .clocks_xilinx import XilinxClockGenerator

__all__ = ["BoardTop", "default_accelerator"]

#: Heartbeat LED blink rate (the top bit of a free-running counter, so roughly this).
HEARTBEAT_HZ = 1.5
#: Host-activity LED: stays on this long after the last UART edge, so single bytes are visible.
ACTIVITY_S = 0.02


def default_accelerator(preset):
    """The full accelerator (``hw.accelerator.Accelerator``: UART host link + core) of a preset."""
    from hw.accelerator import Accelerator
    return Accelerator(preset.params, preset.clk_freq, preset.baud,
                       max_payload=preset.max_payload)


class BoardTop(Elaboratable):
    """The top of a board build.

    Parameters
    ----------
    preset : boards.BoardPreset
        Board, clock, UART, LEDs and accelerator size.
    accelerator : callable, optional
        ``accelerator(preset)`` returns the component placed on the board; it must
        have ports ``rx`` (In(1)) and ``tx`` (Out(1)) and may have ``busy`` (Out(1)). The default
        is :func:`default_accelerator`.

    The accelerator itself is made on construction, so parameter errors surface before a build.
    """

    def __init__(self, preset, accelerator=None):
        self._preset = preset
        factory = default_accelerator if accelerator is None else accelerator
        self._accel = factory(preset)
        for port in ("rx", "tx"):
            if not hasattr(self._accel, port):
                raise TypeError(f"the accelerator {self._accel!r} has no {port!r} port")

    @property
    def preset(self):
        return self._preset

    @property
    def accelerator(self):
        return self._accel

    def _clock(self, m, platform):
        """Make the ``sync`` domain; return the asynchronous 'not ready' (reset) condition."""
        p = self._preset
        clk_res = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_res)
        f_in = int(platform.default_clk_frequency)
        m.domains.sync = ClockDomain("sync")
        if p.clock_gen == "direct":
            if f_in != p.clk_freq:
                raise ValueError(f"{p.name}: clock_gen 'direct' runs at the oscillator's "
                                 f"{f_in} Hz, not {p.clk_freq} Hz")
            m.d.comb += ClockSignal("sync").eq(clk_buf.i)
            not_ready = Const(0)
        else:
            gen_cls = {"mmcm": XilinxClockGenerator, "ecp5_pll": ECP5ClockGenerator}[p.clock_gen]
            m.submodules.clkgen = clkgen = gen_cls(f_in, p.clk_freq)
            m.d.comb += [clkgen.clk_in.eq(clk_buf.i), ClockSignal("sync").eq(clkgen.clk_out)]
            # Vivado and nextpnr derive the generated clock's constraint from the oscillator's.
            not_ready = ~clkgen.locked
        if p.reset is not None:
            rst_res = platform.request(p.reset, 0, dir="-")
            m.submodules.rst_buf = rst_buf = io.Buffer("i", rst_res)
            not_ready = not_ready | rst_buf.i
        return not_ready

    def elaborate(self, platform):
        m = Module()
        p = self._preset
        not_ready = self._clock(m, platform)
        m.submodules.reset_sync = ResetSynchronizer(not_ready, domain="sync")

        m.submodules.accel = accel = self._accel
        uart = platform.request(*p.uart, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.d.comb += [accel.rx.eq(uart_rx.i), uart_tx.o.eq(accel.tx)]

        # Status LEDs: heartbeat (clock running and out of reset), host activity, busy.
        leds = []
        for i, (name, number) in enumerate(p.leds):
            m.submodules[f"led_{i}"] = led = io.Buffer("o", platform.request(name, number,
                                                                            dir="-"))
            leds.append(led.o)
        heartbeat_bits = max(1, (int(p.clk_freq / (2 * HEARTBEAT_HZ)) - 1).bit_length())
        heartbeat = Signal(heartbeat_bits)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        status = [heartbeat[-1]]

        rx_sync = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(uart_rx.i, rx_sync, init=1)
        activity_cycles = max(1, int(p.clk_freq * ACTIVITY_S))
        activity = Signal(range(activity_cycles + 1))
        with m.If(~rx_sync | ~accel.tx):
            m.d.sync += activity.eq(activity_cycles)
        with m.Elif(activity != 0):
            m.d.sync += activity.eq(activity - 1)
        status.append(activity != 0)

        if hasattr(accel, "busy"):
            status.append(accel.busy)
        for led, value in zip(leds, status, strict=False):
            m.d.comb += led.eq(value)
        return m
