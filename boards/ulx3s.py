"""Radiona ULX3S with the LFE5U-85F (Lattice ECP5; yosys + nextpnr-ecp5 + ecppack, all from PyPI).

The 25 MHz oscillator feeds an EHXPLLL (``hw.platform.clocks_ecp5``) that makes the accelerator
clock; the FT231X is the host UART (resource ``uart``); LEDs D0..D2 show heartbeat, host activity
and run.
"""

from hw.contract.params import CoreParams

from .preset import BoardPreset, DeviceCapacity

__all__ = ["LFE5U_85F", "ULX3S_85F"]

# Ref: Lattice FPGA-DS-02012 (ECP5 family data sheet), Table 1.1: LUTs, EBR blocks of 18 Kbit,
# distributed RAM (Kbit), 18x18 multipliers.
LFE5U_85F = DeviceCapacity(device="LFE5U-85F", luts=83_640, ffs=83_640, brams=208, dsps=156,
                           ram_bits=208 * 18 * 1024 + 669 * 1024)

ULX3S_85F = BoardPreset(
    name="ulx3s",
    title="Radiona ULX3S 85F (LFE5U-85F-6BG381C)",
    platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
    family="ecp5",
    toolchain="Trellis",
    clk_freq=100_000_000,
    clock_gen="ecp5_pll",
    # The Arty A7-35T's array, with conv layers (the conv walk and the pooling writer) and,
    # since 2026-12-04, the Arty's feature-map memory: 256-block ping-pong halves, 1,024 input
    # blocks and 1,024 output words, so that the same bitstream runs the MNIST MLP and the
    # MNIST CNN (its 1x28x28 image, folded, is 784 input blocks). The spike memory is then three
    # banks of block RAM, each with its output register and the bank multiplexer after them
    # (``hw.core.fetcher.spike_banks``). Until then the memories were no deeper than one block
    # RAM (64-block halves, 256 input blocks), the CNN did not fit, and the preset had more
    # timing margin (below). Conv at 100 MHz took the layer settings reaching
    # each block through a registered copy of its own (docs/boards.md). Two bit-planes per beat
    # (512 adds per cycle) took the conv walk and each datapath block reading registered copies
    # of their handshake and abort (100.4 MHz). Its firing units fire a pair of planes a cycle,
    # as the Arty's (before each datapath block had a reset of its own, pair firing gave 91.4,
    # 81.8 and 91.8 MHz on seeds 1-3, and the preset fired one plane a cycle). The weight
    # memory's write port is registered (``weight_write_reg``): with pair firing and without
    # it the bus write into the weight memory limited seeds 1 and 2 (95.8 and 100.2 MHz). A
    # queue of 16 spike blocks (LUT RAM) follows the fetcher, as on the Arty (``fetch_queue``).
    # Its walk replays, after a position's first pass, only the blocks that pass found with a
    # spike (``walk_replay``: a list of 64 chunks in LUT RAM; the Arty A7-35T has no LUTs left
    # for it). Four bit-planes per beat (1,024 adds per cycle: four adder trees per PE on one
    # weight register, the block RAM of two planes) since 2026-12-03, with each PE's bank
    # control on registers of its own and the fetch queue's two output registers
    # (``pe_control_copies``); until then two planes per beat (512 adds per cycle, core preset
    # ``ulx3s_2plane``), which met 100 MHz without the placer setting below. Eight firing
    # units since 2026-12-04 (four before, as the Arty's), so the MNIST CNN's first layer is
    # bound by its walk, not by its firing (12,220 cycles an image, not 14,718); with them the
    # hand-over of the walk's positions limited three seeds (90.8-97.1 MHz) until the walk's
    # position generator advanced on a skid register of its own (``walk_skid``).
    params=CoreParams(n_pe=16, k=16, t_max=8, acc_bits=24, weight_depth=512, act_chunks=256,
                      in_blocks=1024, out_words=1024, bt_depth=1024, max_layers=16,
                      batch_depth=4, fire_units=8, conv=1,
                      planes_per_beat=4, weight_write_reg=1, fetch_queue=16, seq_prefetch=1,
                      walk_replay=1, pe_control_copies=1, pad_rows=1, walk_skid=1),
    # nextpnr's placement seed and placer setting, pinned so that every build places the same
    # way. With four planes per beat (14,000 more cells than two) the default placer left the
    # handshakes between the fetch queue, the issuer and the sequencer spread over the chip
    # (88.6-91.7 MHz on five builds); a heavier timing weight in the analytic placer
    # (``--placer-heap-timingweight 40``, nextpnr's default 10) gives on this netlist
    # (2026-12-03, the fetch queue's two output registers) seed 2 **100.90 MHz** (critical
    # path the firing array's read select into a unit's input sum, 7.3 ns of routing) and seed 1
    # 92.39 (the fetch queue's count into its ready, 7.7 ns of routing): placement moves this
    # design by about 9 %, and `--seed N` / `--nextpnr-opts` try others. With two planes the
    # preset met 100 MHz on the default placer (101.97 MHz, seed 1). With the one-block-RAM
    # memories and the fetch queue's push at the count's last multiplexer, seed 2 gave 109.13
    # MHz (2026-12-04). With the feature-map memory (2026-12-04): seed 3 **100.28 MHz**, met
    # (critical path a firing unit's LIF step count into its leak, 7.76 ns of routing); seed 2
    # 96.84 (a firing unit's compare into its output, 6.76 ns of routing), seed 1 93.42 (the
    # sequencer's fetch_start into the conv walk's set-up, 9.28 ns of routing). With the walk
    # padding a folded layer's rows (``pad_rows``, 2026-12-04) seed 3 gave 97.90 and seeds 1, 2,
    # 4 96.27, 95.23, 96.46; seed 5 **101.57 MHz** (the walk's empty-position flag into its
    # row pointer, 7.39 ns of routing), the preset's since. With 8 firing units and the walk's
    # skid register (2026-12-04) seed 5 gives **103.53 MHz** (the walk's replay flags into its
    # kernel row count, 7.32 ns of routing) and seed 1 98.19 (the spike memory's third bank
    # into the walk's record flag).
    nextpnr_seed=5,
    nextpnr_options=("--placer-heap-timingweight", "40"),
    # The FT231X runs 3 Mbaud at most; 100 MHz / 3 Mbaud = 33.3 clocks per bit (1 % error).
    baud=3_000_000,
    leds=(("led", 0), ("led", 1), ("led", 2)),
    programmer="ulx3s",
    capacity=LFE5U_85F,
    description="16 PEs x 16 lanes x 4 bit-planes per beat (1,024 adds per cycle) at 100 MHz, "
                "128 K weights, 4096-neuron "
                "layers, conv layers with 256-block feature-map halves and 1,024 input blocks "
                "(the MNIST CNN fits): the Arty A7-35T's array with four planes a beat, on open "
                "tools.",
)
