"""The accelerator: the UART host link in front of the SpikePack core."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.contract.memory_map import memory_map
from hw.contract.params import CoreParams
from hw.core.core import SpikePackCore
from hw.link.host_link import DEFAULT_BAUD, HostLink


class Accelerator(wiring.Component):
    """``HostLink`` + ``SpikePackCore``: what board tops and the end-to-end tests instantiate.

    The link refuses addresses past the core's memory map (``memory_map(params).end``).

    Parameters
    ----------
    params : hw.contract.params.CoreParams
        Core build parameters.
    clk_freq : int
        Clock frequency in Hz.
    baud : int
        UART rate.
    **link_args
        Further ``HostLink`` build parameters (``max_payload``, ``idle_timeout``,
        ``run_timeout``).

    Members
    -------
    rx : In(1)
        UART from the host.
    tx : Out(1)
        UART to the host.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, params, clk_freq, baud=DEFAULT_BAUD, **link_args):
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        self._params = params
        self._map = memory_map(params)
        self._link = HostLink(clk_freq=clk_freq, baud=baud, addr_limit=self._map.end,
                              **link_args)
        super().__init__()

    @property
    def params(self):
        return self._params

    @property
    def memory_map(self):
        return self._map

    @property
    def link(self):
        """The ``HostLink`` (build parameters ``clk_freq``, ``baud``, ``identify_words``...)."""
        return self._link

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self._link
        m.submodules.core = core = SpikePackCore(self._params)
        wiring.connect(m, link.bus, core.bus)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
        return m
