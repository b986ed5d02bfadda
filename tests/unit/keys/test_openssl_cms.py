"""Independent cross-checks of our CMS against the ``openssl cms`` CLI, both directions.

* ours -> openssl: ``envelope()`` output decrypted by ``openssl cms -decrypt`` (RSA ktri with
  PKCS#1 v1.5 and OAEP, ECDH kari, PWRI-KEK password); ``sign_content()`` verified by
  ``openssl cms -verify``.
* openssl -> ours: ``openssl cms -encrypt`` (ktri PKCS#1 v1.5 / OAEP / SKI, kari, pwri)
  decrypted by ``decrypt_enveloped_data``; ``openssl cms -sign`` over an
  AsymmetricKeyPackage verified by ``verify_signed_data``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cmpclient.keys import (
    KeyAgreeRecipient,
    KeyTransRecipient,
    PasswordRecipient,
    decrypt_enveloped_data,
    decrypt_returned_private_key,
    envelope,
    generate_key,
    sign_content,
    verify_signed_data,
    write_certificates,
    write_private_key,
)
from cmpclient.keys import _asn1 as A

from .conftest import make_cert

MSG = b"CMP returned key payload \x00\x01\x02 " * 7
PASSWORD = "test-pwri-password"  # test-only literal, passed to openssl via -pwri_password


def _run(cmd: list[Any]) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def _files(tmp: Path, key: Any, cert: Any) -> tuple[Path, Path]:
    write_private_key(tmp / "key.pem", key)
    write_certificates(tmp / "cert.pem", [cert])
    return tmp / "key.pem", tmp / "cert.pem"


# --- ours -> openssl ---------------------------------------------------------------------


@pytest.mark.parametrize("oaep", [False, True])
@pytest.mark.parametrize("use_ski", [False, True])
def test_openssl_decrypts_our_ktri(tmp_path: Path, openssl: str, rsa_key: Any, rsa_cert: Any, oaep: bool, use_ski: bool) -> None:
    keyf, certf = _files(tmp_path, rsa_key, rsa_cert)
    der = envelope(MSG, recipients=[KeyTransRecipient(rsa_cert, oaep=oaep, use_ski=use_ski)], as_content_info=True)
    (tmp_path / "env.der").write_bytes(der)
    _run([openssl, "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "env.der",
          "-recip", certf, "-inkey", keyf, "-out", tmp_path / "out.bin"])
    assert (tmp_path / "out.bin").read_bytes() == MSG


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
@pytest.mark.parametrize("kdf_hash", ["sha256", "sha384"])
def test_openssl_decrypts_our_kari(tmp_path: Path, openssl: str, curve: str, kdf_hash: str) -> None:
    key = generate_key(curve)
    cert = make_cert(key, "kari")
    keyf, certf = _files(tmp_path, key, cert)
    der = envelope(MSG, recipients=[KeyAgreeRecipient(cert, kdf_hash=kdf_hash)], as_content_info=True)
    (tmp_path / "env.der").write_bytes(der)
    _run([openssl, "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "env.der",
          "-recip", certf, "-inkey", keyf, "-out", tmp_path / "out.bin"])
    assert (tmp_path / "out.bin").read_bytes() == MSG


def test_openssl_decrypts_our_pwri_kek(tmp_path: Path, openssl: str) -> None:
    der = envelope(MSG, recipients=[PasswordRecipient(PASSWORD.encode(), iterations=2048, kek="pwri-kek")],
                   as_content_info=True)
    (tmp_path / "env.der").write_bytes(der)
    _run([openssl, "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "env.der",
          "-pwri_password", PASSWORD, "-out", tmp_path / "out.bin"])
    assert (tmp_path / "out.bin").read_bytes() == MSG


def test_openssl_decrypts_our_signed_key_package(tmp_path: Path, openssl: str, rsa_key: Any, rsa_cert: Any,
                                                 ca_key: Any, ca_cert: Any) -> None:
    """The whole CA-side product: decrypt with openssl, then verify the inner SignedData."""
    from cmpclient.keys import wrap_private_key_for_delivery

    keyf, certf = _files(tmp_path, rsa_key, rsa_cert)
    write_certificates(tmp_path / "ca.pem", [ca_cert])
    new_key = generate_key("P-256")
    der = wrap_private_key_for_delivery(new_key, recipients=[KeyTransRecipient(rsa_cert)],
                                        signer_key=ca_key, signer_cert=ca_cert, as_content_info=True)
    (tmp_path / "env.der").write_bytes(der)
    _run([openssl, "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "env.der",
          "-recip", certf, "-inkey", keyf, "-out", tmp_path / "sd.der"])
    # openssl cms wants a ContentInfo; ours is a bare SignedData as RFC 9810 carries it.
    from pyasn1.type import univ
    from pyasn1_modules import rfc5652

    ci = rfc5652.ContentInfo()
    ci["contentType"] = univ.ObjectIdentifier(A.ID_SIGNED_DATA)
    ci["content"] = univ.Any((tmp_path / "sd.der").read_bytes())
    (tmp_path / "sdci.der").write_bytes(A.der_encode(ci))
    _run([openssl, "cms", "-verify", "-inform", "DER", "-in", tmp_path / "sdci.der", "-CAfile", tmp_path / "ca.pem",
          "-purpose", "any", "-binary", "-out", tmp_path / "akp.der"])
    akp = (tmp_path / "akp.der").read_bytes()
    from pyasn1_modules import rfc5958

    pkg = A.der_decode(akp, rfc5958.AsymmetricKeyPackage(), "AsymmetricKeyPackage")
    got = serialization.load_der_private_key(A.der_encode(pkg[0]), None)
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert got.public_key().public_bytes(*fmt) == new_key.public_key().public_bytes(*fmt)


# Ed25519/Ed448 are left out: OpenSSL 3.0's CMS has no EdDSA support ("no default digest").
@pytest.mark.parametrize("signer_spec", ["RSA2048", "secp256r1", "secp384r1", "secp521r1"])
def test_openssl_verifies_our_signed_data(tmp_path: Path, openssl: str, signer_spec: str) -> None:
    from pyasn1.type import univ
    from pyasn1_modules import rfc5652

    key = generate_key(signer_spec)
    cert = make_cert(key, "signer")
    write_certificates(tmp_path / "signer.pem", [cert])
    sd = sign_content(MSG, A.ID_CT_KP_AKEY_PACKAGE, key, cert)
    ci = rfc5652.ContentInfo()
    ci["contentType"] = univ.ObjectIdentifier(A.ID_SIGNED_DATA)
    ci["content"] = univ.Any(sd)
    (tmp_path / "sd.der").write_bytes(A.der_encode(ci))
    _run([openssl, "cms", "-verify", "-inform", "DER", "-in", tmp_path / "sd.der", "-CAfile", tmp_path / "signer.pem",
          "-purpose", "any", "-binary", "-out", tmp_path / "out.bin"])
    assert (tmp_path / "out.bin").read_bytes() == MSG


# --- openssl -> ours ---------------------------------------------------------------------


def _openssl_encrypt(openssl: str, tmp: Path, extra: list[Any]) -> bytes:
    (tmp / "plain.bin").write_bytes(MSG)
    _run([openssl, "cms", "-encrypt", "-binary", "-aes256", "-in", tmp / "plain.bin",
          "-outform", "DER", "-out", tmp / "env.der", *extra])
    return (tmp / "env.der").read_bytes()


@pytest.mark.parametrize(
    "opts",
    [
        [],
        ["-keyid"],
        ["-keyopt", "rsa_padding_mode:oaep"],
        ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"],
    ],
    ids=["pkcs1v15", "pkcs1v15-keyid", "oaep-sha1", "oaep-sha256"],
)
def test_we_decrypt_openssl_ktri(tmp_path: Path, openssl: str, rsa_key: Any, rsa_cert: Any, opts: list[str]) -> None:
    _, certf = _files(tmp_path, rsa_key, rsa_cert)
    keyid = [o for o in opts if o == "-keyid"]
    keyopts = [o for o in opts if o != "-keyid"]
    der = _openssl_encrypt(openssl, tmp_path, [*keyid, "-recip", certf, *keyopts])
    assert decrypt_enveloped_data(der, private_key=rsa_key, certificate=rsa_cert) == MSG
    assert decrypt_enveloped_data(der, private_key=rsa_key) == MSG


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
@pytest.mark.parametrize("keyid", [False, True])
def test_we_decrypt_openssl_kari(tmp_path: Path, openssl: str, curve: str, keyid: bool) -> None:
    key = generate_key(curve)
    cert = make_cert(key, "kari")
    _, certf = _files(tmp_path, key, cert)
    der = _openssl_encrypt(openssl, tmp_path, [*(["-keyid"] if keyid else []), "-recip", certf])
    assert decrypt_enveloped_data(der, private_key=key, certificate=cert) == MSG
    assert decrypt_enveloped_data(der, private_key=key) == MSG


def test_we_decrypt_openssl_pwri(tmp_path: Path, openssl: str) -> None:
    der = _openssl_encrypt(openssl, tmp_path, ["-pwri_password", PASSWORD])
    assert decrypt_enveloped_data(der, password=PASSWORD.encode()) == MSG
    from cmpclient.errors import ProtectionError

    with pytest.raises(ProtectionError):
        decrypt_enveloped_data(der, password=b"not the password")


def test_we_decrypt_openssl_multi_recipient_pkcs8(tmp_path: Path, openssl: str, rsa_key: Any, rsa_cert: Any,
                                                  ec_key: Any, ec_cert: Any) -> None:
    """openssl envelopes a PKCS#8 key for an RSA and an EC recipient; each of us gets the key."""
    write_certificates(tmp_path / "r.pem", [rsa_cert])
    write_certificates(tmp_path / "e.pem", [ec_cert])
    new_key = generate_key("Ed25519")
    (tmp_path / "k.der").write_bytes(new_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _run([openssl, "cms", "-encrypt", "-binary", "-aes256", "-in", tmp_path / "k.der", "-outform", "DER",
          "-out", tmp_path / "env.der", "-recip", tmp_path / "r.pem", "-recip", tmp_path / "e.pem"])
    der = (tmp_path / "env.der").read_bytes()
    raw = serialization.PublicFormat.Raw
    for key, cert in ((rsa_key, rsa_cert), (ec_key, ec_cert)):
        got = decrypt_returned_private_key(der, private_key=key, certificate=cert)
        assert got.public_key().public_bytes(serialization.Encoding.Raw, raw) == new_key.public_key().public_bytes(
            serialization.Encoding.Raw, raw)


def test_we_verify_openssl_signed_key_package(tmp_path: Path, openssl: str, ca_key: Any, ca_cert: Any) -> None:
    from cmpclient.keys.encrypted import _asymmetric_key_package

    keyf, certf = _files(tmp_path, ca_key, ca_cert)
    new_key = generate_key("RSA2048")
    (tmp_path / "akp.der").write_bytes(_asymmetric_key_package(new_key))
    _run([openssl, "cms", "-sign", "-binary", "-nodetach", "-econtent_type", A.ID_CT_KP_AKEY_PACKAGE,
          "-in", tmp_path / "akp.der", "-signer", certf, "-inkey", keyf, "-outform", "DER", "-out", tmp_path / "sd.der"])
    ctype, content, signer = verify_signed_data((tmp_path / "sd.der").read_bytes(), signer_certificate=ca_cert)
    assert ctype == A.ID_CT_KP_AKEY_PACKAGE
    assert content == (tmp_path / "akp.der").read_bytes()
    assert signer == ca_cert
