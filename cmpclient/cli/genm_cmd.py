"""``genm``: general messages (caCerts, rootCaKeyUpdate, certReqTemplate, crlStatusList, ...)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from cmpclient.cli.config import ProfileCommand
from cmpclient.cli.options import auth_options, build_client, common_options, opt, server_options, trust_options, unprotected_option
from cmpclient.cli.render import handle_errors
from cmpclient.cli.results import begin
from cmpclient.errors import UsageError

log = logging.getLogger("cmpclient.cli")

#: Short names accepted by --infotype (RFC 9810 §5.3.19, RFC 9483 §4.3).
INFO_TYPES = {
    "caProtEncCert": "1.3.6.1.5.5.7.4.1",
    "signKeyPairTypes": "1.3.6.1.5.5.7.4.2",
    "encKeyPairTypes": "1.3.6.1.5.5.7.4.3",
    "preferredSymmAlg": "1.3.6.1.5.5.7.4.4",
    "caKeyUpdateInfo": "1.3.6.1.5.5.7.4.5",
    "currentCRL": "1.3.6.1.5.5.7.4.6",
    "unsupportedOIDs": "1.3.6.1.5.5.7.4.7",
    "keyPairParamReq": "1.3.6.1.5.5.7.4.10",
    "revPassphrase": "1.3.6.1.5.5.7.4.12",
    "implicitConfirm": "1.3.6.1.5.5.7.4.13",
    "confirmWaitTime": "1.3.6.1.5.5.7.4.14",
    "origPKIMessage": "1.3.6.1.5.5.7.4.15",
    "suppLangTags": "1.3.6.1.5.5.7.4.16",
    "caCerts": "1.3.6.1.5.5.7.4.17",
    "rootCaKeyUpdate": "1.3.6.1.5.5.7.4.18",
    "certReqTemplate": "1.3.6.1.5.5.7.4.19",
    "rootCaCert": "1.3.6.1.5.5.7.4.20",
    "certProfile": "1.3.6.1.5.5.7.4.21",
    "crlStatusList": "1.3.6.1.5.5.7.4.22",
    "crls": "1.3.6.1.5.5.7.4.23",
}
_NAMES = {v: k for k, v in INFO_TYPES.items()}


def info_type_oid(text: str) -> str:
    for name, oid in INFO_TYPES.items():
        if name.lower() == text.strip().lower():
            return oid
    if all(p.isdigit() for p in text.split(".")) and text.count(".") >= 2:
        return text
    raise UsageError(f"unknown --infotype {text!r}", hint="one of " + ", ".join(INFO_TYPES) + " or a dotted OID")


def _tlvs(der: bytes) -> list[bytes]:
    """The elements of a DER SEQUENCE (OF)."""
    from cmpclient.asn1 import codec

    _, start, end = codec.read_tlv(der, 0)
    items, pos = [], start
    while pos < end:
        _, _, nxt = codec.read_tlv(der, pos)
        items.append(der[pos:nxt])
        pos = nxt
    return items


def _der_of_file(path: str) -> bytes:
    from cmpclient.keys import load_certificates
    from cryptography.hazmat.primitives.serialization import Encoding

    return load_certificates(path)[0].public_bytes(Encoding.DER)


def _crl_status_list(path: str) -> bytes:
    """CRLStatusListValue for the CRL in ``path``: source = issuer, thisUpdate."""
    from cmpclient.asn1 import codec
    from cmpclient.keys import load_crl
    from cmpclient.message.names import name_der

    crl = load_crl(path)
    name = name_der(crl.issuer)
    dir_name = codec.der_header(0xA4, len(name)) + name  # GeneralName directoryName [4] EXPLICIT
    general_names = codec.der_header(0xA1, len(dir_name)) + dir_name  # CRLSource.issuer [1] GeneralNames
    when = crl.last_update_utc
    text = (when.strftime("%y%m%d%H%M%SZ") if when.year < 2050 else when.strftime("%Y%m%d%H%M%SZ")).encode()
    t = codec.der_header(0x17 if when.year < 2050 else 0x18, len(text)) + text
    status = general_names + t
    status = codec.der_header(0x30, len(status)) + status
    return codec.der_header(0x30, len(status)) + status


def _write_certs(path: Path, ders: list[bytes]) -> None:
    from cryptography import x509

    from cmpclient.keys import write_certificates

    write_certificates(path, [x509.load_der_x509_certificate(d) for d in ders])


@click.command("genm", cls=ProfileCommand)
@opt("--infotype", name="infotype", multiple=True, metavar="NAME|OID",
     help="What to ask for (repeatable): caCerts, rootCaKeyUpdate, certReqTemplate, crlStatusList, "
     "signKeyPairTypes, ... or a dotted OID. Default caCerts.")
@opt("--oldwithold", name="oldwithold", type=click.Path(dir_okay=False), help="rootCaKeyUpdate: the current root certificate.")
@opt("--oldcrl", name="oldcrl", type=click.Path(dir_okay=False), help="crlStatusList: the CRL you have.")
@opt("--dest", name="dest", type=click.Path(file_okay=False), help="Save each returned value as <infoType>.der (certificates also as PEM).")
@opt("--cacertsout", name="cacertsout", type=click.Path(dir_okay=False), help="caCerts: write the CA certificates (PEM).")
@opt("--newwithnew", name="newwithnew", type=click.Path(dir_okay=False), help="rootCaKeyUpdate: write newWithNew (PEM).")
@opt("--crlout", name="crlout", type=click.Path(dir_okay=False), help="crlStatusList: write the returned CRL(s) (DER, first one).")
@server_options
@auth_options
@unprotected_option
@trust_options
@common_options
@click.pass_context
@handle_errors
def genm(ctx: click.Context, **_: Any) -> None:
    """Send a general message (genm) and save what the CA answers (genp)."""
    from cmpclient.client import general_message

    out = begin(ctx)
    params = ctx.params
    items: list[tuple[str, bytes | None]] = []
    for name in params.get("infotype") or ("caCerts",):
        oid = info_type_oid(name)
        if oid == INFO_TYPES["rootCaKeyUpdate"]:
            # RFC 9810 §5.3.19.15: asked for with id-it-rootCaCert (the current root, optional).
            items.append((INFO_TYPES["rootCaCert"], _der_of_file(params["oldwithold"]) if params.get("oldwithold") else None))
        elif oid == INFO_TYPES["crlStatusList"]:
            if not params.get("oldcrl"):
                raise UsageError("--infotype crlStatusList needs --oldcrl FILE (the CRL you have)")
            items.append((oid, _crl_status_list(params["oldcrl"])))
        else:
            items.append((oid, None))
    config, cleanup = build_client(params, ctx=ctx)
    try:
        with out.waiting("genm: waiting for the CA ..."):
            answer = general_message(config, items)
    finally:
        cleanup()
    files: list[str] = []
    results = []
    dest = Path(params["dest"]) if params.get("dest") else None
    if dest:
        dest.mkdir(parents=True, exist_ok=True)
    for oid, value in answer:
        name = _NAMES.get(oid, oid)
        entry: dict[str, Any] = {"infotype": name, "oid": oid, "value_der": value.hex() if value else None}
        certs: list[bytes] = []
        if value and name == "caCerts":
            certs = _tlvs(value)
            if params.get("cacertsout"):
                _write_certs(Path(params["cacertsout"]), certs)
                files.append(params["cacertsout"])
        elif value and name == "rootCaKeyUpdate":
            parts = _tlvs(value)
            certs = [parts[0]] if parts else []
            if params.get("newwithnew") and certs:
                _write_certs(Path(params["newwithnew"]), certs)
                files.append(params["newwithnew"])
        elif value and name == "crls" and params.get("crlout"):
            crls = _tlvs(value)
            if crls:
                Path(params["crlout"]).write_bytes(crls[0])
                files.append(params["crlout"])
        entry["certificates"] = len(certs)
        if dest and value:
            (dest / f"{name}.der").write_bytes(value)
            files.append(str(dest / f"{name}.der"))
            if certs:
                _write_certs(dest / f"{name}.pem", certs)
                files.append(str(dest / f"{name}.pem"))
        results.append(entry)
    missing = _missing_answers(params.get("infotype") or ("caCerts",), results)
    for name in missing:  # not an error (a CA may have nothing to say), but never silent
        log.warning("the CA sent no %s%s", name, _NOTHING_SENT.get(name, ""))
    if out.json:
        out.emit_json({"ok": True, "command": "genm", "items": results, "missing": missing, "files": files})
        return
    rows = [(r["infotype"], ("absent (no value)" if r["value_der"] is None else
                             f"{len(r['value_der']) // 2} bytes" + (f", {r['certificates']} certificate(s)" if r["certificates"] else "")))
            for r in results]
    rows += [(name, "not in the answer") for name in missing if name not in {r["infotype"] for r in results}]
    asked_for_files = any(params.get(o) for o in ("dest", "cacertsout", "newwithnew", "crlout"))
    rows.append(("files", "\n".join(files) if files else "(none written)" if asked_for_files else "(none; use --dest)"))
    out.table("genp received", rows)


#: What a genp answers a requested info type with (RFC 9810 5.3.19: rootCaKeyUpdate is
#: asked for with rootCaCert; a crlStatusList is answered with crls).
_ANSWERED_AS = {"rootCaCert": "rootCaKeyUpdate", "crlStatusList": "crls"}
_NOTHING_SENT = {"rootCaKeyUpdate": " (no root CA key update available)", "crls": " (no newer CRL)"}


def _missing_answers(requested: Any, results: list[dict[str, Any]]) -> list[str]:
    """The answer names of requested info types that the genp left out or sent without a value."""
    answered = {r["infotype"] for r in results if r["value_der"] is not None}
    wanted = []
    for name in requested:
        asked = _NAMES.get(info_type_oid(name), name)
        wanted.append(_ANSWERED_AS.get(asked, asked))
    return [name for name in dict.fromkeys(wanted) if name not in answered]
