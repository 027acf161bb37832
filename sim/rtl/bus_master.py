"""A cocotb bus master for ``hw.contract.bus``: load images and run batches the way the host does.

The master drives ``bus.req`` and consumes ``bus.resp`` of a :class:`hw.core.core.SpikePackCore`
(Verilog ports ``bus__req__valid/ready/payload``, ``bus__resp__valid/ready/payload``). Optional
pause generators insert idle cycles between requests and deassert ``resp.ready`` at random, so
back-pressure is exercised in both directions.

Signals are sampled at the rising edge (the handshake that edge completes) and driven right
after it, as cocotbext-axi does.
"""

from __future__ import annotations

import random

import numpy as np
from cocotb.triggers import RisingEdge, Timer

from hw.contract import bus, registers
from sw.compile import program_image as img

ADDR_BITS, DATA_BITS = bus.ADDR_BITS, bus.DATA_BITS


class BusMaster:
    """Word-level master of the core bus.

    Parameters
    ----------
    dut : cocotb handle of the core toplevel.
    clock : the clock signal handle.
    period_ns : float
        Clock period, for waiting many cycles with one timer (cheaper than counting edges).
    stall : float
        Probability of an idle cycle before a request and of ``resp.ready`` low in a cycle.
    rng : random.Random
        Source of the stalls (seed it and log the seed).
    """

    def __init__(self, dut, clock, *, stall: float = 0.0, rng: random.Random | None = None,
                 period_ns: float = 10.0):
        self.dut, self.clock, self.period_ns = dut, clock, period_ns
        self.stall = stall
        self.rng = rng or random.Random(0)
        self.req_valid = dut.bus__req__valid
        self.req_ready = dut.bus__req__ready
        self.req_payload = dut.bus__req__payload
        self.resp_valid = dut.bus__resp__valid
        self.resp_ready = dut.bus__resp__ready
        self.resp_payload = dut.bus__resp__payload
        self.req_valid.value = 0
        self.resp_ready.value = 0
        self.requests = 0

    def _pause(self) -> bool:
        return self.stall > 0 and self.rng.random() < self.stall

    async def _request(self, addr: int, data: int, write: bool) -> None:
        while self._pause():
            self.req_valid.value = 0
            await RisingEdge(self.clock)
        payload = (addr & ((1 << ADDR_BITS) - 1)) | (data & 0xFFFFFFFF) << ADDR_BITS \
            | int(write) << (ADDR_BITS + DATA_BITS)
        self.req_payload.value = payload
        self.req_valid.value = 1
        while True:
            await RisingEdge(self.clock)
            if int(self.req_ready.value):
                break
        self.req_valid.value = 0
        self.requests += 1

    async def write(self, addr: int, words) -> None:
        """Write consecutive words from word address ``addr``."""
        for n, w in enumerate(words):
            await self._request(addr + n, int(w), True)

    async def read(self, addr: int, count: int = 1) -> list[int]:
        """Read ``count`` consecutive words from ``addr``."""
        out = []
        for n in range(count):
            await self._request(addr + n, 0, False)
            while True:
                self.resp_ready.value = 0 if self._pause() else 1
                await RisingEdge(self.clock)
                if int(self.resp_ready.value) and int(self.resp_valid.value):
                    out.append(int(self.resp_payload.value))
                    break
            self.resp_ready.value = 0
        return out

    async def load(self, writes) -> None:
        """Perform :class:`sw.compile.program_image.ImageWrite` s (a program image or an input
        batch)."""
        for w in writes:
            await self.write(w.addr, w.words)

    async def status(self) -> int:
        return (await self.read(bus.REG_STATUS))[0]

    async def start(self, batch: int) -> None:
        await self.write(bus.REG_CONTROL, [registers.control_word(batch)])

    async def abort(self) -> None:
        await self.write(bus.REG_CONTROL, [registers.control_word(0, start=False, abort=True)])

    async def wait_done(self, *, poll: int = 64, timeout: int = 10_000_000) -> int:
        """Poll ``REG_STATUS`` every ``poll`` cycles until not busy; return the status word."""
        waited = 0
        while True:
            st = await self.status()
            if not st & registers.STATUS_BUSY:
                return st
            await Timer(poll * self.period_ns, unit="ns")
            await RisingEdge(self.clock)
            waited += poll
            if waited > timeout:
                raise TimeoutError(f"core still busy after {timeout} cycles")

    async def run_batch(self, image: img.ProgramImage, x, *, poll: int = 64):
        """Write inputs ``x`` (shape ``(batch, n_in)``), run; return outputs, counters, status."""
        x = np.atleast_2d(x)
        await self.load(img.encode_inputs(image, x))
        await self.start(len(x))
        st = await self.wait_done(poll=poll)
        if st & registers.STATUS_ERROR:
            raise RuntimeError(f"core reported error code {(st >> 8) & 0xFF}")
        if not st & registers.STATUS_DONE:
            raise RuntimeError(f"core stopped without done (status {st:#x})")
        words = []
        for addr, count in img.output_addresses(image, len(x)):
            words += await self.read(addr, count)
        caddr, ccount = img.counter_range(image)
        counters = img.decode_counters(image, await self.read(caddr, ccount))
        return img.decode_outputs(image, words), counters, st
