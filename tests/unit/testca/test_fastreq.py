"""The CA's fast request reader (testca/fastreq.py) against the full pyasn1 decoder.

What makes it safe: whatever it reads is strict DER the full decoder reads too, and every
value the CA takes from it -- the ParsedMessage, the sender's DER, each item's id, subject,
public key, the CertRequest bytes a POPO signature covers, the POPO algorithm and
signature -- equals what the CA derived from the pyasn1 value before.  Checked on
openssl's requests, on built ones and on random mutations; and end to end: the CA answers
a request alike whether the fast reader or the full decoder read it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mutations import EDITS, mutate
from pyasn1_modules import rfc5280
from testca_testlib import B, cert_req, issued_cert, mac, message, send

from cmpclient.asn1 import codec, oids
from cmpclient.errors import DecodeError
from cmpclient.keys import generate_key
from cmpclient.message.names import asn1_to_name
from cmpclient.message.parse import parse_decoded, parse_message
from cmpclient.message.pkimessage import decode_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import popo_signer
from cmpclient.testca import fastreq
from cmpclient.testca import handlers as H

ROOT = Path(__file__).resolve().parents[3]
VECTORS = sorted((ROOT / "tests" / "vectors" / "openssl").glob("*/req*.der"))
#: openssl's ir and cr (signature POPO, no controls): the fast reader must read them all.
READ_VECTORS = {f"{p.parent.name}/{p.name}" for p in VECTORS if decode_message(p.read_bytes())["body"].getName() in ("ir", "cr")}


def full(der: bytes):
    """The strict full decode of ``der`` or None when the full decoder refuses it."""
    try:
        return decode_message(der)
    except DecodeError:
        return None


def assert_agrees(der: bytes):
    """The fast reader declines ``der``, or reads every value as the CA derived it from pyasn1."""
    fast = fastreq.read_request(der)
    if fast is None:
        return None
    msg = full(der)
    assert msg is not None, f"the fast reader accepted what the full decoder refuses: {der.hex()}"
    assert codec.encode(msg) == der
    lenient = decode_message(der, strict=False)  # what the CA decodes
    assert codec.encode(lenient) == der
    slow = parse_decoded(der, lenient)
    assert fast.parsed == slow and fast.parsed.header == slow.header and fast.parsed.content is None
    assert fast.parsed.extra_certs == slow.extra_certs and fast.parsed.protected == slow.protected
    assert fast.sender_der == codec.encode(lenient["header"]["sender"])
    kind = slow.body_type
    assert kind in ("ir", "cr")
    crms = list(lenient["body"][kind])
    assert len(fast.items) == len(crms) > 0
    for item, crm in zip(fast.items, crms):
        cr, t = crm["certReq"], crm["certReq"]["certTemplate"]
        assert item.cert_req_id == int(cr["certReqId"])
        assert item.cert_req_der == codec.encode(cr)
        assert item.subject == (asn1_to_name(t["subject"]) if t["subject"].isValue else None)
        if t["publicKey"].isValue:
            assert item.spki_der == b"\x30" + codec.encode(t["publicKey"])[1:]
            assert item.empty_key == (len(t["publicKey"]["subjectPublicKey"]) == 0)
        else:
            assert item.spki_der is None and not item.empty_key
        assert not cr["controls"].isValue and not crm["regInfo"].isValue
        popo = crm["popo"]
        assert popo.getName() == "signature" and not popo["signature"]["poposkInput"].isValue
        sk = popo["signature"]
        alg = rfc5280.AlgorithmIdentifier()
        alg["algorithm"] = sk["algorithmIdentifier"]["algorithm"]
        if sk["algorithmIdentifier"]["parameters"].isValue:
            alg["parameters"] = sk["algorithmIdentifier"]["parameters"]
        assert item.popo_alg_der == codec.encode(alg)
        assert item.popo_signature == sk["signature"].asOctets()
    return fast


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_openssl_requests_read_alike(path: Path) -> None:
    assert len(READ_VECTORS) >= 5
    fast = assert_agrees(path.read_bytes())
    assert (fast is not None) == (f"{path.parent.name}/{path.name}" in READ_VECTORS)


def _request(*crms, kind: str = "ir", **hdr) -> bytes:
    hdr.setdefault("tid", b"T" * 16)
    hdr.setdefault("nonce", b"N" * 16)
    hdr.setdefault("sender_kid", b"ra")
    return message(B.cert_req_body(kind, list(crms)), mac(iterations=10), **hdr)


KEYS = {spec: generate_key(spec) for spec in ("secp256r1", "RSA2048", "Ed25519")}


@pytest.mark.parametrize("spec", sorted(KEYS))
@pytest.mark.parametrize("kind", ["ir", "cr"])
def test_built_requests_read_alike(spec: str, kind: str) -> None:
    key = KEYS[spec]
    der = _request(cert_req("CN=fast,O=Example,C=SE", key), cert_req("CN=second", key, cert_req_id=7), kind=kind,
                   implicit_confirm=True)
    assert assert_agrees(der) is not None


def _declined() -> dict[str, bytes]:
    key = KEYS["secp256r1"]
    from testca_testlib import poposk_input_request

    ext = x509.SubjectAlternativeName([x509.DNSName("x.example")])
    return {
        "kur": _request(cert_req("CN=k", key), kind="kur"),
        "p10cr": message(B.p10cr_body(x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
                                      .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))),
        "extensions": _request(cert_req("CN=e", key, extension=(ext,))),
        "controls": _request(cert_req("CN=c", key, controls=[(oids.REGCTRL_REG_TOKEN, b"\x0c\x03abc")])),
        "raVerified": _request(cert_req("CN=r", key, popo="raVerified")),
        "no popo": _request(cert_req("CN=n", key, popo="none")),
        "keyEncipherment": _request(cert_req("CN=k", KEYS["RSA2048"], popo="keyEncipherment")),
        "poposkInput": _request(poposk_input_request("CN=requester")),
        "no key": _request(cert_req("CN=nokey", None, popo="none")),
    }


@pytest.mark.parametrize("case", sorted(_declined()))
def test_other_shapes_are_left_to_the_full_decoder(case: str) -> None:
    assert fastreq.read_request(_declined()[case]) is None


CORPUS = [p.read_bytes() for p in VECTORS if f"{p.parent.name}/{p.name}" in READ_VECTORS] + [
    _request(cert_req("CN=fast,O=Example,C=SE", KEYS["secp256r1"]), implicit_confirm=True)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), EDITS)
def test_mutated_requests_never_read_differently(der: bytes, edits: list[tuple[str, int, int]]) -> None:
    data = mutate(der, edits)
    assume(data != der)
    assert_agrees(data)


def test_the_mutation_test_reaches_accepted_variants() -> None:
    der = CORPUS[-1]
    at = der.index(b"N" * 16)  # the senderNonce: any value keeps the request readable
    assert assert_agrees(der[:at] + b"X" + der[at + 1:]) is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), st.integers(0, 10**6))
def test_truncated_requests_are_declined(der: bytes, cut: int) -> None:
    assert fastreq.read_request(der[: cut % len(der)]) is None


# --- end to end: the CA answers alike on both paths --------------------------------------------


def _summary(rsp) -> tuple:
    """What an answer says, without what is fresh on every answer (nonce, salt, serial, times)."""
    h = rsp.header
    head = (rsp.body_type, h.pvno, h.sender, h.recipient, h.transaction_id, h.recip_nonce, h.recip_kid, h.sender_kid,
            h.protection_alg, h.implicit_confirm, rsp.protected, len(rsp.extra_certs))
    if rsp.body_type == "error":
        return head + (rsp.content.status,)
    out = []
    for r in rsp.content.responses:
        cert = None
        if r.certificate is not None:
            c = x509.load_der_x509_certificate(r.certificate)
            spki = c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            exts = [(e.oid, e.critical, e.value) for e in c.extensions if e.oid != x509.ExtensionOID.SUBJECT_KEY_IDENTIFIER]
            cert = (c.subject, c.issuer, spki, c.not_valid_after_utc - c.not_valid_before_utc, exts)
        out.append((r.cert_req_id, r.status, cert))
    return head + (rsp.content.ca_pubs, tuple(out))


def _both_paths(testca, monkeypatch, alias: str, der: bytes):
    seen = []
    real = H.read_request

    def spy(data: bytes):
        got = real(data)
        seen.append(got is not None)
        return got

    monkeypatch.setattr(H, "read_request", spy)
    fast = send(testca, alias, der)
    monkeypatch.setattr(H, "read_request", lambda data: None)
    slow = send(testca, alias, der)  # a non-strict alias answers a repeated transactionID again
    monkeypatch.setattr(H, "read_request", real)
    assert seen == [True], "the fast reader did not read the request"
    return fast, slow


@pytest.mark.parametrize("case", ["accepted", "cr", "two", "rsa", "ed25519", "wrong secret", "bad popo", "pvno3",
                                  "no UID", "not allowed key", "reject alias", "unprotected answers"])
def test_fast_and_full_paths_answer_alike(testca, monkeypatch, case: str) -> None:
    key = KEYS["RSA2048" if case == "rsa" else "Ed25519" if case == "ed25519" else "secp256r1"]
    subject = f"CN=fastpath-{case.replace(' ', '-')},UID=fp-{case.replace(' ', '-')}"
    alias, kind, hdr = "ra", "ir", {"implicit_confirm": True}
    crms = [cert_req(subject, key)]
    protection = mac(iterations=500, kid=b"bench")
    if case == "cr":
        kind = "cr"
    elif case == "two":
        crms.append(cert_req(subject + "-2", key, cert_req_id=1))
    elif case == "wrong secret":
        protection = mac(b"wrong", iterations=500, kid=b"bench")
    elif case == "bad popo":  # signed with another key
        crms = [CertRequestBuilder().subject(subject).public_key(key).popo_signature(popo_signer(KEYS["RSA2048"])).build()]
    elif case == "pvno3":
        hdr["pvno"] = 3
    elif case == "no UID":  # the alias makes the username from the UID
        crms = [cert_req("CN=fastpath-no-uid", key)]
    elif case == "not allowed key":
        crms = [cert_req(subject, KEYS["Ed25519"])]
        alias = "random"  # ENDUSER profile
    elif case == "reject alias":
        alias = "reject"
    elif case == "unprotected answers":
        alias = "unprot"
    der = message(B.cert_req_body(kind, crms), protection, tid=b"fastpath-" + case.encode(), nonce=b"n" * 16,
                  sender_kid=b"bench", **hdr)
    fast, slow = _both_paths(testca, monkeypatch, alias, der)
    assert _summary(fast) == _summary(slow)
    if case == "accepted":
        assert issued_cert(fast).subject == issued_cert(slow).subject == x509.Name.from_rfc4514_string(subject)
    if case == "bad popo":
        assert fast.content.responses[0].status.fail_info == ("badPOP",)


def test_signed_requests_answer_alike(testca, monkeypatch, ra_admin) -> None:
    from testca_testlib import der as cert_der
    from testca_testlib import sig

    key, cert = ra_admin
    der = message(B.cert_req_body("ir", [cert_req("CN=fastpath-signed", KEYS["secp256r1"])]), sig(key, cert),
                  extra_certs=[cert_der(cert)], tid=b"fastpath-signed", nonce=b"s" * 16)
    fast, slow = _both_paths(testca, monkeypatch, "ra-sig", der)
    assert _summary(fast) == _summary(slow)
    assert issued_cert(fast).subject == x509.Name.from_rfc4514_string("CN=fastpath-signed")


def test_a_fast_read_request_is_answered_without_pyasn1_decoding(testca, monkeypatch) -> None:
    """The point of the fast reader: the common ir never reaches the full decoder."""
    def refuse(*args, **kwargs):
        raise AssertionError("the full decoder was used")

    monkeypatch.setattr(H, "decode_message", refuse)
    monkeypatch.setattr("cmpclient.message.parse.decode_message", refuse)
    der = message(B.cert_req_body("ir", [cert_req("CN=no-pyasn1,UID=no-pyasn1", KEYS["secp256r1"])]), mac(iterations=500, kid=b"bench"),
                  tid=b"no-pyasn1-decode", nonce=b"p" * 16, sender_kid=b"bench", implicit_confirm=True)
    status, out = testca.handle("ra", der)
    monkeypatch.undo()
    rsp = parse_message(out)
    assert rsp.body_type == "ip" and rsp.content.responses[0].status.status == "accepted"
    assert rsp.header.implicit_confirm


def test_a_fast_read_signed_request_is_verified_without_pyasn1_decoding(testca, monkeypatch, ra_admin) -> None:
    """The signature check takes the PKIProtection octets the fast reader kept; a
    signature that does not verify is still refused."""
    from testca_testlib import der as cert_der
    from testca_testlib import error_of, sig

    key, cert = ra_admin

    def signed(name: str) -> bytes:
        return message(B.cert_req_body("cr", [cert_req(f"CN={name}", KEYS["secp256r1"])]), sig(key, cert),
                       extra_certs=[cert_der(cert)], tid=name.encode(), nonce=b"v" * 16)

    def refuse(*args, **kwargs):
        raise AssertionError("the full decoder was used")

    good = signed("fast-signed-ok")
    bad = bytearray(signed("fast-signed-bad"))
    tail = bad.rindex(cert_der(cert))  # the signature's last octet is just before the extraCerts
    bad[tail - 10] ^= 0x01
    assert fastreq.read_request(good) is not None and fastreq.read_request(bytes(bad)) is not None
    monkeypatch.setattr("cmpclient.message.parse.decode_message", refuse)
    ok = parse_message(testca.handle("ra-sig", good)[1])
    assert ok.body_type == "cp" and ok.content.responses[0].status.status == "accepted"
    monkeypatch.undo()
    refused = parse_message(testca.handle("ra-sig", bytes(bad))[1])
    kind, fail_info, texts = error_of(refused)
    assert kind == "error" and fail_info == ("badRequest",) and "signature does not verify" in texts[0], texts


def test_request_protection_views_agree() -> None:
    """Request.protection_oid/protection_alg give what auth.protection_alg gave, on both paths."""
    from cmpclient.testca.auth import protection_alg

    for der in CORPUS + [message(B.cert_req_body("ir", [cert_req("CN=u", KEYS["secp256r1"])]))]:
        slow_parsed = parse_decoded(der, decode_message(der, strict=False))
        fast = fastreq.read_request(der)
        assert fast is not None
        want = protection_alg(slow_parsed.message)
        for req in (H.Request(None, None, der, slow_parsed), H.Request(None, None, der, fast.parsed, fast=fast)):
            got = req.protection_alg()
            if want is None:
                assert got is None and req.protection_oid() is None
            else:
                assert codec.encode(got) == codec.encode(want)
                assert req.protection_oid() == str(want["algorithm"])
        assert parse_message(der).header == fast.parsed.header


def test_popo_algorithm_cache_keys_on_the_whole_der() -> None:
    ecdsa256 = bytes.fromhex("300a06082a8648ce3d040302")
    ecdsa384 = bytes.fromhex("300a06082a8648ce3d040303")
    rsa256 = bytes.fromhex("300d06092a864886f70d01010b0500")
    seen = {der: H._popo_alg(der) for der in (ecdsa256, ecdsa384, rsa256)}
    for der, alg in seen.items():
        assert codec.encode(alg) == der
        assert H._popo_alg(der) is alg  # decoded once
    assert not seen[ecdsa256]["parameters"].isValue and bytes(seen[rsa256]["parameters"]) == b"\x05\x00"
    with pytest.raises(DecodeError):
        H._popo_alg(b"\x30\x03\x06\x01")  # a refused one is not remembered
    with pytest.raises(DecodeError):
        H._popo_alg(b"\x30\x03\x06\x01")


def test_mac_protected_answer_carries_the_pyasn1_encoded_protection_alg(testca) -> None:
    from cmpclient.protection.mac import PBMParams

    der = message(B.cert_req_body("ir", [cert_req("CN=alg-der,UID=alg-der", KEYS["secp256r1"])]),
                  mac(iterations=500, kid=b"bench"), tid=b"alg-der-answer", nonce=b"a" * 16, sender_kid=b"bench")
    status, out = testca.handle("ra", der)
    from cmpclient.testca.auth import protection_alg

    alg = protection_alg(decode_message(out))  # strict: the answer is DER
    params = PBMParams.from_algorithm_identifier(alg)
    assert params.iterations == 500 and len(params.salt) == 16
    assert codec.encode(alg) == codec.encode(params.algorithm_identifier()) == params.algorithm_identifier_der()
