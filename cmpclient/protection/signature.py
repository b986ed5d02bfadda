"""Signature algorithms for CMP protection (RFC 9481 §3, RFC 8410, RFC 9881 / FIPS 204).

Supported (both for signing and for verifying):

* RSASSA-PKCS1-v1_5 with SHA-224/256/384/512 -- ``sha*WithRSAEncryption``, parameters NULL;
* RSASSA-PSS (RFC 4055) -- hash, MGF1 with the same hash, salt length = hash length,
  trailerField 1; the hash identifiers inside the parameters are sent with absent
  parameters (as openssl does) and accepted absent or NULL;
* ECDSA with SHA-224/256/384/512 on any curve cryptography supports (P-256/384/521 in
  practice) -- parameters absent;
* Ed25519, Ed448 (RFC 8410) -- PureEdDSA, parameters absent;
* ML-DSA-44/65/87 (RFC 9881) -- pure ML-DSA with the empty context, parameters absent.

SHA-1 signatures are deliberately not supported (RFC 9481 does not list them).

:func:`verify` raises :class:`~cmpclient.errors.ProtectionError` naming the algorithm and
the reason; it never returns ``False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.der import NotHandled, Reader
from cmpclient.asn1.lazy import rfc5280, univ
from cmpclient.errors import DecodeError, ProtectionError, UsageError

PrivateKey = Union[
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    mldsa.MLDSA44PrivateKey,
    mldsa.MLDSA65PrivateKey,
    mldsa.MLDSA87PrivateKey,
]
PublicKey = Union[
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    mldsa.MLDSA44PublicKey,
    mldsa.MLDSA65PublicKey,
    mldsa.MLDSA87PublicKey,
]

#: digest name -> (hash OID, cryptography hash class)
DIGESTS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "sha224": (oids.SHA224, hashes.SHA224),
    "sha256": (oids.SHA256, hashes.SHA256),
    "sha384": (oids.SHA384, hashes.SHA384),
    "sha512": (oids.SHA512, hashes.SHA512),
}
_DIGEST_BY_OID = {oid: name for name, (oid, _) in DIGESTS.items()}

_RSA_PKCS1 = {
    "sha224": oids.SHA224_WITH_RSA,
    "sha256": oids.SHA256_WITH_RSA,
    "sha384": oids.SHA384_WITH_RSA,
    "sha512": oids.SHA512_WITH_RSA,
}
_ECDSA = {
    "sha224": oids.ECDSA_WITH_SHA224,
    "sha256": oids.ECDSA_WITH_SHA256,
    "sha384": oids.ECDSA_WITH_SHA384,
    "sha512": oids.ECDSA_WITH_SHA512,
}
_ML_DSA = {
    oids.ML_DSA_44: (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
    oids.ML_DSA_65: (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
    oids.ML_DSA_87: (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
}


@dataclass(frozen=True)
class SignatureScheme:
    """A parsed signature AlgorithmIdentifier.

    ``kind`` is one of ``rsa-pkcs1``, ``rsa-pss``, ``ecdsa``, ``ed25519``, ``ed448``,
    ``ml-dsa``; ``digest`` is the hash name for RSA/ECDSA (``None`` otherwise);
    ``salt_length``/``mgf_digest`` only for PSS.
    """

    oid: str
    name: str
    kind: str
    digest: str | None = None
    mgf_digest: str | None = None
    salt_length: int | None = None


def _normalize_digest(digest: str) -> str:
    name = str(digest).strip().lower().replace("-", "").replace("_", "")
    if name not in DIGESTS:
        raise UsageError(
            f"unsupported signature digest {digest!r}; valid: {', '.join(DIGESTS)}",
            hint="SHA-1 is not offered for signatures (RFC 9481)",
        )
    return name


def _alg(oid: str, params_der: bytes | None = None) -> rfc5280.AlgorithmIdentifier:
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = univ.ObjectIdentifier(oid)
    if params_der is not None:
        alg["parameters"] = univ.Any(params_der)
    return alg


_NULL = b"\x05\x00"


def _pss_params_der(digest: str) -> bytes:
    from pyasn1_modules import rfc4055  # lazily: only PSS users need it

    hash_oid, hash_cls = DIGESTS[digest]
    params = rfc4055.RSASSA_PSS_params()
    params["hashAlgorithm"]["algorithm"] = univ.ObjectIdentifier(hash_oid)
    params["maskGenAlgorithm"]["algorithm"] = univ.ObjectIdentifier(oids.MGF1)
    params["maskGenAlgorithm"]["parameters"] = univ.Any(codec.encode(_alg(hash_oid)))
    params["saltLength"] = hash_cls.digest_size
    return codec.encode(params)


def signature_algorithm(private_key: PrivateKey, digest: str = "sha256", rsa_pss: bool = False) -> rfc5280.AlgorithmIdentifier:
    """The AlgorithmIdentifier we sign with for ``private_key``.

    ``digest`` applies to RSA and ECDSA only; EdDSA and ML-DSA have their hash built in and
    ignore it.  ``rsa_pss`` selects RSASSA-PSS for RSA keys (and is an error for others).
    """
    return _alg(*_signature_algorithm_parts(private_key, digest, rsa_pss))


def _signature_algorithm_parts(private_key: PrivateKey, digest: str, rsa_pss: bool) -> tuple[str, bytes | None]:
    """:func:`signature_algorithm` as (OID, parameters' DER or None when absent)."""
    if rsa_pss and not isinstance(private_key, rsa.RSAPrivateKey):
        raise UsageError(f"RSA-PSS was requested but the key is {_key_type(private_key)}")
    if isinstance(private_key, rsa.RSAPrivateKey):
        name = _normalize_digest(digest)
        if rsa_pss:
            return oids.RSASSA_PSS, _pss_params_der(name)
        return _RSA_PKCS1[name], _NULL
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return _ECDSA[_normalize_digest(digest)], None
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return oids.ED25519, None
    if isinstance(private_key, ed448.Ed448PrivateKey):
        return oids.ED448, None
    for oid, (priv_cls, _) in _ML_DSA.items():
        if isinstance(private_key, priv_cls):
            return oid, None
    raise UsageError(f"unsupported signing key type {_key_type(private_key)}")


def _key_type(key: object) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"EC {key.curve.name}"
    for cls, name in (
        ((ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey), "Ed25519"),
        ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "Ed448"),
        ((mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey), "ML-DSA-44"),
        ((mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey), "ML-DSA-65"),
        ((mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey), "ML-DSA-87"),
    ):
        if isinstance(key, cls):
            return name
    return type(key).__name__


def _params_der(alg: rfc5280.AlgorithmIdentifier) -> bytes | None:
    return bytes(alg["parameters"]) if alg["parameters"].isValue else None


def _bad_params(name: str, why: str) -> ProtectionError:
    return ProtectionError(f"{name}: {why}", fail_info="badAlg")


#: The names RFCs and openssl print, for the OIDs whose generated names in ``oids`` differ.
_NAMES = {
    **{oid: f"{d}WithRSAEncryption" for d, oid in _RSA_PKCS1.items()},
    **{oid: f"ecdsa-with-{d.upper()}" for d, oid in _ECDSA.items()},
}


def parse_signature_algorithm(alg_id: rfc5280.AlgorithmIdentifier) -> SignatureScheme:
    """Parse and check a signature AlgorithmIdentifier; unsupported -> ProtectionError(badAlg)."""
    return _parse_scheme(str(alg_id["algorithm"]), _params_der(alg_id))


def _parse_scheme(oid: str, params: bytes | None) -> SignatureScheme:
    """:func:`parse_signature_algorithm` of the identifier's OID and parameters' DER (None: absent)."""
    name = _NAMES.get(oid) or oids.oid_name(oid)
    for digest, sig_oid in _RSA_PKCS1.items():
        if oid == sig_oid:
            # RFC 4055 §5: NULL; absent is tolerated because some encoders omit it.
            if params not in (None, _NULL):
                raise _bad_params(name, "parameters must be NULL")
            return SignatureScheme(oid, name, "rsa-pkcs1", digest)
    for digest, sig_oid in _ECDSA.items():
        if oid == sig_oid:
            if params is not None:
                raise _bad_params(name, "parameters must be absent (RFC 5758)")
            return SignatureScheme(oid, name, "ecdsa", digest)
    if oid == oids.RSASSA_PSS:
        return _parse_pss(oid, name, params)
    if oid in (oids.ED25519, oids.ED448):
        if params is not None:
            raise _bad_params(name, "parameters must be absent (RFC 8410)")
        return SignatureScheme(oid, name, "ed25519" if oid == oids.ED25519 else "ed448")
    if oid in _ML_DSA:
        if params is not None:
            raise _bad_params(name, "parameters must be absent (RFC 9881)")
        return SignatureScheme(oid, name, "ml-dsa")
    raise ProtectionError(
        f"unsupported signature algorithm {name}",
        fail_info="badAlg",
        hint="supported: RSA PKCS#1 v1.5 / RSASSA-PSS with SHA-2, ECDSA with SHA-2, Ed25519, Ed448, ML-DSA",
    )


def _parse_pss(oid: str, name: str, params: bytes | None) -> SignatureScheme:
    from pyasn1_modules import rfc4055

    if params is None:
        raise _bad_params(name, "RSASSA-PSS-params are missing")
    try:
        value = codec.decode(params, rfc4055.RSASSA_PSS_params(), what="RSASSA-PSS-params")
    except DecodeError as exc:
        raise _bad_params(name, exc.message) from exc
    # Absent hashAlgorithm/MGF mean SHA-1 (RFC 4055 defaults), which we do not support.
    if not value["hashAlgorithm"].isValue or not value["maskGenAlgorithm"].isValue:
        raise _bad_params(name, "SHA-1 defaults in RSASSA-PSS-params are not supported")
    hash_oid = str(value["hashAlgorithm"]["algorithm"])
    if hash_oid not in _DIGEST_BY_OID:
        raise _bad_params(name, f"unsupported PSS hash {oids.oid_name(hash_oid)}")
    if _params_der(value["hashAlgorithm"]) not in (None, _NULL):
        raise _bad_params(name, "PSS hash parameters must be absent or NULL")
    mgf = value["maskGenAlgorithm"]
    if str(mgf["algorithm"]) != oids.MGF1 or not mgf["parameters"].isValue:
        raise _bad_params(name, f"unsupported mask generation {oids.oid_name(mgf['algorithm'])}")
    try:
        mgf_hash = codec.decode(bytes(mgf["parameters"]), rfc5280.AlgorithmIdentifier(), what="MGF1 hash")
    except DecodeError as exc:
        raise _bad_params(name, exc.message) from exc
    mgf_oid = str(mgf_hash["algorithm"])
    if mgf_oid not in _DIGEST_BY_OID:
        raise _bad_params(name, f"unsupported MGF1 hash {oids.oid_name(mgf_oid)}")
    if int(value["trailerField"]) != 1:
        raise _bad_params(name, f"trailerField {int(value['trailerField'])} is not 1")
    salt = int(value["saltLength"])
    if salt < 0:
        raise _bad_params(name, "negative salt length")
    digest = _DIGEST_BY_OID[hash_oid]
    return SignatureScheme(oid, f"RSASSA-PSS/{digest}", "rsa-pss", digest, _DIGEST_BY_OID[mgf_oid], salt)


def _hash(name: str) -> hashes.HashAlgorithm:
    return DIGESTS[name][1]()


def _check_key(scheme: SignatureScheme, key: object, private: bool) -> None:
    idx = 0 if private else 1
    if scheme.kind in ("rsa-pkcs1", "rsa-pss"):
        ok = isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)[idx])
    elif scheme.kind == "ecdsa":
        ok = isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)[idx])
    elif scheme.kind == "ed25519":
        ok = isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)[idx])
    elif scheme.kind == "ed448":
        ok = isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)[idx])
    else:
        ok = isinstance(key, _ML_DSA[scheme.oid][idx])
    if not ok:
        raise ProtectionError(
            f"{scheme.name}: the key type {_key_type(key)} does not match the signature algorithm",
            fail_info="badAlg" if private else "badMessageCheck",
        )


def sign(private_key: PrivateKey, alg_id: rfc5280.AlgorithmIdentifier, data: bytes) -> bytes:
    """Sign ``data`` with ``private_key`` as ``alg_id`` says."""
    scheme = parse_signature_algorithm(alg_id)
    try:
        _check_key(scheme, private_key, private=True)
    except ProtectionError as exc:
        raise UsageError(exc.message) from exc
    return _sign(private_key, scheme, data)


def _sign(private_key: PrivateKey, scheme: SignatureScheme, data: bytes) -> bytes:
    if scheme.kind == "rsa-pkcs1":
        return private_key.sign(data, padding.PKCS1v15(), _hash(scheme.digest))  # type: ignore[union-attr,arg-type,call-arg]
    if scheme.kind == "rsa-pss":
        pad = padding.PSS(mgf=padding.MGF1(_hash(scheme.mgf_digest)), salt_length=scheme.salt_length)  # type: ignore[arg-type]
        return private_key.sign(data, pad, _hash(scheme.digest))  # type: ignore[union-attr,arg-type,call-arg]
    if scheme.kind == "ecdsa":
        return private_key.sign(data, ec.ECDSA(_hash(scheme.digest)))  # type: ignore[union-attr,arg-type,call-arg]
    return private_key.sign(data)  # type: ignore[union-attr,call-arg]  # EdDSA, ML-DSA (empty context)


def verify(public_key: PublicKey, alg_id: rfc5280.AlgorithmIdentifier, data: bytes, signature: bytes) -> None:
    """Verify ``signature`` over ``data``; raise :class:`ProtectionError` (with the algorithm and why)."""
    scheme = parse_signature_algorithm(alg_id)
    _check_key(scheme, public_key, private=False)
    try:
        if scheme.kind == "rsa-pkcs1":
            public_key.verify(signature, data, padding.PKCS1v15(), _hash(scheme.digest))  # type: ignore[union-attr,arg-type,call-arg]
        elif scheme.kind == "rsa-pss":
            pad = padding.PSS(mgf=padding.MGF1(_hash(scheme.mgf_digest)), salt_length=scheme.salt_length)  # type: ignore[arg-type]
            public_key.verify(signature, data, pad, _hash(scheme.digest))  # type: ignore[union-attr,arg-type,call-arg]
        elif scheme.kind == "ecdsa":
            public_key.verify(signature, data, ec.ECDSA(_hash(scheme.digest)))  # type: ignore[union-attr,arg-type,call-arg]
        else:
            public_key.verify(signature, data)  # type: ignore[union-attr,call-arg]
    except InvalidSignature as exc:
        raise ProtectionError(
            f"{scheme.name} signature does not verify with the {_key_type(public_key)} key",
            hint="the message was modified, or it was signed by a different key than the one in its extraCerts",
        ) from exc
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise ProtectionError(f"{scheme.name} signature cannot be checked: {exc}", fail_info="badAlg") from exc


# --- certHash digests (RFC 9810 §5.3.18) ---------------------------------------------------------


def digest_of_signature_algorithm(alg_id: rfc5280.AlgorithmIdentifier) -> hashes.HashAlgorithm:
    """The hash a certificate signed with ``alg_id`` is confirmed with (certConf certHash).

    * RSA / ECDSA: the hash named in the OID; RSASSA-PSS: ``hashAlgorithm`` in its params.
    * Ed25519: SHA-512 and Ed448: SHAKE256 with a 512-bit output (RFC 9481 §3.3, following
      the CMS defaults of RFC 8419; openssl's ``X509_digest_sig`` does the same).
    * ML-DSA: SHA-512 (the digest that draft-ietf-lamps-cms-ml-dsa requires for all ML-DSA
      parameter sets).  openssl 3.5 falls back to SHA-256 here, so for ML-DSA the CMPv3
      ``CertStatus.hashAlg`` should be sent explicitly -- see
      :func:`digest_algorithm_identifier`.
    """
    return _scheme_digest(parse_signature_algorithm(alg_id))


def _scheme_digest(scheme: SignatureScheme) -> hashes.HashAlgorithm:
    """:func:`digest_of_signature_algorithm` of a parsed identifier."""
    if scheme.digest is not None:
        return _hash(scheme.digest)
    if scheme.kind == "ed448":
        return hashes.SHAKE256(64)
    return hashes.SHA512()  # Ed25519 and ML-DSA


def digest_algorithm_identifier(digest: hashes.HashAlgorithm) -> rfc5280.AlgorithmIdentifier:
    """The AlgorithmIdentifier of a hash (for CertStatus.hashAlg), parameters absent."""
    if isinstance(digest, hashes.SHAKE256):
        if digest.digest_size != 64:
            raise UsageError("only SHAKE256 with 512-bit output has an identifier here (id-shake256)")
        return _alg(oids.SHAKE256)
    for oid, cls in DIGESTS.values():
        if type(digest) is cls:
            return _alg(oid)
    raise UsageError(f"no identifier for hash {digest.name}")


def _signature_algorithm_der(cert_der: bytes) -> bytes:
    _, start, _ = codec.read_tlv(cert_der, 0)
    _, _, tbs_end = codec.read_tlv(cert_der, start)
    _, _, alg_end = codec.read_tlv(cert_der, tbs_end)
    return bytes(cert_der[tbs_end:alg_end])


def certificate_signature_algorithm(cert_der: bytes) -> rfc5280.AlgorithmIdentifier:
    """The outer ``signatureAlgorithm`` of a DER certificate, sliced out without a full decode."""
    return codec.decode(_signature_algorithm_der(cert_der), rfc5280.AlgorithmIdentifier(),
                        what="certificate signatureAlgorithm")


#: certHash digests by signatureAlgorithm DER: a CA signs its certificates alike, and decoding
#: the identifier with pyasn1 for every certConf was ~4 % of a bulk transaction. Bounded; the
#: hash objects are immutable, so threads may share them.
_CERT_HASH_DIGESTS: dict[bytes, hashes.HashAlgorithm] = {}


def certificate_hash(cert_der: bytes) -> tuple[bytes, hashes.HashAlgorithm]:
    """certHash for certConf: the certificate's DER hashed with :func:`digest_of_signature_algorithm`.

    Returns the digest and the hash used (so the caller can add ``hashAlg`` when needed).
    """
    alg_der = _signature_algorithm_der(cert_der)
    digest = _CERT_HASH_DIGESTS.get(alg_der)
    if digest is None:
        try:  # the strict DER reader; what it declines, pyasn1 decodes (or words the error)
            reader = Reader(alg_der)
            scheme = _parse_scheme(*reader.algorithm_identifier())
            reader.done()
        except NotHandled:
            scheme = parse_signature_algorithm(
                codec.decode(alg_der, rfc5280.AlgorithmIdentifier(), what="certificate signatureAlgorithm"))
        digest = _scheme_digest(scheme)
        if len(_CERT_HASH_DIGESTS) < 64:
            _CERT_HASH_DIGESTS[alg_der] = digest
    h = hashes.Hash(digest)
    h.update(cert_der)
    return h.finalize(), digest


def popo_signer(private_key: PrivateKey, digest: str = "sha256", rsa_pss: bool = False):  # type: ignore[no-untyped-def]
    """A signer for :meth:`cmpclient.message.request.CertRequestBuilder.popo_signature`:
    DER in, (AlgorithmIdentifier DER, signature) out (the identifier is written once, not per
    request, and without pyasn1 but for RSASSA-PSS's parameters)."""
    oid, params = _signature_algorithm_parts(private_key, digest, rsa_pss)
    alg_der = codec.algorithm_identifier_der(oid, params)
    # Parsed and checked once: the signer touches no pyasn1 value afterwards, so threads
    # may share it (a bulk run with one --newkey key does).
    scheme = _parse_scheme(oid, params)
    try:
        _check_key(scheme, private_key, private=True)
    except ProtectionError as exc:
        raise UsageError(exc.message) from exc

    def signer(data: bytes) -> tuple[bytes, bytes]:
        return alg_der, _sign(private_key, scheme, data)

    return signer
