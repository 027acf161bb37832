"""Host side of the link without gateware: codec, CRC choice, pyserial transports, timeouts."""

import random
import socket
import threading

import pytest
from amaranth.lib import crc

from hw.contract.protocol import (
    Command,
    ProtocolError,
    ReplyParser,
    Status,
    crc32,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    words_payload,
)
from hw.link.frame_decoder import LINK_CRC
from sw.host.driver import Device, LinkTimeoutError
from sw.host.transport import SerialTransport


def test_host_crc_is_the_gateware_crc():
    rng = random.Random(3)
    params = LINK_CRC(data_width=8)
    assert LINK_CRC is crc.catalog.CRC32_ISO_HDLC
    for n in (0, 1, 5, 100):
        data = rng.randbytes(n)
        assert crc32(data) == params.compute(data)


def test_frames_round_trip_and_reject_damage():
    rng = random.Random(4)
    for _ in range(50):
        payload = rng.randbytes(rng.randrange(0, 64))
        req = decode_request(encode_request(Command.WRITE, 9, payload))
        assert (req.command, req.seq, req.payload) == (Command.WRITE, 9, payload)
        rep = decode_reply(encode_reply(Command.READ, 7, Status.ERR_ADDRESS, payload))
        assert (rep.command, rep.seq, rep.status, rep.payload) == (
            Command.READ, 7, Status.ERR_ADDRESS, payload)
    frame = bytearray(encode_reply(Command.READ, 1, Status.OK, words_payload(1, 2)))
    frame[8] ^= 4
    with pytest.raises(ProtocolError, match="CRC"):
        decode_reply(bytes(frame))


def test_reply_parser_resynchronizes_after_noise():
    parser = ReplyParser()
    good = encode_reply(Command.IDENTIFY, 3, Status.OK, words_payload(5))
    bad = bytearray(good)
    bad[-1] ^= 1
    parser.feed(b"\x00\x13" + bytes(bad) + good)
    replies = []
    while True:
        try:
            r = parser.pop()
        except ProtocolError:
            continue
        if r is None:
            break
        replies.append(r)
    assert [r.words for r in replies] == [[5]]
    assert parser.discarded >= 2


def test_serial_transport_loop_url():
    with SerialTransport("loop://", 4_000_000) as t:
        t.write(b"spikepack")
        assert t.read(9, 0.5) == b"spikepack"
        assert t.read(1, 0.05) == b""


def test_serial_transport_socket_url_and_timeout_error():
    """Over socket://, a peer that never answers: the driver retries, then names what to check."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    received = bytearray()

    def peer():
        conn, _ = server.accept()
        conn.settimeout(2.0)
        try:
            while chunk := conn.recv(4096):
                received.extend(chunk)
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    with SerialTransport(f"socket://127.0.0.1:{port}", 4_000_000) as t:
        dev = Device(t, retries=2, timeout=0.05)
        with pytest.raises(LinkTimeoutError, match="baud rate"):
            dev.identify()
    thread.join(5)
    server.close()
    # Three identical IDENTIFY requests (one try, two retries), with fresh sequence numbers.
    frames = [received[i:i + 9] for i in range(0, len(received), 9)]
    assert len(frames) == 3
    assert [decode_request(bytes(f)).command for f in frames] == [Command.IDENTIFY] * 3
    assert len({f[2] for f in frames}) == 3


def test_serial_transport_bad_port_message():
    with pytest.raises(OSError, match="ttyUSB1"):
        SerialTransport("/dev/does-not-exist", 4_000_000)
