"""``certconf``: confirm or reject a certificate of an earlier ``--no-confirm`` enrollment."""

from __future__ import annotations

import json
from typing import Any

import click

from cmpclient.cli.config import ProfileCommand
from cmpclient.cli.options import auth_options, build_client, common_options, opt, server_options, trust_options, unprotected_option
from cmpclient.cli.render import handle_errors
from cmpclient.cli.results import begin, cert_rows, serial_hex
from cmpclient.errors import ConfigError, UsageError


def load_state(path: str) -> tuple[Any, dict[str, Any]]:
    from cmpclient.client import ConfirmState

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read the transaction state {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path!r} is not a saved transaction state (bad JSON: {exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path!r} is not a saved transaction state")
    try:
        return ConfirmState.from_dict(data), data
    except UsageError as exc:
        raise ConfigError(f"{path!r}: {exc.message}") from None


@click.command("certconf", cls=ProfileCommand)
@opt("--state", name="state", type=click.Path(dir_okay=False), required=True,
     help="The transaction state saved by `crmf/p10cr/update --no-confirm`.")
@opt("--reject", name="reject", is_flag=True, default=False, help="Reject the certificate instead of accepting it.")
@opt("--reason", name="reason", metavar="TEXT", help="Why the certificate is rejected (statusString).")
@server_options
@auth_options
@unprotected_option
@trust_options
@common_options
@click.pass_context
@handle_errors
def certconf(ctx: click.Context, **_: Any) -> None:
    """Send the certConf of an earlier transaction run with --no-confirm.

    The server URL defaults to the one saved in the state file; the credentials are not
    saved there: give those of the enrolment again (--authparam/--keyid or --cert/--key).
    """
    from cryptography import x509

    from cmpclient.client import confirm

    out = begin(ctx)
    params = dict(ctx.params)
    if params.get("reason") and not params.get("reject"):
        raise UsageError("--reason is for --reject")
    state, data = load_state(params["state"])
    if not (params.get("url") or params.get("host") or params.get("alias") or params.get("rspin")) and data.get("url"):
        params["url"] = data["url"]
    cert = x509.load_der_x509_certificate(state.cert_der)
    config, cleanup = build_client(params, ctx=ctx)
    config.pvno = state.pvno
    try:
        with out.waiting("certConf: waiting for the CA ..."):
            confirm(config, state, accept=not params.get("reject"), reason=params.get("reason"))
    finally:
        cleanup()
    action = "rejected" if params.get("reject") else "confirmed"
    if out.json:
        out.emit_json({
            "ok": True, "command": "certconf", "action": action, "transaction_id": state.transaction_id.hex(),
            "subject": cert.subject.rfc4514_string(), "serial": serial_hex(cert.serial_number),
        })
        return
    out.table(f"certConf: certificate {action}, pkiConf received", cert_rows(cert))
