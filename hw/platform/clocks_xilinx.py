"""7-series clock generator: one MMCME2_BASE (or PLLE2_BASE) from a board oscillator to ``sync``.

# Ref: Xilinx UG472 (7 Series Clocking Resources), MMCM/PLL attributes and Table 3-7 (VCO, PFD
# and input ranges); DS181 (Artix-7 data sheet), MMCM switching characteristics.
"""


import dataclasses
import operator
from fractions import Fraction

from amaranth.hdl import Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MMCMConfig", "mmcm_config", "XilinxClockGenerator"]

#: Ranges for the slowest Artix-7 grade in use (-1L; DS181 MMCM_FVCOMIN/MAX, MMCM_FPFDMIN/MAX).
VCO_MIN_HZ = 600e6
VCO_MAX_HZ = 1200e6
PFD_MIN_HZ = 10e6
PFD_MAX_HZ = 450e6
#: Each output divider of an MMCM is an integer 1..128 (CLKOUT0 also takes eighths, unused here).
#: CLKFBOUT_MULT_F 2..64, DIVCLK_DIVIDE 1..106.
MULT_RANGE = range(2, 65)
DIVCLK_RANGE = range(1, 107)
OUT_RANGE = range(1, 129)


@dataclasses.dataclass(frozen=True)
class MMCMConfig:
    """Integer settings of one MMCM output: ``f_out = f_in * mult / (divclk * out_div)``."""

    f_in: int
    mult: int
    divclk: int
    out_div: int

    @property
    def f_vco(self) -> Fraction:
        return Fraction(self.f_in * self.mult, self.divclk)

    @property
    def f_out(self) -> Fraction:
        return self.f_vco / self.out_div


def mmcm_config(f_in: int, f_out: int) -> MMCMConfig:
    """Exact MMCM settings for ``f_in`` -> ``f_out`` (both Hz), preferring the highest VCO.

    Raises ``ValueError`` if no setting makes ``f_out`` exactly within the VCO and PFD ranges.
    """
    f_in, f_out = operator.index(f_in), operator.index(f_out)
    best = None
    for divclk in DIVCLK_RANGE:
        pfd = f_in / divclk
        if not PFD_MIN_HZ <= pfd <= PFD_MAX_HZ:
            continue
        for mult in MULT_RANGE:
            vco = Fraction(f_in * mult, divclk)
            if not VCO_MIN_HZ <= vco <= VCO_MAX_HZ:
                continue
            out_div = vco / f_out
            if out_div.denominator != 1 or int(out_div) not in OUT_RANGE:
                continue
            cfg = MMCMConfig(f_in, mult, divclk, int(out_div))
            if best is None or cfg.f_vco > best.f_vco:
                best = cfg
    if best is None:
        raise ValueError(f"an MMCM cannot make exactly {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz (VCO {VCO_MIN_HZ / 1e6:g}..{VCO_MAX_HZ / 1e6:g} MHz)")
    return best


class XilinxClockGenerator(wiring.Component):
    """MMCME2_BASE from ``clk_in`` to a global clock ``clk_out`` through a BUFG.

    The feedback loop is CLKFBOUT -> CLKFBIN without a buffer (the output is not phase-aligned to
    the input, which a design with one clock domain does not need).

    Parameters
    ----------
    f_in, f_out : int
        Input (board oscillator) and output frequencies in Hz.

    Members
    -------
    clk_in : In(1)
        The oscillator, from an input buffer.
    clk_out : Out(1)
        The generated clock (drive ``ClockSignal("sync")`` with it).
    locked : Out(1)
        High once the MMCM has locked; hold the ``sync`` domain in reset until then.
    """

    clk_in: In(1)
    clk_out: Out(1)
    locked: Out(1)

    def __init__(self, f_in: int, f_out: int):
        self._config = mmcm_config(f_in, f_out)
        super().__init__()

    @property
    def config(self) -> MMCMConfig:
        return self._config

    @property
    def f_out(self) -> int:
        return int(self._config.f_out)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        feedback = Signal()
        unbuffered = Signal()
        m.submodules.mmcm = Instance(
            "MMCME2_BASE",
            p_BANDWIDTH="OPTIMIZED",
            p_CLKIN1_PERIOD=round(1e9 / cfg.f_in, 3),
            p_CLKFBOUT_MULT_F=float(cfg.mult),
            p_DIVCLK_DIVIDE=cfg.divclk,
            p_CLKOUT0_DIVIDE_F=float(cfg.out_div),
            p_CLKOUT0_PHASE=0.0,
            p_CLKOUT0_DUTY_CYCLE=0.5,
            p_STARTUP_WAIT="FALSE",
            i_CLKIN1=self.clk_in,
            i_CLKFBIN=feedback,
            o_CLKFBOUT=feedback,
            o_CLKOUT0=unbuffered,
            o_LOCKED=self.locked,
            i_RST=0,
            i_PWRDWN=0,
        )
        m.submodules.bufg = Instance("BUFG", i_I=unbuffered, o_O=self.clk_out)
        return m
