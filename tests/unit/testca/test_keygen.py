"""Server-side key generation: triggers, key specs, EncryptedValue (v2) and EnvelopedData (v3)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from testca_testlib import error_of, issued_cert, mac, message, send

from cmpclient.asn1 import oids
from cmpclient.keys import decrypt_returned_private_key, make_protocol_encr_key
from cmpclient.message import body as B
from cmpclient.message.request import CertRequestBuilder, empty_public_key
from cmpclient.testca.handlers import _alg_der


def _request(subject: str, *, pek: bytes | None = None, spki: bytes | None = None):
    b = CertRequestBuilder().subject(subject)
    if spki is not None:
        b = b.public_key(spki)
    if pek is not None:
        b = b.control(oids.REGCTRL_PROTOCOL_ENCR_KEY, pek)
    return b.popo_none().build()


def _send(testca, alias: str, crm, *, pvno: int = 2, protection=None):
    return send(testca, alias, message(B.cert_req_body("ir", [crm]), protection or mac(), pvno=pvno))


@pytest.mark.parametrize("pvno, pek_kind, container", [
    (2, "RSA", "encryptedValue"),
    (3, "RSA", "envelopedData"),
    (3, "EC", "envelopedData"),
])
def test_server_keygen_returns_the_key(testca, pvno: int, pek_kind: str, container: str) -> None:
    pek_key, pek_der = make_protocol_encr_key(pek_kind)
    rsp = _send(testca, "servergen", _request(f"CN=sg-{pvno}-{pek_kind}", pek=pek_der), pvno=pvno)
    assert rsp.body_type == "ip", rsp.content
    cert = issued_cert(rsp)
    info = rsp.content.response(0).private_key
    assert info is not None and info.kind == container
    key = decrypt_returned_private_key(info.der, private_key=pek_key,
                                       signer_certificate=testca.ca("ManagementCA").cert if container == "envelopedData" else None)
    assert key.public_key() == cert.public_key()
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048  # the profile's server_keygen_key


def test_server_keygen_curve_from_empty_spki(testca) -> None:
    pek_key, pek_der = make_protocol_encr_key("RSA")
    spki = empty_public_key(_alg_der("secp384r1"))
    rsp = _send(testca, "servergen", _request("CN=sg-ec", pek=pek_der, spki=spki))
    cert = issued_cert(rsp)
    key = decrypt_returned_private_key(rsp.content.response(0).private_key.der, private_key=pek_key)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert key.public_key() == cert.public_key()


def test_server_keygen_password_recipient_for_mac_v3_without_pek(testca) -> None:
    rsp = _send(testca, "servergen", _request("CN=sg-pwri"), pvno=3)
    cert = issued_cert(rsp)
    key = decrypt_returned_private_key(rsp.content.response(0).private_key.der, password=b"password")
    assert key.public_key() == cert.public_key()


@pytest.mark.parametrize("alias, pek_kind, spki_spec, needle", [
    ("ra", "RSA", None, "not allowed on this alias"),  # server keygen disabled
    ("servergen", None, None, "needs the protocolEncrKey"),  # CMPv2 without protocolEncrKey
    ("servergen", "EC", None, "needs an RSA protocolEncrKey"),  # EncryptedValue needs RSA
    ("nokeyprof", "RSA", None, "names no key type"),  # the profile names no key type
    ("nokeyprof", "RSA", "Ed25519", "not allowed by certificate profile"),  # disallowed key
    ("nokeyprof", "RSA", "RSA2048", "ambiguous"),  # ENDUSER allows three RSA sizes
])
def test_server_keygen_refusals(testca, alias: str, pek_kind: str | None, spki_spec: str | None, needle: str) -> None:
    pek_der = make_protocol_encr_key(pek_kind)[1] if pek_kind else None
    spki = empty_public_key(_alg_der(spki_spec)) if spki_spec else None
    rsp = _send(testca, alias, _request(f"CN=sg-refuse,UID=sgr-{alias}", pek=pek_der, spki=spki))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False)
    assert needle in texts[0]
