"""Indirect proof of possession through :meth:`TestCA.handle` (RFC 9810 §5.2.8.3.2, RFC 4211 §4.2/§4.3).

keyEncipherment (RSA) or keyAgreement (EC) POPO with ``subsequentMessage encrCert``: the CA
returns the certificate encrypted to its own key -- EncryptedValue for CMPv2, EnvelopedData
(ktri / kari, content id-data = the DER certificate) for CMPv3 -- and the certHash in certConf
is the proof.  Alias ``indirect`` (strict) revokes on a wrong or missing certHash; a lenient
alias answers pkiconf like EJBCA and leaves the certificate unconfirmed.  Aliases without
``allow_indirect_popo`` answer badPOP as EJBCA does.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from testca_testlib import TEST_CONFIG_TOML, der, error_of, mac, message, send

from cmpclient.keys import decrypt_encrypted_value, decrypt_enveloped_data, enveloped_content_type, generate_key
from cmpclient.keys import _asn1 as KA
from cmpclient.message import body as B
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import certificate_hash
from cmpclient.testca import TestCA, load_config

LAX_ALIASES = """
[alias.indirectlax]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
allow_indirect_popo = true

[alias.indirectpoll]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
strict = true
allow_indirect_popo = true
faults = { poll_count = 1, check_after = 0 }
"""


@pytest.fixture(scope="module")
def laxca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    ca = TestCA.from_config(load_config(text=TEST_CONFIG_TOML + LAX_ALIASES), tmp_path_factory.mktemp("indirect"))
    yield ca
    ca.close()


def _request(subject: str, key, *, kind: str = "auto", this_message: bytes | None = None):
    b = CertRequestBuilder().subject(subject).public_key(key)
    if kind == "auto":
        kind = "keyEncipherment" if isinstance(key, rsa.RSAPrivateKey) else "keyAgreement"
    if kind == "keyEncipherment":
        b = b.popo_key_encipherment(this_message=this_message)
    else:
        b = b.popo_key_agreement()
    return b.build()


def _ir(ca, alias: str, crm, *, pvno: int = 3, **hdr):
    return send(ca, alias, message(B.cert_req_body("ir", [crm]), mac(), pvno=pvno, **hdr))


def _conf(ca, alias: str, rsp, cert_hash: bytes | None, *, cert_req_id: int = 0, status: str | None = None):
    entries = [] if cert_hash is None else [B.cert_status(cert_req_id, cert_hash, status=status)]
    body = B.cert_conf_body(entries)
    return send(ca, alias, message(body, mac(), pvno=rsp.header.pvno, tid=rsp.header.transaction_id,
                                   recip_nonce=rsp.header.sender_nonce))


def _decrypt(rsp, key) -> x509.Certificate:
    r = rsp.content.response(0)
    assert r.status.status == "accepted", r.status
    assert r.certificate is None and r.encrypted_cert is not None
    info = r.encrypted_cert
    if info.kind == "envelopedData":
        assert enveloped_content_type(info.der) == KA.ID_DATA  # the certificate directly (RFC 9810 §5.2.2)
        plain = decrypt_enveloped_data(info.der, private_key=key)
    else:
        plain = decrypt_encrypted_value(info.der, key)
    cert = x509.load_der_x509_certificate(plain)
    assert cert.public_key() == key.public_key()
    return cert


def _record(ca, cert):
    return ca.store.find_by_fingerprint(hashlib.sha256(der(cert)).hexdigest())


@pytest.mark.parametrize("spec, pvno, container", [
    ("RSA2048", 2, "encryptedValue"),
    ("RSA2048", 3, "envelopedData"),
    ("secp256r1", 3, "envelopedData"),
    ("secp384r1", 3, "envelopedData"),
])
def test_encrypted_certificate_and_proof(testca, spec: str, pvno: int, container: str) -> None:
    key = generate_key(spec)
    rsp = _ir(testca, "indirect", _request(f"CN=ind-{spec}-{pvno}", key), pvno=pvno)
    assert rsp.body_type == "ip", rsp.content
    assert rsp.header.pvno == pvno
    assert rsp.content.response(0).encrypted_cert.kind == container
    cert = _decrypt(rsp, key)
    assert not _record(testca, cert).confirmed  # awaiting the proof
    conf = _conf(testca, "indirect", rsp, certificate_hash(der(cert))[0])
    assert conf.body_type == "pkiconf", conf.content
    rec = _record(testca, cert)
    assert rec.confirmed and not rec.revoked


def test_envelope_recipient_kinds(testca) -> None:
    """ktri for RSA (RSAES-OAEP), kari for EC; the rid names the new certificate."""
    from pyasn1_modules import rfc5652

    from cmpclient.asn1 import codec

    for spec, ri_kind in (("RSA2048", "ktri"), ("secp256r1", "kari")):
        key = generate_key(spec)
        rsp = _ir(testca, "indirect", _request(f"CN=ind-ri-{spec}", key))
        env = codec.decode(rsp.content.response(0).encrypted_cert.der, rfc5652.EnvelopedData(), strict=False)
        ris = list(env["recipientInfos"])
        assert [ri.getName() for ri in ris] == [ri_kind]
        cert = _decrypt(rsp, key)
        if ri_kind == "ktri":
            assert str(ris[0]["ktri"]["keyEncryptionAlgorithm"]["algorithm"]) == "1.2.840.113549.1.1.7"
            assert int(ris[0]["ktri"]["rid"]["issuerAndSerialNumber"]["serialNumber"]) == cert.serial_number


def test_implicit_confirm_is_never_granted(testca) -> None:
    key = generate_key("RSA2048")
    rsp = _ir(testca, "indirect", _request("CN=ind-implicit", key), implicit_confirm=True)
    assert rsp.body_type == "ip" and not rsp.header.implicit_confirm
    cert = _decrypt(rsp, key)
    assert not _record(testca, cert).confirmed
    assert _conf(testca, "indirect", rsp, certificate_hash(der(cert))[0]).body_type == "pkiconf"


def test_strict_wrong_cert_hash_revokes(testca) -> None:
    key = generate_key("secp256r1")
    rsp = _ir(testca, "indirect", _request("CN=ind-wrong", key))
    cert = _decrypt(rsp, key)
    conf = _conf(testca, "indirect", rsp, b"\x01" * 32)
    kind, fail_info, texts = error_of(conf)
    assert (kind, fail_info) == ("error", ("badPOP",))
    assert "does not match" in texts[0] and "revoked" in texts[0]
    assert _record(testca, cert).revoked


def test_strict_missing_cert_status_revokes(testca) -> None:
    key = generate_key("RSA2048")
    rsp = _ir(testca, "indirect", _request("CN=ind-missing", key))
    cert = _decrypt(rsp, key)
    kind, fail_info, texts = error_of(_conf(testca, "indirect", rsp, None))
    assert (kind, fail_info) == ("error", ("badPOP",)) and "does not confirm certReqId 0" in texts[0]
    assert _record(testca, cert).revoked


def test_client_rejection_revokes(testca) -> None:
    key = generate_key("RSA2048")
    rsp = _ir(testca, "indirect", _request("CN=ind-reject", key))
    cert = _decrypt(rsp, key)
    assert _conf(testca, "indirect", rsp, certificate_hash(der(cert))[0], status="rejection").body_type == "pkiconf"
    assert _record(testca, cert).revoked


def test_this_message_is_refused(testca) -> None:
    key = generate_key("RSA2048")
    rsp = _ir(testca, "indirect", _request("CN=ind-this", key, this_message=b"\x00" * 16))
    kind, fail_info, texts = error_of(rsp)
    assert (kind, fail_info) == ("ip", ("badPOP",))
    assert "thisMessage" in texts[0] and "deprecated" in texts[0]


@pytest.mark.parametrize("spec, kind, pvno, words", [
    ("secp256r1", "keyAgreement", 2, "EncryptedValue"),  # CMPv2 cannot encrypt to an EC key
    ("secp256r1", "keyEncipherment", 3, "use keyAgreement"),
    ("RSA2048", "keyAgreement", 3, "EC (ECDH) key"),
    ("Ed25519", "keyAgreement", 3, "EC (ECDH) key"),
])
def test_unsuitable_key_or_version(testca, spec: str, kind: str, pvno: int, words: str) -> None:
    rsp = _ir(testca, "indirect", _request(f"CN=ind-bad-{spec}-{kind}", generate_key(spec), kind=kind), pvno=pvno)
    k, fail_info, texts = error_of(rsp)
    assert (k, fail_info) == ("ip", ("badPOP",)) and words in texts[0], texts


def test_default_aliases_answer_bad_pop_like_ejbca(testca) -> None:
    rsp = _ir(testca, "ra", _request("CN=ind-ejbca,UID=ind-ejbca", generate_key("secp256r1")))
    k, fail_info, texts = error_of(rsp)
    assert (k, fail_info) == ("ip", ("badPOP",)) and "not supported" in texts[0]


def test_lenient_alias_accepts_like_ejbca_but_keeps_unproven_unconfirmed(laxca) -> None:
    key = generate_key("RSA2048")
    rsp = _ir(laxca, "indirectlax", _request("CN=lax-wrong", key), pvno=2)
    cert = _decrypt(rsp, key)
    assert _conf(laxca, "indirectlax", rsp, b"\x00" * 32).body_type == "pkiconf"
    rec = _record(laxca, cert)
    assert not rec.confirmed and not rec.revoked

    key = generate_key("secp256r1")
    rsp = _ir(laxca, "indirectlax", _request("CN=lax-right", key))
    cert = _decrypt(rsp, key)
    assert _conf(laxca, "indirectlax", rsp, certificate_hash(der(cert))[0]).body_type == "pkiconf"
    assert _record(laxca, cert).confirmed


def test_polling_keeps_the_proof_requirement(laxca) -> None:
    key = generate_key("secp256r1")
    first = _ir(laxca, "indirectpoll", _request("CN=poll-ind", key))
    assert first.content.response(0).status.status == "waiting"
    poll = send(laxca, "indirectpoll", message(B.poll_req_body([0]), mac(), pvno=3, tid=first.header.transaction_id,
                                               recip_nonce=first.header.sender_nonce))
    assert poll.body_type == "ip", poll.content
    cert = _decrypt(poll, key)
    conf = _conf(laxca, "indirectpoll", poll, b"\x02" * 32)
    assert error_of(conf)[:2] == ("error", ("badPOP",))
    assert _record(laxca, cert).revoked


# --- the client side: cmpclient.client.enroll against TestCA.handle -------------------------------


class _InProcess:
    def __init__(self, ca, alias: str):
        self.ca, self.alias, self.sent = ca, alias, []

    def send(self, der_bytes: bytes) -> bytes:
        self.sent.append(der_bytes)
        status, out = self.ca.handle(self.alias, der_bytes)
        assert status == 200
        return out


def _client_config(testca, pvno: int, **kw):
    from cmpclient.client import ClientConfig

    return ClientConfig(transport=_InProcess(testca, "indirect"), protection=mac(), pvno=pvno,
                        trusted=[testca.ca("RootCA").cert], recipient="CN=ManagementCA,O=cmpclient test,C=SE", **kw)


@pytest.mark.parametrize("spec, pvno", [("RSA2048", 2), ("RSA2048", 3), ("secp256r1", 3)])
def test_client_enroll_decrypts_and_proves(testca, spec: str, pvno: int) -> None:
    from cmpclient.client import enroll
    from cmpclient.message.parse import parse_message

    key = generate_key(spec)
    config = _client_config(testca, pvno, implicit_confirm=True)
    result = enroll(config, "ir", _request(f"CN=cl-ind-{spec}-{pvno}", key), new_private_key=key)
    assert result.certificate.public_key() == key.public_key()
    assert result.confirmed and not result.implicit_confirm_granted
    first = parse_message(config.transport.sent[0])
    assert not first.header.implicit_confirm  # never asked for with indirect POPO
    assert [parse_message(d).body_type for d in config.transport.sent] == ["ir", "certConf"]
    assert _record(testca, result.certificate).confirmed


def test_client_enroll_without_the_new_key_says_so(testca) -> None:
    from cmpclient.client import enroll
    from cmpclient.errors import ProtocolError

    key = generate_key("RSA2048")
    with pytest.raises(ProtocolError) as err:
        enroll(_client_config(testca, 3), "ir", _request("CN=cl-ind-nokey", key))
    assert "new_private_key" in (err.value.hint or "")


def test_client_enroll_with_the_wrong_key_fails_to_decrypt(testca) -> None:
    from cmpclient.client import enroll
    from cmpclient.errors import CMPClientError

    key = generate_key("secp256r1")
    with pytest.raises(CMPClientError):
        enroll(_client_config(testca, 3), "ir", _request("CN=cl-ind-wrongkey", key), new_private_key=generate_key("secp256r1"))
