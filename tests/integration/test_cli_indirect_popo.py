"""Indirect proof of possession end to end (RFC 9810 §5.2.8.3.2, RFC 4211 §4.2/§4.3).

``cmpclient crmf --popo keyenc`` against the in-process test CA (alias ``indirect``: strict,
``allow_indirect_popo``): keyEncipherment for RSA keys, keyAgreement for EC keys, both with
``subsequentMessage encrCert``.  The CA returns the certificate encrypted to its own key --
EncryptedValue with pvno 2 (RSA only), EnvelopedData with pvno 3 (ktri RSA-OAEP / kari ECDH)
-- the CLI decrypts it with the new key and saves it, and its certConf certHash is the proof:
the CA marks the certificate confirmed only then.

Independent peers:

* ``openssl cmp`` 3.0 as the client, ``-popo 2`` (keyEnc): OpenSSL 3.0 *does* do the indirect
  method -- it sends keyEncipherment ``subsequentMessage encrCert`` (pvno 2), decrypts our
  EncryptedValue with ``-newkey`` and proves possession with its certConf; the strict alias
  confirms the certificate.  What 3.0 cannot do (so it is not tested with it): pvno 3 (no
  EnvelopedData on its side) and keyAgreement -- for an EC key ``-popo 2`` still sends
  keyEncipherment, which our CA refuses with badPOP (a key-transport POPO needs an RSA key).
* The CMS part (our EnvelopedData, ktri and kari) is cross-checked with
  ``openssl cms -decrypt -inform DER -recip cert.pem -inkey key.pem``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cmpclient.cli.main import cli
from cmpclient.keys import generate_key

ALIAS = "indirect"
CA_DN = "/CN=ManagementCA/O=cmpclient test/C=SE"


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"NO_COLOR": "1", "IND_SECRET": "password"},
                              catch_exceptions=False)


def _write_key(path: Path, spec: str) -> Path:
    key = generate_key(spec)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _crmf(testca, tmp_path: Path, name: str, spec: str, pvno: int, *extra) -> tuple[object, Path, Path]:
    key = _write_key(tmp_path / f"{name}.key.pem", spec)
    certout = tmp_path / f"{name}.crt.pem"
    args = ["crmf", "--json", "--url", testca.url(ALIAS), "--secret", "env:IND_SECRET", "--ref", "ra",
            "--trusted", testca.root_cert, "--untrusted", testca.ca_chain, "--dn", f"CN={name},O=Test",
            "--newkey", key, "--popo", "keyenc", "--pvno", pvno, "--certout", certout, *extra]
    return _run(args), key, certout


def _record(testca, cert: x509.Certificate):
    return testca.ca.store.find_by_fingerprint(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest())


def _popo_and_container(req_der: bytes, rsp_der: bytes) -> tuple[str, str]:
    from cmpclient.message.parse import parse_message

    req = parse_message(req_der)
    popo = req.message["body"]["ir"][0]["popo"]
    rsp = parse_message(rsp_der)
    return popo.getName(), rsp.content.response(0).encrypted_cert.kind


@pytest.mark.parametrize("spec, pvno, popo, container", [
    ("RSA2048", 2, "keyEncipherment", "encryptedValue"),
    ("RSA2048", 3, "keyEncipherment", "envelopedData"),
    ("secp256r1", 3, "keyAgreement", "envelopedData"),
])
def test_cli_keyenc_popo(testca_server, tmp_path: Path, spec: str, pvno: int, popo: str, container: str) -> None:
    name = f"cli-ind-{spec}-{pvno}"
    req, rsp = tmp_path / "ir.der", tmp_path / "ip.der"
    r, key_path, certout = _crmf(testca_server, tmp_path, name, spec, pvno, "--reqout", f"{req},{tmp_path / 'conf.der'}",
                                 "--rspout", f"{rsp},{tmp_path / 'pkiconf.der'}")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["confirmed"] is True and doc["implicit_confirm"] is False
    cert = x509.load_pem_x509_certificate(certout.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert cert.public_key() == key.public_key()
    assert _popo_and_container(req.read_bytes(), rsp.read_bytes()) == (popo, container)
    rec = _record(testca_server, cert)
    assert rec.confirmed and not rec.revoked  # the certConf proved possession


def test_cli_keyenc_never_asks_for_implicit_confirm(testca_server, tmp_path: Path) -> None:
    r, _, certout = _crmf(testca_server, tmp_path, "cli-ind-implicit", "RSA2048", 3, "--implicit-confirm")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["confirmed"] is True and doc["implicit_confirm"] is False
    assert _record(testca_server, x509.load_pem_x509_certificate(certout.read_bytes())).confirmed


def test_cli_keyenc_ec_with_cmpv2_is_refused(testca_server, tmp_path: Path) -> None:
    r, _, certout = _crmf(testca_server, tmp_path, "cli-ind-ec2", "secp256r1", 2)
    assert r.exit_code != 0 and not certout.exists()
    assert "badPOP" in r.stderr and "EncryptedValue" in r.stderr, r.stderr


def test_cli_keyenc_refused_by_ejbca_like_alias(testca_server, tmp_path: Path) -> None:
    key = _write_key(tmp_path / "k.pem", "RSA2048")
    r = _run(["crmf", "--url", testca_server.url("ra"), "--secret", "env:IND_SECRET", "--ref", "ra",
              "--dn", "CN=cli-ind-ra,UID=cli-ind-ra", "--newkey", key, "--popo", "keyenc", "--certout", tmp_path / "c.pem"])
    assert r.exit_code != 0 and "badPOP" in r.stderr, r.stderr


def test_cli_keyenc_signature_only_key_is_a_usage_error(testca_server, tmp_path: Path) -> None:
    key = _write_key(tmp_path / "ed.pem", "Ed25519")
    r = _run(["crmf", "--url", testca_server.url(ALIAS), "--secret", "env:IND_SECRET", "--ref", "ra",
              "--dn", "CN=cli-ind-ed", "--newkey", key, "--popo", "keyenc"])
    assert r.exit_code != 0 and "--popo keyenc needs an RSA" in r.stderr, r.stderr


# --------------------------------------------------------------------------- openssl peers


def _openssl() -> str:
    from openssl_peer import openssl_binary  # type: ignore[import-not-found]

    return openssl_binary()


@pytest.mark.interop
def test_openssl_cmp_client_indirect_popo_rsa(testca_server, tmp_path: Path) -> None:
    """openssl cmp 3.0 ``-popo 2``: keyEncipherment encrCert, our EncryptedValue, its certConf proves it."""
    from openssl_peer import run_openssl_client  # type: ignore[import-not-found]

    key = _write_key(tmp_path / "ossl.key.pem", "RSA2048")
    certout = tmp_path / "ossl.crt.pem"
    req, rsp = tmp_path / "ossl-ir.der", tmp_path / "ossl-ip.der"
    res = run_openssl_client(
        cmd="ir", server=testca_server.url(ALIAS), newkey=key, subject="/CN=ossl-ind-rsa/O=cmpclient test", popo=2,
        ref="ra", secret="env:IND_SECRET", recipient=CA_DN, trusted=testca_server.root_cert, certout=certout,
        unprotected_errors=True, reqout=f"{req},{tmp_path / 'ossl-conf.der'}", rspout=f"{rsp},{tmp_path / 'ossl-pkiconf.der'}",
        env={"IND_SECRET": "password"},
    )
    assert res.returncode == 0, res.describe()
    assert "sending CERTCONF" in res.output and "received PKICONF" in res.output, res.describe()
    assert _popo_and_container(req.read_bytes(), rsp.read_bytes()) == ("keyEncipherment", "encryptedValue")
    cert = x509.load_pem_x509_certificate(certout.read_bytes())
    assert cert.public_key() == serialization.load_pem_private_key(key.read_bytes(), None).public_key()
    rec = _record(testca_server, cert)
    assert rec.confirmed and not rec.revoked


@pytest.mark.interop
def test_openssl_cmp_client_keyenc_with_ec_key_is_bad_pop(testca_server, tmp_path: Path) -> None:
    """openssl 3.0 sends keyEncipherment (not keyAgreement) for an EC key: badPOP."""
    from openssl_peer import run_openssl_client  # type: ignore[import-not-found]

    key = _write_key(tmp_path / "ossl-ec.key.pem", "secp256r1")
    res = run_openssl_client(
        cmd="ir", server=testca_server.url(ALIAS), newkey=key, subject="/CN=ossl-ind-ec/O=cmpclient test", popo=2,
        ref="ra", secret="env:IND_SECRET", recipient=CA_DN, trusted=testca_server.root_cert,
        certout=tmp_path / "ossl-ec.crt.pem", unprotected_errors=True, env={"IND_SECRET": "password"},
    )
    assert res.returncode != 0
    assert "badPOP" in res.output and "keyEncipherment POPO needs a key-transport (RSA) key" in res.output, res.describe()


@pytest.mark.interop
@pytest.mark.parametrize("spec", ["RSA2048", "secp256r1"])
def test_openssl_cms_decrypts_our_enveloped_certificate(testca_server, tmp_path: Path, spec: str) -> None:
    """``openssl cms -decrypt`` recovers the certificate from the EnvelopedData our CA sent."""
    from pyasn1.type import univ

    from cmpclient.asn1 import codec
    from cmpclient.keys import _asn1 as KA
    from cmpclient.message.parse import parse_message

    rsp = tmp_path / "ip.der"
    r, key, certout = _crmf(testca_server, tmp_path, f"cms-ind-{spec}", spec, 3, "--rspout", f"{rsp},{tmp_path / 'pkiconf.der'}")
    assert r.exit_code == 0, r.stdout + r.stderr
    info = parse_message(rsp.read_bytes()).content.response(0).encrypted_cert
    assert info.kind == "envelopedData"
    oid = codec.encode(univ.ObjectIdentifier(KA.ID_ENVELOPED_DATA))  # ContentInfo for openssl cms
    explicit = codec.der_header(0xA0, len(info.der)) + info.der
    content_info = codec.der_header(0x30, len(oid) + len(explicit)) + oid + explicit
    (tmp_path / "env.der").write_bytes(content_info)
    out = tmp_path / "plain.der"
    proc = subprocess.run(
        [_openssl(), "cms", "-decrypt", "-inform", "DER", "-in", str(tmp_path / "env.der"), "-recip", str(certout),
         "-inkey", str(key), "-binary", "-out", str(out)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cert = x509.load_pem_x509_certificate(certout.read_bytes())
    assert out.read_bytes() == cert.public_bytes(serialization.Encoding.DER)
