"""MAC-based protection: PasswordBasedMac (RFC 4211 §4.4, RFC 9810 §5.1.3.1) and PBMAC1
(RFC 9481 §6.1.1, RFC 8018 §7.1).

PasswordBasedMac::

    BASEKEY = owf^iterationCount(secret || salt)      -- owf applied iterationCount times
    MAC     = mac(BASEKEY, DER(ProtectedPart))

PBMAC1::

    KEY = PBKDF2(prf, secret, salt, iterationCount, keyLength)
    MAC = messageAuthScheme(KEY, DER(ProtectedPart))

Parameters are immutable dataclasses (:class:`PBMParams`, :class:`PBMAC1Params`) that refuse
bad values when built.  Received parameters are parsed with ``received=True``: they are not
held to our *sending* rules (salt length, builder cap) but the iteration count is bounded by
``max_iterations`` *before* any work is done, because the count is chosen by the peer and
an unbounded count is a denial-of-service lever.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from typing import Callable

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.der import SEQUENCE, NotHandled, Reader
from cmpclient.asn1.lazy import cmp, rfc5280, univ
from cmpclient.errors import DecodeError, ProtectionError, UsageError

#: Largest iteration count we accept when *building* parameters (a generous cap: one
#: million SHA-256 rounds take ~0.3 s in CPython; more is a typo, not security).
MAX_BUILD_ITERATIONS = 1_000_000
#: Default bound on the iteration count we agree to *compute* for a received message.
#: EJBCA answers badRequest above its own limit; openssl's hard limit is 100,000.
DEFAULT_MAX_RECEIVED_ITERATIONS = 10_000
#: Shortest salt we send (RFC 4211 does not fix one; 64 bits is the usual floor, openssl uses 16 bytes).
MIN_SALT_LENGTH = 8
DEFAULT_SALT_LENGTH = 16
DEFAULT_PBM_ITERATIONS = 10_000  # the default receive limit, so our own parameters pass it

# SHA-3 OIDs are not in cmpclient.asn1.oids (only SHA3-256 is); NIST hashAlgs arc.
_SHA3_224 = "2.16.840.1.101.3.4.2.7"
_SHA3_256 = oids.SHA3_256
_SHA3_384 = "2.16.840.1.101.3.4.2.9"
_SHA3_512 = "2.16.840.1.101.3.4.2.10"

#: One-way functions for PBM: name -> (OID, hashlib name)
OWF_ALGORITHMS: dict[str, tuple[str, str]] = {
    "sha1": (oids.SHA1, "sha1"),
    "sha224": (oids.SHA224, "sha224"),
    "sha256": (oids.SHA256, "sha256"),
    "sha384": (oids.SHA384, "sha384"),
    "sha512": (oids.SHA512, "sha512"),
    "sha3-224": (_SHA3_224, "sha3_224"),
    "sha3-256": (_SHA3_256, "sha3_256"),
    "sha3-384": (_SHA3_384, "sha3_384"),
    "sha3-512": (_SHA3_512, "sha3_512"),
}

#: MAC algorithms: name -> (OID, hashlib name).  hmac-sha1 exists under two OIDs and both
#: are kept distinct so that what we send is exactly what the user asked for.
MAC_ALGORITHMS: dict[str, tuple[str, str]] = {
    "hmac-sha1": (oids.HMAC_SHA1_IETF, "sha1"),
    "hmacWithSHA1": (oids.HMAC_WITH_SHA1, "sha1"),
    "hmacWithSHA224": (oids.HMAC_WITH_SHA224, "sha224"),
    "hmacWithSHA256": (oids.HMAC_WITH_SHA256, "sha256"),
    "hmacWithSHA384": (oids.HMAC_WITH_SHA384, "sha384"),
    "hmacWithSHA512": (oids.HMAC_WITH_SHA512, "sha512"),
}

#: PBKDF2 PRFs and PBMAC1 message authentication schemes (RFC 8018 B.1, RFC 9481 §6.2.1).
HMAC_SHA2_ALGORITHMS: dict[str, tuple[str, str]] = {
    name: value for name, value in MAC_ALGORITHMS.items() if name != "hmac-sha1"
}

_OWF_BY_OID = {oid: name for name, (oid, _) in OWF_ALGORITHMS.items()}
_MAC_BY_OID = {oid: name for name, (oid, _) in MAC_ALGORITHMS.items()}
_HMAC2_BY_OID = {oid: name for name, (oid, _) in HMAC_SHA2_ALGORITHMS.items()}


def _canonical(name: str, table: dict[str, tuple[str, str]], what: str) -> str:
    """Map a user-supplied name to the table's spelling (case-insensitive, SHA-256 == sha256)."""
    if not isinstance(name, str):
        raise UsageError(f"{what} must be a name, got {type(name).__name__}")
    wanted = name.strip().lower().replace("_", "-")
    for key in table:
        if key.lower() == wanted:
            return key
    # Friendly aliases: "sha-256" -> "sha256", "hmac-sha256" -> "hmacWithSHA256".
    alias = wanted.replace("sha-", "sha") if not wanted.startswith("sha3") else wanted
    for key in table:
        if key.lower() == alias:
            return key
    if alias.startswith("hmac-sha") and alias != "hmac-sha1":
        candidate = "hmacWithSHA" + alias[len("hmac-sha") :]
        if candidate in table:
            return candidate
    raise UsageError(
        f"unknown {what} {name!r}; valid: {', '.join(table)}",
        hint=f"choose one of the listed {what} names",
    )


def _check_iterations(iterations: object, *, received: bool) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise UsageError(f"iteration count must be an integer, got {iterations!r}")
    upper = None if received else MAX_BUILD_ITERATIONS
    if iterations < 1 or (upper is not None and iterations > upper):
        raise UsageError(
            f"iteration count {iterations} is out of bounds (1..{upper})",
            hint="openssl refuses fewer than 100 PBM iterations; EJBCA refuses more than its limit",
        )
    return iterations


def _check_salt(salt: object, *, received: bool) -> bytes:
    if not isinstance(salt, (bytes, bytearray)):
        raise UsageError(f"salt must be bytes, got {type(salt).__name__}")
    if not received and len(salt) < MIN_SALT_LENGTH:
        raise UsageError(f"salt of {len(salt)} byte(s) is too short; at least {MIN_SALT_LENGTH} are required")
    return bytes(salt)


def _alg_id(oid: str, *, null_params: bool = False) -> rfc5280.AlgorithmIdentifier:
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = univ.ObjectIdentifier(oid)
    if null_params:
        alg["parameters"] = univ.Any(codec.encode(univ.Null("")))
    return alg


def _check_params_absent_or_null(alg: rfc5280.AlgorithmIdentifier, what: str) -> None:
    # HMAC/hash identifiers are sent with absent (openssl) or NULL (RFC 8018) parameters;
    # anything else would mean an algorithm variant we do not implement.
    params = alg["parameters"]
    if isinstance(params, univ.Null):  # a schema DEFAULT value (PBKDF2's hmacWithSHA1 prf)
        return
    if params.isValue and bytes(params) != b"\x05\x00":
        raise ProtectionError(f"{what} {oids.oid_name(alg['algorithm'])} has unexpected parameters", fail_info="badAlg")


# --- PasswordBasedMac ------------------------------------------------------------------------


@dataclass(frozen=True)
class PBMParams:
    """PBMParameter (RFC 4211 §4.4) as an immutable, validated value.

    ``owf`` is one of :data:`OWF_ALGORITHMS`, ``mac`` one of :data:`MAC_ALGORITHMS`
    (both accept case-insensitive spellings and are stored canonically).  When built by us
    (``received=False``) the salt must be at least 8 bytes and the iteration count in
    1..:data:`MAX_BUILD_ITERATIONS`; parsed from a message (``received=True``) only
    ``iterations >= 1`` is required and the receive limit is applied by :func:`verify_pbm`.
    """

    salt: bytes
    owf: str
    iterations: int
    mac: str
    received: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "salt", _check_salt(self.salt, received=self.received))
        object.__setattr__(self, "owf", _canonical(self.owf, OWF_ALGORITHMS, "PBM one-way function"))
        object.__setattr__(self, "mac", _canonical(self.mac, MAC_ALGORITHMS, "PBM MAC algorithm"))
        object.__setattr__(self, "iterations", _check_iterations(self.iterations, received=self.received))

    @classmethod
    def new(
        cls,
        *,
        owf: str = "sha256",
        mac: str = "hmacWithSHA256",
        iterations: int = DEFAULT_PBM_ITERATIONS,
        salt_length: int = DEFAULT_SALT_LENGTH,
    ) -> "PBMParams":
        """Fresh parameters with a random salt."""
        if salt_length < MIN_SALT_LENGTH or salt_length > 1024:
            raise UsageError(f"salt length {salt_length} is out of bounds ({MIN_SALT_LENGTH}..1024)")
        return cls(salt=os.urandom(salt_length), owf=owf, iterations=iterations, mac=mac)

    def to_asn1(self) -> cmp.PBMParameter:
        """The PBMParameter structure (owf and mac with absent parameters, as openssl sends)."""
        value = cmp.PBMParameter()
        value["salt"] = self.salt
        value["owf"] = _alg_id(OWF_ALGORITHMS[self.owf][0])
        value["iterationCount"] = self.iterations
        value["mac"] = _alg_id(MAC_ALGORITHMS[self.mac][0])
        return value

    def algorithm_identifier(self) -> rfc5280.AlgorithmIdentifier:
        """``{ id-PasswordBasedMac, PBMParameter }`` for header.protectionAlg."""
        alg = _alg_id(oids.PASSWORD_BASED_MAC)
        alg["parameters"] = univ.Any(codec.encode(self.to_asn1()))
        return alg

    def algorithm_identifier_der(self) -> bytes:
        """The DER of :meth:`algorithm_identifier`, written directly (a responder makes fresh
        parameters, a fresh salt, for every answer; pyasn1 took ~0.1 ms to encode them)."""
        h = codec.der_header
        params = (h(0x04, len(self.salt)) + self.salt + codec.algorithm_identifier_der(OWF_ALGORITHMS[self.owf][0])
                  + codec.integer_der(self.iterations) + codec.algorithm_identifier_der(MAC_ALGORITHMS[self.mac][0]))
        inner = codec.oid_der(oids.PASSWORD_BASED_MAC) + h(0x30, len(params)) + params
        return h(0x30, len(inner)) + inner

    @classmethod
    def from_asn1(cls, value: cmp.PBMParameter) -> "PBMParams":
        """Parse received parameters; unknown algorithms -> ProtectionError(badAlg)."""
        return cls._received(
            bytes(value["salt"]),
            (str(value["owf"]["algorithm"]), _params_der(value["owf"])),
            int(value["iterationCount"]),
            (str(value["mac"]["algorithm"]), _params_der(value["mac"])),
        )

    @classmethod
    def _received(
        cls, salt: bytes, owf: tuple[str, bytes | None], iterations: int, mac: tuple[str, bytes | None]
    ) -> "PBMParams":
        owf_oid, mac_oid = owf[0], mac[0]
        if owf_oid not in _OWF_BY_OID:
            raise ProtectionError(
                f"unsupported PBM one-way function {oids.oid_name(owf_oid)}",
                fail_info="badAlg",
                hint=f"supported: {', '.join(OWF_ALGORITHMS)}",
            )
        if mac_oid not in _MAC_BY_OID:
            raise ProtectionError(
                f"unsupported PBM MAC algorithm {oids.oid_name(mac_oid)}",
                fail_info="badAlg",
                hint=f"supported: {', '.join(MAC_ALGORITHMS)}",
            )
        _check_params_der_absent_or_null(owf, "PBM owf")
        _check_params_der_absent_or_null(mac, "PBM mac")
        if iterations < 1:
            raise ProtectionError(f"PBM iteration count {iterations} is not positive", fail_info="badRequest")
        return cls(salt=salt, owf=_OWF_BY_OID[owf_oid], iterations=iterations, mac=_MAC_BY_OID[mac_oid], received=True)

    @classmethod
    def from_algorithm_identifier(cls, alg: rfc5280.AlgorithmIdentifier) -> "PBMParams":
        """Parse ``protectionAlg`` when it is id-PasswordBasedMac."""
        return cls._from_alg(str(alg["algorithm"]), bytes(alg["parameters"]) if alg["parameters"].isValue else None)

    @classmethod
    def from_algorithm_identifier_der(cls, der: bytes) -> "PBMParams":
        """Like :meth:`from_algorithm_identifier`, from the AlgorithmIdentifier's DER."""
        try:
            reader = Reader(der)
            oid, params = reader.algorithm_identifier()
            reader.done()
        except NotHandled:
            alg = codec.decode(der, rfc5280.AlgorithmIdentifier(), what="protectionAlg")
            return cls.from_algorithm_identifier(alg)
        return cls._from_alg(oid, params)

    @classmethod
    def _from_alg(cls, oid: str, params: bytes | None) -> "PBMParams":
        if oid != oids.PASSWORD_BASED_MAC:
            raise ProtectionError(f"not a PasswordBasedMac: {oids.oid_name(oid)}", fail_info="badAlg")
        if params is None:
            raise ProtectionError("PasswordBasedMac without PBMParameter", fail_info="badAlg")
        return _pbm_params_from_der(params)


def _params_der(alg: rfc5280.AlgorithmIdentifier) -> bytes | None:
    return bytes(alg["parameters"]) if alg["parameters"].isValue else None


def _check_params_der_absent_or_null(alg: tuple[str, bytes | None], what: str) -> None:
    if alg[1] is not None and alg[1] != b"\x05\x00":
        raise ProtectionError(f"{what} {oids.oid_name(alg[0])} has unexpected parameters", fail_info="badAlg")


@functools.lru_cache(maxsize=64)
def _pbm_params_from_der(der: bytes) -> PBMParams:
    """PBMParameter DER -> PBMParams, memoised: checking one message reads its parameters
    several times (authentication, verification, the answer's parameters).  PBMParams is
    immutable, so sharing the result is safe.  The strict reader of
    :mod:`cmpclient.asn1.der` reads the usual encoding; anything it declines goes to the
    full decoder, which also words every error."""
    try:
        reader = Reader(der)
        seq = reader.enter(SEQUENCE)
        reader.done()
        salt = seq.octets()
        owf = seq.algorithm_identifier()
        iterations = seq.integer()
        mac = seq.algorithm_identifier()
        seq.done()
    except NotHandled:
        try:
            value = codec.decode(der, cmp.PBMParameter(), what="PBMParameter")
        except DecodeError as exc:
            raise ProtectionError(f"bad PBMParameter: {exc.message}", fail_info="badAlg") from exc
        return PBMParams.from_asn1(value)
    return PBMParams._received(salt, owf, iterations, mac)


_PBM_KEYS: dict[tuple[bytes, bytes, str, int], bytes] = {}
_PBM_KEYS_MAX = 64
_PBM_KEYS_LOCK = threading.Lock()  # the CA verifies from many threads; eviction must not race


@functools.lru_cache(maxsize=None)
def _iterated_hash(name: str) -> Callable[[bytes], "hashlib._Hash"]:
    """The constructor the PBM loop calls ``iterations`` times. For SHA-2, CPython's own
    module (``_sha2`` from 3.12, ``_sha256``/``_sha512`` before) skips OpenSSL's per-call
    EVP set-up: 500 rounds of SHA-256 take ~170 µs instead of ~200 µs here. The same
    function, the same bytes; hashlib's constructor whenever that module is absent."""
    import sys

    # (PyPy's _sha256 is pure Python: much slower than hashlib's there.)
    if name in ("sha224", "sha256", "sha384", "sha512") and sys.implementation.name == "cpython":
        import importlib

        for module in ("_sha2", "_sha256" if name in ("sha224", "sha256") else "_sha512"):
            try:
                return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
            except (ImportError, AttributeError):
                continue
    return getattr(hashlib, name)  # type: ignore[no-any-return]


def pbm_key(secret: bytes, params: PBMParams) -> bytes:
    """BASEKEY = owf applied ``iterations`` times to ``secret || salt`` (RFC 4211 §4.4).

    The last few keys are remembered: messages protected with the same parameters (a
    MACProtection keeps one salt for all its requests) then cost one HMAC, not
    ``iterations`` more hashes. Answers from servers that draw a fresh salt each time (our
    test CA, openssl's mock) still cost the full derivation. Per process, bounded (64 keys).
    """
    cache_key = (bytes(secret), params.salt, params.owf, params.iterations)
    key = _PBM_KEYS.get(cache_key)
    if key is not None:
        return key
    new_hash = _iterated_hash(OWF_ALGORITHMS[params.owf][1])
    key = cache_key[0] + params.salt
    for _ in range(params.iterations):
        key = new_hash(key).digest()
    with _PBM_KEYS_LOCK:
        while len(_PBM_KEYS) >= _PBM_KEYS_MAX:
            del _PBM_KEYS[next(iter(_PBM_KEYS))]  # the oldest
        _PBM_KEYS[cache_key] = key
    return key


def compute_pbm(secret: bytes, params: PBMParams, data: bytes) -> bytes:
    """The PasswordBasedMac value over ``data`` (the DER ProtectedPart)."""
    _require_secret(secret)
    key = pbm_key(secret, params)
    return hmac.digest(key, data, MAC_ALGORITHMS[params.mac][1])  # one-shot: OpenSSL HMAC, no Python HMAC object


def verify_pbm(
    secret: bytes,
    params: PBMParams,
    data: bytes,
    mac_value: bytes,
    *,
    max_iterations: int = DEFAULT_MAX_RECEIVED_ITERATIONS,
) -> None:
    """Check a received PasswordBasedMac; raise :class:`ProtectionError` if it is wrong.

    The iteration count is checked against ``max_iterations`` before any hashing.
    """
    check_iteration_limit("PBM", params.iterations, max_iterations)
    expected = compute_pbm(secret, params, data)
    if not hmac.compare_digest(expected, bytes(mac_value)):
        raise ProtectionError(
            f"PBM protection is wrong ({params.owf}/{params.mac}, {params.iterations} iterations)",
            hint="check the shared secret (and that it belongs to this reference/senderKID)",
        )


def check_iteration_limit(kind: str, iterations: int, limit: int) -> None:
    """Refuse to compute a peer-chosen iteration count above ``limit`` (fail_info badRequest)."""
    if iterations > limit:
        raise ProtectionError(
            f"{kind} iteration count {iterations} exceeds the limit {limit}",
            fail_info="badRequest",
            hint="raise the limit (max_pbm_iterations) if the server really uses this many",
        )


def _require_secret(secret: bytes) -> None:
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise UsageError("the MAC secret must be non-empty bytes")


# --- PBMAC1 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PBMAC1Params:
    """PBMAC1 parameters (RFC 8018 §7.1, RFC 9481 §6.1.1): PBKDF2 then HMAC.

    ``prf`` and ``mac`` are names from :data:`HMAC_SHA2_ALGORITHMS` (hmacWithSHA1..512).
    ``key_length`` defaults to the output length of ``mac``'s hash (RFC 9481 recommends a
    key as long as the MAC's hash output) and is always sent.
    """

    salt: bytes
    iterations: int
    prf: str = "hmacWithSHA256"
    mac: str = "hmacWithSHA256"
    key_length: int | None = None
    received: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "salt", _check_salt(self.salt, received=self.received))
        object.__setattr__(self, "prf", _canonical(self.prf, HMAC_SHA2_ALGORITHMS, "PBKDF2 PRF"))
        object.__setattr__(self, "mac", _canonical(self.mac, HMAC_SHA2_ALGORITHMS, "PBMAC1 MAC algorithm"))
        object.__setattr__(self, "iterations", _check_iterations(self.iterations, received=self.received))
        if self.key_length is None:
            object.__setattr__(self, "key_length", hashlib.new(HMAC_SHA2_ALGORITHMS[self.mac][1]).digest_size)
        elif isinstance(self.key_length, bool) or not isinstance(self.key_length, int) or not 1 <= self.key_length <= 1024:
            raise UsageError(f"PBKDF2 key length {self.key_length!r} is out of bounds (1..1024)")

    @classmethod
    def new(
        cls,
        *,
        prf: str = "hmacWithSHA256",
        mac: str = "hmacWithSHA256",
        iterations: int = DEFAULT_PBM_ITERATIONS,
        salt_length: int = DEFAULT_SALT_LENGTH,
        key_length: int | None = None,
    ) -> "PBMAC1Params":
        """Fresh parameters with a random salt."""
        if salt_length < MIN_SALT_LENGTH or salt_length > 1024:
            raise UsageError(f"salt length {salt_length} is out of bounds ({MIN_SALT_LENGTH}..1024)")
        return cls(salt=os.urandom(salt_length), iterations=iterations, prf=prf, mac=mac, key_length=key_length)

    def algorithm_identifier(self) -> rfc5280.AlgorithmIdentifier:
        """``{ id-PBMAC1, PBMAC1-params }`` for header.protectionAlg (PRF and MAC with NULL params, RFC 8018 B.1)."""
        from pyasn1_modules import rfc8018  # lazily: only PBMAC1 users pay for it

        kdf = rfc8018.PBKDF2_params()
        kdf["salt"]["specified"] = self.salt
        kdf["iterationCount"] = self.iterations
        kdf["keyLength"] = self.key_length
        prf_oid = HMAC_SHA2_ALGORITHMS[self.prf][0]
        if prf_oid != oids.HMAC_WITH_SHA1:  # DER: the DEFAULT value (hmacWithSHA1) is omitted
            kdf["prf"]["algorithm"] = univ.ObjectIdentifier(prf_oid)
            kdf["prf"]["parameters"] = univ.Any(b"\x05\x00")
        params = rfc8018.PBMAC1_params()
        params["keyDerivationFunc"]["algorithm"] = univ.ObjectIdentifier(oids.PBKDF2)
        params["keyDerivationFunc"]["parameters"] = univ.Any(codec.encode(kdf))
        params["messageAuthScheme"]["algorithm"] = univ.ObjectIdentifier(HMAC_SHA2_ALGORITHMS[self.mac][0])
        params["messageAuthScheme"]["parameters"] = univ.Any(b"\x05\x00")
        alg = _alg_id(oids.PBMAC1)
        alg["parameters"] = univ.Any(codec.encode(params))
        return alg

    @classmethod
    def from_algorithm_identifier(cls, alg: rfc5280.AlgorithmIdentifier) -> "PBMAC1Params":
        """Parse ``protectionAlg`` when it is id-PBMAC1."""
        from pyasn1_modules import rfc8018

        if str(alg["algorithm"]) != oids.PBMAC1:
            raise ProtectionError(f"not PBMAC1: {oids.oid_name(alg['algorithm'])}", fail_info="badAlg")
        if not alg["parameters"].isValue:
            raise ProtectionError("PBMAC1 without parameters", fail_info="badAlg")
        try:
            params = codec.decode(bytes(alg["parameters"]), rfc8018.PBMAC1_params(), what="PBMAC1-params")
            kdf_alg = params["keyDerivationFunc"]
            if str(kdf_alg["algorithm"]) != oids.PBKDF2:
                raise ProtectionError(
                    f"unsupported PBMAC1 key derivation {oids.oid_name(kdf_alg['algorithm'])}; only PBKDF2",
                    fail_info="badAlg",
                )
            if not kdf_alg["parameters"].isValue:
                raise ProtectionError("PBKDF2 without parameters", fail_info="badAlg")
            kdf = codec.decode(bytes(kdf_alg["parameters"]), rfc8018.PBKDF2_params(), what="PBKDF2-params")
        except DecodeError as exc:
            raise ProtectionError(f"bad PBMAC1 parameters: {exc.message}", fail_info="badAlg") from exc
        if kdf["salt"].getName() != "specified":
            raise ProtectionError("PBKDF2 salt 'otherSource' is not supported", fail_info="badAlg")
        prf_oid = str(kdf["prf"]["algorithm"]) if kdf["prf"].isValue else oids.HMAC_WITH_SHA1
        mac_oid = str(params["messageAuthScheme"]["algorithm"])
        for oid, what in ((prf_oid, "PBKDF2 PRF"), (mac_oid, "PBMAC1 MAC algorithm")):
            if oid not in _HMAC2_BY_OID:
                raise ProtectionError(
                    f"unsupported {what} {oids.oid_name(oid)}",
                    fail_info="badAlg",
                    hint=f"supported: {', '.join(HMAC_SHA2_ALGORITHMS)}",
                )
        if kdf["prf"].isValue:
            _check_params_absent_or_null(kdf["prf"], "PBKDF2 PRF")
        _check_params_absent_or_null(params["messageAuthScheme"], "PBMAC1 MAC")
        iterations = int(kdf["iterationCount"])
        key_length = int(kdf["keyLength"]) if kdf["keyLength"].isValue else None
        if key_length is not None and not 1 <= key_length <= 1024:
            raise ProtectionError(f"PBKDF2 key length {key_length} is out of bounds", fail_info="badRequest")
        return cls(
            salt=bytes(kdf["salt"]["specified"]),
            iterations=iterations,
            prf=_HMAC2_BY_OID[prf_oid],
            mac=_HMAC2_BY_OID[mac_oid],
            key_length=key_length,
            received=True,
        )


def pbmac1_key(secret: bytes, params: PBMAC1Params) -> bytes:
    """PBKDF2(prf, secret, salt, iterations, keyLength) via cryptography."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    hash_cls = {
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }[HMAC_SHA2_ALGORITHMS[params.prf][1]]
    assert params.key_length is not None
    kdf = PBKDF2HMAC(algorithm=hash_cls(), length=params.key_length, salt=params.salt, iterations=params.iterations)
    return kdf.derive(bytes(secret))


def compute_pbmac1(secret: bytes, params: PBMAC1Params, data: bytes) -> bytes:
    """The PBMAC1 value over ``data``."""
    _require_secret(secret)
    return hmac.digest(pbmac1_key(secret, params), data, HMAC_SHA2_ALGORITHMS[params.mac][1])


def verify_pbmac1(
    secret: bytes,
    params: PBMAC1Params,
    data: bytes,
    mac_value: bytes,
    *,
    max_iterations: int = DEFAULT_MAX_RECEIVED_ITERATIONS,
) -> None:
    """Check a received PBMAC1 value; raise :class:`ProtectionError` if it is wrong."""
    check_iteration_limit("PBMAC1", params.iterations, max_iterations)
    expected = compute_pbmac1(secret, params, data)
    if not hmac.compare_digest(expected, bytes(mac_value)):
        raise ProtectionError(
            f"PBMAC1 protection is wrong ({params.prf}/{params.mac}, {params.iterations} iterations)",
            hint="check the shared secret (and that it belongs to this reference/senderKID)",
        )
