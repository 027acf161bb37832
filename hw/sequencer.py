"""Layer sequencer: runs a batch through the program of layer descriptors, keeps the counters.

For each sample ``b`` of the batch and each layer ``l`` (until the descriptor with ``last``): read
descriptor ``l`` (2 cycles), check it, start the fetcher and clear the per-layer counters, wait
until the writer has stored every pass of the layer, then add the layer's cycles, output spikes and
skipped zero plane-chunks into the counters of layer ``l``. Layer 0 reads the sample's input
blocks; layer ``l`` writes ping-pong half ``l % 2`` of the activation memory and layer ``l + 1``
reads it; the last layer writes the sample's output words.

Layer overhead: 4 cycles of sequencing plus the pipeline fill/drain of the datapath.
"""

from __future__ import annotations

import enum

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .memory_map import DESCRIPTOR_WORDS, descriptor_layout
from .params import CoreParams

__all__ = ["ErrorCode", "Sequencer"]


class ErrorCode(enum.IntEnum):
    """``REG_STATUS`` bits 8..15 after a run ended with the error bit set."""

    NONE = 0
    BAD_BATCH = 1  #: batch size 0 or above batch_depth
    BAD_T = 2  #: T = 0 or T > t_max
    BAD_SIZE = 3  #: chunks/passes/n_out/bias rows outside the build
    BAD_KIND = 4  #: layer kind not implemented (only dense)
    NO_LAST = 5  #: max_layers descriptors without a last layer


class Sequencer(wiring.Component):
    """Batch and layer control of :class:`hw.core.SpikePackCore`.

    Parameters
    ----------
    params : CoreParams

    Members
    -------
    start : In(1)
        Pulse: run ``batch`` samples (ignored while busy).
    batch : In(16)
    desc_addr : Out, desc_data : In(256)
        Descriptor memory read port (data the cycle after the address).
    layer : Out(descriptor_layout())
        The current layer's descriptor (held during the layer).
    src_is_input, src_base, dst_base, out_base, fetch_start, clear : Out
        Per-layer datapath set-up; ``fetch_start``/``clear`` pulse at layer start.
    passes_done, spikes, skipped : In
        Writer pass count, writer spike count, issuer skip count of the running layer.
    busy, done, error, error_code : Out
        Status (``done``/``error`` hold until the next start).
    cycles, layer_spikes, layer_skipped : Out(ArrayLayout(32, max_layers))
        Counters per layer, summed over the batch; ``total_cycles`` for the whole run.
    """

    def __init__(self, params: CoreParams):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        p = params
        counters = data.ArrayLayout(32, p.max_layers)
        super().__init__({
            "start": In(1),
            "batch": In(16),
            "desc_addr": Out(range(p.max_layers)),
            "desc_data": In(32 * DESCRIPTOR_WORDS),
            "layer": Out(descriptor_layout()),
            "src_is_input": Out(1),
            "src_base": Out(range(max(p.batch_depth, 2) * p.act_chunks)),
            "dst_base": Out(range(2 * p.act_chunks)),
            "out_base": Out(range(p.batch_depth * p.max_neurons)),
            "fetch_start": Out(1),
            "clear": Out(1),
            "passes_done": In(16),
            "spikes": In(32),
            "skipped": In(32),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(8),
            "cycles": Out(counters),
            "layer_spikes": Out(counters),
            "layer_skipped": Out(counters),
            "total_cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lyr = Signal(range(p.max_layers))
        sample = Signal(16)
        batch = Signal(16)
        in_base = Signal.like(self.src_base)
        layer_cycles = Signal(32)
        d = self.layer

        m.d.comb += [
            self.desc_addr.eq(lyr),
            self.src_is_input.eq(lyr == 0),
            self.dst_base.eq(lyr[0] * p.act_chunks),
        ]
        with m.If(lyr == 0):
            m.d.comb += self.src_base.eq(in_base)
        with m.Else():
            m.d.comb += self.src_base.eq((~lyr[0]) * p.act_chunks)

        with m.If(self.busy):
            m.d.sync += [self.total_cycles.eq(self.total_cycles + 1),
                         layer_cycles.eq(layer_cycles + 1)]

        def fail(code):
            m.d.sync += [self.busy.eq(0), self.error.eq(1), self.error_code.eq(code)]
            m.next = "IDLE"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.done.eq(0), self.error.eq(0), self.error_code.eq(0),
                                 self.total_cycles.eq(0)]
                    for arr in (self.cycles, self.layer_spikes, self.layer_skipped):
                        m.d.sync += arr.eq(0)
                    with m.If((self.batch == 0) | (self.batch > p.batch_depth)):
                        fail(ErrorCode.BAD_BATCH)
                    with m.Else():
                        m.d.sync += [self.busy.eq(1), batch.eq(self.batch), sample.eq(0),
                                     in_base.eq(0), self.out_base.eq(0), lyr.eq(0),
                                     layer_cycles.eq(0)]
                        m.next = "DESC"
            with m.State("DESC"):
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += d.eq(self.desc_data)
                dd = data.View(descriptor_layout(), self.desc_data)
                max_passes = p.max_passes
                with m.If(dd.kind != 0):
                    fail(ErrorCode.BAD_KIND)
                with m.Elif((dd.T == 0) | (dd.T > p.t_max)):
                    fail(ErrorCode.BAD_T)
                with m.Elif((dd.chunks == 0) | (dd.chunks > p.act_chunks) | (dd.passes == 0)
                            | (dd.passes > max_passes)
                            | (dd.n_out > (dd.passes << (p.n_pe.bit_length() - 1)))
                            | (dd.n_out + p.n_pe <= (dd.passes << (p.n_pe.bit_length() - 1)))
                            | (dd.bt_base + dd.passes > p.bt_rows)):
                    fail(ErrorCode.BAD_SIZE)
                with m.Else():
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [self.fetch_start.eq(1), self.clear.eq(1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(self.passes_done == d.passes):
                    m.next = "ACC"
            with m.State("ACC"):
                m.d.sync += [
                    self.cycles[lyr].eq(self.cycles[lyr] + layer_cycles + 1),
                    self.layer_spikes[lyr].eq(self.layer_spikes[lyr] + self.spikes),
                    self.layer_skipped[lyr].eq(self.layer_skipped[lyr] + self.skipped),
                    layer_cycles.eq(0),
                ]
                with m.If(d.last):
                    with m.If(sample + 1 == batch):
                        m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [sample.eq(sample + 1), lyr.eq(0),
                                     in_base.eq(in_base + p.act_chunks),
                                     self.out_base.eq(self.out_base + p.max_neurons)]
                        m.next = "DESC"
                with m.Elif(lyr == p.max_layers - 1):
                    fail(ErrorCode.NO_LAST)
                with m.Else():
                    m.d.sync += lyr.eq(lyr + 1)
                    m.next = "DESC"
        return m
