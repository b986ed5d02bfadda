"""Trust decisions for signature-protected messages: is this signer acceptable?

Why an explicit chain walk instead of ``cryptography.x509.verification``: its
``ClientVerifier``/``ServerVerifier`` implement the CA/Browser-Forum web-PKI profile
(EKU serverAuth/clientAuth, SAN requirements, a fixed list of signature algorithms and key
sizes).  CMP signer certificates -- a CA's or RA's protection certificate, id-kp-cmcRA,
no SAN, Ed448 or ML-DSA keys -- do not fit that profile.  What openssl's CMP code checks
(X509_verify_cert with the default purpose plus keyUsage digitalSignature on the signer)
is small enough to state here:

* the signer is valid at ``at_time`` and, when it has keyUsage, asserts digitalSignature;
* each issuer is found by subject == issuer name (and SKI == AKI keyIdentifier when both
  are present), among the trust anchors first, then extraCerts/untrusted;
* each signature verifies (``Certificate.verify_directly_issued_by``);
* every certificate is within its validity period at ``at_time``;
* intermediates have basicConstraints cA=TRUE (pathLenConstraint honoured) and, when they
  have keyUsage, keyCertSign; a trust anchor acting as issuer must not *deny* being a CA;
* the walk ends at a certificate in ``trusted``.

Revocation is not checked here (no CRL/OCSP yet).  A ``pinned`` certificate (openssl's
``-srvcert``) replaces chain building: the signer must be exactly that certificate and it
is trusted directly, even if expired (openssl documents the same), but keyUsage is checked.
"""

from __future__ import annotations

import datetime
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from cmpclient.errors import TrustError

#: Longest chain we build (signer + intermediates + anchor).
MAX_CHAIN_LENGTH = 10


def load_der_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate from a message, with the fields cryptography parses lazily
    (names, public key, extensions, validity) checked now: a malformed one raises
    ValueError here instead of deep inside a chain or signature check (issue #6 fuzzing).
    An unsupported key algorithm is not malformed and stays for the caller to judge."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:
        raise ValueError(f"malformed certificate: {exc}") from exc
    try:
        cert.subject, cert.issuer, cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
        cert.extensions  # noqa: B018
        try:
            cert.public_key()
        except UnsupportedAlgorithm:
            pass
    except (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise ValueError(f"malformed certificate: {exc}") from exc
    return cert


def describe(cert: x509.Certificate) -> str:
    """A short human name for a certificate: its subject (and serial when the subject is empty)."""
    subject = cert.subject.rfc4514_string()
    return subject if subject else f"<empty subject, serial {cert.serial_number:#x}>"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # malformed extensions
        raise TrustError(f"certificate '{describe(cert)}' has malformed extensions: {exc}") from exc


def subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The SubjectKeyIdentifier extension's value, if present."""
    ski = _ext(cert, x509.SubjectKeyIdentifier)
    return ski.digest if ski is not None else None  # type: ignore[attr-defined]


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    return aki.key_identifier if aki is not None else None  # type: ignore[attr-defined]


def _check_validity(cert: x509.Certificate, at_time: datetime.datetime, role: str) -> None:
    if at_time < cert.not_valid_before_utc:
        raise TrustError(
            f"{role} certificate '{describe(cert)}' is not yet valid (notBefore {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC)",
            hint="check the system clock of both sides",
        )
    if at_time > cert.not_valid_after_utc:
        raise TrustError(
            f"{role} certificate '{describe(cert)}' has expired (notAfter {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)",
            hint="renew the certificate, or check the system clock",
        )


def check_signer_key_usage(cert: x509.Certificate) -> None:
    """The signer must assert digitalSignature when it has a keyUsage extension (openssl demands it)."""
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None and not ku.digital_signature:  # type: ignore[attr-defined]
        raise TrustError(
            f"signer certificate '{describe(cert)}' has keyUsage without digitalSignature",
            hint="the CMP signer needs keyUsage digitalSignature; issue a suitable protection certificate",
        )


def _check_issuer_capability(cert: x509.Certificate, *, anchor: bool, below: int) -> None:
    """``cert`` is used to issue another certificate, with ``below`` intermediates under it."""
    bc = _ext(cert, x509.BasicConstraints)
    ku = _ext(cert, x509.KeyUsage)
    role = "trust anchor" if anchor else "intermediate"
    if bc is None:
        if not anchor:
            raise TrustError(
                f"intermediate certificate '{describe(cert)}' has no basicConstraints, so it is not a CA",
                hint="only CA certificates may issue; pass the right CA chain with --untrusted/--trusted",
            )
    else:
        if not bc.ca:  # type: ignore[attr-defined]
            raise TrustError(
                f"{role} certificate '{describe(cert)}' is not a CA (basicConstraints cA=FALSE) but issued another certificate",
                hint="only CA certificates may issue; pass the right CA chain with --untrusted/--trusted",
            )
        path_len = bc.path_length  # type: ignore[attr-defined]
        if path_len is not None and below > path_len:
            raise TrustError(f"{role} certificate '{describe(cert)}' allows pathLenConstraint {path_len} but {below} CA certificate(s) follow it")
    if ku is not None and not ku.key_cert_sign:  # type: ignore[attr-defined]
        raise TrustError(f"{role} certificate '{describe(cert)}' has keyUsage without keyCertSign but issued another certificate")


def _may_have_issued(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    if issuer.subject != cert.issuer:
        return False
    aki = _authority_key_id(cert)
    ski = subject_key_identifier(issuer)
    return aki is None or ski is None or aki == ski


def _signature_ok(issuer: x509.Certificate, cert: x509.Certificate) -> str | None:
    """``None`` when ``issuer`` signed ``cert``, else why not."""
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return f"the signature of '{describe(cert)}' does not verify with the key of '{describe(issuer)}'"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"'{describe(issuer)}' cannot have issued '{describe(cert)}': {exc}"
    return None


def _unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    out: list[x509.Certificate] = []
    for cert in certs:
        der = _der(cert)
        if der not in seen:
            seen.add(der)
            out.append(cert)
    return out


def verify_signer(
    signer_cert: x509.Certificate,
    *,
    extra_certs: Sequence[x509.Certificate] = (),
    trusted: Sequence[x509.Certificate] | None = None,
    pinned: x509.Certificate | None = None,
    untrusted: Sequence[x509.Certificate] = (),
    at_time: datetime.datetime | None = None,
    require_key_usage: bool = True,
) -> list[x509.Certificate]:
    """Check that ``signer_cert`` may protect CMP messages; return the chain (signer first).

    With ``pinned`` the chain is ``[pinned]`` and the signer must be that certificate.
    Otherwise the chain runs from the signer through ``extra_certs``/``untrusted`` to a
    certificate in ``trusted`` (which ends the chain).  Raises :class:`TrustError`.
    """
    now = at_time or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)

    if pinned is not None:
        if _der(pinned) != _der(signer_cert):
            raise TrustError(
                f"the message is signed by '{describe(signer_cert)}', not by the pinned certificate '{describe(pinned)}'",
                hint="check --srvcert, or use --trusted to accept any certificate issued by the CA",
            )
        if require_key_usage:
            check_signer_key_usage(pinned)
        return [pinned]

    if not trusted:
        raise TrustError(
            f"cannot check the signer '{describe(signer_cert)}': no trust anchor is configured",
            hint="pass the CA certificate with --trusted (or pin the server certificate with --srvcert)",
        )

    if require_key_usage:
        check_signer_key_usage(signer_cert)
    _check_validity(signer_cert, now, "signer")

    anchors = _unique(trusted)
    anchor_ders = {_der(c) for c in anchors}
    if _der(signer_cert) in anchor_ders:
        return [signer_cert]  # directly trusted signer
    pool = [c for c in _unique([*extra_certs, *untrusted]) if _der(c) not in anchor_ders]

    chain = [signer_cert]
    failures: list[str] = []
    current = signer_cert
    while len(chain) < MAX_CHAIN_LENGTH:
        in_chain = {_der(c) for c in chain}
        below = len(chain) - 1  # CA certificates already under the next issuer
        # Trust anchors first: the shortest trusted chain wins.
        for candidate in anchors:
            if not _may_have_issued(candidate, current):
                continue
            why = _signature_ok(candidate, current)
            if why:
                failures.append(why)
                continue
            _check_issuer_capability(candidate, anchor=True, below=below)
            _check_validity(candidate, now, "trust anchor")
            chain.append(candidate)
            return chain
        next_cert = None
        for candidate in pool:
            if _der(candidate) in in_chain or not _may_have_issued(candidate, current):
                continue
            why = _signature_ok(candidate, current)
            if why:
                failures.append(why)
                continue
            next_cert = candidate
            break
        if next_cert is None:
            detail = f" ({'; '.join(failures)})" if failures else ""
            raise TrustError(
                f"signer '{describe(signer_cert)}' does not chain to a trusted certificate: "
                f"no trusted or intermediate certificate issued '{describe(current)}' "
                f"(issuer '{current.issuer.rfc4514_string()}'){detail}",
                hint="pass the CA certificate with --trusted (and intermediates with --untrusted)",
            )
        if next_cert.subject == next_cert.issuer and _signature_ok(next_cert, next_cert) is None:
            # A self-signed certificate from extraCerts is a root the user did not trust.
            raise TrustError(
                f"signer '{describe(signer_cert)}' chains to the root '{describe(next_cert)}', which is not trusted",
                hint="pass that root CA certificate with --trusted if you trust it",
            )
        _check_issuer_capability(next_cert, anchor=False, below=below)
        _check_validity(next_cert, now, "intermediate")
        chain.append(next_cert)
        current = next_cert
    raise TrustError(
        f"signer '{describe(signer_cert)}': no trusted certificate within {MAX_CHAIN_LENGTH} chain links",
        hint="pass the CA certificate with --trusted",
    )
