"""The firing array: ``units`` :class:`hw.core.fire.FireUnit` s shared by the ``n_pe`` neurons of a
pass.

Reads the per-plane sums of a finished pass from the PE array's banks, one slot per read, most
significant slot first, and feeds them to the units together with each neuron's bias and
threshold. Unit ``f`` fires neuron ``g * units + f`` of the pass in *group* ``g``; the
``n_pe / units`` groups follow each other, every group reading one slot of all PEs per read (the
read address is shared, each unit picks its PE of the group). When the last read of a pass has
been issued, the pass's bank part is released and the PE array may fill it with pass
``p + bank_passes``; if the next pass is whole by then (``bank.next_ready``), its reads start in
the next cycle.

Per pass, a read of the bias/theta memory per group gives the ``units`` biases and thresholds of
the group (row ``(bt_base + pass) * groups + g``); the reads are issued by this block.

With two planes per bank word (``planes = 2``), a SpikePack layer reads a *pair* of planes per
read (slots ``2 s + 1, 2 s`` from the top pair down, ``ceil(T / 2)`` reads a neuron) and gives
its unit ``w = 2 P[2s+1] + P[2s]`` (:class:`hw.core.fire.FireUnit` with ``pairs``: two bits a
cycle), so a group takes ``ceil(T / 2)`` cycles instead of ``T``; a LIF layer still
reads one plane a beat (the half of the word its slot names). For an odd ``T`` the top pair's
high plane is plane ``T``, which holds 0: the fetcher zeroes the planes at or above ``T`` of
every block, so the PE array never adds anything to them.

Timing: reads are issued on the units' schedule (:meth:`hw.core.fire.FireUnit.period`); a sum
reaches its unit two cycles after its read (bank read, group select; with pairs the select and
the ``2 hi + lo`` in the second). The units never wait, and
neither does this block: ``o`` (one beat per group, all units' results) must always be accepted.
With ``out_reg`` the units' results reach ``o`` a cycle later, through a register of their own
(a unit's result register then stays beside the unit; the wire to the consumer has its cycle).
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fire import LIF_BEAT_CYCLES, FireUnit, fire_config_layout, fire_output_layout
from .pe_array import bank_read_signature

__all__ = ["FireArray", "fire_array_output_layout"]


def fire_array_output_layout(units: int, t_max: int, acc_bits: int):
    """One group's results: ``payload[f]`` is unit ``f``'s neuron."""
    return data.ArrayLayout(fire_output_layout(t_max, acc_bits), units)


class FireArray(wiring.Component):
    """Firing units shared by the ``n_pe`` neurons of a pass.

    Parameters
    ----------
    n_pe, t_max, sum_bits, acc_bits : int
    units : int
        Firing units (divides ``n_pe``).
    bt_rows : int
        Rows of the bias/theta memory (``units`` entries each).
    lif : bool
        The units run LIF/IF layers too (see :class:`hw.core.fire.FireUnit`).
    pool : bool
        Conv layers with max pooling run (``pool_log2`` is obeyed; else ignored).
    planes : int
        Planes per bank word (the PE array's ``planes``): 2 makes SpikePack layers read and
        fire a pair of planes a cycle.
    out_reg : bool
        Register ``o`` once more (:attr:`out_latency` 1).
    leak_mul : bool
        The units' LIF leak and leaked threshold as multiply-adds, for DSP slices
        (``FireUnit``'s ``leak_mul``).

    Members
    -------
    config : In(fire_config_layout(t_max))
        The layer's ``T`` and mode; held while the layer runs.
    clear : In(1)
        Layer start: the next pass is pass 0.
    bt_base : In(16)
        The layer's first bias/theta *pass* row (``n_pe`` entries per pass).
    passes : In(16)
        Passes per position (held during the layer): after the last, the bias/theta rows start
        again from ``bt_base`` (a conv layer's next output position; a dense layer has one).
    pool_log2 : In(2)
        Max pooling ``2^pool_log2``: each pass runs once per conv position of the pooling
        window (``4^pool_log2`` times in a row) with the same bias/theta row.
    bank : In(bank_read_signature(n_pe, t_max, sum_bits, planes))
        The PE array's banks.
    bt_addr : Out(range(bt_rows))
        Bias/theta memory read address; ``bias``/``theta`` hold row ``bt_addr`` one cycle later.
    bias, theta : In(ArrayLayout(signed / unsigned(acc_bits), units))
        The memory row (registered as it comes: block RAM outputs are slow).
    theta_layer : In(unsigned(acc_bits)), theta_per_channel : In(1)
        The layer's threshold, used instead of ``theta`` unless ``theta_per_channel``.
    o : Out(stream.Signature(fire_array_output_layout(units, t_max, acc_bits), always_ready=True))
        One beat per group, in order: groups of pass 0, then pass 1, ...
    """

    def __init__(self, n_pe: int, t_max: int, sum_bits: int, acc_bits: int, units: int,
                 bt_rows: int, lif: bool = True, pool: bool = True, planes: int = 1,
                 out_reg: bool = False, leak_mul: bool = False):
        self._n_pe = operator.index(n_pe)
        self._out_reg = bool(out_reg)
        self._n_units = operator.index(units)
        self._t_max = operator.index(t_max)
        self._acc_bits = operator.index(acc_bits)
        self._sum_bits = operator.index(sum_bits)
        self._bt_rows = operator.index(bt_rows)
        self._pool = bool(pool)
        if self._n_pe < 1:
            raise ValueError(f"n_pe must be at least 1, not {n_pe}")
        if self._n_units < 1 or self._n_pe % self._n_units:
            raise ValueError(f"units ({units}) must divide n_pe ({n_pe})")
        if self.groups & (self.groups - 1):
            raise ValueError(f"n_pe / units ({self.groups}) must be a power of two")
        self._lif = bool(lif)
        self._planes = operator.index(planes)
        if self._planes not in (1, 2):
            raise ValueError(f"planes must be 1 or 2, not {planes}")
        pairs = self._planes == 2
        # A unit's beat: a plane's sum, or 2 hi + lo of a pair (two bits wider).
        self._unit_sum_bits = self._sum_bits + (2 if pairs else 0)
        if self._unit_sum_bits > self._acc_bits:
            raise ValueError(f"acc_bits ({acc_bits}) must hold a pair's 2 hi + lo "
                             f"({self._unit_sum_bits} bits)")
        self._units = [FireUnit(self._t_max, self._unit_sum_bits, self._acc_bits, self._lif,
                                pairs=pairs, leak_mul=leak_mul)
                       for _ in range(self._n_units)]
        super().__init__({
            "config": In(fire_config_layout(self._t_max)),
            "clear": In(1),
            "bt_base": In(16),
            "passes": In(16),
            "pool_log2": In(2),
            "bank": In(bank_read_signature(self._n_pe, self._t_max, self._sum_bits,
                                           self._planes)),
            "bt_addr": Out(range(self._bt_rows)),
            "bias": In(data.ArrayLayout(signed(self._acc_bits), self._n_units)),
            "theta": In(data.ArrayLayout(unsigned(self._acc_bits), self._n_units)),
            "theta_layer": In(unsigned(self._acc_bits)),
            "theta_per_channel": In(1),
            "o": Out(stream.Signature(
                fire_array_output_layout(self._n_units, self._t_max, self._acc_bits),
                always_ready=True)),
        })

    @property
    def n_pe(self) -> int:
        return self._n_pe

    @property
    def units(self) -> int:
        return self._n_units

    @property
    def planes(self) -> int:
        return self._planes

    @property
    def groups(self) -> int:
        """Neurons each unit fires per pass."""
        return self._n_pe // self._n_units

    #: Cycles from a read to its sum at the unit (bank read, group select).
    READ_LATENCY = 2
    #: Cycles the ``out_reg`` register adds between the units' results and ``o``.
    OUT_REG_LATENCY = 1

    def pass_cycles(self, T: int, lif: bool) -> int:
        """Cycles from one pass's first read to the next's when the next pass is whole at the
        release (``bank.next_ready``): the reads of the pass's groups, the release in the last.
        Otherwise the array waits in IDLE for ``bank.ready`` and starts a cycle after it."""
        return self.groups * FireUnit.period(T, lif, self._planes == 2)

    @property
    def out_latency(self) -> int:
        """Cycles from a unit's result to ``o``: 1 with ``out_reg``, else 0."""
        return self.OUT_REG_LATENCY if self._out_reg else 0

    def latency(self, T: int, lif: bool, readout: bool) -> int:
        """Cycles from a group's first read to its results on ``o``."""
        return (self.READ_LATENCY + FireUnit.latency(T, lif, readout, self._planes == 2)
                + self.out_latency)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lif = cfg.lif if self._lif else Const(0)
        groups = self.groups
        g_bits = ceil_log2(groups)

        # --- read schedule -------------------------------------------------------------------
        g = Signal(range(groups))
        q = Signal(range(self._t_max))  # slot of this read (T-1 .. 0)
        phase = Signal(range(LIF_BEAT_CYCLES))  # LIF: cycles since the beat's read
        pas = Signal(range(self._bt_rows))  # pass of the position (only its bias rows matter)
        last_pas = Signal(range(self._bt_rows))  # passes - 1 (a conv layer's passes repeat)
        win = Signal(6)  # conv position within the pooling window (each runs the pass)
        last_win = Signal(6)  # 4^pool_log2 - 1
        m.d.sync += [last_pas.eq(self.passes - 1),
                     last_win.eq((1 << (self.pool_log2 << 1)) - 1)]
        reading = Signal()
        read = Signal()
        first = Signal()
        last = Signal()
        release = Signal()
        t_last = Signal(range(self._t_max))  # the first read's slot (T is held during a layer)
        pair = Signal() if self._planes == 2 else None  # this layer reads pairs of planes
        if pair is not None:
            m.d.comb += pair.eq(~lif)
            # T - 1, or with pairs the top pair's low slot (its high one is 0 for an odd T).
            m.d.sync += t_last.eq(Mux(pair, (cfg.T - 1) & ~1, cfg.T - 1))
        else:
            m.d.sync += t_last.eq(cfg.T - 1)
        m.d.comb += [
            self.bank.addr.eq(q),
            first.eq(q == t_last),
            last.eq(q == 0),
            self.bank.release.eq(release),
            self.bt_addr.eq(((self.bt_base + pas) << g_bits) | g),
        ]

        def first_group():
            """The next read is a pass's first: group 0 from slot T-1."""
            m.d.sync += [g.eq(0), q.eq(t_last), phase.eq(0)]

        def end_of_group():
            """The group's last read: release the bank after the last group and go on with the
            next pass if it is whole (else wait for it in IDLE); else the next group from slot
            T-1."""
            with m.If(g == groups - 1):
                m.d.comb += release.eq(1)
                if self._pool:
                    m.d.sync += win.eq(win + 1)
                    with m.If(win == last_win):
                        m.d.sync += [win.eq(0), pas.eq(Mux(pas == last_pas, 0, pas + 1))]
                else:
                    m.d.sync += pas.eq(Mux(pas == last_pas, 0, pas + 1))
                with m.If(self.bank.next_ready):
                    first_group()
                with m.Else():
                    m.next = "IDLE"
            with m.Else():
                m.d.sync += [g.eq(g + 1), q.eq(t_last)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.bank.ready):
                    first_group()
                    m.next = "READ"
            with m.State("READ"):
                # SpikePack: the reads of a pass's groups on consecutive cycles (a unit takes
                # the next neuron's beats while it fires the last one). LIF: a read every
                # LIF_BEAT_CYCLES cycles.
                m.d.comb += reading.eq(1)
                m.d.comb += read.eq(phase == 0)
                end_of_beat = ~lif | (phase == LIF_BEAT_CYCLES - 1)
                with m.If(lif):
                    m.d.sync += phase.eq(Mux(end_of_beat, 0, phase + 1))
                with m.If(end_of_beat):
                    with m.If(last):
                        end_of_group()
                    with m.Else():
                        m.d.sync += q.eq(q - (1 if pair is None else Mux(pair, 2, 1)))
        with m.If(self.clear):
            m.d.sync += [pas.eq(0), win.eq(0)]

        # --- two cycles to the units: bank read, then group select ----------------------------
        fields = {"valid": 1, "first": 1, "last": 1, "g": range(groups)}
        if self._planes == 2:
            fields["odd"] = 1  # the read's slot is a pair's high plane (LIF picks it)
        beat = data.StructLayout(fields)
        at_data = Signal(beat)  # the bank data of this read is on ``bank.data`` now
        at_unit = Signal(beat)
        m.d.sync += [
            at_data.valid.eq(reading & read), at_data.first.eq(first), at_data.last.eq(last),
            at_data.g.eq(g), at_unit.eq(at_data),
        ]
        if self._planes == 2:
            m.d.sync += at_data.odd.eq(q[0])
        # The units' sums: data, no reset (the units take them only with ``valid``), so their
        # only synchronous clear is ``bank.zero`` and the domain's reset does not reach them.
        sums = [Signal(signed(self._unit_sum_bits), name=f"sum{f}", reset_less=True)
                for f in range(self._n_units)]
        # The bias/theta memory's output, registered as it comes (no reset: the ECP5 flow moves
        # this register into the block RAM, ``hw.build.ecp5_outreg``).
        bias = Signal.like(self.bias, reset_less=True)
        theta = Signal.like(self.theta, reset_less=True)
        m.d.sync += [bias.eq(self.bias), theta.eq(self.theta)]
        valid = self._units[0].o.valid
        if self._out_reg:  # the results' register of their own (data: no reset)
            results = Signal.like(self.o.payload, name="results", reset_less=True)
            valid_q = Signal(name="results_valid")
            m.d.sync += valid_q.eq(valid)
            valid = valid_q
        for f, unit in enumerate(self._units):
            m.submodules[f"unit{f}"] = unit
            picked = Array(self.bank.data[gg * self._n_units + f] for gg in range(groups))[
                at_data.g]
            if self._planes == 2:
                lo, hi = picked[0], picked[1]
                value = Mux(pair, (hi << 1) + lo, Mux(at_data.odd, hi, lo))
            else:
                value = picked
            m.d.sync += sums[f].eq(Mux(self.bank.zero, 0, value))
            m.d.comb += [
                unit.config.eq(cfg),
                unit.i.valid.eq(at_unit.valid),
                unit.i.payload.sum.eq(sums[f]),
                unit.i.payload.first.eq(at_unit.first),
                unit.i.payload.last.eq(at_unit.last),
                unit.i.payload.bias.eq(bias[f]),
                unit.i.payload.theta.eq(Mux(self.theta_per_channel, theta[f],
                                            self.theta_layer)),
                self.o.payload[f].eq(results[f] if self._out_reg else unit.o.payload),
            ]
            if self._out_reg:
                m.d.sync += results[f].eq(unit.o.payload)
        m.d.comb += self.o.valid.eq(valid)
        return m
