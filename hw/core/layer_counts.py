"""Widths of the per-layer pass and event counters that the fetcher, the writer and the sequencer
share (a conv layer's passes repeat per output position, so its counters are wider)."""

from __future__ import annotations

from hw.contract.params import CoreParams

__all__ = ["MAX_SIDE", "layer_passes_bits", "layer_count_bits"]

#: Largest conv map side (the descriptor's 8-bit ``in_h``, ``in_w``, ``conv_h``, ``conv_w``).
MAX_SIDE = 255


def layer_passes_bits(params: CoreParams) -> int:
    """Bits of a count of the datapath passes of one layer: a conv layer runs ``passes`` per
    output position, up to ``MAX_SIDE ** 2`` positions (a dense-only build: ``max_passes``)."""
    positions = MAX_SIDE * MAX_SIDE if params.conv else 1
    return (positions * params.max_passes).bit_length()


def layer_count_bits(params: CoreParams, per_pass: int) -> int:
    """Bits of a per-layer counter that grows by at most ``per_pass`` per pass (32 when conv
    layers run: their passes repeat per position)."""
    return 32 if params.conv else (params.max_passes * per_pass).bit_length()
