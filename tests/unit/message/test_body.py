"""Body builders: every body through assemble -> DER -> parse_message, cross-checked with rfc9810."""

from __future__ import annotations

import datetime as _dt

import pytest
from cmp_message_testlib import (
    KEY_TYPES,
    RecordingSigner,
    header,
    load_cert_der,
    make_key,
    rfc9810_roundtrip,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cmpclient.asn1 import cmp, codec, oids
from cmpclient.errors import UsageError
from cmpclient.message import body as B
from cmpclient.message.parse import CertConfEntry, EncryptedKeyInfo, PollRepEntry, parse_message
from cmpclient.message.pkimessage import assemble, decode_messages, encode_message, nested_messages
from cmpclient.message.request import CertRequestBuilder
from cmpclient.message.status import build_status_info

CERT = load_cert_der("rsp-ec.crt.pem")
ROOT = load_cert_der("root-ca.crt.pem")
ISSUING = load_cert_der("issuing-ca.crt.pem")


def _wire(body: cmp.PKIBody, **kw):
    """Assemble, encode, check with the independent schema, parse back."""
    der = encode_message(assemble(header(), body, **kw))
    alt = rfc9810_roundtrip(der)
    assert alt["body"].getName() == body.getName()
    parsed = parse_message(der)
    assert parsed.der == der and parsed.body_type == body.getName()
    return parsed


def _req(i: int, kt: str = "ec-p256"):
    key = make_key(kt)
    return CertRequestBuilder().cert_req_id(i).subject(f"CN=dev{i}").public_key(key).popo_signature(RecordingSigner(key)).build()


@pytest.mark.parametrize("kind", ["ir", "cr", "kur", "krr", "ccr"])
@pytest.mark.parametrize("kt", KEY_TYPES)
def test_cert_req_bodies_with_several_messages(kind: str, kt: str) -> None:
    reqs = [_req(0, kt), _req(1, kt), _req(5, kt)]
    parsed = _wire(B.cert_req_body(kind, reqs))
    got = parsed.message["body"][kind]
    assert [int(m["certReq"]["certReqId"]) for m in got] == [0, 1, 5]
    assert [codec.encode(m) for m in got] == [codec.encode(r) for r in reqs]


def test_cert_req_body_refusals() -> None:
    with pytest.raises(UsageError, match=r"duplicate certReqId in ir: \[0, 1, 0\]"):
        B.cert_req_body("ir", [_req(0), _req(1), _req(0)])
    with pytest.raises(UsageError, match="at least one CertReqMsg"):
        B.cert_req_body("cr", [])
    with pytest.raises(UsageError, match="not a certificate request body: 'ip'"):
        B.cert_req_body("ip", [_req(0)])


@pytest.mark.parametrize("kt", ["rsa2048", "ec-p256", "ed25519"])
def test_p10cr(kt: str) -> None:
    key = make_key(kt)
    algo = None if kt == "ed25519" else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string("CN=p10")).sign(key, algo)
    csr_der = csr.public_bytes(serialization.Encoding.DER)
    parsed = _wire(B.p10cr_body(csr_der))
    again = x509.load_der_x509_csr(bytes(parsed.message["body"]["p10cr"]))
    assert again == csr and again.is_signature_valid


def test_p10cr_refuses_non_csr() -> None:
    with pytest.raises(UsageError, match="not a DER PKCS#10 request"):
        B.p10cr_body(CERT)


@pytest.mark.parametrize("reason, code", [("keyCompromise", 1), (4, 4), ("aACompromise", 10), ("unspecified", 0)])
def test_rr_reasons_by_name_and_code(reason: object, code: int) -> None:
    when = _dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)
    details = B.rev_details("CN=CA,O=Example", 0xABCDEF, reason=reason, invalidity_date=when)  # type: ignore[arg-type]
    parsed = _wire(B.rr_body([details, B.rev_details("CN=CA", 2)]))
    first, second = parsed.message["body"]["rr"]
    assert int(first["certDetails"]["serialNumber"]) == 0xABCDEF
    exts = {str(e["extnID"]): bytes(e["extnValue"]) for e in first["crlEntryDetails"]}
    assert exts[oids.CE_CRL_REASON] == bytes((0x0A, 0x01, code))
    assert exts["2.5.29.24"] == b"\x18\x0f20300102030405Z"
    assert not second["crlEntryDetails"].isValue


@pytest.mark.parametrize("bad", ["keyLost", 7, 11, -1])
def test_rr_invalid_reason_refused(bad: object) -> None:
    with pytest.raises(UsageError, match="unknown revocation reason") as info:
        B.rev_details("CN=CA", 1, reason=bad)  # type: ignore[arg-type]
    assert "keyCompromise" in info.value.hint


def test_rr_needs_details() -> None:
    with pytest.raises(UsageError, match="at least one RevDetails"):
        B.rr_body([])


def test_cert_conf_with_and_without_status_and_hash_alg() -> None:
    sha256 = bytes.fromhex("300b0609608648016503040201")
    statuses = [
        B.cert_status(0, b"\x01" * 32),
        B.cert_status(1, b"\x02" * 32, status="rejection", fail_info=["badCertTemplate"], texts=["no"], hash_alg_der=sha256),
        B.cert_status(2, b"\x03" * 48, status="accepted"),
    ]
    parsed = _wire(B.cert_conf_body(statuses))
    a, b, c = parsed.content
    assert a == CertConfEntry(0, b"\x01" * 32, None, None)
    assert b.cert_req_id == 1 and b.hash_alg == oids.SHA256
    assert b.status.status == "rejection" and b.status.fail_info == ("badCertTemplate",) and b.status.texts == ("no",)
    assert c.status.ok and c.hash_alg is None


def test_empty_cert_conf() -> None:
    assert _wire(B.cert_conf_body([])).content == ()


def test_poll_req_and_rep() -> None:
    assert _wire(B.poll_req_body([0, 3])).content == (0, 3)
    parsed = _wire(B.poll_rep_body([(0, 10, ["busy", "later"]), (3, 0, [])]))
    assert parsed.content == (PollRepEntry(0, 10, ("busy", "later")), PollRepEntry(3, 0, ()))
    with pytest.raises(UsageError, match="at least one certReqId"):
        B.poll_req_body([])
    with pytest.raises(UsageError, match="at least one entry"):
        B.poll_rep_body([])
    with pytest.raises(UsageError, match="must not be negative"):
        B.poll_rep_body([(0, -1, [])])


def test_genm_and_genp() -> None:
    profile = b"\x30\x05\x0c\x03abc"
    assert _wire(B.genm_body([(oids.IT_CA_CERTS, None), (oids.IT_CERT_PROFILE, profile)])).content == (
        (oids.IT_CA_CERTS, None),
        (oids.IT_CERT_PROFILE, profile),
    )
    ca_certs = codec.der_header(0x30, len(ROOT) + len(ISSUING)) + ROOT + ISSUING
    parsed = _wire(B.genp_body([(oids.IT_CA_CERTS, ca_certs)]))
    ((oid, value),) = parsed.content
    assert oid == oids.IT_CA_CERTS
    decoded = codec.decode(value, cmp.CACertsValue())
    assert [bytes(c) for c in decoded] == [ROOT, ISSUING]
    assert _wire(B.genm_body()).content == ()


def test_nested_with_two_inner_messages() -> None:
    inner = [
        encode_message(assemble(header(), B.cert_req_body("ir", [_req(0)]))),
        encode_message(assemble(header(), B.genm_body([(oids.IT_CA_CERTS, None)]))),
    ]
    outer = _wire(B.nested_body(inner))
    assert outer.content == tuple(inner)
    assert nested_messages(outer.message) == inner
    assert [parse_message(d).body_type for d in outer.content] == ["ir", "genm"]
    # The [20] content is a PKIMessages SEQUENCE; splitting it gives the same DER back.
    tagged = codec.encode(outer.message["body"])
    tag, start, end = codec.read_tlv(tagged, 0)
    assert tag == 0xB4 and end == len(tagged)
    assert decode_messages(tagged[start:]) == inner
    with pytest.raises(UsageError, match="at least one inner"):
        B.nested_body([])
    with pytest.raises(UsageError, match="one DER PKIMessage"):
        B.nested_body([inner[0] + b"\x00"])


def test_error_body() -> None:
    parsed = _wire(
        B.error_body(fail_info=["badRequest", "systemFailure"], texts=["bad"], error_code=42, error_details=["d1", "d2"])
    )
    assert parsed.content.status.status == "rejection"
    assert parsed.content.status.fail_info == ("badRequest", "systemFailure")
    assert parsed.content.status.texts == ("bad",)
    assert parsed.content.error_code == 42
    assert parsed.content.error_details == ("d1", "d2")
    minimal = _wire(B.error_body())
    assert minimal.content.error_code is None and minimal.content.error_details == ()


def test_pkiconf() -> None:
    parsed = _wire(B.pkiconf_body())
    assert parsed.content is None
    assert codec.encode(parsed.message["body"]) == b"\xb3\x02\x05\x00"


@pytest.mark.parametrize("kind", ["ip", "cp", "kup", "ccp"])
def test_cert_rep_with_ca_pubs_certificate_and_encrypted_keys(kind: str) -> None:
    from cmpclient.keys.encrypted import PasswordRecipient, encrypt_encrypted_value, envelope

    rsa_key = make_key("rsa2048")
    env = envelope(b"PKCS#8 private key", recipients=[PasswordRecipient(b"pw-123456", iterations=1000)])
    enc_value = encrypt_encrypted_value(b"certificate bytes", rsa_key.public_key())
    responses = [
        B.cert_response(0, cert_der=CERT, private_key=B.encrypted_key(enveloped_data_der=env)),
        B.cert_response(1, "grantedWithMods", encrypted_cert=B.encrypted_key(encrypted_value_der=enc_value)),
        B.cert_response(2, "rejection", fail_info=["badPOP"], texts=["rejected"]),
        B.cert_response(3, "waiting"),
    ]
    parsed = _wire(B.cert_rep_body(kind, responses, ca_pubs=[ROOT, ISSUING]), extra_certs=[ISSUING, ISSUING, ROOT])
    assert parsed.extra_certs == (ISSUING, ROOT)  # duplicates dropped, order kept
    content = parsed.content
    assert content.ca_pubs == (ROOT, ISSUING)
    r0, r1, r2, r3 = content.responses
    assert r0.certificate == CERT
    assert x509.load_der_x509_certificate(r0.certificate).serial_number > 0
    assert r0.private_key == EncryptedKeyInfo("envelopedData", env)
    assert r1.certificate is None and r1.status.status == "grantedWithMods"
    assert r1.encrypted_cert == EncryptedKeyInfo("encryptedValue", enc_value)
    assert r2.status.fail_info == ("badPOP",) and r2.status.texts == ("rejected",) and r2.certificate is None
    assert r3.status.status == "waiting"
    assert content.response(3) is r3
    # The encrypted values are still usable: the EncryptedValue decrypts with the RSA key.
    from cmpclient.keys.encrypted import decrypt_encrypted_value

    assert decrypt_encrypted_value(r1.encrypted_cert.der, rsa_key) == b"certificate bytes"


def test_cert_rep_refusals() -> None:
    with pytest.raises(UsageError, match="not a certificate response body"):
        B.cert_rep_body("ir", [])
    with pytest.raises(UsageError, match="not both"):
        B.cert_response(0, cert_der=CERT, encrypted_cert=B.encrypted_key(enveloped_data_der=b"\x30\x00"))
    with pytest.raises(UsageError, match="together with its certificate"):
        B.cert_response(0, private_key=B.encrypted_key(enveloped_data_der=b"\x30\x00"))
    with pytest.raises(UsageError, match="exactly one"):
        B.encrypted_key()


def test_rp_with_rev_certs_and_crls() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name.from_rfc4514_string("CN=CA"))
        .last_update(now)
        .next_update(now + _dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    statuses = [build_status_info("accepted"), build_status_info("rejection", fail_info=["badCertId"])]
    parsed = _wire(B.rp_body(statuses, rev_certs=[("CN=CA,O=Example", 7), ("CN=CA", 8)], crls=[crl]))
    assert [s.status for s in parsed.content.statuses] == ["accepted", "rejection"]
    assert parsed.content.statuses[1].fail_info == ("badCertId",)
    assert parsed.content.rev_certs == (("CN=CA,O=Example", 7), ("CN=CA", 8))
    assert parsed.content.crls == (crl,)
    x509.load_der_x509_crl(parsed.content.crls[0])
    plain = _wire(B.rp_body(statuses[:1]))
    assert plain.content.rev_certs == () and plain.content.crls == ()
    with pytest.raises(UsageError, match="at least one PKIStatusInfo"):
        B.rp_body([])


def test_assemble_refuses_empty_body() -> None:
    with pytest.raises(UsageError, match="one alternative set"):
        assemble(header(), cmp.PKIBody())


def test_cert_status_for_writes_der_for_a_plain_acceptance_and_names_the_hash_when_it_must() -> None:
    """The client's certConf entry: DER (accepted, no hashAlg) for an ECDSA certificate at
    pvno 2 and 3; a pyasn1 value with hashAlg for an Ed25519 certificate at pvno 3; a
    rejection with its statusInfo. Each must read back as the same CertConfEntry."""
    import datetime
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    from cmpclient.client.operations import cert_status_for

    def cert(key, algorithm):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c")])
        now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(3).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, algorithm))

    ec_cert = cert(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    ed_cert = cert(ed25519.Ed25519PrivateKey.generate(), None)
    ec_hash = hashlib.sha256(ec_cert.public_bytes(Encoding.DER)).digest()
    ed_hash = hashlib.sha512(ed_cert.public_bytes(Encoding.DER)).digest()
    for pvno in (2, 3):
        entry = cert_status_for(ec_cert, 7, pvno, accept=True, reason=None)
        assert entry == B.accepted_cert_status_der(7, ec_hash)
        assert _wire(B.cert_conf_body([entry])).content == (CertConfEntry(7, ec_hash, None, None),)
    entry = cert_status_for(ed_cert, 1, 3, accept=True, reason=None)
    assert not isinstance(entry, bytes)
    (read,) = _wire(B.cert_conf_body([entry])).content
    assert read.cert_req_id == 1 and read.cert_hash == ed_hash and read.hash_alg == oids.SHA512
    entry = cert_status_for(ec_cert, 2, 2, accept=False, reason="wrong subject")
    (read,) = _wire(B.cert_conf_body([entry])).content
    assert read.status.status == "rejection" and read.status.fail_info == ("incorrectData",)
    assert read.status.texts == ("wrong subject",)
