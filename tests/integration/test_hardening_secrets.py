"""Secrets never leak (issue #6): not in argv (what ``ps`` shows), not in logs or ``-vvv``
message dumps, not in ``--show-config``; private keys are written 0600 whatever the
umask; TLS verification is never off without a warning.

The CLI runs as a real subprocess (``python -m cmpclient``) so that ``/proc/<pid>/cmdline``
and the process's real stderr are what is checked.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "Zq9-hardening-secret-7Kx"
ALIAS_TOML = f"""
[alias.hsecret]
mode = "ra"
auth_modules = ["HMAC"]
hmac_secret = "{SECRET}"
ra_name_generation = {{ scheme = "DN", parameter = "CN" }}
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "pbe"
"""


@pytest.fixture(scope="module")
def secret_ca(testca_factory):
    return testca_factory("hardening-secrets", ALIAS_TOML)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMPCLIENT_")}
    env.update({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "HSECRET": SECRET, **extra})
    return env


def _cli(*args: object, env: dict[str, str] | None = None, umask: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmpclient", *map(str, args)], capture_output=True, text=True,
                          env=env or _env(), cwd=REPO, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def _crmf(url: str, name: str, dest: Path) -> list[object]:
    return ["crmf", "--url", url, "--secret", "env:HSECRET", "--ref", "hardening", "--dn", f"CN={name},O=cmpclient test",
            "--reqnewkeyspec", "secp256r1", "--dest", dest]


def test_secret_is_not_in_argv_while_the_client_runs(tmp_path):
    """A server that accepts the connection and never answers keeps the client alive;
    meanwhile its command line (as ``ps`` shows it) must not contain the secret."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections complete in the backlog; nobody ever answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/ejbca/publicweb/cmp/ra"
        argv = [sys.executable, "-m", "cmpclient", "crmf", "--url", url, "--secret", "env:HSECRET", "--ref", "x",
                "--dn", "CN=argv,O=x", "--reqnewkeyspec", "secp256r1", "--dest", str(tmp_path), "--timeout", "60"]
        proc = subprocess.Popen(argv, env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            cmdlines = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                cmdlines.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
                ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(proc.pid)], capture_output=True, text=True, timeout=10)
                cmdlines.append(ps.stdout)
                if len(cmdlines) >= 20:
                    break
                time.sleep(0.1)
            assert proc.poll() is None, "the client should still be waiting for its answer"
            assert any("env:HSECRET" in c for c in cmdlines)
            assert not any(SECRET in c for c in cmdlines)
        finally:
            proc.kill()
            out, err = proc.communicate(timeout=30)
    assert SECRET not in out.decode() + err.decode()


def test_literal_secret_in_argv_is_refused(tmp_path):
    r = _cli("crmf", "--url", "http://127.0.0.1:9/x", "--secret", f"pass:{SECRET}", "--ref", "x", "--dn", "CN=lit",
             "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem")
    assert r.returncode == 3, r.stderr
    assert "pass:" in r.stderr and SECRET not in r.stdout + r.stderr


def test_secret_is_not_in_vvv_dumps_or_logs_and_key_file_is_0600(secret_ca, tmp_path):
    r = _cli("-vvv", *_crmf(secret_ca.url("hsecret"), "vvv-user", tmp_path), umask=0)
    assert r.returncode == 0, r.stderr[-3000:]
    assert SECRET not in r.stdout and SECRET not in r.stderr
    assert SECRET.encode().hex() not in r.stderr.lower()
    assert "ir" in r.stderr and len(r.stderr) > 2000  # the messages really were dumped
    keys = [p for p in tmp_path.rglob("*") if p.is_file() and "key" in p.name]
    assert keys, sorted(p.name for p in tmp_path.rglob("*"))
    for key in keys:  # umask 0 would give 0666: the mode is set explicitly
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert SECRET.encode() not in key.read_bytes()


def test_secret_is_not_in_show_config(secret_ca, tmp_path):
    args = _crmf(secret_ca.url("hsecret"), "show", tmp_path)
    r = _cli(args[0], "--show-config", *args[1:])
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert "env:HSECRET" in text or "redacted" in text.lower()
    assert SECRET not in text
    # the secret given through the environment option is not echoed either
    r = _cli("crmf", "--show-config", "--url", "http://127.0.0.1:9/x", "--ref", "x", "--dn", "CN=show2",
             env=_env(CMPCLIENT_AUTHPARAM="env:HSECRET"))
    assert SECRET not in r.stdout + r.stderr


def test_server_log_never_shows_the_secret(secret_ca, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    r = _cli(*_crmf(secret_ca.url("hsecret"), "log-user", tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli(*_crmf(secret_ca.url("hsecret"), "log-user-bad", tmp_path), env=_env(HSECRET="wrong-" + SECRET))
    assert r.returncode != 0
    assert SECRET not in caplog.text
    summary = secret_ca.ca.summary()
    assert "hsecret" in summary and SECRET not in summary


def test_tls_verification_is_never_off_silently(caplog, closed_port, tmp_path):
    from cmpclient.transport.http import HTTPTransport

    url = f"https://127.0.0.1:{closed_port}/x"  # refused at once: the warning comes before connecting

    caplog.set_level(logging.WARNING)
    HTTPTransport(url)
    assert "verification is OFF" not in caplog.text
    HTTPTransport(url, verify=False)
    assert "verification is OFF" in caplog.text
    # CLI: by flag or by its environment variable, the warning reaches stderr at default verbosity
    for env in (_env(), _env(CMPCLIENT_TLS_INSECURE="1")):
        extra = ["--tls-insecure"] if "CMPCLIENT_TLS_INSECURE" not in env else []
        r = _cli("crmf", "--url", url, *extra, "--secret", "env:HSECRET", "--ref", "x", "--dn", "CN=tls",
                 "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", env=env)
        assert r.returncode == 4, r.stderr
        assert "verification is OFF" in r.stderr, r.stderr
    # and environment trust settings cannot switch it off: an empty CA bundle means "default"
    r = _cli("crmf", "--url", url, "--secret", "env:HSECRET", "--ref", "x", "--dn", "CN=tls",
             "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem", env=_env(SSL_CERT_FILE="", SSL_CERT_DIR="", CURL_CA_BUNDLE="", REQUESTS_CA_BUNDLE="", PYTHONHTTPSVERIFY="0"))
    assert r.returncode == 4 and "verification is OFF" not in r.stderr


def test_a_password_in_the_url_is_refused_on_the_command_line_and_never_shown(closed_port, tmp_path):
    """http://user:password@host/ becomes HTTP Basic auth: a secret. On argv it is refused
    (exit 3, like pass:); from CMPCLIENT_URL it is used and never printed."""
    url = f"http://alice:{SECRET}@127.0.0.1:{closed_port}/x"
    args = ["--secret", "env:HSECRET", "--ref", "x", "--dn", "CN=u", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem"]
    r = _cli("crmf", "--url", url, *args)
    assert r.returncode == 3 and "password in the URL" in r.stderr and "CMPCLIENT_URL" in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr and "alice:***@" in r.stderr
    # from the environment: accepted (it reaches the transport: connection refused, exit 4), never shown
    r = _cli("crmf", "-v", *args, env=_env(CMPCLIENT_URL=url))
    assert r.returncode == 4, r.stderr
    assert SECRET not in r.stdout + r.stderr and "alice:***@127.0.0.1" in r.stderr
    r = _cli("crmf", "--show-config", *args, env=_env(CMPCLIENT_URL=url))
    assert r.returncode == 0 and SECRET not in r.stdout + r.stderr and "alice:***@" in r.stdout
    # the proxy's --upstream likewise
    r = _cli("proxy", "--listen", "127.0.0.1:0", "--upstream", url, timeout=60)
    assert r.returncode == 3 and SECRET not in r.stdout + r.stderr and "password in the URL" in r.stderr, r.stderr


def test_every_secret_option_is_redacted_by_show_config(tmp_path):
    """--show-config hides each option declared secret (here the RA key passwords of
    nested and crmf), not only a hand-kept list."""
    env = _env(CMPCLIENT_ALLOW_PASS_LITERAL="1")
    r = _cli("nested", "--show-config", "--url", "http://127.0.0.1:1/x", "--in", tmp_path / "none.der",
             "--ra-keypass", f"pass:{SECRET}", env=env)
    assert r.returncode == 0 and "ra_keypass" in r.stdout and SECRET not in r.stdout + r.stderr, r.stdout
    r = _cli("crmf", "--show-config", "--url", "http://127.0.0.1:1/x", "--nest-with-ra-keypass", f"pass:{SECRET}", env=env)
    assert r.returncode == 0 and "nest_with_ra_keypass" in r.stdout and SECRET not in r.stdout + r.stderr, r.stdout


def test_the_test_ca_data_files_holding_secrets_are_0600_whatever_the_umask(tmp_path):
    """testca.toml holds the HMAC secrets, testca.sqlite the end entities' passwords."""
    code = f"from cmpclient.testca import TestCA; TestCA.open(None, {str(tmp_path / 'd')!r}).close()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120, preexec_fn=lambda: os.umask(0))
    for name in ("testca.toml", "testca.sqlite"):
        assert stat.S_IMODE((tmp_path / "d" / name).stat().st_mode) == 0o600, name


def test_quiet_does_not_hide_that_tls_verification_is_off(closed_port, tmp_path):
    for where in (["-q", "crmf"], ["crmf", "-q"]):
        r = _cli(*where, "--url", f"https://127.0.0.1:{closed_port}/x", "--tls-insecure", "--secret", "env:HSECRET",
                 "--ref", "x", "--dn", "CN=q", "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "new-key.pem")
        assert r.returncode == 4 and "verification is OFF" in r.stderr, (where, r.stderr)
