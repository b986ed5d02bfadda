"""``cmpclient check``: a conformance run against a CMP server, with a pass/fail matrix.

The scenarios and the judging live in :mod:`cmpclient.check` (no click there); this module
turns the options into a :class:`~cmpclient.check.CheckSetup`, prints the matrix (rich
table on stdout, or ``--json``), writes ``--junit`` XML and maps the outcome to the exit
status: 0 when no scenario FAILed or ERRORed, else 5 (``ExitCode.PROTOCOL``:
"conformance failures found").

``--profile`` stays the TOML configuration profile (as on every command); the
conformance profile is ``--expect rfc|ejbca`` (alias ``--conformance-profile``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import click

from cmpclient.cli.config import ProfileCommand
from cmpclient.cli.options import auth_options, common_options, opt, server_options, trust_options
from cmpclient.cli.render import handle_errors
from cmpclient.cli.results import begin
from cmpclient.errors import ExitCode, UsageError

_VERDICT_STYLE = {
    "PASS": "green", "FAIL": "bold red", "EJBCA-COMPATIBLE": "cyan", "UNSUPPORTED": "yellow",
    "SKIPPED": "dim", "ERROR": "bold magenta",
}


def _split(values: tuple[str, ...] | None) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


@contextlib.contextmanager
def _quiet_leniency(verbosity: int) -> Iterator[None]:
    """The check accepts unprotected errors on purpose; do not log that for every scenario."""
    logger = logging.getLogger("cmpclient.client")
    before = logger.level
    if verbosity < 1:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def build_setup(params: dict[str, Any]) -> Any:
    """A CheckSetup from the parsed options (no network traffic yet)."""
    from cmpclient.check import CheckSetup, Signer
    from cmpclient.cli.options import _certs_from, load_credentials, open_client_transport, read_opt_secret, server_url

    for name in ("reqout", "rspout", "reqin", "rspin"):
        if params.get(name):
            raise UsageError(f"--{name} does not apply to check", hint="use --capture DIR: one directory of messages per scenario")
    if not server_url(params):
        raise UsageError("no CMP server given", hint="pass --url URL (or --host/--port/--alias for EJBCA)")
    secret = read_opt_secret(params, "authparam", what="--authparam") if params.get("authparam") else None
    creds = load_credentials(params)
    newkey = None
    if params.get("newkey"):
        from cmpclient.keys import load_private_key

        newkey = load_private_key(params["newkey"], read_opt_secret(params, "newkeypass", what="--newkeypass"),
                                  password_option="--newkeypass")
    server_cert = _certs_from([params["srvcert"]])[0] if params.get("srvcert") else None
    template = params.get("subject_template") or "CN={name},O=cmpclient check"
    if "{name}" not in template:
        raise UsageError("--subject-template must contain {name}", hint='e.g. "CN={name},O=Example"')
    transport_params = dict(params)
    return CheckSetup(
        transport_factory=lambda: open_client_transport(transport_params),
        mac_secret=secret,
        keyid=params["keyid"].encode() if params.get("keyid") else None,
        signer=Signer(creds.key, creds.cert, list(creds.chain)) if creds is not None else None,
        trusted=_certs_from(params.get("trusted") or ()),
        untrusted=_certs_from(params.get("untrusted") or ()),
        server_cert=server_cert,
        recipient=params.get("recipient") or "",
        profile=params.get("expect") or "rfc",
        pvno=int(params.get("pvno") or 2),
        pbm_owf=params.get("pbm_owf") or "sha256",
        pbm_mac=params.get("pbm_mac") or "hmacWithSHA256",
        pbm_iterations=int(params.get("pbm_iterations") or 500),
        digest=params.get("digest") or "sha256",
        newkey=newkey,
        key_spec=params.get("key_spec") or "secp256r1",
        subject_template=template,
        capture_dir=Path(params["capture"]) if params.get("capture") else None,
        # per scenario; --total-timeout 0: no limit
        total_timeout=60.0 if params.get("total_timeout") is None else (params["total_timeout"] or None),
        ignore_key_usage=bool(params.get("ignore_keyusage")),
    )


def _console(out: Any, *, stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return Console(file=stream, no_color=not out.color, color_system="auto" if out.color else None,
                   highlight=False, width=None if tty else 200, soft_wrap=False)


def print_matrix(out: Any, report: Any) -> None:
    from rich.table import Table

    t = Table(title=f"cmpclient check: {report.target} (expect {report.profile})", show_lines=False)
    for col in ("scenario", "expected", "got", "verdict"):
        t.add_column(col, overflow="fold")
    for r in report.results:
        got = r.got if r.verdict.value in ("PASS", "EJBCA-COMPATIBLE") or not r.reason else f"{r.got}\n{r.reason}"
        if r.verdict.value == "EJBCA-COMPATIBLE":
            got = f"{r.got}\n{r.reason}"
        verdict = f"[{_VERDICT_STYLE[r.verdict.value]}]{r.verdict.value}[/]" if out.color else r.verdict.value
        t.add_row(r.name, r.expected, got, verdict)
    console = _console(out)
    console.print(t)
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items() if n)
    console.print(f"{len(report.results)} scenarios: {counts} ({report.seconds:.1f} s)", markup=False)


def print_list(out: Any, scenarios: Any) -> None:
    if out.json:
        out.emit_json([{
            "name": s.name, "group": s.group, "negative": s.negative, "needs": sorted(s.needs),
            "summary": s.summary, "expected": s.expected, "reference": s.reference,
            "ejbca_deviation": s.ejbca_deviation,
        } for s in scenarios])
        return
    from rich.table import Table

    t = Table(title="cmpclient check scenarios")
    for col in ("scenario", "group", "needs", "what", "expected", "reference"):
        t.add_column(col, overflow="fold")
    for s in scenarios:
        what = s.summary + (f"\n(ejbca: {s.ejbca_deviation})" if s.ejbca_deviation else "")
        t.add_row(s.name, s.group, s.describe_needs(), what, s.expected, s.reference)
    _console(out).print(t)


@click.command("check", cls=ProfileCommand)
@opt("--expect", "--conformance-profile", name="expect", type=click.Choice(["rfc", "ejbca"]), default="rfc",
     show_default=True,
     help="Judge against RFC 9810/9483 (rfc), or report EJBCA's documented deviations as EJBCA-COMPATIBLE (ejbca). "
     "(--profile is the TOML config profile.)")
@opt("--only", name="only", multiple=True, metavar="NAMES",
     help="Run only these scenarios or groups (comma lists, repeatable, shell patterns such as 'sig-*').")
@opt("--skip", name="skip", multiple=True, metavar="NAMES", help="Do not run these scenarios or groups (same syntax as --only).")
@opt("--list", name="list_scenarios", is_flag=True, default=False, help="List the scenarios (after --only/--skip) and exit.")
@opt("--capture", name="capture", type=click.Path(file_okay=False), metavar="DIR",
     help="Save every message as DIR/<scenario>/NN-req.der / NN-rsp.der (read them with `cmpclient dump`).")
@opt("--junit", name="junit", type=click.Path(dir_okay=False), metavar="FILE", help="Also write the results as JUnit XML.")
@opt("--newkey", name="newkey", type=click.Path(dir_okay=False), metavar="FILE",
     help="Request certificates for this key instead of fresh ones (servers that always issue the same certificate, "
     "e.g. openssl's mock); scenarios needing another key type are then SKIPPED.")
@opt("--newkeypass", name="newkeypass", secret=True, help="Password of --newkey.")
@opt("--key-spec", name="key_spec", default="secp256r1", show_default=True, help="Key type of the fresh keys scenarios request certificates for.")
@opt("--subject-template", name="subject_template", default="CN={name},O=cmpclient check", show_default=True,
     metavar="DN", help="Subject of requested certificates; {name} becomes a unique per-scenario name.")
@server_options
@auth_options
@trust_options
@common_options
@click.pass_context
@handle_errors
def check(ctx: click.Context, **_: Any) -> None:
    """Run a battery of conformance scenarios against a CMP server and print a matrix.

    Each scenario ends PASS, FAIL (with a reason), EJBCA-COMPATIBLE (a documented EJBCA
    deviation, with --expect ejbca), UNSUPPORTED (the server says it does not offer the
    feature, or its policy refuses the protection or signer used for that request), SKIPPED (no credentials for that mode) or ERROR (transport failure).
    A scenario whose MAC the server's policy refuses on a request that opens a transaction
    (RFC 9483: MAC for the first ir only) runs once more as the end entity, that request
    signed with a certificate enrolled by an ir under MAC earlier in the run, and is judged
    on that (UNSUPPORTED if refused again).
    Give the credentials you have: --authparam/--keyid for MAC scenarios, --keystore or
    --cert/--key for signature ones, --trusted for signed responses.

    \b
    Exit status: 0 when no scenario FAILed or ERRORed; 5 when conformance failures were
    found; 4 when the server was reached in no scenario; 7 when it refused our credentials
    in the baseline scenarios (ir, genm), so the rest says nothing; 2/3 for bad options or
    configuration.
    """
    from cmpclient.check import SCENARIOS, run_check, select, to_junit_xml

    out = begin(ctx)
    params = ctx.params
    scenarios = select(_split(params.get("only")), _split(params.get("skip")), SCENARIOS)
    if params.get("list_scenarios"):
        print_list(out, scenarios)
        return
    setup = build_setup(params)
    from cmpclient.cli.options import server_url

    target = server_url(params) or ""

    def progress(result: Any) -> None:
        if out.verbosity >= 1 or out.interactive:
            out.info(f"{result.verdict.value:<17} {result.name}")

    with _quiet_leniency(out.verbosity):
        report = run_check(setup, scenarios, target=target, progress=progress)
    if params.get("junit"):
        from cmpclient.keys import atomic_write

        atomic_write(params["junit"], to_junit_xml(report), mode=0o644)
    not_the_server = _not_the_servers_fault(report)
    if out.json:
        doc = report.to_dict()
        if not_the_server is not None:  # one JSON document: the report, with the reason for the exit code
            doc["error"] = {"exit": int(not_the_server.exit_code), "message": not_the_server.message,
                            "hint": not_the_server.hint}
        out.emit_json(doc)
    else:
        print_matrix(out, report)
    if not_the_server is not None:
        if out.json:
            click.echo(f"error: {not_the_server.diagnostics()}", err=True)
            ctx.exit(int(not_the_server.exit_code))
        raise not_the_server
    if not report.ok:
        bad = [r.name for r in report.results if r.verdict.bad]
        out.info(f"conformance failures found in {len(bad)} scenario(s): {', '.join(bad)} (exit {int(ExitCode.PROTOCOL)})")
        ctx.exit(int(ExitCode.PROTOCOL))


#: A rejection of the baseline scenarios that says our credentials were refused.
_AUTH_REFUSED = re.compile(
    r"badMessageCheck|notAuthorized|wrongIntegrity|signerNotTrusted|authenticat|MAC verification|wrong PBM"
    r"|not authori[sz]ed|failed to verify", re.IGNORECASE)
_BASELINES = ("ir", "genm")


def _not_the_servers_fault(report: Any) -> Exception | None:
    """The error to exit with when the results say nothing about the server's conformance:
    it was never reached (4), or it refused our credentials in the baseline scenarios (7)."""
    from cmpclient.check import Verdict
    from cmpclient.errors import CMPRejection, TransportError

    ran = [r for r in report.results if r.verdict is not Verdict.SKIPPED]
    unreached = [r for r in ran if r.verdict is Verdict.ERROR and r.got == "transport failure"]
    answered = [r for r in ran if r.verdict not in (Verdict.ERROR, Verdict.UNSUPPORTED)]
    if unreached and not answered:
        return TransportError(f"the server was not reached in any scenario: {unreached[0].reason}",
                              hint="check --url and that the server is running; no conformance result was obtained")
    baselines = [r for r in ran if r.name in _BASELINES]
    if baselines and all(r.verdict in (Verdict.FAIL, Verdict.UNSUPPORTED) and _AUTH_REFUSED.search(f"{r.got} {r.reason}")
                         for r in baselines) and any(r.verdict is Verdict.FAIL or "its policy" in r.reason
                                                     for r in baselines):
        return CMPRejection(
            f"the server refused our credentials in the baseline scenario(s) {', '.join(r.name for r in baselines)}: "
            f"{baselines[0].got}",
            hint="check --authparam/--keyid (or --cert/--key, --keystore); the other verdicts say nothing "
            "about conformance until the baseline passes")
    return None
