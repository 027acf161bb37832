"""The core's register/memory bus: how the host link (or any other master) reaches the core.

A master sends :data:`BusRequest` words on ``req``; the core answers every *read* request with one
32-bit word on ``resp``, in order. Writes are not answered. Both directions are ``lib.stream``
channels, so either side may apply back-pressure.

Addresses are 32-bit *word* addresses. The fixed part of the address map lives here (identify
block and control/status registers); the memory regions, whose sizes depend on build parameters,
are laid out by ``hw.contract.memory_map``.
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

ADDR_BITS = 24
DATA_BITS = 32

BusRequest = data.StructLayout({"addr": ADDR_BITS, "data": DATA_BITS, "write": 1})

#: The bus seen from the master (host link): it drives ``req`` and receives ``resp``.
#: A core flips it: ``bus: In(BusSignature)``.
BusSignature = wiring.Signature({
    "req": Out(stream.Signature(BusRequest)),
    "resp": In(stream.Signature(DATA_BITS)),
})

# --- fixed address map -------------------------------------------------------------------------

#: Identify block (read-only). Word 0 is the magic, word 1 the version hash; build parameters
#: follow.
ID_BASE = 0x000000
ID_MAGIC = 0x53504B50  # "SPKP"

#: Control and status registers.
CTRL_BASE = 0x000100
REG_CONTROL = CTRL_BASE + 0  #: write: bit 0 start, bit 1 abort; bits 16..31 batch size
REG_STATUS = CTRL_BASE + 1  #: read: bit 0 busy, bit 1 done, bit 2 error; bits 8..15 error code

#: First address free for the build-dependent memory regions of ``hw.contract.memory_map``.
REGIONS_BASE = 0x001000
