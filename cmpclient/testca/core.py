"""The test CA object the serving side uses: open a data directory, answer messages.

:meth:`TestCA.open` materialises the data directory on the first start (configuration
file, CA hierarchy, RA administrator and client certificates with keys, the nested-message
trust directory) under a file lock, so several worker processes starting at once create it
exactly once; later starts load what is there.
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cmpclient.testca.ca import CertificateAuthority, load_or_create_cas
from cmpclient.testca.config import DEFAULT_CONFIG_TOML, CertProfile, Config, MaterialiseEntry, load_config
from cmpclient.testca.handlers import Engine
from cmpclient.testca.store import RETENTION_S, Store

log = logging.getLogger("cmpclient.testca")

CONFIG_FILE = "testca.toml"
DB_FILE = "testca.sqlite"

#: The profile the generated RA administrator, client and device certificates are issued with.
_MATERIAL_PROFILE = CertProfile(
    name="MATERIAL",
    key_algs=("RSA2048", "RSA3072", "RSA4096", "secp256r1", "secp384r1", "secp521r1", "Ed25519", "Ed448",
              "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"),
    validity_days=730,
    key_usage=("digitalSignature", "keyEncipherment"),
    ext_key_usage=("clientAuth",),
)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TestCA:
    """An EJBCA-compatible CMP test CA over one data directory."""

    __test__ = False  # not a pytest test class
    tcp_alias = "tcp"

    def __init__(self, config: Config, data_dir: Path, store: Store, cas: dict[str, CertificateAuthority],
                 config_path: Path | None) -> None:
        self.config = config
        self.data_dir = data_dir
        self.store = store
        self.cas = cas
        self.config_path = config_path
        self.engine = Engine(config, store, cas, data_dir)

    # --- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config_path: Path | None, data_dir: Path) -> "TestCA":
        """Open (and on the first start create) the CA in ``data_dir``.

        ``config_path`` None uses ``data_dir/testca.toml``, written from the embedded default
        when it does not exist yet.
        """
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with _lock(data_dir / ".testca.lock"):
            if config_path is None:
                config_path = data_dir / CONFIG_FILE
                if not config_path.exists():
                    from cmpclient.keys.load import atomic_write

                    # It holds the HMAC secrets and end entity passwords: 0600, like the keys.
                    atomic_write(config_path, DEFAULT_CONFIG_TOML.encode("utf-8"))
            config = load_config(config_path)
            return cls._open_locked(config, data_dir, Path(config_path))

    @classmethod
    def from_config(cls, config: Config, data_dir: Path) -> "TestCA":
        """Open with an already parsed configuration (tests, embedding)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with _lock(data_dir / ".testca.lock"):
            return cls._open_locked(config, data_dir, None)

    @classmethod
    def _open_locked(cls, config: Config, data_dir: Path, config_path: Path | None) -> "TestCA":
        # Nonces are remembered longer than a strict alias's messageTime window, both ways:
        # a replay the store has forgotten is then refused for its messageTime.
        skew = max((a.max_clock_skew for a in config.aliases.values() if a.strict), default=0)
        store = Store(data_dir / DB_FILE, retention_s=max(RETENTION_S, 2 * skew + 3600))
        cas = load_or_create_cas(config, data_dir, store)
        self = cls(config, data_dir, store, cas, config_path)
        self._register_end_entities()
        self._materialise()
        return self

    def _register_end_entities(self) -> None:
        for ee in self.config.end_entities:
            self.store.upsert_end_entity(
                ee.username, dn=ee.dn, status=ee.status, password=ee.password, ca=ee.ca, cert_profile=ee.cert_profile,
                ee_profile=ee.ee_profile, ra_admin=ee.ra_admin, keep_existing=True,
            )

    def _issue_material(self, entry: MaterialiseEntry, directory: str, *, record: bool, ra_admin: bool = False,
                        status: str = "GENERATED") -> tuple[Path, Path]:
        from cmpclient.keys import generate_key, write_private_key
        from cmpclient.message.names import parse_dn

        out = self.data_dir / directory
        out.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = out / f"{entry.username}.pem", out / f"{entry.username}.key.pem"
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        ca = self.cas[entry.ca]
        key = generate_key(entry.key)
        if record:
            cert, _ = ca.issue(self.store, subject=parse_dn(entry.dn), public_key=key.public_key(), profile=_MATERIAL_PROFILE,
                               username=entry.username)
            self.store.upsert_end_entity(entry.username, dn=entry.dn, status=status, ca=ca.name, ra_admin=ra_admin or None,
                                         keep_existing=False)
        else:
            cert = _sign_unrecorded(ca, parse_dn(entry.dn), key.public_key())
        write_private_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def _materialise(self) -> None:
        cfg = self.config
        if cfg.ra_admin is not None:
            cert_path, _ = self._issue_material(cfg.ra_admin, "ra", record=True, ra_admin=True)
            if cfg.nested_trust_dir:
                trust = self.data_dir / cfg.nested_trust_dir
                trust.mkdir(parents=True, exist_ok=True)
                target = trust / cert_path.name
                if not target.exists():
                    target.write_bytes(cert_path.read_bytes())
        if cfg.client is not None:
            self._issue_material(cfg.client, "client", record=True)
        if cfg.vendor_device is not None:
            # Made by the vendor CA but not recorded: the 3gpp alias must accept it by its chain.
            self._issue_material(cfg.vendor_device, "vendor", record=False)

    # --- the public contract -----------------------------------------------------------------------------
    def alias_exists(self, alias: str) -> bool:
        return alias in self.config.aliases

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]:
        """Answer one CMP request: (HTTP status, DER response).  Never raises."""
        try:
            return 200, self.engine.handle(alias, der)
        except Exception:  # noqa: BLE001 - the engine already catches; this is the last line
            log.exception("test CA: unexpected failure on alias %s", alias)
            return 200, self.engine.error_message(None, None, "systemFailure", "internal error in the test CA")

    def summary(self) -> str:
        lines = [f"test CA data directory: {self.data_dir}"]
        if self.config_path is not None:
            lines.append(f"configuration: {self.config_path}")
        lines.append("CAs:")
        for ca in self.cas.values():
            parent = f" (issued by {ca.config.parent})" if ca.config.parent else " (root)"
            lines.append(f"  {ca.name}: {self.data_dir / 'ca' / (ca.name + '.pem')}{parent}  {ca.subject.rfc4514_string()}")
        for label, entry, directory in (("RA admin", self.config.ra_admin, "ra"), ("client", self.config.client, "client"),
                                         ("vendor device", self.config.vendor_device, "vendor")):
            if entry is not None:
                base = self.data_dir / directory
                lines.append(f"{label}: cert {base / (entry.username + '.pem')}  key {base / (entry.username + '.key.pem')}")
        lines.append("aliases (/ejbca/publicweb/cmp/<alias>):")
        for alias in self.config.aliases.values():
            tcp = "  [TCP]" if alias.name == self.tcp_alias else ""
            lines.append(f"  {alias.name}: {alias.summary_hint}{tcp}")
        new = [ee for ee in self.store.list_end_entities() if ee.status == "NEW" and ee.password]
        if new:
            # Usernames only: passwords are secrets (see the config file or `testca ee add`).
            lines.append("end entities awaiting enrolment (client mode): " + ", ".join(ee.username for ee in new))
        return "\n".join(lines)

    def close(self) -> None:
        self.store.close()

    # --- conveniences for tests and the admin CLI --------------------------------------------------------
    def ca(self, name: str) -> CertificateAuthority:
        return self.cas[name]

    def issuing_ca(self, alias: str) -> CertificateAuthority:
        return self.engine.default_ca(self.config.aliases.get(alias))


def _sign_unrecorded(ca: CertificateAuthority, subject: x509.Name, public_key: object) -> x509.Certificate:
    import datetime as _dt

    from cmpclient.testca.ca import hash_for_key, key_usage

    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(["digitalSignature", "keyEncipherment"]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca.key, hash_for_key(ca.key))
    )
