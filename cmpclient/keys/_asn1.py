"""Small ASN.1 helpers private to :mod:`cmpclient.keys` (strict DER decode, AlgorithmIdentifier).

Kept here rather than in ``cmpclient.asn1`` so the keys layer does not depend on work in
progress elsewhere; they are thin and could move there later.
"""

from __future__ import annotations

from typing import Any

from cmpclient.errors import DecodeError

# --- OIDs (dotted strings; compared with str(oid)) -----------------------------------------
ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
ID_CT_ENC_KEY_WITH_ID = "1.2.840.113549.1.9.16.1.21"
ID_CT_KP_AKEY_PACKAGE = "2.16.840.1.101.2.1.2.78.5"
ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
ID_RSAES_OAEP = "1.2.840.113549.1.1.7"
ID_MGF1 = "1.2.840.113549.1.1.8"
ID_P_SPECIFIED = "1.2.840.113549.1.1.9"
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

AES_CBC = {16: "2.16.840.1.101.3.4.1.2", 24: "2.16.840.1.101.3.4.1.22", 32: "2.16.840.1.101.3.4.1.42"}
AES_WRAP = {16: "2.16.840.1.101.3.4.1.5", 24: "2.16.840.1.101.3.4.1.25", 32: "2.16.840.1.101.3.4.1.45"}
AES_CBC_BY_OID = {v: k for k, v in AES_CBC.items()}
AES_WRAP_BY_OID = {v: k for k, v in AES_WRAP.items()}

ID_PBKDF2 = "1.2.840.113549.1.5.12"
ID_ALG_PWRI_KEK = "1.2.840.113549.1.9.16.3.9"
HMAC_BY_OID = {
    "1.2.840.113549.2.7": "sha1",
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
}
HMAC_OID = {v: k for k, v in HMAC_BY_OID.items()}

# RFC 5753 / RFC 8418 ephemeral-static ECDH with X9.63 KDF.
ECDH_STD_BY_OID = {
    "1.3.132.1.11.0": "sha224",
    "1.3.132.1.11.1": "sha256",
    "1.3.132.1.11.2": "sha384",
    "1.3.132.1.11.3": "sha512",
    "1.3.133.16.840.63.0.2": "sha1",
}
ECDH_STD_OID = {v: k for k, v in ECDH_STD_BY_OID.items() if v != "sha1"}

HASH_BY_OID = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.18": "shake256",  # id-shake256-len (RFC 8419, Ed448)
    "2.16.840.1.101.3.4.2.12": "shake256",  # id-shake256 (fixed 512-bit output in RFC 8702)
}
HASH_OID = {
    "sha1": "1.3.14.3.2.26",
    "sha224": "2.16.840.1.101.3.4.2.4",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}


def hash_algorithm(name: str) -> Any:
    """The ``cryptography`` hash object for a short name (``sha256``, ``shake256``...)."""
    from cryptography.hazmat.primitives import hashes

    if name == "shake256":
        return hashes.SHAKE256(digest_size=64)
    return {
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }[name]()


def der_decode(data: bytes, spec: Any, what: str) -> Any:
    """Decode DER ``data`` against pyasn1 ``spec``; refuse garbage and trailing bytes."""
    from pyasn1.codec.der import decoder
    from pyasn1.error import PyAsn1Error

    if not isinstance(data, (bytes, bytearray)):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        obj, rest = decoder.decode(bytes(data), asn1Spec=spec)
    except (PyAsn1Error, ValueError, TypeError, IndexError, KeyError) as exc:
        # pyasn1 messages can embed whole schema dumps; keep the first 160 characters.
        text = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DecodeError(f"malformed {what}: {text[:160]}") from None
    if rest:
        raise DecodeError(f"malformed {what}: {len(rest)} trailing bytes after the DER structure")
    return obj


def der_encode(obj: Any) -> bytes:
    """DER-encode a pyasn1 object (with :mod:`cmpclient.asn1.codec`'s DER encoder)."""
    from cmpclient.asn1.codec import encode

    return bytes(encode(obj))


def alg_id(oid: str, params: bytes | None = None, spec: Any = None) -> Any:
    """Build an ``AlgorithmIdentifier`` (``rfc5280`` schema unless ``spec`` is given) with
    optional DER-encoded ``params``; ``None`` leaves parameters absent."""
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280

    a = spec if spec is not None else rfc5280.AlgorithmIdentifier()
    a["algorithm"] = univ.ObjectIdentifier(oid)
    if params is not None:
        a["parameters"] = univ.Any(params)
    return a


NULL_DER = b"\x05\x00"


def params_der(alg: Any) -> bytes | None:
    """The DER of an AlgorithmIdentifier's parameters, or ``None`` when absent."""
    p = alg["parameters"]
    if not p.isValue:
        return None
    return der_encode(p)


def octet_string_der(value: bytes) -> bytes:
    from pyasn1.type import univ

    return der_encode(univ.OctetString(value))


def tlv_value(data: bytes, what: str) -> bytes:
    """The value octets of one DER TLV (used to strip an EXPLICIT tag around an ANY)."""
    if len(data) < 2:
        raise DecodeError(f"malformed {what}: too short")
    n = data[1]
    if n < 0x80:
        start, length = 2, n
    else:
        k = n & 0x7F
        if k == 0 or k > 4 or len(data) < 2 + k:
            raise DecodeError(f"malformed {what}: bad length")
        start, length = 2 + k, int.from_bytes(data[2 : 2 + k], "big")
    if start + length != len(data):
        raise DecodeError(f"malformed {what}: length mismatch")
    return data[start:]


def content_info_content(data: bytes, expected_oid: str, what: str) -> bytes:
    """Unwrap a DER ContentInfo of type ``expected_oid`` and return the inner DER."""
    from pyasn1_modules import rfc5652

    ci = der_decode(data, rfc5652.ContentInfo(), "ContentInfo")
    if str(ci["contentType"]) != expected_oid:
        raise DecodeError(f"ContentInfo holds {ci['contentType']}, not {what}")
    # The [0] EXPLICIT tag is kept by pyasn1 when it re-encodes an ANY; strip it.
    return tlv_value(der_encode(ci["content"]), what)
