"""``cmpclient nested``: forward saved requests wrapped in a signed nested message (RA role).

An RA that checked an end entity's request forwards it to the CA inside a PKIMessage with a
``nested`` body (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2), protected with the RA's own
credentials.  The CA answers either with a plain response to the inner request (EJBCA and
the bundled test CA do this) or with a nested response that carries it.

The library part is usable on its own:

* :func:`wrap_in_nested` -- inner DERs + RA protection -> the DER of the nested request;
* :func:`unwrap_response` -- a received answer -> the inner responses (nested ones unwrapped);
* :class:`NestingTransport` -- a transport adapter doing both for every message, so any
  command can send its requests through an RA without changing its transaction logic
  (``crmf --nest-with-ra-cert/--nest-with-ra-key`` wraps ``config.transport`` with it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import click

from cmpclient.cli.options import auth_options, common_options, opt, server_options, trust_options
from cmpclient.cli.render import handle_errors
from cmpclient.errors import CMPRejection, DecodeError, ProtocolError, UsageError

log = logging.getLogger("cmpclient.cli")

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
        _raise_for(rsp, "the nested message")
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


def _raise_for(rsp: Any, what: str) -> None:
    """Raise the rejection an answer carries (error body, or every status a rejection)."""
    from cmpclient.client.transaction import error_from
    from cmpclient.message.parse import CertRepContent, RevRepContent

    if rsp.body_type == "error":
        raise error_from(rsp)
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
            hint=hint_for(st.fail_info),
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


# ------------------------------------------------------------------------------ command


def _load_ra_credentials(params: dict[str, Any]) -> Any:
    from cmpclient.cli.options import Credentials, load_credentials, read_opt_secret

    if params.get("ra_cert") or params.get("ra_key"):
        if not (params.get("ra_cert") and params.get("ra_key")):
            raise UsageError("--ra-cert and --ra-key go together")
        from cmpclient.keys import load_certificates, load_private_key

        key = load_private_key(params["ra_key"], read_opt_secret(params, "ra_keypass", what="--ra-keypass"))
        certs = load_certificates(params["ra_cert"])
        chain = list(certs[1:])
        for path in params.get("ra_chain") or ():
            chain += load_certificates(path)
        return Credentials(key, certs[0], chain)
    creds = load_credentials(params)
    if creds is not None and params.get("ra_chain"):
        from cmpclient.keys import load_certificates

        for path in params["ra_chain"]:
            creds.chain += load_certificates(path)
    return creds


def _read_inputs(paths: Sequence[str]) -> list[bytes]:
    from cmpclient.cli.dump_cmd import _read_source, read_items

    out: list[bytes] = []
    for path in paths:
        name = "<stdin>" if path == "-" else path
        for item in read_items(_read_source(path), name):
            if item.kind != "message":
                raise DecodeError(f"{item.source}: a certificate, not a PKIMessage")
            out.append(item.der)
    return out


def _write_files(spec: str, ders: Sequence[bytes]) -> list[str]:
    from cmpclient.keys.load import atomic_write
    from cmpclient.transport.file import split_file_list

    names = split_file_list(spec)
    if len(names) < len(ders):
        raise UsageError(f"--inner-rspout names {len(names)} file(s) for {len(ders)} response(s)")
    written = []
    for name, der in zip(names, ders):
        atomic_write(name, der, mode=0o644)
        written.append(str(name))
    return written


@click.command("nested")
@opt("--in", name="inputs", multiple=True, required=True, metavar="FILE",
     help="A saved request to forward (DER, PEM or base64; e.g. written by --reqout). Repeat for a batch; - is stdin.")
@opt("--ra-cert", name="ra_cert", type=click.Path(dir_okay=False),
     help="RA certificate that signs the nested message (default: --cert/--keystore).")
@opt("--ra-key", name="ra_key", type=click.Path(dir_okay=False), help="Private key of --ra-cert.")
@opt("--ra-keypass", name="ra_keypass", secret=True, help="Password of --ra-key.")
@opt("--ra-chain", name="ra_chain", type=click.Path(dir_okay=False), multiple=True,
     help="Certificates of the RA's chain for extraCerts.")
@opt("--inner-rspout", name="inner_rspout", metavar="FILES",
     help="Save the answers to the inner requests (DER), one file per request; --rspout saves the raw answer.")
@opt("--dump/--no-dump", name="dump_responses", default=True, show_default=True,
     help="Print the answers as a tree on stdout (with --json: inside the JSON result).")
@server_options
@auth_options
@trust_options
@common_options
@click.pass_context
@handle_errors
def nested(ctx: click.Context, **params: Any) -> None:
    """Forward saved requests inside a nested message signed by RA credentials.

    Each --in file is one complete, already protected request (ir, cr, kur, p10cr, rr,
    genm, certConf...), e.g. written by `cmpclient crmf --reqout` or `openssl cmp -reqout`.
    They are wrapped unchanged in one nested message signed with --ra-cert/--ra-key (or
    --cert/--key, --keystore) and sent to the server. The answer is either a plain response
    to the inner request (EJBCA, the bundled test CA) or a nested one, which is unwrapped.
    Every answer must carry its request's transactionID and, as recipNonce, its senderNonce;
    its protection is verified with --trusted/--srvcert (or --secret).

    \b
    Examples:
      # ir.der: a protected request saved earlier (cmpclient/openssl cmp --reqout)
      cmpclient nested --url http://ca:8080/ejbca/publicweb/cmp/nested --in ir.der \\
          --ra-cert ra.pem --ra-key ra-key.pem --trusted ca.pem --inner-rspout ip.der
    """
    from cmpclient.cli.options import build_client
    from cmpclient.cli.results import begin

    out = begin(ctx)
    params = dict(ctx.params)
    inner = _read_inputs(params["inputs"])
    creds = _load_ra_credentials(params)
    if creds is None and not params.get("authparam"):
        raise UsageError(
            "nested needs the RA's credentials to sign the nested message",
            hint="pass --ra-cert FILE --ra-key FILE (or --cert/--key, --keystore)",
        )
    config, cleanup = build_client(params, ctx=ctx, creds=creds)
    try:
        with out.waiting(f"sending {len(inner)} request(s) nested"):
            result = send_nested(config, inner)
    finally:
        cleanup()
    answers = [ex.response for ex in result.exchanges if ex.response is not None]
    if params.get("inner_rspout"):
        _write_files(params["inner_rspout"], [a.der for a in answers])
    missing = [ex for ex in result.exchanges if ex.response is None]
    try:
        for ex in result.exchanges:
            if ex.response is not None:
                _raise_for(ex.response, f"the inner {ex.request.body_type}")
    except CMPRejection:
        # People see what came back before the diagnostics; --json gets the error document.
        if not out.json:
            _print(out, result, bool(params.get("dump_responses")))
        raise
    _print(out, result, bool(params.get("dump_responses")))
    if missing:
        raise ProtocolError(
            f"no answer for {len(missing)} of {len(result.exchanges)} inner request(s): "
            + ", ".join(_hex(ex.request.header.transaction_id) for ex in missing),
            hint="the server answered only part of the batch",
        )


def _print(out: Any, result: NestedResult, with_dump: bool) -> None:
    from cmpclient.asn1.dump import dump as dump_tree
    from cmpclient.asn1.dump import render_text

    if out.json:
        doc = {
            "ok": True,
            "response_nested": result.response_nested,
            "answers": [
                {
                    "request": ex.request.body_type,
                    "transaction_id": _hex(ex.request.header.transaction_id),
                    "response": ex.response.body_type if ex.response is not None else None,
                    **({"message": dump_tree(ex.response.der)} if with_dump and ex.response is not None else {}),
                }
                for ex in result.exchanges
            ],
        }
        out.emit_json(doc)
        return
    for ex in result.exchanges:
        rsp = ex.response
        out.info(
            f"{ex.request.body_type} {_hex(ex.request.header.transaction_id)}: "
            + (f"answered with {rsp.body_type}" + (" (inside a nested response)" if result.response_nested else "") if rsp else "no answer")
        )
        if with_dump and rsp is not None:
            from cmpclient.cli.dump_cmd import _want_rich, print_rich

            tree = dump_tree(rsp.der)
            if _want_rich():
                print_rich(tree)
            else:
                click.echo(render_text(tree), nl=False)
