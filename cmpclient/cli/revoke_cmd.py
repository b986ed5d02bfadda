"""``revoke``: a revocation request (rr)."""

from __future__ import annotations

from typing import Any

import click

from cmpclient.cli.config import ProfileCommand
from cmpclient.cli.options import auth_options, build_client, common_options, load_credentials, opt, server_options, trust_options, unprotected_option
from cmpclient.cli.render import get_output, handle_errors
from cmpclient.cli.results import begin, serial_hex
from cmpclient.errors import UsageError


def parse_reason(text: str | None) -> int | None:
    """A CRL reason by name (case-insensitive) or code."""
    from cmpclient.message.body import CRL_REASONS

    if text is None or text == "":
        return None
    t = text.strip()
    if t.lstrip("-").isdigit():
        code = int(t)
        if code in CRL_REASONS.values():
            return code
    else:
        for name, code in CRL_REASONS.items():
            if name.lower() == t.lower():
                return code
    raise UsageError(
        f"unknown revocation reason {text!r}",
        hint="one of " + ", ".join(f"{n} ({c})" for n, c in CRL_REASONS.items()),
    )


def _reason_name(code: int | None) -> str:
    from cmpclient.message.body import CRL_REASONS

    if code is None:
        return "(none)"
    return next((f"{n} ({c})" for n, c in CRL_REASONS.items() if c == code), str(code))


@click.command("revoke", cls=ProfileCommand)
@opt("--oldcert", name="oldcert", type=click.Path(dir_okay=False),
     help="The certificate to revoke (openssl spelling). Without it: --issuer/--serno, else --cert.")
@opt("--serno", name="serno", metavar="HEX", help="Serial number (hex) of the certificate to revoke, with --issuer.")
@opt("--issuer", name="issuer", metavar="DN", help="Issuer DN of the certificate to revoke, with --serno.")
@opt("--reason", "--revreason", name="reason", metavar="NAME|CODE",
     help="CRL reason: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, "
     "cessationOfOperation, certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise, or its code.")
@server_options
@auth_options
@unprotected_option
@trust_options
@common_options
@click.pass_context
@handle_errors
def revoke(ctx: click.Context, **_: Any) -> None:
    """Revoke a certificate (rr): --cert FILE (or --oldcert FILE), or --issuer DN --serno HEX.

    The request is signed with --keystore or --cert/--key (a certificate revoking itself when
    only --cert/--key are given), or MAC-protected with --authparam.
    """
    from cmpclient.cli.enroll_cmd import parse_serial
    from cmpclient.client import revoke as do_revoke
    from cmpclient.keys import load_certificates
    from cmpclient.message.names import parse_dn

    out = begin(ctx)
    params = ctx.params
    reason = parse_reason(params.get("reason"))
    creds = load_credentials(params)
    if params.get("oldcert"):
        target = load_certificates(params["oldcert"])[0]
        issuer, serial = target.issuer, target.serial_number
    elif params.get("serno") or params.get("issuer"):
        if not (params.get("serno") and params.get("issuer")):
            raise UsageError("--issuer and --serno go together")
        issuer, serial = parse_dn(params["issuer"]), parse_serial(params["serno"])
    elif params.get("cert"):
        target = load_certificates(params["cert"])[0]
        issuer, serial = target.issuer, target.serial_number
    else:
        raise UsageError("what to revoke? give --cert FILE, --oldcert FILE or --issuer DN --serno HEX")
    # rr has no template issuer for the recipient default; use the revoked cert's issuer.
    if not params.get("recipient"):
        params = {**params, "recipient": issuer}
    config, cleanup = build_client(params, ctx=ctx, creds=creds)
    try:
        with out.waiting("rr: waiting for the CA ..."):
            result = do_revoke(config, issuer, serial, reason=reason)
    finally:
        cleanup()
    doc = {
        "ok": True, "command": "revoke", "issuer": issuer.rfc4514_string(), "serial": serial_hex(serial),
        "reason": reason, "status": result.status.status, "status_string": list(result.status.texts),
    }
    if get_output(ctx).json:
        out.emit_json(doc)
        return
    out.table("rr: revocation accepted", [
        ("issuer", doc["issuer"]), ("serial", doc["serial"]), ("reason", _reason_name(reason)),
        ("status", result.status.status + (" / " + " / ".join(result.status.texts) if result.status.texts else "")),
    ])
