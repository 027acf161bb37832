"""Test fixture, not product code: a bus slave standing in for the core in host-link tests.

:class:`BusRam` answers ``hw.contract.bus`` like a slow core: a RAM at ``REGIONS_BASE``, the
identify magic at ``ID_BASE``, ``REG_CONTROL``/``REG_STATUS`` with a run that stays busy for
``run_cycles`` per sample. It stalls requests and delays responses pseudo-randomly (an LFSR), so the
link meets back-pressure in RTL simulation too. ``writes`` counts accepted write requests, which
lets a test prove that refused frames changed nothing.

:class:`LinkTestTop` is ``HostLink`` + ``BusRam`` with ``rx``/``tx`` pins, the device the cocotb
link tests and the link benchmark talk to.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.contract.bus import ID_BASE, ID_MAGIC, REG_CONTROL, REG_STATUS, REGIONS_BASE, BusSignature
from hw.contract.registers import CONTROL_ABORT, CONTROL_BATCH_SHIFT, CONTROL_START
from hw.link.host_link import HostLink


class BusRam(wiring.Component):
    """Fixture bus slave (see module docstring).

    Parameters
    ----------
    depth : int
        RAM words at ``REGIONS_BASE`` (power of two).
    run_cycles : int
        Busy cycles per sample of a run.
    stall : bool
        Stall requests and delay responses at random.
    """

    bus: In(BusSignature)
    writes: Out(32)

    def __init__(self, *, depth=1024, run_cycles=200, stall=True):
        self._depth, self._run_cycles, self._stall = depth, run_cycles, stall
        super().__init__()

    @property
    def addr_limit(self):
        return REGIONS_BASE + self._depth

    def elaborate(self, platform):
        m = Module()
        req, resp = self.bus.req, self.bus.resp

        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        stall_req = Signal()
        hold_resp = Signal()
        if self._stall:
            m.d.comb += [stall_req.eq(lfsr[0] & lfsr[7]), hold_resp.eq(lfsr[3] | lfsr[11])]

        m.submodules.mem = mem = Memory(shape=32, depth=self._depth, init=[])
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=32, depth=4)

        busy, done, left = Signal(), Signal(), Signal(32)
        with m.If(busy):
            m.d.sync += left.eq(left - 1)
            with m.If(left == 0):
                m.d.sync += [busy.eq(0), done.eq(1)]

        # One read may be on its way into the FIFO: accept only with room for it.
        pending, pending_ram, pending_word = Signal(), Signal(), Signal(32)
        m.d.comb += req.ready.eq(~stall_req & (fifo.level < 2))
        fire = req.valid & req.ready
        offset = req.payload.addr - REGIONS_BASE
        in_ram = (req.payload.addr >= REGIONS_BASE) & (req.payload.addr < self.addr_limit)
        m.d.comb += [rp.addr.eq(offset), wp.addr.eq(offset), wp.data.eq(req.payload.data)]
        m.d.sync += pending.eq(fire & ~req.payload.write)
        with m.If(fire):
            with m.If(req.payload.write):
                m.d.sync += self.writes.eq(self.writes + 1)
                with m.If(in_ram):
                    m.d.comb += wp.en.eq(1)
                with m.If(req.payload.addr == REG_CONTROL):
                    with m.If(req.payload.data & CONTROL_ABORT):
                        m.d.sync += [busy.eq(0), done.eq(0)]
                    with m.Elif((req.payload.data & CONTROL_START) & ~busy):
                        batch = req.payload.data[CONTROL_BATCH_SHIFT:]
                        m.d.sync += [busy.eq(1), done.eq(0),
                                     left.eq(batch * self._run_cycles)]
            with m.Else():
                m.d.sync += pending_ram.eq(in_ram)
                with m.If(req.payload.addr == ID_BASE):
                    m.d.sync += pending_word.eq(ID_MAGIC)
                with m.Elif(req.payload.addr == REG_STATUS):
                    m.d.sync += pending_word.eq(Cat(busy, done))
                with m.Else():
                    m.d.sync += pending_word.eq(0)
        m.d.comb += [
            fifo.w_en.eq(pending),
            fifo.w_data.eq(Const(0, 32)),
        ]
        with m.If(pending_ram):
            m.d.comb += fifo.w_data.eq(rp.data)
        with m.Else():
            m.d.comb += fifo.w_data.eq(pending_word)

        # Responses: held back at random, but once offered, kept until taken.
        offered = Signal()
        with m.If(fifo.r_rdy & ~hold_resp):
            m.d.sync += offered.eq(1)
        with m.If(resp.valid & resp.ready):
            m.d.sync += offered.eq(0)
        m.d.comb += [
            resp.valid.eq(offered & fifo.r_rdy),
            resp.payload.eq(fifo.r_data),
            fifo.r_en.eq(resp.valid & resp.ready),
        ]
        return m


class LinkTestTop(wiring.Component):
    """``HostLink`` wired to a :class:`BusRam` (fixture), pins ``rx``/``tx``, ``writes`` counter."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    writes: Out(32)

    def __init__(self, *, clk_freq, baud, max_payload=1024, idle_timeout=None, depth=1024,
                 run_cycles=200, run_timeout=None, stall=True):
        self.ram = BusRam(depth=depth, run_cycles=run_cycles, stall=stall)
        self.link = HostLink(clk_freq=clk_freq, baud=baud, max_payload=max_payload,
                             idle_timeout=idle_timeout, run_timeout=run_timeout,
                             addr_limit=self.ram.addr_limit)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.submodules.ram = self.ram
        wiring.connect(m, self.link.bus, self.ram.bus)
        m.d.comb += [self.link.rx.eq(self.rx), self.tx.eq(self.link.tx),
                     self.writes.eq(self.ram.writes)]
        return m
