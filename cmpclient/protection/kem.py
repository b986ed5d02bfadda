"""KEM-based message authentication (RFC 9810 section 5.1.3.4) with ML-KEM (FIPS 203).

The end entity holds an ML-KEM certificate; it cannot sign, so it proves its identity with
a MAC keyed by a secret only it can decapsulate:

1. EE -> CA: ``genm`` with ``id-it-KemCiphertextInfo`` (value absent), its KEM certificate
   first in extraCerts.
2. CA: ``(ss, ct) = Encapsulate(pk)``; ``genp`` with ``KemCiphertextInfo {kem, ct}``.
3. EE: ``ss = Decapsulate(ct, sk)``; ``ssk = KDF(ss, len, DER(KemOtherInfo))`` with
   ``KemOtherInfo {staticString "CMP-KEM", transactionID, kemContext?}``; every further
   message of the *same transaction* (ir/cr/kur, certConf) is protected with
   ``protectionAlg id-KemBasedMac`` + ``KemBMParameter {kdf, kemContext?, len, mac}`` and the
   value ``MAC(ssk, DER(ProtectedPart))``; the CA answers with the same protection.

The KDF is HKDF (RFC 5869) with SHA-256/384/512 (RFC 8619 ``id-alg-hkdf-with-sha*``,
parameters absent): IKM = ss, no salt, info = DER(KemOtherInfo), L = len.  The MAC is
HMAC-SHA2 (RFC 9481 section 6.2.1).  Defaults: HKDF-SHA256, len 32, hmacWithSHA256.
"""

from __future__ import annotations

import hmac as _hmaclib
from dataclasses import dataclass
from typing import Any

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.lazy import char, cmp, rfc5280, univ
from cmpclient.errors import DecodeError, ProtectionError, UsageError
from cmpclient.keys.generate import kem_algorithm_oid
from cmpclient.protection import mac as _mac

__all__ = [
    "STATIC_STRING",
    "KemBMParams",
    "KEMMACProtection",
    "kem_other_info_der",
    "derive_ssk",
    "verify_kem_mac",
    "encapsulate_to",
    "decapsulate_ciphertext_info",
    "kem_algorithm_oid",
]

STATIC_STRING = "CMP-KEM"

#: HKDF hash name -> id-alg-hkdf-with-* OID (RFC 8619)
HKDF_OIDS = {"sha256": oids.HKDF_WITH_SHA256, "sha384": oids.HKDF_WITH_SHA384, "sha512": oids.HKDF_WITH_SHA512}
_HKDF_BY_OID = {v: k for k, v in HKDF_OIDS.items()}
#: HMAC hash name -> OID (HMAC-SHA2 only)
HMAC_OIDS = {"sha256": oids.HMAC_WITH_SHA256, "sha384": oids.HMAC_WITH_SHA384, "sha512": oids.HMAC_WITH_SHA512}
_HMAC_BY_OID = {v: k for k, v in HMAC_OIDS.items()}


def _alg(oid: str) -> rfc5280.AlgorithmIdentifier:
    a = rfc5280.AlgorithmIdentifier()
    a["algorithm"] = univ.ObjectIdentifier(oid)
    return a


@dataclass(frozen=True)
class KemBMParams:
    """KemBMParameter: ``kdf`` and ``mac`` are hash names (sha256/384/512), ``length`` the
    ssk length in bytes, ``kem_context`` the optional kemContext."""

    kdf: str = "sha256"
    length: int = 32
    mac: str = "sha256"
    kem_context: bytes | None = None

    def __post_init__(self) -> None:
        if self.kdf not in HKDF_OIDS:
            raise UsageError(f"KEM-based MAC: unsupported KDF hash {self.kdf!r}", hint="use sha256, sha384 or sha512")
        if self.mac not in HMAC_OIDS:
            raise UsageError(f"KEM-based MAC: unsupported HMAC hash {self.mac!r}", hint="use sha256, sha384 or sha512")
        if not 16 <= self.length <= 64:
            raise UsageError(f"KEM-based MAC: ssk length {self.length} out of bounds 16..64")

    def parameter(self) -> cmp.KemBMParameter:
        p = cmp.KemBMParameter()
        p["kdf"] = _alg(HKDF_OIDS[self.kdf])
        if self.kem_context is not None:
            p["kemContext"] = self.kem_context
        p["len"] = self.length
        p["mac"] = _alg(HMAC_OIDS[self.mac])
        return p

    def algorithm_identifier(self) -> rfc5280.AlgorithmIdentifier:
        """id-KemBasedMac with the DER KemBMParameter."""
        a = _alg(oids.KEM_BASED_MAC)
        a["parameters"] = univ.Any(codec.encode(self.parameter()))
        return a

    @classmethod
    def from_algorithm_identifier(cls, alg: Any) -> "KemBMParams":
        """Parse a received id-KemBasedMac AlgorithmIdentifier (ProtectionError badAlg for
        algorithms we do not implement, DecodeError for malformed parameters)."""
        if str(alg["algorithm"]) != oids.KEM_BASED_MAC:
            raise ProtectionError(f"not a KEM-based MAC: {oids.oid_name(alg['algorithm'])}", fail_info="badAlg")
        if not alg["parameters"].isValue:
            raise DecodeError("KEM-based MAC without KemBMParameter")
        p = codec.decode(bytes(alg["parameters"]), cmp.KemBMParameter(), what="KemBMParameter")
        kdf = _HKDF_BY_OID.get(str(p["kdf"]["algorithm"]))
        if kdf is None:
            raise ProtectionError(f"KemBMParameter: unsupported KDF {oids.oid_name(p['kdf']['algorithm'])} "
                                  "(HKDF-SHA256/384/512 are supported)", fail_info="badAlg")
        if p["kdf"]["parameters"].isValue:
            raise ProtectionError("KemBMParameter: HKDF parameters must be absent (RFC 8619)", fail_info="badAlg")
        mac = _HMAC_BY_OID.get(str(p["mac"]["algorithm"]))
        if mac is None:
            raise ProtectionError(f"KemBMParameter: unsupported MAC {oids.oid_name(p['mac']['algorithm'])} "
                                  "(HMAC-SHA256/384/512 are supported)", fail_info="badAlg")
        _mac._check_params_absent_or_null(p["mac"], "KemBMParameter MAC")
        length = int(p["len"])
        if not 16 <= length <= 64:
            raise ProtectionError(f"KemBMParameter: len {length} out of bounds 16..64", fail_info="badAlg")
        ctx = bytes(p["kemContext"]) if p["kemContext"].isValue else None
        return cls(kdf=kdf, length=length, mac=mac, kem_context=ctx)

    def describe(self) -> str:
        return f"kemBasedMac/hkdf-{self.kdf}/hmac-{self.mac}"


def kem_other_info_der(transaction_id: bytes, kem_context: bytes | None = None) -> bytes:
    """DER KemOtherInfo {staticString "CMP-KEM", transactionID, kemContext?}."""
    info = cmp.KemOtherInfo()
    info["staticString"].append(char.UTF8String(STATIC_STRING))
    info["transactionID"] = transaction_id
    if kem_context is not None:
        info["kemContext"] = kem_context
    return codec.encode(info)


def derive_ssk(shared_secret: bytes, params: KemBMParams, transaction_id: bytes) -> bytes:
    """ssk = HKDF(IKM=ss, salt none, info=DER(KemOtherInfo), L=len)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if not transaction_id:
        raise ProtectionError("KEM-based MAC needs the transactionID (it is bound into KemOtherInfo)")
    h = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[params.kdf]()
    info = kem_other_info_der(transaction_id, params.kem_context)
    return HKDF(algorithm=h, length=params.length, salt=None, info=info).derive(shared_secret)


def _hmac(key: bytes, hash_name: str, data: bytes) -> bytes:
    return _hmaclib.new(key, data, hash_name).digest()


def verify_kem_mac(shared_secret: bytes, alg: Any, transaction_id: bytes, protected: bytes, value: bytes) -> KemBMParams:
    """Check a KEM-based MAC; ProtectionError badMessageCheck when it does not verify."""
    params = KemBMParams.from_algorithm_identifier(alg)
    ssk = derive_ssk(shared_secret, params, transaction_id)
    if not _hmaclib.compare_digest(_hmac(ssk, params.mac, protected), value):
        raise ProtectionError(
            "KEM-based MAC does not verify",
            fail_info="badMessageCheck",
            hint="a wrong ML-KEM private key, a modified KEM ciphertext, or a message changed in transit",
        )
    return params


class KEMMACProtection:
    """Protection with a KEM-based MAC over a shared secret from a KemCiphertextInfo exchange.

    ``shared_secret`` is the decapsulated (client) or encapsulated (CA) ML-KEM secret and
    ``transaction_id`` the transaction it was established in (KemOtherInfo binds it).
    ``peer_authenticated`` says whether the message that carried the ciphertext was
    authenticated; only then does a KEM-based MAC on the peer's answers authenticate it.
    """

    kind = "kem-mac"

    def __init__(self, shared_secret: bytes, transaction_id: bytes, params: KemBMParams | None = None,
                 sender_kid: bytes | None = None, certs: list[bytes] | None = None, *,
                 peer_authenticated: bool = True) -> None:
        if not isinstance(shared_secret, (bytes, bytearray)) or len(shared_secret) < 16:
            raise UsageError("KEMMACProtection needs the KEM shared secret (bytes)")
        self._ss = bytes(shared_secret)
        self.transaction_id = bytes(transaction_id)
        self.params = params or KemBMParams()
        self._sender_kid = sender_kid
        self._certs = list(certs or [])
        self._ssk = derive_ssk(self._ss, self.params, self.transaction_id)
        #: False when the ciphertext came in an unprotected genp (RFC 9810 allows it): a
        #: KEM-based MAC on the peer's answers then does not authenticate the peer.
        self.peer_authenticated = peer_authenticated

    def __repr__(self) -> str:  # never show the secret
        return f"KEMMACProtection(params={self.params!r}, transaction_id={self.transaction_id.hex()})"

    @property
    def kem_shared_secret(self) -> bytes:
        """The KEM shared secret (to verify the peer's KEM-MAC-protected answers)."""
        return self._ss

    def algorithm_identifier(self) -> rfc5280.AlgorithmIdentifier:
        return self.params.algorithm_identifier()

    def sender_kid(self) -> bytes | None:
        return self._sender_kid

    def extra_certs(self) -> list[bytes]:
        return list(self._certs)

    def compute(self, protected_part_der: bytes) -> bytes:
        return _hmac(self._ssk, self.params.mac, protected_part_der)


def encapsulate_to(public_key: Any) -> tuple[bytes, bytes]:
    """CA side: (ss, DER KemCiphertextInfo) for an ML-KEM public key."""
    oid = kem_algorithm_oid(public_key)
    if oid is None:
        raise ProtectionError(f"a {type(public_key).__name__} is not an ML-KEM key", fail_info="badAlg")
    ss, ct = public_key.encapsulate()
    info = cmp.KemCiphertextInfo()
    info["kem"] = _alg(oid)
    info["ct"] = ct
    return ss, codec.encode(info)


def decapsulate_ciphertext_info(private_key: Any, der: bytes) -> bytes:
    """Client side: the shared secret from a DER KemCiphertextInfo for our ML-KEM key."""
    info = codec.decode(der, cmp.KemCiphertextInfo(), what="KemCiphertextInfo")
    oid = str(info["kem"]["algorithm"])
    mine = kem_algorithm_oid(private_key)
    if mine is None:
        raise UsageError("the KEM key must be an ML-KEM-768/1024 private key")
    if oid != mine:
        raise ProtectionError(f"KemCiphertextInfo is for {oids.oid_name(oid)}, our key is {oids.oid_name(mine)}",
                              fail_info="badAlg")
    if info["kem"]["parameters"].isValue:
        raise DecodeError("KemCiphertextInfo: ML-KEM AlgorithmIdentifier parameters must be absent")
    try:
        return private_key.decapsulate(bytes(info["ct"]))
    except ValueError as exc:
        raise ProtectionError(f"KemCiphertextInfo: the ciphertext cannot be decapsulated ({exc})",
                              fail_info="badMessageCheck") from None
