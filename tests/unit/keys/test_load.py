"""Loading and writing keys, certificates and PKCS#12."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from cmpclient.errors import KeyLoadError
from cmpclient.keys import (
    generate_key,
    load_certificates,
    load_pkcs12,
    load_private_key,
    write_certificates,
    write_pkcs12,
    write_private_key,
)

from .conftest import make_cert


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_key().public_bytes(*fmt) == b.public_key().public_bytes(*fmt)


@pytest.mark.parametrize("spec", ["RSA2048", "secp256r1", "Ed25519", "Ed448", "ML-DSA-44"])
def test_write_load_roundtrip_plain_and_encrypted(tmp_path: Path, spec: str) -> None:
    key = generate_key(spec)
    write_private_key(tmp_path / "k.pem", key)
    assert _same(load_private_key(tmp_path / "k.pem"), key)
    write_private_key(tmp_path / "e.pem", key, password=b"secret")
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "e.pem").read_bytes()
    assert _same(load_private_key(tmp_path / "e.pem", b"secret"), key)


def test_written_key_mode_is_0600_even_with_open_umask(tmp_path: Path, rsa_key) -> None:  # type: ignore[no-untyped-def]
    old = os.umask(0)
    try:
        write_private_key(tmp_path / "k.pem", rsa_key)
        write_pkcs12(tmp_path / "k.p12", rsa_key, make_cert(rsa_key), [], b"pw")
    finally:
        os.umask(old)
    for name in ("k.pem", "k.p12"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    # No temporary files are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.p12", "k.pem"]


def test_overwrite_existing_world_readable_file_becomes_0600(tmp_path: Path, rsa_key) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "k.pem"
    p.write_text("old")
    p.chmod(0o644)
    write_private_key(p, rsa_key)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert _same(load_private_key(p), rsa_key)


def test_load_der_and_traditional_formats(tmp_path: Path, rsa_key, ec_key) -> None:  # type: ignore[no-untyped-def]
    der = rsa_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "k.der").write_bytes(der)
    assert _same(load_private_key(tmp_path / "k.der"), rsa_key)
    trad = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"pw"),
    )
    (tmp_path / "ec.pem").write_bytes(trad)
    assert b"Proc-Type: 4,ENCRYPTED" in trad
    assert _same(load_private_key(tmp_path / "ec.pem", b"pw"), ec_key)
    enc_der = rsa_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    (tmp_path / "e.der").write_bytes(enc_der)
    assert _same(load_private_key(tmp_path / "e.der", b"pw"), rsa_key)
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_private_key(tmp_path / "e.der", b"nope")


def test_wrong_password_vs_missing_vs_not_a_key(tmp_path: Path, rsa_key, rsa_cert) -> None:  # type: ignore[no-untyped-def]
    write_private_key(tmp_path / "e.pem", rsa_key, password=b"right")
    with pytest.raises(KeyLoadError, match=r"e\.pem.*wrong password"):
        load_private_key(tmp_path / "e.pem", b"wrong")
    with pytest.raises(KeyLoadError, match="encrypted but no password"):
        load_private_key(tmp_path / "e.pem")
    with pytest.raises(KeyLoadError, match="does not exist"):
        load_private_key(tmp_path / "missing.pem")
    write_certificates(tmp_path / "c.pem", [rsa_cert])
    with pytest.raises(KeyLoadError, match=r"c\.pem.*does not contain a private key"):
        load_private_key(tmp_path / "c.pem")
    write_certificates(tmp_path / "c.der", [rsa_cert], der=True)
    with pytest.raises(KeyLoadError, match="certificate, not a private key"):
        load_private_key(tmp_path / "c.der")
    (tmp_path / "junk").write_bytes(b"\x01\x02garbage")
    with pytest.raises(KeyLoadError, match="not a readable private key"):
        load_private_key(tmp_path / "junk")
    # A password for an unencrypted key is tolerated.
    write_private_key(tmp_path / "p.pem", rsa_key)
    assert _same(load_private_key(tmp_path / "p.pem", b"unused"), rsa_key)


def test_certificates_pem_chain_and_der(tmp_path: Path, rsa_cert, ec_cert, ca_cert) -> None:  # type: ignore[no-untyped-def]
    write_certificates(tmp_path / "chain.pem", [rsa_cert, ec_cert, ca_cert])
    assert load_certificates(tmp_path / "chain.pem") == [rsa_cert, ec_cert, ca_cert]
    assert stat.S_IMODE((tmp_path / "chain.pem").stat().st_mode) == 0o644
    write_certificates(tmp_path / "one.der", rsa_cert, der=True)
    assert load_certificates(tmp_path / "one.der") == [rsa_cert]
    write_private_key(tmp_path / "k.pem", generate_key("P-256"))
    with pytest.raises(KeyLoadError, match="contains no certificate"):
        load_certificates(tmp_path / "k.pem")
    (tmp_path / "junk.der").write_bytes(b"\x30\x03\x02\x01\x01")
    with pytest.raises(KeyLoadError, match="neither a PEM nor a DER certificate"):
        load_certificates(tmp_path / "junk.der")


def test_pkcs12_roundtrip_and_wrong_password(tmp_path: Path, rsa_key, rsa_cert, ca_cert) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "ks.p12"
    write_pkcs12(p, rsa_key, rsa_cert, [ca_cert], b"foo123")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    key, cert, extra = load_pkcs12(p, b"foo123")
    assert _same(key, rsa_key) and cert == rsa_cert and extra == [ca_cert]
    with pytest.raises(KeyLoadError, match=r"ks\.p12.*wrong password"):
        load_pkcs12(p, b"bad")
    (tmp_path / "x.p12").write_bytes(b"\x30\x03\x02\x01\x05")
    with pytest.raises(KeyLoadError, match="not a PKCS#12"):
        load_pkcs12(tmp_path / "x.p12", b"foo123")
    write_private_key(tmp_path / "k.pem", rsa_key)
    with pytest.raises(KeyLoadError, match="PEM file, not a PKCS#12"):
        load_pkcs12(tmp_path / "k.pem", None)


def test_pkcs12_from_other_writer_without_password(tmp_path: Path, ec_key, ec_cert) -> None:  # type: ignore[no-untyped-def]
    data = pkcs12.serialize_key_and_certificates(b"x", ec_key, ec_cert, None, serialization.NoEncryption())
    (tmp_path / "n.p12").write_bytes(data)
    key, cert, extra = load_pkcs12(tmp_path / "n.p12", None)
    assert _same(key, ec_key) and cert == ec_cert and extra == []


def test_pkcs12_made_by_openssl(tmp_path: Path, openssl: str, rsa_key, rsa_cert) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    write_private_key(tmp_path / "k.pem", rsa_key)
    write_certificates(tmp_path / "c.pem", [rsa_cert])
    subprocess.run(
        [openssl, "pkcs12", "-export", "-inkey", tmp_path / "k.pem", "-in", tmp_path / "c.pem",
         "-out", tmp_path / "o.p12", "-passout", "env:OSSL_P12_PW"],
        check=True, capture_output=True, timeout=60, env={**os.environ, "OSSL_P12_PW": "osslpw"},
    )
    key, cert, _ = load_pkcs12(tmp_path / "o.p12", b"osslpw")
    assert _same(key, rsa_key) and cert == rsa_cert
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_pkcs12(tmp_path / "o.p12", b"nope")


def test_unreadable_files_get_short_library_text_and_an_openssl_hint(tmp_path: Path) -> None:
    from cmpclient.keys import load_certificates

    bad_pem = tmp_path / "bad.pem"
    bad_pem.write_text("-----BEGIN CERTIFICATE-----\nMIIBxx==\n-----END CERTIFICATE-----\n")
    with pytest.raises(KeyLoadError, match="malformed certificate") as info:
        load_certificates(bad_pem)
    assert "cryptography.io" not in info.value.message and "for more details" not in info.value.message
    assert info.value.hint == f"look at it with: openssl x509 -in {bad_pem} -noout -text"
    junk = tmp_path / "junk.der"
    junk.write_bytes(b"\x30\x82\xff\xff\x01")
    with pytest.raises(KeyLoadError) as info:
        load_certificates(junk)
    assert "neither a PEM nor a DER certificate" in info.value.message and "openssl x509" in (info.value.hint or "")
    with pytest.raises(KeyLoadError) as info:
        load_private_key(junk)
    assert "not a readable private key" in info.value.message and "The data may be" not in info.value.message
    assert info.value.hint == f"look at it with: openssl pkey -in {junk} -noout"  # never -text: it prints the key
    odd = tmp_path / "it's junk.der"
    odd.write_bytes(b"\x30\x82\xff\xff\x01")
    with pytest.raises(KeyLoadError) as info:
        load_certificates(odd)
    import shlex

    assert shlex.split(info.value.hint.removeprefix("look at it with: ")) == ["openssl", "x509", "-in", str(odd), "-noout", "-text"]
