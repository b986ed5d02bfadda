"""HTTP connections and CMP transactions: like openssl's client, a kept-alive connection is
reused within a transaction (ir, then certConf) and never carried into the next one.

The server here behaves like openssl's mock server: every answer says ``keep-alive``, but
once a transaction is over it drops the connection -- in the worst case only when the
client's next request has arrived on it, which is then lost (connection reset).  With a
fast client this race was real: the interop ``check`` run against the openssl mock failed
now and then on the request that followed a completed transaction.
"""

from __future__ import annotations

import socket
import struct
import threading
import uuid
from pathlib import Path

import pytest

from cmpclient.client import ClientConfig, enroll
from cmpclient.errors import TransportError
from cmpclient.keys import generate_key, load_certificates
from cmpclient.message.parse import parse_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, popo_signer
from cmpclient.testca import TestCA
from cmpclient.transport.http import HTTPTransport

RA_SECRET = b"password"  # the default configuration's ra alias secret (test material)


def _over(answer: bytes) -> bool:
    """Whether this answer ends its transaction (as the openssl mock decides)."""
    rsp = parse_message(answer)
    if rsp.body_type in ("ip", "cp", "kup"):
        return rsp.header.implicit_confirm
    return rsp.body_type != "pollRep"


class _KeepAliveCA:
    """An HTTP/1.1 front of a TestCA on 127.0.0.1 that keeps connections open, except
    that a connection whose transaction is over is reset when the next request arrives."""

    def __init__(self, ca: TestCA) -> None:
        self.ca = ca
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/ejbca/publicweb/cmp/ra"
        self.requests_per_connection: list[int] = []
        self.resets = 0
        self.fail_next = 0  # answer that many requests with HTTP 500 (connection kept)
        self.over = _over
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self.requests_per_connection.append(0)
        index = len(self.requests_per_connection) - 1
        conn.settimeout(10)
        data, over = b"", False
        with conn:
            while True:
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    if len(rest) >= length:
                        body, data = rest[:length], rest[length:]
                        if over:  # the transaction ended: drop the connection, request unread
                            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            self.resets += 1
                            return
                        self.requests_per_connection[index] += 1
                        if self.fail_next > 0:
                            self.fail_next -= 1
                            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                         b"Connection: keep-alive\r\n\r\n")
                            continue
                        status, answer = self.ca.handle("ra", body)
                        assert status == 200
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\n"
                                     b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
                        over = self.over(answer)
                        continue
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                data += chunk

    def close(self) -> None:
        self._stop.set()
        try:
            socket.create_connection(self.sock.getsockname(), timeout=2).close()
        except OSError:
            pass
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path):
    ca = TestCA.open(None, tmp_path / "ca")
    srv = _KeepAliveCA(ca)
    srv.anchors = load_certificates(tmp_path / "ca" / "ca" / "ManagementCA.pem") + load_certificates(
        tmp_path / "ca" / "ca" / "RootCA.pem")
    yield srv
    srv.close()
    ca.close()


def _request() -> CertRequestBuilder:
    key = generate_key("secp256r1")
    uid = uuid.uuid4().hex[:10]
    return CertRequestBuilder().subject(f"CN=conn-{uid},UID=conn-{uid}").public_key(key).popo_signature(popo_signer(key))


def _config(url: str, *, implicit: bool) -> ClientConfig:
    return ClientConfig(transport=HTTPTransport(url, timeout=10), protection=MACProtection(RA_SECRET, sender_kid=b"conn"),
                        implicit_confirm=implicit)


def test_implicitly_confirmed_enrollments_each_start_on_a_new_connection(server: _KeepAliveCA) -> None:
    cfg = _config(server.url, implicit=True)
    try:
        for _ in range(3):
            result = enroll(cfg, "ir", _request())
            assert result.implicit_confirm_granted
    finally:
        cfg.transport.close()
    assert server.requests_per_connection == [1, 1, 1]
    assert server.resets == 0


def test_certconf_reuses_the_connection_of_its_transaction(server: _KeepAliveCA) -> None:
    cfg = _config(server.url, implicit=False)
    try:
        for _ in range(2):
            result = enroll(cfg, "ir", _request())
            assert result.confirmed and not result.implicit_confirm_granted
    finally:
        cfg.transport.close()
    assert server.requests_per_connection == [2, 2]  # ir + certConf on each
    assert server.resets == 0


def test_a_connection_carried_into_the_next_transaction_loses_the_request(server: _KeepAliveCA) -> None:
    """What the rule avoids: the same transport, without the end of the transaction."""
    cfg = _config(server.url, implicit=True)
    seen: list[bytes] = []
    cfg.on_message = lambda direction, der: seen.append(der) if direction == "request" else None
    try:
        enroll(cfg, "ir", _request())
    finally:
        cfg.transport.close()
    with HTTPTransport(server.url, timeout=10) as t:
        t.send(seen[0])  # the same ir again: the server answers it, and the transaction is over
        with pytest.raises(TransportError, match="reset|closed|broke"):
            t.send(seen[0])
    assert server.resets == 1


def test_a_rejected_request_ends_its_transaction(server: _KeepAliveCA) -> None:
    """No certConf follows a rejection: the next transaction must not inherit the connection
    (openssl's mock would still hold the rejected transaction on it)."""
    from cmpclient.errors import CMPRejection

    cfg = _config(server.url, implicit=False)
    cfg.trusted = server.anchors  # the CA signs rejections of requests it has not authenticated
    key = generate_key("secp256r1")
    no_subject = CertRequestBuilder().public_key(key).popo_signature(popo_signer(key), sender="CN=conn-rejected")
    try:
        with pytest.raises(CMPRejection):
            enroll(cfg, "ir", no_subject)
        assert enroll(cfg, "ir", _request()).confirmed
    finally:
        cfg.transport.close()
    assert server.requests_per_connection == [1, 2]  # the rejected ir alone; then ir + certConf


def test_a_certconf_left_for_later_stays_on_the_transaction_connection(server: _KeepAliveCA) -> None:
    """enroll(confirm=False) leaves the transaction open: confirm() sends its certConf on the
    same connection (openssl's mock refuses a certConf that arrives on a new one)."""
    from cmpclient.client import confirm

    cfg = _config(server.url, implicit=False)
    try:
        result = enroll(cfg, "ir", _request(), confirm=False)
        assert result.confirm_state is not None and not result.confirmed
        assert confirm(cfg, result.confirm_state).body_type == "pkiconf"
        assert enroll(cfg, "ir", _request()).confirmed
    finally:
        cfg.transport.close()
    assert server.requests_per_connection == [2, 2]


def test_an_http_error_ends_the_transaction(server: _KeepAliveCA) -> None:
    """A non-200 answer on a kept-alive connection: the transaction is over and its
    connection is not handed to the next one (genm, revoke and confirm have no enroll()
    around them)."""
    from cmpclient.client import general_message
    from cmpclient.errors import HTTPStatusError

    cfg = _config(server.url, implicit=True)
    server.fail_next = 1  # one "500" that keeps the connection open
    try:
        with pytest.raises(HTTPStatusError):
            general_message(cfg)
        general_message(cfg)
    finally:
        cfg.transport.close()
    assert server.requests_per_connection == [1, 1]


def test_exchange_continues_keeps_the_connection(server: _KeepAliveCA) -> None:
    """exchange(continues=True) -- the KEM set-up's genm, followed by the certificate request
    of the same transaction -- keeps the connection; by default a genp ends the transaction."""
    from cmpclient.client.transaction import Transaction
    from cmpclient.message import body as bodies

    server.over = lambda answer: False  # a server that lets the transaction go on after genp
    cfg = _config(server.url, implicit=True)
    try:
        tx = Transaction(cfg)
        tx.exchange(bodies.genm_body([], as_der=True), expect=["genp"], continues=True)
        tx.exchange(bodies.genm_body([], as_der=True), expect=["genp"])
        Transaction(cfg).exchange(bodies.genm_body([], as_der=True), expect=["genp"])
    finally:
        cfg.transport.close()
    assert server.requests_per_connection == [2, 1]
