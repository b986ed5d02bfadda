"""``crmf`` (ir/cr), ``p10cr`` and ``update`` (kur)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from typing import Any

import click

from cmpclient.cli.config import ProfileCommand
from cmpclient.cli.options import (
    Credentials,
    auth_options,
    build_client,
    common_options,
    load_credentials,
    opt,
    output_options,
    read_opt_secret,
    request_options,
    server_options,
    trust_options,
    unprotected_option,
)
from cmpclient.cli.render import handle_errors
from cmpclient.cli.results import begin
from cmpclient.errors import UsageError

log = logging.getLogger("cmpclient.cli")

POPO_CHOICES = ("signature", "raverify", "none", "keyenc", "-1", "0", "1", "2")
#: openssl cmp's -popo numbers
OPENSSL_POPO = {"-1": "none", "0": "raverify", "1": "signature", "2": "keyenc"}

KEY_USAGES = (
    "digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
    "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
)
_KU_ALIASES = {"nonRepudiation": "contentCommitment"}
EKU_NAMES = {
    "serverAuth": "1.3.6.1.5.5.7.3.1", "clientAuth": "1.3.6.1.5.5.7.3.2", "codeSigning": "1.3.6.1.5.5.7.3.3",
    "emailProtection": "1.3.6.1.5.5.7.3.4", "timeStamping": "1.3.6.1.5.5.7.3.8", "OCSPSigning": "1.3.6.1.5.5.7.3.9",
    "cmcCA": "1.3.6.1.5.5.7.3.27", "cmcRA": "1.3.6.1.5.5.7.3.28", "cmKGA": "1.3.6.1.5.5.7.3.32",
}

_newkey_options = [
    opt("--reqnewkeyspec", "--newkeyspec", name="reqnewkeyspec", metavar="SPEC",
        help="Generate the new key: RSA2048, RSA3072, RSA4096, secp256r1, secp384r1, secp521r1, Ed25519, Ed448, ML-DSA-44/65/87, "
             "ML-KEM-768/1024 (an ML-KEM key is proven by --popo keyenc, CMPv3)."),
    opt("--newkey", name="newkey", type=click.Path(dir_okay=False), help="Use this private key (PEM/DER) as the new key."),
    opt("--newkeypass", name="newkeypass", secret=True, help="Password of --newkey."),
]

#: POPO choice and on-the-fly nesting through an RA, shared by crmf and update.
_popo_and_nesting_options = [
    opt("--popo", name="popo", type=click.Choice(POPO_CHOICES, case_sensitive=False), default="signature",
        show_default=True, help="Proof of possession; openssl's -popo numbers work too (-1 none, 0 raverify, "
        "1 signature, 2 keyenc)."),
    opt("--includepopo", name="includepopo", is_flag=True, default=False, help="EJBCA spelling of --popo signature."),
    opt("--nest-with-ra-cert", name="nest_with_ra_cert", type=click.Path(dir_okay=False),
        help="Wrap the requests in a nested message signed by this RA certificate (PEM; chain may follow)."),
    opt("--nest-with-ra-key", name="nest_with_ra_key", type=click.Path(dir_okay=False),
        help="Private key of --nest-with-ra-cert."),
    opt("--nest-with-ra-keypass", name="nest_with_ra_keypass", secret=True, help="Password of --nest-with-ra-key."),
]


def _apply(fn: Any, decorators: list[Any]) -> Any:
    for d in reversed(decorators):
        fn = d(fn)
    return fn


# --------------------------------------------------------------------------- template


def parse_time(text: str, what: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what}: not an ISO 8601 time: {text!r}", hint="e.g. 2030-01-31T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def dns_name(name: str, item: str) -> Any:
    """A dNSName from --altname: a host name (letters, digits, hyphens, dots; labels of at
    most 63 characters, no hyphen at either end), optionally with a leading ``*.`` wildcard
    label. Anything else is a UsageError: a CA would issue "foo bar" as it is."""
    from cryptography import x509

    labels = name.split(".")
    wildcard = len(labels) > 1 and labels[0] == "*"
    ok = 0 < len(name) <= 253 and all(_LABEL.match(label) for label in labels[1 if wildcard else 0:])
    if not ok:
        hint = "a DNS name has letters, digits, hyphens and dots only (a leading *. is allowed)"
        if any(c.isspace() for c in name):
            hint = ("several names are separated by commas, not spaces: --altname a.example,b.example "
                    "(or repeat --altname); " + hint)
        elif not name.isascii():
            try:
                hint = f"write an internationalised name in its ASCII form: {name.encode('idna').decode()}"
            except UnicodeError:
                pass
        raise UsageError(f"--altname: {item!r} is not a valid DNS name", hint=hint)
    return x509.DNSName(name)


_DN_TYPES = ("dirname:", "dn:")
_DN_PART = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)\s*=")  # an RDN's start: "O=", "2.5.4.10="


def _altname_items(value: str) -> list[str]:
    """The comma-separated items of one --altname value.  A dirName's own commas stay in
    it (``dirName:CN=a,O=b,ip:192.0.2.1`` is a DN and an address): a piece that starts
    like an RDN continues the dirName before it, and so does any piece after an escaped
    comma (``\\,``)."""
    items: list[str] = []
    for piece in value.split(","):
        last = items[-1] if items else ""
        in_dn = last.lstrip().lower().startswith(_DN_TYPES)
        escaped = (len(last) - len(last.rstrip("\\"))) % 2 == 1  # an odd run of backslashes escapes the comma
        if in_dn and (escaped or _DN_PART.match(piece)):
            items[-1] = last + "," + piece
        else:
            items.append(piece)
    return [item.strip() for item in items if item.strip()]


def general_names(values: tuple[str, ...] | list[str]) -> list[Any]:
    from cryptography import x509

    from cmpclient.message.names import parse_dn

    names: list[Any] = []
    for value in values or ():
        for item in _altname_items(value):
            kind, sep, rest = item.partition(":")
            k = kind.lower() if sep else ""
            if k in ("dns", "ip", "ipaddress", "email", "rfc822", "rfc822name", "uri", "url", "dirname", "dn") and not rest:
                raise UsageError(f"--altname: {item!r} has no value", hint="e.g. dns:host.example, ip:192.0.2.1, email:a@example")
            try:
                if k in ("dns",):
                    names.append(dns_name(rest, item))
                elif k in ("ip", "ipaddress"):
                    names.append(x509.IPAddress(ipaddress.ip_address(rest)))
                elif k in ("email", "rfc822", "rfc822name"):
                    names.append(x509.RFC822Name(rest))
                elif k in ("uri", "url"):
                    names.append(x509.UniformResourceIdentifier(rest))
                elif k in ("dirname", "dn"):
                    names.append(x509.DirectoryName(parse_dn(rest)))
                elif sep and k not in ("",) and "/" not in item:
                    raise UsageError(f"--altname: unknown name type {kind!r} in {item!r}",
                                     hint="use dns:, ip:, email:, uri: or dirName:")
                else:
                    try:
                        names.append(x509.IPAddress(ipaddress.ip_address(item)))
                    except ValueError:
                        names.append(dns_name(item, item))
            except UsageError:
                raise
            except ValueError as exc:  # an invalid IP address, e-mail address ...
                raise UsageError(f"--altname: {item!r} is not valid: {exc}", hint="e.g. dns:host.example, ip:192.0.2.1") from None
    return names


def key_usage(text: str) -> Any:
    from cryptography import x509

    wanted = {_KU_ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()}
    unknown = wanted - set(KEY_USAGES)
    if unknown:
        raise UsageError(f"--key-usage: unknown {', '.join(sorted(unknown))}", hint="one of " + ", ".join(KEY_USAGES))
    snake = {
        "digitalSignature": "digital_signature", "contentCommitment": "content_commitment",
        "keyEncipherment": "key_encipherment", "dataEncipherment": "data_encipherment",
        "keyAgreement": "key_agreement", "keyCertSign": "key_cert_sign", "cRLSign": "crl_sign",
        "encipherOnly": "encipher_only", "decipherOnly": "decipher_only",
    }
    return x509.KeyUsage(**{snake[n]: n in wanted for n in KEY_USAGES})


def ext_key_usage(text: str) -> Any:
    from cryptography import x509

    oids = []
    for n in (t.strip() for t in text.split(",")):
        if not n:
            continue
        dotted = EKU_NAMES.get(n) or next((v for k, v in EKU_NAMES.items() if k.lower() == n.lower()), None)
        if dotted is None:
            if not all(part.isdigit() for part in n.split(".")) or n.count(".") < 2:
                raise UsageError(f"--eku: unknown {n!r}", hint="one of " + ", ".join(EKU_NAMES) + " or a dotted OID")
            dotted = n
        oids.append(x509.ObjectIdentifier(dotted))
    return x509.ExtendedKeyUsage(oids)


def extensions(params: dict[str, Any]) -> list[Any]:
    exts = []
    sans = general_names(params.get("altname") or ())
    if sans:
        from cryptography import x509

        exts.append(x509.SubjectAlternativeName(sans))
    if params.get("key_usage"):
        exts.append(key_usage(params["key_usage"]))
    if params.get("eku"):
        exts.append(ext_key_usage(params["eku"]))
    return exts


def validity(params: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    nb = parse_time(params["not_before"], "--not-before") if params.get("not_before") else None
    na = parse_time(params["not_after"], "--not-after") if params.get("not_after") else None
    if params.get("days"):
        if na is not None:
            raise UsageError("give --days or --not-after, not both")
        na = (nb or dt.datetime.now(dt.timezone.utc)) + dt.timedelta(days=int(params["days"]))
    return nb, na


def parse_serial(text: str, what: str = "--serno") -> int:
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    try:
        serial = int(t.replace(":", ""), 16)
    except ValueError:
        raise UsageError(f"{what}: not a hexadecimal serial number: {text!r}") from None
    if serial < 0:
        raise UsageError(f"{what}: a serial number is positive, got {text!r}", hint="e.g. --serno 1A2B3C")
    return serial


def template_builder(params: dict[str, Any], *, subject: Any = None, issuer: Any = None) -> Any:
    from cmpclient.message.request import CertRequestBuilder

    b = CertRequestBuilder()
    subject = params.get("dn") or subject
    if subject:
        b = b.subject(subject)
    issuer = params.get("issuer") or issuer
    if issuer:
        b = b.issuer(issuer)
    if params.get("serno"):
        b = b.serial_number(parse_serial(params["serno"]))
    nb, na = validity(params)
    if nb or na:
        b = b.validity(nb, na)
    for ext in extensions(params):
        b = b.extension(ext)
    return b


def new_key(params: dict[str, Any], *, default_spec: str | None = "RSA2048", fallback: Any = None) -> tuple[Any, bool]:
    """(private key, generated?) from --newkey or --reqnewkeyspec."""
    from cmpclient.keys import generate_key, load_private_key

    if params.get("newkey") and params.get("reqnewkeyspec"):
        raise UsageError("give --newkey or --reqnewkeyspec, not both")
    if params.get("reqnewkeyspec") is not None and not str(params["reqnewkeyspec"]).strip():
        raise UsageError("--reqnewkeyspec is empty", hint="e.g. --reqnewkeyspec secp256r1 (or RSA2048, Ed25519, ML-DSA-65)")
    if params.get("newkey"):
        return load_private_key(params["newkey"], read_opt_secret(params, "newkeypass", what="--newkeypass"),
                                password_option="--newkeypass"), False
    if params.get("reqnewkeyspec"):
        return generate_key(params["reqnewkeyspec"]), True
    if fallback is not None:
        return fallback, False
    if default_spec is None:
        raise UsageError("no new key: give --newkey FILE or --reqnewkeyspec SPEC")
    return generate_key(default_spec), True


def apply_popo(builder: Any, params: dict[str, Any], key: Any) -> Any:
    from cmpclient.protection import popo_signer

    method = (params.get("popo") or "signature").lower()
    method = OPENSSL_POPO.get(method, method)
    if params.get("includepopo") and method != "signature":
        raise UsageError("--includepopo means --popo signature; do not combine it with another --popo")
    if method == "signature" and _is_mlkem(key) and not params.get("includepopo"):
        method = "keyenc"  # an ML-KEM key cannot sign: the indirect method is its only POPO
    if method == "signature":
        return builder.popo_signature(popo_signer(key, params.get("digest") or "sha256", bool(params.get("rsa_pss"))))
    if method == "raverify":
        return builder.popo_ra_verified()
    if method == "keyenc":
        return keyenc_popo(builder, key)
    return builder.popo_none()


def keyenc_popo(builder: Any, key: Any) -> Any:
    """``--popo keyenc``: indirect POPO (RFC 9810 section 5.2.8.3.2), subsequentMessage encrCert.

    keyEncipherment for an RSA key, keyAgreement for an EC (ECDH) key; the CA returns the
    certificate encrypted to the key, which is decrypted with it, and the certHash in certConf
    proves possession.  Signature-only keys (Ed25519, Ed448, ML-DSA) cannot do either.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, rsa.RSAPublicKey) or _is_mlkem(pub):
        return builder.popo_key_encipherment()  # ML-KEM: encrCert in KEMRecipientInfo (RFC 9629)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return builder.popo_key_agreement()
    raise UsageError(
        f"--popo keyenc needs an RSA or ML-KEM (keyEncipherment) or EC (keyAgreement) key, not {type(pub).__name__.lstrip('_')}",
        hint="use --popo signature for signature-only keys",
    )


def _is_mlkem(key: Any) -> bool:
    from cmpclient.keys.generate import kem_algorithm_oid

    return kem_algorithm_oid(key) is not None


def auth_controls(builder: Any, params: dict[str, Any]) -> Any:
    """RegTokenPwd puts the password in a regToken control; DnPartPwd checks its DN part."""
    module = (params.get("authmodule") or "").lower()
    if module == "regtokenpwd":
        token = read_opt_secret(params, "authparam", what="--authparam", required=True)
        builder = builder.reg_token(token.decode())  # type: ignore[union-attr]
    elif module == "dnpartpwd":
        part = params.get("authparam")
        if not part:
            raise UsageError("--authmodule DnPartPwd needs --authparam naming the DN part (e.g. UID)")
        from cmpclient.cli.secrets import is_secret_source

        if is_secret_source(part):
            raise UsageError("for DnPartPwd, --authparam is the DN part's name (e.g. UID), not a secret source")
        dn = params.get("dn") or ""
        if f"{part.upper()}=" not in dn.upper():
            raise UsageError(f"DnPartPwd: the subject DN has no {part} part carrying the password", hint=f"add {part}=<password> to --dn")
    return builder


# --------------------------------------------------------------------------- running


def run_enroll(ctx: click.Context, kind: str, request: Any, *, private_key: Any, creds: Any = True,
               decrypt_key: Any = None, expected_public_key: Any = None, key_to_keep: bool = False) -> None:
    """Enroll; ``key_to_keep``: the request's private key was made for it (here or by the CA)
    and must be written somewhere."""
    from cmpclient.cli.results import check_outputs
    from cmpclient.client import enroll

    params = ctx.params
    check_outputs(params, key_to_keep=key_to_keep)
    if private_key is None and not key_to_keep and (params.get("keyout") or params.get("p12out")):
        raise UsageError("--keyout/--p12out: there is no private key to write (the client does not know it)",
                         hint="nothing was sent to the CA; with --csr the key stays with whoever made the CSR")
    out = begin_done(ctx)
    if creds is True:
        from cmpclient.cli.options import load_credentials

        creds = load_credentials(params)
    kem_creds = creds if creds is not None and _is_mlkem(getattr(creds, "key", None)) else None
    # An ML-KEM certificate cannot sign: it authenticates with a KEM-based MAC (RFC 9810
    # section 5.1.3.4) after a genm/genp KemCiphertextInfo exchange in the same transaction.
    config, cleanup = build_client(params, ctx=ctx, creds=None if kem_creds is not None else creds,
                                   allow_unprotected=kem_creds is not None)
    if private_key is not None and _is_mlkem(private_key) and config.pvno < 3:
        config.pvno = 3  # the encrypted certificate for an ML-KEM key needs EnvelopedData (CMPv3)
    transaction = None
    if params.get("nest_with_ra_cert") or params.get("nest_with_ra_key"):
        config.transport = _nesting_transport(config, params)
    try:
        with out.waiting(f"{kind}: waiting for the CA ..."):
            if kem_creds is not None:
                from cmpclient.client.kem import establish_kem_mac

                transaction, config = establish_kem_mac(config, kem_creds.key, kem_creds.cert, chain=kem_creds.chain)
            # certConf comes after the outputs are written (below): a certificate the
            # client cannot keep is rejected, not confirmed.
            result = enroll(
                config, kind, request, confirm=False, decrypt_key=decrypt_key,
                expected_public_key=expected_public_key,
                new_private_key=private_key,  # decrypts an encrypted certificate (--popo keyenc)
                transaction=transaction,
            )
        key = private_key if result.private_key is None else result.private_key
        files, state_file = write_outputs_then_confirm(ctx, config, kind, result, key)
    finally:
        cleanup()
    report_enrollment(ctx, kind, result, key, files, state_file)


def write_outputs_then_confirm(ctx: click.Context, config: Any, kind: str, result: Any,
                               key: Any) -> tuple[list[str], str | None]:
    """Write the outputs, then send the certConf (unless --no-confirm: then save the state);
    return the files written and the state file (None when nothing is left to confirm).

    When an output cannot be written after all (a full disk, a race the pre-flight checks
    cannot see), the certConf rejects the certificate -- the client will not use it -- and
    the write error is reported: a certificate is never confirmed and then lost."""
    from cmpclient.cli.options import server_url
    from cmpclient.cli.render import get_output
    from cmpclient.cli.results import default_state_path, write_enroll_outputs, write_state
    from cmpclient.client import confirm
    from cmpclient.errors import CMPClientError

    params = ctx.params
    state = result.confirm_state
    try:
        files = write_enroll_outputs(params, result, key)
    except BaseException as exc:
        if state is not None and not params.get("no_confirm"):
            try:
                confirm(config, state, accept=False, reason=f"the client could not store the certificate: {exc}")
            except CMPClientError as conf_exc:
                log.warning("the rejecting certConf failed too: %s", conf_exc.message)
        raise
    state_file = None
    if state is not None and params.get("no_confirm"):
        state_file = params.get("state_out") or default_state_path(params, result.certificate)
        write_state(state_file, state, {"url": server_url(params), "command": kind})
        files.append(state_file)
    elif state is not None:
        with get_output(ctx).waiting(f"{kind}: confirming ..."):
            confirm(config, state)
        result.confirmed, result.confirm_state = True, None
    return files, state_file


def _nesting_transport(config: Any, params: dict[str, Any]) -> Any:
    """Wrap every request in a nested message signed by the RA (--nest-with-ra-cert/-key)."""
    from cmpclient.client.nested import NestingTransport, outer_verifier
    from cmpclient.keys import load_certificates, load_private_key
    from cmpclient.protection import SignatureProtection

    if not (params.get("nest_with_ra_cert") and params.get("nest_with_ra_key")):
        raise UsageError("--nest-with-ra-cert and --nest-with-ra-key go together")
    key = load_private_key(params["nest_with_ra_key"],
                           read_opt_secret(params, "nest_with_ra_keypass", what="--nest-with-ra-keypass"),
                           password_option="--nest-with-ra-keypass")
    certs = load_certificates(params["nest_with_ra_cert"])
    ra = SignatureProtection(key, certs[0], certs[1:])
    return NestingTransport(config.transport, ra, verify_outer=outer_verifier(config))


def begin_done(ctx: click.Context) -> Any:
    from cmpclient.cli.render import get_output

    return get_output(ctx)


def report_enrollment(ctx: click.Context, kind: str, result: Any, private_key: Any, files: list[str],
                      state_file: str | None) -> None:
    """Print what was issued (the outputs are written and the certConf sent already)."""
    from cmpclient.cli.render import get_output
    from cmpclient.cli.results import cert_doc, cert_rows

    out = get_output(ctx)
    if result.implicit_confirm_granted:
        confirmation = "implicit (granted by the CA)"
    elif result.confirmed:
        confirmation = "certConf sent, pkiConf received"
    else:
        confirmation = f"NOT confirmed: run `cmpclient certconf --state {state_file}`"
    if out.json:
        doc = {
            "ok": True, "command": ctx.command.name, "request": kind,
            "status": result.status.status, "status_string": list(result.status.texts),
            "certificate": cert_doc(result.certificate),
            "chain": [cert_doc(c)["subject"] for c in result.chain()],
            "confirmed": result.confirmed, "implicit_confirm": result.implicit_confirm_granted,
            "transaction_id": result.transaction_id.hex(), "polls": result.polls,
            "server_generated_key": result.private_key is not None,
            "state_file": state_file, "files": files,
        }
        out.emit_json(doc)
        return
    rows = cert_rows(result.certificate)
    if result.status.status != "accepted" or result.status.texts:
        rows.insert(0, ("status", " / ".join([str(result.status.status), *result.status.texts])))
    rows.append(("confirmation", confirmation))
    if result.polls:
        rows.append(("polls", str(result.polls)))
    if result.private_key is not None:
        rows.append(("key", "generated by the CA, decrypted"))
    rows.append(("files", "\n".join(files) if files else "(none; use --dest or --certout)"))
    out.table(f"{kind}: certificate issued", rows)
    if not files and not out.quiet:
        from cryptography.hazmat.primitives.serialization import Encoding

        click.echo(result.certificate.public_bytes(Encoding.PEM).decode(), nl=False)


# --------------------------------------------------------------------------- crmf


def _empty_key_spki(spec_text: str) -> bytes:
    """An SPKI with the spec's algorithm and an empty key: asks the CA to generate one."""
    from cmpclient.asn1 import codec
    from cmpclient.keys import generate_key, parse_key_spec
    from cmpclient.message.request import empty_public_key, public_key_der

    spec = parse_key_spec(spec_text)
    if spec.family == "RSA":
        alg = bytes.fromhex("300d06092a864886f70d0101010500")
    else:
        spki = public_key_der(generate_key(spec))
        _, start, _ = codec.read_tlv(spki, 0)
        tag, a_start, a_end = codec.read_tlv(spki, start)
        alg = spki[start:a_end]
    return empty_public_key(alg)


def _protocol_encr_key(value: str | None) -> tuple[Any, bytes]:
    from cmpclient.keys import load_private_key, make_protocol_encr_key
    from cmpclient.message.request import public_key_der

    choice = (value or "RSA").strip()
    if choice.upper() in ("RSA", "EC", "ECDH", "ECC"):
        return make_protocol_encr_key(choice)
    if choice.upper().replace("-", "").replace("_", "") in ("MLKEM768", "MLKEM1024"):
        from cmpclient.keys import generate_key

        key = generate_key(choice)  # KEMRecipientInfo (RFC 9629) to a fresh ML-KEM key
        return key, public_key_der(key)
    key = load_private_key(choice)
    return key, public_key_der(key)


_CRMF_OPTS = [
    click.command("crmf", cls=ProfileCommand),
    opt("--cr", name="use_cr", is_flag=True, default=False, help="Send cr (certification request) instead of ir."),
    opt("--ir", name="use_ir", is_flag=True, default=False, help="Send ir (the default)."),
    *_newkey_options,
    opt("--server-keygen", "--central-keygen", name="server_keygen", is_flag=True, default=False,
        help="Ask the CA to generate the key (public key omitted, or --reqnewkeyspec as an empty-key SPKI)."),
    opt("--protocol-encr-key", name="protocol_encr_key", metavar="RSA|EC|ML-KEM-768|ML-KEM-1024|FILE",
        help="Key the CA encrypts the generated private key to (default: a fresh RSA key; ML-KEM implies --pvno 3)."),
    *_popo_and_nesting_options,
    request_options, server_options, auth_options, unprotected_option, trust_options, output_options, common_options,
    click.pass_context, handle_errors,
]


def crmf(ctx: click.Context, **_: Any) -> None:
    """Enroll with a CRMF request: ir (default) or cr (--cr).

    The new key comes from --reqnewkeyspec or --newkey; with --server-keygen the CA
    generates it and returns it encrypted to the protocolEncrKey; it is decrypted and saved.
    A key made for the request needs --keyout, --dest or --p12out; every output is checked
    before the request is sent.
    """
    begin(ctx)
    params = ctx.params
    if params["use_cr"] and params["use_ir"]:
        raise UsageError("give --ir or --cr, not both")
    kind = "cr" if params["use_cr"] else "ir"
    if not params.get("dn"):
        raise UsageError(f"{kind} needs the subject: --dn 'CN=...'")
    builder = auth_controls(template_builder(params), params)
    if params.get("server_keygen"):
        if params.get("newkey"):
            raise UsageError("--server-keygen and --newkey exclude each other")
        if params.get("reqnewkeyspec"):
            builder = builder.public_key(_empty_key_spki(params["reqnewkeyspec"]))
        pek, pek_spki = _protocol_encr_key(params.get("protocol_encr_key"))
        if _is_mlkem(pek) or (params.get("reqnewkeyspec") and "KEM" in params["reqnewkeyspec"].upper()):
            params["pvno"] = 3  # KEMRecipientInfo / an ML-KEM key package need EnvelopedData (CMPv3)
        builder = builder.protocol_encr_key(pek_spki).popo_none()
        mac_secret = read_opt_secret(params, "authparam", what="--authparam") if (
            (params.get("authmodule") or "HMAC").upper() == "HMAC" and params.get("authparam")) else None

        def decrypt_key(info: Any) -> Any:
            from cmpclient.keys import decrypt_returned_private_key  # server keygen only (cold start)

            return decrypt_returned_private_key(info.der, private_key=pek, password=mac_secret)

        run_enroll(ctx, kind, builder, private_key=None, decrypt_key=decrypt_key, key_to_keep=True)
        return
    key, generated = new_key(params)
    builder = apply_popo(builder.public_key(key), params, key)
    run_enroll(ctx, kind, builder, private_key=key, key_to_keep=generated)


crmf = _apply(crmf, _CRMF_OPTS)


# --------------------------------------------------------------------------- p10cr


def build_csr(params: dict[str, Any], key: Any) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    from cmpclient.keys import key_spec_of
    from cmpclient.message.names import parse_dn

    if not params.get("dn"):
        raise UsageError("p10cr without --csr needs the subject: --dn 'CN=...'")
    b = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(params["dn"]))
    for ext in extensions(params):
        b = b.add_extension(ext, critical=isinstance(ext, x509.KeyUsage))
    family = key_spec_of(key).family
    algorithm = None if family in ("Ed25519", "Ed448", "ML-DSA") else getattr(hashes, (params.get("digest") or "sha256").upper().replace("-", "_"))()
    return b.sign(key, algorithm).public_bytes(Encoding.DER)


def _load_csr(path: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from cmpclient.errors import KeyLoadError

    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise KeyLoadError(f"cannot read CSR {path!r}: {exc.strerror or exc}") from None
    try:
        csr = x509.load_pem_x509_csr(data) if b"-----BEGIN" in data else x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise KeyLoadError(f"{path!r} is not a PKCS#10 request ({exc})") from None
    return csr.public_bytes(Encoding.DER)


_P10_OPTS = [
    click.command("p10cr", cls=ProfileCommand),
    opt("--csr", name="csr", type=click.Path(dir_okay=False), help="The PKCS#10 request (PEM/DER); else one is built from the new key."),
    *_newkey_options,
    request_options, server_options, auth_options, unprotected_option, trust_options, output_options, common_options,
    click.pass_context, handle_errors,
]


def p10cr(ctx: click.Context, **_: Any) -> None:
    """Enroll with a PKCS#10 request (p10cr): --csr FILE, or a CSR built from a new key."""
    begin(ctx)
    params = ctx.params
    if params.get("csr"):
        if params.get("newkey") or params.get("reqnewkeyspec"):
            raise UsageError("--csr already carries the key; drop --newkey/--reqnewkeyspec")
        if params.get("dn") or params.get("altname"):
            raise UsageError("--csr already carries the subject and extensions; drop --dn/--altname",
                             hint="the CSR is sent as it is (its signature covers them)")
        run_enroll(ctx, "p10cr", _load_csr(params["csr"]), private_key=None)
        return
    key, generated = new_key(params)
    run_enroll(ctx, "p10cr", build_csr(params, key), private_key=key, key_to_keep=generated)


p10cr = _apply(p10cr, _P10_OPTS)


# --------------------------------------------------------------------------- update


_UPDATE_OPTS = [
    click.command("update", cls=ProfileCommand),
    *_newkey_options,
    opt("--same-key", "--reuse-key", name="same_key", is_flag=True, default=False, help="Keep the current key (no new key)."),
    opt("--oldcert", name="oldcert", type=click.Path(dir_okay=False),
        help="The certificate to update (default: --cert / the keystore's). Another EE's certificate makes an RA request."),
    *_popo_and_nesting_options,
    request_options, server_options, auth_options, unprotected_option, trust_options, output_options, common_options,
    click.pass_context, handle_errors,
]


def update(ctx: click.Context, **_: Any) -> None:
    """Key update (kur), signed with the current certificate (--keystore or --cert/--key).

    The template names the old certificate's subject (and, for an RA updating another end
    entity's --oldcert, its issuer) and carries the oldCertID control.
    """
    from cmpclient.keys import key_spec_of, load_certificates

    begin(ctx)
    params = ctx.params
    creds: Credentials | None = load_credentials(params, required=True)
    assert creds is not None
    old = load_certificates(params["oldcert"])[0] if params.get("oldcert") else creds.cert
    ra_form = old != creds.cert
    if params.get("same_key"):
        if params.get("newkey") or params.get("reqnewkeyspec"):
            raise UsageError("--same-key excludes --newkey/--reqnewkeyspec")
        if ra_form:
            raise UsageError("--same-key needs the old certificate's key; for another end entity give --newkey")
        key, generated = creds.key, False
    else:
        key, generated = new_key(params, default_spec=key_spec_of(creds.key).name)
    builder = template_builder(params, subject=old.subject, issuer=old.issuer if ra_form else None)
    builder = builder.public_key(key).old_cert_id(old.issuer, old.serial_number)
    builder = apply_popo(builder, params, key)
    run_enroll(ctx, "kur", builder, private_key=key, creds=creds, key_to_keep=generated)


update = _apply(update, _UPDATE_OPTS)
