"""Prove the openssl harness and the test PKI work, with openssl on BOTH sides.

openssl cmp client  ->  openssl cmp mock server (``-port``), over 127.0.0.1 only.
If these fail, the interop tests of our library against openssl cannot be trusted.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from openssl_peer import (
    KEY_TYPES,
    PBM_REF,
    PBM_SECRET,
    PBM_SECRET_ENV,
    PKI,
    OpenSSLError,
    OpenSSLMockServer,
    cmp_options,
    free_port,
    openssl_binary,
    run_openssl_client,
)

pytestmark = pytest.mark.interop

SECRET_SRC = f"env:{PBM_SECRET_ENV}"


def pem_certs(path: Path) -> list[bytes]:
    """DER of each certificate in a PEM file (compare content, not line endings)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(path.read_bytes())]


def assert_ok(res, mock: OpenSSLMockServer | None = None) -> None:
    assert res.returncode == 0, res.describe() + ("\n" + mock.describe() if mock else "")


def pbm_client(mock, pbm_env, tmp_path, pki, **extra):
    opts = dict(
        cmd="ir",
        ref=PBM_REF,
        secret=SECRET_SRC,
        newkey=pki.rsp_key("ec"),
        subject="/CN=cmp-rsp-ec/O=cmpclient test",
        certout=tmp_path / "cert.pem",
    )
    opts.update(extra)
    return run_openssl_client(server=mock, env=pbm_env, timeout=20, **opts)


# --------------------------------------------------------------------------- fixtures / PKI


def test_pki_chains_verify_with_openssl(pki: PKI):
    exe = openssl_binary()
    for kt in KEY_TYPES:
        for cert in (pki.client_cert(kt), pki.server_cert(kt), pki.rsp_cert(kt)):
            r = subprocess.run(
                [exe, "verify", "-CAfile", str(pki.trusted), "-untrusted", str(pki.chain), str(cert)],
                capture_output=True, text=True, timeout=10,
            )
            assert r.returncode == 0 and ": OK" in r.stdout, (cert, r.stdout, r.stderr)


def test_pki_keys_match_certs_and_usage(pki: PKI):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        Encoding, PublicFormat, load_pem_private_key,
    )

    def spki(pub):
        return pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    for kt in KEY_TYPES:
        for role in ("client", "server", "rsp"):
            cert = x509.load_pem_x509_certificate(getattr(pki, f"{role}_cert")(kt).read_bytes())
            key = load_pem_private_key(getattr(pki, f"{role}_key")(kt).read_bytes(), None)
            assert spki(cert.public_key()) == spki(key.public_key()), (role, kt)
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
            assert ku.critical and ku.value.digital_signature
            assert cert.subject.rfc4514_string() == f"O=cmpclient test,CN=cmp-{role}-{kt}"
            assert (getattr(pki, f"{role}_key")(kt).stat().st_mode & 0o077) in (0, 0o044)


def test_pki_p12_opens_with_documented_password(pki: PKI):
    from cryptography.hazmat.primitives.serialization import pkcs12

    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(pki.client_p12.read_bytes(), b"wrong")
    key, cert, cas = pkcs12.load_key_and_certificates(
        pki.client_p12.read_bytes(), pki.p12_password.encode()
    )
    assert key is not None and cert is not None
    assert cert.subject.rfc4514_string() == "O=cmpclient test,CN=cmp-client-ec"
    assert len(cas) == 2


# --------------------------------------------------------------------------- harness basics


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_cmp_options_conversion(tmp_path):
    assert cmp_options(["-a", "1"], b="x", flag=True, off=False, none=None, rep=[1, 2], p=tmp_path) == [
        "-a", "1", "-b", "x", "-flag", "-rep", "1", "-rep", "2", "-p", str(tmp_path),
    ]


def test_mock_starts_stops_and_captures_logs(pki: PKI, pbm_env):
    mock = OpenSSLMockServer(
        srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), env=pbm_env
    )
    with mock:
        assert mock.alive
        assert mock.url == f"http://127.0.0.1:{mock.port}/pkix/"
        with socket.create_connection(("127.0.0.1", mock.port), timeout=2):
            pass
        pid = mock.proc.pid
    assert not mock.alive and mock.proc is None
    assert mock.returncode is not None  # terminated by us
    assert f"ACCEPT [::]:{mock.port} PID={pid}" in mock.stdout  # logs kept after stop
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mock.port), timeout=1).close()


def test_mock_bad_option_fails_fast_with_its_message():
    mock = OpenSSLMockServer(no_such_option=True, startup_timeout=10)
    with pytest.raises(OpenSSLError, match="no_such_option"):
        mock.start()
    assert not mock.alive


def test_mock_serves_root_and_pkix_paths_only(mock_server_pbm, pbm_env, tmp_path, pki):
    for path, ok in (("/", True), ("/pkix/", True), ("/pkix", False), ("/ejbca/publicweb/cmp/x", False)):
        r = pbm_client(f"127.0.0.1:{mock_server_pbm.port}{path}", pbm_env, tmp_path, pki,
                       implicit_confirm=True)
        assert (r.returncode == 0) is ok, (path, r.describe())
        if not ok:
            assert "404" in r.output
    assert "expecting empty path or 'pkix/'" in mock_server_pbm.stderr


@pytest.mark.parametrize("readiness", ["announce", "connect"])
def test_max_msgs_counts_real_messages_only(openssl_mock, pbm_env, tmp_path, pki, readiness):
    """Neither readiness check is counted: ir + certConf = 2 messages, then the mock exits 0."""
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        max_msgs=2, readiness=readiness)
    assert_ok(pbm_client(mock, pbm_env, tmp_path, pki), mock)
    assert mock.wait(timeout=10) == 0


def test_client_timeout_is_enforced(tmp_path):
    # a listening socket that never answers: the client must be killed by our timeout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(OpenSSLError, match="timed out"):
            run_openssl_client(server=f"127.0.0.1:{port}/pkix/", timeout=2, cmd="genm",
                               ref="x", secret="pass:x", msg_timeout=0)


# --------------------------------------------------------------------------- CMP flows


def test_ir_pbm_with_certconf(mock_server_pbm, pbm_env, tmp_path, pki):
    r = pbm_client(mock_server_pbm, pbm_env, tmp_path, pki,
                   cacertsout=tmp_path / "capubs.pem", extracertsout=tmp_path / "extra.pem")
    assert_ok(r, mock_server_pbm)
    assert pem_certs(tmp_path / "cert.pem") == pem_certs(pki.rsp_cert("ec"))
    assert pem_certs(tmp_path / "capubs.pem") == pem_certs(pki.trusted)
    assert pem_certs(tmp_path / "extra.pem") == pem_certs(pki.chain)
    assert "sending CERTCONF" in r.output and "received PKICONF" in r.output


def test_ir_pbm_wrong_secret_is_refused(mock_server_pbm, pbm_env, tmp_path, pki):
    r = pbm_client(mock_server_pbm, {PBM_SECRET_ENV: PBM_SECRET + "x"}, tmp_path, pki)
    assert r.returncode != 0
    assert not (tmp_path / "cert.pem").exists()
    assert "wrong pbm value" in r.output  # the mock's error reply is PBM'd with the real secret


def test_ir_pbm_hmac_sha256(mock_server_pbm, pbm_env, tmp_path, pki):
    r = pbm_client(mock_server_pbm, pbm_env, tmp_path, pki, mac="hmacWithSHA256")
    assert_ok(r, mock_server_pbm)
    assert pem_certs(tmp_path / "cert.pem") == pem_certs(pki.rsp_cert("ec"))


@pytest.mark.parametrize("mock_server_sig", ["ec", "rsa"], indirect=True)
@pytest.mark.parametrize("client_kt", ["ec", "rsa"])
def test_cr_signature(mock_server_sig, client_kt, tmp_path, pki):
    kt = mock_server_sig.key_type
    r = run_openssl_client(
        server=mock_server_sig, timeout=20,
        cmd="cr",
        cert=pki.client_cert(client_kt), key=pki.client_key(client_kt),
        untrusted=pki.chain, trusted=pki.trusted,
        newkey=pki.rsp_key(kt),
        certout=tmp_path / "cert.pem",
    )
    assert_ok(r, mock_server_sig)
    assert pem_certs(tmp_path / "cert.pem") == pem_certs(pki.rsp_cert(kt))


def test_cr_signature_untrusted_server_is_refused(mock_server_sig, tmp_path, pki):
    # trusting only the client's own cert as anchor: the server's chain cannot be built
    r = run_openssl_client(
        server=mock_server_sig, timeout=20, cmd="cr",
        cert=pki.client_cert("ec"), key=pki.client_key("ec"),
        trusted=pki.client_cert("rsa"), newkey=pki.rsp_key("ec"), certout=tmp_path / "cert.pem",
    )
    assert r.returncode != 0, r.describe()
    assert not (tmp_path / "cert.pem").exists()


def test_implicit_confirm_granted(openssl_mock, pbm_env, tmp_path, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        grant_implicitconf=True, max_msgs=1)
    r = pbm_client(mock, pbm_env, tmp_path, pki, cmd="cr", implicit_confirm=True)
    assert_ok(r, mock)
    assert "sending CERTCONF" not in r.output
    assert pem_certs(tmp_path / "cert.pem") == pem_certs(pki.rsp_cert("ec"))
    assert mock.wait(timeout=10) == 0  # exactly one message was exchanged


def test_implicit_confirm_not_granted_falls_back_to_certconf(mock_server_pbm, pbm_env, tmp_path, pki):
    r = pbm_client(mock_server_pbm, pbm_env, tmp_path, pki, implicit_confirm=True)
    assert_ok(r, mock_server_pbm)
    assert "sending CERTCONF" in r.output


def test_polling(openssl_mock, pbm_env, tmp_path, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        poll_count=2, check_after=0)
    r = pbm_client(mock, pbm_env, tmp_path, pki)
    assert_ok(r, mock)
    assert "received 'waiting' PKIStatus" in r.output
    assert r.output.count("sending POLLREQ") == 2
    assert pem_certs(tmp_path / "cert.pem") == pem_certs(pki.rsp_cert("ec"))


def test_rejection(openssl_mock, pbm_env, tmp_path, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        pkistatus=2, failure=9, statusstring="rejected by test")
    r = pbm_client(mock, pbm_env, tmp_path, pki)
    assert r.returncode != 0
    assert not (tmp_path / "cert.pem").exists()
    assert "PKIStatus: rejection" in r.output
    assert "badPOP" in r.output and '"rejected by test"' in r.output


def test_send_error(openssl_mock, pbm_env, tmp_path, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        send_error=True)
    r = pbm_client(mock, pbm_env, tmp_path, pki)
    assert r.returncode != 0
    assert "received ERROR" in r.output
    assert not (tmp_path / "cert.pem").exists()


def test_raverified_popo_needs_accept_raverified(openssl_mock, pbm_env, tmp_path, pki):
    strict = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"))
    r = pbm_client(strict, pbm_env, tmp_path, pki, popo=0)
    assert r.returncode != 0 and "badPOP" in r.output
    lenient = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                           accept_raverified=True)
    assert_ok(pbm_client(lenient, pbm_env, tmp_path, pki, popo=0), lenient)


def test_kur_and_rr_signature(mock_server_sig, tmp_path, pki):
    common = dict(server=mock_server_sig, timeout=20, cert=pki.client_cert("ec"),
                  key=pki.client_key("ec"), untrusted=pki.chain, trusted=pki.trusted)
    # the mock only accepts kur/rr for its -rsp_cert (else "wrong certid")
    r = run_openssl_client(cmd="kur", oldcert=pki.rsp_cert("ec"), newkey=pki.rsp_key("ec"),
                           certout=tmp_path / "kur.pem", **common)
    assert_ok(r, mock_server_sig)
    assert pem_certs(tmp_path / "kur.pem") == pem_certs(pki.rsp_cert("ec"))
    r = run_openssl_client(cmd="kur", newkey=pki.rsp_key("ec"), certout=tmp_path / "bad.pem", **common)
    assert r.returncode != 0 and "wrong certid" in r.output
    r = run_openssl_client(cmd="rr", oldcert=pki.rsp_cert("ec"), revreason=1, **common)
    assert_ok(r, mock_server_sig)
    assert "revocation accepted" in r.output


def test_genm_cacerts(mock_server_pbm, pbm_env, pki):
    r = run_openssl_client(server=mock_server_pbm, env=pbm_env, timeout=20, cmd="genm",
                           infotype="caCerts", ref=PBM_REF, secret=SECRET_SRC)
    assert_ok(r, mock_server_pbm)
    assert "received GENP" in r.output and "id-it-caCerts" in r.output


def test_ed25519_new_key_works_but_ed25519_signer_does_not(openssl_mock, pbm_env, tmp_path, pki):
    """OpenSSL 3.0 quirk pinned: Ed25519 POPO is fine, Ed25519 CMP protection is not."""
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ed25519"),
                        srv_trusted=pki.trusted, srv_untrusted=pki.chain)
    r = pbm_client(mock, pbm_env, tmp_path, pki, newkey=pki.rsp_key("ed25519"))
    assert_ok(r, mock)
    assert pem_certs(tmp_path / "cert.pem") == pem_certs(pki.rsp_cert("ed25519"))
    r = run_openssl_client(server=mock, timeout=20, cmd="cr", cert=pki.client_cert("ed25519"),
                           key=pki.client_key("ed25519"), untrusted=pki.chain, trusted=pki.trusted,
                           newkey=pki.rsp_key("ed25519"), certout=tmp_path / "sig.pem")
    assert r.returncode != 0 and "unsupported key type" in r.output
