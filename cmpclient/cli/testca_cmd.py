"""``cmpclient serve`` and ``cmpclient testca ...``: run and administer the bundled test CA.

Registered by the CLI group from ``cmpclient.cli.testca_cmd:serve`` and
``cmpclient.cli.testca_cmd:testca``; also runnable alone::

    python -m cmpclient.cli.testca_cmd serve --port 0 --tcp-port 0 --workers 2
    python -m cmpclient.cli.testca_cmd testca aliases

Every command takes ``--data-dir`` (default ``$CMPCLIENT_TESTCA_DIR``, else
``$XDG_DATA_HOME/cmpclient/testca``, else ``~/.local/share/cmpclient/testca``) and
``--config`` (a TOML file; without it the embedded default configuration is written to
the data directory on first use). End-entity passwords are read from a secret source
(``env:VAR``, ``file:PATH``, ``fd:N``, ``stdin``), never from argv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

DATA_DIR_ENV = "CMPCLIENT_TESTCA_DIR"
CONFIG_ENV = "CMPCLIENT_TESTCA_CONFIG"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cmpclient" / "testca"


def _ca_options(fn: Callable) -> Callable:
    fn = click.option(
        "--config",
        "config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar=CONFIG_ENV,
        default=None,
        help=f"Test CA configuration (TOML). Default: the embedded one, written to the data directory. [env {CONFIG_ENV}]",
    )(fn)
    fn = click.option(
        "--data-dir",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=DATA_DIR_ENV,
        default=None,
        help=f"Where the CA keeps keys, certificates and its SQLite store. [env {DATA_DIR_ENV}; "
        "default ~/.local/share/cmpclient/testca]",
    )(fn)
    return fn


def _fail(exc: BaseException) -> "click.ClickException":
    """Turn a cmpclient error into a click error carrying its exit code and hint."""
    from cmpclient.errors import CMPClientError

    if isinstance(exc, CMPClientError):
        err = click.ClickException(exc.diagnostics())
        err.exit_code = int(exc.exit_code)
        return err
    err = click.ClickException(str(exc) or exc.__class__.__name__)
    return err


def _require_ca(data_dir: Path) -> None:
    from cmpclient.errors import ConfigError
    from cmpclient.testca.core import DB_FILE

    if not (data_dir / DB_FILE).is_file():
        raise ConfigError(
            f"no test CA in {data_dir} (no {DB_FILE})",
            hint=f"check --data-dir / {DATA_DIR_ENV}; `cmpclient serve --data-dir DIR` or `cmpclient testca ee add` creates a CA",
        )


def _open(config: Path | None, data_dir: Path | None) -> Any:
    from cmpclient.testca import TestCA

    return TestCA.open(config, data_dir or default_data_dir())


# --------------------------------------------------------------------------- serve


@click.command("serve")
@_ca_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (HTTP and TCP).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="HTTP port; 0 picks a free one.")
@click.option(
    "--tcp-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve CMP over TCP (alias 'tcp') on this port; 0 picks a free one. Default: no TCP listener.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (gunicorn). 1 serves with threads in one process.",
)
def serve(config: Path | None, data_dir: Path | None, host: str, port: int, tcp_port: int | None, workers: int) -> None:
    """Run the test CA at http://HOST:PORT/ejbca/publicweb/cmp/<alias> (and /<alias>).

    Prints the CA summary and one line 'cmpclient serve: listening on http://HOST:PORT'
    once the port accepts connections. Stops gracefully on SIGTERM or Ctrl-C.
    """
    import logging

    from cmpclient.testca.serve import serve as run

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        code = run(
            config=config,
            data_dir=data_dir or default_data_dir(),
            host=host,
            port=port,
            tcp_port=tcp_port,
            workers=workers,
        )
    except OSError as exc:
        err = click.ClickException(f"cannot serve on {host}: {exc.strerror or exc}\n"
                                   "hint: another process has the port? choose another --port (0 picks a free one)")
        err.exit_code = 3  # ExitCode.CONFIG: the setting (host, port) is unusable
        raise err from None
    except Exception as exc:
        raise _fail(exc) from None
    sys.exit(code)


# --------------------------------------------------------------------------- testca


@click.group("testca")
def testca() -> None:
    """Administer the bundled test CA (end entities, certificates, aliases)."""


@testca.command("aliases")
@_ca_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def aliases_cmd(config: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List the configured CMP aliases."""
    with _session(config, data_dir) as ca:
        rows = _list_aliases(ca)
    _emit(rows, as_json, ["alias", "mode", "auth", "protection", "url_path"])


@testca.group("ee")
def ee() -> None:
    """End entities (pre-registered users for client mode)."""


@ee.command("add")
@_ca_options
@click.option("--username", required=True, help="The end entity's username.")
@click.option(
    "--password-source",
    "password_source",
    required=True,
    help="Where the one-time password comes from: env:VAR, file:PATH, fd:N or stdin (never the password itself).",
)
@click.option("--dn", required=True, help="Subject DN, e.g. 'CN=device1,O=Example'.")
@click.option("--alias", default=None, help="Take the CA and profiles from this alias.")
@click.option("--profile", default=None, help="End-entity profile name.")
@click.option("--json", "as_json", is_flag=True)
def ee_add(
    config: Path | None,
    data_dir: Path | None,
    username: str,
    password_source: str,
    dn: str,
    alias: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Register (or reset to status NEW) an end entity with a one-time password."""
    from cmpclient.cli.secrets import read_secret
    try:
        password = read_secret(password_source, what="--password-source")
    except Exception as exc:
        raise _fail(exc) from None
    assert password is not None
    with _session(config, data_dir) as ca:
        row = _add_end_entity(ca, username=username, password=password.decode("utf-8"), dn=dn, alias=alias, profile=profile)
    _emit([row], as_json, ["username", "dn", "status", "ca", "profile"])


@ee.command("list")
@_ca_options
@click.option("--json", "as_json", is_flag=True)
def ee_list(config: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List end entities (passwords are never shown). The data directory must hold a CA."""
    with _session(config, data_dir, existing=True) as ca:
        rows = _list_end_entities(ca)
    _emit(rows, as_json, ["username", "dn", "status", "ca", "profile"])


@testca.group("cert")
def cert() -> None:
    """Issued certificates."""


@cert.command("list")
@_ca_options
@click.option("--json", "as_json", is_flag=True)
def cert_list(config: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List issued certificates (serial in hex, subject, status). The data directory must hold a CA."""
    with _session(config, data_dir, existing=True) as ca:
        rows = _list_certificates(ca)
    _emit(rows, as_json, ["serial", "subject", "status", "issuer", "not_after", "username"])


@cert.command("revoke")
@_ca_options
@click.option("--serial", required=True, help="Serial number in hex (as `testca cert list` shows it).")
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    help="CRL reason: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, "
    "cessationOfOperation, certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise (or its number).",
)
@click.option("--json", "as_json", is_flag=True)
def cert_revoke(config: Path | None, data_dir: Path | None, serial: str, reason: str, as_json: bool) -> None:
    """Revoke an issued certificate. The data directory must hold a CA."""
    try:
        serial_int = int(serial.replace(":", "").removeprefix("0x").removeprefix("0X"), 16)
    except ValueError:
        raise click.BadParameter(f"not a hex serial number: {serial!r}", param_hint="--serial") from None
    with _session(config, data_dir, existing=True) as ca:
        row = _revoke_certificate(ca, serial_int, reason)
    _emit([row], as_json, ["serial", "subject", "status", "reason"])



# --------------------------------------------------------------------------- admin


def _reason_code(reason: str) -> int:
    from cmpclient.message.body import CRL_REASONS as REVOCATION_REASONS

    if reason.isdigit() and int(reason) in REVOCATION_REASONS.values():
        return int(reason)
    for name, code in REVOCATION_REASONS.items():
        if name.lower() == reason.lower():
            return code
    raise click.BadParameter(
        f"unknown revocation reason {reason!r}; use one of: {', '.join(REVOCATION_REASONS)}", param_hint="--reason"
    )


def _reason_name(code: int | None) -> str | None:
    from cmpclient.message.body import CRL_REASONS as REVOCATION_REASONS

    if code is None:
        return None
    return next((n for n, c in REVOCATION_REASONS.items() if c == code), str(code))


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _list_aliases(ca: Any) -> list[dict[str, Any]]:
    rows = []
    for name, alias in sorted(ca.config.aliases.items()):
        rows.append(
            {
                "alias": name,
                "mode": alias.mode,
                "auth": ";".join(alias.auth_modules),
                "protection": alias.response_protection,
                "url_path": f"/ejbca/publicweb/cmp/{name}",
                "tcp": name == ca.tcp_alias,
                "details": alias.summary_hint,
            }
        )
    return rows


def _ee_row(ee: Any) -> dict[str, Any]:
    return {
        "username": ee.username,
        "dn": ee.dn,
        "status": ee.status,
        "ca": ee.ca,
        "profile": ee.ee_profile,
        "cert_profile": ee.cert_profile,
        "ra_admin": ee.ra_admin,
    }


def _add_end_entity(ca: Any, *, username: str, password: str, dn: str, alias: str | None, profile: str | None) -> dict[str, Any]:
    from cmpclient.message.names import format_dn, parse_dn

    try:
        dn = format_dn(parse_dn(dn))
    except Exception as exc:
        raise click.BadParameter(f"not a DN: {exc}", param_hint="--dn") from None
    ca_name = cert_profile = None
    ee_profile = profile
    if alias is not None:
        cfg = ca.config.aliases.get(alias)
        if cfg is None:
            raise click.BadParameter(f"no alias {alias!r}; see `cmpclient testca aliases`", param_hint="--alias")
        ca_name = cfg.ca or None
        cert_profile = cfg.cert_profile or None
        ee_profile = ee_profile or cfg.ee_profile or None
    if ee_profile is not None and ee_profile not in ca.config.ee_profiles:
        raise click.BadParameter(
            f"no end-entity profile {ee_profile!r}; known: {', '.join(sorted(ca.config.ee_profiles))}", param_hint="--profile"
        )
    ca.store.upsert_end_entity(
        username, dn=dn, status="NEW", password=password, ca=ca_name, cert_profile=cert_profile, ee_profile=ee_profile
    )
    return _ee_row(ca.store.get_end_entity(username))


def _list_end_entities(ca: Any) -> list[dict[str, Any]]:
    return [_ee_row(ee) for ee in ca.store.list_end_entities()]


def _cert_row(rec: Any) -> dict[str, Any]:
    from cmpclient.cli.results import serial_hex

    return {
        "serial": serial_hex(rec.serial),
        "subject": rec.subject,
        "issuer": rec.issuer,
        "ca": rec.ca,
        "status": rec.status,
        "reason": _reason_name(rec.revocation_reason),
        "revoked_at": _iso(rec.revocation_time),
        "not_before": _iso(rec.not_before),
        "not_after": _iso(rec.not_after),
        "username": rec.username,
        "fingerprint": rec.fingerprint,
    }


def _list_certificates(ca: Any) -> list[dict[str, Any]]:
    return [_cert_row(rec) for rec in ca.store.all_certificates()]


def _revoke_certificate(ca: Any, serial: int, reason: str) -> dict[str, Any]:
    code = _reason_code(reason)
    matches = [rec for rec in ca.store.all_certificates() if rec.serial == serial]
    if not matches:
        raise click.ClickException(f"no certificate with serial {serial:x}; see `cmpclient testca cert list`")
    if len(matches) > 1:
        raise click.ClickException(f"serial {serial:x} is used by several CAs: " + ", ".join(m.ca for m in matches))
    rec = matches[0]
    if not ca.store.revoke(rec.id, code):
        raise click.ClickException(f"certificate {serial:x} ({rec.subject}) is already revoked")
    return _cert_row(ca.store.get_certificate(rec.id))


# --------------------------------------------------------------------------- helpers


class _session:
    """Open the CA for one admin command; cmpclient errors become click errors.

    ``existing``: the command only reads or changes what a CA issued, so a data directory
    without a CA (a typo in --data-dir) is an error instead of a new, empty CA.
    """

    def __init__(self, config: Path | None, data_dir: Path | None, *, existing: bool = False):
        self.config = config
        self.data_dir = data_dir
        self.existing = existing
        self.ca: Any = None

    def __enter__(self) -> Any:
        try:
            if self.existing:
                _require_ca(self.data_dir or default_data_dir())
            self.ca = _open(self.config, self.data_dir)
        except Exception as exc:
            raise _fail(exc) from None
        return self.ca

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self.ca is not None:
            self.ca.close()
        if exc is not None and not isinstance(exc, (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt)):
            raise _fail(exc) from exc
        return False


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(none)", err=True)
        return
    cols = [c for c in columns if any(c in r for r in rows)] or sorted({k for r in rows for k in r})
    widths = {c: max(len(c), *(len(str(r.get(c, "") if r.get(c) is not None else "")) for r in rows)) for c in cols}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "") if r.get(c) is not None else "").ljust(widths[c]) for c in cols).rstrip())


@click.group()
def _standalone() -> None:
    """cmpclient test CA commands (standalone entry until the main CLI registers them)."""


_standalone.add_command(serve)
_standalone.add_command(testca)


if __name__ == "__main__":
    _standalone(prog_name="cmpclient")
