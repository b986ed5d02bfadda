"""CMP over HTTPS: the CLI's TLS options against the bundled test CA behind a TLS server.

The test CA's WSGI app (:func:`cmpclient.testca.wsgi.make_app` over ``testca_server.ca``) is
served by a threading wsgiref server whose listening socket is wrapped with :mod:`ssl`
(server certificate from a TLS CA made here with ``cryptography``; 127.0.0.1, port 0; one
thread; readiness polled with a real HTTPS request). One server only authenticates itself,
another one also demands a client certificate (``ssl.CERT_REQUIRED``).

Checked: ``--tls-ca`` makes ``crmf`` work (CliRunner and the installed ``cmpclient``);
without it, or with the wrong CA, the transport exit code and a hint naming ``--tls-ca``;
``--tls-cert/--tls-key`` for mutual TLS (and its absence refused by the server);
``--tls-insecure`` works and warns; the library's HTTPTransport with ``verify``/``client_cert``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import http.client
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cmpclient.cli.main import cli
from cmpclient.client import ClientConfig, enroll
from cmpclient.errors import ExitCode, TransportError
from cmpclient.keys import generate_key
from cmpclient.message.parse import parse_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, popo_signer
from cmpclient.testca.serve import ThreadingWSGIServer
from cmpclient.testca.wsgi import make_app
from cmpclient.transport.http import HTTPTransport

REPO = Path(__file__).resolve().parents[2]
CMPCLIENT_EXE = REPO / ".venv" / "bin" / "cmpclient"
RA_SECRET = "password"
NO_CA_BUNDLE_ENV = {"REQUESTS_CA_BUNDLE": None, "CURL_CA_BUNDLE": None, "SSL_CERT_FILE": None, "SSL_CERT_DIR": None}


# --------------------------------------------------------------------------- TLS material


@dataclass
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TLS test")])


def _make_ca(cn: str) -> tuple[Any, x509.Certificate]:
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(ca_key: Any, ca_cert: x509.Certificate, cn: str, *, server: bool) -> tuple[Any, x509.Certificate]:
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    b = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _write(path: Path, obj: Any) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> TLSFiles:
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = _make_ca("CMP TLS test CA")
    srv_key, srv_cert = _issue(ca_key, ca_cert, "127.0.0.1", server=True)
    cli_key, cli_cert = _issue(ca_key, ca_cert, "cmp tls client", server=False)
    _, other = _make_ca("Some other TLS CA")
    return TLSFiles(
        ca=_write(d / "tls-ca.pem", ca_cert), server_cert=_write(d / "server.pem", srv_cert),
        server_key=_write(d / "server-key.pem", srv_key), client_cert=_write(d / "client.pem", cli_cert),
        client_key=_write(d / "client-key.pem", cli_key), other_ca=_write(d / "other-ca.pem", other),
    )


# --------------------------------------------------------------------------- the HTTPS test CA


class _CountingCA:
    """The test CA as the WSGI app sees it, one request at a time, counting what reaches it."""

    def __init__(self, ca: Any) -> None:
        self._ca = ca
        self._lock = threading.Lock()
        self.handled: list[str] = []

    def alias_exists(self, alias: str) -> bool:
        return self._ca.alias_exists(alias)

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.handled.append(alias)
            return self._ca.handle(alias, der)


@dataclass
class HTTPSCA:
    base_url: str
    front: _CountingCA
    server: Any
    thread: threading.Thread
    mtls: bool

    def url(self, alias: str) -> str:
        return f"{self.base_url}/ejbca/publicweb/cmp/{alias}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _start_https(ca: Any, files: TLSFiles, *, mtls: bool) -> HTTPSCA:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    if mtls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(files.ca))
    import socket

    sock = socket.create_server(("127.0.0.1", 0))
    tls_sock = ctx.wrap_socket(sock, server_side=True)
    front = _CountingCA(ca)
    httpd = ThreadingWSGIServer(tls_sock, make_app(front), client_timeout=10.0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="https-testca")
    thread.start()
    port = tls_sock.getsockname()[1]
    running = HTTPSCA(f"https://127.0.0.1:{port}", front, httpd, thread, mtls)
    # Readiness: a real HTTPS request (GET is answered 405 by the CMP endpoint).
    client_ctx = ssl.create_default_context(cafile=str(files.ca))
    if mtls:
        client_ctx.load_cert_chain(files.client_cert, files.client_key)
    deadline = time.monotonic() + 10
    while True:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_ctx, timeout=2)
            conn.request("GET", "/ejbca/publicweb/cmp/ra")
            status = conn.getresponse().status
            conn.close()
            assert status == 405, status
            break
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                running.stop()
                raise
            time.sleep(0.05)
    return running


@pytest.fixture(scope="module")
def https_ca(testca_server, tls_files):
    running = _start_https(testca_server.ca, tls_files, mtls=False)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mtls_ca(testca_server, tls_files):
    running = _start_https(testca_server.ca, tls_files, mtls=True)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _no_environment_trust(monkeypatch):
    # Environment CA bundles would change what verify=True trusts; the tests are about our options.
    for var in NO_CA_BUNDLE_ENV:
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- helpers


def _cli(args: list[Any], env: dict[str, str | None] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"NO_COLOR": "1", "RA_SECRET": RA_SECRET, **NO_CA_BUNDLE_ENV, **(env or {})},
                              catch_exceptions=False)


def _out(r) -> str:
    return f"exit={r.exit_code}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


_KEYS = tempfile.mkdtemp(prefix="cmpclient-tls-test-keys-")  # the new keys have to go somewhere
atexit.register(shutil.rmtree, _KEYS, True)


def _crmf(url: str, name: str, *extra: Any) -> list[Any]:
    return ["crmf", "--url", url, "--secret", "env:RA_SECRET", "--keyid", "tls", "--dn", f"CN={name},UID={name}",
            "--reqnewkeyspec", "secp256r1", "--keyout", os.path.join(_KEYS, f"{name}-key.pem"), *extra]


def _name_for(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- tests


def test_crmf_over_https_with_tls_ca(https_ca, tls_files, testca_server, tmp_path):
    name = _name_for("https")
    before = len(https_ca.front.handled)
    r = _cli(["--json", *_crmf(https_ca.url("ra"), name, "--tls-ca", tls_files.ca, "--certout", tmp_path / "c.pem",
                               "--rspout", f"{tmp_path}/ip.der,{tmp_path}/pkiconf.der")])
    assert r.exit_code == 0, _out(r)
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["confirmed"] is True
    # ir and certConf both went through the TLS server to the CA.
    assert https_ca.front.handled[before:] == ["ra", "ra"]
    assert parse_message((tmp_path / "pkiconf.der").read_bytes()).body_type == "pkiconf"
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    rec = testca_server.ca.store.find_certificate("ManagementCA", cert.serial_number)
    assert rec is not None and rec.confirmed


def test_crmf_over_https_with_the_installed_cmpclient(https_ca, tls_files, tmp_path):
    assert CMPCLIENT_EXE.is_file(), f"{CMPCLIENT_EXE} is missing (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k not in NO_CA_BUNDLE_ENV}
    env.update(NO_COLOR="1", RA_SECRET=RA_SECRET)
    name = _name_for("httpsexe")
    proc = subprocess.run([str(CMPCLIENT_EXE), "--json", *map(str, _crmf(https_ca.url("ra"), name, "--tls-ca", tls_files.ca,
                                                                        "--dest", tmp_path))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["confirmed"] is True
    assert (tmp_path / f"{name}.pem").is_file()
    # Without --tls-ca the real process fails at the transport with its exit code.
    proc = subprocess.run([str(CMPCLIENT_EXE), *map(str, _crmf(https_ca.url("ra"), name + "x"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == ExitCode.TRANSPORT, proc.stdout + proc.stderr
    assert "--tls-ca" in proc.stderr


def test_https_without_tls_ca_is_a_transport_error_with_a_hint(https_ca):
    before = len(https_ca.front.handled)
    r = _cli(_crmf(https_ca.url("ra"), _name_for("notrust")))
    assert r.exit_code == ExitCode.TRANSPORT, _out(r)
    assert "TLS certificate verification failed" in r.stderr
    assert "--tls-ca" in r.stderr  # the option that fixes it
    assert len(https_ca.front.handled) == before  # nothing reached the CA


def test_https_with_the_wrong_tls_ca_fails(https_ca, tls_files):
    r = _cli(_crmf(https_ca.url("ra"), _name_for("wrongca"), "--tls-ca", tls_files.other_ca))
    assert r.exit_code == ExitCode.TRANSPORT, _out(r)
    assert "verification failed" in r.stderr


def test_tls_insecure_works_and_warns(https_ca):
    before = len(https_ca.front.handled)
    r = _cli(_crmf(https_ca.url("ra"), _name_for("insecure"), "--tls-insecure"))
    assert r.exit_code == 0, _out(r)
    assert "verification is OFF" in r.stderr
    assert len(https_ca.front.handled) == before + 2


def test_mutual_tls_with_a_client_certificate(mtls_ca, tls_files):
    before = len(mtls_ca.front.handled)
    r = _cli(_crmf(mtls_ca.url("ra"), _name_for("mtls"), "--tls-ca", tls_files.ca,
                   "--tls-cert", tls_files.client_cert, "--tls-key", tls_files.client_key))
    assert r.exit_code == 0, _out(r)
    assert "certConf sent, pkiConf received" in r.stderr
    assert len(mtls_ca.front.handled) == before + 2


def test_mutual_tls_without_a_client_certificate_is_refused(mtls_ca, tls_files):
    before = len(mtls_ca.front.handled)
    r = _cli(_crmf(mtls_ca.url("ra"), _name_for("nocert"), "--tls-ca", tls_files.ca, "--timeout", "10"))
    assert r.exit_code == ExitCode.TRANSPORT, _out(r)
    # Usually the server's TLS 1.3 alert (certificate required) arrives; a reset is possible too.
    assert "TLS handshake" in r.stderr or "reset" in r.stderr.lower() or "aborted" in r.stderr.lower(), _out(r)
    assert len(mtls_ca.front.handled) == before


def test_tls_cert_without_tls_key_is_a_usage_error(mtls_ca, tls_files):
    r = _cli(_crmf(mtls_ca.url("ra"), _name_for("half"), "--tls-ca", tls_files.ca, "--tls-cert", tls_files.client_cert))
    assert r.exit_code == ExitCode.USAGE, _out(r)
    assert "--tls-cert and --tls-key go together" in r.stderr


def test_library_https_with_verify_and_client_cert(mtls_ca, tls_files):
    key = generate_key("secp256r1")
    name = _name_for("libtls")
    req = CertRequestBuilder().subject(f"CN={name},UID={name}").public_key(key).popo_signature(popo_signer(key)).build()
    cfg = ClientConfig(
        transport=HTTPTransport(mtls_ca.url("ra"), verify=str(tls_files.ca),
                                client_cert=(str(tls_files.client_cert), str(tls_files.client_key)), timeout=10),
        protection=MACProtection(RA_SECRET.encode(), sender_kid=b"lib-tls"),
        implicit_confirm=True,
    )
    try:
        result = enroll(cfg, "ir", req)
    finally:
        cfg.transport.close()
    assert result.implicit_confirm_granted
    assert result.certificate.subject.rfc4514_string() == f"CN={name},UID={name}"
    # And the same transport without the client certificate cannot get through.
    with HTTPTransport(mtls_ca.url("ra"), verify=str(tls_files.ca), timeout=10) as t:
        with pytest.raises(TransportError):
            t.send(b"\x30\x00")


def test_each_transaction_on_a_new_connection_resumes_the_tls_session(https_ca, tls_files):
    """Transactions start on new connections (as openssl's client does); the TLS session of
    the previous one is offered and the server resumes it (an abbreviated handshake)."""
    resumed: list[bool] = []
    cfg = ClientConfig(transport=HTTPTransport(https_ca.url("ra"), verify=str(tls_files.ca), timeout=10),
                       protection=MACProtection(RA_SECRET.encode(), sender_kid=b"lib-tls-resume"), implicit_confirm=True)
    endpoint = cfg.transport._endpoint
    connect = endpoint.connect

    def recording_connect(*args: Any) -> Any:
        conn = connect(*args)  # the handshake is done: whether it resumed is known
        resumed.append(conn.sock.session_reused)
        return conn

    endpoint.connect = recording_connect
    try:
        for _ in range(3):
            key = generate_key("secp256r1")
            name = _name_for("resume")
            req = CertRequestBuilder().subject(f"CN={name},UID={name}").public_key(key).popo_signature(popo_signer(key))
            assert enroll(cfg, "ir", req).implicit_confirm_granted
    finally:
        cfg.transport.close()
    assert resumed == [False, True, True]  # one connection per transaction, the later ones resumed
