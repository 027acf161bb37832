"""Firing unit: Horner doubling, bias and serial MSB-first firing (SpikePack) or LIF/IF steps.

Takes the per-plane sums ``P[slot]`` of one output neuron (slot ``q`` = bit ``q`` of the packed
word, so time step ``t`` is slot ``T - t``) and produces its packed output word.

SpikePack mode (tau = 2)::

    u = 0;  for q = T-1 .. 0:  u = 2 u + P[q]   (+ bias on the last step)      -- T cycles
    r = u;  for t = 1 .. T: th = theta 2^(T-t); s_t = [r >= th]; r -= s_t th   -- T cycles

LIF/IF mode, one cycle per time step (``k = leak``; ``k = 0`` means no leak)::

    v = v - (v >>> k) + P[T-t] + bias;  s_t = [v >= theta];  v = v - theta or 0 if s_t

``>>>`` is an arithmetic shift (floor for negative ``v``), as in ``sim.golden``. A readout layer
returns the membrane (``u`` or the last ``v``) and does not fire. No multiplier, no divider.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3 (serial firing); ../shared/DESIGN.md numerics.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FireUnit", "fire_config_layout", "fire_input_layout", "fire_output_layout"]


def fire_config_layout(t_max: int):
    """Layer settings a firing unit holds constant during a layer."""
    return data.StructLayout({
        "T": range(t_max + 1), "lif": 1, "readout": 1, "reset_zero": 1, "leak": 4,
    })


def fire_input_layout(t_max: int, acc_bits: int):
    return data.StructLayout({
        "sums": data.ArrayLayout(signed(acc_bits), t_max),
        "bias": signed(acc_bits),
        "theta": unsigned(acc_bits),
    })


def fire_output_layout(t_max: int, acc_bits: int):
    return data.StructLayout({
        "word": t_max,  # packed spikes, bit T - t = spike at step t
        "v": signed(acc_bits),  # membrane (the output of a readout layer)
        "spikes": range(t_max + 1),  # 1-bits in word
    })


class FireUnit(wiring.Component):
    """Post-processing of one neuron: per-plane sums in, packed spike word (or membrane) out.

    Parameters
    ----------
    t_max : int
        Largest ``T``.
    acc_bits : int
        Signed width of the sums, bias, membrane; ``theta`` is unsigned of this width.

    Members
    -------
    config : In(fire_config_layout(t_max))
        ``T`` (1..t_max), ``lif``, ``readout``, ``reset_zero``, ``leak``; held during a layer.
    i : In(stream.Signature(fire_input_layout(t_max, acc_bits)))
    o : Out(stream.Signature(fire_output_layout(t_max, acc_bits)))
        One result per input, :meth:`latency` cycles after the input was accepted.
    """

    def __init__(self, t_max: int, acc_bits: int):
        self._t_max = operator.index(t_max)
        self._acc_bits = operator.index(acc_bits)
        if self._t_max < 1 or self._acc_bits < 2:
            raise ValueError("t_max must be >= 1 and acc_bits >= 2")
        super().__init__({
            "config": In(fire_config_layout(self._t_max)),
            "i": In(stream.Signature(fire_input_layout(self._t_max, self._acc_bits))),
            "o": Out(stream.Signature(fire_output_layout(self._t_max, self._acc_bits))),
        })

    @property
    def t_max(self) -> int:
        return self._t_max

    @staticmethod
    def latency(T: int, lif: bool, readout: bool) -> int:
        """Cycles from accepting an input to ``o.valid``: SpikePack ``T`` (+ ``T`` to fire),
        LIF ``T``; plus one to present the result."""
        if lif:
            return T + 1
        return T + (0 if readout else T) + 1

    def elaborate(self, platform):
        m = Module()
        acc, t_max = self._acc_bits, self._t_max
        cfg = self.config
        sums = Array(Signal(signed(acc), name=f"p{q}") for q in range(t_max))
        bias = Signal(signed(acc))
        theta = Signal(unsigned(acc))
        th = Signal(unsigned(acc + t_max))  # theta 2^(T-t) for the serial firing
        u = Signal(signed(acc))  # Horner sum, then residual / LIF membrane
        q = Signal(range(t_max))
        word = Signal(t_max)
        count = Signal(range(t_max + 1))
        m.d.comb += [
            self.o.payload.word.eq(word),
            self.o.payload.v.eq(u),
            self.o.payload.spikes.eq(count),
        ]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [
                        Cat(*sums).eq(self.i.payload.sums),
                        bias.eq(self.i.payload.bias),
                        theta.eq(self.i.payload.theta),
                        th.eq(self.i.payload.theta),
                        u.eq(0),
                        q.eq(cfg.T - 1),
                        word.eq(0),
                        count.eq(0),
                    ]
                    with m.If(cfg.lif):
                        m.next = "LIF"
                    with m.Else():
                        m.next = "HORNER"
            with m.State("HORNER"):
                add_bias = Mux(q == 0, bias, 0)
                m.d.sync += [
                    u.eq((u << 1) + sums[q] + add_bias),
                    th.eq(Mux(q == cfg.T - 1, th, th << 1)),
                    q.eq(q - 1),
                ]
                with m.If(q == 0):
                    m.d.sync += q.eq(cfg.T - 1)
                    with m.If(cfg.readout):
                        m.next = "OUT"
                    with m.Else():
                        m.next = "FIRE"
            with m.State("FIRE"):
                s = u >= th
                m.d.sync += [
                    u.eq(u - Mux(s, th, 0)),
                    th.eq(th >> 1),
                    word.eq(Cat(s, word)),
                    count.eq(count + s),
                    q.eq(q - 1),
                ]
                with m.If(q == 0):
                    m.next = "OUT"
            with m.State("LIF"):
                leaked = Mux(cfg.leak == 0, u, u - (u >> cfg.leak))
                v = Signal(signed(acc))
                m.d.comb += v.eq(leaked + sums[q] + bias)
                s = ~cfg.readout & (v >= theta)
                m.d.sync += [
                    u.eq(Mux(s, Mux(cfg.reset_zero, 0, v - theta), v)),
                    word.eq(Cat(s, word)),
                    count.eq(count + s),
                    q.eq(q - 1),
                ]
                with m.If(q == 0):
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m
