"""HTTPTransport against real local servers (127.0.0.1, port 0)."""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cmpclient.errors import HTTPStatusError, TransportError, TransportTimeout
from cmpclient.transport.http import HTTPTransport

DER = bytes.fromhex("3003020105")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args):  # keep test output quiet
        pass

    def _answer(self, status: int, body: bytes, ctype: str | None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append((self.path, dict(self.headers), body))
        if self.path.endswith("/echo"):
            self._answer(200, body, "application/pkixcmp")
        elif self.path.endswith("/html"):
            self._answer(200, b"<html>portal</html>", "text/html")
        elif self.path.endswith("/boom"):
            self._answer(500, b"internal error", "text/plain")
        elif self.path.endswith("/hold"):
            self.server.release.wait(10)  # bounded: the client times out long before
            self.close_connection = True
        else:
            self._answer(404, b"no such alias", "text/plain")


def _start(server):
    server.lock = threading.Lock()
    server.connections = 0
    server.seen = []
    server.release = threading.Event()
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()  # the socket already listens: connections queue until accept()
    return thread


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = _start(srv)
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_echo_with_headers(server):
    srv, base = server
    with HTTPTransport(base + "/ejbca/publicweb/cmp/echo") as t:
        assert t.send(DER) == DER
    path, headers, body = srv.seen[0]
    assert path == "/ejbca/publicweb/cmp/echo" and body == DER
    assert headers["Content-Type"] == "application/pkixcmp"
    assert headers["Accept"] == "application/pkixcmp"
    assert headers["Cache-Control"] == "no-cache"


def test_404_500_and_wrong_content_type(server):
    _, base = server
    with HTTPTransport(base + "/ejbca/publicweb/cmp/nosuch") as t:
        with pytest.raises(HTTPStatusError) as info:
            t.send(DER)
    assert info.value.status == 404 and b"no such alias" in info.value.body
    assert "<alias>" in info.value.diagnostics()
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(base + "/boom").send(DER)
    assert info.value.status == 500 and "internal error" in info.value.message
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(base + "/html").send(DER)
    assert info.value.status == 200 and info.value.content_type == "text/html"


def test_connection_reused(server):
    srv, base = server
    with HTTPTransport(base + "/echo") as t:
        for i in range(3):
            assert t.send(DER + bytes([i])) == DER + bytes([i])
    assert len(srv.seen) == 3
    assert srv.connections == 1


def test_read_timeout(server):
    _, base = server
    with HTTPTransport(base + "/hold", timeout=(2.0, 0.3)) as t:
        with pytest.raises(TransportTimeout, match="0.3 s"):
            t.send(DER)


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(TransportError, match="connection refused") as info:
        HTTPTransport(f"http://127.0.0.1:{port}/x", timeout=2).send(DER)
    assert not isinstance(info.value, TransportTimeout)


# --- one write per request ----------------------------------------------------------


class _RawHTTPServer:
    """A bare socket HTTP/1.1 server that records how many recv() calls each request took."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.recv_counts: list[int] = []
        self.accepted = 0
        self.done = threading.Event()  # set when the client's connection has ended
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_request(self, conn) -> bool:
        data, calls = b"", 0
        while True:
            # Wait until bytes are readable, then take whatever has arrived so far.
            ready, _, _ = select.select([conn], [], [], 5)
            if not ready:
                return False
            chunk = conn.recv(65536)
            if not chunk:
                return False
            calls += 1
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
                )
                if len(body) >= length:
                    break
            if calls > 1000:
                return False
        self.recv_counts.append(calls)
        resp = body[:length]
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: %d\r\n\r\n%s" % (len(resp), resp)
        )
        return True

    def _run(self):
        # One connection is all a keep-alive client should need; serve it until it closes.
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.accepted += 1
        with conn:
            for _ in range(10):
                if not self._read_request(conn):
                    break
        self.done.set()

    def close(self):
        self.sock.close()
        self.thread.join(5)


def test_each_request_is_one_write(monkeypatch):
    # Count the client's socket writes: http.client on its own writes the head and the body
    # separately (two sends); we want exactly one per request.
    writes: list[int] = []
    real_sendall = socket.socket.sendall

    def counting_sendall(sock, data, *args):
        if sock.getpeername()[1] == srv.port:  # the client's side only
            writes.append(len(data))
        return real_sendall(sock, data, *args)

    srv = _RawHTTPServer()
    monkeypatch.setattr(socket.socket, "sendall", counting_sendall)
    try:
        body = bytes(range(256)) * 8  # a realistic 2 KiB PKIMessage size
        with HTTPTransport(f"http://127.0.0.1:{srv.port}/cmp/x", timeout=5) as t:
            for _ in range(5):
                assert t.send(body) == body
            # TCP_NODELAY is on for the pooled connection too.
            (conn,) = t._idle
            assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        # close() really closes the kept-alive socket: the server sees EOF at once.
        assert srv.done.wait(2)
    finally:
        srv.close()
    assert len(writes) == 5 and all(n > len(body) for n in writes)  # head + body each time
    assert srv.recv_counts == [1] * 5  # and the server got each request in one recv()
    assert srv.accepted == 1


# --- HTTPS ---------------------------------------------------------------------------


def _make_ca_and_server_cert(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TLS CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain_file = tmp_path / "server.pem"
    chain_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "server.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, chain_file, key_file


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    # Environment CA bundles would replace verify=True; keep the test about our trust only.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ca_file, chain_file, key_file = _make_ca_and_server_cert(tmp_path)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain_file, key_file)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = _start(srv)
    yield srv, f"https://127.0.0.1:{srv.server_address[1]}", ca_file
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_https_untrusted_server_fails_with_hint(tls_server):
    _, base, _ = tls_server
    with HTTPTransport(base + "/echo", timeout=5) as t:
        with pytest.raises(TransportError) as info:
            t.send(DER)
    assert "verification failed" in info.value.message
    assert "--trusted" in info.value.diagnostics()


def test_https_trusted_with_ca_file(tls_server):
    srv, base, ca_file = tls_server
    with HTTPTransport(base + "/echo", timeout=5, verify=str(ca_file)) as t:
        assert t.send(DER) == DER
        assert t.send(DER + b"\x01") == DER + b"\x01"
    assert srv.connections == 1


def test_https_verify_false_explicit(tls_server):
    _, base, _ = tls_server
    with HTTPTransport(base + "/echo", timeout=5, verify=False) as t:
        assert t.send(DER) == DER
