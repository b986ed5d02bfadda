"""Helpers shared by the message-layer tests: keys, POPO signers, independent cross-checks.

Signing and verifying here use ``cryptography`` directly (not ``cmpclient.protection``), so
a POPO test fails when the builder signs the wrong bytes, not when two copies of the same
mistake agree.  ``rfc9810_roundtrip`` decodes with the independent pyasn1-alt-modules schema.
"""

from __future__ import annotations

import datetime as _dt
import functools
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import oids
from cmpclient.message.header import HeaderBuilder

REPO = Path(__file__).resolve().parents[3]
PKI = REPO / "fixtures" / "pki"

KEY_TYPES = ("rsa2048", "ec-p256", "ed25519", "ml-dsa-44")


def _mldsa() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa

        return mldsa.MLDSA44PrivateKey.generate()
    except Exception as exc:  # pragma: no cover - depends on the OpenSSL build
        pytest.skip(f"ML-DSA-44 not available in this cryptography/OpenSSL: {exc}")


@functools.lru_cache(maxsize=None)
def make_key(kind: str) -> Any:
    """One private key per type per test session (RSA generation is slow)."""
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ml-dsa-44":
        return _mldsa()
    raise ValueError(kind)


def spki_der(key: Any) -> bytes:
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def alg_id(oid: str, *, null_params: bool = False) -> rfc5280.AlgorithmIdentifier:
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = univ.ObjectIdentifier(oid)
    if null_params:
        alg["parameters"] = univ.Any(b"\x05\x00")
    return alg


def signature_oid(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return oids.SHA256_WITH_RSA
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return oids.ECDSA_WITH_SHA256
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return oids.ED25519
    return oids.ML_DSA_44


def raw_sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data)


def raw_verify(public_key: Any, signature: bytes, data: bytes) -> None:
    """Raises cryptography's InvalidSignature when ``signature`` is not over ``data``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(signature, data)


class RecordingSigner:
    """A POPO signer that remembers what it was asked to sign."""

    def __init__(self, key: Any):
        self.key = key
        self.signed: list[bytes] = []

    def __call__(self, data: bytes) -> tuple[object, bytes]:
        self.signed.append(bytes(data))
        oid = signature_oid(self.key)
        return alg_id(oid, null_params=oid == oids.SHA256_WITH_RSA), raw_sign(self.key, data)


def header(**kw: Any) -> Any:
    """A complete PKIHeader with fixed sender/recipient."""
    b = HeaderBuilder().sender(kw.pop("sender", "CN=client,O=Example")).recipient(kw.pop("recipient", "CN=CA,O=Example"))
    for name, value in kw.items():
        b = getattr(b, name)(value)
    return b.build()


def load_cert_der(name: str) -> bytes:
    cert = x509.load_pem_x509_certificate((PKI / name).read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def self_signed_cert(key: Any, cn: str = "test") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = _dt.datetime.now(_dt.timezone.utc)
    algo = hashes.SHA256() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else None
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=1))
        .not_valid_after(now + _dt.timedelta(days=1))
        .sign(key, algo)
    )


def rfc9810_roundtrip(der: bytes) -> Any:
    """Decode with the independent pyasn1-alt-modules RFC 9810 schema and re-encode identically."""
    from pyasn1_alt_modules import rfc9810

    value, rest = der_decoder.decode(der, asn1Spec=rfc9810.PKIMessage())
    assert rest == b""
    assert der_encoder.encode(value) == der
    return value
