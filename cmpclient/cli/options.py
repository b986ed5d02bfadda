"""Shared click option groups and the one function that turns parsed options into a client.

PUBLIC API (stable; ``nested_cmd`` and every subcommand use it)::

    # Decorators: each adds a group of options to a click command.
    @server_options      # --url, --path, --host/--port/--alias, --recipient, --expect-sender, --timeout,
                         # --total-timeout, --keep-alive N/--no-keep-alive, --tls-* ,
                         # --reqout/--rspout/--reqin/--rspin
    @auth_options        # --authmodule, --authparam/--secret (a SOURCE), --keyid/--ref,
                         # --keystore/--keystorepwd/--extraCertsFriendlyName, --cert/--key,
                         # --extracerts, --pbm-owf/--pbm-mac/--pbm-iterations/--pbmac1, --digest,
                         # --allow-insecure-literal-secrets
    @trust_options       # --trusted/--srvcert/--untrusted, leniency switches
                         # (--unprotected-errors, --missing-recip-nonce, --accept-pvno1,
                         # --ignore-keyusage)
    @unprotected_option  # --unprotected-requests (commands that send: not check, not nested)
    @output_options      # --dest, --certout/--keyout/--chainout/--extracertsout/--cacertsout,
                         # --p12 / --p12-password
    @common_options      # -v/-q/--json/--config/--profile/--show-config (also on the group)

    build_client(params: dict, *, ctx: click.Context | None = None)
        -> tuple[ClientConfig, Callable[[], None]]
        # ``params`` is ``ctx.params`` after config/profile merging (see config.py);
        # without credentials (no MAC secret, no signing key, no --authmodule) it raises
        # UsageError unless --unprotected-requests (or allow_unprotected=True) is given;
        # returns a ready ClientConfig (transport opened, protection, trust, leniency,
        # on_message hooks for -vvv/--reqout/--rspout) and a ``cleanup()`` that closes the
        # transport and writes capture files.  Raises cmpclient.errors.* (render.py maps
        # them to exit codes).

    resolve_secret(spec: str | None, *, what: str, params: dict) -> bytes | None
        # re-exported from cmpclient.cli.secrets
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import click

from cmpclient.cli.config import SECRET_PARAMS, envvar_for, envvars_of
from cmpclient.cli.secrets import read_secret, refuse_url_password
from cmpclient.errors import ConfigError, UsageError

log = logging.getLogger("cmpclient.cli")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

AUTH_MODULES = ("HMAC", "EndEntityCertificate", "RegTokenPwd", "DnPartPwd")
DEFAULT_EJBCA_PORT = 8080


class EnvOption(click.Option):
    """An option whose error messages name its environment variable only when the value
    came from there (click names it whatever the value's origin: a typo on the command line
    read "Invalid value for '--popo' (env var: 'CMPCLIENT_POPO')")."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        from click.core import ParameterSource

        if ctx is not None and self.name and ctx.get_parameter_source(self.name) == ParameterSource.ENVIRONMENT:
            used = next((v for v in envvars_of(self) if os.environ.get(v)), None)
            if used:
                return f"'{self.opts[0]}' (from ${used})"
        return " / ".join(f"'{x}'" for x in self.opts)


def option_envvars(decls: Sequence[str], name: str) -> list[str]:
    """The environment variables of an option: ``CMPCLIENT_<OPTION>`` after its first long
    name (``--total-timeout``: ``CMPCLIENT_TOTAL_TIMEOUT``, ``--extraCertsFriendlyName``:
    ``CMPCLIENT_EXTRA_CERTS_FRIENDLY_NAME``, ``nested --in``: ``CMPCLIENT_IN``), then, when
    it differs, the one after the parameter name (``CMPCLIENT_INPUTS``), read as well."""
    import re

    names = []
    long = next((d.split("/", 1)[0] for d in decls if d.startswith("--")), None)
    if long:
        names.append(envvar_for(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", long[2:]).replace("-", "_")))
    if envvar_for(name) not in names:
        names.append(envvar_for(name))
    return names


def opt(*decls: str, name: str, secret: bool = False, **kw: Any) -> Decorator:
    """click.option with an explicit parameter name and ``CMPCLIENT_<OPTION>`` env vars
    (:func:`option_envvars`)."""
    envvars = option_envvars(decls, name)
    kw.setdefault("envvar", envvars[0] if len(envvars) == 1 else envvars)
    kw.setdefault("show_envvar", True)
    kw.setdefault("cls", EnvOption)
    if secret:
        SECRET_PARAMS.add(name)
        kw.setdefault("metavar", "SOURCE")
        kw["help"] = (kw.get("help", "") + " SOURCE: env:VAR, file:PATH, fd:N or stdin (never the secret itself).").strip()
    return click.option(*decls, name, **kw)


def _group(options: Sequence[Decorator]) -> Decorator:
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(options):
            fn = o(fn)
        return fn

    return apply


class _Seconds(click.ParamType):
    """A positive, finite number of seconds (no -1, nan or inf); with ``zero_ok``, also 0,
    which the option's user reads as "no limit" (openssl's ``-total_timeout 0``)."""

    name = "seconds"

    def __init__(self, *, zero_ok: bool = False) -> None:
        self.zero_ok = zero_ok

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        import math

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if seconds == 0 and self.zero_ok:
            return 0.0
        if not math.isfinite(seconds) or seconds <= 0 or seconds > 86_400 * 365:
            least = "0 (no limit) or more" if self.zero_ok else "more than 0"
            self.fail(f"{value!r} is not a usable number of seconds ({least}, at most a year)", param, ctx)
        return seconds


SECONDS = _Seconds()
#: --total-timeout: 0 is no limit, as with openssl (ClientConfig.total_timeout 0 or None)
SECONDS_OR_NO_LIMIT = _Seconds(zero_ok=True)


class _KeepAlive(click.ParamType):
    """openssl's ``-keep_alive`` number: 0 close after each message, 1 keep alive if
    possible, 2 keep alive required; a profile's or environment's boolean reads as 1/0."""

    name = "0|1|2"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, bool):
            return int(value)
        text = str(value).strip().lower()
        words = {"true": 1, "t": 1, "yes": 1, "y": 1, "on": 1, "false": 0, "f": 0, "no": 0, "n": 0, "off": 0}  # click's booleans
        if text in ("0", "1", "2"):
            return int(text)
        if text in words:
            return words[text]
        self.fail(f"{value!r} is not 0 (close after each message), 1 (keep alive if possible) "
                  "or 2 (keep alive required)", param, ctx)


KEEP_ALIVE = _KeepAlive()
_FILE = click.Path(dir_okay=False)
_DIR = click.Path(file_okay=False)

#: -v/-q/--json/--config/--profile/--show-config: on the group and on every subcommand.
common_options = _group([
    click.option("-v", "--verbose", "verbose", count=True, help="More output: -v info, -vv debug, -vvv every CMP message dumped to stderr."),
    click.option("-q", "--quiet", "quiet", is_flag=True, default=None, help="Only errors on stderr."),
    click.option("--json", "json_output", is_flag=True, default=None, help="Print one JSON document on stdout (result or error)."),
    click.option("--config", "config", type=_FILE, metavar="FILE", expose_value=True,
                 help="TOML config file with profiles (default $CMPCLIENT_CONFIG)."),
    click.option("--profile", "profile", metavar="NAME", help="Profile in the config file (default $CMPCLIENT_PROFILE, else 'default')."),
    click.option("--show-config", "show_config", is_flag=True, default=False,
                 help="Print every option's value and where it came from (secrets redacted), then exit."),
    click.option("--allow-insecure-literal-secrets", "allow_literal_secrets", is_flag=True, default=False,
                 envvar="CMPCLIENT_ALLOW_PASS_LITERAL", show_envvar=True, help="Accept pass:TEXT secret sources (tests only: argv is public)."),
])

server_options = _group([
    opt("--url", "--server", name="url", metavar="URL", callback=lambda _ctx, _param, value: with_scheme(value),
        help="CMP server: http://, https:// or tcp://host:port; without a scheme http:// is meant, as with openssl "
        "(host[:port][/path], [::1]:port/path). Without it --host/--port/--alias build the EJBCA URL. "
        "A user:password@ in it (HTTP Basic auth) is a secret: only from CMPCLIENT_URL or a profile, never on the command line."),
    opt("--host", name="host", help="EJBCA host (used when --url is not given)."),
    opt("--port", name="port", type=int, help=f"EJBCA HTTP port (default {DEFAULT_EJBCA_PORT})."),
    opt("--alias", name="alias", help="EJBCA CMP alias: path /ejbca/publicweb/cmp/<alias>."),
    opt("--recipient", name="recipient", metavar="DN", help="Header recipient DN (default: --issuer, else NULL-DN)."),
    opt("--sender", name="sender", metavar="DN", help="Header sender DN (default: the signer's subject, else --dn)."),
    opt("--pvno", name="pvno", type=click.IntRange(2, 3), default=2, show_default=True, help="CMP version to send."),
    opt("--timeout", name="timeout", type=SECONDS, default=30.0, show_default=True, help="Seconds for each connect and read."),
    opt("--total-timeout", name="total_timeout", type=SECONDS_OR_NO_LIMIT, help="Seconds for the whole transaction, the waits for answers and polling included; 0: no limit."),
    opt("--path", name="path", metavar="PATH",
        help="HTTP path at the CMP server (aka CMP alias) for the POST requests, e.g. ejbca/publicweb/cmp/ra "
             "(openssl -path): replaces any path given with --url/--server; with --host/--port it replaces "
             "the EJBCA path built from --alias (not with --alias)."),
    opt("--keep-alive", name="keep_alive", type=KEEP_ALIVE, is_flag=False, flag_value="1", default="1",
        show_default=True,
        help="As openssl -keep_alive N: 1 (also --keep-alive alone) reuses the HTTP connection for the further "
             "messages of a transaction (certConf, polling) if the server keeps it open; each transaction starts "
             "on a new one. 0 (or --no-keep-alive) sends 'Connection: close'. 2 requires keep-alive: a server that "
             "closes the connection before the transaction ends is a transport error (refused for tcp://, which "
             "uses one connection per message)."),
    opt("--no-keep-alive", name="no_keep_alive", is_flag=True, default=False,
        help="The same as --keep-alive 0."),
    opt("--tls-ca", "--tls-trusted", name="tls_ca", type=_FILE, help="CA file (PEM) for the HTTPS server's certificate; default: the system trust store."),
    opt("--tls-cert", name="tls_cert", type=_FILE, help="TLS client certificate (PEM)."),
    opt("--tls-key", name="tls_key", type=_FILE, help="TLS client key (PEM, unencrypted)."),
    opt("--tls-insecure", name="tls_insecure", is_flag=True, default=False, help="Do NOT verify the HTTPS server certificate."),
    opt("--reqout", name="reqout", metavar="FILES", help="Save requests (DER), comma-separated: one file per message."),
    opt("--rspout", name="rspout", metavar="FILES", help="Save responses (DER), comma-separated: one file per message."),
    opt("--reqin", name="reqin", metavar="FILES", help="Send these saved requests, in order, instead of the built ones (the answers are checked against them); then the built ones."),
    opt("--rspin", name="rspin", metavar="FILES", help="Take responses from these files instead of the server."),
])

auth_options = _group([
    opt("--authmodule", name="authmodule", type=click.Choice(AUTH_MODULES, case_sensitive=False),
        help="How the request is authenticated (default: EndEntityCertificate with --keystore/--key, HMAC with --authparam)."),
    opt("--authparam", "--secret", name="authparam", secret=True,
        help="HMAC shared secret / RegTokenPwd password; for DnPartPwd the DN part name (e.g. UID)."),
    opt("--keyid", "--ref", name="keyid", help="senderKID: the reference the CA knows the secret by."),
    opt("--keystore", name="keystore", type=_FILE, help="PKCS#12 with the signing key and certificate."),
    opt("--keystorepwd", name="keystorepwd", secret=True, help="Password of --keystore."),
    opt("--extraCertsFriendlyName", name="extra_certs_friendly_name", metavar="NAME",
        help="Only send keystore chain certificates with this friendly name in extraCerts."),
    opt("--cert", name="cert", type=_FILE, help="Signing certificate (PEM/DER) for EndEntityCertificate; revoke: the certificate to revoke."),
    opt("--key", name="key", type=_FILE, help="Private key of --cert."),
    opt("--keypass", name="keypass", secret=True, help="Password of --key."),
    opt("--extracerts", name="extracerts", type=_FILE, multiple=True, help="More certificates for extraCerts (e.g. intermediates)."),
    opt("--pbm-owf", name="pbm_owf", default="sha256", show_default=True, help="PasswordBasedMac one-way function."),
    opt("--pbm-mac", name="pbm_mac", default="hmacWithSHA256", show_default=True, help="PasswordBasedMac MAC (hmacWithSHA256, hmac-sha1, ...)."),
    opt("--pbm-iterations", name="pbm_iterations", type=click.IntRange(1), default=500, show_default=True, help="PBM / PBMAC1 iteration count."),
    opt("--pbmac1", name="pbmac1", is_flag=True, default=False, help="Use PBMAC1 (RFC 9481) instead of PasswordBasedMac."),
    opt("--digest", name="digest", default="sha256", show_default=True, help="Digest for signatures (protection and POPO)."),
    opt("--rsa-pss", name="rsa_pss", is_flag=True, default=False, help="Sign with RSASSA-PSS."),
])

#: --unprotected-requests: on the commands that send requests built from these options
#: (crmf, p10cr, update, revoke, certconf, genm, bench); without credentials they refuse
#: to send (:func:`refuse_unprotected`), as openssl cmp does.
unprotected_option = _group([
    opt("--unprotected-requests", name="unprotected_requests", is_flag=True, default=False,
        help="Send the requests without protection when no credentials are given (no --authparam, "
             "--cert/--key or --keystore); without it such a command is refused, as with openssl "
             "-unprotected_requests."),
])

trust_options = _group([
    opt("--trusted", name="trusted", type=_FILE, multiple=True, help="Trust anchors for signed responses."),
    opt("--srvcert", name="srvcert", type=_FILE, help="Pin the server's signing certificate."),
    opt("--untrusted", name="untrusted", type=_FILE, multiple=True, help="Intermediate certificates for chain building."),
    opt("--expect-sender", name="expect_sender", metavar="DN", help="Require this sender DN in responses."),
    opt("--unprotected-errors", name="unprotected_errors", is_flag=True, default=False,
        help="Leniency: accept unprotected error messages and rejections (EJBCA sends them)."),
    opt("--missing-recip-nonce", name="missing_recip_nonce", is_flag=True, default=False,
        help="Leniency: accept responses without recipNonce."),
    opt("--accept-pvno1", name="accept_pvno1", is_flag=True, default=False, help="Leniency: accept pvno 1 responses."),
    opt("--ignore-keyusage", name="ignore_keyusage", is_flag=True, default=False,
        help="Leniency: do not demand digitalSignature keyUsage on the server's signer certificate."),
])

output_options = _group([
    opt("--dest", name="dest", type=_DIR, help="Write <CN>.pem, <CN>-key.pem (0600), <CN>-chain.pem into this directory."),
    opt("--certout", name="certout", type=_FILE, help="Write the new certificate (PEM)."),
    opt("--keyout", name="keyout", type=_FILE, help="Write the private key (PEM, mode 0600)."),
    opt("--chainout", name="chainout", type=_FILE, help="Write the issuer chain (PEM)."),
    opt("--extracertsout", name="extracertsout", type=_FILE, help="Write the response's extraCerts (PEM)."),
    opt("--cacertsout", name="cacertsout", type=_FILE, help="Write caPubs (PEM); genm caCerts result."),
    opt("--p12", name="p12", is_flag=True, default=False, help="Also write <CN>.p12 into --dest (password from --p12pwd)."),
    opt("--p12out", name="p12out", type=_FILE, help="Write key, certificate and chain as PKCS#12 (mode 0600)."),
    opt("--p12pwd", name="p12pwd", secret=True, help="Password for the PKCS#12 output (unencrypted without it)."),
])

#: Options of commands that request a certificate (crmf, p10cr, update).
request_options = _group([
    opt("--dn", "--subject", name="dn", metavar="DN", help="Subject DN: CN=dev1,O=Example or /O=Example/CN=dev1."),
    opt("--issuer", name="issuer", metavar="DN", help="Issuer DN for the template (and default recipient)."),
    opt("--altname", "--sans", name="altname", multiple=True,
        help="subjectAltName: dns:NAME, ip:ADDR, email:ADDR, uri:URI, dirName:DN (comma lists allowed, a DN keeps "
             "its own commas; bare names are DNS or IP). "
             "A DNS name is a host name (letters, digits, hyphens, dots; a leading *. allowed); several names are "
             "separated by commas, not spaces."),
    opt("--key-usage", name="key_usage", help="keyUsage names, comma-separated (digitalSignature,keyEncipherment,...)."),
    opt("--eku", name="eku", help="extendedKeyUsage names or OIDs, comma-separated (serverAuth,clientAuth,...)."),
    opt("--days", name="days", type=click.IntRange(1, 2_900_000), help="Requested validity in days from now."),
    opt("--not-before", name="not_before", metavar="TIME", help="Requested notBefore (ISO 8601, UTC when no zone)."),
    opt("--not-after", name="not_after", metavar="TIME", help="Requested notAfter (ISO 8601)."),
    opt("--serno", name="serno", metavar="HEX", help="Requested serial number (hex) in the template."),
    opt("--implicit-confirm", name="implicit_confirm", is_flag=True, default=False, help="Ask for implicit confirmation (no certConf)."),
    opt("--no-confirm", name="no_confirm", is_flag=True, default=False,
        help="Do not send certConf; save the transaction state for `cmpclient certconf`."),
    opt("--state-out", name="state_out", type=_FILE,
        help="Where --no-confirm saves the transaction state (default <dest or .>/<CN>.cmpstate.json)."),
])


# ----------------------------------------------------------------------------- building


@dataclass
class Credentials:
    """The signing identity: key, certificate, chain (for EndEntityCertificate / kur)."""

    key: Any
    cert: Any
    chain: list[Any]


def read_opt_secret(params: dict[str, Any], name: str, *, what: str, required: bool = False) -> bytes | None:
    return read_secret(
        params.get(name), what=what, required=required,
        allow_literal=bool(params.get("allow_literal_secrets")),
    )


def load_credentials(params: dict[str, Any], *, required: bool = False) -> Credentials | None:
    """--keystore (PKCS#12) or --cert/--key; None when neither is given (unless required)."""
    from cmpclient.keys import load_certificates, load_private_key

    if params.get("keystore") and (params.get("cert") or params.get("key")):
        raise UsageError("give --keystore or --cert/--key, not both",
                         hint="the keystore holds the key and the certificate; --cert/--key would be ignored")
    if params.get("keystore"):
        from cryptography.hazmat.primitives.serialization import pkcs12

        from cmpclient.keys.load import _read

        password = read_opt_secret(params, "keystorepwd", what="--keystorepwd", required=True)
        data = _read(params["keystore"], "PKCS#12")
        try:
            p12 = pkcs12.load_pkcs12(data, password)
        except ValueError:
            # load_pkcs12 gives the clear messages (wrong password / not PKCS#12).
            from cmpclient.keys import load_pkcs12

            load_pkcs12(params["keystore"], password)
            raise
        if p12.key is None or p12.cert is None:
            raise ConfigError(f"keystore {params['keystore']!r} holds no private key with a certificate")
        check_key_matches(p12.key, p12.cert.certificate, f"the key in --keystore {params['keystore']}",
                          "its certificate")
        friendly = params.get("extra_certs_friendly_name")
        chain = [
            c.certificate for c in p12.additional_certs
            if not friendly or (c.friendly_name or b"").decode(errors="replace") == friendly
        ]
        return Credentials(p12.key, p12.cert.certificate, chain)
    if params.get("key") and params.get("cert"):
        key = load_private_key(params["key"], read_opt_secret(params, "keypass", what="--keypass"))
        certs = load_certificates(params["cert"])
        check_key_matches(key, certs[0], f"--key {params['key']}", f"--cert {params['cert']}")
        return Credentials(key, certs[0], certs[1:])
    if required:
        raise UsageError("this command needs the current certificate and key", hint="pass --keystore FILE or --cert FILE --key FILE")
    return None


def check_key_matches(key: Any, cert: Any, key_what: str, cert_what: str) -> None:
    """KeyLoadError (exit 3: a key or certificate unusable) when ``key`` is not the private
    key of ``cert``; ``key_what``/``cert_what`` name them (``--key FILE``)."""
    from cmpclient.errors import KeyLoadError

    try:
        matches = key.public_key() == cert.public_key()
    except Exception:  # noqa: BLE001 - an exotic key type: SignatureProtection checks again
        return
    if not matches:
        raise KeyLoadError(f"{key_what} is not the private key of {cert_what} ({cert.subject.rfc4514_string()})",
                           hint="pass the key file that belongs to the certificate")


def _certs_from(paths: Sequence[str]) -> list[Any]:
    from cmpclient.keys import load_certificates

    out: list[Any] = []
    for p in paths or ():
        out += load_certificates(p)
    return out


#: Schemes a server URL may name; "http:/x" or "tcp:x" (a slash short) is left for the
#: transport to refuse rather than read as a host called "http".
_SCHEMES = ("http", "https", "tcp")


def with_scheme(url: str | None) -> str | None:
    """``url`` with ``http://`` in front when it names no scheme, as openssl cmp's
    ``-server [http[s]://]host[:port][/path]`` does: ``127.0.0.1:8080/pkix/``,
    ``[::1]:8080/pkix/`` and ``ca.example`` are HTTP URLs."""
    if not url or "://" in url:
        return url
    if url.split(":", 1)[0].lower() in _SCHEMES:
        return url
    return "http://" + url


def server_url(params: dict[str, Any]) -> str | None:
    """The server URL from --url/--server, else --host/--port/--alias; --path (openssl's
    ``-path``) replaces the URL's path ("defaults to any path given with -server, else '/'")."""
    path = params.get("path")
    if path is not None:
        path = "/" + str(path).strip().lstrip("/")
        if params.get("alias") and not params.get("url"):
            raise UsageError("give --path or --alias, not both",
                             hint="--alias builds the path /ejbca/publicweb/cmp/<alias>; --path names the whole path")
    if params.get("url"):
        url = with_scheme(str(params["url"]))
        if path is None or url is None:
            return url
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    if params.get("host") or params.get("alias"):
        host = params.get("host") or "localhost"
        port = params.get("port") or DEFAULT_EJBCA_PORT
        if path is not None:
            return f"http://{host}:{port}{path}"
        alias = params.get("alias") or "cmp"
        return f"http://{host}:{port}/ejbca/publicweb/cmp/{alias}"
    if path is not None:
        raise UsageError("--path needs a server", hint="pass --server HOST:PORT (or --url, --host/--port) with it")
    return None


def keep_alive_of(params: dict[str, Any]) -> int:
    """openssl's -keep_alive number from --keep-alive N / --no-keep-alive."""
    value = params.get("keep_alive")
    level = 1 if value is None else KEEP_ALIVE.convert(value, None, None)
    if params.get("no_keep_alive"):
        if level == 2:
            raise UsageError("--no-keep-alive and --keep-alive 2 contradict each other")
        level = 0
    return level


def open_client_transport(params: dict[str, Any]) -> Any:
    """The transport: HTTP(S)/TCP, wrapped for --reqin/--rspin and --reqout/--rspout."""
    from cmpclient.transport import open_transport

    url = server_url(params)
    refuse_url_password(params.get("url"), "--url", "url", allow_literal=bool(params.get("allow_literal_secrets")))
    inner = None
    if url:
        opts: dict[str, Any] = {"timeout": float(params.get("timeout") or 30.0)}
        keep_alive = keep_alive_of(params)
        if url.lower().startswith(("http://", "https://")):
            if keep_alive == 0:
                opts["headers"] = {"Connection": "close"}
            elif keep_alive == 2:
                opts["require_keep_alive"] = True
            if params.get("tls_insecure"):
                opts["verify"] = False
                if not logging.getLogger("cmpclient.transport").isEnabledFor(logging.WARNING):
                    # -q hides the transport's warning; switching verification off is never silent.
                    click.echo("warning: TLS server certificate verification is OFF (--tls-insecure)", err=True)
            elif params.get("tls_ca"):
                opts["verify"] = str(params["tls_ca"])
            if params.get("tls_cert") or params.get("tls_key"):
                if not (params.get("tls_cert") and params.get("tls_key")):
                    raise UsageError("--tls-cert and --tls-key go together")
                opts["client_cert"] = (str(params["tls_cert"]), str(params["tls_key"]))
        elif keep_alive == 2:
            raise UsageError("--keep-alive 2 (keep-alive required) cannot be honoured over tcp://",
                             hint="CMP over TCP uses one connection per message; use --keep-alive 1 or 0")
        inner = open_transport(url, **opts)
    transport = inner
    if params.get("rspin") or params.get("reqin"):
        from cmpclient.transport.file import ReplayTransport

        transport = ReplayTransport(params.get("rspin"), params.get("reqin"), inner=inner)
    if transport is None:
        raise UsageError("no CMP server given", hint="pass --url URL (or --host/--port/--alias for EJBCA, or --rspin FILES)")
    if params.get("reqout") or params.get("rspout"):
        from cmpclient.transport.file import CaptureTransport

        transport = CaptureTransport(transport, params.get("reqout"), params.get("rspout"), strict=False)
    return transport


def _auth_module(params: dict[str, Any], creds: Credentials | None) -> str | None:
    module = params.get("authmodule")
    if module:
        return next(m for m in AUTH_MODULES if m.lower() == str(module).lower())
    if creds is not None:
        return "EndEntityCertificate"
    if params.get("authparam"):
        return "HMAC"
    return None


def build_protection(params: dict[str, Any], creds: Credentials | None) -> tuple[Any, str | None]:
    """(protection or None, auth module name)."""
    module = _auth_module(params, creds)
    if module == "HMAC":
        from cmpclient.protection import MACProtection, PBMAC1Params, PBMParams

        secret = read_opt_secret(params, "authparam", what="--authparam", required=True)
        iterations = int(params.get("pbm_iterations") or 500)
        if params.get("pbmac1"):
            mparams: Any = PBMAC1Params.new(iterations=iterations, mac=params.get("pbm_mac") or "hmacWithSHA256")
        else:
            mparams = PBMParams.new(
                owf=params.get("pbm_owf") or "sha256", mac=params.get("pbm_mac") or "hmacWithSHA256", iterations=iterations
            )
        kid = params.get("keyid")
        return MACProtection(secret, mparams, sender_kid=kid.encode() if kid else None), module  # type: ignore[arg-type]
    if module == "EndEntityCertificate":
        if creds is None:
            raise UsageError("--authmodule EndEntityCertificate needs --keystore or --cert/--key")
        from cmpclient.protection import SignatureProtection

        return SignatureProtection(
            creds.key, creds.cert, creds.chain, digest=params.get("digest") or "sha256", rsa_pss=bool(params.get("rsa_pss"))
        ), module
    # RegTokenPwd and DnPartPwd authenticate inside the request; signed if a key is there.
    if creds is not None:
        from cmpclient.protection import SignatureProtection

        return SignatureProtection(creds.key, creds.cert, creds.chain, digest=params.get("digest") or "sha256"), module
    return None, module


#: What a request can be protected with, and the switch for sending it without.
CREDENTIALS = ("--authparam SOURCE with --keyid REF (shared secret, MAC), or --cert FILE --key FILE "
               "or --keystore FILE (signature); --unprotected-requests sends the request unprotected on purpose")


def refuse_unprotected(params: dict[str, Any], protection: Any, module: str | None, *, command: str | None = None) -> None:
    """UsageError when a request would go out unprotected without anybody asking for it: no
    credentials (no --authparam, no signing key, no --authmodule) and no --unprotected-requests.
    openssl cmp refuses the same way ("must give -key or -secret unless -unprotected_requests
    is used"). The library (ClientConfig(protection=None)) is not affected."""
    if protection is not None or module is not None or params.get("unprotected_requests"):
        return
    what = f"{command}: " if command else ""
    hint = f"give {CREDENTIALS}"
    if command == "certconf":
        hint = f"the state file does not record the credentials: give those of the enrolment again ({CREDENTIALS})"
    raise UsageError(f"{what}no credentials to protect the request with", hint=hint)


def build_client(
    params: dict[str, Any],
    *,
    ctx: click.Context | None = None,
    creds: Credentials | None | bool = True,
    allow_unprotected: bool = False,
) -> tuple[Any, Callable[[], None]]:
    """A ready :class:`~cmpclient.client.ClientConfig` and its ``cleanup()``.

    ``params`` are a command's parsed options (``ctx.params``) using the groups above.
    ``creds``: True loads --keystore/--cert/--key for signature protection, or pass a
    :class:`Credentials`/None. Without any credentials it raises UsageError unless
    ``params["unprotected_requests"]`` or ``allow_unprotected`` (the caller protects the
    requests itself, e.g. with a KEM-based MAC) says so.
    """
    from cmpclient.client import ClientConfig, Leniency
    from cmpclient.cli.render import get_output

    if creds is True:
        creds = load_credentials(params)
    protection, module = build_protection(params, creds or None)  # type: ignore[arg-type]
    trusted = _certs_from(params.get("trusted") or ())
    untrusted = _certs_from(params.get("untrusted") or ())
    server_cert = _certs_from([params["srvcert"]])[0] if params.get("srvcert") else None
    sender = params.get("sender")
    if sender is None and getattr(protection, "cert", None) is None and params.get("dn"):
        sender = params.get("dn")
    recipient = params.get("recipient") or params.get("issuer") or ""
    out = get_output(ctx)
    transport = open_client_transport(params)  # "no CMP server" comes first
    if not allow_unprotected:
        try:
            refuse_unprotected(params, protection, module,
                               command=ctx.command.name if ctx is not None and ctx.command else None)
        except UsageError:
            transport.close()
            raise
    extra = [c.public_bytes(_der()) for c in _certs_from(params.get("extracerts") or ())]
    config = ClientConfig(
        transport=transport,
        protection=protection,
        sender=sender,
        recipient=recipient,
        pvno=int(params.get("pvno") or 2),
        trusted=trusted,
        untrusted=untrusted,
        server_cert=server_cert,
        expect_sender=params.get("expect_sender"),
        implicit_confirm=bool(params.get("implicit_confirm")),
        total_timeout=params.get("total_timeout"),
        extra_certs=extra,
        lenient=Leniency(
            unprotected_errors=bool(params.get("unprotected_errors")),
            missing_recip_nonce=bool(params.get("missing_recip_nonce")),
            accept_pvno1=bool(params.get("accept_pvno1")),
            ignore_key_usage=bool(params.get("ignore_keyusage")),
        ),
        on_message=out.message_hook(),
    )

    def cleanup() -> None:
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - closing never hides the real result
            log.debug("closing the transport failed", exc_info=True)

    return config, cleanup


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def resolve_secret(spec: str | None, *, what: str, params: dict[str, Any]) -> bytes | None:
    return read_secret(spec, what=what, required=False, allow_literal=bool(params.get("allow_literal_secrets")))
