"""HTTPTransport's answer checks (status, Content-Type, size) with the `responses` mock."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import requests
import responses

from cmpclient.errors import ExitCode, HTTPStatusError, TransportError, TransportTimeout, UsageError
from cmpclient.transport import open_transport
from cmpclient.transport.http import HTTPTransport
from cmpclient.transport.tcp import TCPTransport

URL = "http://ca.test/ejbca/publicweb/cmp/alias1"
DER = bytes.fromhex("3003020105")


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def test_post_headers_and_body(rsps):
    rsps.post(URL, body=DER, status=200, content_type="application/pkixcmp")
    with HTTPTransport(URL) as t:
        assert t.send(b"\x30\x00req") == DER
    sent = rsps.calls[0].request
    assert sent.method == "POST"
    assert sent.body == b"\x30\x00req"
    assert sent.headers["Content-Type"] == "application/pkixcmp"
    assert sent.headers["Accept"] == "application/pkixcmp"
    assert sent.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("ctype", ["application/pkixcmp", "Application/PKIXCMP", "application/pkixcmp; charset=binary"])
def test_content_type_case_and_parameters_accepted(rsps, ctype):
    rsps.post(URL, body=DER, status=200, headers={"Content-Type": ctype})
    assert HTTPTransport(URL).send(b"x") == DER


def test_404_has_alias_hint_status_and_body(rsps):
    rsps.post(URL, body=b"<html>Not Found</html>", status=404, content_type="text/html")
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(URL).send(b"x")
    err = info.value
    assert err.status == 404 and err.content_type == "text/html"
    assert err.body == b"<html>Not Found</html>"
    assert "404" in err.message and "text/html" in err.message and "Not Found" in err.message
    assert "/ejbca/publicweb/cmp/<alias>" in err.diagnostics()
    assert err.exit_code == ExitCode.TRANSPORT


def test_500_binary_body_shown_as_hex(rsps):
    rsps.post(URL, body=b"\x00\x01\x02\xff" * 3, status=500, content_type="application/octet-stream")
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(URL).send(b"x")
    assert "000102ff" in info.value.message
    assert "CA's log" in info.value.diagnostics()


def test_redirect_not_followed(rsps):
    rsps.post(URL, status=302, headers={"Location": "http://elsewhere/cmp"})
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(URL).send(b"x")
    assert info.value.status == 302
    assert "http://elsewhere/cmp" in info.value.diagnostics()
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("ctype", ["text/html", "application/pkixcmp-poll", None])
def test_wrong_or_missing_content_type_rejected(rsps, ctype):
    rsps.post(URL, body=DER, status=200, content_type=ctype)
    with pytest.raises(HTTPStatusError) as info:
        HTTPTransport(URL).send(b"x")
    assert info.value.status == 200
    assert "application/pkixcmp" in info.value.message


def test_lenient_content_type_logs_warning(rsps, caplog):
    rsps.post(URL, body=DER, status=200, content_type="text/plain")
    with caplog.at_level(logging.WARNING, logger="cmpclient.transport"):
        assert HTTPTransport(URL, lenient_content_type=True).send(b"x") == DER
    assert any("lenient_content_type" in r.getMessage() for r in caplog.records)


def test_200_with_cmp_error_body_is_returned(rsps):
    # EJBCA and openssl's mock server answer errors as HTTP 200 + a CMP error message.
    rsps.post(URL, body=b"\x30\x05error", status=200, content_type="application/pkixcmp")
    assert HTTPTransport(URL).send(b"x") == b"\x30\x05error"


def test_empty_body_rejected(rsps):
    rsps.post(URL, body=b"", status=200, content_type="application/pkixcmp")
    with pytest.raises(TransportError, match="empty body"):
        HTTPTransport(URL).send(b"x")


def test_max_response_size(rsps):
    rsps.post(URL, body=b"\x30" + b"\x00" * 2000, status=200, content_type="application/pkixcmp")
    with pytest.raises(TransportError, match="exceeds the limit of 1000"):
        HTTPTransport(URL, max_response_size=1000).send(b"x")


def test_exceptions_mapped(rsps):
    rsps.post(URL, body=requests.exceptions.ConnectTimeout("slow"))
    with pytest.raises(TransportTimeout, match="connecting"):
        HTTPTransport(URL).send(b"x")
    rsps.replace(responses.POST, URL, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(TransportTimeout) as info:
        HTTPTransport(URL, timeout=(1, 2)).send(b"x")
    assert info.value.exit_code == ExitCode.TIMEOUT and "2 s" in info.value.message
    rsps.replace(responses.POST, URL, body=requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    with pytest.raises(TransportError) as info2:
        HTTPTransport(URL).send(b"x")
    assert "--trusted" in info2.value.diagnostics()


def test_verify_false_logs_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="cmpclient.transport"):
        HTTPTransport("https://ca.test/", verify=False).close()
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_verify_default_on_and_bad_value():
    assert HTTPTransport(URL).verify is True
    with pytest.raises(UsageError):
        HTTPTransport(URL, verify=0)  # type: ignore[arg-type]


def test_open_transport_factory():
    assert isinstance(open_transport("HTTPS://ca.test/x"), HTTPTransport)
    t = open_transport("tcp://127.0.0.1:1829", timeout=1.0)
    assert isinstance(t, TCPTransport) and t.port == 1829
    with pytest.raises(UsageError):
        open_transport("ftp://x")


def test_transport_package_does_not_import_requests():
    code = (
        "import sys, cmpclient.transport, cmpclient.transport.tcp, cmpclient.transport.file;"
        "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
