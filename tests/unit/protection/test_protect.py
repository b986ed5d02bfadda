"""protect_message / verify_protection over whole PKIMessages."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cmpclient.asn1 import codec, oids
from cmpclient.errors import ProtectionError, TrustError, UsageError
from cmpclient.protection import (
    MACProtection,
    PBMAC1Params,
    PBMParams,
    SignatureProtection,
    protect_message,
    verify_protection,
)
from cmpclient.protection.trust import subject_key_identifier

from protection_testlib import KEY_TYPES, key_of, make_cert, make_message


def _flip_in_body(der: bytes) -> bytes:
    """Flip a byte inside the header (transactionID) so the ProtectedPart changes."""
    i = der.index(b"\x01" * 16)
    return der[:i] + b"\x03" + der[i + 1 :]


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_signature_protection_round_trip(kind):
    key = key_of(kind)
    cert = make_cert(f"signer {kind}", key, rsa_pss=KEY_TYPES[kind][1])
    prot = SignatureProtection(key, cert, rsa_pss=KEY_TYPES[kind][1])
    msg = make_message()
    protected = protect_message(msg, prot)
    assert not msg["protection"].isValue  # the input is untouched
    der = codec.encode(protected)
    result = verify_protection(der, trusted=[cert])
    assert result.kind == "signature" and result.signer_cert == cert and result.chain == [cert]
    assert bytes(protected["header"]["senderKID"]) == subject_key_identifier(cert)
    with pytest.raises(ProtectionError):
        verify_protection(_flip_in_body(der), trusted=[cert])


def test_signature_extra_certs_order_and_chain(pki):
    unrelated = make_cert("Unrelated", key_of("ec-p384"))
    unrelated_der = unrelated.public_bytes(Encoding.DER)
    ee_der = pki.ee.public_bytes(Encoding.DER)
    msg = make_message(extra_certs=[unrelated_der, ee_der])
    prot = SignatureProtection(pki.ee_key, pki.ee, chain=[pki.sub], digest="sha384")
    protected = protect_message(msg, prot)
    ders = [codec.any_der(c) for c in protected["extraCerts"]]
    # signer first, then the chain, then the earlier extraCerts without duplicates
    assert ders == [ee_der, pki.sub.public_bytes(Encoding.DER), unrelated_der]
    assert str(protected["header"]["protectionAlg"]["algorithm"]) == oids.ECDSA_WITH_SHA384
    result = verify_protection(codec.encode(protected), trusted=[pki.root])
    assert result.chain == [pki.ee, pki.sub, pki.root] and result.algorithm == "ecdsa-with-SHA384"


def test_signature_untrusted_signer_is_trust_error(pki):
    der = codec.encode(protect_message(make_message(), SignatureProtection(pki.ee_key, pki.ee, chain=[pki.sub])))
    other = make_cert("Other Root", key_of("ec-p256"), ca=True, key_usage="ca")
    with pytest.raises(TrustError):
        verify_protection(der, trusted=[other])
    with pytest.raises(TrustError, match="no trust anchor"):
        verify_protection(der)


def test_pinned_signer_ignores_extra_certs(pki):
    der = codec.encode(protect_message(make_message(), SignatureProtection(pki.ee_key, pki.ee)))
    assert verify_protection(der, pinned=pki.ee).chain == [pki.ee]
    with pytest.raises(ProtectionError, match="does not verify"):
        verify_protection(der, pinned=pki.sub)


def test_existing_sender_kid_is_kept_and_used_to_select_the_signer(pki):
    # senderKID that matches no SKI: no candidate certificate.
    der = codec.encode(protect_message(make_message(sender_kid=b"ref"), SignatureProtection(pki.ee_key, pki.ee)))
    with pytest.raises(ProtectionError, match="senderKID"):
        verify_protection(der, trusted=[pki.root], untrusted=[pki.sub])


def test_signature_key_must_match_cert(pki):
    from cmpclient.errors import ExitCode, KeyLoadError

    with pytest.raises(KeyLoadError, match="does not belong to the certificate 'CN=CMP Server'") as info:
        SignatureProtection(pki.sub_key, pki.ee)
    assert info.value.exit_code == ExitCode.CONFIG  # key/certificate unusable, as the README's table says


@pytest.mark.parametrize(
    "params",
    [
        PBMParams.new(owf="sha256", mac="hmac-sha1", iterations=500),
        PBMParams.new(owf="sha512", mac="hmacWithSHA512", iterations=100),
        PBMAC1Params.new(iterations=1000),
    ],
    ids=["pbm-sha1", "pbm-sha512", "pbmac1"],
)
def test_mac_protection_round_trip(params):
    prot = MACProtection(b"top secret", params, sender_kid=b"ref-1")
    protected = protect_message(make_message(), prot)
    assert bytes(protected["header"]["senderKID"]) == b"ref-1"
    assert not protected["extraCerts"].isValue
    der = codec.encode(protected)
    result = verify_protection(der, secret=b"top secret")
    assert result.kind == "mac" and result.signer_cert is None
    with pytest.raises(ProtectionError, match="protection is wrong"):
        verify_protection(der, secret=b"wrong")
    with pytest.raises(ProtectionError, match="protection is wrong"):
        verify_protection(_flip_in_body(der), secret=b"top secret")


def test_mac_without_secret_has_hint():
    der = codec.encode(protect_message(make_message(), MACProtection(b"s", PBMParams.new(iterations=1))))
    with pytest.raises(ProtectionError, match="no shared secret is configured") as err:
        verify_protection(der)
    assert "--secret" in err.value.diagnostics()


def test_iteration_limit_on_received_message():
    der = codec.encode(protect_message(make_message(), MACProtection(b"s", PBMParams.new(iterations=20_000))))
    with pytest.raises(ProtectionError, match="PBM iteration count 20000 exceeds the limit 10000") as err:
        verify_protection(der, secret=b"s")
    assert err.value.fail_info == "badRequest"
    assert verify_protection(der, secret=b"s", max_pbm_iterations=20_000).kind == "mac"


def test_unprotected_message():
    der = codec.encode(make_message())
    with pytest.raises(ProtectionError, match="message is not protected"):
        verify_protection(der, secret=b"s")


def test_kem_based_mac_verifies_with_the_kem_secret():
    import os

    from cmpclient.protection.kem import KEMMACProtection

    base = make_message()
    tid = bytes(base["header"]["transactionID"])
    ss = os.urandom(32)
    der = codec.encode(protect_message(base, KEMMACProtection(ss, tid)))
    assert verify_protection(der, kem_secret=ss).algorithm == "kemBasedMac/hkdf-sha256/hmac-sha256"
    with pytest.raises(ProtectionError, match="no KEM shared secret"):
        verify_protection(der, secret=b"s")
    with pytest.raises(ProtectionError) as err:
        verify_protection(der, kem_secret=os.urandom(32))
    assert err.value.fail_info == "badMessageCheck"


def test_verification_uses_received_bytes_with_given_message():
    msg = protect_message(make_message(), MACProtection(b"s", PBMParams.new(iterations=1)))
    der = codec.encode(msg)
    assert verify_protection(der, msg, secret=b"s").kind == "mac"


def test_mac_protection_refuses_bad_input():
    with pytest.raises(UsageError):
        MACProtection(b"")
    with pytest.raises(UsageError):
        MACProtection(b"s", params="pbm")  # type: ignore[arg-type]
    assert "secret" not in repr(MACProtection(b"very-secret", PBMParams.new(iterations=1))).replace("very-secret", "")
    assert "very-secret" not in repr(MACProtection(b"very-secret", PBMParams.new(iterations=1)))
