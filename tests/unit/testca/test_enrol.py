"""ir/cr/p10cr: modes, authentication modules, KeyId, POPO, and the response's form."""

from __future__ import annotations


import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from testca_testlib import CA_DN, cert_req, der, error_of, ir, issued_cert, mac, message, send, sig

from cmpclient.asn1 import oids
from cmpclient.keys import generate_key
from cmpclient.message import body as B
from cmpclient.message.names import parse_dn
from cmpclient.protection import MACProtection, PBMAC1Params, PBMParams, verify_protection
from cmpclient.protection.trust import subject_key_identifier


def _ca_certs(testca):
    ca = testca.ca("ManagementCA")
    return ca.cert, testca.ca("RootCA").cert


# --- RA mode, HMAC --------------------------------------------------------------------------------


def test_ra_hmac_ir_issues_and_answers_pbe(testca) -> None:
    key = generate_key("secp256r1")
    rsp = ir(testca, "ra", "CN=dev-hmac,UID=hmac1,O=x", key, protection=mac(kid=b"ra"), hdr=dict(tid=b"T" * 16, nonce=b"N" * 16))
    assert rsp.body_type == "ip" and rsp.protected
    assert rsp.header.protection_alg == oids.PASSWORD_BASED_MAC
    verify_protection(rsp.der, rsp.message, secret=b"password")
    assert rsp.header.transaction_id == b"T" * 16 and rsp.header.recip_nonce == b"N" * 16
    assert rsp.header.sender_name == parse_dn(CA_DN) and rsp.header.recipient == "CN=requester"
    assert rsp.header.pvno == 2 and rsp.header.sender_nonce not in (None, b"N" * 16)
    cert = issued_cert(rsp)
    assert cert.public_key() == key.public_key()
    assert cert.subject == parse_dn("CN=dev-hmac,UID=hmac1,O=x")
    issuing, root = _ca_certs(testca)
    assert cert.issuer == issuing.subject
    assert rsp.content.ca_pubs[0] == der(issuing)  # issuing CA first
    assert rsp.extra_certs[:2] == (der(issuing), der(root))
    assert 63 <= cert.serial_number.bit_length() <= 159
    ee = testca.store.get_end_entity("cmphmac1")  # DN part UID with prefix "cmp"
    assert ee is not None and ee.status == "GENERATED" and ee.ee_profile == "CMP_ENTITY"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_ra_pbmac1_response_uses_same_scheme_fresh_salt(testca) -> None:
    params = PBMAC1Params.new(iterations=2000)
    rsp = ir(testca, "ra", "CN=pbmac1,UID=pbmac1", protection=MACProtection(b"password", params, sender_kid=b"kid"))
    assert rsp.header.protection_alg == oids.PBMAC1
    verify_protection(rsp.der, rsp.message, secret=b"password")
    got = PBMAC1Params.from_algorithm_identifier(rsp.message["header"]["protectionAlg"])
    assert (got.iterations, got.prf, got.mac) == (2000, params.prf, params.mac) and got.salt != params.salt


def test_ra_pbm_response_same_iterations(testca) -> None:
    rsp = ir(testca, "ra", "CN=pbmit,UID=pbmit", protection=mac(iterations=777))
    got = PBMParams.from_algorithm_identifier(rsp.message["header"]["protectionAlg"])
    assert got.iterations == 777


def test_hmac_without_sender_kid_is_answered_with_a_signature(testca) -> None:
    rsp = ir(testca, "ra", "CN=nokid,UID=nokid", protection=MACProtection(b"password", PBMParams.new(iterations=1000)))
    assert rsp.body_type == "ip" and rsp.header.protection_alg == "1.2.840.113549.1.1.11"
    issuing, root = _ca_certs(testca)
    assert rsp.header.sender_kid == subject_key_identifier(issuing)
    verify_protection(rsp.der, rsp.message, trusted=[root])


def test_ra_hmac_wrong_secret_is_unprotected_error(testca) -> None:
    rsp = ir(testca, "ra", "CN=badsecret,UID=badsecret", protection=mac(secret=b"wrong"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False)
    assert "HMAC" in texts[0] and "MAC verification failed" in texts[0]


def test_hmac_iteration_count_above_limit_is_bad_request(testca) -> None:
    rsp = ir(testca, "ra", "CN=iter,UID=iter", protection=mac(iterations=10001))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "10001" in texts[0]


def test_unprotected_request_on_hmac_alias_is_refused(testca) -> None:
    rsp = ir(testca, "ra", "CN=unprot,UID=unprot")
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False)
    assert "not protected" in texts[0]


def test_cr_gets_cp(testca) -> None:
    rsp = ir(testca, "ra", "CN=crdev,UID=crdev", protection=mac(), kind="cr")
    assert rsp.body_type == "cp"
    issued_cert(rsp)


def test_implicit_confirm_is_echoed(testca) -> None:
    rsp = ir(testca, "ra", "CN=ic,UID=ic", protection=mac(), hdr=dict(implicit_confirm=True))
    assert rsp.header.implicit_confirm
    rsp = ir(testca, "ra", "CN=noic,UID=noic", protection=mac())
    assert not rsp.header.implicit_confirm


def test_pvno3_request_gets_pvno3(testca) -> None:
    rsp = ir(testca, "ra", "CN=v3,UID=v3", protection=mac(), hdr=dict(pvno=3))
    assert rsp.header.pvno == 3 and rsp.body_type == "ip"


def test_random_name_generation(testca) -> None:
    rsp = ir(testca, "random", "CN=rnd", protection=mac())
    cert = issued_cert(rsp)
    rec = testca.store.find_by_fingerprint(__import__("hashlib").sha256(der(cert)).hexdigest())
    assert rec.username.startswith("r-") and len(rec.username) == 14


def test_multiple_cert_requests(testca) -> None:
    k1, k2 = generate_key("secp256r1"), generate_key("secp256r1")
    body = B.cert_req_body("ir", [cert_req("CN=multi1,UID=m1", k1, cert_req_id=0), cert_req("CN=multi2,UID=m2", k2, cert_req_id=1)])
    rsp = send(testca, "ra", message(body, mac()))
    assert issued_cert(rsp, 0).public_key() == k1.public_key()
    assert issued_cert(rsp, 1).public_key() == k2.public_key()


# --- RA mode, EndEntityCertificate ---------------------------------------------------------------------


def test_ra_sig_with_ra_admin(testca, ra_admin) -> None:
    key, cert = ra_admin
    issuing, root = _ca_certs(testca)
    rsp = ir(testca, "ra-sig", "CN=viaadmin", protection=sig(key, cert), hdr=dict(sender=cert.subject))
    assert rsp.body_type == "ip" and rsp.header.protection_alg == "1.2.840.113549.1.1.11"
    verify_protection(rsp.der, rsp.message, trusted=[root])
    assert issued_cert(rsp).subject == parse_dn("CN=viaadmin")


def test_ra_sig_with_non_admin_cert_fails(testca, client_material) -> None:
    key, cert = client_material
    rsp = ir(testca, "ra-sig", "CN=notadmin", protection=sig(key, cert))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False)
    assert "not an authorised RA administrator" in texts[0]


def test_ra_sig_with_foreign_cert_fails(testca) -> None:
    from testca_testlib import self_signed

    key, cert = self_signed()
    rsp = ir(testca, "ra-sig", "CN=foreign", protection=sig(key, cert))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "was not issued by this CA" in texts[0]


def test_ra_sig_bad_signature_fails(testca, ra_admin) -> None:
    key, cert = ra_admin
    wrong = generate_key("secp256r1")

    class Forged:
        kind = "signature"

        def __init__(self) -> None:
            self.inner = sig(key, cert)

        def algorithm_identifier(self):
            return self.inner.algorithm_identifier()

        def sender_kid(self):
            return self.inner.sender_kid()

        def extra_certs(self):
            return self.inner.extra_certs()

        def compute(self, data: bytes) -> bytes:
            from cryptography.hazmat.primitives.asymmetric import ec

            return wrong.sign(data, ec.ECDSA(hashes.SHA256()))

    rsp = ir(testca, "ra-sig", "CN=forged", protection=Forged())
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "does not verify" in texts[0]


# --- client mode ----------------------------------------------------------------------------------------


def test_client_regtoken_unprotected_ir(testca) -> None:
    rsp = ir(testca, "client", "CN=client1", reg_token="foo123")
    assert rsp.body_type == "ip" and rsp.protected  # signed by the CA
    cert = issued_cert(rsp)
    assert cert.subject == parse_dn("CN=client1,O=cmpclient test,C=SE")  # the registered DN
    assert testca.store.get_end_entity("client1").status == "GENERATED"
    again = ir(testca, "client", "CN=client1", reg_token="foo123")
    kind, fi, texts = error_of(again)
    assert (kind, fi, again.protected) == ("ip", ("incorrectData",), True) and "GENERATED" in texts[0]


def test_client_hmac_with_ee_password(testca) -> None:
    rsp = ir(testca, "client", "CN=client2", protection=mac(secret=b"foo123", kid=b"client2"))
    assert issued_cert(rsp).subject == parse_dn("CN=client2,O=cmpclient test,C=SE")
    assert rsp.header.protection_alg != oids.PASSWORD_BASED_MAC  # the client alias answers with signatures


def test_client_hmac_wrong_password_is_error(testca) -> None:
    rsp = ir(testca, "client", "CN=client3", protection=mac(secret=b"nope"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("error", ("badRequest",), False)
    assert "RegTokenPwd: no regToken" in texts[0] and "HMAC: MAC verification failed" in texts[0]
    assert testca.store.get_end_entity("client3").status == "NEW"


def test_client_unknown_user_is_signed_rejection(testca) -> None:
    rsp = ir(testca, "client", "CN=nobody", reg_token="foo123")
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("ip", ("incorrectData",), True) and "not found" in texts[0]


def test_client_wrong_enrollment_code_is_not_authorized(testca) -> None:
    rsp = ir(testca, "client", "CN=client3", reg_token="wrong")
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("ip", ("notAuthorized",), True) and "enrollment code" in texts[0]


def test_regtoken_not_for_p10cr(testca) -> None:
    from testca_testlib import p10cr_message

    rsp = send(testca, "client", p10cr_message("CN=client3"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "RegTokenPwd does not apply to p10cr" in texts[0]


def test_dn_part_password(testca) -> None:
    testca.store.set_end_entity_status("dnuser", "NEW")
    ok = ir(testca, "dnpart", "CN=dnuser,OU=secretou,O=cmpclient test,C=SE")
    issued_cert(ok)
    testca.store.set_end_entity_status("dnuser", "NEW")
    bad = ir(testca, "dnpart", "CN=dnuser,OU=guess,O=cmpclient test,C=SE")
    assert error_of(bad)[:2] == ("ip", ("notAuthorized",))
    missing = ir(testca, "dnpart", "CN=dnuser,O=cmpclient test,C=SE")
    kind, fi, texts = error_of(missing)
    assert (kind, fi) == ("error", ("badRequest",)) and "no OU component" in texts[0]


def test_client_mode_end_entity_certificate(testca, client_material) -> None:
    key, cert = client_material
    testca.store.set_end_entity_status("clientcert", "NEW")
    rsp = ir(testca, "clientcert", "CN=clientcert", protection=sig(key, cert), kind="cr")
    assert rsp.body_type == "cp"
    issued_cert(rsp)
    # The same certificate cannot enrol another end entity.
    testca.store.set_end_entity_status("client3", "NEW")
    other = ir(testca, "clientcert", "CN=client3", protection=sig(key, cert), kind="cr")
    kind, fi, texts = error_of(other)
    assert (kind, fi) == ("error", ("badRequest",)) and "belongs to 'clientcert'" in texts[0]


def test_3gpp_vendor_certificate(testca, vendor_device) -> None:
    key, cert = vendor_device
    vendor_ca = testca.ca("VendorCA").cert
    rsp = ir(testca, "3gpp", "CN=device1", protection=sig(key, cert, [vendor_ca]))
    assert rsp.body_type == "ip"
    issued = issued_cert(rsp)
    assert issued.issuer == testca.ca("ManagementCA").subject


# --- KeyId -----------------------------------------------------------------------------------------------


def test_keyid_selects_profiles(testca) -> None:
    rsp = ir(testca, "keyid", "CN=server.example", protection=mac(kid=b"SERVER_ENTITY"))
    cert = issued_cert(rsp)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    verify_protection(rsp.der, rsp.message, secret=b"password")
    rsp = ir(testca, "keyid", "CN=entity.example", protection=mac(kid=b"CMP_ENTITY"))
    eku = issued_cert(rsp).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_keyid_unknown_profile(testca) -> None:
    rsp = ir(testca, "keyid", "CN=nope.example", protection=mac(kid=b"NO_SUCH_PROFILE"))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("error", ("badRequest",)) and "NO_SUCH_PROFILE" in texts[0]


# --- POPO --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["secp256r1", "RSA2048", "Ed25519", "ML-DSA-44"])
def test_signature_popo_over_cert_request(testca, spec: str) -> None:
    key = generate_key(spec)
    rsp = ir(testca, "ra", f"CN=popo-{spec},UID=popo{spec}", key, protection=mac())
    assert issued_cert(rsp).public_key() == key.public_key()


def test_popo_signing_key_input_without_subject(testca) -> None:
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import popo_signer

    key = generate_key("secp256r1")
    crm = CertRequestBuilder().public_key(key).popo_signature(popo_signer(key), sender="CN=requester").build()
    # No subject in the template: the RA-mode alias needs one, so use the keyless-subject check.
    rsp = send(testca, "ra", message(B.cert_req_body("ir", [crm]), mac()))
    assert error_of(rsp)[:2] == ("ip", ("badCertTemplate",))


def test_popo_signing_key_input_sender_mismatch_is_bad_pop(testca) -> None:
    from testca_testlib import poposk_input_request

    ok = send(testca, "ra", message(B.cert_req_body("ir", [poposk_input_request("CN=requester")]), mac()))
    assert issued_cert(ok)
    bad = send(testca, "ra", message(B.cert_req_body("ir", [poposk_input_request("CN=someone else")]), mac()))
    kind, fi, texts = error_of(bad)
    assert (kind, fi) == ("ip", ("badPOP",)) and "sender" in texts[0]


def test_bad_popo_signature(testca) -> None:
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import popo_signer

    key, other = generate_key("secp256r1"), generate_key("secp256r1")
    crm = CertRequestBuilder().subject("CN=badpop,UID=badpop").public_key(key).popo_signature(popo_signer(other)).build()
    rsp = send(testca, "ra", message(B.cert_req_body("ir", [crm]), mac()))
    kind, fi, texts = error_of(rsp)
    assert (kind, fi, rsp.protected) == ("ip", ("badPOP",), True) and "does not verify" in texts[0]


def test_ra_verified_allowed_only_where_configured(testca) -> None:
    rsp = ir(testca, "ra", "CN=raver,UID=raver", protection=mac(), popo="raVerified")
    issued_cert(rsp)
    rsp = ir(testca, "servergen", "CN=raver2", protection=mac(), popo="raVerified")
    assert error_of(rsp)[:2] == ("ip", ("badPOP",))


def test_missing_popo_is_bad_pop(testca) -> None:
    rsp = ir(testca, "ra", "CN=nopopo,UID=nopopo", protection=mac(), popo="none")
    assert error_of(rsp)[:2] == ("ip", ("badPOP",))


def test_key_encipherment_popo_is_bad_pop(testca) -> None:
    rsp = ir(testca, "ra", "CN=kepop,UID=kepop", protection=mac(), popo="keyEncipherment")
    assert error_of(rsp)[:2] == ("ip", ("badPOP",))


# --- p10cr ----------------------------------------------------------------------------------------------------


def test_p10cr_gets_cp_with_cert_req_id_0(testca) -> None:
    from testca_testlib import p10cr_message

    rsp = send(testca, "ra", p10cr_message("CN=p10,UID=p10", protection=mac()))
    assert rsp.body_type == "cp" and rsp.content.responses[0].cert_req_id == 0
    cert = issued_cert(rsp, 0)
    assert cert.subject == parse_dn("CN=p10,UID=p10")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["p10.example"]


def test_p10cr_bad_signature_is_bad_pop(testca) -> None:
    from testca_testlib import p10cr_message

    rsp = send(testca, "ra", p10cr_message("CN=p10bad,UID=p10bad", protection=mac(), corrupt=True))
    assert error_of(rsp)[:2] == ("cp", ("badPOP",))


# --- profile checks ---------------------------------------------------------------------------------------------


def test_key_not_allowed_by_profile(testca) -> None:
    rsp = ir(testca, "random", "CN=edkey", generate_key("Ed25519"), protection=mac())  # ENDUSER: RSA/EC only
    kind, fi, texts = error_of(rsp)
    assert (kind, fi) == ("ip", ("badCertTemplate",)) and "Ed25519" in texts[0]


def test_requested_key_usage_and_validity_override(testca) -> None:
    import datetime as dt

    end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=10)
    rsp = ir(testca, "ra", "CN=override,UID=override", protection=mac(),
             extension=(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
             validity=(None, end))
    cert = issued_cert(rsp)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment
    assert cert.not_valid_after_utc == end
