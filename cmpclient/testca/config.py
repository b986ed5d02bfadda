"""The test CA's configuration: one TOML file read into frozen dataclasses.

Everything the CA does per request is decided here: which CAs exist (a root and the issuing
``ManagementCA`` by default), what the certificate and end-entity profiles allow, which end
entities are pre-registered for client mode, and how every alias (``/ejbca/publicweb/cmp/<alias>``)
authenticates, names users, protects responses and injects faults.

:data:`DEFAULT_CONFIG_TOML` is the embedded default; :func:`load_config` parses a file or text
and refuses unknown keys, so a typo in a config file is an error and not a silently ignored
setting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmpclient.errors import ConfigError

MODES = ("client", "ra")
AUTH_MODULES = ("HMAC", "EndEntityCertificate", "RegTokenPwd", "DnPartPwd", "KemBasedMac")
NAME_SCHEMES = ("DN", "RANDOM", "FIXED", "USERNAME")
USERNAME_COMPONENTS = ("DN", "CN", "UID", "SN", "SERIALNUMBER", "OU", "O", "E")
RESPONSE_PROTECTIONS = ("signature", "pbe")
CA_PUBS_MODES = ("issuing", "chain", "none")
KEYID = "KeyId"

DEFAULT_CONFIG_TOML = """\
# cmpclient test CA configuration (EJBCA-compatible CMP endpoint).
# Paths are relative to the data directory.  See shared/spec/testca.md.

[[ca]]
name = "RootCA"
key = "RSA2048"
dn = "CN=RootCA,O=cmpclient test,C=SE"
validity_days = 3650

[[ca]]
name = "ManagementCA"
key = "RSA2048"
dn = "CN=ManagementCA,O=cmpclient test,C=SE"
validity_days = 1825
parent = "RootCA"
ra_secret = "password"

# A manufacturer CA outside this CA's hierarchy: it signs device certificates that the
# 3gpp alias accepts for initial enrolment (vendor certificate mode).
[[ca]]
name = "VendorCA"
key = "secp256r1"
dn = "CN=VendorCA,O=Device Vendor,C=SE"
validity_days = 3650

[[cert_profile]]
name = "CMP_CERT"
key_algs = ["RSA2048", "RSA3072", "RSA4096", "secp256r1", "secp384r1", "secp521r1", "Ed25519", "Ed448", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "ML-KEM-768", "ML-KEM-1024"]
server_keygen_key = "RSA2048"
validity_days = 730
allow_validity_override = true
key_usage = ["digitalSignature", "keyEncipherment"]
ext_key_usage = ["clientAuth"]
allow_key_usage_override = true
allow_san = true

[[cert_profile]]
name = "ENDUSER"
key_algs = ["RSA2048", "RSA3072", "RSA4096", "secp256r1", "secp384r1"]
validity_days = 365
allow_validity_override = false
key_usage = ["digitalSignature", "keyEncipherment"]
ext_key_usage = ["clientAuth", "emailProtection"]
allow_key_usage_override = false
allow_san = true

[[cert_profile]]
name = "SERVER"
key_algs = ["RSA2048", "RSA3072", "secp256r1", "secp384r1"]
validity_days = 397
allow_validity_override = false
key_usage = ["digitalSignature", "keyEncipherment"]
ext_key_usage = ["serverAuth"]
allow_key_usage_override = false
allow_san = true

[[ee_profile]]
name = "CMP_ENTITY"
default_ca = "ManagementCA"
default_cert_profile = "CMP_CERT"
cas = ["ManagementCA"]
cert_profiles = ["CMP_CERT", "ENDUSER", "SERVER"]

[[ee_profile]]
name = "SERVER_ENTITY"
default_ca = "ManagementCA"
default_cert_profile = "SERVER"
cas = ["ManagementCA"]
cert_profiles = ["SERVER"]

# Pre-registered end entities for client mode (status NEW may enrol once).
[[end_entity]]
username = "client1"
password = "foo123"
dn = "CN=client1,O=cmpclient test,C=SE"
ee_profile = "CMP_ENTITY"

[[end_entity]]
username = "client2"
password = "foo123"
dn = "CN=client2,O=cmpclient test,C=SE"
ee_profile = "CMP_ENTITY"

[[end_entity]]
username = "client3"
password = "foo123"
dn = "CN=client3,O=cmpclient test,C=SE"
ee_profile = "CMP_ENTITY"

[[end_entity]]
username = "device1"
dn = "CN=device1,O=cmpclient test,C=SE"
ee_profile = "CMP_ENTITY"

# Generated on first start (files under ra/ and client/ in the data directory).
[materialise]
ra_admin = { username = "raadmin", dn = "CN=RA Admin,O=cmpclient test,C=SE", ca = "ManagementCA", key = "secp256r1" }
client = { username = "clientcert", dn = "CN=clientcert,O=cmpclient test,C=SE", ca = "ManagementCA", key = "secp256r1" }
vendor_device = { username = "device1", dn = "CN=device1,O=Device Vendor,C=SE", ca = "VendorCA", key = "secp256r1" }
nested_trust_dir = "nested-trust"

[alias.ra]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "UID", prefix = "cmp" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "pbe"
allow_ra_verify = true

[alias.client]
mode = "client"
auth_modules = ["RegTokenPwd", "HMAC"]
extract_username_component = "CN"
response_protection = "signature"

[alias.ra-sig]
mode = "ra"
auth_modules = ["EndEntityCertificate"]
auth_parameters = { EndEntityCertificate = "ManagementCA" }
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "signature"
allow_ra_verify = true

[alias.keyid]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "KeyId"
cert_profile = "KeyId"
ee_profile = "KeyId"
response_protection = "pbe"

[alias.nested]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "signature"
allow_ra_verify = true
nested_trusted_dir = "nested-trust"

[alias.servergen]
mode = "ra"
auth_modules = ["HMAC", "EndEntityCertificate"]
auth_parameters = { EndEntityCertificate = "ManagementCA" }
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "signature"
allow_server_keygen = true

[alias.3gpp]
mode = "client"
auth_modules = ["EndEntityCertificate"]
extract_username_component = "CN"
vendor_cas = ["VendorCA"]
allow_automatic_key_update = true
allow_same_key_renewal = true
response_protection = "signature"

[alias.tcp]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "UID", prefix = "cmp" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "pbe"
allow_ra_verify = true

# RFC 9483 Lightweight CMP: MAC for the first ir, then signatures with a certificate this
# CA issued to the same subject; nonces, transactionID, messageTime and certConf enforced.
[alias.lwcmp]
mode = "ra"
auth_modules = ["HMAC", "EndEntityCertificate"]
auth_parameters = { EndEntityCertificate = "ManagementCA" }
ee_cert_authorises = "subject"
hmac_secret = "password"
hmac_bodies = ["ir"]
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "pbe"
strict = true
ca_pubs = "chain"
allow_same_key_renewal = false

# Indirect proof of possession (RFC 9810 section 5.2.8.3.2, RFC 4211 section 4.2/4.3):
# keyEncipherment (RSA) or keyAgreement (EC) with subsequentMessage encrCert. The certificate
# comes back encrypted to its own key and certConf's certHash is the proof; strict, so a
# missing or wrong certHash revokes the certificate. EJBCA answers badPOP, as the other
# aliases do (allow_indirect_popo is off by default).
[alias.indirect]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "signature"
strict = true
allow_indirect_popo = true
"""


@dataclass(frozen=True)
class CAConfig:
    name: str
    key: str
    dn: str
    validity_days: int = 3650
    parent: str | None = None
    ra_secret: str | None = None
    crl_days: int = 1


@dataclass(frozen=True)
class CertProfile:
    name: str
    key_algs: tuple[str, ...]
    validity_days: int = 730
    allow_validity_override: bool = False
    key_usage: tuple[str, ...] = ("digitalSignature", "keyEncipherment")
    ext_key_usage: tuple[str, ...] = ()
    allow_key_usage_override: bool = False
    allow_san: bool = True
    server_keygen_key: str | None = None


@dataclass(frozen=True)
class EEProfile:
    name: str
    default_ca: str
    default_cert_profile: str
    cas: tuple[str, ...] = ()
    cert_profiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndEntityConfig:
    username: str
    dn: str
    password: str | None = None
    ee_profile: str = "CMP_ENTITY"
    ca: str | None = None
    cert_profile: str | None = None
    status: str = "NEW"
    ra_admin: bool = False


@dataclass(frozen=True)
class NameGeneration:
    scheme: str = "DN"
    parameter: str = "CN;UID;SN"
    prefix: str = ""
    postfix: str = ""


@dataclass(frozen=True)
class Faults:
    """Fault injection per alias (all off by default)."""

    poll_count: int = 0  #: answer cert requests with ``waiting`` and this many pollReps
    check_after: int = 1  #: seconds in pollRep
    force_reject: str | None = None  #: failInfo of a forced ip/cp/kup/rp rejection
    force_error: str | None = None  #: failInfo of a forced error message
    unprotected_responses: bool = False
    delay_ms: int = 0


@dataclass(frozen=True)
class AliasConfig:
    name: str
    mode: str = "client"
    auth_modules: tuple[str, ...] = ("HMAC",)
    auth_parameters: tuple[tuple[str, str], ...] = ()
    extract_username_component: str = "DN"
    ra_name_generation: NameGeneration = field(default_factory=NameGeneration)
    ca: str = ""
    cert_profile: str = ""
    ee_profile: str = "CMP_ENTITY"
    response_protection: str = "signature"
    hmac_secret: str | None = None
    hmac_bodies: tuple[str, ...] = ()  #: body types HMAC may authenticate (empty: all)
    ee_cert_authorises: str = "admin"  #: RA mode signer: "admin" (RA admins) or "subject" (its own subject)
    allow_ra_verify: bool = False
    allow_server_keygen: bool = False
    allow_indirect_popo: bool = False  #: keyEncipherment/keyAgreement POPO with encrCert (RFC 9810 §5.2.8.3.2)
    allow_same_key_renewal: bool = True
    allow_automatic_key_update: bool = False
    allow_cmpv3: bool = True
    vendor_cas: tuple[str, ...] = ()
    nested_trusted_dir: str | None = None
    ra_admins: tuple[str, ...] = ()  #: extra RA admin usernames (besides end entities flagged ra_admin)
    ca_pubs: str = "issuing"
    extra_ca_pubs: tuple[str, ...] = ()  #: PEM files (relative to the data dir)
    extra_certs: tuple[str, ...] = ()
    strict: bool = False
    max_clock_skew: int = 300
    faults: Faults = field(default_factory=Faults)

    def auth_parameter(self, module: str) -> str | None:
        return dict(self.auth_parameters).get(module)

    @property
    def summary_hint(self) -> str:
        parts = [f"mode={self.mode}", "auth=" + ";".join(self.auth_modules)]
        if self.hmac_secret is not None:
            # Secrets are never printed: the user reads them in the configuration file.
            parts.append("secret=(see config)")
        if self.ca:
            parts.append(f"ca={self.ca}")
        parts.append(f"protection={self.response_protection}")
        if self.strict:
            parts.append("strict")
        if self.allow_server_keygen:
            parts.append("server-keygen")
        if self.allow_indirect_popo:
            parts.append("indirect-popo")
        if self.nested_trusted_dir:
            parts.append(f"nested-trust={self.nested_trusted_dir}")
        return " ".join(parts)


@dataclass(frozen=True)
class MaterialiseEntry:
    username: str
    dn: str
    ca: str
    key: str = "secp256r1"


@dataclass(frozen=True)
class Config:
    cas: tuple[CAConfig, ...]
    cert_profiles: dict[str, CertProfile]
    ee_profiles: dict[str, EEProfile]
    end_entities: tuple[EndEntityConfig, ...]
    aliases: dict[str, AliasConfig]
    ra_admin: MaterialiseEntry | None = None
    client: MaterialiseEntry | None = None
    vendor_device: MaterialiseEntry | None = None
    nested_trust_dir: str | None = None
    source: str = "<default>"

    def ca(self, name: str) -> CAConfig:
        for ca in self.cas:
            if ca.name == name:
                return ca
        raise ConfigError(f"no CA named {name!r} in {self.source}")


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", hint="allowed: " + ", ".join(sorted(allowed)))


def _build(cls: type, table: dict[str, Any], where: str, **extra: Any) -> Any:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    _check_keys(table, names - set(extra), where)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in table:
            v = table[f.name]
            values[f.name] = tuple(v) if isinstance(v, list) else v
    values.update(extra)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _alias(name: str, table: dict[str, Any]) -> AliasConfig:
    where = f"alias.{name}"
    table = dict(table)
    gen = _build(NameGeneration, table.pop("ra_name_generation", {}), where + ".ra_name_generation")
    faults = _build(Faults, table.pop("faults", {}), where + ".faults")
    params = table.pop("auth_parameters", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.auth_parameters must be a table")
    alias = _build(
        AliasConfig, table, where, name=name, ra_name_generation=gen, faults=faults,
        auth_parameters=tuple((str(k), str(v)) for k, v in params.items()),
    )
    if not name.isalnum() and not name.replace("-", "").isalnum():
        raise ConfigError(f"{where}: alias names are alphanumeric (a dash is tolerated)")
    if alias.mode not in MODES:
        raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, not {alias.mode!r}")
    for module in alias.auth_modules:
        if module not in AUTH_MODULES:
            raise ConfigError(f"{where}: unknown auth module {module!r}", hint="one of " + ", ".join(AUTH_MODULES))
    if alias.ra_name_generation.scheme not in NAME_SCHEMES:
        raise ConfigError(f"{where}: ra_name_generation.scheme must be one of {', '.join(NAME_SCHEMES)}")
    if alias.extract_username_component.upper() not in USERNAME_COMPONENTS:
        raise ConfigError(f"{where}: extract_username_component must be one of {', '.join(USERNAME_COMPONENTS)}")
    if alias.response_protection not in RESPONSE_PROTECTIONS:
        raise ConfigError(f"{where}: response_protection must be signature or pbe")
    if alias.ca_pubs not in CA_PUBS_MODES:
        raise ConfigError(f"{where}: ca_pubs must be one of {', '.join(CA_PUBS_MODES)}")
    if alias.ee_cert_authorises not in ("admin", "subject"):
        raise ConfigError(f"{where}: ee_cert_authorises must be admin or subject")
    return alias


def parse_config(text: str, source: str = "<string>") -> Config:
    """Parse TOML ``text`` into a :class:`Config` and check its cross references."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _check_keys(data, {"ca", "cert_profile", "ee_profile", "end_entity", "alias", "materialise"}, source)
    cas = tuple(_build(CAConfig, t, f"{source}: ca[{i}]") for i, t in enumerate(data.get("ca", [])))
    cps = {t["name"]: _build(CertProfile, t, f"{source}: cert_profile {t.get('name')}") for t in data.get("cert_profile", [])}
    eeps = {t["name"]: _build(EEProfile, t, f"{source}: ee_profile {t.get('name')}") for t in data.get("ee_profile", [])}
    ees = tuple(_build(EndEntityConfig, t, f"{source}: end_entity {t.get('username')}") for t in data.get("end_entity", []))
    aliases = {str(name): _alias(str(name), t) for name, t in data.get("alias", {}).items()}
    mat = dict(data.get("materialise", {}))
    _check_keys(mat, {"ra_admin", "client", "vendor_device", "nested_trust_dir"}, f"{source}: materialise")
    entries = {k: _build(MaterialiseEntry, mat[k], f"{source}: materialise.{k}") for k in ("ra_admin", "client", "vendor_device") if k in mat}
    config = Config(cas, cps, eeps, ees, aliases, nested_trust_dir=mat.get("nested_trust_dir"), source=source, **entries)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    from cmpclient.keys import parse_key_spec

    names = [ca.name for ca in config.cas]
    if not names:
        raise ConfigError(f"{config.source}: at least one [[ca]] is needed")
    if len(set(names)) != len(names):
        raise ConfigError(f"{config.source}: duplicate CA names")
    for ca in config.cas:
        parse_key_spec(ca.key)
        if ca.parent is not None and ca.parent not in names:
            raise ConfigError(f"{config.source}: CA {ca.name} names an unknown parent {ca.parent!r}")
    for cp in config.cert_profiles.values():
        for spec in cp.key_algs:
            parse_key_spec(spec)
    for eep in config.ee_profiles.values():
        if eep.default_ca not in names:
            raise ConfigError(f"{config.source}: ee_profile {eep.name} has an unknown default_ca {eep.default_ca!r}")
        if eep.default_cert_profile not in config.cert_profiles:
            raise ConfigError(f"{config.source}: ee_profile {eep.name} has an unknown default_cert_profile")
    for alias in config.aliases.values():
        if alias.ca not in ("", KEYID) and alias.ca not in names:
            raise ConfigError(f"alias.{alias.name}: unknown CA {alias.ca!r}")
        if alias.cert_profile not in ("", KEYID) and alias.cert_profile not in config.cert_profiles:
            raise ConfigError(f"alias.{alias.name}: unknown cert_profile {alias.cert_profile!r}")
        if alias.ee_profile not in ("", KEYID) and alias.ee_profile not in config.ee_profiles:
            raise ConfigError(f"alias.{alias.name}: unknown ee_profile {alias.ee_profile!r}")
        for vendor in alias.vendor_cas:
            if vendor not in names:
                raise ConfigError(f"alias.{alias.name}: unknown vendor CA {vendor!r}")


def load_config(path: Path | str | None = None, *, text: str | None = None) -> Config:
    """Load the configuration from ``path`` (or ``text``; neither: the embedded default)."""
    if text is not None:
        return parse_config(text, "<string>")
    if path is None:
        return parse_config(DEFAULT_CONFIG_TOML, "<default>")
    p = Path(path)
    try:
        content = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the test CA configuration {p}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the test CA configuration {p} is not UTF-8 text (byte {exc.start})",
                          hint="give a TOML file; `cmpclient testca` writes the default one into a new data directory") from None
    return parse_config(content, str(p))
