"""Firing unit: Horner doubling, bias and serial MSB-first firing (SpikePack) or LIF/IF steps.

Takes the per-plane sums ``P[slot]`` of one output neuron, one per beat, most significant slot
first (slot ``q`` = bit ``q`` of the packed word, so time step ``t`` is slot ``T - t``), and
produces its packed output word, spike count and membrane.

SpikePack mode (tau = 2), a neuron every ``T + 1`` cycles::

    u = P[T-1];  for q = T-2 .. 0:  u = 2 u + P[q]          -- T beats, one per cycle
    v = u + bias                                            -- 1 cycle
    r = v;  for t = 1 .. T: th = theta 2^(T-t); s_t = [r >= th]; r -= s_t th   -- T cycles

The firing of one neuron overlaps the Horner sum of the next. LIF/IF mode, one beat every 3
cycles (``k = leak``; ``k = 0`` means no leak)::

    v = v - (v >>> k) + (P[T-t] + bias);  s_t = [v >= theta];  v = v - theta or 0 if s_t

``>>>`` is an arithmetic shift (floor for negative ``v``), as in ``sim.golden``. A readout layer
returns the membrane (``v``, or the last ``v`` in LIF) and does not fire. No multiplier, no divider;
every cycle does at most one add or compare of the membrane's width.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3 (serial firing); ../shared/DESIGN.md numerics.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FireUnit", "fire_config_layout", "fire_beat_layout", "fire_output_layout",
           "LIF_BEAT_CYCLES"]

#: Cycles between LIF beats: (leak and P + bias), membrane, fire.
LIF_BEAT_CYCLES = 3


def fire_config_layout(t_max: int):
    """Layer settings a firing unit holds constant during a layer."""
    return data.StructLayout({
        "T": range(t_max + 1), "lif": 1, "readout": 1, "reset_zero": 1, "leak": 4,
    })


def fire_beat_layout(sum_bits: int, acc_bits: int):
    """One beat: a per-plane sum; ``first`` beats also bring the neuron's bias and threshold."""
    return data.StructLayout({
        "sum": signed(sum_bits),
        "first": 1,
        "last": 1,
        "bias": signed(acc_bits),
        "theta": unsigned(acc_bits),
    })


def fire_output_layout(t_max: int, acc_bits: int):
    return data.StructLayout({
        "word": t_max,  # packed spikes, bit T - t = spike at step t
        "v": signed(acc_bits),  # membrane: the output of a readout layer (residual otherwise)
        "spikes": range(t_max + 1),  # 1-bits in word
    })


class FireUnit(wiring.Component):
    """Post-processing of one neuron at a time: per-plane sums in, packed word (or membrane) out.

    The unit never waits: beats must follow the schedule of :meth:`period` (SpikePack: a
    neuron's ``T`` beats on consecutive cycles, the next neuron's first beat ``T + 1`` cycles after
    this one's; LIF: one beat every :data:`LIF_BEAT_CYCLES` cycles, a neuron every ``3 T``), and
    each result is valid for one cycle, :meth:`latency` cycles after the neuron's first beat.

    Parameters
    ----------
    t_max : int
        Largest ``T``.
    sum_bits : int
        Signed width of a per-plane sum.
    acc_bits : int
        Signed width of the membrane and the bias; ``theta`` is unsigned, below ``2^(acc_bits-1)``.

    Members
    -------
    config : In(fire_config_layout(t_max))
        ``T`` (1..t_max), ``lif``, ``readout``, ``reset_zero``, ``leak``; held during a layer.
    i : In(stream.Signature(fire_beat_layout(sum_bits, acc_bits), always_ready=True))
    o : Out(stream.Signature(fire_output_layout(t_max, acc_bits), always_ready=True))
    """

    def __init__(self, t_max: int, sum_bits: int, acc_bits: int):
        self._t_max = operator.index(t_max)
        self._sum_bits = operator.index(sum_bits)
        self._acc_bits = operator.index(acc_bits)
        if self._t_max < 1 or self._acc_bits < 2:
            raise ValueError("t_max must be >= 1 and acc_bits >= 2")
        if not 2 <= self._sum_bits <= self._acc_bits:
            raise ValueError(f"sum_bits must be in 2..acc_bits, not {sum_bits}")
        super().__init__({
            "config": In(fire_config_layout(self._t_max)),
            "i": In(stream.Signature(fire_beat_layout(self._sum_bits, self._acc_bits),
                                     always_ready=True)),
            "o": Out(stream.Signature(fire_output_layout(self._t_max, self._acc_bits),
                                      always_ready=True)),
        })

    @property
    def t_max(self) -> int:
        return self._t_max

    @staticmethod
    def period(T: int, lif: bool) -> int:
        """Cycles from one neuron's first beat to the next neuron's first beat."""
        return LIF_BEAT_CYCLES * T if lif else T + 1

    @staticmethod
    def beat_offsets(T: int, lif: bool) -> list[int]:
        """Cycles of a neuron's beats (slots ``T-1 .. 0``) after its first beat."""
        step = LIF_BEAT_CYCLES if lif else 1
        return [step * j for j in range(T)]

    @staticmethod
    def latency(T: int, lif: bool, readout: bool) -> int:
        """Cycles from a neuron's first beat to its result's ``o.valid``."""
        if lif:
            return LIF_BEAT_CYCLES * T
        return T + 1 if readout else 2 * T + 1

    def elaborate(self, platform):
        m = Module()
        acc, t_max = self._acc_bits, self._t_max
        cfg, beat = self.config, self.i.payload
        take = self.i.valid
        p = Signal(signed(acc))
        m.d.comb += p.eq(beat.sum)

        bias = Signal(signed(acc))
        theta = Signal(unsigned(acc))
        with m.If(take & beat.first):
            m.d.sync += [bias.eq(beat.bias), theta.eq(beat.theta)]
        bias_now = Mux(beat.first, beat.bias, bias)

        # Result register, valid for one cycle.
        result = self.o.payload
        m.d.sync += self.o.valid.eq(0)

        # --- SpikePack: Horner sum ``u`` and threshold ``th_h = theta 2^(T-1)``, then + bias ---
        th_bits = acc + t_max - 1
        u = Signal(signed(acc))
        th_h = Signal(unsigned(th_bits))
        to_bias = Signal()  # the cycle after a neuron's last beat: v = u + bias
        m.d.sync += to_bias.eq(take & beat.last & ~cfg.lif)
        with m.If(take & ~cfg.lif):
            with m.If(beat.first):
                m.d.sync += [u.eq(p), th_h.eq(beat.theta)]
            with m.Else():
                m.d.sync += [u.eq((u << 1) + p), th_h.eq(th_h << 1)]

        # --- serial firing of ``r`` against ``th_f``, MSB first --------------------------------
        r = Signal(signed(acc))
        th_f = Signal(unsigned(th_bits))
        steps = Signal(range(t_max + 1))  # firing steps left
        word = Signal(t_max)
        count = Signal(range(t_max + 1))
        v = Signal(signed(acc))
        m.d.comb += v.eq(u + bias)
        with m.If(to_bias):
            with m.If(cfg.readout):
                m.d.sync += [self.o.valid.eq(1), result.v.eq(v), result.word.eq(0),
                             result.spikes.eq(0)]
            with m.Else():
                m.d.sync += [r.eq(v), th_f.eq(th_h), steps.eq(cfg.T), word.eq(0),
                             count.eq(0)]
        with m.Elif(steps != 0):
            # s = [r >= th_f]; a threshold of 2^(acc-1) or more is above any membrane.
            big = th_f[acc - 1:].any()
            diff = Signal(signed(acc + 1))
            m.d.comb += diff.eq(r - th_f[:acc - 1])
            s = ~big & ~diff[-1]
            r_next = Mux(s, diff, r)
            word_next = Cat(s, word)
            count_next = count + s
            m.d.sync += [r.eq(r_next), th_f.eq(th_f >> 1), word.eq(word_next),
                         count.eq(count_next), steps.eq(steps - 1)]
            with m.If(steps == 1):
                m.d.sync += [self.o.valid.eq(1), result.word.eq(word_next),
                             result.spikes.eq(count_next), result.v.eq(r_next)]

        # --- LIF/IF: three cycles per beat -----------------------------------------------------
        lv = Signal(signed(acc))  # membrane
        lk = Signal(signed(acc))  # leaked membrane
        x = Signal(signed(acc))  # P + bias
        lif_b = Signal()  # second cycle of a beat: add
        lif_c = Signal()  # third cycle: fire
        lif_last = Signal()
        lword = Signal(t_max)
        lcount = Signal(range(t_max + 1))
        m.d.sync += [lif_b.eq(take & cfg.lif), lif_c.eq(lif_b)]
        with m.If(take & cfg.lif):
            leaked = Mux(cfg.leak == 0, lv, lv - (lv >> cfg.leak))
            m.d.sync += [x.eq(p + bias_now), lk.eq(Mux(beat.first, 0, leaked)),
                         lif_last.eq(beat.last)]
            with m.If(beat.first):
                m.d.sync += [lword.eq(0), lcount.eq(0)]
        with m.If(lif_b):
            m.d.sync += lv.eq(lk + x)
        with m.If(lif_c):
            ldiff = Signal(signed(acc + 1))
            m.d.comb += ldiff.eq(lv - theta)
            ls = ~cfg.readout & ~ldiff[-1]
            lv_next = Mux(ls, Mux(cfg.reset_zero, 0, ldiff), lv)
            lword_next = Cat(ls, lword)
            lcount_next = lcount + ls
            m.d.sync += [lv.eq(lv_next), lword.eq(lword_next), lcount.eq(lcount_next)]
            with m.If(lif_last):
                m.d.sync += [self.o.valid.eq(1), result.word.eq(lword_next),
                             result.spikes.eq(lcount_next), result.v.eq(lv_next)]
        return m
