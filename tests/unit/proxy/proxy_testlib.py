"""Helpers for the CMP proxy tests: requests, a recording upstream, CRLs, configurations.

Requests are built with :mod:`cmpclient.message` and :mod:`cmpclient.protection`; the
signer material is the committed test PKI (``fixtures/pki``: ``client-ec`` issued by the
issuing CA, ``chain.pem`` = issuing CA + root).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from cmpclient.keys import generate_key, load_private_key
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import ParsedMessage, parse_message
from cmpclient.message.pkimessage import assemble, encode_message
from cmpclient.protection import MACProtection, PBMParams, SignatureProtection, protect_message
from cmpclient.proxy.config import parse_config

REPO = Path(__file__).resolve().parents[3]
PKI = REPO / "fixtures" / "pki"
CA_DN = "CN=ManagementCA,O=cmpclient test,C=SE"
SECRET = b"proxy-test-secret"
SECRET_ENV = "PROXY_TEST_SECRET"


def pem_cert(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((PKI / name).read_bytes())


def signer(kind: str = "ec") -> tuple[Any, x509.Certificate]:
    return load_private_key(PKI / f"client-{kind}.key.pem"), pem_cert(f"client-{kind}.crt.pem")


def issuing_ca() -> tuple[Any, x509.Certificate]:
    return load_private_key(PKI / "issuing-ca.key.pem"), pem_cert("issuing-ca.crt.pem")


def request(
    protection: Any = None,
    *,
    body: Any = None,
    sender_kid: bytes | None = None,
    recipient: str = CA_DN,
    extra_certs: Sequence[bytes] = (),
    pvno: int = 2,
    tid: bytes = b"T" * 16,
    nonce: bytes = b"N" * 16,
) -> bytes:
    """A DER PKIMessage (genm unless ``body``), protected with ``protection`` if given."""
    hb = HeaderBuilder().pvno(pvno).sender("CN=requester").recipient(recipient).transaction_id(tid).sender_nonce(nonce)
    if sender_kid is not None:
        hb = hb.sender_kid(sender_kid)
    msg = assemble(hb.build(), body if body is not None else B.genm_body(), extra_certs=extra_certs)
    if protection is not None:
        msg = protect_message(msg, protection)
    return encode_message(msg)


def mac(secret: bytes = SECRET, kid: bytes | None = b"ManagementCA", iterations: int = 500) -> MACProtection:
    return MACProtection(secret, PBMParams.new(iterations=iterations), sender_kid=kid)


def sig(kind: str = "ec", *, chain: bool = True) -> SignatureProtection:
    key, cert = signer(kind)
    return SignatureProtection(key, cert, chain=[issuing_ca()[1]] if chain else [])


def self_signed_sig() -> SignatureProtection:
    key = generate_key("secp256r1")
    name = x509.Name.from_rfc4514_string("CN=stranger")
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )
    return SignatureProtection(key, cert)


def make_crl(path: Path, revoked: Sequence[int] = (), *, key: Any = None, issuer: x509.Certificate | None = None,
             next_update: _dt.timedelta = _dt.timedelta(days=7), pem: bool = False) -> Path:
    ca_key, ca_cert = issuing_ca()
    key = key or ca_key
    issuer = issuer or ca_cert
    now = _dt.datetime.now(_dt.timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
         .last_update(min(now, now + next_update) - _dt.timedelta(minutes=5)).next_update(now + next_update))
    for serial in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - _dt.timedelta(minutes=1)).build()
        )
    crl = b.sign(key, hashes.SHA256())
    from cryptography.hazmat.primitives.serialization import Encoding

    path.write_bytes(crl.public_bytes(Encoding.PEM if pem else Encoding.DER))
    return path


class RecordingUpstream:
    """``send(alias, der)``: records every request; answers ``answer`` (or raises ``error``)."""

    def __init__(self, answer: bytes | None = None, error: BaseException | None = None,
                 reply: Callable[[str, bytes], bytes] | None = None) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.answers: list[bytes] = []
        self.answer = answer if answer is not None else request(body=B.pkiconf_body())
        self.error = error
        self.reply = reply

    def send(self, alias: str, der: bytes) -> bytes:
        self.calls.append((alias, der))
        if self.error is not None:
            raise self.error
        out = self.reply(alias, der) if self.reply is not None else self.answer
        self.answers.append(out)
        return out


def read_secret_env(env: dict[str, str]) -> Callable[[str, str], bytes]:
    """A secret reader resolving ``env:VAR`` from ``env`` (the CLI's rules otherwise)."""
    import os

    from cmpclient.cli.secrets import read_secret

    def read(source: str, what: str) -> bytes:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            value = read_secret(source, what=what, stdin_is_tty=False)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert value is not None
        return value

    return read


def config(toml: str, base_dir: Path | str = ".", env: dict[str, str] | None = None, **kw: Any) -> Any:
    """A ProxyConfig from TOML; ``env:PROXY_TEST_SECRET`` (and ``env``'s names) resolve."""
    return parse_config(toml, base_dir=base_dir, read_secret=read_secret_env({SECRET_ENV: SECRET.decode(), **(env or {})}), **kw)


def error_of(der: bytes) -> tuple[str, tuple[str, ...], tuple[str, ...], ParsedMessage]:
    """(body type, failInfo names, statusStrings, parsed) of a CMP error answer."""
    parsed = parse_message(der)
    assert parsed.body_type == "error", parsed.body_type
    st = parsed.content.status
    return st.status, st.fail_info, st.texts, parsed
