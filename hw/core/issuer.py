"""Plane issuer: turns spike blocks into PE beats, one non-zero bit-plane chunk per cycle.

A block holds ``t_max`` bit-planes of one chunk of ``k`` input neurons (plane slot ``q`` in bits
``q*k .. q*k+k-1``); the fetcher marks which planes below ``T`` hold a spike, and counts them.
The issuer sends, one per cycle, only the planes with ``q < T`` that have a spike, each with the
block's weight row (held for every plane: weight reuse up to ``T`` times). An all-zero plane costs
no cycle; the fetcher sends no block without a spike unless it ends a pass (one presented anyway
would be dropped in the cycle it is presented). If the block that ends a pass has no spike, one
empty beat carries the end-of-pass flag.

``i.ready`` depends only on registers (the mark count, the planes issued so far) and ``o.ready``:
the fetcher's memory enables never wait on the data they read.

With two planes per beat (``CoreParams.planes_per_beat = 2``) the unit is a *beat slot*, the
pair of planes ``2 s, 2 s + 1`` (``2 k`` contiguous bits of the block): the fetcher marks the
pairs below ``T`` with a spike and zeroes the planes at or above ``T``, and the issuer sends one
beat per marked pair, exactly as it sends one per plane otherwise.

The skip counter is the fetcher's (``hw.core.fetcher.Fetcher.skipped``): it sees every block
read, sent or not. A shortcut block's beats carry its ``res`` flag and ``group`` to the PE
array.

Latency: combinational (a beat leaves in the cycle its block is presented).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.contract.params import CoreParams

from .fetcher import block_beat_layout, lowest_one
from .pe import beat_layout

__all__ = ["PlaneIssuer"]


class PlaneIssuer(wiring.Component):
    """Zero-skipping bit-plane issuer.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    i : In(stream.Signature(block_beat_layout(params)))
    o : Out(stream.Signature(beat_layout(k, t_max, weight_depth, n_pe // k)))
    """

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        super().__init__({
            "i": In(stream.Signature(block_beat_layout(params))),
            "o": Out(stream.Signature(beat_layout(params.k, params.t_max, params.weight_depth,
                                                  params.chunks_per_pass,
                                                  params.planes_per_beat))),
        })

    latency = 0

    def elaborate(self, platform):
        m = Module()
        p = self._params
        # A beat slot (``planes_per_beat`` planes, plane-major in the block) is issued as one
        # beat; with one plane per beat a slot is a plane.
        width, slots = p.k * p.planes_per_beat, p.beat_slots
        block = self.i.payload.block
        planes = [block[q * width:(q + 1) * width] for q in range(slots)]
        nonzero = self.i.payload.nonzero  # beat slots below T with a spike
        done = Signal(slots)  # planes of the current block already issued
        issued_p1 = Signal(range(slots + 2), init=1)  # planes issued + 1
        pending = Signal(slots)
        m.d.comb += pending.eq(nonzero & ~done)
        # The plane to issue (the lowest pending one, 0 when none) comes from registers: the
        # fetcher's ``first`` for a block's first plane, then ``next_sel``, found as the plane
        # before it is issued. (The issuer's handshake with the fetcher's skid buffer, across
        # the chip, then starts at registers.)
        fresh = Signal(init=1)  # no plane of the presented block issued yet
        next_sel = Signal(range(slots))
        sel = Signal(range(slots))
        m.d.comb += sel.eq(Mux(fresh, self.i.payload.first, next_sel))
        # Whether the plane to issue is the block's last, from registers too: the fetcher's
        # ``single`` for a block's first plane, then ``last_next``.
        last_next = Signal()
        only_one = Signal()
        m.d.comb += only_one.eq(Mux(fresh, self.i.payload.single, last_next))

        # One multiplexer level on ``sel`` (no priority chain): with no plane pending, ``sel`` is
        # 0 and plane 0 (below T) holds no spike, so an empty end-of-pass beat carries zeros.
        m.d.comb += [
            self.o.payload.row.eq(self.i.payload.row),
            self.o.payload.res.eq(self.i.payload.res),
            self.o.payload.group.eq(self.i.payload.group),
            self.o.payload.slot.eq(sel),
            self.o.payload.spikes.eq(Array(planes)[sel]),
        ]

        with m.If(self.i.valid):
            with m.If(self.i.payload.count != 0):
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.last.eq(self.i.payload.last & only_one),
                ]
                with m.If(self.o.ready):
                    with m.If(only_one):
                        m.d.comb += self.i.ready.eq(1)
                        m.d.sync += [done.eq(0), issued_p1.eq(1), fresh.eq(1)]
                    with m.Else():
                        # ``sel`` is the lowest pending plane: found again here from registers,
                        # not taken from ``sel`` (whose multiplexer sits with the beat's spikes,
                        # near the PE array).
                        issued, rest = Signal(slots), Signal(slots)
                        m.d.comb += [issued.eq(1 << lowest_one(pending)[1]),
                                     rest.eq(pending & ~issued)]
                        m.d.sync += [done.eq(done | issued), issued_p1.eq(issued_p1 + 1),
                                     fresh.eq(0),
                                     next_sel.eq(lowest_one(rest)[1]),
                                     last_next.eq(issued_p1 + 1 == self.i.payload.count)]
            with m.Elif(self.i.payload.last):
                # A pass must end even if its last block is empty: one beat with no spikes.
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.last.eq(1),
                    self.i.ready.eq(self.o.ready),
                ]
            with m.Else():
                m.d.comb += self.i.ready.eq(1)

        return m
