"""Hostile input at the test CA (issue #6): each attack is refused with the right code while
other clients keep being served.

In-process CA (``testca_server``) over real HTTP: replays in strict aliases, wrong MAC,
wrong signature, expired / not-yet-valid / revoked signers, a signer of another CA, PBM
iteration count above the bound, deep nesting, huge declared lengths, a body over
100 000 bytes.  ``cmpclient serve`` subprocesses: slow clients (no byte, half a header,
half a body) are cut off by the header/body deadlines and many open connections do not
stop an enrolment.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cmpclient.client import ClientConfig, enroll
from cmpclient.client.transaction import Transaction
from cmpclient.keys import generate_key
from cmpclient.message import body as B
from cmpclient.message.parse import ErrorContent, parse_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, SignatureProtection, popo_signer
from cmpclient.protection.mac import PBMParams
from cmpclient.transport.http import HTTPTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import load as load_script  # noqa: E402  (scripts/load.py: the serve subprocess helper)

SECRET = b"password"
RECIPIENT = "CN=ManagementCA,O=cmpclient test,C=SE"


# --------------------------------------------------------------------------- helpers


def _post(url: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", u.path, body=body, headers={"Content-Type": "application/pkixcmp"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _error(der: bytes) -> tuple[list[str], str]:
    """failInfo names and statusString of an error answer (or of a rejection)."""
    p = parse_message(der)
    if isinstance(p.content, ErrorContent):
        st = p.content.status
    else:
        st = p.content.responses[0].status  # type: ignore[union-attr]
        assert st.status == "rejection", st
    return list(st.fail_info), " / ".join(st.texts)


def _ir(name: str) -> Any:
    key = generate_key("secp256r1")
    return B.cert_req_body("ir", [CertRequestBuilder().subject(f"CN={name},UID={name},O=cmpclient test").public_key(key)
                                  .popo_signature(popo_signer(key)).build()])


def _request(protection: Any, body: Any, *, tid: bytes | None = None) -> tuple[bytes, Transaction]:
    cfg = ClientConfig(transport=None, protection=protection, recipient=RECIPIENT)
    tx = Transaction(cfg, transaction_id=tid)
    der, _ = tx.build_request(body)
    return der, tx


def _ok_enrolment(url: str, name: str) -> None:
    """Another client is served normally (and quickly) meanwhile."""
    key = generate_key("secp256r1")
    req = CertRequestBuilder().subject(f"CN={name},UID={name},O=cmpclient test").public_key(key).popo_signature(popo_signer(key)).build()
    cfg = ClientConfig(transport=HTTPTransport(url, timeout=30), protection=MACProtection(SECRET, sender_kid=b"h"), recipient=RECIPIENT)
    res = enroll(cfg, "ir", req)
    assert res.certificate.public_key() == key.public_key()


def _material_profile():
    from cmpclient.testca.core import _MATERIAL_PROFILE

    return _MATERIAL_PROFILE


def _ra_signer(testca_server, name: str, **issue: Any) -> SignatureProtection:
    """A signer certificate owned by the RA administrator, issued by ManagementCA."""
    ca = testca_server.ca
    key = generate_key("secp256r1")
    cert, cid = ca.ca("ManagementCA").issue(ca.store, subject=x509.Name.from_rfc4514_string(f"CN={name},O=cmpclient test"),
                                            public_key=key.public_key(), profile=_material_profile(), username="raadmin",
                                            force_validity=True, **{k: v for k, v in issue.items() if k != "revoke"})
    if issue.get("revoke"):
        assert ca.store.revoke(cid, reason=1)
    return SignatureProtection(key, cert)


# --------------------------------------------------------------------------- replays (strict alias)


def test_replayed_request_is_refused_in_a_strict_alias(testca_server):
    url = testca_server.url("lwcmp")
    der, _ = _request(MACProtection(SECRET, sender_kid=b"r"), _ir("replay-1"))
    status, first = _post(url, der)
    assert status == 200 and parse_message(first).body_type == "ip"
    status, again = _post(url, der)  # byte-for-byte replay: same transactionID and senderNonce
    fail, text = _error(again)
    assert status == 200 and fail == ["transactionIdInUse"], text


def test_reused_sender_nonce_with_a_fresh_transaction_id_is_refused(testca_server):
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.pkimessage import assemble, encode_message
    from cmpclient.protection import protect_message

    url = testca_server.url("lwcmp")
    nonce = b"N" * 16

    def msg(name: str) -> bytes:
        h = (HeaderBuilder().sender(f"CN={name}").recipient(RECIPIENT).transaction_id(__import__("os").urandom(16))
             .sender_nonce(nonce).message_time(_dt.datetime.now(_dt.timezone.utc)).build())
        return encode_message(protect_message(assemble(h, _ir(name)), MACProtection(SECRET, sender_kid=b"r")))

    assert parse_message(_post(url, msg("nonce-1"))[1]).body_type == "ip"
    fail, text = _error(_post(url, msg("nonce-2"))[1])
    assert fail == ["badSenderNonce"], text


def test_lenient_alias_answers_a_replay_like_ejbca(testca_server):
    """EJBCA ignores nonces: the non-strict ``ra`` alias answers a replay (documented leniency)."""
    url = testca_server.url("ra")
    der, _ = _request(MACProtection(SECRET, sender_kid=b"r"), _ir("replay-lenient"))
    assert parse_message(_post(url, der)[1]).body_type == "ip"
    assert parse_message(_post(url, der)[1]).body_type == "ip"


# --------------------------------------------------------------------------- authentication


def test_wrong_mac_is_refused(testca_server):
    der, _ = _request(MACProtection(b"not-the-secret", sender_kid=b"r"), _ir("wrong-mac"))
    status, out = _post(testca_server.url("ra"), der)
    fail, text = _error(out)
    assert status == 200 and fail == ["badRequest"] and "MAC" in text
    assert not parse_message(out).protected  # authentication failures: unprotected error


def test_tampered_mac_protected_message_is_refused(testca_server):
    der, _ = _request(MACProtection(SECRET, sender_kid=b"r"), _ir("tampered-mac"))
    i = der.find(b"tampered-mac")
    bad = der[:i] + b"T" + der[i + 1:]  # one byte of the subject changed after protection
    fail, text = _error(_post(testca_server.url("ra"), bad)[1])
    assert fail == ["badRequest"] and "MAC" in text


def test_wrong_signature_is_refused(testca_server):
    key = serialization.load_pem_private_key(testca_server.ra_admin_key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(testca_server.ra_admin_cert.read_bytes())
    der, _ = _request(SignatureProtection(key, cert), _ir("wrong-sig"))
    i = der.find(b"wrong-sig")
    bad = der[:i] + b"W" + der[i + 1:]  # one byte of the signed body changed
    fail, text = _error(_post(testca_server.url("ra-sig"), bad)[1])
    assert fail == ["badRequest"] and "signature" in text
    # the genuine message still enrols: the refusal was about the signature
    assert parse_message(_post(testca_server.url("ra-sig"), der)[1]).body_type == "ip"


@pytest.mark.parametrize("case,issue,needle", [
    ("expired", {"not_before": -400, "not_after": -1}, "expired or not yet valid"),
    ("not-yet-valid", {"not_before": 1, "not_after": 400}, "expired or not yet valid"),
    ("revoked", {"revoke": True}, "revoked"),
])
def test_signer_certificate_state_is_checked(testca_server, case, issue, needle):
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    kw: dict[str, Any] = {}
    if "not_before" in issue:
        kw["not_before"] = now + _dt.timedelta(days=issue["not_before"])
        kw["not_after"] = now + _dt.timedelta(days=issue["not_after"])
    if issue.get("revoke"):
        kw["revoke"] = True
    signer = _ra_signer(testca_server, f"ra-{case}", **kw)
    der, _ = _request(signer, _ir(f"signer-{case}"))
    fail, text = _error(_post(testca_server.url("ra-sig"), der)[1])
    assert fail == ["badRequest"] and needle in text, text


def test_signer_not_chaining_to_the_configured_ca_is_refused(testca_server, tmp_path):
    """A certificate of another (self-made) CA with the RA admin's very subject."""
    ra_cert = x509.load_pem_x509_certificate(testca_server.ra_admin_cert.read_bytes())
    rogue_ca = generate_key("secp256r1")
    key = generate_key("secp256r1")
    now = _dt.datetime.now(_dt.timezone.utc)
    from cryptography.hazmat.primitives import hashes

    cert = (x509.CertificateBuilder().subject_name(ra_cert.subject).issuer_name(ra_cert.issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .sign(rogue_ca, hashes.SHA256()))
    der, _ = _request(SignatureProtection(key, cert), _ir("rogue"))
    fail, text = _error(_post(testca_server.url("ra-sig"), der)[1])
    assert fail == ["badRequest"] and "not issued by this CA" in text, text


def test_pbm_iteration_count_above_the_bound_is_refused_without_iterating(testca_server):
    der, _ = _request(MACProtection(SECRET, params=PBMParams.new(iterations=10_001), sender_kid=b"r"), _ir("pbm-10001"))
    t0 = time.monotonic()
    fail, text = _error(_post(testca_server.url("ra"), der)[1])
    assert fail == ["badRequest"] and "10000" in text.replace(" ", "").replace(",", "").replace("_", ""), text
    # a huge count is refused as fast (the bound is checked before any hashing)
    huge = der.replace(b"\x02\x02\x27\x11", b"\x02\x04\x7f\xff\xff\xff", 1)
    assert huge != der
    assert _error(_post(testca_server.url("ra"), huge)[1])[0] == ["badRequest"]
    assert time.monotonic() - t0 < 10


# --------------------------------------------------------------------------- sizes and shapes


def _nest(depth: int, tag: int = 0x30) -> bytes:
    out = b"\x05\x00"
    for _ in range(depth):
        n = len(out)
        out = bytes([tag]) + (bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")) + out
        if len(out) > 99_000:
            break
    return out


@pytest.mark.parametrize("body", [
    pytest.param(_nest(30_000), id="nested-23119-definite"),  # the 99 000-byte cap is reached first
    pytest.param(b"\x30\x80" * 49_000, id="nested-49000-indefinite"),
    pytest.param(b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 16, id="declared-2GB"),
    pytest.param(b"\x30\x89" + b"\xff" * 9, id="length-of-9-bytes"),
    pytest.param(b"\x30\x82\x01\x80" + b"\x02\x01\x00" * 128, id="many-integers"),
], )
def test_huge_or_deeply_nested_asn1_is_a_bad_request(testca_server, body):
    t0 = time.monotonic()
    status, out = _post(testca_server.url("ra"), body)
    fail, text = _error(out)
    assert status == 200 and fail == ["badRequest"] and "not a valid CMP message" in text
    assert time.monotonic() - t0 < 10


def test_body_over_100000_bytes_is_400_and_the_server_goes_on(testca_server):
    status, out = _post(testca_server.url("ra"), b"\x30" * 100_001)
    assert status == 400 and b"100000" in out
    _ok_enrolment(testca_server.url("ra"), "after-big-body")


# --------------------------------------------------------------------------- slow clients (serve subprocess)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``cmpclient serve --workers 2`` (gunicorn sync workers) for the slow-client tests."""
    d = tmp_path_factory.mktemp("hostile-serve")
    srv = load_script.Server(d / "data", port=load_script.free_port(), workers=2, log_dir=d).start()
    yield srv
    srv.stop()


def _open(port: int, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if first:
        s.sendall(first)
    return s


def _closed_by_server(s: socket.socket, within: float) -> tuple[bool, bytes]:
    s.settimeout(within)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True, data
            data += chunk
    except (socket.timeout, TimeoutError):
        return False, data
    except ConnectionResetError:
        return True, data
    finally:
        s.close()


def test_slow_loris_is_cut_off_and_another_client_enrols(served):
    from cmpclient.testca import serve as serve_mod

    head = b"POST /ejbca/publicweb/cmp/ra HTTP/1.1\r\nHost: x\r\n"  # headers never finished
    body = b"POST /ejbca/publicweb/cmp/ra HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n\x30"  # body never finished
    lorises = [_open(served.port, head) for _ in range(3)] + [_open(served.port, body) for _ in range(3)]
    t0 = time.monotonic()
    _ok_enrolment(served.url, "beside-slowloris")
    # Six slow clients, two workers: they wait parked with what they sent; none holds a
    # worker (before, each held one for up to REQUEST_READ_TIMEOUT: 10-20 s for this enrolment).
    took = time.monotonic() - t0
    assert took < 2 * serve_mod.FIRST_BYTE_TIMEOUT, took
    for s in lorises:
        closed, _ = _closed_by_server(s, serve_mod.REQUEST_READ_TIMEOUT + 10)
        assert closed
    err = (served.log_dir / f"serve-{served.starts}.err").read_text()
    assert "closing slow client" in err
    assert "SIGKILL" not in err and "WORKER TIMEOUT" not in err  # the workers were never stuck


def test_slow_body_gets_400(served):
    from cmpclient.testca import serve as serve_mod

    s = _open(served.port, b"POST /ejbca/publicweb/cmp/ra HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\x30" * 10)
    t0 = time.monotonic()
    closed, data = _closed_by_server(s, serve_mod.REQUEST_READ_TIMEOUT + 10)
    assert closed and data.startswith(b"HTTP/1.1 400"), data[:200]
    assert time.monotonic() - t0 <= serve_mod.REQUEST_READ_TIMEOUT + 2


def test_many_open_connections_do_not_stop_enrolments(served):
    from cmpclient.testca import serve as serve_mod

    idle = [_open(served.port) for _ in range(200)]  # connect and say nothing
    try:
        t0 = time.monotonic()
        _ok_enrolment(served.url, "beside-idle-connections")
        # Silent connections are parked, not waited for: 200 of them cost the workers about
        # 200 x 5 ms of peeking, not 200 first-byte timeouts (that was 400 s of waiting).
        took = time.monotonic() - t0
        print(f"enrolled beside 200 silent connections in {took:.2f} s")
        assert took < 2 * serve_mod.FIRST_BYTE_TIMEOUT, took  # before: up to 200 x 2 s / 2 workers
        # and they are closed once the first-byte deadline has passed
        closed = [_closed_by_server(s, serve_mod.FIRST_BYTE_TIMEOUT + 10)[0] for s in idle[:20]]
        assert all(closed)
    finally:
        for s in idle:
            s.close()
    err = (served.log_dir / f"serve-{served.starts}.err").read_text()
    assert "WORKER TIMEOUT" not in err and "Traceback" not in err
