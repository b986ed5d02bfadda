"""Protecting outgoing PKIMessages and verifying the protection of received ones.

The message layer and the client use two protection objects with one interface::

    algorithm_identifier() -> AlgorithmIdentifier   # goes into header.protectionAlg
    sender_kid() -> bytes | None                    # header.senderKID when the header has none
    extra_certs() -> list[bytes]                    # DER, signer first
    compute(protected_part_der: bytes) -> bytes     # the PKIProtection value

:func:`protect_message` returns a **new** PKIMessage (the input is left untouched), and
:func:`verify_protection` checks a received message over the exact received bytes of its
ProtectedPart (``codec.protected_part``), never over a re-encoding.

Verification dispatches on the protectionAlg OID through :data:`_MAC_VERIFIERS` (MAC
algorithms) and otherwise treats the OID as a signature algorithm; KEM-based MAC
(RFC 9810 §5.1.3.4, :mod:`.kem`) is one entry there and needs ``kem_secret``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.lazy import cmp, rfc5280, univ
from cmpclient.errors import KeyLoadError, ProtectionError, UsageError
from cmpclient.protection import mac as _mac
from cmpclient.protection import signature as _sig
from cmpclient.protection.trust import describe, load_der_certificate, subject_key_identifier, verify_signer

if TYPE_CHECKING:
    from cmpclient.message.parse import ParsedMessage


class MACProtection:
    """Shared-secret protection: PasswordBasedMac (default) or PBMAC1.

    ``params`` defaults to fresh :meth:`PBMParams.new` parameters (random salt).
    ``sender_kid`` is the reference the CA knows the secret by (openssl ``-ref``).
    """

    kind = "mac"

    def __init__(
        self,
        secret: bytes,
        params: Union[_mac.PBMParams, _mac.PBMAC1Params, None] = None,
        sender_kid: bytes | None = None,
    ) -> None:
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            raise UsageError("the MAC secret must be non-empty bytes", hint="pass the shared secret with --secret")
        if params is not None and not isinstance(params, (_mac.PBMParams, _mac.PBMAC1Params)):
            raise UsageError(f"MAC parameters must be PBMParams or PBMAC1Params, got {type(params).__name__}")
        if sender_kid is not None and not isinstance(sender_kid, (bytes, bytearray)):
            raise UsageError("sender_kid must be bytes")
        self._secret = bytes(secret)
        self.params = params if params is not None else _mac.PBMParams.new()
        self._alg_der: tuple[object, bytes] | None = None
        self._sender_kid = bytes(sender_kid) if sender_kid is not None else None

    def __repr__(self) -> str:  # never show the secret
        return f"MACProtection(params={self.params!r}, sender_kid={self._sender_kid!r})"

    @property
    def secret(self) -> bytes:
        """The shared secret (also used to verify MAC-protected responses)."""
        return self._secret

    def algorithm_identifier(self) -> rfc5280.AlgorithmIdentifier:
        """id-PasswordBasedMac or id-PBMAC1 with their parameters."""
        return self.params.algorithm_identifier()

    def algorithm_identifier_der(self) -> bytes:
        """The DER of :meth:`algorithm_identifier`, made once per parameters (every message
        this protection signs carries the same parameters)."""
        cached = self._alg_der
        if cached is None or cached[0] is not self.params:
            if isinstance(self.params, _mac.PBMParams):
                der = self.params.algorithm_identifier_der()
            else:
                der = codec.encode(self.params.algorithm_identifier())
            cached = self._alg_der = (self.params, der)
        return cached[1]

    def sender_kid(self) -> bytes | None:
        """The reference value for header.senderKID."""
        return self._sender_kid

    def extra_certs(self) -> list[bytes]:
        """MAC protection adds no certificates."""
        return []

    def compute(self, protected_part_der: bytes) -> bytes:
        """The MAC over the DER ProtectedPart."""
        if isinstance(self.params, _mac.PBMParams):
            return _mac.compute_pbm(self._secret, self.params, protected_part_der)
        return _mac.compute_pbmac1(self._secret, self.params, protected_part_der)


class SignatureProtection:
    """Signature protection with ``private_key``, announcing ``cert`` (and ``chain``) in extraCerts."""

    kind = "signature"

    def __init__(
        self,
        private_key: _sig.PrivateKey,
        cert: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
        digest: str = "sha256",
        rsa_pss: bool = False,
    ) -> None:
        if not isinstance(cert, x509.Certificate):
            raise UsageError(f"cert must be a cryptography Certificate, got {type(cert).__name__}")
        self._alg = _sig.signature_algorithm(private_key, digest, rsa_pss)
        pub = private_key.public_key()
        if pub != cert.public_key():
            # The key material is unusable (exit 3, "key, certificate ... unusable"), not
            # the command line (2).
            raise KeyLoadError(
                f"the private key does not belong to the certificate '{describe(cert)}'",
                hint="pass the key that matches --cert",
            )
        self.private_key = private_key
        self.cert = cert
        self.chain = list(chain)

    def algorithm_identifier(self) -> rfc5280.AlgorithmIdentifier:
        """The signature AlgorithmIdentifier (see :func:`signature.signature_algorithm`)."""
        return _sig._alg(str(self._alg["algorithm"]), _sig._params_der(self._alg))

    def sender_kid(self) -> bytes | None:
        """The certificate's SubjectKeyIdentifier, if it has one (RFC 9483 §3.1)."""
        return subject_key_identifier(self.cert)

    def extra_certs(self) -> list[bytes]:
        """DER certificates: the signer first, then the chain (without duplicates)."""
        out: list[bytes] = []
        for cert in [self.cert, *self.chain]:
            der = cert.public_bytes(Encoding.DER)
            if der not in out:
                out.append(der)
        return out

    def compute(self, protected_part_der: bytes) -> bytes:
        """The signature over the DER ProtectedPart."""
        return _sig.sign(self.private_key, self._alg, protected_part_der)


Protection = Union[MACProtection, SignatureProtection]


def _copy_alg(src: rfc5280.AlgorithmIdentifier, dst: rfc5280.AlgorithmIdentifier) -> None:
    # header.protectionAlg is an explicitly tagged AlgorithmIdentifier: fill its components
    # instead of assigning a differently tagged object.
    dst["algorithm"] = src["algorithm"]
    if src["parameters"].isValue:
        dst["parameters"] = univ.Any(bytes(src["parameters"]))


def header_protection_alg(protection: Protection) -> bytes | rfc5280.AlgorithmIdentifier:
    """``protection``'s protectionAlg for :meth:`HeaderBuilder.protection_alg`: its DER
    when the protection writes it itself (MAC protection: the same bytes, without pyasn1),
    else the pyasn1 value."""
    der = getattr(protection, "algorithm_identifier_der", None)
    return der() if der is not None else protection.algorithm_identifier()


def protect_der(
    header_der: bytes,
    body_der: bytes,
    protection: Protection | None,
    extra_certs: Sequence[bytes] = (),
) -> bytes:
    """The DER of a PKIMessage from the DER of its header and body, protected.

    The header must already carry protectionAlg (and senderKID) for ``protection``.  The
    protection is computed over ``SEQUENCE { header, body }`` made of exactly these bytes,
    and the message is assembled as bytes: nothing is re-encoded (pyasn1 encoding is the
    dominant cost of building a message).  ``extraCerts`` are the protection's certificates
    first, then ``extra_certs`` not among them.  ``protection=None`` gives an unprotected
    message.
    """
    inner = header_der + body_der
    parts = [inner]
    if protection is not None:
        value = protection.compute(codec.der_header(0x30, len(inner)) + inner)
        bits = b"\x00" + value
        bit_string = codec.der_header(0x03, len(bits)) + bits
        parts.append(codec.der_header(0xA0, len(bit_string)) + bit_string)
    certs: list[bytes] = list(protection.extra_certs()) if protection is not None else []
    for der in extra_certs:
        if der not in certs:
            certs.append(bytes(der))
    if certs:
        seq = b"".join(certs)
        seq = codec.der_header(0x30, len(seq)) + seq
        parts.append(codec.der_header(0xA1, len(seq)) + seq)
    content = b"".join(parts)
    return codec.der_header(0x30, len(content)) + content


def protect_message(message: cmp.PKIMessage, protection: Protection) -> cmp.PKIMessage:
    """Return a **new** protected copy of ``message``; ``message`` itself is not modified.

    Sets header.protectionAlg, header.senderKID (only when the header has none and the
    protection has one), computes the protection over DER(ProtectedPart) and sets
    ``protection`` and ``extraCerts`` (the protection's certificates first, then the
    message's existing extraCerts that are not among them).  Code that only needs the
    bytes should build the header with protectionAlg and use :func:`protect_der`.
    """
    header = codec.decode(codec.encode(message["header"]), cmp.PKIHeader(), what="PKIHeader", strict=False)
    _copy_alg(protection.algorithm_identifier(), header["protectionAlg"])
    kid = protection.sender_kid()
    if kid is not None and not header["senderKID"].isValue:
        header["senderKID"] = header["senderKID"].clone(kid)
    existing = [codec.any_der(c) for c in message["extraCerts"]] if message["extraCerts"].isValue else []
    der = protect_der(codec.encode(header), codec.encode(message["body"]), protection, existing)
    return codec.decode(der, cmp.PKIMessage(), what="PKIMessage", strict=False)


@dataclass(frozen=True)
class VerifiedProtection:
    """What verification established: the kind, the algorithm and, for signatures, who signed."""

    kind: str  #: "mac" or "signature"
    algorithm: str  #: e.g. "passwordBasedMac/sha256/hmacWithSHA256", "ecdsa-with-SHA256"
    signer_cert: x509.Certificate | None = None
    chain: list[x509.Certificate] = field(default_factory=list)


@dataclass
class _Context:
    load_message: Callable[[], cmp.PKIMessage]
    protected: bytes
    value: bytes
    secret: bytes | None
    trusted: Sequence[x509.Certificate] | None
    pinned: x509.Certificate | None
    untrusted: Sequence[x509.Certificate]
    max_pbm_iterations: int
    require_key_usage: bool
    at_time: datetime.datetime | None
    kem_secret: bytes | None = None

    _message: cmp.PKIMessage | None = None
    # protectionAlg as the reader that got it has it (DER from the fast reader, a pyasn1
    # value from the full decoder; one of the two is always given); the other form is made
    # only if a verifier needs it.
    _alg: rfc5280.AlgorithmIdentifier | None = None
    _alg_der: bytes | None = None

    @property
    def message(self) -> cmp.PKIMessage:
        """The pyasn1 message: MAC verification of a fast-read message never needs it."""
        if self._message is None:
            self._message = self.load_message()
        return self._message

    @property
    def alg(self) -> rfc5280.AlgorithmIdentifier:
        if self._alg is None:
            self._alg = codec.decode(self.alg_der, rfc5280.AlgorithmIdentifier(), what="protectionAlg", strict=False)
        return self._alg

    @property
    def alg_der(self) -> bytes:
        if self._alg_der is None:
            self._alg_der = codec.encode(self.alg)
        return self._alg_der


def _need_secret(ctx: _Context, name: str) -> bytes:
    if not ctx.secret:
        raise ProtectionError(
            f"the message is MAC-protected ({name}) but no shared secret is configured",
            hint="pass the shared secret with --secret (or use --trusted/--srvcert for signed responses)",
        )
    return ctx.secret


def _verify_pbm(ctx: _Context) -> VerifiedProtection:
    params = _mac.PBMParams.from_algorithm_identifier_der(ctx.alg_der)
    # Refuse an excessive peer-chosen count first: it is a cheap check and names the real problem.
    _mac.check_iteration_limit("PBM", params.iterations, ctx.max_pbm_iterations)
    secret = _need_secret(ctx, "passwordBasedMac")
    _mac.verify_pbm(secret, params, ctx.protected, ctx.value, max_iterations=ctx.max_pbm_iterations)
    return VerifiedProtection("mac", f"passwordBasedMac/{params.owf}/{params.mac}")


def _verify_pbmac1(ctx: _Context) -> VerifiedProtection:
    params = _mac.PBMAC1Params.from_algorithm_identifier(ctx.alg)
    _mac.check_iteration_limit("PBMAC1", params.iterations, ctx.max_pbm_iterations)
    secret = _need_secret(ctx, "pbmac1")
    _mac.verify_pbmac1(secret, params, ctx.protected, ctx.value, max_iterations=ctx.max_pbm_iterations)
    return VerifiedProtection("mac", f"pbmac1/{params.prf}/{params.mac}")


def _unsupported_mac(ctx: _Context) -> VerifiedProtection:
    raise ProtectionError(
        f"{oids.oid_name(ctx.alg['algorithm'])} protection is not supported yet",
        fail_info="badAlg",
        hint="use passwordBasedMac, PBMAC1 or signature protection",
    )


def _verify_kem_mac(ctx: _Context) -> VerifiedProtection:
    from cmpclient.protection import kem as _kem

    params = _kem.KemBMParams.from_algorithm_identifier(ctx.alg)  # unsupported KDF/MAC -> badAlg first
    if not ctx.kem_secret:
        raise ProtectionError(
            "the message is protected with a KEM-based MAC but no KEM shared secret is established",
            hint="a KEM-based MAC follows a genm/genp KemCiphertextInfo exchange in the same transaction",
        )
    tid = ctx.message["header"]["transactionID"]
    _kem.verify_kem_mac(ctx.kem_secret, ctx.alg, bytes(tid) if tid.isValue else b"", ctx.protected, ctx.value)
    return VerifiedProtection("mac", params.describe())


#: protectionAlg OID -> verifier for MAC-based protection; anything else is a signature.
_MAC_VERIFIERS: dict[str, Callable[[_Context], VerifiedProtection]] = {
    oids.PASSWORD_BASED_MAC: _verify_pbm,
    oids.PBMAC1: _verify_pbmac1,
    oids.KEM_BASED_MAC: _verify_kem_mac,
    oids.DH_BASED_MAC: _unsupported_mac,
}


def _load_extra_certs(message: cmp.PKIMessage) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    if not message["extraCerts"].isValue:
        return certs
    for i, item in enumerate(message["extraCerts"]):
        try:
            certs.append(load_der_certificate(codec.any_der(item)))
        except ValueError as exc:
            raise ProtectionError(f"extraCerts[{i}] is not a valid X.509 certificate: {exc}", fail_info="badDataFormat") from exc
    return certs


def _verify_signature(ctx: _Context) -> VerifiedProtection:
    scheme = _sig.parse_signature_algorithm(ctx.alg)  # unsupported -> badAlg before anything else
    extra = _load_extra_certs(ctx.message)
    header = ctx.message["header"]
    kid = bytes(header["senderKID"]) if header["senderKID"].isValue else None

    if ctx.pinned is not None:
        # Pinned (openssl -srvcert): only that key counts, whatever extraCerts say.
        _sig.verify(ctx.pinned.public_key(), ctx.alg, ctx.protected, ctx.value)  # type: ignore[arg-type]
        chain = verify_signer(ctx.pinned, pinned=ctx.pinned, require_key_usage=ctx.require_key_usage)
        return VerifiedProtection("signature", scheme.name, ctx.pinned, chain)

    candidates = extra + [c for c in ctx.untrusted if c not in extra]
    if kid is not None:
        # senderKID names the signer's SKI; certificates without SKI stay candidates.
        candidates = [c for c in candidates if subject_key_identifier(c) in (kid, None)]
    if not candidates:
        raise ProtectionError(
            "the message is signed but carries no certificate to verify it with"
            + (f" (no extraCert has SKI {kid.hex()} = senderKID)" if kid is not None else ""),
            hint="pin the server certificate with --srvcert, or pass it with --untrusted",
        )
    signer = None
    last_error: ProtectionError | None = None
    for cert in candidates:
        try:
            _sig.verify(cert.public_key(), ctx.alg, ctx.protected, ctx.value)  # type: ignore[arg-type]
        except ProtectionError as exc:
            last_error = exc
            continue
        except UnsupportedAlgorithm as exc:  # an extraCert whose key type we cannot use
            last_error = ProtectionError(f"unsupported key in '{describe(cert)}': {exc}", fail_info="badAlg")
            continue
        signer = cert
        break
    if signer is None:
        raise ProtectionError(
            f"{scheme.name} signature does not verify with any of the {len(candidates)} candidate certificate(s)"
            + (f": {last_error.message}" if last_error else ""),
            hint="the message was modified in transit, or it was signed by a key whose certificate is not in extraCerts",
        )
    chain = verify_signer(
        signer,
        extra_certs=extra,
        trusted=ctx.trusted,
        pinned=None,
        untrusted=ctx.untrusted,
        at_time=ctx.at_time,
        require_key_usage=ctx.require_key_usage,
    )
    return VerifiedProtection("signature", scheme.name, signer, chain)


def verify_protection(
    message_der: bytes,
    message: "cmp.PKIMessage | ParsedMessage | None" = None,
    *,
    secret: bytes | None = None,
    trusted: Sequence[x509.Certificate] | None = None,
    pinned: x509.Certificate | None = None,
    untrusted: Sequence[x509.Certificate] = (),
    max_pbm_iterations: int = _mac.DEFAULT_MAX_RECEIVED_ITERATIONS,
    require_key_usage: bool = True,
    at_time: datetime.datetime | None = None,
    kem_secret: bytes | None = None,
) -> VerifiedProtection:
    """Verify the protection of a received message; raise ProtectionError/TrustError.

    ``message_der`` are the received bytes (the protection is checked over their exact
    ProtectedPart); ``message`` is its decoded form (a pyasn1 PKIMessage or the
    :class:`~cmpclient.message.parse.ParsedMessage` of those bytes), decoded here when not
    given.
    MAC protection needs ``secret``; signature protection needs ``pinned`` (the signer is
    then that certificate) or ``trusted`` anchors (the signer is the first extraCert,
    preferring those whose SKI matches senderKID, whose key verifies the signature; its
    chain is built through extraCerts and ``untrusted``).  A KEM-based MAC needs the
    ``kem_secret`` established by the KemCiphertextInfo exchange.
    """
    from cmpclient.message.parse import ParsedMessage

    def check(load_message: Callable[[], cmp.PKIMessage], alg_oid: str, value: bytes, *,
              alg: rfc5280.AlgorithmIdentifier | None = None, alg_der: bytes | None = None) -> VerifiedProtection:
        ctx = _Context(
            load_message=load_message, protected=codec.protected_part(bytes(message_der)), value=value,
            secret=secret, trusted=trusted, pinned=pinned, untrusted=list(untrusted),
            max_pbm_iterations=max_pbm_iterations, require_key_usage=require_key_usage, at_time=at_time,
            kem_secret=kem_secret, _alg=alg, _alg_der=alg_der,
        )
        return _MAC_VERIFIERS.get(alg_oid, _verify_signature)(ctx)

    if isinstance(message, ParsedMessage):
        parsed = message
        if parsed.protection_alg_der is not None and parsed.protection_value is not None:
            # Read by the fast reader: protectionAlg and the value are at hand; the pyasn1
            # value is decoded only if a signature check needs it.
            return check(lambda: parsed.message, parsed.header.protection_alg or "", parsed.protection_value,
                         alg_der=parsed.protection_alg_der)
        message = parsed.message
    if message is None:
        message = codec.decode(message_der, cmp.PKIMessage(), what="PKIMessage")
    if not message["protection"].isValue:
        raise ProtectionError(
            "message is not protected",
            hint="the peer sent an unprotected message; it may be an error answer -- look at its body",
        )
    header = message["header"]
    if not header["protectionAlg"].isValue:
        raise ProtectionError("message has protection but its header has no protectionAlg", fail_info="badAlg")
    bits = message["protection"]
    if len(bits) % 8:
        raise ProtectionError(f"protection BIT STRING has {len(bits)} bits, not whole octets", fail_info="badDataFormat")
    alg = rfc5280.AlgorithmIdentifier()
    _copy_alg(header["protectionAlg"], alg)
    decoded = message
    return check(lambda: decoded, str(alg["algorithm"]), bits.asOctets(), alg=alg)


__all__ = [
    "MACProtection",
    "SignatureProtection",
    "Protection",
    "VerifiedProtection",
    "protect_message",
    "verify_protection",
]
