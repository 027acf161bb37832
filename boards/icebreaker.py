"""1BitSquared iCEBreaker (Lattice iCE40UP5K; yosys + nextpnr-ice40 + icepack, all from PyPI).

A small preset: the UP5K has 5,280 logic cells and 30 block RAMs of 4 Kbit. The 12 MHz oscillator
clocks the accelerator directly; the FT2232H's second channel is the host UART (resource ``uart``);
the red and green LEDs show heartbeat and host activity.
"""

from hw.contract.params import CoreParams

from .preset import BoardPreset, DeviceCapacity

__all__ = ["ICE40UP5K", "ICEBREAKER"]

# Ref: Lattice FPGA-DS-02008 (iCE40 UltraPlus data sheet), Table 1.1: 5,280 LUTs, 30 EBR of
# 4 Kbit, 4 SPRAM of 256 Kbit, 8 DSP blocks.
ICE40UP5K = DeviceCapacity(device="iCE40UP5K", luts=5_280, ffs=5_280, brams=30, dsps=8,
                           ram_bits=30 * 4096 + 4 * 256 * 1024)

ICEBREAKER = BoardPreset(
    name="icebreaker",
    title="1BitSquared iCEBreaker (iCE40UP5K-SG48)",
    platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
    family="ice40",
    toolchain="IceStorm",
    clk_freq=12_000_000,
    clock_gen="direct",
    # SpikePack layers only (lif=0), dense layers only (conv=0: the conv walk and pooling take
    # about 1,250 logic cells more) and 20-bit membranes: the UP5K's 5,280 logic cells hold the
    # whole accelerator with its host link then.
    params=CoreParams(n_pe=4, k=4, t_max=8, acc_bits=20, weight_depth=256, act_chunks=16,
                      bt_depth=64, max_layers=4, batch_depth=1, fire_units=1, lif=0,
                      weight_regs=0, conv=0, bank_passes=2),
    # 12 MHz / 1 Mbaud = 12 clocks per bit; the FT2232H makes 1 Mbaud exactly.
    baud=1_000_000,
    leds=(("led", 0), ("led", 1)),
    # 256-byte frames: the link's double frame buffer fits two block RAMs (95 % of the line
    # rate still carries payload).
    max_payload=256,
    programmer="ice40_generic",
    capacity=ICE40UP5K,
    description="4 PEs x 4 lanes (16 adds per cycle) at 12 MHz: 64-neuron SpikePack layers, "
                "4K weights.",
)
