"""CertRequestBuilder: templates, controls and every proof-of-possession form (RFC 4211)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac

import pytest
from cmp_message_testlib import KEY_TYPES, RecordingSigner, alg_id, make_key, raw_verify, self_signed_cert, spki_der
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyasn1.type import char

from cmpclient.asn1 import codec, crmf, oids
from cmpclient.errors import UsageError
from cmpclient.message.names import asn1_to_name, general_name, parse_dn
from cmpclient.message.request import CertRequestBuilder, empty_public_key, public_key_der

UTC = _dt.timezone.utc


def _roundtrip(msg: crmf.CertReqMsg) -> crmf.CertReqMsg:
    """Encode, then strictly decode: every test looks at what goes on the wire."""
    return codec.decode(codec.encode(msg), crmf.CertReqMsg())


def _signature_popo(msg: crmf.CertReqMsg):
    assert msg["popo"].getName() == "signature"
    popo = msg["popo"]["signature"]
    return popo, popo["signature"].asOctets()


# --- signature POPO --------------------------------------------------------------------------


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_signature_popo_over_cert_request(kt: str) -> None:
    key = make_key(kt)
    signer = RecordingSigner(key)
    built = CertRequestBuilder().subject("CN=dev,O=Example").public_key(key).popo_signature(signer).build()
    msg = _roundtrip(built)
    popo, signature = _signature_popo(msg)
    assert not popo["poposkInput"].isValue
    cert_req_der = codec.encode(msg["certReq"])
    assert signer.signed == [cert_req_der]
    raw_verify(key.public_key(), signature, cert_req_der)
    with pytest.raises(Exception):
        raw_verify(key.public_key(), signature, cert_req_der + b"\x00")
    assert str(popo["algorithmIdentifier"]["algorithm"]) == alg_id_oid(signer)
    assert bytes(codec.encode(msg["certReq"]["certTemplate"]["publicKey"]))[1:] == spki_der(key)[1:]


def alg_id_oid(signer: RecordingSigner) -> str:
    from cmp_message_testlib import signature_oid

    return signature_oid(signer.key)


def _poposk_input_der(popo) -> bytes:
    """The DER of POPOSigningKeyInput: its [0] IMPLICIT tag turned back into SEQUENCE."""
    der = codec.encode(popo["poposkInput"])
    assert der[0] == 0xA0
    return b"\x30" + der[1:]


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_signature_popo_with_sender(kt: str) -> None:
    key = make_key(kt)
    signer = RecordingSigner(key)
    msg = _roundtrip(CertRequestBuilder().public_key(key).popo_signature(signer, sender="CN=dev,O=Example").build())
    popo, signature = _signature_popo(msg)
    signed = _poposk_input_der(popo)
    # Written out independently: SEQUENCE { [0] EXPLICIT GeneralName, SubjectPublicKeyInfo }.
    gn = codec.encode(general_name("CN=dev,O=Example"))
    inner = codec.der_header(0xA0, len(gn)) + gn + spki_der(key)
    assert signed == codec.der_header(0x30, len(inner)) + inner
    assert signer.signed == [signed]
    raw_verify(key.public_key(), signature, signed)
    decoded = codec.decode(signed, crmf.POPOSigningKeyInput())
    assert asn1_to_name(decoded["authInfo"]["sender"]["directoryName"]) == parse_dn("CN=dev,O=Example")
    assert codec.encode(decoded["publicKey"]) == spki_der(key)


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_signature_popo_with_public_key_mac(kt: str) -> None:
    key = make_key(kt)
    signer = RecordingSigner(key)
    mac_key = b"shared secret"
    seen: list[bytes] = []

    def pk_mac(spki: bytes):
        seen.append(spki)
        return alg_id(oids.HMAC_WITH_SHA256), hmac.new(mac_key, spki, hashlib.sha256).digest()

    msg = _roundtrip(CertRequestBuilder().public_key(key).popo_signature(signer, public_key_mac=pk_mac).build())
    popo, signature = _signature_popo(msg)
    assert seen == [spki_der(key)]
    signed = _poposk_input_der(popo)
    assert signer.signed == [signed]
    raw_verify(key.public_key(), signature, signed)
    mac = codec.decode(signed, crmf.POPOSigningKeyInput())["authInfo"]["publicKeyMAC"]
    assert str(mac["algId"]["algorithm"]) == oids.HMAC_WITH_SHA256
    assert mac["value"].asOctets() == hmac.new(mac_key, spki_der(key), hashlib.sha256).digest()


def test_signature_popo_refusals() -> None:
    key = make_key("ec-p256")
    signer = RecordingSigner(key)
    with pytest.raises(UsageError, match="needs the request's public key"):
        CertRequestBuilder().subject("CN=a").popo_signature(signer).build()
    with pytest.raises(UsageError, match="without subject needs POPOSigningKeyInput"):
        CertRequestBuilder().public_key(key).popo_signature(signer).build()
    with pytest.raises(UsageError, match="either sender or publicKeyMAC"):
        CertRequestBuilder().popo_signature(signer, sender="CN=a", public_key_mac=lambda d: (None, b""))
    # RFC 4211 section 4.1: with subject and publicKey, poposkInput MUST be omitted.
    with pytest.raises(UsageError, match="signed over certReq"):
        CertRequestBuilder().subject("CN=a").public_key(key).popo_signature(signer, sender="CN=a").build()
    assert signer.signed == []


# --- other POPO forms ------------------------------------------------------------------------


def _base() -> CertRequestBuilder:
    return CertRequestBuilder().subject("CN=dev").public_key(make_key("ec-p256"))


def test_ra_verified() -> None:
    msg = _roundtrip(_base().popo_ra_verified().build())
    assert msg["popo"].getName() == "raVerified"
    assert codec.encode(msg["popo"]) == b"\x80\x00"


@pytest.mark.parametrize("method, outer", [("popo_key_encipherment", 0xA2), ("popo_key_agreement", 0xA3)])
def test_subsequent_message(method: str, outer: int) -> None:
    msg = _roundtrip(getattr(_base(), method)().build())
    name = "keyEncipherment" if outer == 0xA2 else "keyAgreement"
    assert msg["popo"].getName() == name
    priv = msg["popo"][name]
    assert priv.getName() == "subsequentMessage"
    assert int(priv["subsequentMessage"]) == 0  # encrCert
    assert codec.encode(msg["popo"]) == bytes((outer, 3, 0x81, 1, 0))


def test_key_encipherment_this_message() -> None:
    msg = _roundtrip(_base().popo_key_encipherment(this_message=b"\x01\x02\x03").build())
    priv = msg["popo"]["keyEncipherment"]
    assert priv.getName() == "thisMessage"
    assert priv["thisMessage"].asOctets() == b"\x01\x02\x03"


def test_key_encipherment_encrypted_key() -> None:
    from cmpclient.keys.encrypted import PasswordRecipient, envelope

    env = envelope(b"private key", recipients=[PasswordRecipient(b"password-1", iterations=1000)])
    msg = _roundtrip(_base().popo_key_encipherment(encrypted_key_der=env).build())
    priv = msg["popo"]["keyEncipherment"]
    assert priv.getName() == "encryptedKey"
    assert codec.enveloped_data_der(priv["encryptedKey"]) == env
    with pytest.raises(UsageError, match="not both"):
        _base().popo_key_encipherment(this_message=b"x", encrypted_key_der=env)


def test_popo_none() -> None:
    msg = _roundtrip(CertRequestBuilder().subject("CN=dev").popo_none().build())
    assert not msg["popo"].isValue
    assert not msg["certReq"]["certTemplate"]["publicKey"].isValue


def test_no_popo_refused() -> None:
    with pytest.raises(UsageError, match="no proof-of-possession method chosen") as info:
        _base().build()
    assert "popo_none()" in info.value.hint


def test_popo_twice_refused() -> None:
    with pytest.raises(UsageError, match="popo is already set"):
        _base().popo_none().popo_ra_verified()


# --- template ----------------------------------------------------------------------------


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_public_key_forms(kt: str) -> None:
    key = make_key(kt)
    der = spki_der(key)
    assert public_key_der(key) == public_key_der(key.public_key()) == public_key_der(der) == der
    t = _roundtrip(CertRequestBuilder().public_key(key).popo_none().build())["certReq"]["certTemplate"]
    assert codec.encode(t["publicKey"])[1:] == der[1:]


def test_public_key_refuses_non_key() -> None:
    with pytest.raises(UsageError, match="not a public key"):
        public_key_der(object())


def test_empty_public_key_for_server_generation() -> None:
    alg = codec.encode(alg_id(oids.EC_PUBLIC_KEY))
    spki = empty_public_key(alg)
    t = _roundtrip(CertRequestBuilder().public_key(spki).popo_none().build())["certReq"]["certTemplate"]
    assert t["publicKey"]["subjectPublicKey"].asOctets() == b""
    assert str(t["publicKey"]["algorithm"]["algorithm"]) == oids.EC_PUBLIC_KEY


def test_full_template() -> None:
    msg = _roundtrip(
        _base()
        .cert_req_id(7)
        .issuer("CN=CA,O=Example")
        .serial_number(12345)
        .popo_none()
        .build()
    )
    req = msg["certReq"]
    assert int(req["certReqId"]) == 7
    t = req["certTemplate"]
    assert int(t["serialNumber"]) == 12345
    assert asn1_to_name(t["issuer"]) == parse_dn("CN=CA,O=Example")
    assert asn1_to_name(t["subject"]) == parse_dn("CN=dev")


def test_cert_req_id_default_and_bounds() -> None:
    assert int(_base().popo_none().build()["certReq"]["certReqId"]) == 0
    with pytest.raises(UsageError, match="certReqId must be >= 0"):
        CertRequestBuilder().cert_req_id(-2)


@pytest.mark.parametrize(
    "when, choice, text",
    [
        (_dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), "utcTime", "491231235959Z"),
        (_dt.datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC), "generalTime", "20500101000000Z"),
        (_dt.datetime(1950, 1, 1, tzinfo=UTC), "utcTime", "500101000000Z"),
        (_dt.datetime(1949, 12, 31, tzinfo=UTC), "generalTime", "19491231000000Z"),
        (_dt.datetime(2030, 6, 1, 2, 0, tzinfo=_dt.timezone(_dt.timedelta(hours=2))), "utcTime", "300601000000Z"),
    ],
)
def test_validity_time_type(when: _dt.datetime, choice: str, text: str) -> None:
    start = when - _dt.timedelta(days=1)
    v = _roundtrip(_base().validity(start, when).popo_none().build())["certReq"]["certTemplate"]["validity"]
    assert v["notAfter"].getName() == choice
    assert str(v["notAfter"][choice]) == text


def test_validity_one_side() -> None:
    when = _dt.datetime(2030, 1, 1, tzinfo=UTC)
    v = _roundtrip(_base().validity(not_after=when).popo_none().build())["certReq"]["certTemplate"]["validity"]
    assert not v["notBefore"].isValue and v["notAfter"].isValue


def test_validity_refusals() -> None:
    a = _dt.datetime(2030, 1, 1, tzinfo=UTC)
    b = a + _dt.timedelta(days=1)
    with pytest.raises(UsageError, match="notAfter must be later than notBefore"):
        _base().validity(b, a)
    with pytest.raises(UsageError, match="notAfter must be later than notBefore"):
        _base().validity(a, a)
    with pytest.raises(UsageError, match="notAfter must be later than notBefore"):
        _base().validity(not_after=a).validity(not_before=b)
    with pytest.raises(UsageError, match="needs notBefore, notAfter or both"):
        _base().validity()
    with pytest.raises(UsageError, match="timezone-aware"):
        _base().validity(_dt.datetime(2030, 1, 1), _dt.datetime(2031, 1, 1))
    with pytest.raises(UsageError, match="timezone-aware"):
        _base().validity(_dt.datetime(2030, 1, 1), b)  # naive vs aware: not a TypeError
    with pytest.raises(UsageError, match="timezone-aware"):
        _base().validity(not_after=_dt.datetime(2031, 1, 1))
    with pytest.raises(UsageError, match="not_before is already set"):
        _base().validity(a).validity(a)


# --- extensions ----------------------------------------------------------------------------

SAN = x509.SubjectAlternativeName([x509.DNSName("dev.example"), x509.RFC822Name("ops@example.org")])
KU = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])


def _parse_with_cryptography(extensions) -> x509.Extensions:
    """Put the extnValues into a certificate and let cryptography's parser read them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ext")])
    now = _dt.datetime.now(UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=1))
    )
    for ext in extensions:
        oid = x509.ObjectIdentifier(str(ext["extnID"]))
        b = b.add_extension(x509.UnrecognizedExtension(oid, bytes(ext["extnValue"])), critical=bool(ext["critical"]))
    return b.sign(key, hashes.SHA256()).extensions


def test_extensions_parse_back() -> None:
    msg = _roundtrip(_base().subject_alt_names(list(SAN)).extension(KU, critical=True).extension(EKU).popo_none().build())
    exts = msg["certReq"]["certTemplate"]["extensions"]
    assert [str(e["extnID"]) for e in exts] == [oids.CE_SUBJECT_ALT_NAME, oids.CE_KEY_USAGE, oids.CE_EXT_KEY_USAGE]
    assert [bool(e["critical"]) for e in exts] == [False, True, False]
    assert [bytes(e["extnValue"]) for e in exts] == [SAN.public_bytes(), KU.public_bytes(), EKU.public_bytes()]
    parsed = _parse_with_cryptography(exts)
    assert parsed.get_extension_for_class(x509.SubjectAlternativeName).value == SAN
    ku = parsed.get_extension_for_class(x509.KeyUsage)
    assert ku.value == KU and ku.critical
    assert parsed.get_extension_for_class(x509.ExtendedKeyUsage).value == EKU


def test_extension_refusals() -> None:
    with pytest.raises(UsageError, match="extension 2.5.29.17 is already set|extension .*subject.*already set"):
        _base().subject_alt_names([x509.DNSName("a")]).extension(SAN)
    with pytest.raises(UsageError, match="at least one name"):
        _base().subject_alt_names([])


# --- controls and regInfo --------------------------------------------------------------------


def _controls(msg: crmf.CertReqMsg) -> dict[str, bytes]:
    return {str(atv["type"]): bytes(atv["value"]) for atv in msg["certReq"]["controls"]}


@pytest.mark.parametrize("kt", ["rsa2048", "ec-p256"])
def test_controls_decode_to_the_right_values(kt: str) -> None:
    enc_key = make_key(kt)
    msg = _roundtrip(
        _base()
        .reg_token("tok-123")
        .authenticator("auth ✓")
        .old_cert_id("CN=CA,O=Example", 0x1234567890)
        .protocol_encr_key(enc_key)
        .popo_none()
        .build()
    )
    c = _controls(msg)
    assert list(c) == [oids.REGCTRL_REG_TOKEN, oids.REGCTRL_AUTHENTICATOR, oids.REGCTRL_OLD_CERT_ID, oids.REGCTRL_PROTOCOL_ENCR_KEY]
    assert str(codec.decode(c[oids.REGCTRL_REG_TOKEN], char.UTF8String())) == "tok-123"
    assert str(codec.decode(c[oids.REGCTRL_AUTHENTICATOR], char.UTF8String())) == "auth ✓"
    cert_id = codec.decode(c[oids.REGCTRL_OLD_CERT_ID], crmf.CertId())
    assert asn1_to_name(cert_id["issuer"]["directoryName"]) == parse_dn("CN=CA,O=Example")
    assert int(cert_id["serialNumber"]) == 0x1234567890
    assert c[oids.REGCTRL_PROTOCOL_ENCR_KEY] == spki_der(enc_key)


def test_old_cert_id_from_a_certificate() -> None:
    cert = self_signed_cert(make_key("ec-p256"), "old")
    msg = _roundtrip(_base().old_cert_id(cert.issuer, cert.serial_number).popo_none().build())
    cert_id = codec.decode(_controls(msg)[oids.REGCTRL_OLD_CERT_ID], crmf.CertId())
    assert asn1_to_name(cert_id["issuer"]["directoryName"]) == cert.issuer
    assert int(cert_id["serialNumber"]) == cert.serial_number


def test_duplicate_control_refused() -> None:
    with pytest.raises(UsageError, match="control regToken is already set"):
        _base().reg_token("a").reg_token("b")
    with pytest.raises(UsageError, match="control oldCertID is already set"):
        _base().old_cert_id("CN=a", 1).control(oids.REGCTRL_OLD_CERT_ID, b"\x30\x00")


def test_reg_info() -> None:
    msg = _roundtrip(_base().reg_info(oids.REGINFO_UTF8_PAIRS, b"\x0c\x03a?b").popo_none().build())
    (atv,) = msg["regInfo"]
    assert (str(atv["type"]), bytes(atv["value"])) == (oids.REGINFO_UTF8_PAIRS, b"\x0c\x03a?b")


def test_build_template_alone() -> None:
    t = CertRequestBuilder().issuer("CN=CA").serial_number(5).build_template()
    der = codec.encode(t)
    assert codec.encode(codec.decode(der, crmf.CertTemplate())) == der
    assert not t["subject"].isValue
