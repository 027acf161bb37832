"""The firing array: ``units`` :class:`hw.fire.FireUnit` s shared by the ``n_pe`` neurons of a pass.

Takes the per-plane sums of the ``n_pe`` neurons of one pass (from :class:`hw.pe_array.PEArray`)
with their biases and thresholds, and returns their packed words, membranes and spike counts. The
units fire the pass in ``n_pe / units`` groups (unit ``f`` takes neuron ``g units + f`` in group
``g``); all units share the layer configuration (same ``T`` and mode), so they finish together and
the array follows unit 0's handshake. The input stays valid (held by the PE array's output
register) until the last group is taken; results are collected into an output register and sent
as one beat. While the units fire pass ``p``, the PE array already accumulates pass ``p + 1``.

Sharing trades firing time (``n_pe / units`` times the unit latency per pass, hidden behind the
accumulation of the next pass on layers with enough input chunks) for area.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .fire import FireUnit, fire_config_layout, fire_output_layout

__all__ = ["FireArray", "fire_array_input_layout", "fire_array_output_layout"]


def fire_array_input_layout(n_pe: int, t_max: int, acc_bits: int):
    return data.StructLayout({
        "sums": data.ArrayLayout(data.ArrayLayout(signed(acc_bits), t_max), n_pe),
        "bias": data.ArrayLayout(signed(acc_bits), n_pe),
        "theta": data.ArrayLayout(unsigned(acc_bits), n_pe),
    })


def fire_array_output_layout(n_pe: int, t_max: int, acc_bits: int):
    return data.ArrayLayout(fire_output_layout(t_max, acc_bits), n_pe)


class FireArray(wiring.Component):
    """Firing units shared by the ``n_pe`` neurons of a pass.

    Parameters
    ----------
    n_pe, t_max, acc_bits : int
    units : int
        Firing units (divides ``n_pe``; default ``n_pe``, one per PE).

    Members
    -------
    config : In(fire_config_layout(t_max))
    i : In(stream.Signature(fire_array_input_layout(n_pe, t_max, acc_bits)))
    o : Out(stream.Signature(fire_array_output_layout(n_pe, t_max, acc_bits)))
        ``o.payload[n]`` is neuron ``n``'s word, membrane and spike count; a pass takes
        :meth:`pass_cycles` cycles from input to output.
    """

    def __init__(self, n_pe: int, t_max: int, acc_bits: int, units: int | None = None):
        self._n_pe = operator.index(n_pe)
        self._n_units = self._n_pe if units is None else operator.index(units)
        if self._n_pe < 1:
            raise ValueError(f"n_pe must be at least 1, not {n_pe}")
        if self._n_units < 1 or self._n_pe % self._n_units:
            raise ValueError(f"units ({units}) must divide n_pe ({n_pe})")
        self._units = [FireUnit(t_max, acc_bits) for _ in range(self._n_units)]
        super().__init__({
            "config": In(fire_config_layout(t_max)),
            "i": In(stream.Signature(fire_array_input_layout(self._n_pe, t_max, acc_bits))),
            "o": Out(stream.Signature(fire_array_output_layout(self._n_pe, t_max, acc_bits))),
        })

    @property
    def n_pe(self) -> int:
        return self._n_pe

    @property
    def units(self) -> int:
        return self._n_units

    @property
    def groups(self) -> int:
        """Neurons each unit fires per pass."""
        return self._n_pe // self._n_units

    def pass_cycles(self, T: int, lif: bool, readout: bool) -> int:
        """Cycles from a pass's input to its output (no back-pressure)."""
        return self.groups * (FireUnit.latency(T, lif, readout) + 1)

    latency = staticmethod(FireUnit.latency)

    def elaborate(self, platform):
        m = Module()
        n_units, groups = self._n_units, self.groups
        feed = Signal(range(groups))  # group offered to the units
        take = Signal(range(groups))  # group whose results are collected next
        u0 = self._units[0]
        collect = u0.o.valid & ~self.o.valid
        for f, unit in enumerate(self._units):
            m.submodules[f"unit{f}"] = unit
            members = [g * n_units + f for g in range(groups)]
            sums = Array(self.i.payload.sums[n] for n in members)
            bias = Array(self.i.payload.bias[n] for n in members)
            theta = Array(self.i.payload.theta[n] for n in members)
            m.d.comb += [
                unit.config.eq(self.config),
                unit.i.valid.eq(self.i.valid),
                unit.i.payload.sums.eq(sums[feed]),
                unit.i.payload.bias.eq(bias[feed]),
                unit.i.payload.theta.eq(theta[feed]),
                unit.o.ready.eq(collect),
            ]
            with m.If(collect):
                for g, n in enumerate(members):
                    with m.If(take == g):
                        m.d.sync += self.o.payload[n].eq(unit.o.payload)
        with m.If(self.i.valid & u0.i.ready):
            m.d.sync += feed.eq(Mux(feed == groups - 1, 0, feed + 1))
            m.d.comb += self.i.ready.eq(feed == groups - 1)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(collect):
            m.d.sync += take.eq(Mux(take == groups - 1, 0, take + 1))
            with m.If(take == groups - 1):
                m.d.sync += self.o.valid.eq(1)
        return m
