"""What synthesis may assume about the design's memories, as yosys commands.

Amaranth marks every synchronous read port "read-old-data on collision": a read of the word that a
write port writes in the same cycle returns the old word. Block RAMs across their two ports (ECP5
``DP16KD``/``PDPW16KD``, iCE40 ``SB_RAM40_4K``, 7-series in simple dual port) leave that case
undefined, so yosys emulates it with a register and a multiplexer per data bit between the RAM
and everything it feeds: on the ULX3S preset that is 2,048 flip-flops and LUTs on the weight
memory alone, and the multiplexer sits on the design's critical path.

The memories in :data:`COLLISION_FREE_MEMORIES` never *use* the word read in the cycle it is
written, so the collision may stay undefined (yosys ``COLLISION_X_MASK``):

* ``w_mem``, ``bt_mem``, ``desc_mem`` (weights, biases and thresholds, program): written only by
  the host, which must not write them while the core runs (``hw.core.core`` bus contract); reads
  while idle are discarded.
* ``spk_mem``: the writer writes the half of the ping-pong pair the fetcher does not read, and a
  layer starts only after the previous one is written; INPUT writes wait while the core runs.
* ``bank`` (each PE): the read-modify-write forwards the word being written
  (``hw.core.pe``), and the firing array reads only the complete half, which nothing writes.
* ``out_mem``, ``cnt_mem`` (outputs, counters): the core writes them while it runs, the host reads
  them when the run is done (reads while busy are undefined by the bus contract); the
  sequencer's counter update reads and writes different counters in any one cycle.
* ``frame_mem`` (frame decoder): the decoder writes the half that no queued frame holds.

Each has exactly one write port (``tests/hw/build/test_synth_hints.py`` checks the names and the
ports against the elaborated design). Simulation keeps Amaranth's read-old semantics, which is one
of the behaviours the hardware may show; the design never depends on which.

Register copies: some blocks keep their own copy of a value another block registers too (each
firing unit registers the layer's settings, so the selects of its multiplexers hang on a register
beside it, not on one register that fans out across the chip). yosys merges flip-flops with equal
inputs into one, which would undo that; a signal made with :data:`COPY_ATTRS` keeps its own
flip-flops (:func:`copy_hints` sets ``keep`` on them).
"""

from __future__ import annotations

__all__ = ["COLLISION_FREE_MEMORIES", "COPY_ATTRS", "collision_hints", "copy_hints",
           "synthesis_hints"]

#: ``Signal(..., attrs=COPY_ATTRS)``: a register that must stay a copy of its own.
COPY_ATTRS = {"spikepack_copy": 1}

COLLISION_FREE_MEMORIES = ("w_mem", "bt_mem", "desc_mem", "spk_mem", "out_mem", "cnt_mem", "bank",
                           "frame_mem")


def collision_hints() -> str:
    """Yosys commands (one a line) marking the synchronous read ports of
    :data:`COLLISION_FREE_MEMORIES` collision-undefined (an asynchronous read port, as a PE's
    bank has for the firing side where it picks part of a word, has no collision to leave
    undefined, and yosys refuses the mark on it). Run them on ``$memrd_v2`` cells, before
    ``memory_collect``."""
    return "\n".join(
        f"setparam -set COLLISION_X_MASK 1'1 t:$memrd_v2 r:MEMID=\\{name} %i "
        f"r:CLK_ENABLE=1 %i"
        for name in COLLISION_FREE_MEMORIES)


def copy_hints() -> str:
    """A yosys command marking ``keep`` the flip-flops of the signals made with
    :data:`COPY_ATTRS` (run on the design as read, before ``opt_merge``)."""
    (attr,) = COPY_ATTRS
    return f"setattr -set keep 1 a:{attr} %ci1:+$dff[Q] t:$dff %i"


def synthesis_hints() -> str:
    """All of this module's yosys commands, one a line."""
    return f"{collision_hints()}\n{copy_hints()}"
