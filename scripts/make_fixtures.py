#!/usr/bin/env python3
"""Regenerate the test PKI under ``fixtures/pki/`` (see ``fixtures/README.md``).

Usage::

    .venv/bin/python scripts/make_fixtures.py [--out fixtures/pki] [--check]

Everything is derived from fixed seeds, fixed names, fixed serial numbers and a fixed
validity window, so a re-run reproduces byte-identical files:

* EC P-256 and Ed25519 private keys are derived from SHAKE-256(seed, label);
* RSA-2048 primes come from a SHAKE-256 based deterministic generator + Miller-Rabin;
* ECDSA signatures use RFC 6979 deterministic nonces, RSA uses PKCS#1 v1.5, Ed25519 is
  deterministic by design.

The only randomised file is the PKCS#12 (its salts/IV are random); it is rewritten only
when its key or certificates changed, so re-running the script leaves the tree clean.

THIS IS TEST MATERIAL. The private keys are reproducible from this script by anyone and
must never be trusted for anything. The PKCS#12 password is ``test1234``.

Only the ``cryptography`` package is used.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "fixtures" / "pki"

SEED = b"cmpclient test PKI v1 -- public test material, never trust these keys"
NOT_BEFORE = _dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=_dt.timezone.utc)
NOT_AFTER = _dt.datetime(2045, 1, 1, 0, 0, 0, tzinfo=_dt.timezone.utc)  # 20 years
ORG = "cmpclient test"
P12_PASSWORD = b"test1234"
KEY_TYPES = ("rsa", "ec", "ed25519")


# --------------------------------------------------------------------------- keys


def _stream(label: str, n: int, counter: int = 0) -> bytes:
    return hashlib.shake_256(SEED + b"|" + label.encode() + b"|" + str(counter).encode()).digest(n)


def _ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 n
    scalar = int.from_bytes(_stream(label, 48), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _ed25519_key(label: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(_stream(label, 32))


_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _is_probable_prime(n: int, label: str) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for i in range(40):  # 40 deterministic-but-unpredictable bases: error < 2^-80
        a = int.from_bytes(_stream(f"{label}/mr/{n % 1000003}", 64, i), "big") % (n - 3) + 2
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(label: str, bits: int, e: int) -> int:
    for counter in range(1_000_000):  # bounded; a 1024-bit prime is found after ~350 tries
        cand = int.from_bytes(_stream(label, bits // 8, counter), "big")
        cand |= (3 << (bits - 2)) | 1  # top two bits set -> n has exactly 2*bits bits
        if (cand - 1) % e != 0 and _is_probable_prime(cand, label):
            return cand
    raise RuntimeError("no prime found")  # pragma: no cover


def _rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    e = 65537
    p = _prime(label + "/p", bits // 2, e)
    q = _prime(label + "/q", bits // 2, e)
    if p < q:
        p, q = q, p
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    pub = rsa.RSAPublicNumbers(e, p * q)
    priv = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=pub,
    )
    return priv.private_key()


def make_key(kt: str, label: str):
    if kt == "rsa":
        return _rsa_key(label)
    if kt == "ec":
        return _ec_key(label)
    if kt == "ed25519":
        return _ed25519_key(label)
    raise ValueError(kt)


# --------------------------------------------------------------------------- certs


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
        ]
    )


def _serial(label: str) -> int:
    # positive, 15 bytes, never zero, stable per label
    return int.from_bytes(hashlib.sha256(SEED + b"serial|" + label.encode()).digest()[:15], "big") | 1


def _sign(builder: x509.CertificateBuilder, issuer_key) -> x509.Certificate:
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        return builder.sign(issuer_key, None)
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return builder.sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(issuer_key, hashes.SHA256())


def make_cert(
    label: str,
    subject_cn: str,
    key,
    issuer_cert: x509.Certificate | None,
    issuer_key,
    *,
    ca: bool,
    path_len: int | None = None,
) -> x509.Certificate:
    pub = key.public_key()
    issuer_name = issuer_cert.subject if issuer_cert is not None else _name(subject_cn)
    aki_source = issuer_cert.public_key() if issuer_cert is not None else pub
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(issuer_name)
        .public_key(pub)
        .serial_number(_serial(label))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_source), critical=False)
    )
    if ca:
        ku = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )
    else:
        ku = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )
    b = b.add_extension(ku, critical=True)
    return _sign(b, issuer_key)


# --------------------------------------------------------------------------- output


def _pem_cert(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Writer:
    def __init__(self, out: Path, check: bool):
        self.out = out
        self.check = check
        self.changed: list[str] = []
        self.written: list[str] = []

    def write(self, name: str, data: bytes, secret: bool = False) -> None:
        path = self.out / name
        self.written.append(name)
        old = path.read_bytes() if path.exists() else None
        if old == data:
            if secret and not self.check:
                os.chmod(path, 0o600)
            return
        self.changed.append(name)
        if self.check:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)  # a leftover would keep its old mode: always a new file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600 if secret else 0o644)  # the umask does not narrow or widen it
            fh.write(data)
        os.replace(tmp, path)

    def write_p12(self, name: str, key, cert, cas) -> None:
        """PKCS#12 has random salts: keep the old file if it holds the same content."""
        path = self.out / name
        self.written.append(name)
        if path.exists():
            try:
                k, c, extra = pkcs12.load_key_and_certificates(path.read_bytes(), P12_PASSWORD)
                same = (
                    k is not None
                    and _pem_key(k) == _pem_key(key)
                    and c == cert
                    and list(extra) == list(cas)
                )
            except Exception:
                same = False
            if same:
                if not self.check:
                    os.chmod(path, 0o600)
                return
        data = pkcs12.serialize_key_and_certificates(
            b"cmp-client-ec", key, cert, list(cas), serialization.BestAvailableEncryption(P12_PASSWORD)
        )
        self.write(name, data, secret=True)


def generate(out: Path, check: bool = False) -> Writer:
    w = Writer(out, check)

    root_key = _ec_key("root-ca")
    root = make_cert("root-ca", "cmpclient test root CA", root_key, None, root_key, ca=True, path_len=1)
    sub_key = _ec_key("issuing-ca")
    sub = make_cert("issuing-ca", "cmpclient test issuing CA", sub_key, root, root_key, ca=True, path_len=0)

    w.write("root-ca.crt.pem", _pem_cert(root))
    w.write("root-ca.key.pem", _pem_key(root_key), secret=True)
    w.write("issuing-ca.crt.pem", _pem_cert(sub))
    w.write("issuing-ca.key.pem", _pem_key(sub_key), secret=True)
    w.write("chain.pem", _pem_cert(sub, root))
    w.write("trusted.pem", _pem_cert(root))

    for kt in KEY_TYPES:
        for role, cn in (("client", f"cmp-client-{kt}"), ("server", f"cmp-server-{kt}"), ("rsp", f"cmp-rsp-{kt}")):
            label = f"{role}-{kt}"
            key = make_key(kt, label)
            cert = make_cert(label, cn, key, sub, sub_key, ca=False)
            w.write(f"{label}.crt.pem", _pem_cert(cert))
            w.write(f"{label}.key.pem", _pem_key(key), secret=True)
            if role == "client" and kt == "ec":
                w.write_p12("client-ec.p12", key, cert, [sub, root])
    return w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default fixtures/pki)")
    ap.add_argument("--check", action="store_true", help="only report whether regeneration would change files")
    args = ap.parse_args(argv)
    w = generate(args.out, check=args.check)
    if args.check:
        if w.changed:
            print("fixtures out of date: " + ", ".join(w.changed))
            return 1
        print("fixtures up to date")
        return 0
    print(f"{len(w.written)} files in {args.out}; changed: {', '.join(w.changed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
