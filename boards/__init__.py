"""Board presets: which FPGA board, clock, UART, accelerator size and toolchain a build uses.

Every supported board has one module here defining one or more :class:`BoardPreset` objects;
:data:`BOARDS` maps the name given to ``python -m hw.build --board`` to its preset. See
docs/boards.md for how to add a board.
"""

from __future__ import annotations

import dataclasses

from hw.contract.params import CoreParams

from . import arty_a7, icebreaker, ulx3s
from .core_presets import MEDIUM, SMALL, SMALL2, SMALL2_PLANE_FIRE, SMALL2_REPLAY, SMALL4
from .preset import BoardPreset, DeviceCapacity

__all__ = ["DeviceCapacity", "BoardPreset", "BOARDS", "CORE_PRESETS", "SMALL", "MEDIUM",
           "get_board", "board_names"]


#: Every buildable board by its ``--board`` name.
BOARDS: dict[str, BoardPreset] = {p.name: p for p in (
    arty_a7.ARTY_A7_35, arty_a7.ARTY_A7_100, ulx3s.ULX3S_85F, icebreaker.ICEBREAKER)}

#: Core builds by name (``spikepack compile --board small``): the board-less sizes (``small2``:
#: ``small`` with two bit-planes per beat; ``small2_plane_fire``: and one plane a cycle in the
#: firing units; ``small2_replay``: and the walk replaying a position's non-empty blocks;
#: ``small4``: that with four bit-planes per beat), the
#: Arty A7-35T's, A7-100T's and ULX3S's cores, the 35T's with one bit-plane per beat and the ULX3S's
#: with two.
CORE_PRESETS: dict[str, CoreParams] = {
    "small": SMALL, "small2": SMALL2, "small2_plane_fire": SMALL2_PLANE_FIRE,
    "small2_replay": SMALL2_REPLAY, "small4": SMALL4, "medium": MEDIUM,
    "arty_a7": BOARDS["arty_a7"].params, "arty_a7_100": BOARDS["arty_a7_100"].params,
    "ulx3s": BOARDS["ulx3s"].params,
    # The Arty A7-35T's core with one bit-plane per beat, the skid buffer after the fetcher and
    # the full walk (256 adds/cycle, the design before planes_per_beat = 2), for benchmarks
    # that print the two side by side.
    "arty_a7_1plane": dataclasses.replace(BOARDS["arty_a7"].params, planes_per_beat=1,
                                          fetch_queue=0, walk_replay=0),
    # The ULX3S's core with two bit-planes per beat (512 adds/cycle), the preset until
    # 2026-12-03 (four since), for the same benchmarks
    # (its memories: 64-block feature-map halves, and 4 firing units, as the ULX3S preset had
    # until 2026-12-04).
    "ulx3s_2plane": dataclasses.replace(BOARDS["ulx3s"].params, planes_per_beat=2,
                                        pe_control_copies=0, act_chunks=64, in_blocks=0,
                                        out_words=0, fire_units=4, walk_skid=0)}


def board_names() -> list[str]:
    return sorted(BOARDS)


def get_board(name: str) -> BoardPreset:
    """The preset called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board {name!r}; known boards: {', '.join(board_names())}") \
            from None
