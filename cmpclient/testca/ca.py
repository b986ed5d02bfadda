"""CA keys and certificates, issuance against a certificate profile, and CRLs.

Key material lives in the data directory (``ca/<name>.key.pem`` mode 0600 and
``ca/<name>.pem``); :func:`load_or_create_cas` creates the hierarchy on the first start
(parents first) and loads it afterwards.  :meth:`CertificateAuthority.issue` turns a
requested subject, public key, validity and extensions into a certificate, applying what the
profile allows, and records it in the store with a fresh random serial.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from cmpclient.errors import CMPClientError, ConfigError
from cmpclient.testca.config import CAConfig, CertProfile, Config
from cmpclient.testca.store import Store, with_fresh_serial

UTC = _dt.timezone.utc

KEY_USAGE_NAMES = (
    "digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement",
    "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
)
_KU_ARGS = {
    "digitalSignature": "digital_signature", "contentCommitment": "content_commitment", "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment", "dataEncipherment": "data_encipherment", "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign", "cRLSign": "crl_sign", "encipherOnly": "encipher_only", "decipherOnly": "decipher_only",
}
EKU_NAMES = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
    "cmcRA": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.28"),
    "cmKGA": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.32"),
}


class IssuanceError(CMPClientError):
    """A request the profile does not allow; ``fail_info`` says why (badCertTemplate...)."""

    fail_info = "badCertTemplate"


def key_usage(names: Sequence[str], *, ca: bool = False) -> x509.KeyUsage:
    args = {v: False for v in set(_KU_ARGS.values())}
    for name in names:
        if name not in _KU_ARGS:
            raise ConfigError(f"unknown keyUsage {name!r}", hint="one of " + ", ".join(KEY_USAGE_NAMES))
        args[_KU_ARGS[name]] = True
    return x509.KeyUsage(**args)


def hash_for_key(key: Any) -> hashes.HashAlgorithm | None:
    """The digest a CA with ``key`` signs certificates and CRLs with (None: EdDSA, ML-DSA)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())
    return None


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def name_key(name: x509.Name) -> tuple:
    """A comparison key for a DN that ignores the RDN order and string types (EJBCA matches
    the recipient DN against CA DNs in any order)."""
    return tuple(sorted((a.oid.dotted_string, str(a.value).strip().lower()) for a in name))


@dataclass
class CertificateAuthority:
    config: CAConfig
    key: Any
    cert: x509.Certificate
    parent: "CertificateAuthority | None" = None
    cert_der: bytes = field(init=False)
    #: (cert, its AuthorityKeyIdentifier for the certificates it issues, its subject as
    #: text): read from the certificate once, not on every issuance; ``cert`` is the key.
    _issuer_cache: tuple[x509.Certificate, x509.AuthorityKeyIdentifier, str] | None = field(
        init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.cert_der = self.cert.public_bytes(serialization.Encoding.DER)

    def issuer_info(self) -> tuple[x509.AuthorityKeyIdentifier, str]:
        """The AuthorityKeyIdentifier of the certificates this CA issues and its subject
        as RFC 4514 text (the store's issuer column), cached while ``cert`` is the same."""
        cached = self._issuer_cache
        if cached is None or cached[0] is not self.cert:
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
            cached = self._issuer_cache = (self.cert, aki, self.cert.subject.rfc4514_string())
        return cached[1], cached[2]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def subject(self) -> x509.Name:
        return self.cert.subject

    @property
    def ski(self) -> bytes:
        return self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    def chain(self) -> list["CertificateAuthority"]:
        """This CA first, then its parents up to the root."""
        out, ca = [], self
        while ca is not None:
            out.append(ca)
            ca = ca.parent
        return out

    def chain_der(self) -> list[bytes]:
        return [ca.cert_der for ca in self.chain()]

    # --- issuance ------------------------------------------------------------------------------
    def issue(
        self,
        store: Store,
        *,
        subject: x509.Name,
        public_key: Any,
        profile: CertProfile,
        username: str | None,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        key_usage_names: Sequence[str] | None = None,
        ext_key_usages: Sequence[x509.ObjectIdentifier] | None = None,
        san: x509.SubjectAlternativeName | None = None,
        confirmed: bool = True,
        transaction_id: bytes | None = None,
        force_validity: bool = False,
        ee_status: str | None = None,
        ee_upsert: dict[str, Any] | None = None,
    ) -> tuple[x509.Certificate, int]:
        """Issue and store a certificate; returns it and its store id.

        Requested validity, keyUsage/extendedKeyUsage are used only where the profile
        allows an override (``force_validity`` is for tests and admin tools).
        ``ee_upsert`` (registering the end entity) and ``ee_status`` (its new status) go
        into the write that stores the certificate (:meth:`Store.insert_certificate`).
        """
        if len(subject) == 0:
            raise IssuanceError("the certificate template has an empty subject")
        now = _dt.datetime.now(UTC).replace(microsecond=0)
        max_after = now + _dt.timedelta(days=profile.validity_days)
        start, end = now - _dt.timedelta(minutes=5), max_after
        if force_validity or profile.allow_validity_override:
            if not_before is not None:
                start = not_before
            if not_after is not None:
                end = not_after if force_validity else min(not_after, max_after)
        if end <= start:
            raise IssuanceError("the requested validity ends before it starts")
        ku = profile.key_usage
        if type(public_key).__name__.startswith("MLKEM"):
            ku = ("keyEncipherment",)  # an ML-KEM key only encapsulates (draft-ietf-lamps-kyber-certificates: keyEncipherment)
        eku: Sequence[x509.ObjectIdentifier] = [EKU_NAMES[n] if n in EKU_NAMES else x509.ObjectIdentifier(n) for n in profile.ext_key_usage]
        if profile.allow_key_usage_override:
            if key_usage_names is not None:
                ku = tuple(key_usage_names)
            if ext_key_usages is not None:
                eku = list(ext_key_usages)

        aki, issuer_text = self.issuer_info()

        def make(serial: int) -> x509.Certificate:
            b = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(self.cert.subject)
                .public_key(public_key)
                .serial_number(serial)
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(aki, critical=False)
            )
            if ku:
                b = b.add_extension(key_usage(ku), critical=True)
            if eku:
                b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
            if san is not None and profile.allow_san:
                b = b.add_extension(san, critical=False)
            return b.sign(self.key, hash_for_key(self.key))

        def insert(cert: x509.Certificate, serial: int) -> int:
            der = cert.public_bytes(serialization.Encoding.DER)
            return store.insert_certificate(
                ca=self.name, serial=serial, subject=subject.rfc4514_string(), issuer=issuer_text,
                not_before=start.timestamp(), not_after=end.timestamp(), username=username, der=der,
                fingerprint=fingerprint(der), confirmed=confirmed, transaction_id=transaction_id, ee_status=ee_status,
                ee_upsert=ee_upsert,
            )

        return with_fresh_serial(store, self.name, make, insert)

    # --- CRL ---------------------------------------------------------------------------------------
    def crl(self, store: Store) -> x509.CertificateRevocationList:
        now = _dt.datetime.now(UTC).replace(microsecond=0)
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + _dt.timedelta(days=self.config.crl_days))
            .add_extension(x509.CRLNumber(int(time.time() * 1000)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False)
        )
        for rec in store.revoked_certificates(self.name):
            rb = (
                x509.RevokedCertificateBuilder()
                .serial_number(rec.serial)
                .revocation_date(_dt.datetime.fromtimestamp(rec.revocation_time or time.time(), UTC).replace(microsecond=0))
            )
            if rec.revocation_reason:
                try:
                    rb = rb.add_extension(x509.CRLReason(_CRL_REASON_FLAGS[rec.revocation_reason]), critical=False)
                except KeyError:
                    pass
            b = b.add_revoked_certificate(rb.build())
        return b.sign(self.key, hash_for_key(self.key))


_CRL_REASON_FLAGS = {
    1: x509.ReasonFlags.key_compromise, 2: x509.ReasonFlags.ca_compromise, 3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded, 5: x509.ReasonFlags.cessation_of_operation, 6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl, 9: x509.ReasonFlags.privilege_withdrawn, 10: x509.ReasonFlags.aa_compromise,
}


def _make_ca_cert(config: CAConfig, key: Any, parent: CertificateAuthority | None) -> x509.Certificate:
    from cmpclient.message.names import parse_dn

    subject = parse_dn(config.dn)
    now = _dt.datetime.now(UTC).replace(microsecond=0)
    issuer_name = parent.cert.subject if parent else subject
    signer = parent.key if parent else key
    pub = key.public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=config.validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True)
        # digitalSignature: the CA key also signs CMP responses (RFC 9483 §3.1 wants it).
        .add_extension(key_usage(["digitalSignature", "keyCertSign", "cRLSign"]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    if parent is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            parent.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False)
    return b.sign(signer, hash_for_key(signer))


def load_or_create_cas(config: Config, data_dir: Path, store: Store) -> dict[str, CertificateAuthority]:
    """Load every configured CA from ``data_dir/ca`` or create it (parents first)."""
    from cmpclient.keys import generate_key, load_private_key, write_private_key

    ca_dir = data_dir / "ca"
    ca_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, CertificateAuthority] = {}
    pending = list(config.cas)
    while pending:
        progressed = False
        for cfg in list(pending):
            if cfg.parent is not None and cfg.parent not in out:
                continue
            parent = out.get(cfg.parent) if cfg.parent else None
            key_path, cert_path = ca_dir / f"{cfg.name}.key.pem", ca_dir / f"{cfg.name}.pem"
            if key_path.exists() and cert_path.exists():
                key = load_private_key(key_path)
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            else:
                key = generate_key(cfg.key)
                cert = _make_ca_cert(cfg, key, parent)
                write_private_key(key_path, key)
                cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            ca = CertificateAuthority(cfg, key, cert, parent)
            store.put_ca(cfg.name, cert.subject.rfc4514_string(), cfg.parent, ca.cert_der)
            out[cfg.name] = ca
            pending.remove(cfg)
            progressed = True
        if not progressed:
            raise ConfigError("the CA hierarchy has a cycle: " + ", ".join(c.name for c in pending))
    return out
