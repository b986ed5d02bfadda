"""Revocation check of a request's signer against a CRL, with a cache.

The CRL comes from a file (DER or PEM) or an http(s) URL (fetched by
:func:`cmpclient.proxy.upstream.fetch_url`, with a timeout and a size limit). A fetched CRL
is reused for ``ttl`` seconds, and never past its nextUpdate. Each check verifies that the
CRL was issued *and signed* by the signer's issuer before looking the serial number up.

Outcomes, as the proxy's error table needs them:

* :class:`CertificateRevoked` -- the signer's serial is on the CRL (answer badRequest);
* :class:`RevocationUnavailable` -- the check is impossible: the CRL cannot be read or
  fetched, does not parse, is not from the signer's issuer, has a bad signature, or is
  past its nextUpdate (answer systemUnavail);
* :class:`CRLCacheFailure` -- the cache itself failed unexpectedly (answer systemUnavail).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography import x509

from cmpclient.errors import CMPClientError, ExitCode, TrustError

__all__ = ["CRLCache", "CertificateRevoked", "RevocationUnavailable", "CRLCacheFailure", "load_crl", "check_revocation"]

log = logging.getLogger("cmpclient.proxy")


class RevocationUnavailable(CMPClientError):
    """The signer's revocation status cannot be established."""

    exit_code = ExitCode.TRANSPORT
    fail_info = "systemUnavail"


class CRLCacheFailure(RevocationUnavailable):
    """The CRL cache failed (an unexpected error while loading or storing a CRL)."""


class CertificateRevoked(TrustError):
    """The signer's certificate is on its issuer's CRL."""

    fail_info = "certRevoked"


def load_crl(data: bytes, source: str) -> x509.CertificateRevocationList:
    """Parse a DER or PEM CRL (RevocationUnavailable when it is neither)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise RevocationUnavailable(f"CRL from {source} does not parse: {exc}") from None


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise RevocationUnavailable(f"cannot read the CRL file {path!r}: {exc.strerror or exc}") from None


def _default_fetch(source: str) -> bytes:
    if source.lower().startswith(("http://", "https://")):
        from cmpclient.proxy.upstream import fetch_url

        try:
            return fetch_url(source)
        except CMPClientError as exc:
            raise RevocationUnavailable(f"cannot fetch the CRL: {exc.message}") from None
    return _read_file(source)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass
class _Entry:
    crl: x509.CertificateRevocationList
    expires: float  # monotonic deadline


class CRLCache:
    """CRLs by source, reused for ``ttl`` seconds (and never past nextUpdate).

    ``fetch(source) -> bytes`` loads a CRL (default: file path or http(s) URL); ``clock``
    and ``now`` are injectable for tests. One lock serialises loading, so concurrent
    requests do not fetch the same CRL many times.
    """

    def __init__(
        self,
        fetch: Callable[[str], bytes] = _default_fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._now = now
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.fetches = 0  #: how many times a CRL was loaded (tests and logs)

    def get(self, source: str, ttl: float) -> x509.CertificateRevocationList:
        try:
            with self._lock:
                entry = self._entries.get(source)
                if entry is not None and self._clock() < entry.expires and not self._stale(entry.crl):
                    return entry.crl
                self.fetches += 1
                crl = load_crl(self._fetch(source), source)
                if self._stale(crl):
                    self._entries.pop(source, None)
                    raise RevocationUnavailable(
                        f"the CRL from {source} expired at {crl.next_update_utc} (nextUpdate); no current CRL",
                    )
                self._entries[source] = _Entry(crl, self._clock() + ttl)
                log.info("CRL from %s loaded: %d entries, next update %s", source, len(crl), crl.next_update_utc)
                return crl
        except RevocationUnavailable:
            raise
        except Exception as exc:
            log.exception("CRL cache failure for %s", source)
            raise CRLCacheFailure(f"CRL cache failure for {source}: {type(exc).__name__}: {exc}") from None

    def _stale(self, crl: x509.CertificateRevocationList) -> bool:
        next_update = crl.next_update_utc
        return next_update is not None and next_update < self._now()


def check_revocation(
    cache: CRLCache, source: str, ttl: float, signer: x509.Certificate, issuer: x509.Certificate | None
) -> None:
    """Raise unless ``signer`` is verifiably not on its issuer's CRL at ``source``."""
    if issuer is None:
        raise RevocationUnavailable(
            f"the issuer of '{signer.subject.rfc4514_string()}' is not in the issuer chain: its CRL cannot be verified"
        )
    crl = cache.get(source, ttl)
    if crl.issuer != issuer.subject:
        raise RevocationUnavailable(
            f"the CRL from {source} is issued by '{crl.issuer.rfc4514_string()}', "
            f"not by the signer's issuer '{issuer.subject.rfc4514_string()}'"
        )
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise RevocationUnavailable(f"cannot verify the CRL from {source}: {exc}") from None
    if not valid:
        raise RevocationUnavailable(f"the CRL from {source} is not signed by '{issuer.subject.rfc4514_string()}'")
    entry = crl.get_revoked_certificate_by_serial_number(signer.serial_number)
    if entry is not None:
        raise CertificateRevoked(
            f"the signer '{signer.subject.rfc4514_string()}' (serial {signer.serial_number:x}) was revoked "
            f"on {entry.revocation_date_utc:%Y-%m-%d %H:%M:%SZ}"
        )
