"""The proxy's error table, row by row: each asserts the answer AND that the upstream saw
nothing (a rejected message never leaves the proxy). Plus pass-through and either-form."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_testlib import (
    CA_DN,
    PKI,
    SECRET,
    RecordingUpstream,
    config,
    error_of,
    make_crl,
    mac,
    request,
    self_signed_sig,
    sig,
    signer,
)

from cmpclient.errors import HTTPStatusError, TransportError, TransportTimeout
from cmpclient.message import body as B
from cmpclient.message.parse import parse_message
from cmpclient.proxy import Proxy
from cmpclient.proxy.core import CMP_CONTENT_TYPE
from cmpclient.proxy.revocation import CRLCache

CHAIN = PKI / "chain.pem"


def proxy_for(tmp_path: Path, *, crl: Path | str | None = None, cache: CRLCache | None = None,
              upstream: RecordingUpstream | None = None) -> tuple[Proxy, RecordingUpstream]:
    crl_line = f'crl = "{crl}"' if crl is not None else ""
    (tmp_path / "empty").mkdir(exist_ok=True)
    toml = f"""
[alias.open]
upstream = "http://ca.invalid/ejbca/publicweb/cmp/open"

[alias.mac]
upstream = "http://ca.invalid/ejbca/publicweb/cmp/ra"
mac_keys = ["ManagementCA:env:PROXY_TEST_SECRET", "OtherCA:env:PROXY_TEST_SECRET"]

[alias.sig]
upstream = "http://ca.invalid/ejbca/publicweb/cmp/ra-sig"
issuer_chain = "{CHAIN}"
{crl_line}

[alias.both]
upstream = "http://ca.invalid/ejbca/publicweb/cmp/both"
mac_keys = ["ManagementCA:env:PROXY_TEST_SECRET"]
issuer_chain = "{PKI}"

[alias.nochain]
upstream = "http://ca.invalid/x"
require_signature = true

[alias.emptychain]
upstream = "http://ca.invalid/x"
issuer_chain = "empty"
"""
    up = upstream or RecordingUpstream()
    return Proxy(config(toml, base_dir=tmp_path), up.send, crl_cache=cache), up


def assert_refused(answer: tuple[int, bytes, str], up: RecordingUpstream, fail_info: str, text: str) -> None:
    status, body, ctype = answer
    assert (status, ctype) == (200, CMP_CONTENT_TYPE)
    pki_status, fail_infos, texts, parsed = error_of(body)
    assert pki_status == "rejection"
    assert fail_infos == (fail_info,), (fail_infos, texts)
    assert any(text in t for t in texts), texts
    assert not parsed.protected, "the proxy's own errors are unprotected"
    assert up.calls == [], "a rejected message reached the upstream"


# --------------------------------------------------------------------------- badRequest rows


@pytest.mark.parametrize("body", [b"hello", b"", b"\x30\x80\x00\x00", request() + b"\x00", request()[:-3]],
                         ids=["text", "empty", "ber-indefinite", "trailing-byte", "truncated"])
def test_non_der_body_is_a_badrequest_error(tmp_path: Path, body: bytes) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle("open", body), up, "badRequest", "not a valid CMP message")


def test_unknown_alias_is_404(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    assert not proxy.alias_exists("nope")
    status, body, ctype = proxy.handle("nope", request(mac()))
    assert status == 404 and ctype.startswith("text/plain") and b"nope" in body
    assert up.calls == []


@pytest.mark.parametrize("alias", ["mac", "sig", "both"])
def test_required_protection_missing(tmp_path: Path, alias: str) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle(alias, request()), up, "badRequest", "required protection missing")


def test_signature_on_a_mac_only_alias_is_refused(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle("mac", request(sig())), up, "badRequest", "requires a MAC")


def test_mac_on_a_signature_only_alias_is_refused(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle("sig", request(mac())), up, "badRequest", "requires a signature")


def test_mac_with_wrong_secret(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle("mac", request(mac(b"wrong"))), up, "badRequest", "MAC verification failed")


def test_mac_with_unknown_key_id(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    der = request(mac(kid=b"NoSuchCA"), recipient="CN=NoSuchCA")
    assert_refused(proxy.handle("mac", der), up, "badRequest", "no key for KeyID 'NoSuchCA'")


def test_mac_iteration_bound(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle("mac", request(mac(iterations=20_000))), up, "badRequest", "MAC verification failed")


def test_signature_does_not_verify(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    der = bytearray(request(sig()))
    # The protection BIT STRING sits before extraCerts; flip a byte of the signature value.
    der_b = bytes(der)
    parsed = parse_message(der_b)
    value = parsed.message["protection"].asOctets()
    pos = der_b.index(value)
    der[pos + len(value) // 2] ^= 0x01
    assert_refused(proxy.handle("sig", bytes(der)), up, "badRequest", "signature verification failed")


def test_signer_not_from_the_issuer_chain(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle("sig", request(self_signed_sig())), up, "badRequest", "signature verification failed")


def test_no_signing_certificate(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    from cmpclient.asn1 import cmp
    from cmpclient.message.pkimessage import encode_message

    signed = parse_message(request(sig())).message
    msg = cmp.PKIMessage()  # the same signed message without extraCerts
    for part in ("header", "body", "protection"):
        msg[part] = signed[part]
    der = encode_message(msg)
    assert not parse_message(der).extra_certs
    assert_refused(proxy.handle("sig", der), up, "badRequest", "no signing certificate")


def test_signer_revoked(tmp_path: Path) -> None:
    _, cert = signer()
    crl = make_crl(tmp_path / "issuing.crl", revoked=[cert.serial_number])
    proxy, up = proxy_for(tmp_path, crl=crl)
    assert_refused(proxy.handle("sig", request(sig())), up, "badRequest", "signer revoked")


# --------------------------------------------------------------------------- systemUnavail rows


def test_revocation_check_impossible_crl_missing(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path, crl=tmp_path / "missing.crl")
    assert_refused(proxy.handle("sig", request(sig())), up, "systemUnavail", "revocation check impossible")


def test_revocation_check_impossible_crl_signed_by_someone_else(tmp_path: Path) -> None:
    from cmpclient.keys import generate_key

    crl = make_crl(tmp_path / "forged.crl", key=generate_key("secp256r1"))
    proxy, up = proxy_for(tmp_path, crl=crl)
    assert_refused(proxy.handle("sig", request(sig())), up, "systemUnavail", "not signed by")


def test_revocation_check_impossible_crl_of_another_issuer(tmp_path: Path) -> None:
    from proxy_testlib import pem_cert
    from cmpclient.keys import load_private_key

    crl = make_crl(tmp_path / "root.crl", key=load_private_key(PKI / "root-ca.key.pem"), issuer=pem_cert("root-ca.crt.pem"))
    proxy, up = proxy_for(tmp_path, crl=crl)
    assert_refused(proxy.handle("sig", request(sig())), up, "systemUnavail", "not by the signer's issuer")


def test_revocation_check_impossible_crl_expired(tmp_path: Path) -> None:
    import datetime as dt

    crl = make_crl(tmp_path / "old.crl", next_update=-dt.timedelta(hours=1))
    proxy, up = proxy_for(tmp_path, crl=crl)
    assert_refused(proxy.handle("sig", request(sig())), up, "systemUnavail", "expired")


def test_crl_cache_failure(tmp_path: Path) -> None:
    def broken(source: str) -> bytes:
        raise RuntimeError("cache store unavailable")

    proxy, up = proxy_for(tmp_path, crl=tmp_path / "any.crl", cache=CRLCache(broken))
    assert_refused(proxy.handle("sig", request(sig())), up, "systemUnavail", "CRL cache failure")


@pytest.mark.parametrize("alias", ["nochain", "emptychain"])
def test_no_chains_configured(tmp_path: Path, alias: str) -> None:
    proxy, up = proxy_for(tmp_path)
    assert_refused(proxy.handle(alias, request(sig())), up, "systemUnavail", "no issuer chains configured")


def test_upstream_timeout_is_system_unavail(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path, upstream=RecordingUpstream(error=TransportTimeout("no answer within 1 s")))
    status, body, ctype = proxy.handle("open", request())
    assert (status, ctype) == (200, CMP_CONTENT_TYPE)
    _, fail_infos, texts, _ = error_of(body)
    assert fail_infos == ("systemUnavail",) and "did not answer in time" in texts[0]


@pytest.mark.parametrize("error", [TransportError("connection refused"), TransportError("connection reset"),
                                   HTTPStatusError("200 with text/html", status=200, content_type="text/html", body=b"<html>"),
                                   RuntimeError("bug")], ids=["refused", "reset", "not-cmp", "unexpected"])
def test_failure_to_answer_is_http_500(tmp_path: Path, error: BaseException) -> None:
    proxy, up = proxy_for(tmp_path, upstream=RecordingUpstream(error=error))
    status, body, ctype = proxy.handle("open", request())
    assert status == 500 and ctype.startswith("text/plain") and b"\x30" not in body[:1]


def test_upstream_http_error_is_passed_on_unchanged(tmp_path: Path) -> None:
    error = HTTPStatusError("HTTP 404", status=404, content_type="text/plain; charset=utf-8", body=b"unknown CMP alias 'x'\n")
    proxy, up = proxy_for(tmp_path, upstream=RecordingUpstream(error=error))
    assert proxy.handle("open", request()) == (404, b"unknown CMP alias 'x'\n", "text/plain; charset=utf-8")


# --------------------------------------------------------------------------- what passes


@pytest.mark.parametrize("alias,protection", [
    ("open", None), ("open", "mac"), ("mac", "mac"), ("sig", "sig"), ("both", "mac"), ("both", "sig"),
])
def test_pass_through_is_byte_identical(tmp_path: Path, alias: str, protection: str | None) -> None:
    answer = request(body=B.pkiconf_body(), tid=b"A" * 16)
    proxy, up = proxy_for(tmp_path, upstream=RecordingUpstream(answer=answer))
    der = request({"mac": mac, "sig": sig, None: lambda: None}[protection]())
    status, body, ctype = proxy.handle(alias, der)
    assert (status, ctype) == (200, CMP_CONTENT_TYPE)
    assert up.calls == [(alias, der)], "the request went upstream unchanged"
    assert body == up.answers[0] == answer, "the answer came back unchanged"


def test_signer_not_revoked_passes_and_crl_is_cached(tmp_path: Path) -> None:
    crl = make_crl(tmp_path / "issuing.crl", revoked=[12345], pem=True)
    cache = CRLCache()
    proxy, up = proxy_for(tmp_path, crl=crl, cache=cache)
    for _ in range(3):
        assert proxy.handle("sig", request(sig()))[0] == 200
    assert len(up.calls) == 3 and cache.fetches == 1


def test_mac_key_found_by_recipient_cn_when_no_sender_kid(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    der = request(mac(kid=None), recipient="CN=OtherCA,O=x")
    assert proxy.handle("mac", der)[0] == 200 and len(up.calls) == 1


def test_error_answers_the_request(tmp_path: Path) -> None:
    proxy, up = proxy_for(tmp_path)
    der = request(mac(b"wrong"), pvno=3, tid=b"t" * 16, nonce=b"n" * 16)
    _, _, _, parsed = error_of(proxy.handle("mac", der)[1])
    h = parsed.header
    assert h.transaction_id == b"t" * 16 and h.recip_nonce == b"n" * 16 and h.pvno == 3
    assert h.sender_nonce and h.sender_nonce != b"n" * 16
    from cmpclient.message.names import general_name_text

    assert general_name_text(parsed.message["header"]["sender"]) == CA_DN.replace(", ", ",")
    assert general_name_text(parsed.message["header"]["recipient"]) == "CN=requester"


def test_secret_is_not_in_the_config_repr(tmp_path: Path) -> None:
    proxy, _ = proxy_for(tmp_path)
    assert SECRET.decode() not in repr(proxy.config)
