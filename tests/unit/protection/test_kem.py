"""KEM-based MAC (RFC 9810 section 5.1.3.4) and KEMRecipientInfo (RFC 9629) units, with the
structures cross-checked against pyasn1-alt-modules (rfc9810, rfc9629; test-only schema)."""

from __future__ import annotations

import os

import pytest
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder

from cmpclient.asn1 import codec, oids
from cmpclient.errors import ProtectionError, UsageError
from cmpclient.keys import generate_key
from cmpclient.protection import kem


def _alt(der: bytes, spec):
    obj, rest = der_decoder.decode(der, asn1Spec=spec)
    assert rest == b"" and der_encoder.encode(obj) == der
    return obj


def test_kem_other_info_and_parameters_match_rfc9810_schema() -> None:
    from pyasn1_alt_modules import rfc9810

    tid = os.urandom(16)
    info = _alt(kem.kem_other_info_der(tid, b"ctx"), rfc9810.KemOtherInfo())
    assert str(info["staticString"][0]) == "CMP-KEM" and bytes(info["transactionID"]) == tid
    assert bytes(info["kemContext"]) == b"ctx"
    alg = kem.KemBMParams(kem_context=b"ctx").algorithm_identifier()
    assert str(alg["algorithm"]) == oids.KEM_BASED_MAC
    p = _alt(bytes(alg["parameters"]), rfc9810.KemBMParameter())
    assert str(p["kdf"]["algorithm"]) == oids.HKDF_WITH_SHA256 and int(p["len"]) == 32
    assert bytes(p["kemContext"]) == b"ctx" and str(p["mac"]["algorithm"]) == oids.HMAC_WITH_SHA256
    assert kem.KemBMParams.from_algorithm_identifier(alg) == kem.KemBMParams(kem_context=b"ctx")


@pytest.mark.parametrize("spec", ["ML-KEM-768", "ML-KEM-1024"])
def test_encapsulate_decapsulate_and_mac(spec: str) -> None:
    from pyasn1_alt_modules import rfc9810

    key = generate_key(spec)
    ss, info = kem.encapsulate_to(key.public_key())
    _alt(info, rfc9810.KemCiphertextInfo())
    assert kem.decapsulate_ciphertext_info(key, info) == ss
    tid = os.urandom(16)
    prot = kem.KEMMACProtection(ss, tid)
    data = b"protected part"
    mac = prot.compute(data)
    kem.verify_kem_mac(ss, prot.algorithm_identifier(), tid, data, mac)
    with pytest.raises(ProtectionError) as ei:
        kem.verify_kem_mac(ss, prot.algorithm_identifier(), os.urandom(16), data, mac)  # transactionID is bound
    assert ei.value.fail_info == "badMessageCheck"
    with pytest.raises(ProtectionError):
        kem.verify_kem_mac(os.urandom(32), prot.algorithm_identifier(), tid, data, mac)


def test_ssk_is_hkdf_of_kem_other_info() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    ss, tid = os.urandom(32), os.urandom(16)
    want = HKDF(hashes.SHA256(), 32, None, kem.kem_other_info_der(tid)).derive(ss)
    assert kem.derive_ssk(ss, kem.KemBMParams(), tid) == want


def test_wrong_kem_algorithm_and_bad_params() -> None:
    k768, k1024 = generate_key("ML-KEM-768"), generate_key("ML-KEM-1024")
    _, info = kem.encapsulate_to(k1024.public_key())
    with pytest.raises(ProtectionError) as ei:
        kem.decapsulate_ciphertext_info(k768, info)
    assert ei.value.fail_info == "badAlg"
    with pytest.raises(ProtectionError):
        kem.encapsulate_to(generate_key("secp256r1").public_key())
    with pytest.raises(UsageError):
        kem.KemBMParams(kdf="md5")


def test_kem_recipient_info_matches_rfc9629_schema() -> None:
    from pyasn1_alt_modules import rfc5652, rfc9629

    from cmpclient.asn1.cms_kem import CMSORIforKEMOtherInfo
    from cmpclient.keys import KEMRecipient, decrypt_enveloped_data, envelope

    key = generate_key("ML-KEM-768")
    der = envelope(b"content", recipients=[KEMRecipient(key.public_key(), ukm=b"user keying material")])
    env = _alt(der, rfc5652.EnvelopedData())
    kemri = _alt(bytes(env["recipientInfos"][0]["ori"]["oriValue"]), rfc9629.KEMRecipientInfo())
    assert bytes(kemri["ukm"]) == b"user keying material"
    assert kemri["rid"].getName() == "subjectKeyIdentifier"
    assert decrypt_enveloped_data(der, private_key=key) == b"content"
    # Our CMSORIforKEMOtherInfo encodes like the independent schema's.
    ours = CMSORIforKEMOtherInfo()
    ours["wrap"]["algorithm"] = kemri["wrap"]["algorithm"]
    ours["kekLength"] = 32
    ours["ukm"] = b"user keying material"
    _alt(codec.encode(ours), rfc9629.CMSORIforKEMOtherInfo())
