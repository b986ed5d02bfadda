"""The test CA's front ends: the WSGI app, the CMP-over-TCP listener and ``cmpclient serve``.

Three layers of evidence:

* the WSGI app called directly with a tiny stand-in CA (what reaches ``handle`` and what
  does not: an unknown alias must not even read the body);
* the real :class:`cmpclient.testca.TestCA` served in-process (``testca_server``), probed
  over real sockets: every row of shared/spec/testca.md "HTTP layer", TCP framing, and
  enrolments with our own client over HTTP and TCP, also several at once;
* ``cmpclient serve`` as a real subprocess (gunicorn workers and the threaded fallback):
  it announces its port, serves HTTP and TCP, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cmpclient.client import ClientConfig, enroll
from cmpclient.keys import generate_key
from cmpclient.message.body import error_body, genm_body
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import parse_message
from cmpclient.message.pkimessage import assemble, encode_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, popo_signer, protect_message
from cmpclient.testca.tcp import answer_frame_type
from cmpclient.testca.wsgi import MAX_BODY_SIZE, _PathError, alias_from_path, make_app
from cmpclient.transport.http import HTTPTransport
from cmpclient.transport.tcp import (
    ERROR_MSG_REP,
    FIN_REP,
    PKI_REP,
    PKI_REQ,
    POLL_REQ,
    TCPTransport,
    encode_frame,
    encode_poll_req,
    read_frame,
)

REPO = Path(__file__).resolve().parents[2]
RA_SECRET = b"password"
CMP_PATH = "/ejbca/publicweb/cmp/"


# --------------------------------------------------------------------------- helpers


def _pubkey_der(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ra_config(url: str, **kw: Any) -> ClientConfig:
    transport = TCPTransport(url) if url.startswith("tcp://") else HTTPTransport(url)
    return ClientConfig(
        transport=transport,
        protection=MACProtection(RA_SECRET, sender_kid=b"ra-test"),
        recipient="CN=ManagementCA,O=cmpclient test,C=SE",
        **kw,
    )


def ir_request(name: str, key: Any = None) -> tuple[Any, Any]:
    key = key or generate_key("secp256r1")
    req = CertRequestBuilder().subject(f"CN={name},UID={name},O=cmpclient test").public_key(key)
    return req.popo_signature(popo_signer(key)).build(), key


def pbm_genm_der() -> bytes:
    header = (
        HeaderBuilder()
        .sender("CN=genm-test")
        .recipient("CN=ManagementCA,O=cmpclient test,C=SE")
        .sender_kid(b"ra-test")
        .build()
    )
    msg = assemble(header, genm_body())
    return encode_message(protect_message(msg, MACProtection(RA_SECRET, sender_kid=b"ra-test")))


def raw_http(port: int, head: bytes, body: bytes = b"", *, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes), parse status/headers/body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head_part, _, rest = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, rest


def post_expecting_continue(port: int, path: str, body: bytes, *, timeout: float = 10.0) -> tuple[bytes | None, int, bytes]:
    """POST with ``Expect: 100-continue`` as curl does: send the head, wait (bounded by the
    socket timeout) for the server's first answer, send the body only after an interim
    "100 Continue". Returns (interim status line or None, final status, final body)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/pkixcmp\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)  # a server that never answers the head times out here
            if not chunk:
                break
            data += chunk
        interim = None
        if data.startswith(b"HTTP/1.1 100"):
            interim, _, data = data.partition(b"\r\n\r\n")
            s.sendall(body)
        while chunk := s.recv(65536):
            data += chunk
    head_part, _, rest = data.partition(b"\r\n\r\n")
    return interim, int(head_part.split(b" ", 2)[1]), rest


def post(url: str, body: bytes, *, method: str = "POST", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, u.path, body=body if method == "POST" else None, headers=headers or {"Content-Type": "application/pkixcmp"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def assert_no_cache(headers: dict[str, str]) -> None:
    assert headers.get("cache-control") == "no-cache"
    assert headers.get("pragma") == "no-cache"


# --------------------------------------------------------------------------- the WSGI app, stand-in CA


class StandInCA:
    """Just enough of the TestCA contract to observe the HTTP layer."""

    tcp_alias = "tcp"

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.answer = answer

    def alias_exists(self, alias: str) -> bool:
        return alias in ("ra", "ra-sig", "cmp", "tcp", "x" * 32)

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]:
        self.calls.append((alias, der))
        if callable(self.answer):
            return self.answer(alias, der)
        if self.answer is not None:
            return self.answer
        return 200, b"\x30\x03\x02\x01\x02"


class ExplodingInput:
    """A wsgi.input that fails the test if anything reads it."""

    read_called = False

    def read(self, *a: Any) -> bytes:
        ExplodingInput.read_called = True
        raise AssertionError("the body was read")

    readline = read


def call_app(app: Any, path: str, *, method: str = "POST", body: bytes | None = b"0\x00", length: str | None = "auto",
             stream: Any = None) -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": stream if stream is not None else io.BytesIO(body or b""),
        "wsgi.url_scheme": "http",
    }
    if length == "auto":
        if body is not None:
            environ["CONTENT_LENGTH"] = str(len(body))
    elif length is not None:
        environ["CONTENT_LENGTH"] = length
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"] = int(status.split()[0])
        captured["headers"] = {k.lower(): v for k, v in headers}

    out = b"".join(app(environ, start_response))
    assert captured["headers"]["content-length"] == str(len(out))
    assert_no_cache(captured["headers"])
    return captured["status"], captured["headers"], out


@pytest.mark.parametrize(
    "path,alias",
    [
        ("/ejbca/publicweb/cmp/ra", "ra"),
        ("/ejbca/publicweb/cmp/ra/", "ra"),
        ("/ejbca/publicweb/cmp/ra-sig", "ra-sig"),
        ("/ejbca/publicweb/cmp/Alias_9", "Alias_9"),
        ("/ejbca/publicweb/cmp", "cmp"),
        ("/ejbca/publicweb/cmp/", "cmp"),
        ("/ra", "ra"),
        ("/3gpp", "3gpp"),
        ("/" + "x" * 32, "x" * 32),
    ],
)
def test_alias_from_path(path: str, alias: str) -> None:
    assert alias_from_path(path) == alias


@pytest.mark.parametrize(
    "path,status",
    [
        ("/ejbca/publicweb/cmp/" + "x" * 33, 400),
        ("/" + "a" * 33, 400),
        ("/ejbca/publicweb/cmp/ra.sig", 400),
        ("/ejbca/publicweb/cmp/r%20a", 400),
        ("/ejbca/publicweb/cmp/ra;x", 400),
        ("/ejbca/publicweb/cmp/ra/extra", 404),
        ("/pkix/ra", 404),
        ("/", 404),
    ],
)
def test_alias_from_path_refuses(path: str, status: int) -> None:
    with pytest.raises(_PathError) as info:
        alias_from_path(path)
    assert info.value.status == status


def test_unknown_alias_is_404_without_reading_the_body() -> None:
    ca = StandInCA()
    ExplodingInput.read_called = False
    status, headers, text = call_app(make_app(ca), "/ejbca/publicweb/cmp/nosuch", body=None, length="5000", stream=ExplodingInput())
    assert status == 404 and b"nosuch" in text
    assert not ExplodingInput.read_called and ca.calls == []


def test_long_alias_is_400_without_reading_the_body() -> None:
    ExplodingInput.read_called = False
    status, _, _ = call_app(make_app(StandInCA()), "/ejbca/publicweb/cmp/" + "y" * 33, body=None, length="10", stream=ExplodingInput())
    assert status == 400 and not ExplodingInput.read_called


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "OPTIONS"])
def test_methods_other_than_post_are_405(method: str) -> None:
    ca = StandInCA()
    status, headers, _ = call_app(make_app(ca), "/ejbca/publicweb/cmp/ra", method=method, body=None, length=None, stream=ExplodingInput())
    assert status == 405 and headers["allow"] == "POST" and ca.calls == []


def test_oversized_body_is_400_without_reading_it() -> None:
    ca = StandInCA()
    ExplodingInput.read_called = False
    status, _, text = call_app(make_app(ca), "/ra", body=None, length=str(MAX_BODY_SIZE + 1), stream=ExplodingInput())
    assert status == 400 and b"100000" in text
    assert not ExplodingInput.read_called and ca.calls == []


def test_body_of_exactly_the_limit_reaches_the_ca() -> None:
    ca = StandInCA()
    status, headers, _ = call_app(make_app(ca), "/ra", body=b"\x00" * MAX_BODY_SIZE)
    assert status == 200 and len(ca.calls[0][1]) == MAX_BODY_SIZE
    assert headers["content-type"] == "application/pkixcmp"


@pytest.mark.parametrize("length", [None, "", "abc", "-1", "1e3", "\u00b2"])
def test_missing_or_malformed_length_is_400(length: str | None) -> None:
    ca = StandInCA()
    status, _, _ = call_app(make_app(ca), "/ra", body=b"0\x00", length=length)
    assert status == 400 and ca.calls == []


def test_body_shorter_than_its_length_is_400() -> None:
    ca = StandInCA()
    status, _, _ = call_app(make_app(ca), "/ra", body=b"0\x00", length="50", stream=io.BytesIO(b"0\x00"))
    assert status == 400 and ca.calls == []


def test_the_ca_gets_alias_and_exact_body() -> None:
    ca = StandInCA()
    status, headers, out = call_app(make_app(ca), "/ejbca/publicweb/cmp/ra-sig", body=b"\x30\x01\x00")
    assert (status, out) == (200, b"\x30\x03\x02\x01\x02")
    assert ca.calls == [("ra-sig", b"\x30\x01\x00")]
    assert headers["content-type"] == "application/pkixcmp"


def _raise(alias: str, der: bytes) -> tuple[int, bytes]:
    raise RuntimeError("secret internal detail")


@pytest.mark.parametrize("answer", [_raise, (500, b"boom")], ids=["raises", "http-500"])
def test_a_failing_ca_never_gives_a_500_or_traceback(answer: Any) -> None:
    status, headers, out = call_app(make_app(StandInCA(answer)), "/ra", body=b"\x30\x00")
    assert status == 200 and headers["content-type"] == "application/pkixcmp"
    assert b"Traceback" not in out and b"secret internal detail" not in out
    msg = parse_message(out)
    assert msg.body_type == "error" and not msg.protected
    assert msg.content.status.status == "rejection"  # type: ignore[union-attr]
    assert "systemFailure" in msg.content.status.fail_info  # type: ignore[union-attr]


def test_answer_frame_type_tells_pkiconf_apart() -> None:
    header = HeaderBuilder().sender("").recipient("").build()
    from cmpclient.message.body import pkiconf_body

    assert answer_frame_type(encode_message(assemble(header, pkiconf_body()))) == FIN_REP
    assert answer_frame_type(encode_message(assemble(header, error_body(fail_info=["badRequest"])))) == PKI_REP
    assert answer_frame_type(b"\x30") == PKI_REP  # truncated: no crash


# --------------------------------------------------------------------------- the real CA over HTTP


def test_real_unknown_alias_404_before_the_body_arrives(testca_server) -> None:
    """Announce 50 000 body bytes, send 10: the 404 comes anyway (the body is never awaited)."""
    head = (
        b"POST /ejbca/publicweb/cmp/nosuchalias HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/pkixcmp\r\nContent-Length: 50000\r\n\r\n"
    )
    t0 = time.monotonic()
    status, headers, body = raw_http(testca_server.port, head, b"0123456789", timeout=10)
    assert status == 404 and b"nosuchalias" in body
    assert time.monotonic() - t0 < 5
    assert_no_cache(headers)


def test_real_expect_100_continue_gets_its_interim_answer_then_the_cmp_answer(testca_server) -> None:
    """A client that sends ``Expect: 100-continue`` (curl before 7.69 for bodies over 1 kB,
    or when told to) waits for "100 Continue" (curl: 1 s, then it sends anyway); the
    threaded server answers it as soon as the body is read."""
    interim, status, body = post_expecting_continue(testca_server.port, "/ejbca/publicweb/cmp/ra", pbm_genm_der())
    assert interim == b"HTTP/1.1 100 Continue"
    assert status == 200 and parse_message(body).body_type == "genp"


def test_real_expect_100_continue_refused_from_the_head_gets_no_interim_answer(testca_server) -> None:
    interim, status, body = post_expecting_continue(testca_server.port, "/ejbca/publicweb/cmp/nosuchalias", b"0" * 2000)
    assert interim is None and status == 404 and b"nosuchalias" in body


def test_real_long_alias_is_400(testca_server) -> None:
    status, headers, _ = post(testca_server.url("a" * 33), b"\x30\x00")
    assert status == 400
    assert_no_cache(headers)


def test_real_get_is_405(testca_server) -> None:
    status, headers, _ = post(testca_server.url("ra"), b"", method="GET")
    assert status == 405 and headers["allow"] == "POST"


def test_real_oversized_body_is_400_without_reading_it(testca_server) -> None:
    head = (
        b"POST /ejbca/publicweb/cmp/ra HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/pkixcmp\r\nContent-Length: 100001\r\n\r\n"
    )
    status, headers, _ = raw_http(testca_server.port, head, b"", timeout=10)
    assert status == 400
    assert_no_cache(headers)


def test_real_missing_length_is_400(testca_server) -> None:
    head = b"POST /ejbca/publicweb/cmp/ra HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/pkixcmp\r\nConnection: close\r\n\r\n"
    status, _, _ = raw_http(testca_server.port, head)
    assert status == 400


@pytest.mark.parametrize("body", [b"this is not DER", b"\x30\x03\x02\x01\x02", b""], ids=["text", "not-a-pkimessage", "empty"])
def test_real_non_cmp_body_is_an_unprotected_bad_request_error(testca_server, body: bytes) -> None:
    status, headers, out = post(testca_server.url("ra"), body)
    assert status == 200
    assert headers["content-type"] == "application/pkixcmp"
    assert_no_cache(headers)
    msg = parse_message(out)
    assert msg.body_type == "error" and not msg.protected
    st = msg.content.status  # type: ignore[union-attr]
    assert st.status == "rejection" and "badRequest" in st.fail_info
    assert st.texts, "the error should say why (statusString)"


def test_real_short_path_serves_the_same_alias(testca_server) -> None:
    status, headers, out = post(testca_server.short_url("ra"), pbm_genm_der())
    assert status == 200 and headers["content-type"] == "application/pkixcmp"
    msg = parse_message(out)
    assert msg.body_type == "genp" and msg.protected


def test_real_ir_over_http(testca_server) -> None:
    req, key = ir_request("http-ir-1")
    result = enroll(ra_config(testca_server.url("ra")), "ir", req)
    assert result.confirmed
    assert _pubkey_der(result.certificate) == _pubkey_der(key)


# --------------------------------------------------------------------------- the real CA over TCP


def test_tcp_round_trip_with_our_transport(testca_server) -> None:
    req, key = ir_request("tcp-ir-1")
    result = enroll(ra_config(testca_server.tcp_url), "ir", req)  # ir + certConf: two connections
    assert result.confirmed
    assert _pubkey_der(result.certificate) == _pubkey_der(key)


def _tcp_exchange(port: int, *frames: bytes, max_size: int = 1 << 20) -> list[Any]:
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for f in frames:
            s.sendall(f)
            answers.append(read_frame(s, max_size=max_size, raise_on_error=False))
    return answers


class KeptTCPTransport:
    """Our framing on ONE kept connection for a whole transaction (records answer types)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.answer_types: list[int] = []

    def send(self, der: bytes) -> bytes:
        self.sock.sendall(encode_frame(der, PKI_REQ))
        frame = read_frame(self.sock)
        self.answer_types.append(frame.msg_type)
        return frame.payload

    def close(self) -> None:
        self.sock.close()


def test_tcp_certconf_is_answered_with_finrep_on_a_kept_connection(testca_server) -> None:
    """ir and certConf on one connection: pkiRep(ip), then finRep(pkiconf) as EJBCA does."""
    cfg = ra_config(testca_server.url("ra"))
    cfg.transport = KeptTCPTransport(testca_server.tcp_port)
    try:
        req, key = ir_request("tcp-keep-1")
        result = enroll(cfg, "ir", req)
    finally:
        cfg.transport.close()
    assert result.confirmed and _pubkey_der(result.certificate) == _pubkey_der(key)
    assert cfg.transport.answer_types == [PKI_REP, FIN_REP]


@pytest.mark.parametrize(
    "frame,expect",
    [
        (encode_frame(encode_poll_req(7), POLL_REQ), "pollReq"),
        (encode_frame(b"", 4), "type 4"),
        (b"\x00\x00\x00\x05\x00" + b"\x30\x03\x02\x01\x01", "version"),  # RFC 2510 layout
        (b"\x00\x10\x00\x00\x0a\x00\x00", "limit"),  # announces ~1 MB
    ],
    ids=["pollReq", "unknown-type", "rfc2510", "oversized"],
)
def test_tcp_bad_frames_get_errormsgrep_and_close(testca_server, frame: bytes, expect: str) -> None:
    with socket.create_connection(("127.0.0.1", testca_server.tcp_port), timeout=10) as s:
        s.sendall(frame)
        answer = read_frame(s, raise_on_error=False)
        assert answer.msg_type == ERROR_MSG_REP
        assert expect.lower() in answer.payload.decode().lower()
        assert s.recv(1) == b""  # closed by the server


def test_tcp_non_cmp_payload_gets_a_cmp_error(testca_server) -> None:
    (answer,) = _tcp_exchange(testca_server.tcp_port, encode_frame(b"garbage", PKI_REQ))
    assert answer.msg_type == PKI_REP
    msg = parse_message(answer.payload)
    assert msg.body_type == "error" and "badRequest" in msg.content.status.fail_info  # type: ignore[union-attr]


def test_tcp_idle_connection_is_closed_by_a_clean_client_close(testca_server) -> None:
    # Open and close without sending: the listener must simply go on serving.
    socket.create_connection(("127.0.0.1", testca_server.tcp_port), timeout=5).close()
    (answer,) = _tcp_exchange(testca_server.tcp_port, encode_frame(pbm_genm_der(), PKI_REQ))
    assert parse_message(answer.payload).body_type == "genp"


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("serialized", [True, False], ids=["one-lock", "free-threads"])
def test_concurrent_enrolments_in_process(testca_server, testca_factory, serialized: bool) -> None:
    """Several threads enrol at once over HTTP and TCP; with ``free-threads`` the server
    threads also run ``ca.handle`` concurrently (the core's store is per-thread)."""
    server = testca_server if serialized else testca_factory("free-threads", serialize=False)

    def one(i: int) -> tuple[bytes, bytes, int]:
        req, key = ir_request(f"conc-{serialized}-{i}")
        url = server.tcp_url if i % 3 == 0 else server.url("ra")
        res = enroll(ra_config(url), "ir", req)
        return _pubkey_der(res.certificate), _pubkey_der(key), res.certificate.serial_number

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(16)))
    assert all(a == b for a, b, _ in results)
    assert len({s for _, _, s in results}) == 16


# --------------------------------------------------------------------------- cmpclient serve


class ServeProcess:
    """``python -m cmpclient.cli.testca_cmd serve ...`` with its stdout polled for the port."""

    LISTEN = re.compile(r"^cmpclient serve: listening on http://127\.0\.0\.1:(\d+)$", re.M)
    TCP = re.compile(r"CMP over TCP on tcp://127\.0\.0\.1:(\d+)", re.M)

    #: The standalone module entry (works without the main CLI group) and the real
    #: ``cmpclient`` entry point that users run.
    ENTRIES = {"module": ["-m", "cmpclient.cli.testca_cmd"], "cmpclient": ["-m", "cmpclient"]}

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None, entry: str = "module") -> None:
        self.out_path = tmp / "serve.out"
        self.err_path = tmp / "serve.err"
        self.argv = [sys.executable, *self.ENTRIES[entry], "serve", "--data-dir", str(tmp / "data"), *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=REPO,
                                         start_new_session=True)
        self.port = self.tcp_port = 0

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nrc={self.proc.poll()}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"

    def wait_ready(self, timeout: float = 60.0) -> "ServeProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.LISTEN.search(self.stdout)
            if m:
                self.port = int(m.group(1))
                t = self.TCP.search(self.stdout)
                self.tcp_port = int(t.group(1)) if t else 0
                return self
            try:
                self.proc.wait(timeout=0.05)
                raise AssertionError("serve exited early\n" + self.describe())
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        raise AssertionError("serve did not announce its port\n" + self.describe())

    def url(self, alias: str) -> str:
        return f"http://127.0.0.1:{self.port}{CMP_PATH}{alias}"

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("serve did not stop on SIGTERM\n" + self.describe())

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def serve_process(tmp_path: Path):
    started: list[ServeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, entry: str = "module") -> ServeProcess:
        p = ServeProcess(tmp_path, *args, env=env, entry=entry)
        started.append(p)
        return p.wait_ready()

    yield start
    for p in started:
        p.kill()


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _wait_children(pid: int, n: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    kids = _children(pid)
    while len(kids) < n and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a condition under a deadline, not waiting for a guess
        kids = _children(pid)
    return kids


@pytest.mark.parametrize(
    "workers,sig,entry",
    [
        ("2", signal.SIGTERM, "cmpclient"),
        ("1", signal.SIGTERM, "cmpclient"),
        ("2", signal.SIGINT, "module"),
        ("1", signal.SIGINT, "module"),
    ],
    ids=["gunicorn-2-workers-SIGTERM", "threads-SIGTERM", "gunicorn-2-workers-SIGINT", "threads-SIGINT"],
)
def test_serve_subprocess_serves_http_and_tcp_and_stops_on_signal(serve_process, workers: str, sig: int, entry: str) -> None:
    srv = serve_process("--port", "0", "--tcp-port", "0", "--workers", workers, entry=entry)
    assert srv.port and srv.tcp_port, srv.describe()
    assert "ra-sig:" in srv.stdout and "ManagementCA" in srv.stdout  # the CA summary
    if workers == "2":
        assert "2 gunicorn worker processes" in srv.stdout
        assert len(_wait_children(srv.proc.pid, 2)) == 2, srv.describe()
    else:
        assert "one process, threads" in srv.stdout
    # A chunked body has no Content-Length: refused like a missing one.
    head = b"POST /ejbca/publicweb/cmp/ra HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    assert raw_http(srv.port, head, b"2\r\n0\x00\r\n0\r\n\r\n")[0] == 400, srv.describe()
    # HTTP: a non-CMP body gets the CMP error; a real ir enrols.
    status, headers, out = post(srv.url("ra"), b"junk")
    assert status == 200 and parse_message(out).body_type == "error", srv.describe()
    assert post(srv.url("nosuch"), b"junk")[0] == 404
    # Expect: 100-continue (curl's) is answered by both servers (gunicorn's and the threaded one).
    interim, status, out = post_expecting_continue(srv.port, "/ejbca/publicweb/cmp/ra", pbm_genm_der())
    assert interim == b"HTTP/1.1 100 Continue" and status == 200 and parse_message(out).body_type == "genp", srv.describe()
    req, key = ir_request(f"serve-{workers}")
    res = enroll(ra_config(srv.url("ra")), "ir", req)
    assert _pubkey_der(res.certificate) == _pubkey_der(key)
    # TCP on the port it announced.
    req, key = ir_request(f"serve-tcp-{workers}")
    res = enroll(ra_config(f"tcp://127.0.0.1:{srv.tcp_port}"), "ir", req)
    assert _pubkey_der(res.certificate) == _pubkey_der(key)
    rc = srv.terminate(sig)
    assert rc == 0, srv.describe()
    assert "stopped" in srv.stdout, srv.describe()
    assert "Traceback" not in srv.stderr, srv.describe()


def test_serve_with_worker_processes_under_concurrent_load(serve_process) -> None:
    srv = serve_process("--port", "0", "--workers", "2")

    def one(i: int) -> tuple[bool, int]:
        req, key = ir_request(f"load-{i}")
        res = enroll(ra_config(srv.url("ra")), "ir", req)
        return _pubkey_der(res.certificate) == _pubkey_der(key), res.certificate.serial_number

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, range(12)))
    assert all(ok for ok, _ in results)
    assert len({s for _, s in results}) == 12
    assert len(_wait_children(srv.proc.pid, 2)) == 2, srv.describe()  # really two worker processes
    assert srv.terminate() == 0, srv.describe()


def test_serve_refuses_a_taken_port(serve_process, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = ServeProcess(tmp_path, "--port", str(port))
        rc = p.proc.wait(timeout=60)
    assert rc != 0
    assert "cannot serve" in p.stderr and "Traceback" not in p.stderr, p.describe()


def test_serve_without_gunicorn_falls_back_to_threads(serve_process, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    (hide / "gunicorn").mkdir(parents=True)
    (hide / "gunicorn" / "__init__.py").write_text("raise ImportError('gunicorn hidden by the test')\n")
    srv = serve_process("--port", "0", "--workers", "3", env={"PYTHONPATH": str(hide)})
    assert "one process, threads" in srv.stdout, srv.describe()
    assert "gunicorn is not installed" in srv.stderr, srv.describe()
    req, key = ir_request("no-gunicorn")
    assert _pubkey_der(enroll(ra_config(srv.url("ra")), "ir", req).certificate) == _pubkey_der(key)
    assert srv.terminate() == 0, srv.describe()
