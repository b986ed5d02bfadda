"""Key spec parsing and generation."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa

from cmpclient.errors import UsageError
from cmpclient.keys import VALID_KEY_SPECS, KeySpec, generate_key, key_spec_of, parse_key_spec


@pytest.mark.parametrize("spec", VALID_KEY_SPECS)
def test_every_valid_spec_generates(spec: str) -> None:
    key = generate_key(spec)
    assert key_spec_of(key).name == spec
    assert key_spec_of(key.public_key()).name == spec


@pytest.mark.parametrize(
    "text,expected",
    [
        ("RSA2048", KeySpec("RSA", size=2048)),
        ("rsa:3072", KeySpec("RSA", size=3072)),
        ("rsa4096", KeySpec("RSA", size=4096)),
        ("P-256", KeySpec("EC", param="secp256r1")),
        ("prime256v1", KeySpec("EC", param="secp256r1")),
        ("EC:secp256r1", KeySpec("EC", param="secp256r1")),
        ("ec:P-384", KeySpec("EC", param="secp384r1")),
        ("secp521r1", KeySpec("EC", param="secp521r1")),
        ("ed25519", KeySpec("Ed25519")),
        ("Ed448", KeySpec("Ed448")),
        ("ML-DSA-44", KeySpec("ML-DSA", param="ML-DSA-44")),
        ("mldsa65", KeySpec("ML-DSA", param="ML-DSA-65")),
        ("ml_dsa_87", KeySpec("ML-DSA", param="ML-DSA-87")),
    ],
)
def test_aliases(text: str, expected: KeySpec) -> None:
    assert parse_key_spec(text) == expected


def test_generated_types() -> None:
    assert isinstance(generate_key("rsa:2048"), rsa.RSAPrivateKey)
    assert isinstance(generate_key("P-384"), ec.EllipticCurvePrivateKey)
    assert isinstance(generate_key("Ed25519"), ed25519.Ed25519PrivateKey)
    assert isinstance(generate_key("Ed448"), ed448.Ed448PrivateKey)
    assert isinstance(generate_key("ML-DSA-65"), mldsa.MLDSA65PrivateKey)


@pytest.mark.parametrize("bad", ["", "RSA1024", "rsa", "EC:secp256k1", "X25519", "ML-DSA-66", "dsa2048"])
def test_unknown_spec_is_usage_error_listing_valid(bad: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_key_spec(bad)
    text = ei.value.diagnostics()
    assert "RSA2048" in text or "RSA3072" in text or "secp256r1" in text
