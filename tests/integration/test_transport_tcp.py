"""TCPTransport against a real CMP-over-TCP server thread built on read_frame/encode_frame."""

from __future__ import annotations

import socket
import threading

import pytest

from cmpclient.errors import TransportError, TransportTimeout
from cmpclient.transport import open_transport
from cmpclient.transport.tcp import (
    ERROR_MSG_REP,
    FIN_REP,
    PKI_REP,
    PKI_REQ,
    POLL_REP,
    POLL_REQ,
    TCPTransport,
    encode_frame,
    encode_poll_rep,
    read_frame,
)

DER = bytes.fromhex("3003020105")


class FrameServer:
    """Answers one frame per connection; the request payload selects the behaviour."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.frames: list = []
        self.raw_first_recv: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self._serve(conn)
                except (OSError, TransportError):
                    pass

    def _serve(self, conn):
        frame = read_frame(conn)
        self.frames.append(frame)
        payload = frame.payload
        if frame.msg_type == POLL_REQ:
            conn.sendall(encode_frame(b"\x30\x03polled", msg_type=PKI_REP))
        elif payload.endswith(b"poll"):
            conn.sendall(encode_frame(encode_poll_rep(7, 0), msg_type=POLL_REP))
        elif payload.endswith(b"error"):
            conn.sendall(encode_frame(b"Unknown alias 'x'", msg_type=ERROR_MSG_REP))
        elif payload.endswith(b"conf"):
            conn.sendall(encode_frame(b"\x30\x02pc", msg_type=FIN_REP, flags=1))
        elif payload.endswith(b"finempty"):
            conn.sendall(encode_frame(b"\x00", msg_type=FIN_REP))
        elif payload.endswith(b"hangup"):
            conn.sendall(encode_frame(DER)[:5])  # header cut short, then close
        elif payload.endswith(b"hold"):
            self.stop.wait(5)
        else:
            conn.sendall(encode_frame(payload, msg_type=PKI_REP, flags=1))

    def close(self):
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def server():
    srv = FrameServer()
    yield srv
    srv.close()


def _url(srv):
    return f"tcp://127.0.0.1:{srv.port}"


def test_echo(server):
    with open_transport(_url(server), timeout=5) as t:
        assert t.send(DER) == DER
        assert t.send(DER + b"x") == DER + b"x"
    assert [f.msg_type for f in server.frames] == [PKI_REQ, PKI_REQ]
    assert all(f.version == 10 and f.flags == 0 for f in server.frames)
    assert server.frames[0].payload == DER


def test_fin_rep_with_pkiconf(server):
    assert TCPTransport(_url(server), timeout=5).send(b"\x30\x02conf") == b"\x30\x02pc"


def test_fin_rep_without_message(server):
    with pytest.raises(TransportError, match="finRep without a PKIMessage"):
        TCPTransport(_url(server), timeout=5).send(b"\x30\x02finempty")


def test_error_msg_rep(server):
    with pytest.raises(TransportError, match="errorMsgRep: Unknown alias 'x'"):
        TCPTransport(_url(server), timeout=5).send(b"\x30\x02error")


def test_poll_rep_then_poll_req(server):
    slept: list[float] = []
    t = TCPTransport(_url(server), timeout=5, sleep=slept.append)
    assert t.send(b"\x30\x02poll") == b"\x30\x03polled"
    assert slept == [0]
    assert [f.msg_type for f in server.frames] == [PKI_REQ, POLL_REQ]
    assert server.frames[1].payload == b"\x00\x00\x00\x07"


def test_short_answer(server):
    with pytest.raises(TransportError, match="connection closed after"):
        TCPTransport(_url(server), timeout=5).send(b"\x30\x02hangup")


def test_read_timeout(server):
    with pytest.raises(TransportTimeout):
        TCPTransport(_url(server), timeout=(2, 0.3)).send(b"\x30\x02hold")


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(TransportError, match="connection refused") as info:
        TCPTransport(f"tcp://127.0.0.1:{port}", timeout=2).send(DER)
    assert not isinstance(info.value, TransportTimeout)


def test_request_is_one_sendall(server, monkeypatch):
    writes: list[bytes] = []
    real = socket.socket.sendall

    def counting(sock, data, *args):
        if sock.getpeername()[1] == server.port:
            writes.append(bytes(data))
        return real(sock, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", counting)
    assert TCPTransport(_url(server), timeout=5).send(DER) == DER
    assert writes == [encode_frame(DER)]
