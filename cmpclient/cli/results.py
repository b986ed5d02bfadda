"""Starting a subcommand (common options, --show-config) and writing/printing its results."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import click

from cmpclient.cli.render import Output, get_output
from cmpclient.errors import UsageError



def serial_hex(serial: int) -> str:
    """A serial number as ``openssl x509 -serial`` prints it: upper-case hex digits of its
    octets, so always an even number of them (``06F9...``, not ``6F9...``)."""
    if serial < 0:
        return "-" + serial_hex(-serial)
    text = format(serial, "X")
    return "0" + text if len(text) % 2 else text


def begin(ctx: click.Context) -> Output:
    """Merge the subcommand's common options into the run's Output; handle --show-config."""
    out = get_output(ctx)
    p = ctx.params
    out.verbosity = max(out.verbosity, int(p.get("verbose") or 0))
    if p.get("quiet"):
        out.quiet = True
    if p.get("json_output"):
        out.json = True
    out.setup_logging()
    if p.get("show_config"):
        from cmpclient.cli.config import show_config

        rows = show_config(ctx)
        if out.json:
            out.emit_json({"command": ctx.command.name, "options": rows})
        else:
            width = max(len(r["name"]) for r in rows) if rows else 0
            for r in rows:
                value = "" if r["value"] is None else r["value"]
                click.echo(f"{r['name']:<{width}}  {json.dumps(value) if not isinstance(value, str) else value}  [{r['origin']}]")
        ctx.exit(0)
    return out


def safe_name(text: str) -> str:
    """A file-name-safe version of a CN."""
    name = re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("._")
    return name or "cert"


def common_name(cert: Any) -> str | None:
    from cryptography.x509.oid import NameOID

    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def cert_rows(cert: Any) -> list[tuple[str, str]]:
    return [
        ("subject", cert.subject.rfc4514_string()),
        ("serial", serial_hex(cert.serial_number)),
        ("issuer", cert.issuer.rfc4514_string()),
        ("valid", f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} .. {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"),
    ]


def cert_doc(cert: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives.serialization import Encoding

    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "pem": cert.public_bytes(Encoding.PEM).decode(),
    }


def _load_ders(ders: Sequence[bytes]) -> list[Any]:
    from cryptography import x509

    out = []
    for der in ders:
        try:
            out.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    return out


_FILE_OUTPUTS = (("certout", "--certout"), ("keyout", "--keyout"), ("chainout", "--chainout"),
                 ("extracertsout", "--extracertsout"), ("cacertsout", "--cacertsout"), ("p12out", "--p12out"),
                 ("state_out", "--state-out"))


def check_outputs(params: dict[str, Any], *, key_to_keep: bool) -> None:
    """Before anything is sent to the CA: every output can be written, and a private key
    made for this request (generated here, or by the CA) has a file to go to. Otherwise the
    CA would issue a certificate that is then lost, or whose key is."""
    for name, option in _FILE_OUTPUTS:
        if params.get(name):
            _check_writable(Path(str(params[name])), option)
    for name, option in (("reqout", "--reqout"), ("rspout", "--rspout")):
        if params.get(name):  # (the file transport loads only when it is used)
            from cmpclient.transport.file import split_file_list

            for path in split_file_list(params[name]) or ():
                _check_writable(Path(path), option)
    if params.get("dest"):
        dest = Path(str(params["dest"]))
        existing = next(p for p in (dest, *dest.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"--dest {dest}: {existing} is not a writable directory",
                             hint="nothing was sent to the CA; choose a directory you can write")
    if key_to_keep and not (params.get("keyout") or params.get("dest") or params.get("p12out")):
        raise UsageError("the new private key would be lost: no --keyout, --dest or --p12out",
                         hint="nothing was sent to the CA; add --keyout FILE (written 0600) or --dest DIR "
                         "(--keyout /dev/null throws the key away on purpose)")


def _check_writable(path: Path, option: str) -> None:
    from cmpclient.keys.load import is_special_output

    if is_special_output(path):
        return  # /dev/null, /dev/stdout, a FIFO: written to directly (keys.atomic_write)
    if path.is_symlink():
        path = Path(os.path.realpath(path))  # the file the link names is replaced
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory", hint="nothing was sent to the CA; give a file name")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: directory {parent} does not exist",
                         hint="nothing was sent to the CA; create the directory first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: directory {parent} is not writable",
                         hint="nothing was sent to the CA; choose a directory you can write")


def write_enroll_outputs(params: dict[str, Any], result: Any, private_key: Any) -> list[str]:
    """Write certificate, key (0600), chain, extraCerts, caPubs and PKCS#12 as asked."""
    from cmpclient.cli.options import read_opt_secret
    from cmpclient.keys import write_certificates, write_pkcs12, write_private_key

    written: list[str] = []
    cert = result.certificate
    chain = result.chain()
    targets: dict[str, str | None] = {
        "cert": params.get("certout"),
        "key": params.get("keyout"),
        "chain": params.get("chainout"),
        "p12": params.get("p12out"),
    }
    if params.get("dest"):
        dest = Path(params["dest"])
        dest.mkdir(parents=True, exist_ok=True)
        base = safe_name(common_name(cert) or format(cert.serial_number, "x"))
        targets["cert"] = targets["cert"] or str(dest / f"{base}.pem")
        if private_key is not None:
            targets["key"] = targets["key"] or str(dest / f"{base}-key.pem")
        if chain:
            targets["chain"] = targets["chain"] or str(dest / f"{base}-chain.pem")
        if params.get("p12") and private_key is not None:
            targets["p12"] = targets["p12"] or str(dest / f"{base}.p12")
    if targets["cert"]:
        write_certificates(targets["cert"], [cert])
        written.append(targets["cert"])
    if targets["key"]:
        if private_key is None:
            raise click.UsageError("--keyout: there is no private key to write (the key is not known to the client)")
        write_private_key(targets["key"], private_key)
        written.append(targets["key"])
    if targets["chain"] and chain:
        write_certificates(targets["chain"], chain)
        written.append(targets["chain"])
    extra = _load_ders(result.extra_certs)
    if params.get("extracertsout") and extra:
        write_certificates(params["extracertsout"], extra)
        written.append(params["extracertsout"])
    capubs = _load_ders(result.ca_pubs)
    if params.get("cacertsout") and capubs:
        write_certificates(params["cacertsout"], capubs)
        written.append(params["cacertsout"])
    if targets["p12"]:
        if private_key is None:
            raise click.UsageError("PKCS#12 output needs the private key")
        pwd = read_opt_secret(params, "p12pwd", what="--p12pwd")
        cn = common_name(cert)
        write_pkcs12(targets["p12"], private_key, cert, chain, pwd, friendly_name=cn.encode() if cn else None)
        written.append(targets["p12"])
    return written


def write_state(path: str, state: Any, extra: dict[str, Any]) -> None:
    from cmpclient.keys import atomic_write

    doc = {"format": "cmpclient-confirm-state/1", **state.to_dict(), **extra}
    atomic_write(path, json.dumps(doc, indent=2).encode(), mode=0o600)


def default_state_path(params: dict[str, Any], cert: Any) -> str:
    base = safe_name(common_name(cert) or format(cert.serial_number, "x"))
    directory = params.get("dest") or os.curdir
    return str(Path(directory) / f"{base}.cmpstate.json")
