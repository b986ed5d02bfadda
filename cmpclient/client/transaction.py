"""One CMP transaction: header bookkeeping, protection, and every check on the response.

A :class:`Transaction` owns one transactionID.  Each :meth:`Transaction.exchange` sends a
body with a fresh senderNonce (and the previous response's senderNonce as recipNonce),
then checks the answer: pvno, transactionID, recipNonce, sender, protection and body
type.  An ``error`` body becomes :class:`~cmpclient.errors.CMPErrorMessage`.

Leniency for imperfect servers is explicit and named (:class:`Leniency`), off by default,
and logged each time it is used.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from cryptography import x509

from cmpclient.asn1 import oids
from cmpclient.errors import CMPClientError, CMPErrorMessage, ProtectionError, ProtocolError
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import ErrorContent, ParsedMessage, parse_message
from cmpclient.message.peek import peek, transaction_continues
from cmpclient.asn1 import codec
from cmpclient.asn1.lazy import cmp
from cmpclient.transport import deadline, end_transaction

log = logging.getLogger("cmpclient.client")

#: Bodies that are always acceptable answers besides the expected ones.
_ALWAYS_ACCEPTED = ("error",)


@dataclass(frozen=True)
class Leniency:
    """Named switches that relax checks for servers known to deviate (all off by default).

    * ``unprotected_errors`` -- accept error messages and rejections without protection
      (EJBCA sends them; openssl's ``-unprotected_errors``).
    * ``missing_recip_nonce`` -- accept a response without recipNonce.
    * ``accept_pvno1`` -- accept pvno 1 (cmp1999) responses.
    * ``ignore_key_usage`` -- do not demand keyUsage digitalSignature on the server's signer
      certificate (openssl's ``-ignore_keyusage``).
    """

    unprotected_errors: bool = False
    missing_recip_nonce: bool = False
    accept_pvno1: bool = False
    ignore_key_usage: bool = False


@dataclass
class ClientConfig:
    """Everything a transaction needs; shared by all operations.

    ``transport`` is any object with ``send(bytes) -> bytes``.  ``protection`` is a
    :class:`cmpclient.protection.MACProtection` or ``SignatureProtection`` (or None for
    unprotected requests).  Responses are verified with ``secret`` (defaults to the MAC
    protection's secret), or by signature against ``trusted`` anchors or a pinned
    ``server_cert``.
    """

    transport: Any
    protection: Any = None
    sender: x509.Name | str | None = None
    recipient: x509.Name | str = ""
    pvno: int = 2
    secret: bytes | None = None
    trusted: Sequence[x509.Certificate] = ()
    untrusted: Sequence[x509.Certificate] = ()
    server_cert: x509.Certificate | None = None
    expect_sender: x509.Name | str | None = None
    implicit_confirm: bool = False
    total_timeout: float | None = None  #: seconds for a whole transaction; None or 0: no limit
    max_pbm_iterations: int = 10_000
    extra_certs: Sequence[bytes] = ()
    lenient: Leniency = field(default_factory=Leniency)
    #: Called with (direction, der) for every message sent ("request") and received ("response").
    on_message: Callable[[str, bytes], None] | None = None
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] | None = None

    def sender_name(self) -> x509.Name | str:
        if self.sender is not None:
            return self.sender
        cert = getattr(self.protection, "cert", None)
        if cert is not None:
            return cert.subject
        return ""

    def response_secret(self) -> bytes | None:
        if self.secret is not None:
            return self.secret
        return getattr(self.protection, "secret", None)


class Transaction:
    """One transactionID's worth of messages with one server."""

    def __init__(self, config: ClientConfig, *, transaction_id: bytes | None = None):
        self.config = config
        self.transaction_id = transaction_id or os.urandom(16)
        #: total_timeout as a time.monotonic() deadline: every send of the transaction ends by it
        self.deadline = time.monotonic() + config.total_timeout if config.total_timeout else None
        self.last_response: ParsedMessage | None = None
        self._last_sender_nonce: bytes | None = None
        self.pvno_used = config.pvno
        #: Accept an unprotected (positive) answer to the next exchange only: RFC 9810's
        #: KEM-based MAC flow (the genp carrying the KEM ciphertext may be unprotected).
        self.accept_unprotected_once = False

    # --- sending --------------------------------------------------------------------------
    def build_request(
        self,
        body: cmp.PKIBody | bytes,
        *,
        implicit_confirm: bool = False,
        recip_nonce: bytes | None = None,
        general_info: Sequence[tuple[str, bytes | None]] = (),
    ) -> tuple[bytes, bytes]:
        """Header + body, protected and DER-encoded; returns (der, senderNonce).

        ``body`` is a PKIBody or its DER (``as_der=True`` from :mod:`cmpclient.message.body`);
        the message is assembled as bytes (:func:`cmpclient.protection.protect_der`).
        """
        cfg = self.config
        nonce = os.urandom(16)
        hb = (
            HeaderBuilder()
            .pvno(cfg.pvno)
            .sender(cfg.sender_name())
            .recipient(cfg.recipient)
            .transaction_id(self.transaction_id)
            .sender_nonce(nonce)
        )
        previous = recip_nonce if recip_nonce is not None else (
            self.last_response.header.sender_nonce if self.last_response else None
        )
        if previous:
            hb = hb.recip_nonce(previous)
        if implicit_confirm:
            hb = hb.implicit_confirm()
        for oid, der in general_info:
            hb = hb.general_info(oid, der)
        from cmpclient.protection import header_protection_alg, protect_der

        if cfg.protection is not None:
            hb = hb.protection_alg(header_protection_alg(cfg.protection))
            kid = cfg.protection.sender_kid()
            if kid:
                hb = hb.sender_kid(kid)
        body_der = body if isinstance(body, (bytes, bytearray)) else codec.encode(body)
        return protect_der(hb.build_der(), bytes(body_der), cfg.protection, list(cfg.extra_certs)), nonce

    def exchange(
        self,
        body: cmp.PKIBody | bytes,
        expect: Sequence[str],
        *,
        implicit_confirm: bool = False,
        general_info: Sequence[tuple[str, bytes | None]] = (),
        continues: bool | None = None,
    ) -> ParsedMessage:
        """Send ``body``, check the answer, return it.  ``expect`` lists the body types
        that are a valid answer (``error`` is always accepted and raised).  ``continues``
        says whether the transaction goes on after a good answer (None: decided from the
        answer, see :func:`_may_continue`); when it does not, the transport drops its
        connection."""
        der, nonce = self.build_request(body, implicit_confirm=implicit_confirm, general_info=general_info)
        return self.send_der(der, nonce, expect, continues=continues)

    def send_der(self, der: bytes, sender_nonce: bytes | None, expect: Sequence[str], *,
                 continues: bool | None = None) -> ParsedMessage:
        cfg = self.config
        if cfg.on_message:
            cfg.on_message("request", der)
        goes_on = False
        try:
            next_saved = getattr(cfg.transport, "next_saved_request", None)
            upcoming = next_saved() if next_saved is not None else None
            # --reqin: a saved request that cannot be checked is refused before it goes out
            adopted = self._adopt_saved_request(upcoming) if upcoming is not None else None
            with deadline(self.deadline):
                raw = cfg.transport.send(der)
            saved = getattr(cfg.transport, "replaced_request", None)
            if saved is not None:  # --reqin: the answer is to that request, not to ``der``
                sender_nonce = adopted if saved is upcoming else self._adopt_saved_request(saved)
            if cfg.on_message:
                cfg.on_message("response", raw)
            response = parse_message(raw)
            self.check_response(response, sender_nonce, expect)
            self.last_response = response
            self._last_sender_nonce = sender_nonce
            if response.body_type == "error":
                raise error_from(response, peek(saved if saved is not None else der).body_type)
            goes_on = _may_continue(response) if continues is None else continues
        finally:
            if not goes_on:  # also after any failure, an HTTP error included
                end_transaction(cfg.transport)
        return response

    def _adopt_saved_request(self, saved: bytes) -> bytes | None:
        """A saved request went out instead of the built one (openssl's -reqin): check the
        answer against its transactionID and senderNonce, and carry its transactionID on
        (a certConf built next belongs to that transaction).  Returns its senderNonce."""
        try:
            header = parse_message(saved).header
        except CMPClientError as exc:
            raise ProtocolError(f"the saved request (reqin) is not a usable PKIMessage: {exc}",
                                hint="give a file written by --reqout or openssl cmp -reqout") from exc
        if header.transaction_id is None or header.sender_nonce is None:
            what = "transactionID" if header.transaction_id is None else "senderNonce"
            raise ProtocolError(f"the saved request (reqin) has no {what}: its answer could not be checked",
                                hint="give a file written by --reqout or openssl cmp -reqout")
        if header.transaction_id != self.transaction_id:
            log.info("the saved request carries transactionID %s; the transaction goes on with it",
                     _hex(header.transaction_id))
            self.transaction_id = header.transaction_id
        return header.sender_nonce

    # --- checking ---------------------------------------------------------------------------
    def check_response(self, rsp: ParsedMessage, sender_nonce: bytes | None, expect: Sequence[str]) -> None:
        cfg, h = self.config, rsp.header
        lenient = cfg.lenient
        # Protection first: nothing else in an unauthenticated message can be trusted.
        self._check_protection(rsp)
        if h.pvno not in (2, 3):
            if h.pvno == 1 and lenient.accept_pvno1:
                log.warning("leniency accept_pvno1: accepting a pvno 1 (cmp1999) response")
            else:
                raise ProtocolError(
                    f"unsupported pvno {h.pvno} in the response (we sent {self.pvno_used})",
                    fail_info="unsupportedVersion",
                )
        if h.transaction_id != self.transaction_id:
            raise ProtocolError(
                "the response's transactionID does not match the request's "
                f"({_hex(h.transaction_id)} != {_hex(self.transaction_id)})",
                fail_info="badRequest",
                hint="the server mixed up transactions, or a proxy returned a stale answer",
            )
        if sender_nonce is not None and h.recip_nonce != sender_nonce:
            if h.recip_nonce is None and lenient.missing_recip_nonce:
                log.warning("leniency missing_recip_nonce: accepting a response without recipNonce")
            else:
                what = "is missing" if h.recip_nonce is None else "does not match our senderNonce"
                raise ProtocolError(
                    f"the response's recipNonce {what}",
                    fail_info="badRecipientNonce",
                    hint="a replayed or misrouted response; --missing-recip-nonce accepts a missing one" if h.recip_nonce is None else None,
                )
        if cfg.expect_sender is not None:
            from cmpclient.message.names import parse_dn

            want = parse_dn(cfg.expect_sender)
            if h.sender_name != want:
                raise ProtocolError(
                    f"unexpected response sender {h.sender!r}, expected {want.rfc4514_string()!r}",
                    fail_info="wrongAuthority",
                )
        if rsp.body_type not in expect and rsp.body_type not in _ALWAYS_ACCEPTED:
            raise ProtocolError(
                f"unexpected response body {rsp.body_type}, expected " + " or ".join(expect),
                fail_info="badRequest",
            )

    def _check_protection(self, rsp: ParsedMessage) -> None:
        cfg = self.config
        if not rsp.protected and self.accept_unprotected_once and not _is_negative(rsp):
            self.accept_unprotected_once = False
            log.info("accepting an unprotected %s (KEM ciphertext exchange, RFC 9810 §5.1.3.4)", rsp.body_type)
            return
        if not rsp.protected:
            if _is_negative(rsp):
                if cfg.lenient.unprotected_errors:
                    log.warning("leniency unprotected_errors: accepting an unprotected %s", rsp.body_type)
                    return
                if cfg.protection is None and not self.accept_unprotected_once:
                    # We sent no protection ourselves: that is the likely reason for the error.
                    hint = ("our request was not protected (no --authparam/--secret and --keyid, or --cert and "
                            "--key, were given): give the credentials the CA expects; --unprotected-errors "
                            "shows its answer")
                else:
                    hint = "EJBCA sends errors unprotected; add --unprotected-errors to accept them"
                raise ProtectionError(f"the server sent an unprotected {rsp.body_type} message",
                                      hint=hint + _unauthenticated_summary(rsp))
            raise ProtectionError(
                f"the {rsp.body_type} response is not protected",
                hint="the server must protect its responses with a MAC or a signature",
            )
        from cmpclient.protection import verify_protection

        # After an unprotected genp (RFC 9810 allows it) a KEM-based MAC proves nothing about
        # who sent the ciphertext: the server's answers must then be signed.
        kem_secret = getattr(cfg.protection, "kem_shared_secret", None)
        if kem_secret is not None and not getattr(cfg.protection, "peer_authenticated", True):
            kem_secret = None
            if _protection_oid(rsp) == oids.KEM_BASED_MAC:
                raise ProtectionError(
                    f"the {rsp.body_type} is protected with the KEM-based MAC, but the genp that delivered the "
                    "KEM ciphertext was unprotected, so that MAC does not show who answered",
                    fail_info="wrongIntegrity",
                    hint="the server must sign its answers after an unprotected genp (RFC 9810 §5.1.3.4); "
                    "give --trusted/--srvcert",
                )
        verified = verify_protection(
            rsp.der,
            rsp,
            secret=cfg.response_secret(),
            trusted=list(cfg.trusted) or None,
            pinned=cfg.server_cert,
            untrusted=list(cfg.untrusted),
            max_pbm_iterations=cfg.max_pbm_iterations,
            require_key_usage=not cfg.lenient.ignore_key_usage,
            kem_secret=kem_secret,
        )
        signer = getattr(verified, "signer_cert", None)
        if signer is not None and rsp.header.sender_name is not None and rsp.header.sender_name != signer.subject:
            raise ProtectionError(
                f"the response's sender {rsp.header.sender!r} is not the subject of its signer "
                f"certificate ({signer.subject.rfc4514_string()!r})",
                fail_info="wrongIntegrity",
            )


def _may_continue(rsp: ParsedMessage) -> bool:
    """Whether more messages of this transaction can follow ``rsp`` (certConf after a
    certificate answer without implicit confirmation, pollReq after pollRep)."""
    return transaction_continues(rsp.body_type, rsp.header.implicit_confirm)


def _hex(value: bytes | None) -> str:
    return value.hex() if value is not None else "absent"


def _protection_oid(rsp: ParsedMessage) -> str | None:
    return rsp.header.protection_alg


def _is_negative(rsp: ParsedMessage) -> bool:
    """An error body, or a response whose every status is a rejection."""
    from cmpclient.message.parse import CertRepContent, RevRepContent

    if rsp.body_type == "error":
        return True
    content = rsp.content
    if isinstance(content, CertRepContent):
        return bool(content.responses) and all(r.status.status == "rejection" for r in content.responses)
    if isinstance(content, RevRepContent):
        return all(s.status == "rejection" for s in content.statuses)
    return False


def _unauthenticated_summary(rsp: ParsedMessage) -> str:
    from cmpclient.message.parse import CertRepContent, RevRepContent

    content = rsp.content
    status = None
    if isinstance(content, ErrorContent):
        status = content.status
    elif isinstance(content, CertRepContent) and content.responses:
        status = content.responses[0].status
    elif isinstance(content, RevRepContent) and content.statuses:
        status = content.statuses[0]
    return f" (unauthenticated content: {status})" if status is not None else ""


def error_from(rsp: ParsedMessage, request: str | None = None) -> CMPErrorMessage:
    """The exception for a received ``error`` body; ``request``: the body type of the
    request it answers (for the hint)."""
    content = rsp.content
    assert isinstance(content, ErrorContent)
    st = content.status
    return CMPErrorMessage(
        "the server answered with an error message",
        status=st.status,
        fail_info_names=st.fail_info,
        status_strings=st.texts,
        error_code=content.error_code,
        error_details=content.error_details,
        hint=hint_for(st.fail_info, request),
    )


_HINTS = {
    "badMessageCheck": "the protection did not verify at the server: check the shared secret (--secret) or reference (--ref), or the signing certificate",
    "badRequest": "the server refused the request; its statusString says why",
    "notAuthorized": "the server does not allow this sender to do this operation",
    "badPOP": "the proof of possession failed",
    "signerNotTrusted": "the server does not trust the certificate that signed the request",
    "badCertTemplate": "the certificate template was not acceptable (subject, key type, extensions)",
    "badAlg": "the server does not support the algorithm used",
    "incorrectData": "the server rejected the request's data, e.g. an unknown end entity or wrong password",
    "unsupportedVersion": "try --pvno 2",
    "badRecipientNonce": "the server saw an unexpected nonce: start a new transaction",
    "badSenderNonce": "the server saw an unexpected nonce: start a new transaction",
    "transactionIdInUse": "start a new transaction (a new transactionID)",
    "certRevoked": "the certificate is already revoked",
    "badCertId": "the server does not know that certificate (issuer/serial)",
    "systemUnavail": "the server is unavailable; try later",
}


_ENROLMENT = ("ir", "cr", "kur", "ccr")
#: Hints that depend on the request a failInfo answers: (failInfo, request body type).
_REQUEST_HINTS = {
    **{("badPOP", kind): "the proof of possession failed: check that the key signing the request matches "
       "the requested public key (or use another --popo method)" for kind in _ENROLMENT},
    ("badPOP", "p10cr"): "the proof of possession failed: the PKCS#10 request's signature must verify with its "
                         "own public key (sign the CSR with the key it names)",
    ("badPOP", "certConf"): "the certConf did not prove possession of the new key (indirect POPO: the certificate "
                            "hash of the decrypted certificate); the CA may have revoked the certificate",
    ("badPOP", "rr"): "the server did not accept the revocation as coming from the certificate's holder: sign the "
                      "rr with the key of the certificate to revoke (--cert/--key of that certificate), or with "
                      "credentials the CA allows to revoke it (an RA)",
    ("badCertTemplate", "rr"): "the certificate details of the revocation request (issuer, serial number) were "
                               "not acceptable",
    ("badCertId", "certConf"): "the server does not know the certificate being confirmed (certReqId or "
                               "certificate hash): the transaction may have ended or expired",
    ("badCertId", "kur"): "the server does not know the certificate to update (oldCertID: issuer/serial)",
    ("certRevoked", "kur"): "the certificate to update (or the one signing the request) is revoked: enrol anew "
                            "with ir/cr",
    **{("certRevoked", kind): "the certificate signing the request is revoked"
       for kind in ("ir", "cr", "p10cr", "genm", "certConf")},
}


def hint_for(fail_info: Sequence[str], request: str | None = None) -> str | None:
    """The hint for the first failInfo that has one; ``request`` (the body type of the
    request answered: ``rr``, ``ir``, ``certConf`` ...) chooses the wording where the same
    failInfo means something else for another request (badPOP of an rr is no enrolment
    matter)."""
    for name in fail_info:
        if request is not None and (name, request) in _REQUEST_HINTS:
            return _REQUEST_HINTS[(name, request)]
        if name in _HINTS:
            return _HINTS[name]
    return None
