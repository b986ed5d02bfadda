"""The ``cmpclient`` command line against live ``openssl cmp -port`` mock servers.

Every subcommand runs both in-process (click's CliRunner) and as a real subprocess
(``.venv/bin/cmpclient``).  Secrets go through ``env:``/``file:`` sources, never argv.
The mock returns one fixed certificate (``-rsp_cert``), so ``--newkey`` is its key.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli
from cmpclient.errors import ExitCode
from openssl_peer import PBM_REF, PBM_SECRET, PBM_SECRET_ENV, free_port, run_openssl_client

pytestmark = pytest.mark.interop

SECRET_SRC = f"env:{PBM_SECRET_ENV}"
EXE = Path(sys.executable).parent / "cmpclient"


def pem_certs(path: Path) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(Path(path).read_bytes())]


def run_cli(args: list[str], env: dict[str, str] | None = None):
    runner = CliRunner()
    merged = {PBM_SECRET_ENV: PBM_SECRET, "NO_COLOR": "1"}
    merged.update(env or {})
    return runner.invoke(cli, [str(a) for a in args], env=merged, catch_exceptions=False)


def run_proc(args: list[str], env: dict[str, str] | None = None, timeout: float = 60):
    e = dict(os.environ)
    e.pop("CMPCLIENT_CONFIG", None)
    e.update({PBM_SECRET_ENV: PBM_SECRET, "NO_COLOR": "1"})
    e.update(env or {})
    r = subprocess.run([str(EXE), *[str(a) for a in args]], capture_output=True, text=True, env=e, timeout=timeout)
    r.output = r.stdout + r.stderr  # type: ignore[attr-defined]
    return r


def pbm(mock) -> list[str]:
    return ["--url", mock.url, "--secret", SECRET_SRC, "--ref", PBM_REF]


def sig(mock, pki, kt: str = "ec") -> list[str]:
    return ["--url", mock.url, "--cert", pki.client_cert(kt), "--key", pki.client_key(kt),
            "--extracerts", pki.chain, "--trusted", pki.trusted, "--untrusted", pki.chain]


def explain(r, mock=None) -> str:
    text = f"exit {getattr(r, 'exit_code', getattr(r, 'returncode', None))}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    if mock is not None:
        text += f"\nmock:\n{mock.stdout}\n{mock.stderr}"
    return text


# --------------------------------------------------------------------------- crmf


def test_crmf_ir_pbm_certconf_subprocess_dest(mock_server_pbm, pki, tmp_path):
    dest = tmp_path / "out"
    r = run_proc(["crmf", *pbm(mock_server_pbm), "--dn", "CN=dev1", "--newkey", pki.rsp_key("ec"), "--dest", dest])
    assert r.returncode == 0, explain(r, mock_server_pbm)
    assert pem_certs(dest / "cmp-rsp-ec.pem") == pem_certs(pki.rsp_cert("ec"))
    key = dest / "cmp-rsp-ec-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    assert len(pem_certs(dest / "cmp-rsp-ec-chain.pem")) == 2
    assert "certConf sent, pkiConf received" in r.stderr
    assert "cmp-rsp-ec" in r.stderr  # the success table names the subject
    assert PBM_SECRET not in r.output


def test_crmf_cr_implicit_confirm_json(openssl_mock, pki, tmp_path):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        grant_implicitconf=True, max_msgs=1)
    r = run_cli(["crmf", "--cr", "--implicit-confirm", "--json", *pbm(mock), "--dn", "CN=dev1",
                 "--newkey", pki.rsp_key("ec"), "--certout", tmp_path / "c.pem"])
    assert r.exit_code == 0, explain(r, mock)
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["request"] == "cr"
    assert doc["implicit_confirm"] is True and doc["confirmed"] is True
    assert doc["certificate"]["subject"].endswith("CN=cmp-rsp-ec")
    assert doc["files"] == [str(tmp_path / "c.pem")]
    assert mock.wait(timeout=10) == 0  # exactly one message: no certConf was sent


def test_crmf_implicit_confirm_not_granted_sends_certconf(mock_server_pbm, pki):
    r = run_cli(["--json", "crmf", "--implicit-confirm", *pbm(mock_server_pbm), "--dn", "CN=x",
                 "--newkey", pki.rsp_key("ec")])
    assert r.exit_code == 0, explain(r, mock_server_pbm)
    doc = json.loads(r.stdout)
    assert doc["implicit_confirm"] is False and doc["confirmed"] is True


@pytest.mark.parametrize("mock_server_sig", ["ec", "rsa"], indirect=True)
def test_crmf_cr_signature(mock_server_sig, pki, tmp_path):
    kt = mock_server_sig.key_type
    r = run_cli(["crmf", "--cr", *sig(mock_server_sig, pki), "--dn", "CN=dev2", "--newkey", pki.rsp_key(kt),
                 "--certout", tmp_path / "c.pem", "--chainout", tmp_path / "chain.pem"])
    assert r.exit_code == 0, explain(r, mock_server_sig)
    assert pem_certs(tmp_path / "c.pem") == pem_certs(pki.rsp_cert(kt))


def test_crmf_signature_untrusted_server_is_protection_error(mock_server_sig, pki, tmp_path):
    args = ["crmf", "--url", mock_server_sig.url, "--cert", pki.client_cert("ec"), "--key", pki.client_key("ec"),
            "--extracerts", pki.chain, "--trusted", pki.client_cert("rsa"), "--dn", "CN=x",
            "--newkey", pki.rsp_key("ec"), "--certout", tmp_path / "c.pem"]
    r = run_cli(args)
    assert r.exit_code == ExitCode.PROTECTION, explain(r, mock_server_sig)
    assert not (tmp_path / "c.pem").exists()


# --------------------------------------------------------------------------- p10cr


def test_p10cr_builds_csr_subprocess(mock_server_pbm, pki, tmp_path):
    r = run_proc(["p10cr", *pbm(mock_server_pbm), "--dn", "CN=dev3", "--newkey", pki.rsp_key("ec"),
                  "--altname", "dns:dev3.example,ip:192.0.2.1", "--key-usage", "digitalSignature",
                  "--eku", "clientAuth", "--certout", tmp_path / "c.pem"])
    assert r.returncode == 0, explain(r, mock_server_pbm)
    assert pem_certs(tmp_path / "c.pem") == pem_certs(pki.rsp_cert("ec"))


def test_p10cr_from_csr_file(mock_server_pbm, pki, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key(pki.rsp_key("ec").read_bytes(), None)
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "csr")])).sign(key, hashes.SHA256())
    (tmp_path / "req.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    r = run_cli(["p10cr", *pbm(mock_server_pbm), "--csr", tmp_path / "req.csr", "--certout", tmp_path / "c.pem"])
    assert r.exit_code == 0, explain(r, mock_server_pbm)
    assert pem_certs(tmp_path / "c.pem") == pem_certs(pki.rsp_cert("ec"))


# --------------------------------------------------------------------------- update / revoke


def test_update_kur_subprocess(mock_server_sig, pki, tmp_path):
    r = run_proc(["update", *sig(mock_server_sig, pki), "--oldcert", pki.rsp_cert("ec"),
                  "--newkey", pki.rsp_key("ec"), "--certout", tmp_path / "kur.pem"])
    assert r.returncode == 0, explain(r, mock_server_sig)
    assert pem_certs(tmp_path / "kur.pem") == pem_certs(pki.rsp_cert("ec"))
    assert "kur: certificate issued" in r.stderr


def test_update_kur_wrong_old_cert_is_rejected(mock_server_sig, pki, tmp_path):
    # the mock accepts kur only for its -rsp_cert; the client's own cert is refused
    r = run_cli(["update", *sig(mock_server_sig, pki), "--newkey", pki.rsp_key("ec")])
    assert r.exit_code == ExitCode.REJECTED, explain(r, mock_server_sig)
    assert "wrong certid" in r.stderr.lower() or "rejection" in r.stderr


def test_update_with_keystore(mock_server_sig, pki, tmp_path):
    r = run_cli(["update", "--url", mock_server_sig.url, "--keystore", pki.client_p12, "--keystorepwd", "env:P12PWD",
                 "--trusted", pki.trusted, "--untrusted", pki.chain, "--oldcert", pki.rsp_cert("ec"),
                 "--newkey", pki.rsp_key("ec"), "--certout", tmp_path / "kur.pem"], env={"P12PWD": pki.p12_password})
    assert r.exit_code == 0, explain(r, mock_server_sig)
    assert pem_certs(tmp_path / "kur.pem") == pem_certs(pki.rsp_cert("ec"))


def test_revoke_signature_subprocess(mock_server_sig, pki):
    r = run_proc(["revoke", *sig(mock_server_sig, pki), "--oldcert", pki.rsp_cert("ec"), "--reason", "keyCompromise"])
    assert r.returncode == 0, explain(r, mock_server_sig)
    assert "revocation accepted" in r.stderr and "keyCompromise" in r.stderr


def test_revoke_pbm_by_cert_json(mock_server_pbm, pki):
    r = run_cli(["revoke", *pbm(mock_server_pbm), "--cert", pki.rsp_cert("ec"), "--reason", "4", "--json"])
    assert r.exit_code == 0, explain(r, mock_server_pbm)
    doc = json.loads(r.stdout)
    assert doc["status"] == "accepted" and doc["reason"] == 4


def test_revoke_by_issuer_and_serial(mock_server_pbm, pki):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pki.rsp_cert("ec").read_bytes())
    r = run_cli(["revoke", *pbm(mock_server_pbm), "--issuer", cert.issuer.rfc4514_string(),
                 "--serno", format(cert.serial_number, "x"), "--reason", "superseded"])
    assert r.exit_code == 0, explain(r, mock_server_pbm)


def test_revoke_other_cert_is_rejected(mock_server_pbm, pki):
    r = run_cli(["revoke", *pbm(mock_server_pbm), "--cert", pki.client_cert("ec")])
    assert r.exit_code == ExitCode.REJECTED, explain(r, mock_server_pbm)


# --------------------------------------------------------------------------- genm


def test_genm_cacerts_subprocess(mock_server_pbm, tmp_path):
    r = run_proc(["genm", *pbm(mock_server_pbm), "--infotype", "caCerts", "--dest", tmp_path, "--json"])
    assert r.returncode == 0, explain(r, mock_server_pbm)
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["items"][0]["infotype"] == "caCerts"


def test_genm_in_process(mock_server_pbm):
    r = run_cli(["genm", *pbm(mock_server_pbm)])
    assert r.exit_code == 0, explain(r, mock_server_pbm)
    assert "genp received" in r.stderr and "caCerts" in r.stderr


# --------------------------------------------------------------------------- certconf


@pytest.mark.parametrize("reject", [False, True])
def test_no_confirm_then_certconf(mock_server_pbm, pki, tmp_path, reject):
    # --no-keep-alive: the 3.0 mock cancels a transaction when a kept-alive connection closes
    state = tmp_path / "tx.json"
    r = run_proc(["crmf", *pbm(mock_server_pbm), "--no-keep-alive", "--dn", "CN=x", "--newkey", pki.rsp_key("ec"),
                  "--no-confirm", "--state-out", state, "--certout", tmp_path / "c.pem"])
    assert r.returncode == 0, explain(r, mock_server_pbm)
    assert "NOT confirmed" in r.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert saved["url"] == mock_server_pbm.url
    args = ["certconf", "--secret", SECRET_SRC, "--ref", PBM_REF, "--state", state]  # URL from the state
    if reject:
        args += ["--reject", "--reason", "wrong subject"]
    r2 = run_cli(args)
    assert r2.exit_code == 0, explain(r2, mock_server_pbm)
    assert ("rejected" if reject else "confirmed") in r2.stderr


def test_certconf_bad_state_file_is_config_error(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    r = run_cli(["certconf", "--url", "http://127.0.0.1:9/", "--state", tmp_path / "bad.json"])
    assert r.exit_code == ExitCode.CONFIG


# --------------------------------------------------------------------------- failures


def test_rejection_badpop_exit_code(openssl_mock, pki, tmp_path):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        pkistatus=2, failure=9, statusstring="rejected by test")
    r = run_proc(["crmf", *pbm(mock), "--dn", "CN=x", "--newkey", pki.rsp_key("ec"), "--certout", tmp_path / "c.pem"])
    assert r.returncode == ExitCode.REJECTED, explain(r, mock)
    assert "rejection" in r.stderr and "badPOP" in r.stderr and "rejected by test" in r.stderr
    assert "hint:" in r.stderr
    assert not (tmp_path / "c.pem").exists()


def test_rejection_json_document(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), pkistatus=2, failure=9)
    r = run_cli(["--json", "crmf", *pbm(mock), "--dn", "CN=x", "--newkey", pki.rsp_key("ec")])
    assert r.exit_code == ExitCode.REJECTED
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["pki_status"] == "rejection" and "badPOP" in doc["fail_info"]


def test_granted_with_mods_is_reported(openssl_mock, pki, tmp_path):
    """grantedWithMods issues the certificate but not as asked (RFC 9810 5.2.3): a warning
    with the statusString on stderr, a status row in the table, the status in --json."""
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        pkistatus=1, statusstring="validity shortened")
    r = run_proc(["crmf", *pbm(mock), "--dn", "CN=x", "--newkey", pki.rsp_key("ec"), "--certout", tmp_path / "c.pem"])
    assert r.returncode == 0, explain(r, mock)
    assert "grantedWithMods" in r.stderr and "validity shortened" in r.stderr and "compare the certificate" in r.stderr
    assert "grantedWithMods / validity shortened" in r.stderr  # the table (stdout stays for data)
    r = run_proc(["--json", "crmf", *pbm(mock), "--dn", "CN=x", "--newkey", pki.rsp_key("ec"),
                  "--certout", tmp_path / "c2.pem"])
    doc = json.loads(r.stdout)
    assert doc["status"] == "grantedWithMods" and doc["status_string"] == ["validity shortened"]


def test_send_error(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), send_error=True)
    r = run_cli(["crmf", *pbm(mock), "--dn", "CN=x", "--newkey", pki.rsp_key("ec")])
    assert r.exit_code == ExitCode.REJECTED, explain(r, mock)
    assert "error message" in r.stderr and "PKIStatus: rejection" in r.stderr


def test_unprotected_error_needs_the_leniency_switch(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        send_error=True, send_unprotected=True)
    base = ["crmf", *pbm(mock), "--dn", "CN=x", "--newkey", pki.rsp_key("ec")]
    r = run_proc(base)
    assert r.returncode == ExitCode.PROTECTION, explain(r, mock)
    assert "unprotected" in r.stderr and "--unprotected-errors" in r.stderr
    r = run_proc([*base, "--unprotected-errors"])
    assert r.returncode == ExitCode.REJECTED, explain(r, mock)
    assert "PKIStatus: rejection" in r.stderr
    assert "leniency unprotected_errors" in r.stderr  # leniency is logged when used


def test_wrong_secret_is_protection_error(mock_server_pbm, pki):
    r = run_proc(["crmf", *pbm(mock_server_pbm), "--dn", "CN=x", "--newkey", pki.rsp_key("ec")],
                 env={PBM_SECRET_ENV: PBM_SECRET + "-wrong"})
    assert r.returncode == ExitCode.PROTECTION, explain(r, mock_server_pbm)


def test_nothing_listening_is_transport_error(pki, tmp_path):
    port = free_port()
    args = ["genm", "--url", f"http://127.0.0.1:{port}/pkix/", "--secret", SECRET_SRC, "--timeout", "5"]
    r = run_proc(args)
    assert r.returncode == ExitCode.TRANSPORT, explain(r)
    r = run_cli(["--json", *args])
    assert r.exit_code == ExitCode.TRANSPORT
    assert json.loads(r.stdout)["exit_code"] == ExitCode.TRANSPORT


# --------------------------------------------------------------------------- capture, dump, config


def test_reqout_rspout_and_vvv_dump(mock_server_pbm, pki, tmp_path):
    files = [tmp_path / f"{n}.der" for n in ("req1", "req2", "rsp1", "rsp2")]
    r = run_proc(["-vvv", "crmf", *pbm(mock_server_pbm), "--dn", "CN=x", "--newkey", pki.rsp_key("ec"),
                  "--reqout", f"{files[0]},{files[1]}", "--rspout", f"{files[2]},{files[3]}"])
    assert r.returncode == 0, explain(r, mock_server_pbm)
    for f in files:
        assert f.read_bytes()[:1] == b"\x30"
    assert "----- request" in r.stderr and "----- response" in r.stderr
    assert "certConf" in r.stderr and "pkiconf" in r.stderr.lower()
    assert "----- request" not in r.stdout


def test_rspin_replays_offline(mock_server_pbm, pki, tmp_path):
    rsp = tmp_path / "genp.der"
    r = run_cli(["genm", *pbm(mock_server_pbm), "--rspout", rsp])
    assert r.exit_code == 0
    # the replayed genp does not answer a new transaction: the client must refuse it
    r = run_cli(["genm", "--secret", SECRET_SRC, "--rspin", rsp])
    assert r.exit_code == ExitCode.PROTOCOL, explain(r)


def test_config_profile_precedence(mock_server_pbm, pki, tmp_path):
    cfg = tmp_path / "cmp.toml"
    cfg.write_text(
        f'[profiles.mock]\nurl = "{mock_server_pbm.url}"\nsecret = "env:NOT_SET_ANYWHERE"\nref = "{PBM_REF}"\n'
        f'[profiles.mock.crmf]\nnewkey = "{pki.rsp_key("ec")}"\ndn = "CN=from-profile"\n'
    )
    # env beats profile (secret), CLI beats env (dn)
    env = {"CMPCLIENT_AUTHPARAM": SECRET_SRC, "CMPCLIENT_DN": "CN=from-env"}
    r = run_cli(["crmf", "--config", cfg, "--profile", "mock", "--dn", "CN=from-cli", "--show-config"], env=env)
    assert r.exit_code == 0, explain(r)
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip()}
    assert "CN=from-cli" in lines["dn"] and "command line" in lines["dn"]
    assert SECRET_SRC in lines["authparam"] and "environment" in lines["authparam"]
    assert "profile mock" in lines["url"]
    assert "default" in lines["popo"]
    r = run_proc(["--config", cfg, "--profile", "mock", "crmf", "--json"], env=env)
    assert r.returncode == 0, explain(r, mock_server_pbm)
    assert json.loads(r.stdout)["ok"] is True


def test_reqin_resends_an_ir_made_by_openssl(mock_server_pbm, pki, tmp_path):
    """openssl writes an ir (-reqout); our client sends it instead of its own (--reqin) to
    openssl's mock, checks the ip against that ir's transactionID and senderNonce, and
    confirms on the same transaction."""
    ir = tmp_path / "openssl-ir.der"
    made = run_openssl_client(server=mock_server_pbm, cmd="ir", ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}",
                              newkey=pki.rsp_key("ec"), subject="/CN=x", certout=tmp_path / "o.pem", reqout=ir,
                              env={PBM_SECRET_ENV: PBM_SECRET})
    assert made.ok, made.describe()
    out = tmp_path / "ours.pem"
    r = run_proc(["crmf", *pbm(mock_server_pbm), "--dn", "CN=x", "--newkey", pki.rsp_key("ec"), "--reqin", ir,
                  "--certout", out, "--rspout", tmp_path / "ip.der"])
    assert r.returncode == 0, explain(r, mock_server_pbm)
    from cmpclient.message.parse import parse_message

    sent, ip = parse_message(ir.read_bytes()).header, parse_message((tmp_path / "ip.der").read_bytes()).header
    assert ip.transaction_id == sent.transaction_id and ip.recip_nonce == sent.sender_nonce
    assert out.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
