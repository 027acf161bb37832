"""Digilent Arty A7-35T and A7-100T (Xilinx Artix-7, Vivado).

The board's 100 MHz oscillator feeds an MMCM (``hw.platform.clocks_xilinx``) that makes the
accelerator clock; the FT2232H's second channel is the host UART (amaranth-boards resource
``uart``); LD4..LD6 show heartbeat, host activity and run. Vivado is not free to redistribute, so
``hw.build`` writes the Vivado build plan and estimates the size with yosys ``synth_xilinx`` when
Vivado is absent.
"""

from hw.contract.params import CoreParams

from .preset import BoardPreset, DeviceCapacity

__all__ = ["XC7A35T", "XC7A100T", "ARTY_A7_PARAMS", "ARTY_A7_35", "ARTY_A7_100"]

# Ref: Xilinx DS180 (7 Series Product Selection Guide), Artix-7 table: logic cells / 6.4 = LUTs,
# CLB flip-flops, 36 Kb block RAMs, DSP48E1 slices, distributed RAM (Kb).
XC7A35T = DeviceCapacity(device="xc7a35t", luts=20_800, ffs=41_600, brams=50, dsps=90,
                         ram_bits=50 * 36 * 1024 + 400 * 1024)
XC7A100T = DeviceCapacity(device="xc7a100t", luts=63_400, ffs=126_800, brams=135, dsps=240,
                          ram_bits=135 * 36 * 1024 + 1_188 * 1024)

#: The Arty A7-35T's core: 512 int8 synaptic adds per cycle (16 PEs x 16 lanes x 2 bit-planes
#: per beat: a weight row serves two time steps; 512 lanes of one plane would need a 4,096-bit
#: weight row, more block RAM ports than the 35T has); 784-128-128-10 MLPs fit (batches of 8) and
#: so does the MNIST CNN (a 1x28x28 input is 784 spike blocks of the 1,024 in INPUT, one image
#: per batch; its 16x14x14 pooled map is 196 blocks of a 256-block ping-pong half). The OUTPUT
#: region holds 1,024 words (8 samples of 128 outputs), not 8 x 4,096: block RAM goes to the
#: maps instead. A queue of 16 spike blocks (LUT RAM) between the fetcher and the issuer
#: (``fetch_queue``) lets the walk run ahead of the issuer: the MNIST MLP's first layer, whose
#: image has runs of empty blocks, takes 598.0 -> 514.7 cycles (cycle model), and the estimate
#: 38 LUTs fewer than with the skid buffer (the queue has no bypass multiplexer). The firing
#: units' LIF leak and leaked threshold are multiply-adds in DSP48E1 slices (``fire_leak_mul``,
#: 8 of the 90, which nothing else uses): 16,650 -> 16,066 LUTs in the yosys estimate, which
#: makes room for the walk replay (``walk_replay``, as the ULX3S's: 16,452, 79.1 %): the MNIST
#: MLP in block order takes 654.0 -> 552.2 cycles per inference one image a run (cycle model).
ARTY_A7_PARAMS = CoreParams(n_pe=16, k=16, t_max=8, acc_bits=24, weight_depth=512, act_chunks=256,
                            bt_depth=1024, max_layers=16, batch_depth=8, fire_units=4,
                            in_blocks=1024, out_words=1024, planes_per_beat=2, fetch_queue=16,
                            seq_prefetch=1, pad_rows=1, fire_leak_mul=1, walk_replay=1)

#: 4 Mbaud: 12 MHz / 3, a rate the FT2232H makes exactly (25 clocks per bit at 100 MHz).
_BAUD = 4_000_000

ARTY_A7_35 = BoardPreset(
    name="arty_a7",
    title="Digilent Arty A7-35T (xc7a35ticsg324-1L)",
    platform="amaranth_boards.arty_a7:ArtyA7_35Platform",
    family="xc7",
    toolchain="Vivado",
    clk_freq=100_000_000,
    clock_gen="mmcm",
    params=ARTY_A7_PARAMS,
    baud=_BAUD,
    reset="rst",
    leds=(("led", 0), ("led", 1), ("led", 2)),
    programmer="arty_a7_35t",
    capacity=XC7A35T,
    description="512 int8 synaptic adds per cycle at 100 MHz (16 PEs x 16 lanes x 2 bit-planes "
                "per beat); 784-128-128-10 MLPs and the MNIST CNN fit.",
)

ARTY_A7_100 = BoardPreset(
    name="arty_a7_100",
    title="Digilent Arty A7-100T (xc7a100tcsg324-1)",
    platform="amaranth_boards.arty_a7:ArtyA7_100Platform",
    family="xc7",
    toolchain="Vivado",
    clk_freq=100_000_000,
    clock_gen="mmcm",
    # weight_depth 512: a 4,096-bit row 1,024 deep took 114 of the 135 RAMB36 (149 in all).
    # 16 firing units (one per lane; 8 before 2026-12-01): the MNIST CNN's first layer, bound
    # by its firing array with 8, runs 6,531 -> 4,865 cycles per image (cycle model); the
    # estimate goes from 29,369 to 38,244 LUTs (60.3 %). A queue of 32 blocks after the
    # fetcher (16 on the 35T): the walk on credits needs more than 16 for the CNN's first
    # layer, whose walk bounds it here (10,958 cycles per image with 16 on the RTL).
    params=CoreParams(n_pe=32, k=16, t_max=8, acc_bits=24, weight_depth=512, act_chunks=256,
                      bt_depth=2048, max_layers=16, batch_depth=16, fire_units=16,
                      in_blocks=2048, out_words=2048, planes_per_beat=2, fetch_queue=32,
                      seq_prefetch=1, pad_rows=1, fire_leak_mul=1, walk_replay=1),
    baud=_BAUD,
    reset="rst",
    leds=(("led", 0), ("led", 1), ("led", 2)),
    programmer="arty_a7_100t",
    capacity=XC7A100T,
    description="Twice the 35T's array (32 PEs x 16 lanes x 2 bit-planes per beat: 1,024 adds "
                "per cycle) and twice its weight memory.",
)
