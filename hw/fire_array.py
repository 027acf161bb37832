"""The firing array: one :class:`hw.fire.FireUnit` per PE, in lockstep.

Takes the per-plane sums of the ``n_pe`` neurons of one pass (from :class:`hw.pe_array.PEArray`)
with their biases and thresholds, and returns their packed words, membranes and spike counts. All
units share the layer configuration (same ``T`` and mode), so they finish together; the array
exposes unit 0's handshake. While the units fire pass ``p``, the PE array already accumulates
pass ``p + 1``.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, signed, unsigned
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
    """``n_pe`` firing units sharing one configuration.

    Parameters
    ----------
    n_pe, t_max, acc_bits : int

    Members
    -------
    config : In(fire_config_layout(t_max))
    i : In(stream.Signature(fire_array_input_layout(n_pe, t_max, acc_bits)))
    o : Out(stream.Signature(fire_array_output_layout(n_pe, t_max, acc_bits)))
        ``o.payload[n]`` is unit ``n``'s word, membrane and spike count,
        :meth:`latency` cycles after the input was accepted.
    """

    def __init__(self, n_pe: int, t_max: int, acc_bits: int):
        self._n_pe = operator.index(n_pe)
        if self._n_pe < 1:
            raise ValueError(f"n_pe must be at least 1, not {n_pe}")
        self._units = [FireUnit(t_max, acc_bits) for _ in range(self._n_pe)]
        super().__init__({
            "config": In(fire_config_layout(t_max)),
            "i": In(stream.Signature(fire_array_input_layout(self._n_pe, t_max, acc_bits))),
            "o": Out(stream.Signature(fire_array_output_layout(self._n_pe, t_max, acc_bits))),
        })

    @property
    def n_pe(self) -> int:
        return self._n_pe

    latency = staticmethod(FireUnit.latency)

    def elaborate(self, platform):
        m = Module()
        for n, unit in enumerate(self._units):
            m.submodules[f"unit{n}"] = unit
            m.d.comb += [
                unit.config.eq(self.config),
                unit.i.valid.eq(self.i.valid),
                unit.i.payload.sums.eq(self.i.payload.sums[n]),
                unit.i.payload.bias.eq(self.i.payload.bias[n]),
                unit.i.payload.theta.eq(self.i.payload.theta[n]),
                unit.o.ready.eq(self.o.ready),
                self.o.payload[n].eq(unit.o.payload),
            ]
        m.d.comb += [
            self.i.ready.eq(self._units[0].i.ready),
            self.o.valid.eq(self._units[0].o.valid),
        ]
        return m
