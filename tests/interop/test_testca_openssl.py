"""The independent ``openssl cmp`` client (OpenSSL 3.0.x), live, against OUR test CA.

The test CA runs in-process (``testca_server`` / ``testca_factory``: the real WSGI app on a
free 127.0.0.1 port); openssl connects to ``http://127.0.0.1:PORT/ejbca/publicweb/cmp/<alias>``.
Each test asserts that openssl *accepted* our answers: exit status 0, its log names the
messages exchanged, and ``-certout`` holds a certificate certifying the requested key.
With PBM openssl verified the response MAC with ``-secret``; with signatures it verified the
CA's signature against ``-trusted`` (the test CA's root).

Secrets go through the environment (``-secret env:VAR``), never argv.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest_testca import ra_hmac_alias  # type: ignore[import-not-found]
from openssl_peer import openssl_binary, run_openssl_client  # type: ignore[import-not-found]

pytestmark = pytest.mark.interop

CA_DN = "/CN=ManagementCA/O=cmpclient test/C=SE"
RA_SECRET_ENV = "TESTCA_RA_SECRET"
EE_SECRET_ENV = "TESTCA_EE_SECRET"
ENV = {RA_SECRET_ENV: "password"}

POLL_ALIAS_TOML = ra_hmac_alias("poll", "faults = { poll_count = 2, check_after = 1 }")


# --------------------------------------------------------------------------- helpers


def genkey(path: Path, kind: str = "ec") -> Path:
    args = {
        "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "ed25519": ["-algorithm", "ED25519"],
    }[kind]
    subprocess.run([openssl_binary(), "genpkey", *args, "-out", str(path)], check=True, capture_output=True, timeout=30)
    return path


def spki_of_key(path: Path) -> bytes:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def spki_of_cert(path: Path) -> bytes:
    return cert_of(path).public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def assert_accepted(res: Any, certout: Path | None = None, key: Path | None = None) -> None:
    assert res.returncode == 0, res.describe()
    if certout is not None:
        assert certout.is_file(), res.describe()
        assert spki_of_cert(certout) == spki_of_key(key), "the certificate does not certify the requested key"


def pbm(alias_url: str, **kw: Any) -> dict[str, Any]:
    """openssl options for PBM against an RA-mode alias (response MAC verified with -secret)."""
    opts = dict(server=alias_url, ref="ra-ref", secret=f"env:{RA_SECRET_ENV}", recipient=CA_DN, env=ENV)
    opts.update(kw)
    return opts


def enroll_pbm(testca, tmp: Path, name: str, *, cmd: str = "ir", alias: str = "ra", kind: str = "ec", **kw: Any) -> tuple[Any, Path, Path]:
    key = genkey(tmp / f"{name}.key.pem", kind)
    certout = tmp / f"{name}.crt.pem"
    res = run_openssl_client(
        cmd=cmd, newkey=key, subject=f"/CN={name}/UID={name}/O=cmpclient test", certout=certout, **pbm(testca.url(alias), **kw)
    )
    return res, key, certout


def store_record(testca, certout: Path) -> Any:
    serial = cert_of(certout).serial_number
    matches = [r for r in testca.ca.store.all_certificates() if r.serial == serial]
    assert len(matches) == 1
    return matches[0]


# --------------------------------------------------------------------------- PBM (alias ra)


@pytest.mark.parametrize("cmd", ["ir", "cr"])
def test_openssl_pbm_enrolment_with_cert_conf(testca_server, tmp_path: Path, cmd: str) -> None:
    res, key, certout = enroll_pbm(testca_server, tmp_path, f"ossl-{cmd}", cmd=cmd)
    assert_accepted(res, certout, key)
    out = res.output
    assert f"sending {cmd.upper()}" in out and f"received {'IP' if cmd == 'ir' else 'CP'}" in out, res.describe()
    assert "sending CERTCONF" in out and "received PKICONF" in out, res.describe()
    assert cert_of(certout).issuer == cert_of(testca_server.ca_cert("ManagementCA")).subject
    rec = store_record(testca_server, certout)
    assert rec.status != "revoked"


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_openssl_pbm_ir_other_key_types(testca_server, tmp_path: Path, kind: str) -> None:
    res, key, certout = enroll_pbm(testca_server, tmp_path, f"ossl-ir-{kind}", kind=kind)
    assert_accepted(res, certout, key)


def test_openssl_implicit_confirm(testca_server, tmp_path: Path) -> None:
    res, key, certout = enroll_pbm(testca_server, tmp_path, "ossl-implicit", implicit_confirm=True)
    assert_accepted(res, certout, key)
    assert "sending CERTCONF" not in res.output, res.describe()


def test_openssl_p10cr(testca_server, tmp_path: Path) -> None:
    key = genkey(tmp_path / "p10.key.pem")
    csr = tmp_path / "p10.csr.pem"
    subprocess.run(
        [openssl_binary(), "req", "-new", "-key", str(key), "-subj", "/CN=ossl-p10/UID=ossl-p10/O=cmpclient test", "-out", str(csr)],
        check=True, capture_output=True, timeout=30, env={"OPENSSL_CONF": "/dev/null"},
    )
    certout = tmp_path / "p10.crt.pem"
    res = run_openssl_client(cmd="p10cr", csr=csr, certout=certout, **pbm(testca_server.url("ra")))
    assert_accepted(res, certout, key)
    assert "sending P10CR" in res.output and "received CP" in res.output, res.describe()


def test_openssl_genm(testca_server, tmp_path: Path) -> None:
    res = run_openssl_client(cmd="genm", **pbm(testca_server.url("ra")))
    assert res.returncode == 0, res.describe()
    assert "sending GENM" in res.output and "received GENP" in res.output, res.describe()


def test_openssl_genm_infotype(testca_server) -> None:
    res = run_openssl_client(cmd="genm", infotype="signKeyPairTypes", **pbm(testca_server.url("ra")))
    assert res.returncode == 0, res.describe()
    assert "genp contains ITAV of type: id-it-signKeyPairTypes" in res.output, res.describe()


def test_openssl_short_path_and_default_keep_alive(testca_server, tmp_path: Path) -> None:
    """``/<alias>`` works too, and openssl's default keep-alive (1) copes with our closes."""
    key = genkey(tmp_path / "short.key.pem")
    certout = tmp_path / "short.crt.pem"
    res = run_openssl_client(
        cmd="ir", newkey=key, subject="/CN=ossl-short/UID=ossl-short", certout=certout, keep_alive=None,
        **pbm(testca_server.short_url("ra")),
    )
    assert_accepted(res, certout, key)


def test_openssl_rr_revokes_in_the_store(testca_server, tmp_path: Path) -> None:
    res, key, certout = enroll_pbm(testca_server, tmp_path, "ossl-rr")
    assert_accepted(res, certout, key)
    res = run_openssl_client(cmd="rr", oldcert=certout, revreason=1, **pbm(testca_server.url("ra")))
    assert res.returncode == 0, res.describe()
    assert "sending RR" in res.output and "received RP" in res.output, res.describe()
    rec = store_record(testca_server, certout)
    assert rec.revoked and rec.revocation_reason == 1


def test_openssl_polling(testca_factory, tmp_path: Path) -> None:
    testca = testca_factory("poll", POLL_ALIAS_TOML)
    res, key, certout = enroll_pbm(testca, tmp_path, "ossl-poll", alias="poll")
    assert_accepted(res, certout, key)
    out = res.output
    assert "sending POLLREQ" in out and "received POLLREP" in out, res.describe()
    assert out.count("sending POLLREQ") >= 2, res.describe()


def test_openssl_wrong_secret_gets_unprotected_error(testca_server, tmp_path: Path) -> None:
    """EJBCA-style unprotected error: openssl shows it only with -unprotected_errors."""
    key = genkey(tmp_path / "bad.key.pem")
    common = dict(cmd="ir", newkey=key, subject="/CN=ossl-bad/UID=ossl-bad", certout=tmp_path / "bad.crt.pem")
    opts = pbm(testca_server.url("ra"), env={RA_SECRET_ENV: "not-the-password"})
    res = run_openssl_client(unprotected_errors=True, **common, **opts)
    assert res.returncode != 0
    assert "received ERROR" in res.output, res.describe()
    assert "badRequest" in res.output or "rejection" in res.output, res.describe()
    assert not (tmp_path / "bad.crt.pem").exists()
    assert "ignoring missing protection of error response" in res.output, res.describe()
    # Without the switch openssl refuses the unprotected message itself.
    strict = run_openssl_client(**common, **opts)
    assert strict.returncode != 0
    assert "missing protection" in strict.output and "badRequest" not in strict.output, strict.describe()


# --------------------------------------------------------------------------- signatures (alias ra-sig)


def sig_opts(testca, alias: str, cert: Path, key: Path, **kw: Any) -> dict[str, Any]:
    opts = dict(
        server=testca.url(alias),
        cert=cert,
        key=key,
        trusted=testca.root_cert,
        untrusted=testca.ca_chain,
        recipient=CA_DN,
    )
    opts.update(kw)
    return opts


def test_openssl_signature_ra_admin_ir(testca_server, tmp_path: Path) -> None:
    key = genkey(tmp_path / "sig.key.pem")
    certout = tmp_path / "sig.crt.pem"
    res = run_openssl_client(
        cmd="ir", newkey=key, subject="/CN=ossl-sig/O=cmpclient test", certout=certout,
        **sig_opts(testca_server, "ra-sig", testca_server.ra_admin_cert, testca_server.ra_admin_key),
    )
    assert_accepted(res, certout, key)
    assert "received IP" in res.output and "received PKICONF" in res.output, res.describe()


def test_openssl_kur_signed_with_the_cert_just_issued(testca_server, tmp_path: Path) -> None:
    """lwcmp: MAC for the first ir, then kur signed by the issued certificate."""
    res, key, certout = enroll_pbm(testca_server, tmp_path, "ossl-kur", alias="lwcmp")
    assert_accepted(res, certout, key)
    newkey = genkey(tmp_path / "kur-new.key.pem")
    newcert = tmp_path / "kur-new.crt.pem"
    res = run_openssl_client(
        cmd="kur", oldcert=certout, newkey=newkey, certout=newcert,
        **sig_opts(testca_server, "lwcmp", certout, key),
    )
    assert_accepted(res, newcert, newkey)
    assert "sending KUR" in res.output and "received KUP" in res.output, res.describe()
    assert cert_of(newcert).subject == cert_of(certout).subject


# --------------------------------------------------------------------------- client mode (alias client)


def test_openssl_client_mode_preregistered_ee(testca_server, tmp_path: Path) -> None:
    """An end entity registered with a one-time password; openssl MACs with that password."""
    testca_server.ca.store.upsert_end_entity(
        "osslclient", dn="CN=osslclient,O=cmpclient test,C=SE", status="NEW", password="ee-one-time", ee_profile="CMP_ENTITY"
    )
    key = genkey(tmp_path / "cm.key.pem")
    certout = tmp_path / "cm.crt.pem"
    res = run_openssl_client(
        cmd="ir", newkey=key, subject="/CN=osslclient/O=cmpclient test/C=SE", certout=certout,
        server=testca_server.url("client"), ref="osslclient", secret=f"env:{EE_SECRET_ENV}",
        trusted=testca_server.root_cert, untrusted=testca_server.ca_chain, recipient=CA_DN,
        env={EE_SECRET_ENV: "ee-one-time"},
    )
    assert_accepted(res, certout, key)
    ee = testca_server.ca.store.get_end_entity("osslclient")
    assert ee.status == "GENERATED"
    # One-time: the same password does not work twice.
    again = run_openssl_client(
        cmd="ir", newkey=key, subject="/CN=osslclient/O=cmpclient test/C=SE", certout=tmp_path / "cm2.crt.pem",
        server=testca_server.url("client"), ref="osslclient", secret=f"env:{EE_SECRET_ENV}",
        trusted=testca_server.root_cert, untrusted=testca_server.ca_chain, recipient=CA_DN, unprotected_errors=True,
        env={EE_SECRET_ENV: "ee-one-time"},
    )
    assert again.returncode != 0, again.describe()


def test_openssl_client_mode_regtoken() -> None:
    pytest.skip("openssl cmp 3.0 has no option to send a regToken control (RegTokenPwd is covered by our own client)")


# --------------------------------------------------------------------------- cmpclient serve (gunicorn)


def test_openssl_against_cmpclient_serve_with_workers(tmp_path: Path) -> None:
    """The production path: ``cmpclient serve --workers 2`` (gunicorn), openssl with PBM and
    with signatures, default keep-alive, then SIGTERM and a clean exit."""
    import os
    import re
    import signal
    import sys
    import time

    repo = Path(__file__).resolve().parents[2]
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "cmpclient.cli.testca_cmd", "serve", "--data-dir", str(data), "--port", "0", "--workers", "2"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=repo,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline and port is None:
            m = re.search(r"^cmpclient serve: listening on http://127\.0\.0\.1:(\d+)$", out_path.read_text(), re.M)
            if m:
                port = int(m.group(1))
                break
            try:
                proc.wait(timeout=0.05)
                pytest.fail(f"serve exited early: {out_path.read_text()} {err_path.read_text()}")
            except subprocess.TimeoutExpired:
                pass
        assert port, out_path.read_text() + err_path.read_text()
        url = f"http://127.0.0.1:{port}/ejbca/publicweb/cmp/"
        for i in range(3):
            key = genkey(tmp_path / f"w{i}.key.pem")
            certout = tmp_path / f"w{i}.crt.pem"
            res = run_openssl_client(
                cmd="ir", newkey=key, subject=f"/CN=ossl-w{i}/UID=ossl-w{i}", certout=certout, keep_alive=None, **pbm(url + "ra")
            )
            assert_accepted(res, certout, key)
        key = genkey(tmp_path / "ws.key.pem")
        certout = tmp_path / "ws.crt.pem"
        res = run_openssl_client(
            cmd="ir", newkey=key, subject="/CN=ossl-ws", certout=certout, server=url + "ra-sig",
            cert=data / "ra" / "raadmin.pem", key=data / "ra" / "raadmin.key.pem",
            trusted=data / "ca" / "RootCA.pem", untrusted=data / "ca" / "ManagementCA.pem", recipient=CA_DN,
        )
        assert_accepted(res, certout, key)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err_path.read_text()
        assert "stopped" in out_path.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
