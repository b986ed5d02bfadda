"""Key specifications and key generation.

A *key spec* is the short text a user types (``RSA2048``, ``rsa:3072``, ``P-256``,
``EC:secp384r1``, ``Ed25519``, ``ML-DSA-65``).  :func:`parse_key_spec` turns it into a
:class:`KeySpec`; :func:`generate_key` makes a fresh private key for it with the
``cryptography`` library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cmpclient.errors import UsageError

__all__ = ["KeySpec", "VALID_KEY_SPECS", "parse_key_spec", "generate_key", "key_spec_of"]

#: The canonical names accepted by :func:`parse_key_spec` (aliases are listed in the error).
VALID_KEY_SPECS: tuple[str, ...] = (
    "RSA2048",
    "RSA3072",
    "RSA4096",
    "secp256r1",
    "secp384r1",
    "secp521r1",
    "Ed25519",
    "Ed448",
    "ML-DSA-44",
    "ML-DSA-65",
    "ML-DSA-87",
    "ML-KEM-768",
    "ML-KEM-1024",
)

_RSA_SIZES = (2048, 3072, 4096)

# Curve aliases: NIST names, OpenSSL names and SEC names all map to the SEC name.
_EC_ALIASES: dict[str, str] = {
    "secp256r1": "secp256r1",
    "prime256v1": "secp256r1",
    "p256": "secp256r1",
    "nistp256": "secp256r1",
    "secp384r1": "secp384r1",
    "p384": "secp384r1",
    "nistp384": "secp384r1",
    "secp521r1": "secp521r1",
    "p521": "secp521r1",
    "nistp521": "secp521r1",
}

_MLDSA = {"44": "ML-DSA-44", "65": "ML-DSA-65", "87": "ML-DSA-87"}
#: ML-KEM (FIPS 203) parameter sets the installed cryptography implements (not ML-KEM-512).
_MLKEM = {"768": "ML-KEM-768", "1024": "ML-KEM-1024"}


@dataclass(frozen=True)
class KeySpec:
    """A parsed key specification.

    ``family`` is one of ``"RSA"``, ``"EC"``, ``"Ed25519"``, ``"Ed448"``, ``"ML-DSA"``, ``"ML-KEM"``;
    ``size`` is the RSA modulus length in bits (``None`` otherwise); ``param`` is the curve
    name for EC (``secp256r1``...) or the ML-DSA parameter set (``ML-DSA-65``).
    """

    family: str
    size: int | None = None
    param: str | None = None

    @property
    def name(self) -> str:
        """The canonical spelling, one of :data:`VALID_KEY_SPECS`."""
        if self.family == "RSA":
            return f"RSA{self.size}"
        if self.family in ("EC", "ML-DSA", "ML-KEM"):
            return str(self.param)
        return self.family

    def __str__(self) -> str:
        return self.name


def _usage(spec: str) -> UsageError:
    return UsageError(
        f"unknown key spec {spec!r}",
        hint="valid key specs: "
        + ", ".join(VALID_KEY_SPECS)
        + " (aliases: rsa:2048, P-256/prime256v1, EC:secp384r1, mldsa65, mlkem768)",
    )


def parse_key_spec(spec: str) -> KeySpec:
    """Parse a key spec such as ``RSA2048``, ``rsa:3072``, ``P-256``, ``EC:secp384r1``,
    ``Ed25519``, ``Ed448`` or ``ML-DSA-65``.

    Matching is case-insensitive.  Raises :class:`~cmpclient.errors.UsageError` listing the
    valid specs for anything else.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _usage(str(spec))
    raw = spec.strip()
    s = raw.lower()

    # RSA: "RSA2048", "rsa:2048", "rsa-2048", "rsa 2048", bare "rsa" is refused (size matters).
    m = re.fullmatch(r"rsa[\s:_-]?(\d+)", s)
    if m:
        size = int(m.group(1))
        if size not in _RSA_SIZES:
            raise UsageError(
                f"unsupported RSA key size {size} in key spec {raw!r}",
                hint="use RSA2048, RSA3072 or RSA4096",
            )
        return KeySpec("RSA", size=size)

    # EC: "secp256r1", "P-256", "EC:secp256r1", "ec:P-384", "ecdsa:prime256v1".
    m = re.fullmatch(r"(?:ec|ecdsa|ecc)[\s:_-](.+)", s)
    curve_text = m.group(1) if m else s
    curve_key = curve_text.replace("-", "").replace("_", "").replace(" ", "")
    if curve_key in _EC_ALIASES:
        return KeySpec("EC", param=_EC_ALIASES[curve_key])
    if m:
        raise UsageError(
            f"unsupported EC curve {curve_text!r} in key spec {raw!r}",
            hint="use secp256r1 (P-256), secp384r1 (P-384) or secp521r1 (P-521)",
        )

    compact = s.replace("-", "").replace("_", "").replace(" ", "")
    if compact == "ed25519":
        return KeySpec("Ed25519")
    if compact == "ed448":
        return KeySpec("Ed448")
    m = re.fullmatch(r"mldsa(\d+)", compact)
    if m and m.group(1) in _MLDSA:
        return KeySpec("ML-DSA", param=_MLDSA[m.group(1)])
    m = re.fullmatch(r"mlkem(\d+)", compact)
    if m and m.group(1) in _MLKEM:
        return KeySpec("ML-KEM", param=_MLKEM[m.group(1)])
    if m:
        raise UsageError(f"unsupported ML-KEM parameter set in key spec {raw!r}", hint="use ML-KEM-768 or ML-KEM-1024")
    raise _usage(raw)


def generate_key(spec: str | KeySpec) -> Any:
    """Generate a fresh private key for ``spec`` (a :class:`KeySpec` or a spec string).

    Returns a ``cryptography`` private key object (RSA, EC, Ed25519, Ed448 or ML-DSA).
    """
    ks = spec if isinstance(spec, KeySpec) else parse_key_spec(spec)
    if ks.family == "RSA":
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.generate_private_key(public_exponent=65537, key_size=int(ks.size or 0))
    if ks.family == "EC":
        from cryptography.hazmat.primitives.asymmetric import ec

        curve = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}[
            str(ks.param)
        ]
        return ec.generate_private_key(curve())
    if ks.family == "Ed25519":
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PrivateKey.generate()
    if ks.family == "Ed448":
        from cryptography.hazmat.primitives.asymmetric import ed448

        return ed448.Ed448PrivateKey.generate()
    if ks.family == "ML-DSA":
        from cryptography.hazmat.primitives.asymmetric import mldsa

        cls = {
            "ML-DSA-44": mldsa.MLDSA44PrivateKey,
            "ML-DSA-65": mldsa.MLDSA65PrivateKey,
            "ML-DSA-87": mldsa.MLDSA87PrivateKey,
        }[str(ks.param)]
        return cls.generate()
    if ks.family == "ML-KEM":
        from cryptography.hazmat.primitives.asymmetric import mlkem

        kem_cls = {"ML-KEM-768": mlkem.MLKEM768PrivateKey, "ML-KEM-1024": mlkem.MLKEM1024PrivateKey}[str(ks.param)]
        return kem_cls.generate()
    raise _usage(ks.name)  # pragma: no cover - KeySpec is only built by parse_key_spec


def key_spec_of(key: Any) -> KeySpec:
    """Return the :class:`KeySpec` describing an existing private or public key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa

    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return KeySpec("RSA", size=key.key_size)
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return KeySpec("EC", param=key.curve.name)
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return KeySpec("Ed25519")
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return KeySpec("Ed448")
    for n in ("44", "65", "87"):
        if isinstance(key, (getattr(mldsa, f"MLDSA{n}PrivateKey"), getattr(mldsa, f"MLDSA{n}PublicKey"))):
            return KeySpec("ML-DSA", param=f"ML-DSA-{n}")
    from cryptography.hazmat.primitives.asymmetric import mlkem

    for n in ("768", "1024"):
        if isinstance(key, (getattr(mlkem, f"MLKEM{n}PrivateKey"), getattr(mlkem, f"MLKEM{n}PublicKey"))):
            return KeySpec("ML-KEM", param=f"ML-KEM-{n}")
    raise UsageError(f"unsupported key type {type(key).__name__}")


def kem_algorithm_oid(key: Any) -> str | None:
    """id-alg-ml-kem-768/1024 for an ML-KEM public or private key; None for anything else.
    (Here, with the key types, so telling an ML-KEM key apart needs no KEM protection code.)"""
    from cryptography.hazmat.primitives.asymmetric import mlkem

    from cmpclient.asn1 import oids

    if isinstance(key, (mlkem.MLKEM768PublicKey, mlkem.MLKEM768PrivateKey)):
        return oids.ML_KEM_768
    if isinstance(key, (mlkem.MLKEM1024PublicKey, mlkem.MLKEM1024PrivateKey)):
        return oids.ML_KEM_1024
    return None
