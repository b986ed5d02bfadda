"""CMP-over-TCP framing: exact bytes, round trips, malformed frames."""

from __future__ import annotations

import io
import struct

import pytest

from cmpclient.errors import TransportError, TransportTimeout, UsageError
from cmpclient.transport import tcp
from cmpclient.transport.tcp import (
    ERROR_MSG_REP,
    FIN_REP,
    PKI_REP,
    PKI_REQ,
    POLL_REP,
    POLL_REQ,
    encode_frame,
    encode_poll_rep,
    encode_poll_req,
    parse_poll_rep,
    read_frame,
)

DER = bytes.fromhex("3003020105")  # SEQUENCE { INTEGER 5 }


def test_encode_frame_exact_layout():
    frame = encode_frame(DER)
    # length = 3 (version, flags, type) + 5 value bytes, big-endian, then 10, 0, 0.
    assert frame == b"\x00\x00\x00\x08" + b"\x0a\x00\x00" + DER


def test_encode_frame_type_flags_version():
    frame = encode_frame(DER, msg_type=PKI_REP, flags=tcp.FLAG_CLOSE_CONNECTION)
    assert frame[4:7] == bytes([10, 1, 5])


def test_message_type_numbers_match_the_draft():
    assert (PKI_REQ, POLL_REP, POLL_REQ, FIN_REP, PKI_REP, ERROR_MSG_REP) == (0, 1, 2, 3, 5, 6)
    assert tcp.VERSION == 10


@pytest.mark.parametrize("msg_type", [PKI_REQ, PKI_REP, FIN_REP, POLL_REQ])
@pytest.mark.parametrize("payload", [b"", DER, bytes(range(256)) * 300])
def test_round_trip(msg_type, payload):
    frame = read_frame(io.BytesIO(encode_frame(payload, msg_type=msg_type, flags=1)))
    assert frame == (10, 1, msg_type, payload)


def test_read_frame_leaves_following_frame_untouched():
    stream = io.BytesIO(encode_frame(DER) + encode_frame(b"\x30\x00", msg_type=PKI_REP))
    assert read_frame(stream).payload == DER
    assert read_frame(stream) == (10, 0, PKI_REP, b"\x30\x00")


class _TrickleSocket:
    """A socket-like source that returns one byte per recv()."""

    def __init__(self, data: bytes):
        self.data = data
        self.calls = 0

    def recv(self, n: int) -> bytes:
        self.calls += 1
        chunk, self.data = self.data[:1], self.data[1:]
        return chunk


def test_read_frame_from_socket_with_partial_recvs():
    src = _TrickleSocket(encode_frame(DER, msg_type=PKI_REP))
    assert read_frame(src) == (10, 0, PKI_REP, DER)
    assert src.calls == 7 + len(DER)


@pytest.mark.parametrize("cut", [0, 3, 6, 7, 9])
def test_short_frame_raises(cut):
    data = encode_frame(DER)[:cut]
    with pytest.raises(TransportError, match="connection closed"):
        read_frame(io.BytesIO(data))


def test_too_long_frame_refused_before_reading_value():
    header = struct.pack(">IBBB", 3 + 11 * 1024 * 1024, 10, 0, 0)
    with pytest.raises(TransportError, match="more than the limit"):
        read_frame(io.BytesIO(header))  # no value bytes needed to refuse


def test_custom_max_size():
    with pytest.raises(TransportError, match="limit of 4"):
        read_frame(io.BytesIO(encode_frame(DER)), max_size=4)
    assert read_frame(io.BytesIO(encode_frame(DER)), max_size=5).payload == DER


def test_length_below_header_rest_refused():
    with pytest.raises(TransportError, match="shorter than"):
        read_frame(io.BytesIO(struct.pack(">IBBB", 2, 10, 0, 0)))


def test_bad_version_refused_rfc2510_named():
    # An RFC 2510 frame: length, type 5 (finalMsgRep), value -- no version octet.
    old = struct.pack(">IB", 1 + len(DER), 5) + DER + b"\x00\x00"
    with pytest.raises(TransportError, match="unsupported CMP-over-TCP version 5") as info:
        read_frame(io.BytesIO(old))
    assert "RFC 2510" in info.value.diagnostics()


def test_http_peer_named():
    with pytest.raises(TransportError) as info:
        read_frame(io.BytesIO(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    assert "http://" in info.value.diagnostics()


def test_error_msg_rep_raises_with_text():
    frame = encode_frame("alias unknown: ä".encode(), msg_type=ERROR_MSG_REP)
    with pytest.raises(TransportError, match="errorMsgRep: alias unknown: ä"):
        read_frame(io.BytesIO(frame))
    # A caller that wants the frame itself can have it.
    assert read_frame(io.BytesIO(frame), raise_on_error=False).msg_type == ERROR_MSG_REP


def test_timeout_while_reading_maps_to_transport_timeout():
    class _Slow:
        def recv(self, n):
            raise TimeoutError("timed out")

    with pytest.raises(TransportTimeout):
        read_frame(_Slow())


@pytest.mark.parametrize("kw", [{"msg_type": 256}, {"flags": -1}, {"version": 300}])
def test_encode_rejects_out_of_range_octets(kw):
    with pytest.raises(UsageError):
        encode_frame(DER, **kw)


def test_poll_values():
    assert encode_poll_req(7) == b"\x00\x00\x00\x07"
    assert parse_poll_rep(encode_poll_rep(7, 30)) == (7, 30)
    with pytest.raises(TransportError):
        parse_poll_rep(b"\x00\x00\x00")


@pytest.mark.parametrize("url", ["http://x:1", "tcp://", "tcp:///x"])
def test_tcp_transport_rejects_bad_urls(url):
    with pytest.raises(UsageError):
        tcp.TCPTransport(url)


def test_tcp_transport_default_port():
    t = tcp.TCPTransport("tcp://ca.example")
    assert (t.host, t.port) == ("ca.example", 829)
