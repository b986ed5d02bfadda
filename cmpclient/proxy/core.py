"""The CMP proxy's pure core: ``Proxy.handle(alias, der) -> (http_status, body, content_type)``.

No sockets here: the upstream is any ``send(alias, der) -> bytes`` (the production one is
:class:`cmpclient.proxy.upstream.Upstream`), so every rule below is testable with a
recording fake. The WSGI adapter (:mod:`.wsgi`) and the TCP listener (:mod:`.serve`)
are thin edges around :meth:`Proxy.handle`.

Error table (EJBCA's CMP Proxy; every refusal is decided *before* forwarding, so a
rejected message never reaches the upstream). "CMP error" = HTTP 200 with an unprotected
PKIMessage, body ``error``, status rejection, the failInfo below and a statusString that
says what failed; its header answers the request (transactionID, recipNonce = senderNonce,
sender/recipient swapped) when the request could be decoded.

=============================================  ====================================
body is not a DER PKIMessage                   CMP error badRequest
unknown alias                                  HTTP 404 (the WSGI layer: before the body)
required protection missing                    CMP error badRequest
MAC verification failed (incl. no key)         CMP error badRequest
signature verification / chain failed          CMP error badRequest
no signing certificate (no extraCerts)         CMP error badRequest
signer revoked                                 CMP error badRequest
revocation check impossible                    CMP error systemUnavail
CRL cache failure                              CMP error systemUnavail
no issuer chains configured                    CMP error systemUnavail
upstream timeout                               CMP error systemUnavail
no answer from the upstream (connection        HTTP 500
refused/reset, TCP framing, non-CMP 200)
the upstream answers non-200                   that answer, unchanged (status, body, type)
=============================================  ====================================

Both protection kinds on: a request may use either (a MAC checked with the KeyID's
secret, or a signature checked against the issuer chain and, if set, the CRL).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from cmpclient.asn1 import oids
from cmpclient.errors import CMPClientError, DecodeError, ExitCode, HTTPStatusError, ProtectionError, TransportError, TransportTimeout
from cmpclient.proxy.config import AliasPolicy, ProxyConfig, load_issuer_chain
from cmpclient.proxy.revocation import CRLCache, check_revocation
from cmpclient.transport import redact_url

__all__ = ["Proxy", "ProxyRefusal", "CMP_CONTENT_TYPE", "TEXT_CONTENT_TYPE", "Send"]

log = logging.getLogger("cmpclient.proxy")

CMP_CONTENT_TYPE = "application/pkixcmp"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_MAC_OIDS = frozenset({oids.PASSWORD_BASED_MAC, oids.PBMAC1, oids.KEM_BASED_MAC, oids.DH_BASED_MAC})

#: ``send(alias, der) -> der``: the upstream, as the core sees it.
Send = Callable[[str, bytes], bytes]
Answer = tuple[int, bytes, str]


class ProxyRefusal(CMPClientError):
    """The proxy will not forward this request; answered with an unprotected CMP error."""

    exit_code = ExitCode.REJECTED


def _bad(text: str) -> ProxyRefusal:
    return ProxyRefusal(text, fail_info="badRequest")


def _unavailable(text: str) -> ProxyRefusal:
    return ProxyRefusal(text, fail_info="systemUnavail")


class Proxy:
    """Validate per alias, forward to the upstream, return its answer unchanged."""

    def __init__(self, config: ProxyConfig, send: Send, *, crl_cache: CRLCache | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.config = config
        self._send = send
        self.crl_cache = crl_cache or CRLCache()
        self._on_close = on_close

    def close(self) -> None:
        """Release what forwarding holds (the production upstream's connections and thread)."""
        if self._on_close is not None:
            self._on_close()

    # -- what the adapters call -------------------------------------------------------------
    def alias_exists(self, alias: str) -> bool:
        return self.config.policy(alias) is not None

    def handle(self, alias: str, der: bytes) -> Answer:
        """Answer one request: ``(http_status, body, content_type)``; never raises."""
        policy = self.config.policy(alias)
        if policy is None:
            return 404, f"unknown CMP alias {alias!r}\n".encode(), TEXT_CONTENT_TYPE
        msg = None
        try:
            msg = _decode(der)
            self.validate(policy, der, msg)
        except ProxyRefusal as refusal:
            log.info("alias %s: refused before forwarding (%s): %s", alias, refusal.fail_info, refusal.message)
            return 200, error_answer(msg, refusal.fail_info, refusal.message), CMP_CONTENT_TYPE
        except Exception:
            log.exception("alias %s: internal error while checking a request", alias)
            return 500, b"internal error in the CMP proxy; see its log\n", TEXT_CONTENT_TYPE
        return self._forward(policy, alias, der, msg)

    # -- forwarding ---------------------------------------------------------------------------
    def _forward(self, policy: AliasPolicy, alias: str, der: bytes, msg: Any) -> Answer:
        try:
            answer = self._send(alias, der)
        except TransportTimeout as exc:
            log.warning("alias %s: upstream %s timed out: %s", alias, redact_url(policy.upstream), exc.message)
            return 200, error_answer(msg, "systemUnavail", f"the CA did not answer in time ({exc.message})"), CMP_CONTENT_TYPE
        except HTTPStatusError as exc:
            if exc.status is not None and exc.status != 200:
                # The upstream's own answer (404 unknown alias, 400, 503 ...), passed on unchanged.
                return exc.status, exc.body, exc.content_type or TEXT_CONTENT_TYPE
            log.error("alias %s: upstream %s answered no CMP message: %s", alias, redact_url(policy.upstream), exc.message)
            return 500, b"the CA sent no CMP answer\n", TEXT_CONTENT_TYPE
        except TransportError as exc:
            log.error("alias %s: no answer from upstream %s: %s", alias, redact_url(policy.upstream), exc.message)
            return 500, b"no answer from the CA\n", TEXT_CONTENT_TYPE
        except Exception:
            log.exception("alias %s: forwarding to %s failed", alias, redact_url(policy.upstream))
            return 500, b"no answer from the CA\n", TEXT_CONTENT_TYPE
        return 200, answer, CMP_CONTENT_TYPE

    # -- validation ---------------------------------------------------------------------------
    def validate(self, policy: AliasPolicy, der: bytes, msg: Any) -> None:
        """Raise :class:`ProxyRefusal` unless the alias' checks pass (nothing when none are on)."""
        if not policy.checks:
            return
        header = msg["header"]
        if not msg["protection"].isValue or not header["protectionAlg"].isValue:
            raise _bad(f"required protection missing: alias {policy.name!r} requires {policy.describe()}")
        if str(header["protectionAlg"]["algorithm"]) in _MAC_OIDS:
            if not policy.require_mac:
                raise _bad(f"required protection missing: alias {policy.name!r} requires a signature, not a MAC")
            self._verify_mac(policy, der, msg)
        else:
            if not policy.require_signature:
                raise _bad(f"required protection missing: alias {policy.name!r} requires a MAC, not a signature")
            self._verify_signature(policy, der, msg)

    def _verify_mac(self, policy: AliasPolicy, der: bytes, msg: Any) -> None:
        from cmpclient.protection import verify_protection

        key_ids = _key_ids(msg["header"])
        key_id = next((k for k in key_ids if k in policy.mac_keys), None)
        if key_id is None:
            shown = " or ".join(repr(k) for k in key_ids) or "none (no senderKID, no recipient CN)"
            raise _bad(f"MAC verification failed: no key for KeyID {shown}")
        try:
            verify_protection(der, msg, secret=policy.mac_keys[key_id], max_pbm_iterations=policy.max_pbm_iterations)
        except (ProtectionError, DecodeError) as exc:
            raise _bad(f"MAC verification failed (KeyID {key_id!r}): {exc.message}") from None

    def _verify_signature(self, policy: AliasPolicy, der: bytes, msg: Any) -> None:
        from cmpclient.protection import verify_protection

        chain = load_issuer_chain(policy.issuer_chain)
        if not chain:
            raise _unavailable(f"no issuer chains configured for alias {policy.name!r}")
        if not msg["extraCerts"].isValue or len(msg["extraCerts"]) == 0:
            raise _bad("no signing certificate: the signed request carries no extraCerts")
        try:
            verified = verify_protection(der, msg, trusted=chain, untrusted=chain, require_key_usage=policy.require_key_usage)
        except (ProtectionError, DecodeError) as exc:
            raise _bad(f"signature verification failed: {exc.message}") from None
        if policy.crl is None:
            return
        signer = verified.signer_cert
        assert signer is not None
        issuer = next((c for c in [*verified.chain[1:], *chain] if c.subject == signer.issuer), None)
        try:
            check_revocation(self.crl_cache, policy.crl, policy.crl_cache_ttl, signer, issuer)
        except ProtectionError as exc:  # CertificateRevoked
            raise _bad(f"signer revoked: {exc.message}") from None
        except CMPClientError as exc:  # RevocationUnavailable, CRLCacheFailure
            raise _unavailable(f"revocation check impossible: {exc.message}") from None


def _decode(der: bytes) -> Any:
    from cmpclient.message.pkimessage import decode_message

    try:
        return decode_message(der, strict=True)
    except (DecodeError, CMPClientError) as exc:
        raise _bad(f"not a valid CMP message: {exc.message}") from None


def _key_ids(header: Any) -> list[str]:
    """KeyIDs to look the MAC secret up by: senderKID, then the recipient's CN (the CA name)."""
    from cryptography.x509.oid import NameOID

    from cmpclient.message.names import asn1_to_name

    ids: list[str] = []
    if header["senderKID"].isValue:
        ids.append(bytes(header["senderKID"]).decode("utf-8", "replace"))
    recipient = header["recipient"]
    try:
        if recipient.getName() == "directoryName":
            for attr in asn1_to_name(recipient["directoryName"]).get_attributes_for_oid(NameOID.COMMON_NAME):
                if attr.value not in ids:
                    ids.append(str(attr.value))
    except (DecodeError, ValueError):
        pass
    return ids


def error_answer(request: Any, fail_info: str, text: str) -> bytes:
    """An unprotected CMP error (status rejection, ``fail_info``) answering ``request``."""
    from cmpclient.asn1 import codec
    from cmpclient.message.body import error_body
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.pkimessage import assemble, encode_message

    hb = HeaderBuilder().sender("").recipient("")
    req_header = request["header"] if request is not None else None
    if req_header is not None:
        if int(req_header["pvno"]) == 3:
            hb = hb.pvno(3)
        if req_header["transactionID"].isValue and len(req_header["transactionID"]):
            hb = hb.transaction_id(bytes(req_header["transactionID"]))
        if req_header["senderNonce"].isValue:
            hb = hb.recip_nonce(bytes(req_header["senderNonce"]))
    header = hb.build()
    if req_header is not None:
        # Answer as the CA the client addressed, to the client that asked.
        for ours, theirs in (("sender", "recipient"), ("recipient", "sender")):
            spec = header.componentType[ours].asn1Object
            header[ours] = codec.value_from_der(spec, codec.encode(req_header[theirs]))
    return encode_message(assemble(header, error_body("rejection", fail_info=[fail_info], texts=[text])))
