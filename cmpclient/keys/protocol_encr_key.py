"""Keys for the ``id-regCtrl-protocolEncrKey`` control (RFC 4211 section 6.6).

An end entity asking for a centrally generated key sends a fresh public key; the CA
encrypts the returned private key to it.  The end entity keeps the private key only for the
duration of the transaction.
"""

from __future__ import annotations

from typing import Any

from cmpclient.errors import UsageError

__all__ = ["make_protocol_encr_key", "PROTOCOL_ENCR_KEY_KINDS", "ID_REGCTRL_PROTOCOL_ENCR_KEY"]

#: id-regCtrl-protocolEncrKey, 1.3.6.1.5.5.7.5.1.6
ID_REGCTRL_PROTOCOL_ENCR_KEY = "1.3.6.1.5.5.7.5.1.6"

#: Kinds accepted by :func:`make_protocol_encr_key` (those the envelope code can encrypt to).
PROTOCOL_ENCR_KEY_KINDS = ("RSA", "EC")


def make_protocol_encr_key(kind: str = "RSA", *, size: int = 2048, curve: str = "secp256r1") -> tuple[Any, bytes]:
    """Generate a transport key pair for ``id-regCtrl-protocolEncrKey``.

    ``kind`` is ``"RSA"`` (key transport; ``size`` bits) or ``"EC"`` (ECDH key agreement on
    ``curve``, any spelling :func:`~cmpclient.keys.generate.parse_key_spec` accepts).
    Returns ``(private_key, SubjectPublicKeyInfo DER)``; the DER goes into the control's value.
    """
    from cryptography.hazmat.primitives import serialization

    from cmpclient.keys.generate import generate_key, parse_key_spec

    k = kind.strip().upper()
    if k == "RSA":
        key = generate_key(f"RSA{size}")
    elif k in ("EC", "ECDH", "ECC"):
        spec = parse_key_spec(curve)
        if spec.family != "EC":
            raise UsageError(f"{curve!r} is not an EC curve")
        key = generate_key(spec)
    else:
        raise UsageError(
            f"unsupported protocolEncrKey kind {kind!r}", hint="use one of " + ", ".join(PROTOCOL_ENCR_KEY_KINDS)
        )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, spki
