"""ECP5 clock generator: one EHXPLLL from a board oscillator to ``sync``.

# Ref: Lattice FPGA-TN-02200 (ECP5 sysCLOCK PLL/DLL Design and Usage Guide), EHXPLLL ports and
# ranges; the attribute values follow Project Trellis' ``ecppll`` (the settings nextpnr expects).
"""


import dataclasses
import operator
from fractions import Fraction

from amaranth.hdl import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["EHXPLLLConfig", "ehxplll_config", "ECP5ClockGenerator"]

#: EHXPLLL ranges (FPGA-TN-02200 Table 2.x; ecppll's limits).
INPUT_MIN_HZ, INPUT_MAX_HZ = 8e6, 400e6
PFD_MIN_HZ, PFD_MAX_HZ = 3.125e6, 400e6
VCO_MIN_HZ, VCO_MAX_HZ = 400e6, 800e6
OUTPUT_MIN_HZ, OUTPUT_MAX_HZ = 3.125e6, 400e6
CLKI_DIV_RANGE = range(1, 129)
CLKFB_DIV_RANGE = range(1, 81)
CLKOP_DIV_RANGE = range(1, 129)


@dataclasses.dataclass(frozen=True)
class EHXPLLLConfig:
    """Dividers with CLKOP as feedback: ``f_out = f_in * clkfb_div / clki_div``,
    ``f_vco = f_out * clkop_div``."""

    f_in: int
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_out(self) -> Fraction:
        return Fraction(self.f_in * self.clkfb_div, self.clki_div)

    @property
    def f_vco(self) -> Fraction:
        return self.f_out * self.clkop_div

    @property
    def clkop_cphase(self) -> int:
        """Coarse phase for a 0-degree output, as ecppll sets it."""
        return (self.clkop_div - 1) // 2


def ehxplll_config(f_in: int, f_out: int) -> EHXPLLLConfig:
    """Exact EHXPLLL settings for ``f_in`` -> ``f_out`` (Hz), preferring a VCO near 600 MHz.

    Raises ``ValueError`` if no setting gives ``f_out`` exactly within the PLL's ranges.
    """
    f_in, f_out = operator.index(f_in), operator.index(f_out)
    if not INPUT_MIN_HZ <= f_in <= INPUT_MAX_HZ:
        raise ValueError(f"EHXPLLL input {f_in / 1e6:g} MHz is outside 8..400 MHz")
    if not OUTPUT_MIN_HZ <= f_out <= OUTPUT_MAX_HZ:
        raise ValueError(f"EHXPLLL output {f_out / 1e6:g} MHz is outside 3.125..400 MHz")
    best = None
    for clki_div in CLKI_DIV_RANGE:
        if not PFD_MIN_HZ <= f_in / clki_div <= PFD_MAX_HZ:
            continue
        clkfb_div = Fraction(f_out * clki_div, f_in)
        if clkfb_div.denominator != 1 or int(clkfb_div) not in CLKFB_DIV_RANGE:
            continue
        for clkop_div in CLKOP_DIV_RANGE:
            cfg = EHXPLLLConfig(f_in, clki_div, int(clkfb_div), clkop_div)
            if not VCO_MIN_HZ <= cfg.f_vco <= VCO_MAX_HZ:
                continue
            if best is None or abs(cfg.f_vco - 600_000_000) < abs(best.f_vco - 600_000_000):
                best = cfg
    if best is None:
        raise ValueError(f"an EHXPLLL cannot make exactly {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    return best


class ECP5ClockGenerator(wiring.Component):
    """EHXPLLL from ``clk_in`` to ``clk_out`` (CLKOP, fed back to itself).

    Parameters
    ----------
    f_in, f_out : int
        Input (board oscillator) and output frequencies in Hz.

    Members
    -------
    clk_in : In(1)
        The oscillator, from an input buffer.
    clk_out : Out(1)
        The generated clock (on a global net; drive ``ClockSignal("sync")`` with it).
    locked : Out(1)
        High once the PLL has locked (asynchronous; synchronize it as a reset).
    """

    clk_in: In(1)
    clk_out: Out(1)
    locked: Out(1)

    def __init__(self, f_in: int, f_out: int):
        self._config = ehxplll_config(f_in, f_out)
        super().__init__()

    @property
    def config(self) -> EHXPLLLConfig:
        return self._config

    @property
    def f_out(self) -> int:
        return int(self._config.f_out)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{cfg.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{float(cfg.f_out) / 1e6:g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=cfg.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=cfg.clkop_div,
            p_CLKOP_CPHASE=cfg.clkop_cphase,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=cfg.clkfb_div,
            i_RST=0,
            i_STDBY=0,
            i_CLKI=self.clk_in,
            o_CLKOP=self.clk_out,
            i_CLKFB=self.clk_out,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_LOCK=self.locked,
        )
        return m
