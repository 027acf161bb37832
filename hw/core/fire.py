"""Firing unit: Horner doubling, bias and serial MSB-first firing (SpikePack) or LIF/IF steps.

Takes the per-plane sums ``P[slot]`` of one output neuron, one per beat, most significant slot
first (slot ``q`` = bit ``q`` of the packed word, so time step ``t`` is slot ``T - t``), and
produces its packed output word, spike count and membrane.

SpikePack mode (tau = 2), a neuron every ``T`` cycles::

    u = P[T-1];  for q = T-2 .. 0:  u = 2 u + P[q]          -- T beats, one per cycle
    v = u + bias                                            -- the cycle after the last beat
    r = v;  for t = 1 .. T: th = theta 2^(T-t); s_t = [r >= th]; r -= s_t th   -- T cycles

The firing of one neuron overlaps the Horner sum of the next, and the next neuron's ``r = v``
is loaded in the cycle of this one's last firing step (whose residual goes to the result), so
the beats of consecutive neurons follow each other with no free cycle.

SpikePack mode two planes at a time (``pairs``, the builds with two bit-planes per beat, whose
banks hold a pair of planes per word), a neuron every ``n`` cycles, ``n = ceil(T / 2)``::

    u = w[n-1];  for s = n-2 .. 0:  u = 4 u + w[s]           -- n beats, w[s] = 2 P[2s+1] + P[2s]
    v = u + bias                                             -- the cycle after
    r = v;  for j = n-1 .. 0:  th = theta 4^j;  d = [r >= th] + [r >= 2 th] + [r >= 3 th];
            r -= d th;  two bits d of the word                -- n cycles

(for an odd ``T`` the first firing step is one bit, ``d = [r >= th]``). A radix-4 step is
exactly two binary steps (saturation included: ``r >= 4 th`` gives ``d = 3`` and leaves
``r >= th`` for the next step, as the two binary steps leave it), so the word and the residual
are the same; the three compares are side by side, each against a threshold register of its own.

LIF/IF mode, one beat every 3 cycles (``k = leak``; ``k = 0`` means no leak)::

    v = v - (v >>> k) + (P[T-t] + bias);  s_t = [v >= theta'];  v = v - theta or 0 if s_t

where ``theta' = theta + fire_above - (theta >>> k if compare_leaked else 0)`` (``fire_above``:
spike when ``v > theta``; ``compare_leaked``: against the threshold after a leak; the reset
still subtracts ``theta``), worked out in the two cycles between a neuron's first beat and its
first compare; the compare is one subtractor as without it, and a copy of that subtractor gives
the subtracted membrane.

``>>>`` is an arithmetic shift (floor for negative ``v``), as in ``sim.golden.model``. A readout
layer returns the membrane (``v``, or the last ``v`` in LIF) and does not fire. No divider, and
no multiplier unless ``leak_mul`` asks for one: then the leaked membrane and ``theta'`` are each
one multiply-add, ``x - (x >>> k) = ceil(x (1 - 2^-k)) = (x c + 2^16 - 1) >>> 16`` with
``c = 2^16 - 2^(16-k)`` (exact for ``k`` <= 15; ``c = 2^16`` for ``k = 0``), which synthesis
puts in a DSP slice's multiplier and post-adder instead of a barrel shifter and a subtractor of
LUTs. Every cycle does at most one add or compare of the membrane's width in sequence
(``pairs``: three compares side by side).

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3 (serial firing); docs/numerics.md "A SpikePack layer".
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common.synth_hints import COPY_ATTRS

__all__ = ["FireUnit", "fire_config_layout", "fire_beat_layout", "fire_output_layout",
           "LIF_BEAT_CYCLES", "leak_scale", "leaked"]

#: Cycles between LIF beats: (leak and P + bias), membrane, fire.
LIF_BEAT_CYCLES = 3


def leak_scale(leak):
    """``c = 2^16 - 2^(16 - leak)`` (``2^16`` for ``leak = 0``, no leak), 17 bits: the scale with
    which :func:`leaked` gives ``x - (x >>> leak)``, for ``leak`` <= 15."""
    return Mux(leak == 0, 1 << 16, (1 << 16) - (Const(1 << 16, 17) >> leak))


def leaked(x, scale, add=0):
    """``ceil(x scale / 2^16) + add`` as one multiply-add and a fixed shift, for a DSP slice's
    multiplier and post-adder: ``x - (x >>> leak) + add`` with ``scale = leak_scale(leak)``
    (``x - (x >>> k) = ceil(x (1 - 2^-k))``), ``x + add`` with ``scale = 2^16``."""
    return (x * scale + (0xFFFF + (add << 16))) >> 16


def fire_config_layout(t_max: int):
    """Layer settings a firing unit holds constant during a layer."""
    return data.StructLayout({
        "T": range(t_max + 1), "lif": 1, "readout": 1, "reset_zero": 1, "leak": 4,
        "fire_above": 1, "compare_leaked": 1,
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
    neuron's ``T`` beats on consecutive cycles, the next neuron's first beat ``T`` cycles after
    this one's, or later; with ``pairs`` ``ceil(T / 2)`` beats of pair sums, and
    ``ceil(T / 2)``; LIF: one beat every :data:`LIF_BEAT_CYCLES` cycles, a neuron every
    ``3 T``), and
    each result is valid for one cycle, :meth:`latency` cycles after the neuron's first beat.

    Parameters
    ----------
    t_max : int
        Largest ``T``.
    sum_bits : int
        Signed width of a per-plane sum.
    acc_bits : int
        Signed width of the membrane and the bias; ``theta`` is unsigned, below ``2^(acc_bits-1)``.
    lif : bool
        Build the LIF/IF mode too (else ``config.lif`` is ignored and the LIF datapath, its leak
        shifter and its operand selects are left out).
    pairs : bool
        SpikePack layers take two planes per beat: beat ``s`` (``ceil(T / 2) - 1`` .. 0) brings
        ``w[s] = 2 P[2s+1] + P[2s]`` (``P[T] = 0`` for an odd ``T``) and the firing makes two
        bits per cycle. LIF layers still take one plane per beat.
    leak_mul : bool
        With ``lif``: the leaked membrane ``v - (v >>> leak)`` and the compare's ``theta'`` as
        one multiply-add each (two DSP slices; the same results and cycles as the shifters and
        subtractors they replace).

    Members
    -------
    config : In(fire_config_layout(t_max))
        ``T`` (1..t_max), ``lif``, ``readout``, ``reset_zero``, ``leak``, ``fire_above`` (LIF:
        spike when ``v > theta``), ``compare_leaked`` (LIF: compare against
        ``theta - (theta >>> leak)``); held during a layer
        and set at least one cycle before its first beat (the unit registers it).
    i : In(stream.Signature(fire_beat_layout(sum_bits, acc_bits), always_ready=True))
    o : Out(stream.Signature(fire_output_layout(t_max, acc_bits), always_ready=True))
    """

    def __init__(self, t_max: int, sum_bits: int, acc_bits: int, lif: bool = True,
                 pairs: bool = False, leak_mul: bool = False):
        self._lif = bool(lif)
        self._pairs = bool(pairs)
        self._leak_mul = bool(leak_mul) and self._lif
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

    @property
    def has_lif(self) -> bool:
        return self._lif

    @property
    def pairs(self) -> bool:
        return self._pairs

    @staticmethod
    def beats(T: int, lif: bool, pairs: bool = False) -> int:
        """Beats of one neuron: ``T``, or ``ceil(T / 2)`` for a SpikePack layer with ``pairs``."""
        return (T + 1) // 2 if pairs and not lif else T

    @staticmethod
    def period(T: int, lif: bool, pairs: bool = False) -> int:
        """Cycles from one neuron's first beat to the next neuron's first beat."""
        return LIF_BEAT_CYCLES * T if lif else FireUnit.beats(T, lif, pairs)

    @staticmethod
    def beat_offsets(T: int, lif: bool, pairs: bool = False) -> list[int]:
        """Cycles of a neuron's beats (slots from the most significant) after its first beat."""
        step = LIF_BEAT_CYCLES if lif else 1
        return [step * j for j in range(FireUnit.beats(T, lif, pairs))]

    @staticmethod
    def latency(T: int, lif: bool, readout: bool, pairs: bool = False) -> int:
        """Cycles from a neuron's first beat to its result's ``o.valid``."""
        if lif:
            return LIF_BEAT_CYCLES * T
        n = FireUnit.beats(T, lif, pairs)
        return n + 1 if readout else 2 * n + 1

    def elaborate(self, platform):
        m = Module()
        acc, t_max = self._acc_bits, self._t_max
        pairs = self._pairs
        shift = 2 if pairs else 1  # Horner: planes per beat
        beat = self.i.payload
        # The layer's settings, registered here (they are steady during a layer, so the first
        # beat may come a cycle after they are set): every multiplexer of the datapath hangs on
        # ``lif``, and a copy per unit (kept apart by synthesis, ``hw.common.synth_hints``) keeps
        # that fan-out short and local. The flags the datapath tests are decoded here too.
        def copy(name, shape=1):
            return Signal(shape, name=f"cfg_{name}", reset_less=True, attrs=COPY_ATTRS)
        T, readout = copy("T", range(t_max + 1)), copy("readout")
        m.d.sync += [T.eq(self.config.T), readout.eq(self.config.readout)]
        lif = copy("lif")
        lif_reset_zero = copy("lif_reset_zero")  # LIF, reset to 0 on a spike
        leak, no_leak = copy("leak", 4), copy("no_leak")
        above = copy("lif_fire_above")  # LIF, compare against theta + 1
        cmp_leak = copy("lif_compare_leaked")  # LIF with a leak, compare against the leaked theta
        if self._lif:
            m.d.sync += [lif.eq(self.config.lif),
                         above.eq(self.config.lif & self.config.fire_above),
                         cmp_leak.eq(self.config.lif & self.config.compare_leaked
                                     & (self.config.leak != 0)),
                         lif_reset_zero.eq(self.config.lif & self.config.reset_zero),
                         leak.eq(self.config.leak), no_leak.eq(self.config.leak == 0)]
        if self._leak_mul:
            # The scales of :func:`leaked`, registered with the layer's settings: ``leak_c`` for
            # the membrane; ``th_scale`` the same for a compare against the leaked theta, else
            # 2^16 (theta itself; ``leak_scale`` is 2^16 for leak 0 too, as ``cmp_leak`` wants).
            leak_c = copy("leak_c", unsigned(17))
            th_scale = copy("leak_th_scale", unsigned(17))
            c_next = leak_scale(self.config.leak)
            m.d.sync += [leak_c.eq(c_next),
                         th_scale.eq(Mux(self.config.compare_leaked, c_next, 1 << 16))]
        take = self.i.valid
        p = Signal(signed(acc))
        m.d.comb += p.eq(beat.sum)

        bias = Signal(signed(acc))
        with m.If(take & beat.first):
            m.d.sync += bias.eq(beat.bias)
        bias_now = Mux(beat.first, beat.bias, bias)

        # One datapath for both modes: four adders (A..D) around four registers, and a leaked
        # membrane register of LIF's own.
        #   register  SpikePack                       LIF
        #   u         Horner sum                      x = P + bias
        #   th_h      theta 2^(T-1), built by Horner  -
        #   lk        -                               leaked membrane v - (v >>> k)
        #   r         residual being fired            membrane v
        #   th_f      theta 2^(T-t) of the firing     -
        th_bits = acc + t_max - 1
        u = Signal(signed(acc))
        th_h = Signal(unsigned(th_bits))
        r = Signal(signed(acc))
        # The leak's copy of r (LIF: D reads the membrane through a shifter and a carry chain
        # into lk): its own flip-flops, placed by that logic, not by r's other loads (on the
        # ULX3S the path from r ran 3.3 ns of routing across the chip).
        r_leak = Signal(signed(acc), name="r_leak", attrs=COPY_ATTRS) if self._lif else r

        def set_r(value):
            """``r`` (and its leak copy) := ``value``."""
            return [r.eq(value)] + ([r_leak.eq(value)] if self._lif else [])
        th_f = Signal(unsigned(th_bits))
        lk = Signal(signed(acc), name="lk")

        # A: u = 2 u + P (Horner; u = P on a first beat; pairs: 4 u + w) or u = P + bias (LIF).
        add_a = Mux(lif, bias_now, Mux(beat.first, 0, u << shift)) + p
        # B: v = u + bias (SpikePack, after the last beat) or v = x + leaked (LIF).
        add_b = Signal(signed(acc))
        m.d.comb += add_b.eq(u + Mux(lif, lk, bias))
        # C: r - threshold, the firing compare; C': the same subtraction for the membrane a
        # spike leaves. Each threshold has a register of its own, loaded with whatever the
        # mode's is next (SpikePack: th_f's low bits in both, with ``pairs`` twice them in C''s,
        # the radix-4 step's second compare; LIF: theta' in C's, worked out below, and the
        # neuron's theta in C''s), so no mode multiplexer sits in front of either carry chain,
        # and the spike and the membrane take the paths they take without C'.
        big = ~lif & th_f[acc - 1:].any()  # 2^(acc-1) or more is above any membrane
        c_theta = Signal(unsigned(acc))
        add_c = Signal(signed(acc + 1))
        m.d.comb += add_c.eq(r - c_theta)
        if self._lif or pairs:
            s_theta = Signal(unsigned(acc))
            add_s = Signal(signed(acc + 1))
            m.d.comb += add_s.eq(r - s_theta)
            if self._lif:
                with m.If(take & beat.first & lif):
                    m.d.sync += s_theta.eq(beat.theta)
        else:
            s_theta, add_s = Signal(unsigned(acc)), add_c  # s_theta unused
        # D: leak (LIF): v - (v >>> k); k = 0 is no leak, and a neuron's first beat starts from
        # 0. Both choices sit in front of the subtractor (0 - 0), none behind it: the
        # difference goes straight into lk (the ULX3S's critical path was this leak, from
        # ``cfg_leak`` or ``r_leak`` through the shifter and the subtractor, when it also went
        # through th_h's mode multiplexer).
        if self._lif:
            if self._leak_mul:
                add_d = leaked(Mux(beat.first, 0, r_leak), leak_c)
            else:
                add_d = (Mux(beat.first, 0, r_leak)
                         - Mux(beat.first | no_leak, 0, r_leak >> leak))
            with m.If(take & lif):
                m.d.sync += lk.eq(add_d)

        with m.If(take):
            m.d.sync += u.eq(add_a)
            with m.If(beat.first):
                m.d.sync += th_h.eq(beat.theta)
            with m.Else():
                m.d.sync += th_h.eq(th_h << shift)

        # Result register, valid for one cycle.
        result = self.o.payload
        m.d.sync += self.o.valid.eq(0)
        word = Signal(t_max)
        count = Signal(range(t_max + 1))
        fire = Signal()  # C fires this cycle
        s = Signal()  # the spike it makes
        # pairs: a radix-4 step, d = s + s2 + s3 (s3 implies s2 implies s), two bits of the word.
        if pairs:
            digit = Signal()  # this step makes two bits (else one: an odd T's first)
            s2, s3 = Signal(), Signal()
            # The compares against 2 theta 4^j (C', whose register holds it in SpikePack) and
            # 3 theta 4^j (its own subtractor, from a SpikePack-only threshold register), beside
            # C: no mode multiplexer in front of any of them.
            th3_f = Signal(unsigned(th_bits + 2))  # 3 theta 4^j
            add_c3 = Signal(signed(acc + 1))
            m.d.comb += add_c3.eq(r - th3_f[:acc - 1])
            r_sub = Mux(s3, add_c3, Mux(s2 | lif, add_s, add_c))
            d0 = s3 | (s & ~s2)  # the digit's low bit (s alone when not a digit)
            word_next = Mux(digit, Cat(d0, s2, word), Cat(s, word))
            count_next = count + d0 + s2
        else:
            r_sub = add_s
            word_next = Cat(s, word)
            count_next = count + s
        r_fired = Mux(s, Mux(lif_reset_zero, 0, r_sub), r)
        ends = Signal()  # ... and it is the neuron's last step
        with m.If(fire):
            m.d.sync += [*set_r(r_fired), word.eq(word_next), count.eq(count_next)]
            with m.If(ends):
                m.d.sync += [self.o.valid.eq(1), result.word.eq(word_next),
                             result.spikes.eq(count_next), result.v.eq(r_fired)]

        # --- SpikePack: after the last beat, v = u + bias; then T firing steps -----------------
        # A neuron's firing steps run while the next neuron's beats arrive, and the next
        # neuron's v = u + bias may be loaded in the cycle of this neuron's last step: that
        # step's compares read r and the thresholds before the load and make the result (word,
        # count, residual); the load then wins r, word, count and the threshold registers.
        to_bias = Signal()
        steps = Signal(range(t_max + 1))  # firing steps left
        half = Signal()  # pairs, an odd T: the next step is the first, a single bit
        m.d.sync += to_bias.eq(take & beat.last & ~lif)
        with m.If(~lif & (steps != 0)):
            m.d.comb += [fire.eq(1), s.eq(~big & ~add_c[-1]), ends.eq(steps == 1)]
            if pairs:
                big2 = th_f[acc - 2:].any()  # 2 theta 4^j is above any membrane
                big3 = th3_f[acc - 1:].any()
                m.d.comb += [digit.eq(~half), s2.eq(~half & ~big2 & ~add_s[-1]),
                             s3.eq(~half & ~big3 & ~add_c3[-1])]
        with m.If(to_bias):
            with m.If(readout):
                m.d.sync += [self.o.valid.eq(1), result.v.eq(add_b), result.word.eq(0),
                             result.spikes.eq(0)]
            with m.Else():
                # pairs: th_h = theta 4^(n-1), the first step's weight for either parity of T.
                m.d.sync += [*set_r(add_b), th_f.eq(th_h), c_theta.eq(th_h[:acc - 1]),
                             # (pairs: 2 theta 4^j; it matters only below 2^(acc-1), big2)
                             s_theta.eq(Cat(Const(0, 1), th_h[:acc - 1]) if pairs
                                        else th_h[:acc - 1]),
                             steps.eq((T + 1) >> 1 if pairs else T), word.eq(0), count.eq(0)]
                if pairs:
                    m.d.sync += [half.eq(T[0]), th3_f.eq(th_h + (th_h << 1))]
        with m.Elif(~lif & (steps != 0)):
            if pairs:
                m.d.sync += [th_f.eq(th_f >> 2), c_theta.eq(th_f[2:acc + 1]),
                             s_theta.eq(Cat(Const(0, 1), th_f[2:acc + 1])),
                             th3_f.eq(th3_f >> 2), half.eq(0),
                             steps.eq(steps - 1)]
            else:
                m.d.sync += [th_f.eq(th_f >> 1), c_theta.eq(th_f[1:acc]),
                             s_theta.eq(th_f[1:acc]), steps.eq(steps - 1)]

        if not self._lif:
            return m
        # --- LIF/IF: beat (A, D), then v = x + leaked (B), then fire (C) ------------------------
        lif_b = Signal()
        lif_c = Signal()
        lif_last = Signal()
        m.d.sync += [lif_b.eq(take & lif), lif_c.eq(lif_b)]
        with m.If(take & lif):
            m.d.sync += lif_last.eq(beat.last)
            with m.If(beat.first):
                m.d.sync += [word.eq(0), count.eq(0)]
        with m.If(lif_b):
            m.d.sync += set_r(add_b)
        # C's LIF threshold theta' = theta + fire_above (- theta >>> k) is worked out off the
        # membrane's path, in the two cycles from a neuron's first beat to its first compare:
        # the shift in the first (beside the + fire_above), the subtraction in the second (a
        # shifter in front of that carry chain set the ULX3S's critical path, 94.9 MHz).
        # With ``leak_mul`` the whole of theta' is one multiply-add in the first cycle
        # (``leaked``), and the second only moves it into C's threshold register.
        if self._leak_mul:
            e_theta = Signal(unsigned(acc), reset_less=True)
            with m.If(take & beat.first & lif):
                m.d.sync += e_theta.eq(leaked(beat.theta, th_scale, above))
            with m.If(lif_b):
                m.d.sync += c_theta.eq(e_theta)
        else:
            e_shift = Signal(unsigned(acc), reset_less=True)
            e_above = Signal(unsigned(acc), reset_less=True)
            with m.If(take & beat.first & lif):
                m.d.sync += [e_shift.eq(Mux(cmp_leak, beat.theta >> leak, 0)),
                             e_above.eq(beat.theta + above)]
            with m.If(lif_b):
                m.d.sync += c_theta.eq(e_above - e_shift)
        with m.If(lif_c):
            m.d.comb += [fire.eq(1), s.eq(~readout & ~add_c[-1]), ends.eq(lif_last)]
        return m
