"""Our client (library and CLI) against the bundled test CA, for what openssl 3.0 cannot send.

The issue asks for "all four authentication modules, KeyID, TCP transport" end to end:

* HMAC -- RA mode (alias ``ra``: PBM with several owf/mac/iteration choices and PBMAC1; the
  CA's answer must be MAC-protected with the same algorithm family and parameters but a fresh
  salt, which proves it verified our MAC), client mode (alias ``client``: a freshly registered
  end entity's password), and the CA's iteration bound (> 10 000 -> badRequest).
* EndEntityCertificate -- RA mode (``ra-sig``: the RA administrator via --cert/--key and via
  a PKCS#12 --keystore; a non-admin certificate is refused) and client mode (``3gpp``: a
  vendor device certificate from ``data_dir/vendor``).
* RegTokenPwd (``client``: unprotected request with a regToken control) and DnPartPwd (an
  alias added with ``testca_factory``: the password is the UID of the subject DN).
* KeyId (``keyid``: the senderKID names the end-entity profile, which decides CA and
  certificate profile).
* TCP (``tcp``): ir + certConf and rr with the CLI (CliRunner and the installed
  ``.venv/bin/cmpclient``), and the library's TCPTransport with implicit confirmation.

Fresh end entities are registered per test (``cmpclient testca ee add`` or the store API) so
the pre-registered ``client1..3`` are never consumed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import oids
from cmpclient.cli.main import cli
from cmpclient.client import ClientConfig, enroll, revoke
from cmpclient.errors import CMPErrorMessage, CMPRejection, ExitCode, ProtectionError
from cmpclient.keys import generate_key, load_certificates, load_private_key, write_pkcs12, write_private_key
from cmpclient.message.parse import parse_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, PBMAC1Params, PBMParams, popo_signer, verify_protection
from cmpclient.transport.http import HTTPTransport
from cmpclient.transport.tcp import TCPTransport

REPO = Path(__file__).resolve().parents[2]
CMPCLIENT_EXE = REPO / ".venv" / "bin" / "cmpclient"
RA_SECRET = "password"
CA_SUBJECT = "CN=ManagementCA,O=cmpclient test,C=SE"

#: The factory CA of this module: a second issuing CA under the root, an end-entity profile
#: that defaults to it (for KeyId), and a client-mode alias authenticating with DnPartPwd(UID).
EXTRA_TOML = """
[[ca]]
name = "DeviceSubCA"
key = "secp256r1"
dn = "CN=DeviceSubCA,O=cmpclient test,C=SE"
validity_days = 1000
parent = "RootCA"

[[ee_profile]]
name = "DEVICE_ENTITY"
default_ca = "DeviceSubCA"
default_cert_profile = "ENDUSER"
cas = ["DeviceSubCA"]
cert_profiles = ["ENDUSER"]

[alias.dnpart]
mode = "client"
auth_modules = ["DnPartPwd"]
auth_parameters = { DnPartPwd = "UID" }
extract_username_component = "CN"
response_protection = "signature"
"""


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def own_ca(testca_factory):
    """A separately configured CA for this module (DeviceSubCA, DEVICE_ENTITY, alias dnpart)."""
    return testca_factory("client-testca-auth", extra_toml=EXTRA_TOML)


def _uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _cli(args: list[Any], env: dict[str, str] | None = None):
    full_env = {"NO_COLOR": "1", "RA_SECRET": RA_SECRET, "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", **(env or {})}
    return CliRunner().invoke(cli, [str(a) for a in args], env=full_env, catch_exceptions=False)


def _out(r) -> str:
    return f"exit={r.exit_code}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def _trust(ca) -> list[Any]:
    return ["--trusted", ca.root_cert, "--untrusted", ca.ca_chain]


def _spki(key_or_cert: Any) -> bytes:
    pub = key_or_cert.public_key() if hasattr(key_or_cert, "public_key") else key_or_cert
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _eku(cert: x509.Certificate) -> set:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _record(ca, cert: x509.Certificate, ca_name: str = "ManagementCA"):
    rec = ca.ca.store.find_certificate(ca_name, cert.serial_number)
    assert rec is not None, f"the CA has no record of serial {cert.serial_number:x}"
    return rec


def _protection_alg(der: bytes) -> rfc5280.AlgorithmIdentifier:
    """The protectionAlg of a DER PKIMessage as an rfc5280 AlgorithmIdentifier."""
    msg = parse_message(der).message
    src = msg["header"]["protectionAlg"]
    assert src.isValue and msg["protection"].isValue, "the message is not protected"
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = src["algorithm"]
    if src["parameters"].isValue:
        alg["parameters"] = univ.Any(bytes(src["parameters"]))
    return alg


def _mac_params(der: bytes) -> Any:
    alg = _protection_alg(der)
    oid = str(alg["algorithm"])
    if oid == oids.PASSWORD_BASED_MAC:
        return PBMParams.from_algorithm_identifier(alg)
    if oid == oids.PBMAC1:
        return PBMAC1Params.from_algorithm_identifier(alg)
    raise AssertionError(f"not MAC protection: {oids.oid_name(alg['algorithm'])}")


def add_end_entity_cli(ca, username: str, password: str, dn: str) -> None:
    """Register ``username`` (status NEW) with ``cmpclient testca ee add`` on the served data dir."""
    r = _cli(["testca", "ee", "add", "--data-dir", ca.data_dir, "--username", username,
              "--password-source", "env:EE_PASSWORD", "--dn", dn, "--profile", "CMP_ENTITY", "--json"],
             env={"EE_PASSWORD": password})
    assert r.exit_code == 0, _out(r)
    assert password not in r.stdout
    assert ca.ca.store.get_end_entity(username).status == "NEW"


def add_end_entity_store(ca, username: str, password: str | None, dn: str, ee_profile: str = "CMP_ENTITY") -> None:
    ca.ca.store.upsert_end_entity(username, dn=dn, status="NEW", password=password, ee_profile=ee_profile)


# =========================================================================== 1. HMAC


PBM_CHOICES = [
    pytest.param([], ("sha256", "hmacWithSHA256", 500), id="default"),
    pytest.param(["--pbm-owf", "sha1", "--pbm-mac", "hmac-sha1", "--pbm-iterations", "100"], ("sha1", "hmac-sha1", 100), id="sha1"),
    pytest.param(["--pbm-owf", "sha512", "--pbm-mac", "hmacWithSHA512", "--pbm-iterations", "10000"],
                 ("sha512", "hmacWithSHA512", 10000), id="sha512-at-the-limit"),
    pytest.param(["--pbm-owf", "sha3-256", "--pbm-mac", "hmacWithSHA384", "--pbm-iterations", "1234"],
                 ("sha3-256", "hmacWithSHA384", 1234), id="sha3"),
]


@pytest.mark.parametrize("flags,expected", PBM_CHOICES)
def test_ra_hmac_pbm_variants_are_verified_and_answered_in_kind(testca_server, tmp_path, flags, expected):
    owf, mac, iterations = expected
    name = _uid("pbm")
    req_files = f"{tmp_path}/ir.der,{tmp_path}/certconf.der"
    rsp_files = f"{tmp_path}/ip.der,{tmp_path}/pkiconf.der"
    r = _cli(["crmf", "--json", "--url", testca_server.url("ra"), "--secret", "env:RA_SECRET", "--keyid", "ra-pbm",
              "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--certout", tmp_path / "cert.pem",
              "--reqout", req_files, "--rspout", rsp_files, *flags])
    assert r.exit_code == 0, _out(r)
    doc = json.loads(r.stdout)
    assert doc["confirmed"] is True and doc["certificate"]["issuer"] == CA_SUBJECT
    assert f"CN={name}" in doc["certificate"]["subject"]

    ir, ip = (tmp_path / "ir.der").read_bytes(), (tmp_path / "ip.der").read_bytes()
    sent = _mac_params(ir)
    assert isinstance(sent, PBMParams) and (sent.owf, sent.mac, sent.iterations) == (owf, mac, iterations)
    for rsp_der in (ip, (tmp_path / "pkiconf.der").read_bytes()):
        got = _mac_params(rsp_der)
        # The CA answers with PBM and our owf/mac/iterations, but its own salt.
        assert isinstance(got, PBMParams)
        assert (got.owf, got.mac, got.iterations) == (owf, mac, iterations)
        assert got.salt != sent.salt
        parsed = parse_message(rsp_der)
        assert parsed.header.sender_kid == b"ra-pbm"
        verify_protection(rsp_der, parsed.message, secret=RA_SECRET.encode())
        with pytest.raises(ProtectionError):
            verify_protection(rsp_der, parsed.message, secret=b"not-the-secret")
    assert parse_message(ip).body_type == "ip"
    assert parse_message((tmp_path / "pkiconf.der").read_bytes()).body_type == "pkiconf"
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    rec = _record(testca_server, cert)
    assert rec.confirmed and rec.username == f"cmp{name}"  # alias ra: scheme DN(UID) with prefix "cmp"


@pytest.mark.parametrize("mac,iterations", [("hmacWithSHA256", 500), ("hmacWithSHA512", 2048)])
def test_ra_pbmac1_is_verified_and_answered_with_pbmac1(testca_server, tmp_path, mac, iterations):
    name = _uid("pbmac1")
    r = _cli(["crmf", "--url", testca_server.url("ra"), "--secret", "env:RA_SECRET", "--keyid", "ra-pbmac1",
              "--pbmac1", "--pbm-mac", mac, "--pbm-iterations", str(iterations),
              "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "Ed25519", "--dest", tmp_path,
              "--reqout", tmp_path / "ir.der", "--rspout", tmp_path / "ip.der"])
    assert r.exit_code == 0, _out(r)
    assert "certConf sent, pkiConf received" in r.stderr
    sent = _mac_params((tmp_path / "ir.der").read_bytes())
    ip = (tmp_path / "ip.der").read_bytes()
    got = _mac_params(ip)
    assert isinstance(sent, PBMAC1Params) and isinstance(got, PBMAC1Params)
    assert str(_protection_alg(ip)["algorithm"]) == oids.PBMAC1
    assert (got.mac, got.iterations, got.prf) == (sent.mac, sent.iterations, sent.prf) == (mac, iterations, sent.prf)
    assert got.salt != sent.salt
    verify_protection(ip, secret=RA_SECRET.encode())
    cert = x509.load_pem_x509_certificate((tmp_path / f"{name}.pem").read_bytes())
    key = load_private_key(tmp_path / f"{name}-key.pem")
    assert _spki(cert) == _spki(key)


def test_ra_hmac_without_sender_kid_gets_a_signed_answer(testca_server, tmp_path):
    """pbe responses need a senderKID; without one the CA signs, so --trusted is needed."""
    name = _uid("nokid")
    base = ["crmf", "--url", testca_server.url("ra"), "--secret", "env:RA_SECRET", "--dn", f"CN={name},UID={name}",
            "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--rspout", tmp_path / "ip.der"]
    r = _cli(base)
    assert r.exit_code == ExitCode.PROTECTION, _out(r)
    assert str(_protection_alg((tmp_path / "ip.der").read_bytes())["algorithm"]) not in (oids.PASSWORD_BASED_MAC, oids.PBMAC1)
    r = _cli([*base, "--trusted", testca_server.root_cert])
    assert r.exit_code == 0, _out(r)


def test_ra_pbmac1_library_with_implicit_confirm(testca_server):
    key = generate_key("secp384r1")
    name = _uid("lib-pbmac1")
    req = CertRequestBuilder().subject(f"CN={name},UID={name}").public_key(key).popo_signature(popo_signer(key)).build()
    sent: list[tuple[str, bytes]] = []
    cfg = ClientConfig(
        transport=HTTPTransport(testca_server.url("ra")),
        protection=MACProtection(RA_SECRET.encode(), PBMAC1Params.new(iterations=777, mac="hmacWithSHA384"), sender_kid=b"lib"),
        implicit_confirm=True,
        on_message=lambda direction, der: sent.append((direction, der)),
    )
    try:
        result = enroll(cfg, "ir", req)
    finally:
        cfg.transport.close()
    assert result.implicit_confirm_granted and result.confirmed
    assert [d for d, _ in sent] == ["request", "response"]  # no certConf
    got = _mac_params(sent[1][1])
    assert isinstance(got, PBMAC1Params) and (got.mac, got.iterations) == ("hmacWithSHA384", 777)
    assert _spki(result.certificate) == _spki(key)
    assert _record(testca_server, result.certificate).confirmed  # implicit confirmation recorded


@pytest.mark.parametrize("pbmac1", [False, True], ids=["pbm", "pbmac1"])
def test_iteration_count_above_the_bound_is_refused(testca_server, pbmac1, tmp_path):
    name = _uid("iter")
    args = ["crmf", "--url", testca_server.url("ra"), "--secret", "env:RA_SECRET", "--keyid", "ra-iter",
            "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--pbm-iterations", "10001"]
    if pbmac1:
        args.append("--pbmac1")
    r = _cli(args)
    # The CA's refusal is an unprotected error: not accepted without leniency.
    assert r.exit_code == ExitCode.PROTECTION, _out(r)
    assert "--unprotected-errors" in r.stderr
    r = _cli([*args, "--unprotected-errors"])
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "failInfo: badRequest" in r.stderr
    assert "iteration count 10001 exceeds the limit 10000" in r.stderr
    assert testca_server.ca.store.get_end_entity(f"cmp{name}") is None


def test_ra_hmac_wrong_secret_is_refused(testca_server, tmp_path):
    name = _uid("wrong")
    r = _cli(["crmf", "--url", testca_server.url("ra"), "--secret", "env:WRONG", "--keyid", "ra-x",
              "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--unprotected-errors"], env={"WRONG": "passw0rd"})
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "failInfo: badRequest" in r.stderr and "MAC verification failed" in r.stderr


def test_client_mode_hmac_with_a_registered_end_entity(testca_server, tmp_path):
    user = _uid("hmacee")
    dn = f"CN={user},O=cmpclient test,C=SE"
    add_end_entity_cli(testca_server, user, "ee-one-time-pw", dn)
    args = ["crmf", "--json", "--url", testca_server.url("client"), "--secret", "env:EE_PW", "--keyid", user,
            "--dn", dn, "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--rspout", tmp_path / "ip.der", "--unprotected-errors", *_trust(testca_server)]
    # The wrong password first: the CA tries RegTokenPwd (no regToken) and HMAC (bad MAC).
    r = _cli(args, env={"EE_PW": "not-the-password"})
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    err = json.loads(r.stdout)
    assert err["ok"] is False and "badRequest" in json.dumps(err)
    assert testca_server.ca.store.get_end_entity(user).status == "NEW"  # not consumed
    r = _cli(args, env={"EE_PW": "ee-one-time-pw"})
    assert r.exit_code == 0, _out(r)
    doc = json.loads(r.stdout)
    assert doc["confirmed"] is True
    assert x509.load_pem_x509_certificate(doc["certificate"]["pem"].encode()).subject.rfc4514_string() == dn
    # The client alias signs its answers (no pbe there), with the CA's key.
    ip = (tmp_path / "ip.der").read_bytes()
    assert str(_protection_alg(ip)["algorithm"]) not in (oids.PASSWORD_BASED_MAC, oids.PBMAC1)
    assert parse_message(ip).header.sender_name.rfc4514_string() == CA_SUBJECT
    assert testca_server.ca.store.get_end_entity(user).status == "GENERATED"
    # The one-time password is spent: a second enrolment is rejected.
    r = _cli(args, env={"EE_PW": "ee-one-time-pw"})
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "incorrectData" in r.stdout


# =========================================================================== 2. EndEntityCertificate


def test_ra_sig_with_the_ra_admin_cert_and_key(testca_server, tmp_path):
    name = _uid("rasig")
    r = _cli(["crmf", "--json", "--url", testca_server.url("ra-sig"), "--cert", testca_server.ra_admin_cert,
              "--key", testca_server.ra_admin_key, "--dn", f"CN={name},O=Example", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem",
              "--reqout", tmp_path / "ir.der", *_trust(testca_server)])
    assert r.exit_code == 0, _out(r)
    doc = json.loads(r.stdout)
    assert doc["certificate"]["subject"] == f"CN={name},O=Example" and doc["confirmed"] is True
    ir = parse_message((tmp_path / "ir.der").read_bytes())
    ra_cert = load_certificates(testca_server.ra_admin_cert)[0]
    # Signature protection with the RA admin's certificate in extraCerts.
    assert ra_cert.public_bytes(serialization.Encoding.DER) in ir.extra_certs
    assert str(_protection_alg(ir.der)["algorithm"]) not in (oids.PASSWORD_BASED_MAC, oids.PBMAC1)
    cert = x509.load_pem_x509_certificate(doc["certificate"]["pem"].encode())
    assert _record(testca_server, cert).username == name  # ra-sig: username from CN


def test_ra_sig_with_a_pkcs12_keystore(testca_server, tmp_path):
    key = load_private_key(testca_server.ra_admin_key)
    cert = load_certificates(testca_server.ra_admin_cert)[0]
    chain = load_certificates(testca_server.ca_chain)
    p12 = tmp_path / "ra.p12"
    write_pkcs12(p12, key, cert, chain, b"p12-secret", friendly_name=b"ra admin")
    name = _uid("rap12")
    base = ["crmf", "--url", testca_server.url("ra-sig"), "--keystore", p12, "--keystorepwd", "env:P12PW",
            "--dn", f"CN={name},O=Example", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--certout", tmp_path / "new.pem", *_trust(testca_server)]
    r = _cli(base, env={"P12PW": "wrong"})
    assert r.exit_code == ExitCode.CONFIG, _out(r)
    r = _cli(base, env={"P12PW": "p12-secret"})
    assert r.exit_code == 0, _out(r)
    new = x509.load_pem_x509_certificate((tmp_path / "new.pem").read_bytes())
    assert new.subject.rfc4514_string() == f"CN={name},O=Example"
    assert new.issuer.rfc4514_string() == CA_SUBJECT


@pytest.mark.parametrize("who", ["clientcert", "ee-from-ra", "vendor-device"])
def test_ra_sig_refuses_a_non_admin_certificate(testca_server, tmp_path, who):
    if who == "clientcert":
        cert_file, key_file, reason = testca_server.client_cert, testca_server.client_key, "not an authorised RA administrator"
    elif who == "vendor-device":
        cert_file, key_file = testca_server.data_dir / "vendor" / "device1.pem", testca_server.data_dir / "vendor" / "device1.key.pem"
        reason = "was not issued by this CA"
    else:  # an ordinary end entity certificate issued by this very CA through the ra alias
        name = _uid("plain")
        r = _cli(["crmf", "--url", testca_server.url("ra"), "--secret", "env:RA_SECRET", "--keyid", "k",
                  "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", "--dest", tmp_path])
        assert r.exit_code == 0, _out(r)
        cert_file, key_file, reason = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem", "not an authorised RA administrator"
    name = _uid("victim")
    r = _cli(["crmf", "--url", testca_server.url("ra-sig"), "--cert", cert_file, "--key", key_file,
              "--dn", f"CN={name},O=Example", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--unprotected-errors", *_trust(testca_server)])
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "failInfo: badRequest" in r.stderr and reason in r.stderr
    assert testca_server.ca.store.get_end_entity(name) is None


def test_3gpp_vendor_device_certificate_enrols_its_end_entity(own_ca, tmp_path):
    device_cert = own_ca.data_dir / "vendor" / "device1.pem"
    device_key = own_ca.data_dir / "vendor" / "device1.key.pem"
    vendor = load_certificates(device_cert)[0]
    assert vendor.issuer.rfc4514_string() == "CN=VendorCA,O=Device Vendor,C=SE"
    ee = own_ca.ca.store.get_end_entity("device1")
    assert ee is not None and ee.status == "NEW"
    base = ["crmf", "--json", "--url", own_ca.url("3gpp"), "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", *_trust(own_ca)]
    # Another end entity's certificate (issued by this CA to 'clientcert') may not enrol device1.
    r = _cli([*base, "--cert", own_ca.client_cert, "--key", own_ca.client_key, "--dn", ee.dn, "--unprotected-errors"])
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "belongs to 'clientcert', not to 'device1'" in r.stdout
    # A device certificate that does not chain to the vendor CA (self-signed here) is refused.
    fake_key = generate_key("secp256r1")
    now = dt.datetime.now(dt.timezone.utc)
    fake = (x509.CertificateBuilder().subject_name(vendor.subject).issuer_name(vendor.subject)
            .public_key(fake_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .sign(fake_key, hashes.SHA256()))
    (tmp_path / "fake.pem").write_bytes(fake.public_bytes(serialization.Encoding.PEM))
    write_private_key(tmp_path / "fake-key.pem", fake_key)
    r = _cli([*base, "--cert", tmp_path / "fake.pem", "--key", tmp_path / "fake-key.pem", "--dn", ee.dn, "--unprotected-errors"])
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "badRequest" in r.stdout and "nor a vendor CA" in r.stdout
    assert own_ca.ca.store.get_end_entity("device1").status == "NEW"
    r = _cli([*base, "--cert", device_cert, "--key", device_key, "--dn", ee.dn])
    assert r.exit_code == 0, _out(r)
    doc = json.loads(r.stdout)
    cert = x509.load_pem_x509_certificate(doc["certificate"]["pem"].encode())
    assert cert.subject.rfc4514_string() == "CN=device1,O=cmpclient test,C=SE"
    assert cert.issuer.rfc4514_string() == CA_SUBJECT
    assert own_ca.ca.store.get_end_entity("device1").status == "GENERATED"
    assert _record(own_ca, cert).username == "device1"


# =========================================================================== 3. RegTokenPwd


def test_reg_token_pwd_unprotected_ir(testca_server, tmp_path):
    user = _uid("regtok")
    dn = f"CN={user},O=cmpclient test,C=SE"
    add_end_entity_cli(testca_server, user, "token-4711", dn)
    base = ["crmf", "--url", testca_server.url("client"), "--authmodule", "RegTokenPwd", "--authparam", "env:TOKEN",
            "--dn", dn, "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--reqout", tmp_path / "ir.der", "--certout", tmp_path / "c.pem",
            *_trust(testca_server)]
    r = _cli(base, env={"TOKEN": "token-4711x"})
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "notAuthorized" in r.stderr and "regToken" in r.stderr
    assert testca_server.ca.store.get_end_entity(user).status == "NEW"
    r = _cli(base, env={"TOKEN": "token-4711"})
    assert r.exit_code == 0, _out(r)
    ir = parse_message((tmp_path / "ir.der").read_bytes())
    assert ir.protected is False
    ctrl = ir.message["body"]["ir"][0]["certReq"]["controls"]
    assert [str(c["type"]) for c in ctrl] == [oids.REGCTRL_REG_TOKEN]
    assert b"token-4711" in bytes(ctrl[0]["value"])
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    assert cert.subject.rfc4514_string() == dn
    assert testca_server.ca.store.get_end_entity(user).status == "GENERATED"
    assert _record(testca_server, cert).confirmed


def test_reg_token_pwd_library_rejection_is_not_authorized(testca_server):
    user = _uid("regtoklib")
    dn = f"CN={user},O=cmpclient test,C=SE"
    add_end_entity_store(testca_server, user, "right-token", dn)
    key = generate_key("secp256r1")
    req = CertRequestBuilder().subject(dn).public_key(key).reg_token("wrong-token").popo_signature(popo_signer(key)).build()
    cfg = ClientConfig(transport=HTTPTransport(testca_server.url("client")), trusted=load_certificates(testca_server.root_cert))
    try:
        with pytest.raises(CMPRejection) as info:
            enroll(cfg, "ir", req)
    finally:
        cfg.transport.close()
    assert not isinstance(info.value, CMPErrorMessage)  # a signed ip rejection, not an error message
    assert "notAuthorized" in info.value.diagnostics()


# =========================================================================== 4. DnPartPwd


def test_dn_part_pwd(own_ca, tmp_path):
    user = _uid("dnpart")
    registered = f"CN={user},O=cmpclient test,C=SE"
    add_end_entity_store(own_ca, user, "dn-secret-42", registered)
    base = ["crmf", "--url", own_ca.url("dnpart"), "--authmodule", "DnPartPwd", "--authparam", "UID",
            "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--certout", tmp_path / "c.pem", "--reqout", tmp_path / "ir.der", *_trust(own_ca)]
    r = _cli([*base, "--dn", f"CN={user},UID=wrong-secret,O=cmpclient test,C=SE"])
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "notAuthorized" in r.stderr and "DN part UID" in r.stderr
    assert own_ca.ca.store.get_end_entity(user).status == "NEW"
    # The CLI checks that the DN carries the named part before sending anything.
    r = _cli([*base, "--dn", f"CN={user},O=cmpclient test,C=SE", "--authparam", "OU"])
    assert r.exit_code == ExitCode.USAGE, _out(r)
    r = _cli([*base, "--dn", f"CN={user},UID=dn-secret-42,O=cmpclient test,C=SE"])
    assert r.exit_code == 0, _out(r)
    assert parse_message((tmp_path / "ir.der").read_bytes()).protected is False
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    # The certificate carries the registered DN, not the password-bearing request DN.
    assert cert.subject.rfc4514_string() == registered
    assert own_ca.ca.store.get_end_entity(user).status == "GENERATED"


# =========================================================================== 5. KeyId


def test_keyid_selects_profile(testca_server, tmp_path):
    certs = {}
    for kid in ("CMP_ENTITY", "SERVER_ENTITY"):
        name = _uid(kid.lower().replace("_", ""))
        r = _cli(["crmf", "--url", testca_server.url("keyid"), "--secret", "env:RA_SECRET", "--keyid", kid,
                  "--dn", f"CN={name},O=Example", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--certout", tmp_path / f"{kid}.pem",
                  "--rspout", tmp_path / f"{kid}-ip.der"])
        assert r.exit_code == 0, _out(r)
        certs[kid] = x509.load_pem_x509_certificate((tmp_path / f"{kid}.pem").read_bytes())
        assert parse_message((tmp_path / f"{kid}-ip.der").read_bytes()).header.sender_kid == kid.encode()
        assert _record(testca_server, certs[kid]).username == name
    # CMP_ENTITY -> CMP_CERT (clientAuth, 730 days); SERVER_ENTITY -> SERVER (serverAuth, 397 days)
    assert _eku(certs["CMP_ENTITY"]) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _eku(certs["SERVER_ENTITY"]) == {ExtendedKeyUsageOID.SERVER_AUTH}
    days = {k: (c.not_valid_after_utc - c.not_valid_before_utc) for k, c in certs.items()}
    assert abs(days["CMP_ENTITY"] - dt.timedelta(days=730)) < dt.timedelta(hours=1)
    assert abs(days["SERVER_ENTITY"] - dt.timedelta(days=397)) < dt.timedelta(hours=1)
    stored = {k: testca_server.ca.store.get_end_entity(_record(testca_server, c).username) for k, c in certs.items()}
    assert (stored["CMP_ENTITY"].ee_profile, stored["CMP_ENTITY"].cert_profile) == ("CMP_ENTITY", "CMP_CERT")
    assert (stored["SERVER_ENTITY"].ee_profile, stored["SERVER_ENTITY"].cert_profile) == ("SERVER_ENTITY", "SERVER")


def test_keyid_selects_the_issuing_ca(own_ca):
    """Two keyids whose end-entity profiles default to different CAs: different issuers."""
    issued = {}
    for kid in ("CMP_ENTITY", "DEVICE_ENTITY"):
        key = generate_key("secp256r1")
        name = _uid("kidca")
        req = CertRequestBuilder().subject(f"CN={name},O=Example").public_key(key).popo_signature(popo_signer(key)).build()
        cfg = ClientConfig(transport=HTTPTransport(own_ca.url("keyid")),
                           protection=MACProtection(RA_SECRET.encode(), sender_kid=kid.encode()))
        try:
            result = enroll(cfg, "ir", req)
        finally:
            cfg.transport.close()
        issued[kid] = result
    mgmt = load_certificates(own_ca.ca_cert("ManagementCA"))[0]
    sub = load_certificates(own_ca.ca_cert("DeviceSubCA"))[0]
    assert issued["CMP_ENTITY"].certificate.issuer == mgmt.subject
    assert issued["DEVICE_ENTITY"].certificate.issuer == sub.subject
    issued["CMP_ENTITY"].certificate.verify_directly_issued_by(mgmt)
    issued["DEVICE_ENTITY"].certificate.verify_directly_issued_by(sub)
    # DEVICE_ENTITY -> ENDUSER profile (clientAuth + emailProtection)
    assert _eku(issued["DEVICE_ENTITY"].certificate) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    assert _record(own_ca, issued["DEVICE_ENTITY"].certificate, "DeviceSubCA").ca == "DeviceSubCA"
    # caPubs/chain of the DeviceSubCA answer lead to the root through DeviceSubCA.
    assert [c.subject for c in issued["DEVICE_ENTITY"].chain()][:1] == [sub.subject]


def test_unknown_keyid_is_refused(testca_server, tmp_path):
    name = _uid("nokid")
    r = _cli(["crmf", "--url", testca_server.url("keyid"), "--secret", "env:RA_SECRET", "--keyid", "NO_SUCH_PROFILE",
              "--dn", f"CN={name},O=Example", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--unprotected-errors"])
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "failInfo: badRequest" in r.stderr and "NO_SUCH_PROFILE" in r.stderr
    assert testca_server.ca.store.get_end_entity(name) is None


# =========================================================================== 6. TCP


def test_tcp_crmf_certconf_and_revoke_with_the_cli(testca_server, tmp_path):
    assert testca_server.tcp_url and testca_server.tcp_url.startswith("tcp://127.0.0.1:")
    name = _uid("tcp")
    r = _cli(["crmf", "--json", "--url", testca_server.tcp_url, "--secret", "env:RA_SECRET", "--keyid", "tcp-cli",
              "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", "--dest", tmp_path,
              "--rspout", f"{tmp_path}/ip.der,{tmp_path}/pkiconf.der"])
    assert r.exit_code == 0, _out(r)
    doc = json.loads(r.stdout)
    assert doc["confirmed"] is True and doc["implicit_confirm"] is False
    assert parse_message((tmp_path / "ip.der").read_bytes()).body_type == "ip"
    assert parse_message((tmp_path / "pkiconf.der").read_bytes()).body_type == "pkiconf"
    cert_file = tmp_path / f"{name}.pem"
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    rec = _record(testca_server, cert)
    assert rec.confirmed and not rec.revoked and rec.username == f"cmp{name}"  # alias tcp: like ra

    revoke_args = ["revoke", "--url", testca_server.tcp_url, "--secret", "env:RA_SECRET", "--keyid", "tcp-cli",
                   "--oldcert", cert_file, "--reason", "keyCompromise"]
    r = _cli(revoke_args)
    assert r.exit_code == 0, _out(r)
    rec = _record(testca_server, cert)
    assert rec.revoked and rec.revocation_reason == 1
    r = _cli(revoke_args)  # again: a (protected) rp rejection certRevoked
    assert r.exit_code == ExitCode.REJECTED, _out(r)
    assert "certRevoked" in r.stderr


def test_tcp_crmf_with_the_installed_cmpclient(testca_server, tmp_path):
    assert CMPCLIENT_EXE.is_file(), f"{CMPCLIENT_EXE} is missing (pip install -e .)"
    name = _uid("tcpexe")
    env = {**os.environ, "NO_COLOR": "1", "RA_SECRET": RA_SECRET}
    proc = subprocess.run(
        [str(CMPCLIENT_EXE), "--json", "crmf", "--url", testca_server.tcp_url, "--secret", "env:RA_SECRET", "--keyid", "exe",
         "--pbmac1", "--dn", f"CN={name},UID={name}", "--reqnewkeyspec", "secp256r1", "--dest", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["confirmed"] is True
    cert = x509.load_pem_x509_certificate((tmp_path / f"{name}.pem").read_bytes())
    assert _spki(cert) == _spki(load_private_key(tmp_path / f"{name}-key.pem"))
    assert _record(testca_server, cert).confirmed
    # A wrong secret over TCP: the unprotected error is mapped like over HTTP.
    env["RA_SECRET"] = "nope"
    proc = subprocess.run(
        [str(CMPCLIENT_EXE), "crmf", "--url", testca_server.tcp_url, "--secret", "env:RA_SECRET", "--keyid", "exe",
         "--dn", f"CN={name}2,UID={name}2", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", "--unprotected-errors"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == ExitCode.REJECTED, proc.stdout + proc.stderr
    assert "badRequest" in proc.stderr


def test_tcp_library_implicit_confirm_and_revoke(testca_server):
    key = generate_key("secp256r1")
    name = _uid("tcplib")
    req = CertRequestBuilder().subject(f"CN={name},UID={name}").public_key(key).popo_signature(popo_signer(key)).build()
    seen: list[str] = []
    cfg = ClientConfig(
        transport=TCPTransport(testca_server.tcp_url, timeout=10),
        protection=MACProtection(RA_SECRET.encode(), PBMParams.new(owf="sha384", mac="hmacWithSHA384", iterations=600),
                                 sender_kid=b"tcp-lib"),
        recipient=CA_SUBJECT,
        implicit_confirm=True,
        on_message=lambda direction, der: seen.append(f"{direction}:{parse_message(der).body_type}"),
    )
    try:
        result = enroll(cfg, "ir", req)
        assert result.implicit_confirm_granted and result.confirmed
        assert result.response.header.implicit_confirm
        assert seen == ["request:ir", "response:ip"]
        assert _record(testca_server, result.certificate).confirmed
        rev = revoke(cfg, result.certificate.issuer, result.certificate.serial_number, reason="superseded")
        assert rev.status.status == "accepted"
    finally:
        cfg.transport.close()
    rec = _record(testca_server, result.certificate)
    assert rec.revoked and rec.revocation_reason == 4
