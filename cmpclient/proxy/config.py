"""The CMP proxy's configuration: one TOML file (or just ``--upstream URL``).

Format (every key optional except where said; paths are relative to the file)::

    upstream = "http://ca.example:8080/ejbca/publicweb/cmp/"  # default upstream, see below
    upstream_timeout = 30          # seconds to connect to, and then to wait for, the upstream
    upstream_verify = true         # TLS: true (system CAs), a CA bundle path, or false (logged)
    upstream_hold = 10             # seconds an open transaction's upstream connection waits for
                                   # the client's next message (certConf, pollReq); then closed
                                   # (after a pollRep its checkAfter is added)
    listen = "127.0.0.1:8081"      # HTTP listener (the command line's --listen wins)
    tcp_listen = "127.0.0.1:8829"  # optional CMP-over-TCP listener (--tcp-listen wins)
    tcp_alias = "tcp"              # the alias whose rules and upstream TCP requests use
    max_body_size = 100000         # bytes, as the test CA
    client_timeout = 30            # seconds a client may stay silent, as the test CA

    [alias.ra]                     # one table per alias: /ejbca/publicweb/cmp/ra and /ra
    upstream = "https://ca.example/ejbca/publicweb/cmp/ra"   # else the default upstream
    mac_keys = ["ManagementCA:env:PROXY_RA_SECRET"]          # KeyID:secret-source
    issuer_chain = "chains/"       # one PEM file, or a directory of PEM files
    crl = "crl/ManagementCA.crl"   # a CRL file (DER or PEM) or an http(s) URL
    crl_cache_ttl = 300            # seconds a fetched CRL is reused (less if nextUpdate is sooner)
    require_mac = true             # default: true when mac_keys is set
    require_signature = true       # default: true when issuer_chain is set
    max_pbm_iterations = 10000     # PBM/PBMAC1 iteration bound (a denial-of-service guard)
    require_key_usage = true       # the signer must assert digitalSignature (as openssl)

Upstream of an alias
    Its own ``upstream``, else the default (``upstream =`` or ``--upstream``): when the
    default ends with ``/`` the alias is appended (``.../cmp/`` + ``ra``), otherwise every
    alias goes to that URL as it is. ``http://``, ``https://`` and ``tcp://`` are accepted.
Which aliases exist
    The configured ones; with a default upstream, every well-formed alias (forwarded
    without checks unless configured). Anything else is HTTP 404.
Secrets
    ``mac_keys`` entries are ``KeyID:source``; the source is ``env:VAR`` or ``file:PATH``
    (``fd:N`` too), read once at start-up -- never a literal. The KeyID is matched against
    the request's senderKID and, failing that, the CN of its recipient (the CA name).
"""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cmpclient.errors import ConfigError
from cmpclient.proxy.upstream import DEFAULT_HOLD
from cmpclient.transport import redact_url

__all__ = [
    "AliasPolicy",
    "ProxyConfig",
    "SecretReader",
    "load_config",
    "parse_config",
    "upstream_for",
    "load_issuer_chain",
]

log = logging.getLogger("cmpclient.proxy")

#: ``read_secret(source, what) -> bytes``; the CLI passes :func:`cmpclient.cli.secrets.read_secret`.
SecretReader = Callable[[str, str], bytes]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CRL_TTL = 300.0
DEFAULT_MAX_PBM_ITERATIONS = 10_000
_TOP_KEYS = {
    "upstream", "upstream_timeout", "upstream_verify", "upstream_hold", "listen", "tcp_listen", "tcp_alias",
    "max_body_size", "client_timeout", "alias",
}
_ALIAS_KEYS = {
    "upstream", "mac_keys", "issuer_chain", "crl", "crl_cache_ttl", "require_mac", "require_signature",
    "max_pbm_iterations", "require_key_usage",
}
_UPSTREAM_SCHEMES = ("http://", "https://", "tcp://")


@dataclass(frozen=True)
class AliasPolicy:
    """What the proxy checks on one alias before forwarding, and where it forwards."""

    name: str
    upstream: str
    mac_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # KeyID -> secret
    require_mac: bool = False
    require_signature: bool = False
    issuer_chain: Path | None = None
    crl: str | None = None
    crl_cache_ttl: float = DEFAULT_CRL_TTL
    max_pbm_iterations: int = DEFAULT_MAX_PBM_ITERATIONS
    require_key_usage: bool = True

    @property
    def checks(self) -> bool:
        """True when requests are validated before forwarding."""
        return self.require_mac or self.require_signature

    def describe(self) -> str:
        """One line for the start-up summary (never a secret)."""
        forms = []
        if self.require_mac:
            forms.append(f"MAC with {len(self.mac_keys)} key(s)")
        if self.require_signature:
            forms.append(f"signature against {self.issuer_chain or 'NO CHAIN CONFIGURED'}")
        if not forms:
            return "no checks"
        return " or ".join(forms) + (f", signer checked against CRL {self.crl}" if self.crl else "")


@dataclass(frozen=True)
class ProxyConfig:
    aliases: Mapping[str, AliasPolicy] = field(default_factory=dict)
    default_upstream: str | None = None
    upstream_timeout: float = DEFAULT_TIMEOUT
    upstream_verify: bool | str = True
    upstream_hold: float = DEFAULT_HOLD
    listen: str | None = None
    tcp_listen: str | None = None
    tcp_alias: str = "tcp"
    max_body_size: int = 100_000
    client_timeout: float = DEFAULT_TIMEOUT

    def policy(self, alias: str) -> AliasPolicy | None:
        """The alias' policy; an unconfigured alias passes through to the default upstream."""
        configured = self.aliases.get(alias)
        if configured is not None:
            return configured
        if self.default_upstream is None:
            return None
        return AliasPolicy(name=alias, upstream=upstream_for(self.default_upstream, alias))


def upstream_for(default: str, alias: str) -> str:
    """``default + alias`` when ``default`` ends with ``/``, else ``default`` unchanged."""
    return default + alias if default.endswith("/") else default


def _check_upstream(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.lower().startswith(_UPSTREAM_SCHEMES):
        raise ConfigError(f"{where}: upstream must be an http://, https:// or tcp:// URL, got {redact_url(url) if isinstance(url, str) else url!r}")
    return url


def _number(value: Any, where: str, *, integer: bool = False, allow_zero: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) \
            or not math.isfinite(value):
        raise ConfigError(f"{where} must be a {'whole ' if integer else ''}number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where} must be {'at least' if allow_zero else 'greater than'} 0, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _path(value: Any, base: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a path, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _mac_keys(entries: Any, read_secret: SecretReader | None, where: str) -> dict[str, bytes]:
    if not isinstance(entries, list):
        raise ConfigError(f"{where} must be a list of \"KeyID:source\" strings")
    keys: dict[str, bytes] = {}
    for entry in entries:
        if not isinstance(entry, str) or ":" not in entry:
            raise ConfigError(f"{where}: {entry!r} is not KeyID:source", hint="e.g. \"ManagementCA:env:RA_SECRET\"")
        key_id, source = entry.split(":", 1)
        if not key_id:
            raise ConfigError(f"{where}: empty KeyID in {entry.split(':', 1)[0]!r}:...")
        if key_id in keys:
            raise ConfigError(f"{where}: KeyID {key_id!r} is listed twice")
        if read_secret is None:
            raise ConfigError(f"{where}: no secret reader to resolve the MAC keys with")
        keys[key_id] = read_secret(source, f"{where} key {key_id!r}")
    return keys


def _alias(name: str, table: Any, default_upstream: str | None, base: Path, read_secret: SecretReader | None) -> AliasPolicy:
    from cmpclient.testca.wsgi import HTTPRefusal, alias_from_path

    where = f"alias {name!r}"
    try:
        alias_from_path("/" + name)
    except HTTPRefusal as exc:
        raise ConfigError(f"{where}: not a usable alias name ({exc.text})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - _ALIAS_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", hint=f"known: {', '.join(sorted(_ALIAS_KEYS))}")
    if "upstream" in table:
        upstream = _check_upstream(table["upstream"], where)
    elif default_upstream is not None:
        upstream = upstream_for(default_upstream, name)
    else:
        raise ConfigError(f"{where} has no upstream and there is no default upstream", hint="set upstream = or pass --upstream")
    mac_keys = _mac_keys(table.get("mac_keys", []), read_secret, f"{where} mac_keys")
    chain = _path(table["issuer_chain"], base, f"{where} issuer_chain") if "issuer_chain" in table else None
    require_mac = _bool(table.get("require_mac", bool(mac_keys)), f"{where} require_mac")
    require_signature = _bool(table.get("require_signature", chain is not None), f"{where} require_signature")
    if require_mac and not mac_keys:
        raise ConfigError(f"{where}: require_mac needs mac_keys", hint="mac_keys = [\"CAName:env:VAR\"]")
    crl = table.get("crl")
    if crl is not None:
        if not isinstance(crl, str) or not crl:
            raise ConfigError(f"{where} crl must be a file path or an http(s) URL")
        if not crl.lower().startswith(("http://", "https://")):
            crl = str(_path(crl, base, f"{where} crl"))
        if not require_signature:
            raise ConfigError(f"{where}: crl checks the signer, so it needs require_signature / issuer_chain")
    return AliasPolicy(
        name=name,
        upstream=upstream,
        mac_keys=mac_keys,
        require_mac=require_mac,
        require_signature=require_signature,
        issuer_chain=chain,
        crl=crl,
        crl_cache_ttl=float(_number(table.get("crl_cache_ttl", DEFAULT_CRL_TTL), f"{where} crl_cache_ttl", allow_zero=True)),
        max_pbm_iterations=_number(table.get("max_pbm_iterations", DEFAULT_MAX_PBM_ITERATIONS), f"{where} max_pbm_iterations", integer=True),
        require_key_usage=_bool(table.get("require_key_usage", True), f"{where} require_key_usage"),
    )


def parse_config(
    data: Mapping[str, Any] | str,
    *,
    base_dir: Path | str = ".",
    read_secret: SecretReader | None = None,
    upstream: str | None = None,
    source: str = "<config>",
) -> ProxyConfig:
    """Build a :class:`ProxyConfig` from TOML text or its parsed table.

    ``upstream`` (``--upstream``) overrides the file's default upstream. Unknown keys are
    errors, so a typo never silently switches a check off.
    """
    if isinstance(data, str):
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}", hint=f"known: {', '.join(sorted(_TOP_KEYS))}")
    base = Path(base_dir)
    default = upstream if upstream is not None else data.get("upstream")
    if default is not None:
        default = _check_upstream(default, "default upstream")
    verify = data.get("upstream_verify", True)
    if isinstance(verify, str):
        verify = str(_path(verify, base, "upstream_verify"))
    elif not isinstance(verify, bool):
        raise ConfigError(f"upstream_verify must be true, false or a CA bundle path, got {verify!r}")
    tables = data.get("alias", {})
    if not isinstance(tables, dict):
        raise ConfigError("[alias.<name>] tables expected")
    aliases = {name: _alias(name, table, default, base, read_secret) for name, table in tables.items()}
    if not aliases and default is None:
        raise ConfigError(f"{source}: nothing to forward to", hint="set upstream = \"URL\" or pass --upstream URL, or add [alias.<name>] tables")
    for key in ("listen", "tcp_listen", "tcp_alias"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{key} must be a string")
    return ProxyConfig(
        aliases=aliases,
        default_upstream=default,
        upstream_timeout=float(_number(data.get("upstream_timeout", DEFAULT_TIMEOUT), "upstream_timeout")),
        upstream_verify=verify,
        upstream_hold=float(_number(data.get("upstream_hold", DEFAULT_HOLD), "upstream_hold")),
        listen=data.get("listen"),
        tcp_listen=data.get("tcp_listen"),
        tcp_alias=data.get("tcp_alias", "tcp"),
        max_body_size=_number(data.get("max_body_size", 100_000), "max_body_size", integer=True),
        client_timeout=float(_number(data.get("client_timeout", DEFAULT_TIMEOUT), "client_timeout")),
    )


def load_config(path: Path | str | None, *, read_secret: SecretReader | None = None, upstream: str | None = None) -> ProxyConfig:
    """Read the TOML file at ``path`` (or only ``upstream`` when ``path`` is None)."""
    if path is None:
        return parse_config({}, read_secret=read_secret, upstream=upstream, source="--upstream")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the proxy configuration {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the proxy configuration {str(p)!r} is not UTF-8 text (byte {exc.start})",
                          hint="give a TOML file") from None
    return parse_config(text, base_dir=p.parent, read_secret=read_secret, upstream=upstream, source=str(p))


def load_issuer_chain(path: Path | None) -> list[Any]:
    """The certificates of ``path`` (a PEM file or a directory of ``*.pem/*.crt/*.cer``).

    Read on every call, so a chain can be replaced without a restart; ``[]`` when the
    path is unset, missing or holds no certificate (the proxy answers systemUnavail).
    """
    from cryptography import x509

    if path is None:
        return []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".pem", ".crt", ".cer") and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        return []
    certs: list[Any] = []
    for f in files:
        try:
            certs.extend(x509.load_pem_x509_certificates(f.read_bytes()))
        except (ValueError, OSError) as exc:
            # A directory may hold other files; say so rather than fail every request.
            log.warning("issuer chain: %s skipped (%s)", f, exc)
    return certs
