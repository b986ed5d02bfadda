"""``cmpclient nested``: forward saved requests wrapped in a signed nested message (RA role).

An RA that checked an end entity's request forwards it to the CA inside a PKIMessage with a
``nested`` body (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2), protected with the RA's own
credentials.  The CA answers either with a plain response to the inner request (EJBCA and
the bundled test CA do this) or with a nested response that carries it.

The library part (wrap, unwrap, send and the NestingTransport adapter that
``crmf --nest-with-ra-cert/--nest-with-ra-key`` uses) is :mod:`cmpclient.client.nested`.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import click

from cmpclient.cli.options import auth_options, common_options, opt, server_options, trust_options
from cmpclient.cli.render import handle_errors
from cmpclient.errors import CMPRejection, DecodeError, ProtocolError, UsageError

log = logging.getLogger("cmpclient.cli")

from cmpclient.client.nested import (  # noqa: F401  (re-exported: the library part lives there)
    MAX_NESTING_DEPTH,
    wrap_in_nested,
    unwrap_response,
    Exchange,
    NestedResult,
    send_nested,
    NestingTransport,
    outer_verifier,
    _nesting_depth,
    _raise_for,
    _hex,
    _expected_bodies,
)


# ------------------------------------------------------------------------------ command


def _load_ra_credentials(params: dict[str, Any]) -> Any:
    from cmpclient.cli.options import Credentials, load_credentials, read_opt_secret

    if params.get("ra_cert") or params.get("ra_key"):
        if not (params.get("ra_cert") and params.get("ra_key")):
            raise UsageError("--ra-cert and --ra-key go together")
        from cmpclient.keys import load_certificates, load_private_key

        key = load_private_key(params["ra_key"], read_opt_secret(params, "ra_keypass", what="--ra-keypass"),
                               password_option="--ra-keypass")
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
                _raise_for(ex.response, f"the inner {ex.request.body_type}", ex.request.body_type)
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
