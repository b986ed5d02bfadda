"""HTTPTransport's answer checks (status, Content-Type, size, errors) against a scripted
local HTTP/1.1 server that answers each request with the raw bytes the test gives it."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading

import pytest

from cmpclient.errors import ExitCode, HTTPStatusError, TransportError, TransportTimeout, UsageError
from cmpclient.transport import open_transport
from cmpclient.transport.http import HTTPTransport
from cmpclient.transport.tcp import TCPTransport

DER = bytes.fromhex("3003020105")


class _Request:
    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, _ = lines[0].split(" ", 2)
        self.headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self.body = body


class _Scripted:
    """Accept connections on 127.0.0.1; answer request i with ``answers[i]`` (raw bytes)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/ejbca/publicweb/cmp/alias1"
        self.answers: list[bytes | None] = []
        self.calls: list[_Request] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def answer(self, status: str, body: bytes = b"", *, ctype: str | None = "application/pkixcmp",
               extra: str = "", length: int | None = None) -> None:
        head = f"HTTP/1.1 {status}\r\n"
        if ctype is not None:
            head += f"Content-Type: {ctype}\r\n"
        head += f"Content-Length: {len(body) if length is None else length}\r\n{extra}\r\n"
        self.answers.append(head.encode("latin-1") + body)

    def _run(self) -> None:
        while len(self.calls) < 50:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            with conn:
                conn.settimeout(10)
                data = b""
                while True:
                    head, sep, rest = data.partition(b"\r\n\r\n")
                    if sep:
                        req = _Request(head, b"")
                        length = int(req.headers.get("Content-Length", "0"))
                        if len(rest) >= length:
                            req.body, data = rest[:length], rest[length:]
                            self.calls.append(req)
                            if not self.answers:
                                break
                            answer = self.answers.pop(0)
                            if answer is None:  # hold: wait for the client to give up
                                try:
                                    while conn.recv(65536):
                                        pass
                                except OSError:
                                    pass
                                break
                            conn.sendall(answer)
                            if not self.answers:
                                break  # nothing more scripted: hang up
                            continue
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    data += chunk

    def close(self) -> None:
        # close() does not interrupt a blocking accept() on Linux: wake it with a connection.
        self.stopping = True
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def srv():
    s = _Scripted()
    yield s
    s.close()


def test_post_headers_and_body(srv):
    srv.answer("200 OK", DER)
    with HTTPTransport(srv.url) as t:
        assert t.send(b"\x30\x00req") == DER
    sent = srv.calls[0]
    assert sent.method == "POST" and sent.target == "/ejbca/publicweb/cmp/alias1"
    assert sent.body == b"\x30\x00req"
    assert sent.headers["Content-Type"] == "application/pkixcmp"
    assert sent.headers["Accept"] == "application/pkixcmp"
    assert sent.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("ctype", ["application/pkixcmp", "Application/PKIXCMP", "application/pkixcmp; charset=binary"])
def test_content_type_case_and_parameters_accepted(srv, ctype):
    srv.answer("200 OK", DER, ctype=ctype)
    assert HTTPTransport(srv.url).send(b"x") == DER


def test_404_has_alias_hint_status_and_body(srv):
    srv.answer("404 Not Found", b"<html>Not Found</html>", ctype="text/html")
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(srv.url).send(b"x")
    err = info.value
    assert err.status == 404 and err.content_type == "text/html"
    assert err.body == b"<html>Not Found</html>"
    assert "404" in err.message and "text/html" in err.message and "Not Found" in err.message
    assert "/ejbca/publicweb/cmp/<alias>" in err.diagnostics()
    assert err.exit_code == ExitCode.TRANSPORT


def test_500_binary_body_shown_as_hex(srv):
    srv.answer("500 Internal Server Error", b"\x00\x01\x02\xff" * 3, ctype="application/octet-stream")
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(srv.url).send(b"x")
    assert "000102ff" in info.value.message
    assert "CA's log" in info.value.diagnostics()


def test_redirect_not_followed(srv):
    srv.answer("302 Found", ctype=None, extra="Location: http://elsewhere/cmp\r\n")
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(srv.url).send(b"x")
    assert info.value.status == 302
    assert "http://elsewhere/cmp" in info.value.diagnostics()
    assert len(srv.calls) == 1


@pytest.mark.parametrize("ctype", ["text/html", "application/pkixcmp-poll", None])
def test_wrong_or_missing_content_type_rejected(srv, ctype):
    srv.answer("200 OK", DER, ctype=ctype)
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(srv.url).send(b"x")
    assert info.value.status == 200
    assert "application/pkixcmp" in info.value.message


def test_lenient_content_type_logs_warning(srv, caplog):
    srv.answer("200 OK", DER, ctype="text/plain")
    with caplog.at_level(logging.WARNING, logger="cmpclient.transport"):
        assert HTTPTransport(srv.url, lenient_content_type=True).send(b"x") == DER
    assert any("lenient_content_type" in r.getMessage() for r in caplog.records)


def test_200_with_cmp_error_body_is_returned(srv):
    # EJBCA and openssl's mock server answer errors as HTTP 200 + a CMP error message.
    srv.answer("200 OK", b"\x30\x05error")
    assert HTTPTransport(srv.url).send(b"x") == b"\x30\x05error"


def test_empty_body_rejected(srv):
    srv.answer("200 OK", b"")
    with pytest.raises(TransportError, match="empty body"):
        HTTPTransport(srv.url).send(b"x")


def test_max_response_size(srv):
    srv.answer("200 OK", b"\x30" + b"\x00" * 2000)
    with pytest.raises(TransportError, match="exceeds the limit of 1000"):
        HTTPTransport(srv.url, max_response_size=1000).send(b"x")


def test_declared_length_over_the_limit_refused_before_reading(srv):
    srv.answer("200 OK", b"\x30\x00", length=5000)  # the head alone decides
    with pytest.raises(TransportError, match="5000 bytes .* exceeds the limit of 1000"):
        HTTPTransport(srv.url, max_response_size=1000, timeout=5).send(b"x")


def test_chunked_answer_is_read(srv):
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: chunked\r\n\r\n"
    srv.answers.append(head.encode() + b"3\r\n\x30\x01\x05\r\n0\r\n\r\n")
    assert HTTPTransport(srv.url, timeout=5).send(b"x") == b"\x30\x01\x05"


def test_answer_cut_short_is_a_transport_error(srv):
    srv.answer("200 OK", b"\x30\x05ab", length=7)  # promises 7, sends 4, then closes
    with pytest.raises(TransportError) as info:
        HTTPTransport(srv.url, timeout=5).send(b"x")
    assert info.value.exit_code == ExitCode.TRANSPORT
    assert not isinstance(info.value, TransportTimeout)


def test_not_http_is_a_transport_error(srv):
    srv.answers.append(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(TransportError, match="bad HTTP answer"):
        HTTPTransport(srv.url, timeout=5).send(b"x")


def test_read_timeout_mapped(srv):
    srv.answers.append(None)  # read the request, never answer
    with pytest.raises(TransportTimeout) as info:
        HTTPTransport(srv.url, timeout=(2, 0.3)).send(b"x")
    assert info.value.exit_code == ExitCode.TIMEOUT and "0.3 s" in info.value.message


def test_server_hanging_up_without_answer(srv):
    with pytest.raises(TransportError, match="bad HTTP answer") as info:  # nothing scripted: EOF
        HTTPTransport(srv.url, timeout=5).send(b"x")
    assert not isinstance(info.value, TransportTimeout)


def test_verify_false_logs_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="cmpclient.transport"):
        HTTPTransport("https://ca.test/", verify=False).close()
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_verify_default_on_and_bad_value():
    assert HTTPTransport("http://ca.test/cmp").verify is True
    with pytest.raises(UsageError):
        HTTPTransport("http://ca.test/cmp", verify=0)  # type: ignore[arg-type]


def test_open_transport_factory():
    assert isinstance(open_transport("HTTPS://ca.test/x"), HTTPTransport)
    t = open_transport("tcp://127.0.0.1:1829", timeout=1.0)
    assert isinstance(t, TCPTransport) and t.port == 1829
    with pytest.raises(UsageError):
        open_transport("ftp://x")


def test_transports_do_not_import_requests():
    # requests + urllib3 cost ~100 ms of a cold command (issue #5); http.client does the job.
    code = (
        "import sys, cmpclient.transport, cmpclient.transport.tcp, cmpclient.transport.file, cmpclient.transport.http;"
        "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_http_proxy_gets_the_absolute_url_and_basic_auth(srv):
    srv.answer("200 OK", DER)
    target = "http://ca.test:8080/ejbca/publicweb/cmp/alias1"
    with HTTPTransport(target, proxies={"http": f"http://us%40er:p%3Ass@127.0.0.1:{srv.port}"}, timeout=5) as t:
        assert t.send(b"x") == DER
    (sent,) = srv.calls
    assert sent.target == target and sent.headers["Host"] == "ca.test:8080"
    assert sent.headers["Proxy-Authorization"] == "Basic dXNAZXI6cDpzcw=="  # us@er:p:ss


def test_proxy_from_the_environment_and_no_proxy(srv, monkeypatch, closed_port):
    closed = closed_port
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{srv.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")
    srv.answer("200 OK", DER)
    # Through the proxy: the proxy is given the name; we never resolve it.
    assert HTTPTransport("http://ca.test/cmp/x", timeout=5).send(b"x") == DER
    assert srv.calls[0].target == "http://ca.test/cmp/x"
    # NO_PROXY: connects to the URL's host itself (nothing listens there) -- not the proxy
    with pytest.raises(TransportError):
        HTTPTransport(f"http://127.0.0.2:{closed}/cmp/x", timeout=5).send(b"x")
    assert len(srv.calls) == 1
    # trust_env=False ignores the environment
    with pytest.raises(TransportError):
        HTTPTransport(f"http://127.0.0.1:{closed}/cmp/x", timeout=5, trust_env=False).send(b"x")
    assert len(srv.calls) == 1


def test_https_proxy_refusing_connect_is_a_proxy_error(srv):
    srv.answer("407 Proxy Authentication Required", b"", ctype=None)
    with pytest.raises(TransportError, match="proxy error") as info:
        HTTPTransport("https://ca.test/cmp/x", proxies={"https": f"http://127.0.0.1:{srv.port}"}, timeout=5).send(b"x")
    assert srv.calls[0].method == "CONNECT" and srv.calls[0].target == "ca.test:443"
    assert "PROXY" in info.value.diagnostics()


def test_keep_alive_connection_closed_by_the_server_is_replaced(srv):
    srv.answer("200 OK", DER)  # then the scripted server hangs up
    with HTTPTransport(srv.url, timeout=5) as t:
        assert t.send(b"x") == DER
        srv.answer("200 OK", DER + b"\x00")
        assert t.send(b"y") == DER + b"\x00"  # a new connection, not an error
    assert [c.body for c in srv.calls] == [b"x", b"y"]


def test_keep_alive_required_refuses_a_server_that_closes_within_a_transaction(srv):
    """openssl -keep_alive 2: a server closing the connection (Connection: close) before the
    transaction ends is an error on the transaction's next message; with 1 (the default)
    the next message goes on a new connection; a new transaction starts afresh."""
    srv.answer("200 OK", DER, extra="Connection: close\r\n")
    with HTTPTransport(srv.url, timeout=5) as lenient:
        assert lenient.send(b"x") == DER
        srv.answer("200 OK", DER)
        assert lenient.send(b"y") == DER  # keep alive if possible: a new connection
    srv.answer("200 OK", DER, extra="Connection: close\r\n")
    with HTTPTransport(srv.url, timeout=5, require_keep_alive=True) as strict:
        assert strict.send(b"x") == DER
        with pytest.raises(TransportError, match="keep-alive required") as info:
            strict.send(b"certConf")
        assert "--keep-alive 1" in info.value.diagnostics()
        strict.end_transaction()
        srv.answer("200 OK", DER)
        assert strict.send(b"next transaction") == DER
    assert b"certConf" not in [c.body for c in srv.calls]


def _one_ca_file(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Private TLS CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_given_tls_ca_is_the_only_trust_anchor(tmp_path, monkeypatch):
    # --tls-ca FILE must not add to the system store: a public certificate for the CA's
    # host name would pass too.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    ca = _one_ca_file(tmp_path)
    ctx = HTTPTransport("https://ca.test/cmp", verify=str(ca))._endpoint.context
    assert ctx.cert_store_stats()["x509_ca"] == 1
    # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (kept from the requests era) replace the default store
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    assert HTTPTransport("https://ca.test/cmp")._endpoint.context.cert_store_stats()["x509_ca"] == 1
    # ... unless the environment is not trusted
    ctx = HTTPTransport("https://ca.test/cmp", trust_env=False)._endpoint.context
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname


def test_proxy_default_port_is_80_and_unreachable_proxy_is_a_proxy_error():
    assert HTTPTransport("http://ca.test/x", proxies={"http": "http://proxy.test"})._endpoint.proxy_port == 80
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(TransportError, match=f"proxy error .* cannot reach the proxy 127.0.0.1:{port}") as info:
        HTTPTransport("http://ca.test/x", proxies={"http": f"http://127.0.0.1:{port}"}, timeout=5).send(b"x")
    assert "PROXY" in info.value.diagnostics()


@pytest.mark.parametrize("host,port,no_proxy,bypass", [
    ("ca.corp", 80, "corp", True),
    ("ca.corp", 80, ".corp", True),
    ("corp", 80, ".corp", True),
    ("notcorp", 80, "corp", False),
    ("ca.corp", 8080, "ca.corp:8080", True),
    ("ca.corp", 80, "ca.corp:8080", False),
    ("10.1.2.3", 80, "10.0.0.0/8", True),
    ("11.1.2.3", 80, "10.0.0.0/8", False),
    ("::1", 80, "::1", True),
    ("anything", 1, "*", True),
    ("ca.corp", 80, "", False),
    ("ca.corp", 80, "other, ca.corp", True),
])
def test_no_proxy_forms(host, port, no_proxy, bypass):
    from cmpclient.transport.http import _no_proxy

    assert _no_proxy(host, port, no_proxy) is bypass


def test_url_path_is_percent_encoded_and_userinfo_becomes_basic_auth(srv):
    srv.answer("200 OK", DER)
    url = f"http://us%40er:p%3Ass@127.0.0.1:{srv.port}/cmp/ä b?x=1 2"
    assert HTTPTransport(url, timeout=5).send(b"x") == DER
    (sent,) = srv.calls
    assert sent.target == "/cmp/%C3%A4%20b?x=1%202"
    assert sent.headers["Authorization"] == "Basic dXNAZXI6cDpzcw=="
    assert "us" not in sent.headers["Host"]


def test_url_userinfo_is_not_sent_to_a_proxy_in_the_target(srv):
    srv.answer("200 OK", DER)
    with HTTPTransport("http://user:pw@ca.test:8080/cmp/x", proxies={"http": f"http://127.0.0.1:{srv.port}"},
                       timeout=5) as t:
        assert t.send(b"x") == DER
    (sent,) = srv.calls
    assert sent.target == "http://ca.test:8080/cmp/x" and sent.headers["Host"] == "ca.test:8080"
    assert sent.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize("url, shown", [
    ("http://alice:s3cret@ca.example:8080/ejbca/publicweb/cmp/ra", "http://alice:***@ca.example:8080/ejbca/publicweb/cmp/ra"),
    ("https://alice:a:b@[::1]:8443/x?y=1", "https://alice:***@[::1]:8443/x?y=1"),
    ("https://alice@ca.example/x", "https://alice@ca.example/x"),  # no password: unchanged
    ("http://ca.example/path@with-at", "http://ca.example/path@with-at"),  # '@' in the path is not userinfo
    ("tcp://ca.example:829", "tcp://ca.example:829"),
])
def test_redact_url(url, shown):
    from cmpclient.transport import redact_url

    assert redact_url(url) == shown


def test_a_url_password_is_basic_auth_but_never_in_messages(srv):
    srv.answer("500 Internal Server Error", b"oops", ctype="text/plain")
    url = f"http://alice:s3cret@127.0.0.1:{srv.port}/cmp/x"
    t = HTTPTransport(url, timeout=5)
    with pytest.raises(HTTPStatusError) as info:
        t.send(b"x")
    assert srv.calls[0].headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret
    assert "s3cret" not in str(info.value) + repr(t) and "alice:***@" in str(info.value)
