"""Helpers for the protection tests: minimal messages, keys of every type, certificates.

A uniquely named module (not ``conftest``) so that ``from protection_testlib import ...`` cannot
pick up another directory's conftest under pytest's default import mode.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa
from cryptography.x509.oid import NameOID

from cmpclient.asn1 import cmp

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

#: key type id -> (generator, rsa_pss flag)
KEY_TYPES = {
    "rsa": (lambda: rsa.generate_private_key(65537, 2048), False),
    "rsa-pss": (lambda: rsa.generate_private_key(65537, 2048), True),
    "ec-p256": (lambda: ec.generate_private_key(ec.SECP256R1()), False),
    "ec-p384": (lambda: ec.generate_private_key(ec.SECP384R1()), False),
    "ec-p521": (lambda: ec.generate_private_key(ec.SECP521R1()), False),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, False),
    "ed448": (ed448.Ed448PrivateKey.generate, False),
    "ml-dsa-44": (mldsa.MLDSA44PrivateKey.generate, False),
    "ml-dsa-65": (mldsa.MLDSA65PrivateKey.generate, False),
    "ml-dsa-87": (mldsa.MLDSA87PrivateKey.generate, False),
}

_KEY_CACHE: dict[str, object] = {}


def key_of(kind: str):
    """One key per type per test session (RSA and ML-DSA generation is not free)."""
    if kind not in _KEY_CACHE:
        _KEY_CACHE[kind] = KEY_TYPES[kind][0]()
    return _KEY_CACHE[kind]


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign_args(issuer_key, rsa_pss: bool = False) -> dict:
    if isinstance(issuer_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) or type(issuer_key).__name__.startswith("MLDSA"):
        return {"algorithm": None}
    if rsa_pss:
        return {
            "algorithm": hashes.SHA256(),
            "rsa_padding": padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        }
    return {"algorithm": hashes.SHA256()}


def make_cert(
    subject: str,
    key,
    *,
    issuer: tuple[x509.Certificate, object] | None = None,
    ca: bool | None = False,
    key_usage: str | None = "digitalSignature",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    ski: bool = True,
    rsa_pss: bool = False,
    path_length: int | None = None,
) -> x509.Certificate:
    """A certificate for ``key``; self-signed unless ``issuer`` = (cert, key) is given.

    ``ca`` None omits basicConstraints; ``key_usage`` is "digitalSignature", "ca" (keyCertSign
    + cRLSign), "keyEncipherment" or None (no extension).
    """
    issuer_name = issuer[0].subject if issuer else name(subject)
    issuer_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    if key_usage is not None:
        flags = dict(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        )
        if key_usage == "digitalSignature":
            flags["digital_signature"] = True
        elif key_usage == "ca":
            flags.update(key_cert_sign=True, crl_sign=True, digital_signature=True)
        elif key_usage == "keyEncipherment":
            flags["key_encipherment"] = True
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(private_key=issuer_key, **_sign_args(issuer_key, rsa_pss))


def make_message(*, sender_kid: bytes | None = None, extra_certs: list[bytes] = ()) -> cmp.PKIMessage:
    """A minimal PKIMessage: pvno 2, rfc822Name sender/recipient, a pkiconf body."""
    msg = cmp.PKIMessage()
    header = msg["header"]
    header["pvno"] = 2
    header["sender"]["rfc822Name"] = "client@example.org"
    header["recipient"]["rfc822Name"] = "ca@example.org"
    header["transactionID"] = header["transactionID"].clone(b"\x01" * 16)
    header["senderNonce"] = header["senderNonce"].clone(b"\x02" * 16)
    if sender_kid is not None:
        header["senderKID"] = header["senderKID"].clone(sender_kid)
    msg["body"]["pkiconf"] = msg["body"]["pkiconf"].clone("")
    for der in extra_certs:
        msg["extraCerts"].append(cmp.CMPCertificate(der))
    return msg


@dataclass
class PKI:
    root_key: object
    root: x509.Certificate
    sub_key: object
    sub: x509.Certificate
    ee_key: object
    ee: x509.Certificate


def make_pki() -> PKI:
    """Root -> Sub CA -> end entity (EC P-256), all valid now, EE with digitalSignature."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("Test Root CA", root_key, ca=True, key_usage="ca")
    sub_key = ec.generate_private_key(ec.SECP256R1())
    sub = make_cert("Test Sub CA", sub_key, issuer=(root, root_key), ca=True, key_usage="ca")
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee = make_cert("CMP Server", ee_key, issuer=(sub, sub_key))
    return PKI(root_key, root, sub_key, sub, ee_key, ee)
