"""What a board preset says: the FPGA board, clock, UART, accelerator size and toolchain of a build,
and the device's capacity for fit checks."""

from __future__ import annotations

import dataclasses
import importlib
import operator
from typing import Literal

from hw.contract.params import CoreParams
from hw.contract.protocol import baud_divisor, check_max_payload

__all__ = ["DeviceCapacity", "BoardPreset", "check_nextpnr_options"]

#: nextpnr arguments ``hw.build`` (and Amaranth's build plan) sets itself.
RESERVED_NEXTPNR_OPTIONS = frozenset({
    "--json", "--lpf", "--pcf", "--textcfg", "--asc", "--seed", "--report", "--log", "--quiet",
    "--timing-allow-fail", "--package", "--speed", "--freq", "--12k", "--25k", "--45k",
    "--85k", "--um-25k", "--um-45k", "--um-85k", "--um5g-25k", "--um5g-45k", "--um5g-85k",
    "--up5k", "--hx8k", "--hx1k", "--lp8k"})


def check_nextpnr_options(options) -> tuple[str, ...]:
    """``options`` as a tuple of strings, or ValueError/TypeError saying which one is wrong."""
    if isinstance(options, str):
        raise TypeError(f"nextpnr options must be a sequence of arguments, not the string "
                        f"{options!r} (split it: {tuple(options.split())!r})")
    options = tuple(options)
    for arg in options:
        if not isinstance(arg, str):
            raise TypeError(f"nextpnr options must be strings, not {arg!r}")
        if arg.split("=", 1)[0] in RESERVED_NEXTPNR_OPTIONS:
            hint = " (use --seed)" if arg.startswith("--seed") else ""
            raise ValueError(f"nextpnr option {arg} is set by hw.build itself{hint}")
    return options

Family = Literal["xc7", "ecp5", "ice40"]
ClockGen = Literal["mmcm", "ecp5_pll", "direct"]


@dataclasses.dataclass(frozen=True)
class DeviceCapacity:
    """Resources of the FPGA, for fit checks that need no placer.

    Parameters
    ----------
    device : str
        Part name.
    luts, ffs : int
        Logic LUTs (LUT6 on 7-series, LUT4 on ECP5 and iCE40) and flip-flops.
    brams : float
        Block RAMs in the device's unit: RAMB36 on 7-series, DP16KD on ECP5, EBR on iCE40.
    dsps : int
        DSP48E1 / MULT18X18D / SB_MAC16 blocks.
    ram_bits : int
        All memory bits the device has (block, distributed and single-port RAM): a memory larger
        than this cannot fit whatever the tools do.
    """

    device: str
    luts: int
    ffs: int
    brams: float
    dsps: int
    ram_bits: int


@dataclasses.dataclass(frozen=True)
class BoardPreset:
    """One buildable board configuration.

    Parameters
    ----------
    name : str
        The ``--board`` name.
    title : str
        Human name of the board and device.
    platform : str
        amaranth-boards platform class as ``"module:Class"`` (imported when building).
    family : "xc7", "ecp5" or "ice40"
        Selects the flow of ``hw.build.main`` (Vivado plan + yosys estimate, or nextpnr bitstream).
    toolchain : str
        The Amaranth toolchain name (``"Vivado"``, ``"Trellis"``, ``"IceStorm"``).
    clk_freq : int
        Frequency of the accelerator's clock in Hz.
    clock_gen : "mmcm", "ecp5_pll" or "direct"
        How ``clk_freq`` is made from the board oscillator (``hw.clocks_*``).
    params : CoreParams
        Accelerator size.
    baud : int
        UART rate of the host link.
    uart : tuple
        amaranth-boards resource (name, number) of the host UART.
    leds : tuple of tuple
        Status LED resources, first to last: heartbeat, host activity, running.
    reset : str or None
        A board reset-button resource (active in its resource's polarity), or None.
    programmer : str
        ``openFPGALoader -b`` board name.
    capacity : DeviceCapacity
        Device resources: the memory pre-check of every flow, the yosys estimate's fit check.
    max_payload : int
        Largest frame payload of the host link in bytes (its frame buffer holds two).
    description : str
        A sentence on why this size and clock.
    nextpnr_seed : int or None
        nextpnr's placer seed (``--seed``) for ECP5/iCE40 builds; None: nextpnr's default.
    nextpnr_options : tuple of str
        More nextpnr arguments for ECP5/iCE40 builds (placer and router settings, e.g.
        ``("--placer-heap-timingweight", "40")``); not the ones ``hw.build`` sets itself
        (device, files, seed, report).
    """

    name: str
    title: str
    platform: str
    family: Family
    toolchain: str
    clk_freq: int
    clock_gen: ClockGen
    params: CoreParams
    baud: int
    programmer: str
    uart: tuple[str, int] = ("uart", 0)
    leds: tuple[tuple[str, int], ...] = (("led", 0), ("led", 1), ("led", 2))
    capacity: DeviceCapacity = None
    reset: str | None = None
    max_payload: int = 1024
    description: str = ""
    nextpnr_seed: int | None = None
    nextpnr_options: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"board name must be an identifier, not {self.name!r}")
        if self.family not in ("xc7", "ecp5", "ice40"):
            raise ValueError(f"family must be xc7, ecp5 or ice40, not {self.family!r}")
        if self.clock_gen not in ("mmcm", "ecp5_pll", "direct"):
            raise ValueError(f"clock_gen must be mmcm, ecp5_pll or direct, not {self.clock_gen!r}")
        if not isinstance(self.params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {self.params!r}")
        for name in ("clk_freq", "baud"):
            value = getattr(self, name)
            if isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            object.__setattr__(self, name, operator.index(value))
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if not isinstance(self.capacity, DeviceCapacity):
            raise TypeError(f"capacity must be a DeviceCapacity, not {self.capacity!r}")
        if ":" not in self.platform:
            raise ValueError(f"platform must be 'module:Class', not {self.platform!r}")
        # The UART divisor and the frame size must be usable (raise ValueError with the reason).
        baud_divisor(self.clk_freq, self.baud)
        object.__setattr__(self, "nextpnr_options", check_nextpnr_options(self.nextpnr_options))
        object.__setattr__(self, "max_payload", check_max_payload(self.max_payload))

    def platform_class(self):
        module, _, cls = self.platform.partition(":")
        return getattr(importlib.import_module(module), cls)

    def make_platform(self):
        return self.platform_class()(toolchain=self.toolchain)

    def replace(self, **changes) -> BoardPreset:
        """A copy with fields changed (``params`` fields may be given as ``params={...}``)."""
        if isinstance(changes.get("params"), dict):
            changes["params"] = dataclasses.replace(self.params, **changes["params"])
        return dataclasses.replace(self, **changes)

    def summary(self) -> dict:
        out = dataclasses.asdict(self)
        out["params"] = dataclasses.asdict(self.params)
        return out
