"""Nested messages (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2): an RA forwards requests it
checked inside a PKIMessage with a ``nested`` body, protected with its own credentials.

* :func:`wrap_in_nested` -- inner DERs + RA protection -> the DER of the nested request;
* :func:`unwrap_response` -- a received answer -> the inner responses (nested ones unwrapped);
* :func:`send_nested` -- wrap, send, and check each answer against its inner request;
* :class:`NestingTransport` -- a transport adapter doing both for every message, so any
  operation can go through an RA without changing its transaction logic.

The CA answers either with a plain response to the inner request (EJBCA and the bundled
test CA do this for one inner message) or with a nested response that carries it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from cmpclient.errors import CMPRejection, DecodeError, ProtocolError, UsageError
from cmpclient.transport import end_transaction

log = logging.getLogger("cmpclient.client")

#: The nesting depth the test CA (and we) accept; RFC 9810 sets no limit, EJBCA uses 15 as well.
MAX_NESTING_DEPTH = 15


# ------------------------------------------------------------------------- library part


def _nesting_depth(der: bytes, limit: int = MAX_NESTING_DEPTH) -> int:
    """How many nested levels ``der`` has (0 for a plain message)."""
    from cmpclient.message.pkimessage import body_type, decode_message, nested_messages

    depth, todo = 0, [bytes(der)]
    while todo:
        if depth > limit:
            return depth
        next_level: list[bytes] = []
        for item in todo:
            msg = decode_message(item, strict=False)
            if body_type(msg) == "nested":
                next_level.extend(nested_messages(msg))
        if not next_level:
            return depth
        depth += 1
        todo = next_level
    return depth


def wrap_in_nested(
    inner_der_list: Sequence[bytes],
    ra_protection: Any,
    *,
    sender: Any = None,
    recipient: Any = None,
    pvno: int | None = None,
    transaction_id: bytes | None = None,
    sender_nonce: bytes | None = None,
    extra_certs: Sequence[bytes] = (),
    implicit_confirm: bool = False,
) -> bytes:
    """The DER of a PKIMessage whose ``nested`` body carries ``inner_der_list`` unchanged.

    ``ra_protection`` is a :class:`~cmpclient.protection.SignatureProtection` (the RA's
    key and certificate; the usual case) or a ``MACProtection``; None leaves the outer
    message unprotected (only for tests: no CA accepts that).

    Header defaults: sender = the RA certificate's subject (NULL-DN for MAC), recipient =
    the first inner message's recipient, pvno = the highest inner pvno, a fresh random
    senderNonce, and the transactionID of the inner message when there is exactly one (so
    the answer matches whether the CA replies plainly or nested), else a fresh one.
    """
    from cmpclient.asn1 import cmp
    from cmpclient.message.body import nested_body
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.pkimessage import assemble, decode_message, encode_message

    if not inner_der_list:
        raise UsageError("nothing to wrap: give at least one request")
    inner = [bytes(d) for d in inner_der_list]
    headers: list[cmp.PKIHeader] = []
    for i, der in enumerate(inner):
        try:
            headers.append(decode_message(der)["header"])
        except DecodeError as exc:
            raise DecodeError(f"inner message {i + 1}: {exc.message}", hint=exc.hint) from exc
        if _nesting_depth(der) >= MAX_NESTING_DEPTH:
            raise UsageError(f"inner message {i + 1} is already nested {MAX_NESTING_DEPTH} levels deep")
    if sender is None:
        cert = getattr(ra_protection, "cert", None)
        sender = cert.subject if cert is not None else ""
    hb = HeaderBuilder().pvno(pvno or max(int(h["pvno"]) for h in headers)).sender(sender)
    if recipient is None:
        from cmpclient.message.parse import read_header

        first = read_header(headers[0])
        hb = hb.recipient(first.recipient_name if first.recipient_name is not None else "")
    else:
        hb = hb.recipient(recipient)
    if transaction_id is None and len(inner) == 1 and headers[0]["transactionID"].isValue:
        transaction_id = bytes(headers[0]["transactionID"])
    hb = hb.transaction_id(transaction_id or os.urandom(16)).sender_nonce(sender_nonce or os.urandom(16))
    if implicit_confirm:
        hb = hb.implicit_confirm()
    if ra_protection is not None:
        hb = hb.protection_alg(ra_protection.algorithm_identifier())
        kid = ra_protection.sender_kid()
        if kid:
            hb = hb.sender_kid(kid)
    msg = assemble(hb.build(), nested_body(inner), extra_certs=list(extra_certs))
    if ra_protection is not None:
        from cmpclient.protection import protect_message

        msg = protect_message(msg, ra_protection)
    return encode_message(msg)


def unwrap_response(raw: bytes, *, max_depth: int = MAX_NESTING_DEPTH) -> list[bytes]:
    """The inner responses of a nested answer (recursively), or ``[raw]`` for a plain one.

    Only the structure is handled here; checking protection and IDs is the caller's job
    (:func:`check_answers`, or the Transaction behind :class:`NestingTransport`).
    """
    from cmpclient.message.pkimessage import body_type, decode_message, nested_messages

    out: list[bytes] = []

    def visit(der: bytes, depth: int) -> None:
        if depth > max_depth:
            raise ProtocolError(f"the response is nested deeper than {max_depth} levels")
        msg = decode_message(der)
        if body_type(msg) != "nested":
            out.append(der)
            return
        for item in nested_messages(msg):
            visit(item, depth + 1)

    visit(bytes(raw), 0)
    return out


@dataclass
class Exchange:
    """One inner request and its checked answer."""

    request: Any  # ParsedMessage
    response: Any = None  # ParsedMessage


@dataclass
class NestedResult:
    """What :func:`send_nested` established."""

    request_der: bytes
    response_der: bytes
    response_nested: bool
    exchanges: list[Exchange] = field(default_factory=list)


def _expected_bodies(request_body: str) -> list[str]:
    from cmpclient.message.body import RESPONSE_FOR

    expected = RESPONSE_FOR.get(request_body)
    if expected is None:
        return []
    extra = ["pollRep"] if request_body in ("ir", "cr", "kur", "p10cr", "ccr") else []
    return [expected, *extra]


def send_nested(config: Any, inner_der_list: Sequence[bytes], **wrap_kw: Any) -> NestedResult:
    """Wrap, send with ``config.transport``, check and return the answers.

    ``config`` is a :class:`~cmpclient.client.ClientConfig`: ``protection`` is the RA's,
    trust and leniency settings check the responses.  Every answer must belong to an inner
    request: its transactionID, and a recipNonce equal to that request's senderNonce.
    """
    from cmpclient.client.transaction import Transaction
    from cmpclient.message.parse import parse_message

    inner = [parse_message(bytes(d)) for d in inner_der_list]
    wrap_kw.setdefault("sender", config.sender)
    if config.recipient:
        wrap_kw.setdefault("recipient", config.recipient)
    if config.pvno and config.pvno != 2:
        wrap_kw.setdefault("pvno", config.pvno)
    wrap_kw.setdefault("extra_certs", list(config.extra_certs))
    outer_der = wrap_in_nested([m.der for m in inner], config.protection, **wrap_kw)
    outer = parse_message(outer_der)
    if config.on_message:
        config.on_message("request", outer_der)
    raw = config.transport.send(outer_der)
    if config.on_message:
        config.on_message("response", raw)
    rsp = parse_message(raw)
    result = NestedResult(outer_der, raw, rsp.body_type == "nested")
    exchanges = {m.header.transaction_id: Exchange(m) for m in inner}
    if rsp.body_type == "nested":
        Transaction(config, transaction_id=outer.header.transaction_id).check_response(
            rsp, outer.header.sender_nonce, ["nested"]
        )
        answers = [parse_message(d) for d in unwrap_response(raw)]
    elif (
        rsp.header.recip_nonce == outer.header.sender_nonce
        and rsp.header.transaction_id == outer.header.transaction_id
    ):
        # An answer to the outer message itself: the CA refused the nested envelope
        # (an untrusted RA, a bad signature) before looking inside.
        Transaction(config, transaction_id=outer.header.transaction_id).check_response(rsp, outer.header.sender_nonce, [])
        _raise_for(rsp, "the nested message", "nested")
        raise ProtocolError(f"the server answered the nested message with a {rsp.body_type} for no inner request")
    else:
        answers = [rsp]
    for answer in answers:
        ex = exchanges.get(answer.header.transaction_id)
        if ex is None:
            raise ProtocolError(
                "the response's transactionID "
                f"{_hex(answer.header.transaction_id)} matches none of the inner requests "
                f"({', '.join(_hex(t) for t in exchanges)})",
                hint="the server mixed up transactions",
            )
        if ex.response is not None:
            raise ProtocolError(f"two answers for the inner request {_hex(ex.request.header.transaction_id)}")
        Transaction(config, transaction_id=ex.request.header.transaction_id).check_response(
            answer, ex.request.header.sender_nonce, _expected_bodies(ex.request.body_type)
        )
        ex.response = answer
    result.exchanges = list(exchanges.values())
    return result


def _hex(value: bytes | None) -> str:
    return value.hex() if value else "absent"


def _raise_for(rsp: Any, what: str, request: str | None = None) -> None:
    """Raise the rejection an answer carries (error body, or every status a rejection);
    ``request``: the body type of the request it answers (for the hint)."""
    from cmpclient.client.transaction import error_from
    from cmpclient.message.parse import CertRepContent, RevRepContent

    if rsp.body_type == "error":
        raise error_from(rsp, request)
    content = rsp.content
    statuses = []
    if isinstance(content, CertRepContent):
        statuses = [r.status for r in content.responses]
    elif isinstance(content, RevRepContent):
        statuses = list(content.statuses)
    rejected = [s for s in statuses if s.status == "rejection"]
    if rejected:
        st = rejected[0]
        from cmpclient.client.transaction import hint_for

        raise CMPRejection(
            f"the server rejected {what} ({rsp.body_type})",
            status=st.status,
            fail_info_names=st.fail_info,
            status_strings=st.texts,
            body_type=rsp.body_type,
            hint=hint_for(st.fail_info, request),
        )


class NestingTransport:
    """A transport that sends every request wrapped in a nested message signed by an RA.

    ``send(der)`` wraps ``der`` with :func:`wrap_in_nested`, sends it through ``inner``
    and returns the DER of the answer to ``der``: a plain answer as received, a nested one
    unwrapped (its outer protection checked with ``verify_outer`` when given, e.g.
    ``lambda parsed: Transaction(config).check_response(...)``).  The caller's
    Transaction then checks the inner answer as usual (transactionID, recipNonce,
    protection), so enrolment, polling and certConf work unchanged.
    """

    def __init__(
        self,
        inner: Any,
        ra_protection: Any,
        *,
        verify_outer: Callable[[Any, bytes, bytes], None] | None = None,
        **wrap_kw: Any,
    ) -> None:
        self.inner = inner
        self.ra_protection = ra_protection
        self.verify_outer = verify_outer
        self.wrap_kw = wrap_kw

    def send(self, request: bytes) -> bytes:
        from cmpclient.message.parse import parse_message

        outer_der = wrap_in_nested([request], self.ra_protection, **self.wrap_kw)
        raw = self.inner.send(outer_der)
        rsp = parse_message(raw)
        if rsp.body_type != "nested":
            return raw
        if self.verify_outer is not None:
            outer = parse_message(outer_der)
            self.verify_outer(rsp, outer.header.transaction_id, outer.header.sender_nonce)
        answers = unwrap_response(raw)
        tid = parse_message(request).header.transaction_id
        for der in answers:
            if parse_message(der).header.transaction_id == tid:
                return der
        raise ProtocolError("the nested response carries no answer to the request")

    def end_transaction(self) -> None:
        end_transaction(self.inner)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "NestingTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def outer_verifier(config: Any) -> Callable[[Any, bytes, bytes], None]:
    """A ``verify_outer`` for :class:`NestingTransport` that applies ``config``'s checks."""

    def verify(rsp: Any, transaction_id: bytes, sender_nonce: bytes) -> None:
        from cmpclient.client.transaction import Transaction

        Transaction(config, transaction_id=transaction_id).check_response(rsp, sender_nonce, ["nested"])

    return verify
