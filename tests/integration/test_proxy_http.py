"""The CMP proxy on real sockets: client -> proxy (HTTP or TCP) -> the in-process test CA.

Requests are built with cmpclient.message/protection (tests/unit/proxy/proxy_testlib.py)
and sent with our HTTP/TCP transports or raw sockets; the upstream is the production
:class:`~cmpclient.proxy.upstream.Upstream`, wrapped to record what it forwarded and got.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "proxy"))

from proxy_testlib import RecordingUpstream, config, error_of, mac, request  # noqa: E402

from cmpclient.message import body as B  # noqa: E402
from cmpclient.message.request import CertRequestBuilder  # noqa: E402
from cmpclient.keys import generate_key  # noqa: E402
from cmpclient.protection import popo_signer  # noqa: E402
from cmpclient.proxy import Proxy  # noqa: E402
from cmpclient.proxy.serve import ProxyServer  # noqa: E402
from cmpclient.proxy.upstream import Upstream  # noqa: E402
from cmpclient.transport.http import HTTPTransport  # noqa: E402
from cmpclient.transport.tcp import TCPTransport  # noqa: E402

RA_SECRET = b"password"  # the test CA's alias ra (RA mode, HMAC)


def _post(url: str, body: bytes) -> tuple[int, str | None, bytes]:
    """A plain HTTP POST (the standard library's client, not ours): status, Content-Type, body."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/pkixcmp"})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def ir(subject: str) -> bytes:
    key = generate_key("secp256r1")
    req = CertRequestBuilder().cert_req_id(0).subject(subject).public_key(key).popo_signature(popo_signer(key)).build()
    return request(mac(RA_SECRET, kid=b"ManagementCA"), body=B.cert_req_body("ir", [req]), tid=subject.encode()[:16].ljust(16, b"-"))


class Recorder:
    """Wraps an upstream ``send``: records (alias, request, answer)."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self.seen: list[tuple[str, bytes, bytes]] = []

    def send(self, alias: str, der: bytes) -> bytes:
        answer = self._send(alias, der)
        self.seen.append((alias, der, answer))
        return answer


def start(cfg: Any, send: Any, **kw: Any) -> ProxyServer:
    return ProxyServer(Proxy(cfg, send), host="127.0.0.1", port=0, **kw).start()


@pytest.fixture
def proxied(testca_server):
    cfg = config(f"""
upstream = "{testca_server.base_url}/ejbca/publicweb/cmp/"
upstream_timeout = 10
[alias.ra]
mac_keys = ["ManagementCA:env:TESTCA_RA_SECRET"]
""", env={"TESTCA_RA_SECRET": RA_SECRET.decode()})
    upstream = Upstream(lambda a: cfg.policy(a).upstream, timeout=10)
    rec = Recorder(upstream.send)
    server = start(cfg, rec.send, tcp_port=0)
    yield server, rec
    server.stop()
    upstream.close()


def test_ir_through_the_proxy_is_byte_identical(proxied) -> None:
    server, rec = proxied
    with HTTPTransport(server.url("ra")) as t:
        for i in range(3):  # several requests: the upstream connection is reused
            der = ir(f"CN=proxied{i},UID=proxied{i}")
            answer = t.send(der)
            assert rec.seen[-1] == ("ra", der, answer)
    from cmpclient.message.parse import parse_message

    assert parse_message(answer).body_type == "ip"


def test_unchecked_alias_via_default_upstream_and_short_path(proxied) -> None:
    server, rec = proxied
    der = ir("CN=short,UID=short")
    with HTTPTransport(f"{server.base_url}/tcp") as t:  # the CA's alias tcp (same secret), not configured here
        answer = t.send(der)
    assert rec.seen[-1] == ("tcp", der, answer)


def test_refused_request_does_not_reach_the_ca(proxied) -> None:
    server, rec = proxied
    bad = request(mac(b"wrong", kid=b"ManagementCA"))
    with HTTPTransport(server.url("ra")) as t:
        answer = t.send(bad)
    assert error_of(answer)[1] == ("badRequest",) and rec.seen == []


def test_unknown_upstream_alias_answer_is_passed_on(proxied) -> None:
    server, rec = proxied
    status, _, body = _post(server.url("nosuchalias"), request())
    assert status == 404 and b"nosuchalias" in body  # the test CA's own 404, relayed


def test_tcp_listener_forwards(proxied) -> None:
    server, rec = proxied
    # TCP requests use alias "tcp": not configured, so it goes to <default>/tcp unchecked.
    der = ir("CN=viatcp,UID=viatcp")
    with TCPTransport(server.tcp_url) as t:
        answer = t.send(der)
    assert rec.seen[-1] == ("tcp", der, answer)


def raw_http(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_expect_100_continue_is_answered_before_the_body(proxied) -> None:
    from test_testca_http import post_expecting_continue  # type: ignore[import-not-found]

    server, rec = proxied
    der = ir("CN=curl-like,UID=curl-like")
    interim, status, answer = post_expecting_continue(server.port, "/ejbca/publicweb/cmp/ra", der)
    assert interim == b"HTTP/1.1 100 Continue" and status == 200
    assert rec.seen[-1] == ("ra", der, answer)


def test_http_limits_and_404_before_body() -> None:
    up = RecordingUpstream()
    server = start(config('[alias.ra]\nupstream = "http://127.0.0.1:9/x"\n'), up.send)
    try:
        # 404 although the announced body never comes: decided before reading it.
        out = raw_http(server.port, b"POST /ejbca/publicweb/cmp/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        assert out.startswith(b"HTTP/1.0 404") or out.startswith(b"HTTP/1.1 404"), out[:100]
        out = raw_http(server.port, b"POST /ra HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\n\r\n")
        assert b" 400 " in out.split(b"\r\n")[0]
        out = raw_http(server.port, b"GET /ra HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 405 " in out.split(b"\r\n")[0] and b"Allow: POST" in out
        assert up.calls == []
    finally:
        server.stop()


def test_slow_client_is_dropped() -> None:
    up = RecordingUpstream()
    cfg = config('client_timeout = 0.5\n[alias.ra]\nupstream = "http://127.0.0.1:9/x"\n')
    server = start(cfg, up.send)
    try:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"POST /ra HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n0123")  # then silence
            data = s.recv(65536)
            while data and (more := s.recv(65536)):
                data += more
        assert time.monotonic() - t0 < 5, "the stalled client was not dropped"
        assert b" 400 " in data.split(b"\r\n")[0], data[:200]  # a short body, never a 500
        assert up.calls == []
    finally:
        server.stop()


def test_ambiguous_framing_and_methods_are_refused() -> None:
    """Transfer-Encoding (alone or with a Content-Length: request smuggling) is a 400, as
    gunicorn answers for the test CA; methods are case-sensitive ("post" is not POST)."""
    up = RecordingUpstream()
    server = start(config('[alias.ra]\nupstream = "http://127.0.0.1:9/x"\n'), up.send)
    try:
        body = b"\x30\x03\x02\x01\x00"
        chunked = b"5\r\n" + body + b"\r\n0\r\n\r\n"
        for head in (b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(chunked),
                     b"Transfer-Encoding: chunked\r\n"):
            out = raw_http(server.port, b"POST /ra HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + chunked)
            assert b" 400 " in out.split(b"\r\n")[0], out[:200]
        out = raw_http(server.port, b"post /ra HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" + body)
        assert b" 405 " in out.split(b"\r\n")[0], out[:200]
        assert up.calls == []
        # and the server goes on serving
        out = raw_http(server.port, b"POST /ra HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" + body)
        assert out.split(b"\r\n")[0].endswith(b"200 OK"), out[:200]
    finally:
        server.stop()


def test_a_client_reset_mid_body_is_a_400_and_the_server_goes_on() -> None:
    import struct

    up = RecordingUpstream()
    server = start(config('[alias.ra]\nupstream = "http://127.0.0.1:9/x"\n'), up.send)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"POST /ra HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n0123")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        body = b"\x30\x03\x02\x01\x00"
        out = raw_http(server.port, b"POST /ra HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" + body)
        assert out.split(b"\r\n")[0].endswith(b"200 OK"), out[:200]  # a CMP error: not a PKIMessage
    finally:
        server.stop()


def test_upstream_timeout_and_refused_upstream() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (backlog) and never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    cfg = config(f"""
upstream_timeout = 0.5
[alias.slow]
upstream = "http://127.0.0.1:{silent.getsockname()[1]}/x"
[alias.down]
upstream = "http://127.0.0.1:{closed_port}/x"
""")
    upstream = Upstream(lambda a: cfg.policy(a).upstream, timeout=cfg.upstream_timeout)
    server = start(cfg, upstream.send)
    try:
        t0 = time.monotonic()
        status, ctype, body = _post(server.url("slow"), request())
        assert status == 200 and ctype == "application/pkixcmp"
        assert error_of(body)[1] == ("systemUnavail",) and time.monotonic() - t0 < 5
        status, _, _ = _post(server.url("down"), request())
        assert status == 500
    finally:
        server.stop()
        upstream.close()
        silent.close()


def test_concurrent_clients(proxied) -> None:
    server, rec = proxied
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            with HTTPTransport(server.url("ra")) as t:
                der = ir(f"CN=conc{i},UID=conc{i}")
                assert ("ra", der, t.send(der)) in rec.seen
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


@pytest.mark.parametrize("line", [b"HELLO\r\n\r\n", b"POST /ra\r\n\r\n", b"GET /ra\r\n\r\n",
                                  b"POST /ra HTTP/9.9\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"])
def test_malformed_request_lines_get_a_status_line(line: bytes) -> None:
    """http.server answers what it takes for HTTP/0.9 with a bare HTML body; every answer
    here starts with a status line (an error), and the server goes on."""
    up = RecordingUpstream()
    server = start(config('[alias.ra]\nupstream = "http://127.0.0.1:9/x"\n'), up.send)
    try:
        out = raw_http(server.port, line)
        assert out.startswith(b"HTTP/1.") and int(out.split(b" ")[1]) >= 400, out[:200]
        assert up.calls == []
    finally:
        server.stop()
