"""The host link protocol: frame format, command and status codes, shared by gateware and host.

Both ends import their constants from here: the gateware (``hw.link.frame_decoder``,
``hw.link.link_executor``, ``hw.link.frame_encoder``) and the host driver (``sw.host.driver``). The
enums are Amaranth shaped enums, so the gateware uses them as 8-bit values and the host as plain
``IntEnum``.

Request frame (host -> device), little-endian::

    SYNC_REQUEST | command | seq | length (u16) | payload (length bytes) | CRC-32 (u32)

Reply frame (device -> host)::

    SYNC_REPLY | command | seq | status | length (u16) | payload (length bytes) | CRC-32 (u32)

The CRC is CRC-32/ISO-HDLC (``zlib.crc32``; ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC``) over every
byte after the sync byte up to the end of the payload. Payload words are 32-bit little-endian.
See ``docs/protocol.md`` for the command set, timing and error handling.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
import zlib

from amaranth.lib import enum

SYNC_REQUEST = 0xA5
SYNC_REPLY = 0x5A

#: Bumped whenever the frame format or a command's meaning changes.
PROTOCOL_VERSION = 1

#: First word of the IDENTIFY reply ("SLNK" read as a little-endian word).
LINK_MAGIC = 0x4B4E4C53

REQUEST_HEADER = 5  #: sync, command, seq, length (2)
REPLY_HEADER = 6  #: sync, command, seq, status, length (2)
CRC_BYTES = 4
REQUEST_OVERHEAD = REQUEST_HEADER + CRC_BYTES
REPLY_OVERHEAD = REPLY_HEADER + CRC_BYTES

#: Largest payload the frame format can describe (the build's limit is ``max_payload``).
LENGTH_LIMIT = 0xFFFF


class Command(enum.IntEnum, shape=8):
    """Request commands. Payload layouts are in ``docs/protocol.md``."""

    IDENTIFY = 0x01  #: no payload; reply: link parameters (see :data:`IDENTIFY_FIELDS`)
    WRITE = 0x02  #: payload: address, words...; reply: empty
    READ = 0x03  #: payload: address, count; reply: count words
    RUN = 0x04  #: payload: batch size; reply: the final status word
    ABORT = 0x05  #: no payload; writes the abort bit; reply: empty


class Status(enum.IntEnum, shape=8):
    """Reply status. Anything but ``OK`` means the request changed no state."""

    OK = 0x00
    ERR_CRC = 0x01  #: the frame's CRC did not match
    ERR_COMMAND = 0x02  #: unknown command
    ERR_LENGTH = 0x03  #: payload length over the build limit or wrong for the command
    ERR_ADDRESS = 0x04  #: address range outside the device's address map
    ERR_TRUNCATED = 0x05  #: the line went idle in the middle of a frame
    ERR_SYNC = 0x06  #: bytes that do not start with the sync byte
    ERR_OVERRUN = 0x07  #: a frame arrived while the device still held two frames
    ERR_RUN_TIMEOUT = 0x08  #: the core did not finish within the run timeout (it was aborted)
    ERR_CORE = 0x09  #: the core reported an error (status word in the payload)


#: Words of the IDENTIFY reply, in order.
IDENTIFY_FIELDS = (
    "magic", "protocol_version", "max_payload", "clk_freq", "baud", "idle_timeout",
    "run_timeout", "addr_limit", "link_hash",
)

# --- link build parameters (checked where a board preset or a link is made) ----------------

#: Fewest clocks per bit the receiver's synchronizer and mid-bit sampling support.
MIN_DIVISOR = 4
#: Largest rate error (clock not an integer multiple of the baud rate) accepted at build time.
MAX_RATE_ERROR = 0.02


def baud_divisor(clk_freq, baud) -> int:
    """Clocks per bit for ``baud`` at ``clk_freq``; raises ``ValueError`` if it is unusable."""
    if clk_freq <= 0 or baud <= 0:
        raise ValueError(f"clk_freq and baud must be positive, not {clk_freq} and {baud}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(
            f"baud {baud} needs at least {MIN_DIVISOR} clocks per bit at {clk_freq} Hz; "
            f"use a baud rate of at most {clk_freq / MIN_DIVISOR:.0f}"
        )
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_RATE_ERROR:
        raise ValueError(
            f"{clk_freq} Hz / {divisor} = {clk_freq / divisor:.0f} baud is {error:.1%} off {baud}; "
            f"pick a baud rate that divides the clock more closely"
        )
    return divisor


def check_max_payload(max_payload) -> int:
    max_payload = operator.index(max_payload)
    if not 8 <= max_payload <= LENGTH_LIMIT or max_payload % 4:
        raise ValueError(
            f"max_payload must be a multiple of 4 in 8..{LENGTH_LIMIT}, not {max_payload}"
        )
    return max_payload


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC, as ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC`` computes it."""
    return zlib.crc32(data) & 0xFFFFFFFF


def words_payload(*words: int) -> bytes:
    """32-bit little-endian words as payload bytes."""
    return struct.pack(f"<{len(words)}I", *(w & 0xFFFFFFFF for w in words))


def payload_words(payload: bytes) -> list[int]:
    """Inverse of :func:`words_payload`."""
    if len(payload) % 4:
        raise ProtocolError(f"payload of {len(payload)} bytes is not a whole number of words")
    return list(struct.unpack(f"<{len(payload) // 4}I", payload))


class ProtocolError(Exception):
    """A reply that does not parse (bad sync, CRC, length) or does not answer the request."""


def encode_request(command: int, seq: int, payload: bytes = b"") -> bytes:
    """One request frame."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be a byte, not {seq}")
    if len(payload) > LENGTH_LIMIT:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the frame limit {LENGTH_LIMIT}")
    body = struct.pack("<BBH", int(command), seq, len(payload)) + payload
    return bytes([SYNC_REQUEST]) + body + struct.pack("<I", crc32(body))


def encode_reply(command: int, seq: int, status: int, payload: bytes = b"") -> bytes:
    """One reply frame (what the gateware sends; used by tests and models)."""
    head = struct.pack("<BBBH", int(command) & 0xFF, seq & 0xFF, int(status), len(payload))
    body = head + payload
    return bytes([SYNC_REPLY]) + body + struct.pack("<I", crc32(body))


@dataclasses.dataclass(frozen=True)
class Request:
    command: int
    seq: int
    payload: bytes


@dataclasses.dataclass(frozen=True)
class Reply:
    """A parsed reply frame.

    Members
    -------
    command : int
        The command byte echoed from the request (0 if the device never saw one).
    seq : int
        The sequence byte echoed from the request.
    status : Status or int
        ``Status`` member when known, else the raw byte.
    payload : bytes
    """

    command: int
    seq: int
    status: Status | int
    payload: bytes

    @property
    def words(self) -> list[int]:
        return payload_words(self.payload)


def _status(value: int) -> Status | int:
    try:
        return Status(value)
    except ValueError:
        return value


def decode_request(frame: bytes) -> Request:
    """Parse one complete request frame (for tests and device models)."""
    if len(frame) < REQUEST_OVERHEAD or frame[0] != SYNC_REQUEST:
        raise ProtocolError("not a request frame")
    command, seq, length = struct.unpack_from("<BBH", frame, 1)
    if len(frame) != REQUEST_OVERHEAD + length:
        raise ProtocolError(
            f"frame is {len(frame)} bytes, its header says {REQUEST_OVERHEAD + length}")
    body = frame[1:REQUEST_HEADER + length]
    (crc,) = struct.unpack_from("<I", frame, REQUEST_HEADER + length)
    if crc != crc32(body):
        raise ProtocolError("request CRC mismatch")
    return Request(command, seq, frame[REQUEST_HEADER:REQUEST_HEADER + length])


class ReplyParser:
    """Incremental reply parser: feed bytes, take complete replies.

    Bytes before a sync byte are counted in :attr:`discarded` and dropped. A frame with a bad CRC
    raises :class:`ProtocolError` (the parser has already skipped it).
    """

    def __init__(self, max_payload: int = LENGTH_LIMIT):
        self._buf = bytearray()
        self.max_payload = max_payload
        self.discarded = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def needed(self) -> int:
        """Bytes still missing for the frame at the head of the buffer (at least 1)."""
        if len(self._buf) < REPLY_HEADER:
            return REPLY_HEADER - len(self._buf)
        (length,) = struct.unpack_from("<H", self._buf, 4)
        return max(1, REPLY_OVERHEAD + length - len(self._buf))

    def pop(self) -> Reply | None:
        """The next complete reply, or ``None`` if more bytes are needed."""
        while self._buf and self._buf[0] != SYNC_REPLY:
            del self._buf[0]
            self.discarded += 1
        if len(self._buf) < REPLY_HEADER:
            return None
        command, seq, status, length = struct.unpack_from("<BBBH", self._buf, 1)
        if length > self.max_payload:
            del self._buf[0]
            self.discarded += 1
            raise ProtocolError(
                f"reply claims a {length}-byte payload, more than {self.max_payload}")
        total = REPLY_OVERHEAD + length
        if len(self._buf) < total:
            return None
        frame = bytes(self._buf[:total])
        (crc,) = struct.unpack_from("<I", frame, REPLY_HEADER + length)
        if crc != crc32(frame[1:REPLY_HEADER + length]):
            del self._buf[0]
            self.discarded += 1
            raise ProtocolError("reply CRC mismatch (line noise or wrong baud rate?)")
        del self._buf[:total]
        return Reply(command, seq, _status(status), frame[REPLY_HEADER:REPLY_HEADER + length])


def decode_reply(frame: bytes) -> Reply:
    """Parse exactly one complete reply frame."""
    parser = ReplyParser()
    parser.feed(frame)
    reply = parser.pop()
    if reply is None or parser.discarded or parser.needed() != REPLY_HEADER:
        raise ProtocolError("not exactly one reply frame")
    return reply


def request_bytes(payload_len: int) -> int:
    """Bytes on the wire for a request with ``payload_len`` payload bytes."""
    return REQUEST_OVERHEAD + payload_len


def reply_bytes(payload_len: int) -> int:
    """Bytes on the wire for a reply with ``payload_len`` payload bytes."""
    return REPLY_OVERHEAD + payload_len
