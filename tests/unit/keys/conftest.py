"""Shared fixtures for the keys tests: small throwaway certificates."""

from __future__ import annotations

import datetime
import shutil
from typing import Any

import pytest


def make_cert(key: Any, cn: str = "Test", *, issuer_key: Any = None, issuer_name: Any = None, ski: bool = True) -> Any:
    """A minimal certificate for ``key`` (self-signed unless an issuer is given)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer = issuer_key or key
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    algo = hashes.SHA256() if isinstance(signer, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else None
    return b.sign(signer, algo)


@pytest.fixture(scope="session")
def rsa_key() -> Any:
    from cmpclient.keys import generate_key

    return generate_key("RSA2048")


@pytest.fixture(scope="session")
def rsa_cert(rsa_key: Any) -> Any:
    return make_cert(rsa_key, "RSA recipient")


@pytest.fixture(scope="session")
def ec_key() -> Any:
    from cmpclient.keys import generate_key

    return generate_key("secp256r1")


@pytest.fixture(scope="session")
def ec_cert(ec_key: Any) -> Any:
    return make_cert(ec_key, "EC recipient")


@pytest.fixture(scope="session")
def ca_key() -> Any:
    from cmpclient.keys import generate_key

    return generate_key("secp384r1")


@pytest.fixture(scope="session")
def ca_cert(ca_key: Any) -> Any:
    return make_cert(ca_key, "Test CA")


@pytest.fixture(scope="session")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl CLI not installed")
    return path
