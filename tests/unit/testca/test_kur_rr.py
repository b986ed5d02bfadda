"""Key update (kur) and revocation (rr)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from testca_testlib import CA_DN, der, error_of, ir, issued_cert, mac, message, send, sig

from cmpclient.asn1 import cmp
from cmpclient.keys import generate_key
from cmpclient.message import body as B
from cmpclient.message.names import name_to_asn1, parse_dn
from cmpclient.testca.config import CertProfile


def _enrolled(testca, username: str, *, key=None):
    """Register ``username`` and enrol it on the client alias (regToken); returns (key, cert)."""
    dn = f"CN={username},O=cmpclient test,C=SE"
    testca.store.upsert_end_entity(username, dn=dn, status="NEW", password="pw", ee_profile="CMP_ENTITY")
    key = key or generate_key("secp256r1")
    return key, issued_cert(ir(testca, "client", f"CN={username}", key, reg_token="pw"))


def _kur(testca, alias, signer_key, signer_cert, new_key, subject=None, **kw):
    subject = subject or signer_cert.subject.rfc4514_string()
    return ir(testca, alias, subject, new_key, protection=sig(signer_key, signer_cert), kind="kur", **kw)


# --- kur ------------------------------------------------------------------------------------------


def test_kur_with_automatic_key_update(testca) -> None:
    key, cert = _enrolled(testca, "kur1")
    new_key = generate_key("secp256r1")
    rsp = _kur(testca, "3gpp", key, cert, new_key)
    assert rsp.body_type == "kup"
    new = issued_cert(rsp)
    assert new.subject == cert.subject and new.public_key() == new_key.public_key()
    assert new.issuer == cert.issuer and new.serial_number != cert.serial_number
    # 3gpp allows renewal with the same key.
    again = _kur(testca, "3gpp", new_key, new, new_key)
    assert issued_cert(again).public_key() == new_key.public_key()


def test_kur_with_old_cert_id_control(testca) -> None:
    key, cert = _enrolled(testca, "kur2")
    rsp = _kur(testca, "3gpp", key, cert, generate_key("secp256r1"), old_cert_id=(cert.issuer, cert.serial_number))
    issued_cert(rsp)


def test_kur_same_key_refused(testca) -> None:
    key, cert = _enrolled(testca, "kur3")
    testca.store.set_end_entity_status("kur3", "NEW")
    rsp = _kur(testca, "clientcert", key, cert, key)
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badMessageCheck",), False) and "same key" in texts[0]


def test_kur_needs_status_new_without_automatic_key_update(testca) -> None:
    key, cert = _enrolled(testca, "kur4")
    rsp = _kur(testca, "clientcert", key, cert, generate_key("secp256r1"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("kup", ("incorrectData",), True)
    testca.store.set_end_entity_status("kur4", "NEW")
    issued_cert(_kur(testca, "clientcert", key, cert, generate_key("secp256r1")))


def test_kur_with_hmac_is_refused(testca) -> None:
    rsp = ir(testca, "ra", "CN=kurmac,UID=kurmac", protection=mac(), kind="kur")
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "EndEntityCertificate" in texts[0]


def test_kur_with_revoked_cert(testca) -> None:
    key, cert = _enrolled(testca, "kur5")
    rec = testca.store.find_by_fingerprint(hashlib.sha256(der(cert)).hexdigest())
    assert testca.store.revoke(rec.id, 1)
    rsp = _kur(testca, "3gpp", key, cert, generate_key("secp256r1"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "revoked" in texts[0]


def _expired_cert(testca, username: str):
    key = generate_key("secp256r1")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    profile = CertProfile("T", key_algs=("secp256r1",))
    testca.store.upsert_end_entity(username, dn=f"CN={username}", status="GENERATED")
    cert, _ = testca.ca("ManagementCA").issue(testca.store, subject=parse_dn(f"CN={username}"), public_key=key.public_key(),
                                              profile=profile, username=username, not_before=past,
                                              not_after=past + dt.timedelta(days=1), force_validity=True)
    return key, cert


def test_kur_with_expired_cert(testca) -> None:
    key, cert = _expired_cert(testca, "kurexp")
    rsp = _kur(testca, "3gpp", key, cert, generate_key("secp256r1"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "expired" in texts[0]


def test_kur_by_ra_admin_and_unknown_end_entity(testca, ra_admin) -> None:
    admin_key, admin_cert = ra_admin
    # An RA-enrolled end entity (ra-sig names users by CN).
    first = issued_cert(ir(testca, "ra-sig", "CN=rakur", protection=sig(admin_key, admin_cert)))
    rsp = _kur(testca, "ra-sig", admin_key, admin_cert, generate_key("secp256r1"), subject="CN=rakur")
    new = issued_cert(rsp)
    assert new.subject == first.subject and new.public_key() != first.public_key()
    unknown = _kur(testca, "ra-sig", admin_key, admin_cert, generate_key("secp256r1"), subject="CN=never-enrolled")
    kind, fi, texts = error_of(unknown)
    assert (kind, fi) == ("error", ("badRequest",)) and "no end entity" in texts[0]


# --- rr ---------------------------------------------------------------------------------------------


def _rr(testca, alias, details, protection=None, recipient=CA_DN):
    return send(testca, alias, message(B.rr_body(details), protection or mac(), recipient=recipient))


def _record(testca, cert):
    return testca.store.find_by_fingerprint(hashlib.sha256(der(cert)).hexdigest())


def test_rr_revokes_with_reason_then_already_revoked(testca) -> None:
    cert = issued_cert(ir(testca, "ra", "CN=rr1,UID=rr1", protection=mac()))
    rsp = _rr(testca, "ra", [B.rev_details(cert.issuer, cert.serial_number, reason="keyCompromise")])
    assert rsp.body_type == "rp" and rsp.content.statuses[0].status == "accepted" and rsp.protected
    rec = _record(testca, cert)
    assert rec.revoked and rec.revocation_reason == 1
    again = _rr(testca, "ra", [B.rev_details(cert.issuer, cert.serial_number)])
    assert error_of(again)[:2] == ("rp", ("certRevoked",))
    crl = testca.ca("ManagementCA").crl(testca.store)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_rr_recipient_in_any_rdn_order(testca) -> None:
    cert = issued_cert(ir(testca, "ra", "CN=rr2,UID=rr2", protection=mac()))
    reordered = "C=SE,O=cmpclient test,CN=ManagementCA"
    rsp = _rr(testca, "ra", [B.rev_details(cert.issuer, cert.serial_number)], recipient=reordered)
    assert rsp.content.statuses[0].status == "accepted"
    assert _record(testca, cert).revocation_reason == 0  # unspecified by default


def test_rr_unknown_serial(testca) -> None:
    rsp = _rr(testca, "ra", [B.rev_details(CA_DN, 0x1234567890ABCDEF1)])
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("rp", ("badCertId",), True) and "was not issued" in texts[0]


def _details_without(field: str, cert: x509.Certificate) -> cmp.RevDetails:
    details = cmp.RevDetails()
    t = details["certDetails"]
    if field != "serialNumber":
        t["serialNumber"] = cert.serial_number
    if field != "issuer":
        t["issuer"] = name_to_asn1(cert.issuer, t.componentType["issuer"].asn1Object)
    return details


@pytest.mark.parametrize("missing", ["serialNumber", "issuer"])
def test_rr_missing_fields(testca, missing: str) -> None:
    cert = issued_cert(ir(testca, "ra", f"CN=rrm-{missing},UID=rrm-{missing}", protection=mac()))
    rsp = _rr(testca, "ra", [_details_without(missing, cert)])
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("rp", ("badCertId",)) and "lacks" in texts[0]


def test_rr_unparsable_reason(testca) -> None:
    cert = issued_cert(ir(testca, "ra", "CN=rrbad,UID=rrbad", protection=mac()))
    details = B.rev_details(cert.issuer, cert.serial_number, reason=1)
    ext = details["crlEntryDetails"][0]
    ext["extnValue"] = b"\x04\x01\x01"  # an OCTET STRING where ENUMERATED belongs
    rsp = _rr(testca, "ra", [details])
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("rp", ("badRequest",)) and "reason" in texts[0]
    assert not _record(testca, cert).revoked


def test_rr_unknown_ca(testca) -> None:
    rsp = _rr(testca, "ra", [B.rev_details("CN=Some Other CA", 12345)], recipient="CN=Some Other CA")
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False) and "unknown" in texts[0]


def test_rr_not_authorized_for_foreign_certificate(testca, client_material) -> None:
    key, cert = client_material
    other = issued_cert(ir(testca, "ra", "CN=rrforeign,UID=rrforeign", protection=mac()))
    rsp = _rr(testca, "clientcert", [B.rev_details(other.issuer, other.serial_number)], protection=sig(key, cert))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("rp", ("notAuthorized",))
    assert not _record(testca, other).revoked


def test_rr_own_certificate_in_client_mode(testca) -> None:
    key, cert = _enrolled(testca, "rrown")
    rsp = _rr(testca, "clientcert", [B.rev_details(cert.issuer, cert.serial_number, reason="superseded")], protection=sig(key, cert))
    assert rsp.content.statuses[0].status == "accepted"
    assert _record(testca, cert).revocation_reason == 4


def test_rr_signed_by_revoked_certificate(testca) -> None:
    key, cert = _enrolled(testca, "rrrev")
    assert testca.store.revoke(_record(testca, cert).id)
    victim_key, victim = _enrolled(testca, "rrrev2")
    rsp = _rr(testca, "clientcert", [B.rev_details(victim.issuer, victim.serial_number)], protection=sig(key, cert))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False) and "revoked" in texts[0]
