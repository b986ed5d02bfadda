"""EncryptedValue, EnvelopedData, SignedData key packages: round trips and failure modes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ

from cmpclient.errors import CMPClientError, DecodeError, ProtectionError, UsageError
from cmpclient.keys import (
    KeyAgreeRecipient,
    KeyTransRecipient,
    PasswordRecipient,
    decrypt_encrypted_value,
    decrypt_enveloped_data,
    decrypt_returned_private_key,
    encrypt_encrypted_value,
    envelope,
    generate_key,
    make_protocol_encr_key,
    verify_signed_data,
    wrap_private_key_for_delivery,
    wrap_private_key_in_encrypted_value,
)

from .conftest import make_cert

MSG = b"the quick brown fox jumps over the lazy dog" * 3


def _same(a: Any, b: Any) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_key().public_bytes(*fmt) == b.public_key().public_bytes(*fmt)


# --- EncryptedValue ------------------------------------------------------------------------


@pytest.mark.parametrize("oaep", [False, True])
def test_encrypted_value_roundtrip(rsa_key: Any, oaep: bool) -> None:
    der = encrypt_encrypted_value(MSG, rsa_key.public_key(), oaep=oaep)
    assert decrypt_encrypted_value(der, rsa_key) == MSG


def test_encrypted_value_structure_decodes_with_independent_schema(rsa_key: Any) -> None:
    from pyasn1_alt_modules import rfc4211

    der = encrypt_encrypted_value(MSG, rsa_key.public_key())
    ev, rest = decoder.decode(der, asn1Spec=rfc4211.EncryptedValue())
    assert not rest
    assert str(ev["symmAlg"]["algorithm"]) == "2.16.840.1.101.3.4.1.42"
    assert str(ev["keyAlg"]["algorithm"]) == "1.2.840.113549.1.1.1"
    assert not ev["valueHint"].isValue and not ev["intendedAlg"].isValue
    # Implicit [1] on a SEQUENCE must be encoded constructed (0xA1).
    assert der[4] == 0xA1 or der[2] == 0xA1 or 0xA1 in der[:6]


def _set_bits(der: bytes, field: str, value: bytes) -> bytes:
    from pyasn1_modules import rfc4211

    ev, _ = decoder.decode(der, asn1Spec=rfc4211.EncryptedValue())
    ev[field] = ev[field].clone(univ.BitString.fromOctetString(value))
    return encoder.encode(ev)


def _bits(der: bytes, field: str) -> bytes:
    from pyasn1_modules import rfc4211

    ev, _ = decoder.decode(der, asn1Spec=rfc4211.EncryptedValue())
    return ev[field].asOctets()


def test_encrypted_value_tampered_padding_fails_cleanly(rsa_key: Any) -> None:
    # 47 bytes -> one pad byte 0x01; flipping the last byte of the second-to-last
    # ciphertext block turns it into 0xFE, which is never valid padding (deterministic).
    der = encrypt_encrypted_value(b"x" * 47, rsa_key.public_key())
    ct = bytearray(_bits(der, "encValue"))
    ct[-17] ^= 0xFF
    with pytest.raises(ProtectionError, match="bad padding"):
        decrypt_encrypted_value(_set_bits(der, "encValue", bytes(ct)), rsa_key)


def test_encrypted_value_truncated_and_garbage(rsa_key: Any) -> None:
    der = encrypt_encrypted_value(MSG, rsa_key.public_key())
    ct = _bits(der, "encValue")
    with pytest.raises(DecodeError, match="multiple of 16"):
        decrypt_encrypted_value(_set_bits(der, "encValue", ct[:-1]), rsa_key)
    with pytest.raises(DecodeError):
        decrypt_encrypted_value(der[:-3], rsa_key)
    with pytest.raises(DecodeError, match="trailing"):
        decrypt_encrypted_value(der + b"\x00", rsa_key)
    with pytest.raises(DecodeError):
        decrypt_encrypted_value(b"not DER at all", rsa_key)


def test_encrypted_value_wrong_key_or_tampered_key(rsa_key: Any) -> None:
    der = encrypt_encrypted_value(MSG, rsa_key.public_key(), oaep=True)
    other = generate_key("RSA2048")
    with pytest.raises(ProtectionError):
        decrypt_encrypted_value(der, other)
    ek = bytearray(_bits(der, "encSymmKey"))
    ek[5] ^= 1
    with pytest.raises(ProtectionError):
        decrypt_encrypted_value(_set_bits(der, "encSymmKey", bytes(ek)), rsa_key)


def test_encrypted_value_refuses_non_rsa(ec_key: Any) -> None:
    with pytest.raises(UsageError):
        encrypt_encrypted_value(MSG, ec_key.public_key())


# --- EnvelopedData -------------------------------------------------------------------------


@pytest.mark.parametrize("oaep", [True, False])
@pytest.mark.parametrize("rid", ["issuer_serial", "ski_cert", "ski_pubkey"])
def test_ktri_roundtrip(rsa_key: Any, rsa_cert: Any, oaep: bool, rid: str) -> None:
    recipient = rsa_key.public_key() if rid == "ski_pubkey" else rsa_cert
    der = envelope(MSG, recipients=[KeyTransRecipient(recipient, oaep=oaep, use_ski=rid == "ski_cert")])
    assert decrypt_enveloped_data(der, private_key=rsa_key, certificate=rsa_cert) == MSG
    assert decrypt_enveloped_data(der, private_key=rsa_key) == MSG


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
@pytest.mark.parametrize("rid", ["issuer_serial", "ski"])
def test_kari_roundtrip(curve: str, rid: str) -> None:
    key = generate_key(curve)
    cert = make_cert(key)
    der = envelope(MSG, recipients=[KeyAgreeRecipient(cert, use_ski=rid == "ski")])
    assert decrypt_enveloped_data(der, private_key=key, certificate=cert) == MSG
    assert decrypt_enveloped_data(der, private_key=key) == MSG


@pytest.mark.parametrize("kdf_hash,wrap", [("sha384", 32), ("sha512", 16)])
def test_kari_other_kdf_and_wrap(ec_key: Any, kdf_hash: str, wrap: int) -> None:
    der = envelope(
        MSG, recipients=[KeyAgreeRecipient(ec_key.public_key(), kdf_hash=kdf_hash, wrap_key_size=wrap, ukm=b"u" * 16)]
    )
    assert decrypt_enveloped_data(der, private_key=ec_key) == MSG


@pytest.mark.parametrize("kek", ["aes-wrap", "pwri-kek"])
def test_pwri_roundtrip_and_wrong_password(kek: str) -> None:
    der = envelope(MSG, recipients=[PasswordRecipient(b"correct horse", iterations=2000, kek=kek)])
    assert decrypt_enveloped_data(der, password=b"correct horse") == MSG
    with pytest.raises(ProtectionError, match="wrong password|bad padding"):
        decrypt_enveloped_data(der, password=b"battery staple")


def test_pwri_uses_rfc9481_aes_wrap_by_default() -> None:
    from pyasn1_modules import rfc5652

    der = envelope(MSG, recipients=[PasswordRecipient(b"pw-pw-pw", iterations=1000)])
    env, _ = decoder.decode(der, asn1Spec=rfc5652.EnvelopedData())
    pwri = env["recipientInfos"][0]["pwri"]
    assert int(env["version"]) == 3
    assert str(pwri["keyDerivationAlgorithm"]["algorithm"]) == "1.2.840.113549.1.5.12"
    assert str(pwri["keyEncryptionAlgorithm"]["algorithm"]) == "2.16.840.1.101.3.4.1.45"


def test_multiple_recipients_each_decrypt(rsa_key: Any, rsa_cert: Any, ec_key: Any, ec_cert: Any) -> None:
    der = envelope(
        MSG,
        recipients=[KeyTransRecipient(rsa_cert), KeyAgreeRecipient(ec_cert), PasswordRecipient(b"pw123456", iterations=1000)],
        as_content_info=True,
    )
    assert decrypt_enveloped_data(der, private_key=rsa_key, certificate=rsa_cert) == MSG
    assert decrypt_enveloped_data(der, private_key=ec_key, certificate=ec_cert) == MSG
    assert decrypt_enveloped_data(der, password=b"pw123456") == MSG


def test_no_matching_recipient(rsa_cert: Any, ec_key: Any) -> None:
    der = envelope(MSG, recipients=[KeyTransRecipient(rsa_cert)])
    with pytest.raises(ProtectionError, match="no recipient matches"):
        decrypt_enveloped_data(der, private_key=ec_key)
    with pytest.raises(UsageError):
        decrypt_enveloped_data(der)


def test_wrong_rsa_key_with_cert_mismatch(rsa_cert: Any) -> None:
    other = generate_key("RSA2048")
    der = envelope(MSG, recipients=[KeyTransRecipient(rsa_cert, use_ski=True)])
    with pytest.raises(ProtectionError):
        decrypt_enveloped_data(der, private_key=other)


def test_tampered_enveloped_content_fails_cleanly(rsa_key: Any) -> None:
    from pyasn1_modules import rfc5652

    der = envelope(b"y" * 47, recipients=[KeyTransRecipient(rsa_key.public_key())])
    env, _ = decoder.decode(der, asn1Spec=rfc5652.EnvelopedData())
    ct = bytearray(bytes(env["encryptedContentInfo"]["encryptedContent"]))
    ct[-17] ^= 0xFF
    env["encryptedContentInfo"]["encryptedContent"] = env["encryptedContentInfo"]["encryptedContent"].clone(bytes(ct))
    with pytest.raises(ProtectionError):
        decrypt_enveloped_data(encoder.encode(env), private_key=rsa_key)
    with pytest.raises(DecodeError):
        decrypt_enveloped_data(der[:-5], private_key=rsa_key)


# --- Returned private keys -----------------------------------------------------------------


@pytest.mark.parametrize("spec", ["RSA2048", "secp256r1", "Ed25519", "Ed448", "ML-DSA-44"])
def test_signed_key_package_roundtrip(spec: str, ca_key: Any, ca_cert: Any, rsa_key: Any, rsa_cert: Any) -> None:
    new_key = generate_key(spec)
    der = wrap_private_key_for_delivery(
        new_key, recipients=[KeyTransRecipient(rsa_cert)], signer_key=ca_key, signer_cert=ca_cert
    )
    got = decrypt_returned_private_key(der, private_key=rsa_key, certificate=rsa_cert)
    assert _same(got, new_key)
    got = decrypt_returned_private_key(der, private_key=rsa_key, signer_certificate=ca_cert)
    assert _same(got, new_key)


@pytest.mark.parametrize("signer_spec", ["RSA2048", "Ed25519", "Ed448", "ML-DSA-65"])
def test_signed_key_package_signers(signer_spec: str, ec_key: Any, ec_cert: Any) -> None:
    signer = generate_key(signer_spec)
    scert = make_cert(signer, "Signer")
    new_key = generate_key("P-256")
    der = wrap_private_key_for_delivery(new_key, recipients=[KeyAgreeRecipient(ec_cert)], signer_key=signer, signer_cert=scert)
    assert _same(decrypt_returned_private_key(der, private_key=ec_key), new_key)


def test_signed_key_package_wrong_signer_and_bad_signature(ca_key: Any, ca_cert: Any) -> None:
    from pyasn1_modules import rfc5652

    new_key = generate_key("P-256")
    pw = PasswordRecipient(b"sekrit-pw", iterations=1000)
    der = wrap_private_key_for_delivery(new_key, recipients=[pw], signer_key=ca_key, signer_cert=ca_cert)
    other_cert = make_cert(generate_key("P-256"), "Other CA")
    with pytest.raises(ProtectionError, match="not the expected one"):
        decrypt_returned_private_key(der, password=b"sekrit-pw", signer_certificate=other_cert)
    # Without verification the key still comes out.
    assert _same(
        decrypt_returned_private_key(der, password=b"sekrit-pw", verify_signature=False, signer_certificate=other_cert),
        new_key,
    )
    # Break the signature inside the SignedData and re-envelope it.
    inner = decrypt_enveloped_data(der, password=b"sekrit-pw")
    sd, _ = decoder.decode(inner, asn1Spec=rfc5652.SignedData())
    sig = bytearray(bytes(sd["signerInfos"][0]["signature"]))
    sig[-1] ^= 1
    sd["signerInfos"][0]["signature"] = sd["signerInfos"][0]["signature"].clone(bytes(sig))
    bad = envelope(encoder.encode(sd), recipients=[pw], content_type_oid="1.2.840.113549.1.7.2")
    with pytest.raises(ProtectionError, match="signature"):
        decrypt_returned_private_key(bad, password=b"sekrit-pw")
    with pytest.raises(ProtectionError, match="signature"):
        verify_signed_data(encoder.encode(sd))


@pytest.mark.parametrize("inner", ["pkcs8", "enckeywithid"])
def test_unsigned_inner_formats(inner: str, ec_key: Any, ec_cert: Any) -> None:
    new_key = generate_key("RSA2048")
    der = wrap_private_key_for_delivery(
        new_key, recipients=[KeyAgreeRecipient(ec_cert)], inner=inner, identifier="device-42"
    )
    assert _same(decrypt_returned_private_key(der, private_key=ec_key, certificate=ec_cert), new_key)


def test_returned_key_in_encrypted_value(rsa_key: Any) -> None:
    new_key = generate_key("secp384r1")
    der = wrap_private_key_in_encrypted_value(new_key, rsa_key.public_key())
    assert _same(decrypt_returned_private_key(der, private_key=rsa_key), new_key)


def test_garbage_content_is_decode_error(rsa_key: Any) -> None:
    der = envelope(b"definitely not a key", recipients=[KeyTransRecipient(rsa_key.public_key())])
    with pytest.raises(DecodeError):
        decrypt_returned_private_key(der, private_key=rsa_key)


@pytest.mark.parametrize("kind,cls", [("RSA", KeyTransRecipient), ("EC", KeyAgreeRecipient)])
def test_protocol_encr_key_roundtrip(kind: str, cls: Any, ca_key: Any, ca_cert: Any) -> None:
    priv, spki = make_protocol_encr_key(kind)
    pub = serialization.load_der_public_key(spki)
    new_key = generate_key("Ed25519")
    der = wrap_private_key_for_delivery(new_key, recipients=[cls(pub)], signer_key=ca_key, signer_cert=ca_cert)
    assert _same(decrypt_returned_private_key(der, private_key=priv), new_key)


def test_protocol_encr_key_bad_kind() -> None:
    with pytest.raises(UsageError):
        make_protocol_encr_key("DSA")


def test_errors_are_cmpclient_errors(rsa_key: Any) -> None:
    for bad in (b"", b"\x30\x00", b"\x30\x80\x00\x00", bytes(range(40))):
        with pytest.raises(CMPClientError):
            decrypt_returned_private_key(bad, private_key=rsa_key)


def test_mutated_envelopes_only_raise_our_errors(rsa_key: Any, ec_key: Any, ca_key: Any, ca_cert: Any) -> None:
    """Bit flips and truncations anywhere must end in a CMPClientError (or a valid key)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    der = wrap_private_key_for_delivery(
        generate_key("P-256"),
        recipients=[KeyTransRecipient(rsa_key.public_key()), KeyAgreeRecipient(ec_key.public_key()),
                    PasswordRecipient(b"pw12345678", iterations=1000, kek="pwri-kek")],
        signer_key=ca_key, signer_cert=ca_cert,
    )
    ev = wrap_private_key_in_encrypted_value(generate_key("P-256"), rsa_key.public_key())

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(which=st.booleans(), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=3),
           cut=st.one_of(st.none(), st.integers(0, 10**6)))
    def check(which: bool, flips: list[tuple[int, int]], cut: int | None) -> None:
        b = bytearray(der if which else ev)
        for pos, bit in flips:
            b[pos % len(b)] ^= 1 << bit
        if cut is not None:
            b = b[: cut % len(b)]
        for kw in ({"private_key": rsa_key}, {"private_key": ec_key}, {"password": b"pw12345678"}):
            try:
                decrypt_returned_private_key(bytes(b), **kw)
            except CMPClientError:
                pass

    check()
