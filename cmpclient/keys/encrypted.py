"""Encrypted values and CMS EnvelopedData for returned (centrally generated) private keys.

Two containers carry a private key from a CA to an end entity in CMP:

* ``EncryptedValue`` (RFC 4211 section 2.2, deprecated by RFC 9810 but still sent by EJBCA):
  a random AES key encrypted for the recipient's RSA key plus the AES-CBC-encrypted value.
* CMS ``EnvelopedData`` (RFC 5652, RFC 9810 section 5.2.3, RFC 9481 section 4): a content
  encryption key delivered by key transport (RSA), key agreement (ECDH) or a password, and
  content that is normally a ``SignedData`` over an ``AsymmetricKeyPackage`` (RFC 5958).

All bulk cryptography is the ``cryptography`` library's; only the ASN.1 glue is here.
Failures raise :class:`~cmpclient.errors.DecodeError` for malformed structures,
:class:`~cmpclient.errors.ProtectionError` when decryption or a signature check fails, and
:class:`~cmpclient.errors.UsageError` for wrong arguments.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from cmpclient.errors import CMPClientError, DecodeError, ProtectionError, UsageError
from cmpclient.keys import _asn1 as A

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "KeyTransRecipient",
    "KeyAgreeRecipient",
    "PasswordRecipient",
    "KEMRecipient",
    "encrypt_encrypted_value",
    "decrypt_encrypted_value",
    "envelope",
    "decrypt_enveloped_data",
    "sign_content",
    "verify_signed_data",
    "wrap_private_key_for_delivery",
    "wrap_private_key_in_encrypted_value",
    "decrypt_returned_private_key",
    "subject_key_identifier",
]


def _clean_errors(what: str) -> Callable[[F], F]:
    """Turn stray library exceptions from hostile input into :class:`DecodeError`.

    Parsing attacker-controlled DER touches pyasn1 and ``cryptography`` in many places
    (a certificate inside a SignedData that does not parse, a bad curve point...); the
    caller must only ever see our error hierarchy, never a bare ValueError.
    """

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except CMPClientError:
                raise
            except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
                text = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
                raise DecodeError(f"malformed {what}: {text}") from None

        return wrapper  # type: ignore[return-value]

    return deco


# --- Symmetric helpers -------------------------------------------------------------------


def _aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def _aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes, what: str) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(iv) != 16:
        raise DecodeError(f"{what}: AES-CBC IV must be 16 bytes, got {len(iv)}")
    if not ciphertext or len(ciphertext) % 16:
        raise DecodeError(f"{what}: AES-CBC ciphertext length {len(ciphertext)} is not a multiple of 16")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    data = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        # Bad padding means a wrong key or a modified ciphertext; CBC cannot tell which.
        raise ProtectionError(
            f"{what}: decryption failed (bad padding: wrong key or tampered ciphertext)"
        ) from None


def _decode_iv(params: bytes | None, what: str) -> bytes:
    from pyasn1.type import univ

    if params is None:
        raise DecodeError(f"{what}: AES-CBC parameters (the IV) are missing")
    return bytes(A.der_decode(params, univ.OctetString(), f"{what} IV"))


def _content_cipher_decrypt(alg: Any, key: bytes, ciphertext: bytes, what: str) -> bytes:
    oid = str(alg["algorithm"])
    size = A.AES_CBC_BY_OID.get(oid)
    if size is None:
        raise ProtectionError(f"{what}: unsupported content encryption algorithm {oid} (AES-CBC is supported)")
    if len(key) != size:
        raise ProtectionError(f"{what}: content key is {len(key)} bytes, algorithm {oid} needs {size}")
    return _aes_cbc_decrypt(key, _decode_iv(A.params_der(alg), what), ciphertext, what)


# --- RSA key transport -------------------------------------------------------------------


def _rsa_padding(oaep: bool, hash_name: str = "sha256") -> Any:
    from cryptography.hazmat.primitives.asymmetric import padding

    if not oaep:
        return padding.PKCS1v15()
    h = A.hash_algorithm(hash_name)
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def _rsa_key_alg(oaep: bool, hash_name: str = "sha256") -> Any:
    """AlgorithmIdentifier for rsaEncryption (NULL params) or RSAES-OAEP (RFC 4055 params)."""
    if not oaep:
        return A.alg_id(A.RSA_ENCRYPTION, A.NULL_DER)
    from pyasn1_modules import rfc4055

    p = rfc4055.RSAES_OAEP_params()
    if hash_name != "sha1":  # SHA-1 is the DEFAULT and must then be omitted (DER)
        h = A.alg_id(A.HASH_OID[hash_name])
        p["hashFunc"]["algorithm"] = h["algorithm"]
        mgf_param = A.der_encode(A.alg_id(A.HASH_OID[hash_name]))
        m = A.alg_id(A.ID_MGF1, mgf_param)
        p["maskGenFunc"]["algorithm"] = m["algorithm"]
        p["maskGenFunc"]["parameters"] = m["parameters"]
    return A.alg_id(A.ID_RSAES_OAEP, A.der_encode(p))


def _rsa_padding_from_alg(alg: Any, what: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import padding

    oid = str(alg["algorithm"])
    if oid == A.RSA_ENCRYPTION:
        return padding.PKCS1v15()
    if oid != A.ID_RSAES_OAEP:
        raise ProtectionError(f"{what}: unsupported key transport algorithm {oid}")
    from pyasn1_modules import rfc4055

    hash_name, mgf_hash = "sha1", "sha1"
    raw = A.params_der(alg)
    if raw is not None and raw != A.NULL_DER:
        p = A.der_decode(raw, rfc4055.RSAES_OAEP_params(), f"{what} RSAES-OAEP parameters")
        if p["hashFunc"].isValue:
            hash_name = _hash_name(str(p["hashFunc"]["algorithm"]), what)
        if p["maskGenFunc"].isValue:
            if str(p["maskGenFunc"]["algorithm"]) != A.ID_MGF1:
                raise ProtectionError(f"{what}: unsupported OAEP mask generation function")
            from pyasn1_modules import rfc5280

            mp = A.params_der(p["maskGenFunc"])
            if mp is None:
                raise DecodeError(f"{what}: MGF1 parameters missing")
            mgf_alg = A.der_decode(mp, rfc5280.AlgorithmIdentifier(), f"{what} MGF1 hash")
            mgf_hash = _hash_name(str(mgf_alg["algorithm"]), what)
        if p["pSourceFunc"].isValue:
            label_raw = A.params_der(p["pSourceFunc"])
            from pyasn1.type import univ

            if label_raw and bytes(A.der_decode(label_raw, univ.OctetString(), "OAEP label")):
                raise ProtectionError(f"{what}: OAEP labels are not supported")
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=A.hash_algorithm(mgf_hash)), algorithm=A.hash_algorithm(hash_name), label=None
    )


def _hash_name(oid: str, what: str) -> str:
    name = A.HASH_BY_OID.get(oid)
    if name is None or name == "shake256":
        raise ProtectionError(f"{what}: unsupported hash algorithm {oid}")
    return name


def _rsa_decrypt(private_key: Any, ciphertext: bytes, alg: Any, what: str) -> bytes:
    pad = _rsa_padding_from_alg(alg, what)
    try:
        return private_key.decrypt(ciphertext, pad)
    except ValueError:
        raise ProtectionError(f"{what}: RSA decryption of the content key failed (wrong key or tampered)") from None


# --- EncryptedValue (RFC 4211 section 2.2) -----------------------------------------------


def encrypt_encrypted_value(
    plaintext: bytes,
    recipient_public_key: Any,
    *,
    sym_alg: str = "aes256-cbc",
    oaep: bool = False,
    oaep_hash: str = "sha256",
) -> bytes:
    """Encrypt ``plaintext`` into a DER ``EncryptedValue`` for an RSA recipient.

    A fresh AES key and IV are drawn; ``symmAlg`` is AES-CBC with the IV as parameter,
    ``encSymmKey`` is the AES key encrypted with RSA PKCS#1 v1.5 (``keyAlg``
    rsaEncryption, what EJBCA sends and expects) or RSAES-OAEP when ``oaep=True``;
    ``valueHint`` and ``intendedAlg`` are omitted.  ``recipient_public_key`` may also be a
    certificate.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pyasn1.type import univ
    from pyasn1_modules import rfc4211

    pub = _public_key_of(recipient_public_key)
    if not isinstance(pub, rsa.RSAPublicKey):
        raise UsageError("EncryptedValue needs an RSA recipient key (key transport)")
    sizes = {"aes128-cbc": 16, "aes192-cbc": 24, "aes256-cbc": 32}
    if sym_alg.lower() not in sizes:
        raise UsageError(f"unsupported sym_alg {sym_alg!r}", hint="use one of " + ", ".join(sizes))
    klen = sizes[sym_alg.lower()]
    key, iv = os.urandom(klen), os.urandom(16)
    ev = rfc4211.EncryptedValue()
    sa = A.alg_id(A.AES_CBC[klen], A.octet_string_der(iv))
    ev["symmAlg"]["algorithm"] = sa["algorithm"]
    ev["symmAlg"]["parameters"] = sa["parameters"]
    ev["encSymmKey"] = ev["encSymmKey"].clone(hexValue=pub.encrypt(key, _rsa_padding(oaep, oaep_hash)).hex())
    ka = _rsa_key_alg(oaep, oaep_hash)
    ev["keyAlg"]["algorithm"] = ka["algorithm"]
    ev["keyAlg"]["parameters"] = ka["parameters"]
    ev["encValue"] = univ.BitString(hexValue=_aes_cbc_encrypt(key, iv, bytes(plaintext)).hex())
    return A.der_encode(ev)


def _bits_to_bytes(bs: Any, what: str) -> bytes:
    if len(bs) % 8:
        raise DecodeError(f"{what} is not a whole number of bytes")
    return bytes(bs.asOctets())


@_clean_errors("EncryptedValue")
def decrypt_encrypted_value(der: bytes, private_key: Any) -> bytes:
    """Decrypt a DER ``EncryptedValue`` with the recipient's RSA private key.

    Raises :class:`DecodeError` for a malformed structure and :class:`ProtectionError` when
    the key does not fit or the ciphertext was modified.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pyasn1_modules import rfc4211

    what = "EncryptedValue"
    ev = A.der_decode(der, rfc4211.EncryptedValue(), what)
    if not ev["symmAlg"].isValue or not ev["encSymmKey"].isValue:
        raise DecodeError(f"{what} without symmAlg/encSymmKey is not supported (no shared key to use)")
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise UsageError(f"{what}: decrypting needs the RSA private key it was encrypted for")
    key_alg = ev["keyAlg"] if ev["keyAlg"].isValue else A.alg_id(A.RSA_ENCRYPTION)
    sym_key = _rsa_decrypt(private_key, _bits_to_bytes(ev["encSymmKey"], "encSymmKey"), key_alg, what)
    return _content_cipher_decrypt(ev["symmAlg"], sym_key, _bits_to_bytes(ev["encValue"], "encValue"), what)


# --- Recipients --------------------------------------------------------------------------


def _public_key_of(obj: Any) -> Any:
    """A public key from a certificate, public key or private key."""
    from cryptography import x509

    if isinstance(obj, x509.Certificate):
        return obj.public_key()
    if hasattr(obj, "public_key") and callable(obj.public_key):
        return obj.public_key()
    return obj


def subject_key_identifier(obj: Any) -> bytes:
    """The SKI of a certificate (its extension, else computed) or of a public/private key
    (RFC 5280 method 1: SHA-1 over the subjectPublicKey bits, as OpenSSL computes it)."""
    from cryptography import x509

    if isinstance(obj, x509.Certificate):
        try:
            return obj.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            pass
    return x509.SubjectKeyIdentifier.from_public_key(_public_key_of(obj)).digest


@dataclass(frozen=True)
class KeyTransRecipient:
    """An RSA key-transport recipient (KeyTransRecipientInfo).

    ``recipient`` is a certificate or an RSA public key.  The recipient identifier is
    issuerAndSerialNumber for a certificate unless ``use_ski`` is set; for a bare public key
    it is the ``ski`` given or the SKI computed from the key.  ``oaep`` selects RSAES-OAEP
    (with ``oaep_hash`` for hash and MGF1) instead of PKCS#1 v1.5.
    """

    recipient: Any
    oaep: bool = True
    oaep_hash: str = "sha256"
    use_ski: bool = False
    ski: bytes | None = None


@dataclass(frozen=True)
class KeyAgreeRecipient:
    """An ECDH recipient (KeyAgreeRecipientInfo, RFC 5753 ephemeral-static).

    The KEK comes from the X9.63 KDF with ``kdf_hash`` (dhSinglePass-stdDH-sha256kdf-scheme
    by default) and wraps the content key with AES key wrap of ``wrap_key_size`` bytes.
    ``recipient``, ``use_ski`` and ``ski`` work as for :class:`KeyTransRecipient`.
    """

    recipient: Any
    kdf_hash: str = "sha256"
    wrap_key_size: int = 32
    use_ski: bool = False
    ski: bytes | None = None
    ukm: bytes | None = None


@dataclass(frozen=True)
class PasswordRecipient:
    """A password recipient (PasswordRecipientInfo): PBKDF2 then a key-encryption algorithm.

    ``kek="aes-wrap"`` (default) puts AES key wrap (``id-aes256-wrap``, RFC 3394/3565)
    directly in keyEncryptionAlgorithm, as RFC 9481 section 4.3/4.4 lists it for CMP.
    ``kek="pwri-kek"`` uses RFC 3211's ``id-alg-PWRI-KEK`` with AES-CBC double encryption,
    which is the only form OpenSSL (``cms -pwri_password``) and BouncyCastle's default
    generator understand.
    """

    password: bytes
    iterations: int = 100_000
    salt: bytes | None = None
    prf: str = "sha256"
    kek: str = "aes-wrap"
    key_size: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.password, (bytes, bytearray)) or not self.password:
            raise UsageError("PasswordRecipient: password must be non-empty bytes")
        if not 1000 <= self.iterations <= 10_000_000:
            raise UsageError(f"PasswordRecipient: iteration count {self.iterations} out of bounds 1000..10000000")
        if self.kek not in ("aes-wrap", "pwri-kek"):
            raise UsageError(f"PasswordRecipient: kek must be 'aes-wrap' or 'pwri-kek', not {self.kek!r}")
        if self.prf not in ("sha224", "sha256", "sha384", "sha512"):
            raise UsageError(f"PasswordRecipient: unsupported PRF {self.prf!r}")
        if self.key_size not in (16, 24, 32):
            raise UsageError("PasswordRecipient: key_size must be 16, 24 or 32")
        if self.salt is not None and len(self.salt) < 8:
            raise UsageError("PasswordRecipient: salt must be at least 8 bytes")


@dataclass(frozen=True)
class KEMRecipient:
    """An ML-KEM recipient: KEMRecipientInfo (RFC 9629) in an ``id-ori-kem`` OtherRecipientInfo.

    RFC 9936 (ML-KEM in CMS): the KEK is HKDF-SHA256 (``id-alg-hkdf-with-sha256``, RFC 8619,
    no salt) of the ML-KEM shared secret with ``info`` = DER ``CMSORIforKEMOtherInfo``, and
    wraps the content key with AES key wrap -- AES-256 (kekLength 32) for ML-KEM-768 and
    ML-KEM-1024.  ``recipient``, ``use_ski`` and ``ski`` work as for :class:`KeyTransRecipient`.
    """

    recipient: Any
    kdf_hash: str = "sha256"
    wrap_key_size: int = 32
    use_ski: bool = False
    ski: bytes | None = None
    ukm: bytes | None = None


Recipient = KeyTransRecipient | KeyAgreeRecipient | PasswordRecipient | KEMRecipient


def _issuer_and_serial(cert: Any, spec: Any) -> Any:
    from pyasn1_modules import rfc5280

    spec["issuer"] = A.der_decode(cert.issuer.public_bytes(), rfc5280.Name(), "certificate issuer")
    spec["serialNumber"] = cert.serial_number
    return spec


def _build_ktri(r: KeyTransRecipient, cek: bytes, ri: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    pub = _public_key_of(r.recipient)
    if not isinstance(pub, rsa.RSAPublicKey):
        raise UsageError("KeyTransRecipient needs an RSA certificate or public key")
    ktri = ri["ktri"]
    rid = ktri["rid"]
    if isinstance(r.recipient, x509.Certificate) and not r.use_ski and r.ski is None:
        ktri["version"] = 0
        _issuer_and_serial(r.recipient, rid["issuerAndSerialNumber"])
    else:
        ktri["version"] = 2
        rid["subjectKeyIdentifier"] = r.ski if r.ski is not None else subject_key_identifier(r.recipient)
    ka = _rsa_key_alg(r.oaep, r.oaep_hash)
    ktri["keyEncryptionAlgorithm"]["algorithm"] = ka["algorithm"]
    if ka["parameters"].isValue:
        ktri["keyEncryptionAlgorithm"]["parameters"] = ka["parameters"]
    ktri["encryptedKey"] = pub.encrypt(cek, _rsa_padding(r.oaep, r.oaep_hash))


def _ecc_shared_info(wrap_alg_der: bytes, key_bits: int, ukm: bytes | None) -> bytes:
    """DER ECC-CMS-SharedInfo (RFC 5753 section 7.2): the X9.63 KDF's SharedInfo."""
    from pyasn1_modules import rfc5753

    si = rfc5753.ECC_CMS_SharedInfo()
    wrap = A.der_decode(wrap_alg_der, rfc5753.KeyWrapAlgorithm(), "key wrap algorithm")
    si["keyInfo"] = wrap
    if ukm is not None:
        si["entityUInfo"] = ukm
    si["suppPubInfo"] = key_bits.to_bytes(4, "big")
    return A.der_encode(si)


def _x963_kek(shared: bytes, hash_name: str, size: int, shared_info: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

    return X963KDF(algorithm=A.hash_algorithm(hash_name), length=size, sharedinfo=shared_info).derive(shared)


def _build_kari(r: KeyAgreeRecipient, cek: bytes, ri: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    from pyasn1.type import univ

    pub = _public_key_of(r.recipient)
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise UsageError("KeyAgreeRecipient needs an EC certificate or public key")
    if r.kdf_hash not in A.ECDH_STD_OID:
        raise UsageError(f"KeyAgreeRecipient: unsupported KDF hash {r.kdf_hash!r}")
    if r.wrap_key_size not in A.AES_WRAP:
        raise UsageError("KeyAgreeRecipient: wrap_key_size must be 16, 24 or 32")
    eph = ec.generate_private_key(pub.curve)
    shared = eph.exchange(ec.ECDH(), pub)
    # The wrap AlgorithmIdentifier has absent parameters (RFC 3565 section 2.3.2); the same
    # DER goes into keyEncryptionAlgorithm.parameters and into the KDF's SharedInfo.
    wrap_der = A.der_encode(A.alg_id(A.AES_WRAP[r.wrap_key_size]))
    kek = _x963_kek(
        shared, r.kdf_hash, r.wrap_key_size, _ecc_shared_info(wrap_der, r.wrap_key_size * 8, r.ukm)
    )

    kari = ri["kari"]
    kari["version"] = 3
    okey = kari["originator"]["originatorKey"]
    okey["algorithm"]["algorithm"] = univ.ObjectIdentifier(A.ID_EC_PUBLIC_KEY)
    point = eph.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    okey["publicKey"] = univ.BitString.fromOctetString(point)
    if r.ukm is not None:
        kari["ukm"] = r.ukm
    kea = A.alg_id(A.ECDH_STD_OID[r.kdf_hash], wrap_der)
    kari["keyEncryptionAlgorithm"]["algorithm"] = kea["algorithm"]
    kari["keyEncryptionAlgorithm"]["parameters"] = kea["parameters"]
    rek = kari["recipientEncryptedKeys"].getComponentByPosition(0)  # auto-instantiated
    if isinstance(r.recipient, x509.Certificate) and not r.use_ski and r.ski is None:
        _issuer_and_serial(r.recipient, rek["rid"]["issuerAndSerialNumber"])
    else:
        rek["rid"]["rKeyId"]["subjectKeyIdentifier"] = r.ski if r.ski is not None else subject_key_identifier(
            r.recipient
        )
    rek["encryptedKey"] = aes_key_wrap(kek, cek)


def _pbkdf2(password: bytes, salt: bytes, iterations: int, length: int, prf: str) -> bytes:
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    return PBKDF2HMAC(algorithm=A.hash_algorithm(prf), length=length, salt=salt, iterations=iterations).derive(
        bytes(password)
    )


def _pwri_kek_wrap(kek: bytes, iv: bytes, cek: bytes) -> bytes:
    """RFC 3211 section 2.3.1: length byte, check bytes, key, padding; CBC-encrypt twice."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    block = 16
    body = bytes([len(cek)]) + bytes(b ^ 0xFF for b in cek[:3]) + cek
    total = max(2 * block, -(-len(body) // block) * block)
    body += os.urandom(total - len(body))
    enc1 = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    first = enc1.update(body) + enc1.finalize()
    enc2 = Cipher(algorithms.AES(kek), modes.CBC(first[-block:])).encryptor()
    return enc2.update(first) + enc2.finalize()


def _pwri_kek_unwrap(kek: bytes, iv: bytes, wrapped: bytes, what: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    block = 16
    if len(wrapped) < 2 * block or len(wrapped) % block:
        raise DecodeError(f"{what}: wrapped key length {len(wrapped)} is invalid for PWRI-KEK")
    # The second pass used the last block of the first pass as IV; recover it from the
    # last two ciphertext blocks (ECB-decrypt the last block, XOR the one before).
    ecb = Cipher(algorithms.AES(kek), modes.ECB()).decryptor()
    last_plain = ecb.update(wrapped[-block:]) + ecb.finalize()
    iv2 = bytes(a ^ b for a, b in zip(last_plain, wrapped[-2 * block : -block]))
    d2 = Cipher(algorithms.AES(kek), modes.CBC(iv2)).decryptor()
    first = d2.update(wrapped) + d2.finalize()
    d1 = Cipher(algorithms.AES(kek), modes.CBC(iv)).decryptor()
    body = d1.update(first) + d1.finalize()
    n = body[0]
    if n < 3 or n > len(body) - 4 or bytes(b ^ 0xFF for b in body[1:4]) != body[4:7]:
        raise ProtectionError(f"{what}: wrong password (PWRI-KEK check value mismatch)")
    return body[4 : 4 + n]


def _build_pwri(r: PasswordRecipient, cek: bytes, ri: Any) -> None:
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    from pyasn1.type import univ
    from pyasn1_modules import rfc8018

    salt = r.salt if r.salt is not None else os.urandom(16)
    pwri = ri["pwri"]
    pwri["version"] = 0
    params = rfc8018.PBKDF2_params()
    params["salt"]["specified"] = salt
    params["iterationCount"] = r.iterations
    params["keyLength"] = r.key_size
    params["prf"]["algorithm"] = univ.ObjectIdentifier(A.HMAC_OID[r.prf])
    params["prf"]["parameters"] = univ.Any(A.NULL_DER)
    kda = pwri["keyDerivationAlgorithm"]
    kda["algorithm"] = univ.ObjectIdentifier(A.ID_PBKDF2)
    kda["parameters"] = univ.Any(A.der_encode(params))
    kek = _pbkdf2(r.password, salt, r.iterations, r.key_size, r.prf)
    kea = pwri["keyEncryptionAlgorithm"]
    if r.kek == "aes-wrap":
        kea["algorithm"] = univ.ObjectIdentifier(A.AES_WRAP[r.key_size])
        pwri["encryptedKey"] = aes_key_wrap(kek, cek)
    else:
        iv = os.urandom(16)
        inner = A.der_encode(A.alg_id(A.AES_CBC[r.key_size], A.octet_string_der(iv)))
        kea["algorithm"] = univ.ObjectIdentifier(A.ID_ALG_PWRI_KEK)
        kea["parameters"] = univ.Any(inner)
        pwri["encryptedKey"] = _pwri_kek_wrap(kek, iv, cek)


# --- KEMRecipientInfo (RFC 9629, ML-KEM per RFC 9936) ---------------------------------------

_HKDF_OIDS = {"sha256": "1.2.840.113549.1.9.16.3.28", "sha384": "1.2.840.113549.1.9.16.3.29",
              "sha512": "1.2.840.113549.1.9.16.3.30"}
_HKDF_BY_OID = {v: k for k, v in _HKDF_OIDS.items()}
ID_ORI_KEM = "1.2.840.113549.1.9.16.13.3"


def mlkem_oid(key: Any) -> str | None:
    """The id-alg-ml-kem-* OID of an ML-KEM public or private key (None for other keys)."""
    from cryptography.hazmat.primitives.asymmetric import mlkem

    for cls_pub, cls_priv, oid in (
        (mlkem.MLKEM768PublicKey, mlkem.MLKEM768PrivateKey, "2.16.840.1.101.3.4.4.2"),
        (mlkem.MLKEM1024PublicKey, mlkem.MLKEM1024PrivateKey, "2.16.840.1.101.3.4.4.3"),
    ):
        if isinstance(key, (cls_pub, cls_priv)):
            return oid
    return None


def kem_kek(shared_secret: bytes, hash_name: str, wrap_alg_der: bytes, kek_length: int, ukm: bytes | None) -> bytes:
    """RFC 9629 section 5: KEK = HKDF(IKM=ss, salt none, info=DER(CMSORIforKEMOtherInfo), L=kekLength)."""
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from pyasn1_modules import rfc5280

    from cmpclient.asn1.cms_kem import CMSORIforKEMOtherInfo

    info = CMSORIforKEMOtherInfo()
    info["wrap"] = A.der_decode(wrap_alg_der, rfc5280.AlgorithmIdentifier(), "key wrap algorithm")
    info["kekLength"] = kek_length
    if ukm is not None:
        info["ukm"] = ukm
    return HKDF(algorithm=A.hash_algorithm(hash_name), length=kek_length, salt=None, info=A.der_encode(info)).derive(
        shared_secret
    )


def _build_kemri(r: KEMRecipient, cek: bytes, ri: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    from pyasn1.type import univ

    from cmpclient.asn1.cms_kem import KEMRecipientInfo

    pub = _public_key_of(r.recipient)
    kem_oid = mlkem_oid(pub)
    if kem_oid is None:
        raise UsageError("KEMRecipient needs an ML-KEM-768/1024 certificate or public key")
    if r.kdf_hash not in _HKDF_OIDS:
        raise UsageError(f"KEMRecipient: unsupported HKDF hash {r.kdf_hash!r}")
    if r.wrap_key_size not in A.AES_WRAP:
        raise UsageError("KEMRecipient: wrap_key_size must be 16, 24 or 32")
    shared, ct = pub.encapsulate()
    wrap_der = A.der_encode(A.alg_id(A.AES_WRAP[r.wrap_key_size]))
    kek = kem_kek(shared, r.kdf_hash, wrap_der, r.wrap_key_size, r.ukm)
    kemri = KEMRecipientInfo()
    kemri["version"] = 0
    if isinstance(r.recipient, x509.Certificate) and not r.use_ski and r.ski is None:
        _issuer_and_serial(r.recipient, kemri["rid"]["issuerAndSerialNumber"])
    else:
        kemri["rid"]["subjectKeyIdentifier"] = r.ski if r.ski is not None else subject_key_identifier(r.recipient)
    kemri["kem"]["algorithm"] = univ.ObjectIdentifier(kem_oid)  # parameters absent (RFC 9936)
    kemri["kemct"] = ct
    kemri["kdf"]["algorithm"] = univ.ObjectIdentifier(_HKDF_OIDS[r.kdf_hash])  # parameters absent (RFC 8619)
    kemri["kekLength"] = r.wrap_key_size
    if r.ukm is not None:
        kemri["ukm"] = r.ukm
    kemri["wrap"]["algorithm"] = univ.ObjectIdentifier(A.AES_WRAP[r.wrap_key_size])
    kemri["encryptedKey"] = aes_key_wrap(kek, cek)
    ori = ri["ori"]
    ori["oriType"] = univ.ObjectIdentifier(ID_ORI_KEM)
    ori["oriValue"] = univ.Any(A.der_encode(kemri))


def _unwrap_kemri(ori: Any, private_key: Any, certificate: Any, what: str) -> list[bytes]:
    """The content key from an id-ori-kem OtherRecipientInfo for ``private_key`` ([] when it
    names another recipient)."""
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

    from cmpclient.asn1.cms_kem import KEMRecipientInfo

    if str(ori["oriType"]) != ID_ORI_KEM:
        return []
    kemri = A.der_decode(bytes(ori["oriValue"]), KEMRecipientInfo(), f"{what} KEMRecipientInfo")
    if int(kemri["version"]) != 0:
        raise ProtectionError(f"{what}: KEMRecipientInfo version {int(kemri['version'])} (must be 0)")
    name = kemri["rid"].getName()
    if not _matches_cert(name, kemri["rid"][name], certificate, private_key.public_key()) and certificate is not None:
        return []
    kem = str(kemri["kem"]["algorithm"])
    if kem != mlkem_oid(private_key):
        raise ProtectionError(f"{what}: KEMRecipientInfo uses KEM {kem}, which does not fit the ML-KEM private key",
                              fail_info="badAlg")
    if kemri["kem"]["parameters"].isValue:
        raise DecodeError(f"{what}: ML-KEM AlgorithmIdentifier parameters must be absent")
    hash_name = _HKDF_BY_OID.get(str(kemri["kdf"]["algorithm"]))
    if hash_name is None:
        raise ProtectionError(f"{what}: unsupported KEMRecipientInfo KDF {kemri['kdf']['algorithm']} (HKDF is supported)",
                              fail_info="badAlg")
    wrap_oid = str(kemri["wrap"]["algorithm"])
    size = A.AES_WRAP_BY_OID.get(wrap_oid)
    if size is None:
        raise ProtectionError(f"{what}: unsupported key wrap algorithm {wrap_oid}", fail_info="badAlg")
    if int(kemri["kekLength"]) != size:
        raise ProtectionError(f"{what}: kekLength {int(kemri['kekLength'])} does not fit {wrap_oid} ({size} bytes)")
    try:
        shared = private_key.decapsulate(bytes(kemri["kemct"]))
    except ValueError as exc:
        raise DecodeError(f"{what}: the KEM ciphertext cannot be decapsulated ({exc})") from None
    ukm = bytes(kemri["ukm"]) if kemri["ukm"].isValue else None
    kek = kem_kek(shared, hash_name, A.der_encode(kemri["wrap"]), size, ukm)
    try:
        return [aes_key_unwrap(kek, bytes(kemri["encryptedKey"]))]
    except (InvalidUnwrap, ValueError):
        # ML-KEM decapsulation never fails on a well-formed ciphertext (implicit rejection):
        # a wrong key or a modified kemct shows up here, as a key-unwrap integrity failure.
        raise ProtectionError(f"{what}: AES key unwrap failed after ML-KEM decapsulation "
                              "(wrong private key or tampered KEM ciphertext)") from None


# --- EnvelopedData -------------------------------------------------------------------------


def envelope(
    content: bytes,
    *,
    recipients: Sequence[Recipient],
    content_type_oid: str = A.ID_DATA,
    content_key_size: int = 32,
    as_content_info: bool = False,
) -> bytes:
    """Encrypt ``content`` into a DER CMS ``EnvelopedData`` for one or more recipients.

    Content encryption is AES-CBC (AES-256 by default, ``content_key_size`` 16/24/32) with
    a random IV.  ``content_type_oid`` labels the encrypted content (``id-data``,
    ``id-signedData`` for a signed key package, ``id-ct-encKeyWithID``...).  CMP carries the
    bare ``EnvelopedData``; ``as_content_info=True`` wraps it in a ``ContentInfo`` as
    ``openssl cms`` and S/MIME expect.
    """
    from pyasn1.type import univ
    from pyasn1_modules import rfc5652

    if not recipients:
        raise UsageError("envelope() needs at least one recipient")
    if content_key_size not in A.AES_CBC:
        raise UsageError("content_key_size must be 16, 24 or 32")
    if not isinstance(content, (bytes, bytearray)):
        raise UsageError("content must be bytes")
    cek = os.urandom(content_key_size)
    iv = os.urandom(16)

    env = rfc5652.EnvelopedData()
    infos = env["recipientInfos"]
    has_pwri = False
    has_ori = False
    all_v0 = True
    for i, r in enumerate(recipients):
        ri = infos.getComponentByPosition(i)  # auto-instantiated RecipientInfo
        if isinstance(r, KeyTransRecipient):
            _build_ktri(r, cek, ri)
            all_v0 = all_v0 and int(ri["ktri"]["version"]) == 0
        elif isinstance(r, KeyAgreeRecipient):
            _build_kari(r, cek, ri)
            all_v0 = False
        elif isinstance(r, PasswordRecipient):
            _build_pwri(r, cek, ri)
            has_pwri = True
        elif isinstance(r, KEMRecipient):
            _build_kemri(r, cek, ri)
            has_ori = True
        else:
            raise UsageError(f"unsupported recipient type {type(r).__name__}")
    # RFC 5652 section 6.1 version rules (no originatorInfo, no unprotectedAttrs here).
    env["version"] = 3 if (has_pwri or has_ori) else (0 if all_v0 else 2)
    eci = env["encryptedContentInfo"]
    eci["contentType"] = univ.ObjectIdentifier(content_type_oid)
    cea = A.alg_id(A.AES_CBC[content_key_size], A.octet_string_der(iv))
    eci["contentEncryptionAlgorithm"]["algorithm"] = cea["algorithm"]
    eci["contentEncryptionAlgorithm"]["parameters"] = cea["parameters"]
    eci["encryptedContent"] = _aes_cbc_encrypt(cek, iv, bytes(content))
    der = A.der_encode(env)
    if not as_content_info:
        return der
    ci = rfc5652.ContentInfo()
    ci["contentType"] = univ.ObjectIdentifier(A.ID_ENVELOPED_DATA)
    ci["content"] = univ.Any(der)
    return A.der_encode(ci)


def _decode_enveloped(der: bytes) -> Any:
    """Accept a bare EnvelopedData or one inside a ContentInfo."""
    from pyasn1_modules import rfc5652

    data = bytes(der)
    # A ContentInfo starts with an OID inside the outer SEQUENCE; EnvelopedData with an INTEGER.
    if _first_inner_tag(data) == 0x06:
        data = A.content_info_content(data, A.ID_ENVELOPED_DATA, "EnvelopedData")
    return A.der_decode(data, rfc5652.EnvelopedData(), "EnvelopedData")


def _first_inner_tag(data: bytes) -> int | None:
    if len(data) < 2 or data[0] != 0x30:
        return None
    n = data[1]
    off = 2 if n < 0x80 else 2 + (n & 0x7F)
    return data[off] if off < len(data) else None


def _matches_cert(rid_choice_name: str, rid_value: Any, certificate: Any, public_key: Any) -> bool:
    """Whether a recipient identifier names our certificate / key."""
    if rid_choice_name == "issuerAndSerialNumber":
        if certificate is None:
            return False
        return (
            int(rid_value["serialNumber"]) == certificate.serial_number
            and A.der_encode(rid_value["issuer"]) == certificate.issuer.public_bytes()
        )
    ski = bytes(rid_value)
    candidates = {subject_key_identifier(public_key)}
    if certificate is not None:
        candidates.add(subject_key_identifier(certificate))
    return ski in candidates


def _unwrap_kari(kari: Any, private_key: Any, certificate: Any, what: str) -> list[bytes]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

    orig = kari["originator"]
    if orig.getName() != "originatorKey":
        raise ProtectionError(f"{what}: only ephemeral-static ECDH (originatorKey) is supported")
    oid = str(kari["keyEncryptionAlgorithm"]["algorithm"])
    kdf_hash = A.ECDH_STD_BY_OID.get(oid)
    if kdf_hash is None:
        raise ProtectionError(f"{what}: unsupported key agreement algorithm {oid}")
    wrap_der = A.params_der(kari["keyEncryptionAlgorithm"])
    if wrap_der is None:
        raise DecodeError(f"{what}: key agreement algorithm without key wrap parameters")
    from pyasn1_modules import rfc5280

    wrap = A.der_decode(wrap_der, rfc5280.AlgorithmIdentifier(), f"{what} key wrap algorithm")
    size = A.AES_WRAP_BY_OID.get(str(wrap["algorithm"]))
    if size is None:
        raise ProtectionError(f"{what}: unsupported key wrap algorithm {wrap['algorithm']}")
    point = _bits_to_bytes(orig["originatorKey"]["publicKey"], "originator public key")
    # The originator's curve is the recipient's (RFC 5753: parameters absent or NULL).
    try:
        eph_pub = ec.EllipticCurvePublicKey.from_encoded_point(private_key.curve, point)
    except ValueError:
        raise DecodeError(f"{what}: originator public key is not a point on {private_key.curve.name}") from None
    shared = private_key.exchange(ec.ECDH(), eph_pub)
    ukm = bytes(kari["ukm"]) if kari["ukm"].isValue else None
    kek = _x963_kek(shared, kdf_hash, size, _ecc_shared_info(wrap_der, size * 8, ukm))
    pub = private_key.public_key()
    keys: list[bytes] = []
    reks = list(kari["recipientEncryptedKeys"])
    matched = [
        rek
        for rek in reks
        if _matches_cert(
            rek["rid"].getName(),
            rek["rid"]["issuerAndSerialNumber"]
            if rek["rid"].getName() == "issuerAndSerialNumber"
            else rek["rid"]["rKeyId"]["subjectKeyIdentifier"],
            certificate,
            pub,
        )
    ]
    # Without a certificate an issuerAndSerialNumber cannot be matched: try every entry.
    for rek in matched or (reks if certificate is None else []):
        try:
            keys.append(aes_key_unwrap(kek, bytes(rek["encryptedKey"])))
        except (InvalidUnwrap, ValueError):
            if matched:
                raise ProtectionError(f"{what}: AES key unwrap failed (wrong key or tampered)") from None
    return keys


def _unwrap_pwri(pwri: Any, password: bytes, what: str) -> bytes:
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280, rfc8018

    kda = pwri["keyDerivationAlgorithm"]
    if not kda.isValue or str(kda["algorithm"]) != A.ID_PBKDF2:
        raise ProtectionError(f"{what}: password recipient without PBKDF2 key derivation is not supported")
    raw = A.params_der(kda)
    if raw is None:
        raise DecodeError(f"{what}: PBKDF2 parameters missing")
    p = A.der_decode(raw, rfc8018.PBKDF2_params(), f"{what} PBKDF2 parameters")
    if p["salt"].getName() != "specified":
        raise ProtectionError(f"{what}: PBKDF2 salt 'otherSource' is not supported")
    salt = bytes(p["salt"]["specified"])
    iterations = int(p["iterationCount"])
    if iterations > 10_000_000:
        raise ProtectionError(f"{what}: PBKDF2 iteration count {iterations} is unreasonably high")
    prf = "sha1"  # the ASN.1 DEFAULT when prf is absent
    if p["prf"].isValue:
        prf = A.HMAC_BY_OID.get(str(p["prf"]["algorithm"]), "")
        if not prf:
            raise ProtectionError(f"{what}: unsupported PBKDF2 PRF {p['prf']['algorithm']}")

    kea = pwri["keyEncryptionAlgorithm"]
    oid = str(kea["algorithm"])
    wrapped = bytes(pwri["encryptedKey"])
    if oid in A.AES_WRAP_BY_OID:
        size = A.AES_WRAP_BY_OID[oid]
        if p["keyLength"].isValue and int(p["keyLength"]) != size:
            raise ProtectionError(f"{what}: PBKDF2 keyLength does not fit the key wrap algorithm")
        kek = _pbkdf2(password, salt, iterations, size, prf)
        try:
            return aes_key_unwrap(kek, wrapped)
        except (InvalidUnwrap, ValueError):
            raise ProtectionError(f"{what}: wrong password (AES key unwrap failed)") from None
    if oid == A.ID_ALG_PWRI_KEK:
        inner_raw = A.params_der(kea)
        if inner_raw is None:
            raise DecodeError(f"{what}: PWRI-KEK parameters missing")
        inner = A.der_decode(inner_raw, rfc5280.AlgorithmIdentifier(), f"{what} PWRI-KEK cipher")
        size = A.AES_CBC_BY_OID.get(str(inner["algorithm"]))
        if size is None:
            raise ProtectionError(f"{what}: unsupported PWRI-KEK cipher {inner['algorithm']} (AES-CBC is supported)")
        iv = bytes(A.der_decode(A.params_der(inner) or b"", univ.OctetString(), f"{what} PWRI-KEK IV"))
        if len(iv) != 16:
            raise DecodeError(f"{what}: PWRI-KEK IV must be 16 bytes")
        kek = _pbkdf2(password, salt, iterations, size, prf)
        return _pwri_kek_unwrap(kek, iv, wrapped, what)
    raise ProtectionError(f"{what}: unsupported password key encryption algorithm {oid}")


def _recover_cek_candidates(
    env: Any, private_key: Any, certificate: Any, password: bytes | None, what: str
) -> list[bytes]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    candidates: list[bytes] = []
    errors: list[ProtectionError] = []
    kinds = []
    for ri in env["recipientInfos"]:
        kind = ri.getName()
        kinds.append(kind)
        try:
            if kind == "ktri" and isinstance(private_key, rsa.RSAPrivateKey):
                ktri = ri["ktri"]
                name = ktri["rid"].getName()
                matched = _matches_cert(name, ktri["rid"][name], certificate, private_key.public_key())
                # Without the certificate an issuerAndSerialNumber cannot be checked, and a
                # CA-chosen SKI may not be the one we compute; then trial decryption decides
                # (OAEP and the content padding catch wrong keys).
                if matched or certificate is None:
                    candidates.append(
                        _rsa_decrypt(private_key, bytes(ktri["encryptedKey"]), ktri["keyEncryptionAlgorithm"], what)
                    )
            elif kind == "kari" and isinstance(private_key, ec.EllipticCurvePrivateKey):
                candidates.extend(_unwrap_kari(ri["kari"], private_key, certificate, what))
            elif kind == "pwri" and password is not None:
                candidates.append(_unwrap_pwri(ri["pwri"], password, what))
            elif kind == "ori" and private_key is not None and mlkem_oid(private_key) is not None:
                candidates.extend(_unwrap_kemri(ri["ori"], private_key, certificate, what))
        except ProtectionError as exc:
            errors.append(exc)
    if candidates:
        return candidates
    if errors:
        raise errors[0]
    have = ", ".join(sorted(set(kinds))) or "none"
    raise ProtectionError(
        f"{what}: no recipient matches the given key/certificate/password (recipient kinds: {have})",
        hint="pass the private key (and certificate) the CA encrypted for, or the password",
    )


@_clean_errors("EnvelopedData")
def decrypt_enveloped_data(
    der: bytes,
    *,
    private_key: Any = None,
    certificate: Any = None,
    password: bytes | None = None,
) -> bytes:
    """Decrypt a DER ``EnvelopedData`` (bare or in a ``ContentInfo``) and return the content.

    Finds the recipient that fits: a KeyTransRecipientInfo for an RSA ``private_key``, a
    KeyAgreeRecipientInfo for an EC ``private_key`` (recipients are matched by
    issuerAndSerialNumber of ``certificate`` or by subject key identifier), or a
    PasswordRecipientInfo for ``password``.
    """
    what = "EnvelopedData"
    if private_key is None and password is None:
        raise UsageError("decrypt_enveloped_data needs a private_key or a password")
    if password is not None and not isinstance(password, (bytes, bytearray)):
        raise UsageError("password must be bytes")
    env = _decode_enveloped(der)
    eci = env["encryptedContentInfo"]
    if not eci["encryptedContent"].isValue:
        raise DecodeError(f"{what}: encryptedContent is absent (detached content is not supported)")
    ciphertext = bytes(eci["encryptedContent"])
    last: ProtectionError | None = None
    for cek in _recover_cek_candidates(env, private_key, certificate, password, what):
        try:
            return _content_cipher_decrypt(eci["contentEncryptionAlgorithm"], cek, ciphertext, what)
        except ProtectionError as exc:
            last = exc
    assert last is not None
    raise last


@_clean_errors("EnvelopedData")
def enveloped_content_type(der: bytes) -> str:
    """The dotted OID of the encrypted content's type (from ``encryptedContentInfo``)."""
    return str(_decode_enveloped(der)["encryptedContentInfo"]["contentType"])


# --- SignedData for the key package ------------------------------------------------------


def _signature_params(key: Any) -> tuple[str, str, Any]:
    """(digest name, signatureAlgorithm OID, sign(data) callable) for a signer key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "sha256", "1.2.840.113549.1.1.11", lambda d: key.sign(d, padding.PKCS1v15(), A.hash_algorithm("sha256"))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        h = {256: "sha256", 384: "sha384", 521: "sha512"}.get(key.curve.key_size, "sha256")
        oid = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3", "sha512": "1.2.840.10045.4.3.4"}[h]
        return h, oid, lambda d: key.sign(d, ec.ECDSA(A.hash_algorithm(h)))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "sha512", "1.3.101.112", key.sign  # RFC 8419
    if isinstance(key, ed448.Ed448PrivateKey):
        return "shake256", "1.3.101.113", key.sign  # RFC 8419: id-shake256-len, 512 bits
    from cryptography.hazmat.primitives.asymmetric import mldsa

    for n, oid in (("44", "2.16.840.1.101.3.4.3.17"), ("65", "2.16.840.1.101.3.4.3.18"), ("87", "2.16.840.1.101.3.4.3.19")):
        if isinstance(key, getattr(mldsa, f"MLDSA{n}PrivateKey")):
            return "sha512", oid, key.sign  # RFC 9882: SHA-512 digest, pure ML-DSA
    raise UsageError(f"unsupported signer key type {type(key).__name__}")


def _digest(name: str, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(A.hash_algorithm(name))
    h.update(data)
    return h.finalize()


def _digest_alg(name: str) -> Any:
    from pyasn1.type import univ

    if name == "shake256":
        return A.alg_id("2.16.840.1.101.3.4.2.18", A.der_encode(univ.Integer(512)))
    return A.alg_id(A.HASH_OID[name])


def sign_content(content: bytes, content_type_oid: str, signer_key: Any, signer_cert: Any, *, extra_certs: Sequence[Any] = ()) -> bytes:
    """Build a DER ``SignedData`` (not wrapped in ContentInfo) over encapsulated ``content``.

    Signed attributes carry contentType and messageDigest (required when the content type is
    not id-data); the signer is identified by issuerAndSerialNumber and its certificate (plus
    ``extra_certs``) is included so the recipient can verify it.
    """
    from cryptography.hazmat.primitives import serialization
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280, rfc5652

    digest_name, sig_oid, sign = _signature_params(signer_key)
    sd = rfc5652.SignedData()
    sd["version"] = 3  # eContentType other than id-data (RFC 5652 section 5.1)
    sd["digestAlgorithms"].append(_digest_alg(digest_name))
    sd["encapContentInfo"]["eContentType"] = univ.ObjectIdentifier(content_type_oid)
    sd["encapContentInfo"]["eContent"] = bytes(content)
    for i, c in enumerate([signer_cert, *extra_certs]):
        choice = sd["certificates"].getComponentByPosition(i)
        choice["certificate"] = A.der_decode(
            c.public_bytes(serialization.Encoding.DER), rfc5280.Certificate(), "signer certificate"
        )

    si = sd["signerInfos"].getComponentByPosition(0)
    si["version"] = 1
    _issuer_and_serial(signer_cert, si["sid"]["issuerAndSerialNumber"])
    si["digestAlgorithm"] = _digest_alg(digest_name)
    attrs = si["signedAttrs"]
    for i, (oid, value_der) in enumerate(
        (
            (A.ID_CONTENT_TYPE, A.der_encode(univ.ObjectIdentifier(content_type_oid))),
            (A.ID_MESSAGE_DIGEST, A.octet_string_der(_digest(digest_name, bytes(content)))),
        )
    ):
        attr = attrs.getComponentByPosition(i)
        attr["attrType"] = univ.ObjectIdentifier(oid)
        attr["attrValues"].append(univ.Any(value_der))
    si["signatureAlgorithm"] = A.alg_id(sig_oid)
    si["signature"] = sign(_signed_attrs_for_signature(attrs))
    return A.der_encode(sd)


def _signed_attrs_for_signature(attrs: Any) -> bytes:
    """RFC 5652 section 5.4: sign the DER of the attributes with an explicit SET OF tag."""
    der = A.der_encode(attrs)
    return b"\x31" + der[1:]


@_clean_errors("SignedData")
def verify_signed_data(der: bytes, *, signer_certificate: Any = None) -> tuple[str, bytes, Any]:
    """Verify a DER ``SignedData`` (bare or in a ContentInfo) with one signer.

    The signer certificate is the one given, else the one in ``certificates`` that matches
    the signer identifier.  Returns ``(eContentType, eContent, signer certificate)``.
    Raises :class:`ProtectionError` when the signature or the message digest is wrong.
    Whether the signer is trusted (chain to a CA) is for the caller to decide.
    """
    from cryptography import x509
    from pyasn1_modules import rfc5652

    what = "SignedData"
    data = bytes(der)
    if _first_inner_tag(data) == 0x06:
        data = A.content_info_content(data, A.ID_SIGNED_DATA, "SignedData")
    sd = A.der_decode(data, rfc5652.SignedData(), what)
    eci = sd["encapContentInfo"]
    ctype = str(eci["eContentType"])
    if not eci["eContent"].isValue:
        raise DecodeError(f"{what}: detached content is not supported")
    content = bytes(eci["eContent"])
    if len(sd["signerInfos"]) != 1:
        raise ProtectionError(f"{what}: expected exactly one signer, found {len(sd['signerInfos'])}")
    si = sd["signerInfos"][0]
    sid_name = si["sid"].getName()

    certs = []
    if sd["certificates"].isValue:
        for choice in sd["certificates"]:
            if choice.getName() == "certificate":
                certs.append(x509.load_der_x509_certificate(A.der_encode(choice["certificate"])))
    signer = signer_certificate
    candidates = [signer] if signer is not None else certs
    found = None
    for c in candidates:
        if _matches_cert(sid_name, si["sid"][sid_name], c, c.public_key()):
            found = c
            break
    if found is None:
        raise ProtectionError(
            f"{what}: the signer certificate is "
            + ("not the expected one" if signer is not None else "not included in the SignedData")
        )

    if not si["signedAttrs"].isValue:
        raise ProtectionError(f"{what}: signed attributes are missing")
    digest_name = A.HASH_BY_OID.get(str(si["digestAlgorithm"]["algorithm"]))
    if digest_name is None:
        raise ProtectionError(f"{what}: unsupported digest algorithm {si['digestAlgorithm']['algorithm']}")
    md = ct = None
    for attr in si["signedAttrs"]:
        t = str(attr["attrType"])
        if t == A.ID_MESSAGE_DIGEST:
            from pyasn1.type import univ

            md = bytes(A.der_decode(A.der_encode(attr["attrValues"][0]), univ.OctetString(), "messageDigest"))
        elif t == A.ID_CONTENT_TYPE:
            from pyasn1.type import univ

            ct = str(A.der_decode(A.der_encode(attr["attrValues"][0]), univ.ObjectIdentifier(), "contentType"))
    if md is None or ct is None:
        raise ProtectionError(f"{what}: contentType or messageDigest attribute missing")
    if ct != ctype:
        raise ProtectionError(f"{what}: contentType attribute does not match eContentType")
    if md != _digest(digest_name, content):
        raise ProtectionError(f"{what}: message digest mismatch (content modified)")
    _verify_signature(
        found.public_key(),
        str(si["signatureAlgorithm"]["algorithm"]),
        digest_name,
        bytes(si["signature"]),
        _signed_attrs_for_signature(si["signedAttrs"]),
        what,
    )
    return ctype, content, found


def _verify_signature(pub: Any, sig_oid: str, digest_name: str, signature: bytes, data: bytes, what: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    rsa_oids = {
        "1.2.840.113549.1.1.11": "sha256",
        "1.2.840.113549.1.1.12": "sha384",
        "1.2.840.113549.1.1.13": "sha512",
        A.RSA_ENCRYPTION: digest_name,  # CMS allows rsaEncryption with the digestAlgorithm
    }
    ecdsa_oids = {"1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512"}
    try:
        if isinstance(pub, rsa.RSAPublicKey) and sig_oid in rsa_oids:
            pub.verify(signature, data, padding.PKCS1v15(), A.hash_algorithm(rsa_oids[sig_oid]))
        elif isinstance(pub, ec.EllipticCurvePublicKey) and sig_oid in ecdsa_oids:
            pub.verify(signature, data, ec.ECDSA(A.hash_algorithm(ecdsa_oids[sig_oid])))
        elif isinstance(pub, ed25519.Ed25519PublicKey) and sig_oid == "1.3.101.112":
            pub.verify(signature, data)
        elif isinstance(pub, ed448.Ed448PublicKey) and sig_oid == "1.3.101.113":
            pub.verify(signature, data)
        elif sig_oid in ("2.16.840.1.101.3.4.3.17", "2.16.840.1.101.3.4.3.18", "2.16.840.1.101.3.4.3.19"):
            pub.verify(signature, data)
        else:
            raise ProtectionError(f"{what}: unsupported signature algorithm {sig_oid} for {type(pub).__name__}")
    except InvalidSignature:
        raise ProtectionError(f"{what}: signature verification failed") from None


# --- Private key packaging ---------------------------------------------------------------


def _pkcs8_der(private_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _asymmetric_key_package(private_key: Any) -> bytes:
    from pyasn1_modules import rfc5958

    pkg = rfc5958.AsymmetricKeyPackage()
    pkg.append(A.der_decode(_pkcs8_der(private_key), rfc5958.OneAsymmetricKey(), "OneAsymmetricKey"))
    return A.der_encode(pkg)


def _enc_key_with_id(private_key: Any, identifier: str | None) -> bytes:
    from pyasn1_modules import rfc4211

    ekw = rfc4211.EncKeyWithID()
    ekw["privateKey"] = A.der_decode(_pkcs8_der(private_key), rfc4211.PrivateKeyInfo(), "PrivateKeyInfo")
    if identifier is not None:
        ekw["identifier"]["string"] = identifier
    return A.der_encode(ekw)


def wrap_private_key_for_delivery(
    private_key: Any,
    *,
    recipients: Sequence[Recipient],
    signer_key: Any = None,
    signer_cert: Any = None,
    extra_certs: Sequence[Any] = (),
    inner: str = "signed",
    identifier: str | None = None,
    as_content_info: bool = False,
) -> bytes:
    """CA side: package a centrally generated ``private_key`` into a DER ``EnvelopedData``.

    ``inner`` selects the encrypted content:

    * ``"signed"`` (RFC 9810 section 5.2.3 / RFC 9483 section 4.1.6): a ``SignedData``
      signed with ``signer_key``/``signer_cert`` over an ``AsymmetricKeyPackage``;
    * ``"pkcs8"``: a bare ``OneAsymmetricKey`` (content type id-data);
    * ``"enckeywithid"``: RFC 4211 section 4.4 ``EncKeyWithID`` with optional UTF8 ``identifier``.
    """
    if inner == "signed":
        if signer_key is None or signer_cert is None:
            raise UsageError("inner='signed' needs signer_key and signer_cert")
        content = sign_content(
            _asymmetric_key_package(private_key), A.ID_CT_KP_AKEY_PACKAGE, signer_key, signer_cert, extra_certs=extra_certs
        )
        ctype = A.ID_SIGNED_DATA
    elif inner == "pkcs8":
        content, ctype = _pkcs8_der(private_key), A.ID_DATA
    elif inner == "enckeywithid":
        content, ctype = _enc_key_with_id(private_key, identifier), A.ID_CT_ENC_KEY_WITH_ID
    else:
        raise UsageError(f"unknown inner format {inner!r}", hint="use 'signed', 'pkcs8' or 'enckeywithid'")
    return envelope(content, recipients=recipients, content_type_oid=ctype, as_content_info=as_content_info)


def wrap_private_key_in_encrypted_value(private_key: Any, recipient_public_key: Any, *, oaep: bool = False) -> bytes:
    """CA side: a DER ``EncryptedValue`` whose encValue is the PKCS#8 ``PrivateKeyInfo``."""
    return encrypt_encrypted_value(_pkcs8_der(private_key), recipient_public_key, oaep=oaep)


def _load_pkcs8(der: bytes, what: str) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DecodeError(f"{what}: the decrypted content is not a usable private key ({exc})") from None


def _private_key_from_content(content_type: str, content: bytes, *, verify_signature: bool, signer_certificate: Any) -> Any:
    from pyasn1_modules import rfc4211, rfc5958

    if content_type == A.ID_SIGNED_DATA:
        if verify_signature:
            inner_type, inner, _ = verify_signed_data(content, signer_certificate=signer_certificate)
        else:
            from pyasn1_modules import rfc5652

            sd = A.der_decode(content, rfc5652.SignedData(), "SignedData")
            inner_type = str(sd["encapContentInfo"]["eContentType"])
            inner = bytes(sd["encapContentInfo"]["eContent"])
        return _private_key_from_content(inner_type, inner, verify_signature=False, signer_certificate=None)
    if content_type == A.ID_CT_KP_AKEY_PACKAGE:
        pkg = A.der_decode(content, rfc5958.AsymmetricKeyPackage(), "AsymmetricKeyPackage")
        if len(pkg) < 1:
            raise DecodeError("AsymmetricKeyPackage is empty")
        return _load_pkcs8(A.der_encode(pkg[0]), "AsymmetricKeyPackage")
    if content_type == A.ID_CT_ENC_KEY_WITH_ID:
        ekw = A.der_decode(content, rfc4211.EncKeyWithID(), "EncKeyWithID")
        return _load_pkcs8(A.der_encode(ekw["privateKey"]), "EncKeyWithID")
    if content_type == A.ID_DATA:
        # Plain OneAsymmetricKey; some senders label an EncKeyWithID as id-data.
        try:
            return _load_pkcs8(content, "OneAsymmetricKey")
        except DecodeError:
            ekw = A.der_decode(content, rfc4211.EncKeyWithID(), "EncKeyWithID")
            return _load_pkcs8(A.der_encode(ekw["privateKey"]), "EncKeyWithID")
    raise DecodeError(f"unsupported content type {content_type} for a returned private key")


@_clean_errors("returned private key")
def decrypt_returned_private_key(
    der: bytes,
    *,
    private_key: Any = None,
    certificate: Any = None,
    password: bytes | None = None,
    verify_signature: bool = True,
    signer_certificate: Any = None,
) -> Any:
    """End-entity side: recover a centrally generated private key.

    ``der`` is an ``EnvelopedData`` (bare or in ContentInfo) or an ``EncryptedValue``
    (told apart by their first field).  The decrypted content may be a ``SignedData`` over
    an ``AsymmetricKeyPackage`` (its signature is checked against the certificate in the
    SignedData, or ``signer_certificate`` when given, unless ``verify_signature=False``),
    a PKCS#8 ``OneAsymmetricKey`` or an ``EncKeyWithID``.  Returns the private key object.
    Checking that the signer is an authorised CA is the caller's job.
    """
    data = bytes(der)
    first = _first_inner_tag(data)
    if first is not None and (first & 0xC0) == 0x80:
        # EncryptedValue starts with an implicitly tagged [0]..[4] field.
        if private_key is None:
            raise UsageError("an EncryptedValue can only be decrypted with the RSA private key")
        return _load_pkcs8(decrypt_encrypted_value(data, private_key), "EncryptedValue")
    env = _decode_enveloped(data)
    ctype = str(env["encryptedContentInfo"]["contentType"])
    content = decrypt_enveloped_data(data, private_key=private_key, certificate=certificate, password=password)
    return _private_key_from_content(
        ctype, content, verify_signature=verify_signature, signer_certificate=signer_certificate
    )
