"""The CA error table: each refusal with its HTTP status, body type and failInfo.

Every row builds its request with cmpclient.message/protection and calls ``handle()``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Callable

import pytest
from cryptography import x509
from testca_testlib import CA_DN, cert_req, der, ir, issued_cert, mac, message, sig

from cmpclient.asn1 import oids
from cmpclient.keys import generate_key, make_protocol_encr_key
from cmpclient.message import body as B
from cmpclient.message.names import parse_dn
from cmpclient.message.parse import parse_message
from cmpclient.message.request import CertRequestBuilder, empty_public_key
from cmpclient.testca.config import CertProfile
from cmpclient.testca.handlers import _alg_der


def _enrolled(ca, username):
    ca.store.upsert_end_entity(username, dn=f"CN={username}", status="NEW", password="pw", ee_profile="CMP_ENTITY")
    key = generate_key("secp256r1")
    cert = issued_cert(ir(ca, "client", f"CN={username}", key, reg_token="pw"))
    return key, cert


def _record(ca, cert):
    return ca.store.find_by_fingerprint(hashlib.sha256(der(cert)).hexdigest())


def _rr(ca, details, recipient=CA_DN):
    return "ra", message(B.rr_body(details), mac(), recipient=recipient)


def non_der(ca):
    return "ra", b"\x30\x03\x02\x01"


def unknown_body(ca):
    return "ra", message(B.pkiconf_body(), mac())


def unauthenticated_ra(ca):
    return "ra", message(B.cert_req_body("ir", [cert_req("CN=e1,UID=e1", generate_key("secp256r1"))]))


def revoked_signer(ca):
    key, cert = _enrolled(ca, "errrevoked")
    ca.store.revoke(_record(ca, cert).id)
    return "clientcert", message(B.cert_req_body("cr", [cert_req("CN=errrevoked", generate_key("secp256r1"))]), sig(key, cert))


def expired_signer(ca):
    key = generate_key("secp256r1")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    ca.store.upsert_end_entity("errexpired", dn="CN=errexpired", status="NEW")
    cert, _ = ca.ca("ManagementCA").issue(ca.store, subject=parse_dn("CN=errexpired"), public_key=key.public_key(),
                                          profile=CertProfile("T", ("secp256r1",)), username="errexpired",
                                          not_before=past, not_after=past + dt.timedelta(days=1), force_validity=True)
    return "clientcert", message(B.cert_req_body("cr", [cert_req("CN=errexpired", generate_key("secp256r1"))]), sig(key, cert))


def already_revoked(ca):
    cert = issued_cert(ir(ca, "ra", "CN=e2,UID=e2", protection=mac()))
    ca.store.revoke(_record(ca, cert).id)
    return _rr(ca, [B.rev_details(cert.issuer, cert.serial_number)])


def non_existing_certificate(ca):
    return _rr(ca, [B.rev_details(CA_DN, 987654321987654321)])


def missing_serial(ca):
    from cmpclient.asn1 import cmp
    from cmpclient.message.names import name_to_asn1

    details = cmp.RevDetails()
    t = details["certDetails"]
    t["issuer"] = name_to_asn1(CA_DN, t.componentType["issuer"].asn1Object)
    return _rr(ca, [details])


def unparsable_reason(ca):
    cert = issued_cert(ir(ca, "ra", "CN=e3,UID=e3", protection=mac()))
    details = B.rev_details(cert.issuer, cert.serial_number, reason=1)
    details["crlEntryDetails"][0]["extnValue"] = b"\x0a\x01\x07"  # 7 is not a CRLReason
    return _rr(ca, [details])


def unknown_ca(ca):
    return _rr(ca, [B.rev_details("CN=Nobody CA", 1234)], recipient="CN=Nobody CA")


def bad_pop(ca):
    from cmpclient.protection import popo_signer

    key = generate_key("secp256r1")
    crm = CertRequestBuilder().subject("CN=e4,UID=e4").public_key(key).popo_signature(popo_signer(generate_key("secp256r1"))).build()
    return "ra", message(B.cert_req_body("ir", [crm]), mac())


def invalid_extensions(ca):
    crm = (CertRequestBuilder().subject("CN=e5,UID=e5").public_key(generate_key("secp256r1"))
           .extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False)).popo_ra_verified().build())
    crm["certReq"]["certTemplate"]["extensions"][0]["extnValue"] = b"\x02\x01\x05"  # an INTEGER, not a BIT STRING
    return "ra", message(B.cert_req_body("ir", [crm]), mac())


def wrong_enrollment_code(ca):
    ca.store.upsert_end_entity("errcode", dn="CN=errcode", status="NEW", password="right", ee_profile="CMP_ENTITY")
    return "client", message(B.cert_req_body("ir", [cert_req("CN=errcode", generate_key("secp256r1"), reg_token="wrong")]))


def kur_without_eec(ca):
    return "ra", message(B.cert_req_body("kur", [cert_req("CN=e6,UID=e6", generate_key("secp256r1"))]), mac())


def kur_same_key(ca):
    key, cert = _enrolled(ca, "errsamekey")
    ca.store.set_end_entity_status("errsamekey", "NEW")
    return "clientcert", message(B.cert_req_body("kur", [cert_req("CN=errsamekey", key)]), sig(key, cert))


def kur_unknown_ee(ca):
    from testca_testlib import load_material

    key, cert = load_material(ca.data_dir, "ra", "raadmin")
    return "ra-sig", message(B.cert_req_body("kur", [cert_req("CN=nobody-known", generate_key("secp256r1"))]), sig(key, cert))


def _keygen(alias, spki_spec=None, pek=True):
    b = CertRequestBuilder().subject(f"CN=kg,UID=kg-{alias}")
    if spki_spec:
        b = b.public_key(empty_public_key(_alg_der(spki_spec)))
    if pek:
        b = b.control(oids.REGCTRL_PROTOCOL_ENCR_KEY, make_protocol_encr_key("RSA")[1])
    return alias, message(B.cert_req_body("ir", [b.popo_none().build()]), mac())


def keygen_disabled(ca):
    return _keygen("ra")


def keygen_no_profile(ca):
    return _keygen("nokeyprof")


def keygen_disallowed_key(ca):
    return _keygen("nokeyprof", "Ed448")


def nested_signature_failure(ca):
    from testca_testlib import self_signed

    key, cert = self_signed("CN=rogue RA")
    inner = message(B.cert_req_body("ir", [cert_req("CN=e7", generate_key("secp256r1"))]))
    return "nested", message(B.nested_body([inner]), sig(key, cert))


ROWS: list[tuple[str, Callable, str, str]] = [
    ("non-DER body", non_der, "error", "badRequest"),
    ("unknown body type", unknown_body, "error", "badRequest"),
    ("unauthenticated RA message", unauthenticated_ra, "error", "badRequest"),
    ("revoked signer", revoked_signer, "error", "badRequest"),
    ("expired signer", expired_signer, "error", "badRequest"),
    ("already revoked", already_revoked, "rp", "certRevoked"),
    ("non-existing certificate", non_existing_certificate, "rp", "badCertId"),
    ("missing serial/issuer", missing_serial, "rp", "badCertId"),
    ("unparsable reason", unparsable_reason, "rp", "badRequest"),
    ("unknown CA", unknown_ca, "error", "badRequest"),
    ("bad POP", bad_pop, "ip", "badPOP"),
    ("invalid extensions", invalid_extensions, "ip", "badCertTemplate"),
    ("wrong enrollment code", wrong_enrollment_code, "ip", "notAuthorized"),
    ("kur without EndEntityCertificate", kur_without_eec, "error", "badRequest"),
    ("kur same key", kur_same_key, "error", "badMessageCheck"),
    ("kur unknown EE", kur_unknown_ee, "error", "badRequest"),
    ("server keygen disabled", keygen_disabled, "error", "badRequest"),
    ("server keygen no profile key", keygen_no_profile, "error", "badRequest"),
    ("server keygen disallowed key", keygen_disallowed_key, "error", "badRequest"),
    ("nested signature failure", nested_signature_failure, "error", "badRequest"),
]


@pytest.mark.parametrize("name, build, body_type, fail_info", ROWS, ids=[r[0] for r in ROWS])
def test_error_table(testca, name: str, build: Callable, body_type: str, fail_info: str) -> None:
    alias, request = build(testca)
    status, out = testca.handle(alias, request)
    assert status == 200
    rsp = parse_message(out)
    assert rsp.body_type == body_type
    if body_type == "error":
        info = rsp.content.status
        assert not rsp.protected  # error messages are unprotected
    elif body_type == "rp":
        info = rsp.content.statuses[0]
        assert rsp.protected
    else:
        info = rsp.content.responses[0].status
        assert rsp.protected
    assert info.status == "rejection"
    assert info.fail_info == (fail_info,), info
    assert info.texts and info.texts[0]


def test_non_der_body_text(testca) -> None:
    _, out = testca.handle("ra", b"not CMP at all")
    rsp = parse_message(out)
    assert "not a valid CMP message" in rsp.content.status.texts[0]


def test_misshapen_message_text_says_what_was_found(testca) -> None:
    # a SEQUENCE holding an INTEGER where the PKIHeader belongs: no pyasn1 schema reprs
    _, out = testca.handle("ra", bytes.fromhex("3003020105"))
    (text,) = parse_message(out).content.status.texts
    assert text == "not a valid CMP message: not a valid PKIMessage: found INTEGER where PKIHeader was expected"


def test_internal_failure_is_system_failure(testca, monkeypatch, caplog) -> None:
    def boom(self, req):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(type(testca.engine), "handle_genm", boom)
    status, out = testca.handle("ra", message(B.genm_body([(oids.IT_CA_CERTS, None)]), mac()))
    rsp = parse_message(out)
    assert status == 200 and rsp.body_type == "error" and not rsp.protected
    assert rsp.content.status.fail_info == ("systemFailure",)
    assert "secret internal detail" not in rsp.content.status.texts[0]
    assert "secret internal detail" in caplog.text


@pytest.mark.parametrize("junk", [b"", b"\x00", b"\x30\x80\x00\x00", b"\x30\x82\xff\xff" + b"\x00" * 10])
def test_handle_never_raises_on_junk(testca, junk: bytes) -> None:
    status, out = testca.handle("ra", junk)
    assert status == 200 and parse_message(out).body_type == "error"


def test_handle_unknown_alias_does_not_raise(testca) -> None:
    status, out = testca.handle("no-such-alias", b"")
    assert status == 200 and parse_message(out).content.status.fail_info == ("badRequest",)
