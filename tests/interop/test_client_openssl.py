"""Our client library, live against the independent ``openssl cmp -port`` mock server.

Every transaction here runs over real HTTP on 127.0.0.1 against OpenSSL 3.0's mock; the
mock verifies our protection and POPO, and we verify its answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from cmpclient.asn1 import oids
from cmpclient.client import ClientConfig, Leniency, confirm, enroll, general_message, revoke
from cmpclient.errors import (
    CMPErrorMessage,
    CMPRejection,
    ExitCode,
    PollTimeout,
    ProtectionError,
    ProtocolError,
    TrustError,
)
from cmpclient.keys import generate_key, load_certificates, load_private_key
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, PBMParams, SignatureProtection, popo_signer
from cmpclient.transport.http import HTTPTransport

from openssl_peer import PBM_REF, PBM_SECRET, PBM_SECRET_ENV  # type: ignore[import-not-found]

pytestmark = pytest.mark.interop

SECRET_SRC = f"env:{PBM_SECRET_ENV}"


def _cert(path: Path) -> x509.Certificate:
    return load_certificates(path)[0]


class Recorder:
    """Collects every message sent and received (ClientConfig.on_message)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    def __call__(self, direction: str, der: bytes) -> None:
        (self.sent if direction == "request" else self.received).append(der)

    def body_types(self) -> list[str]:
        from cmpclient.message.parse import parse_message

        return [parse_message(d).body_type for d in self.sent]


def pbm_config(mock, rec: Recorder | None = None, **kw) -> ClientConfig:
    return ClientConfig(
        transport=HTTPTransport(mock.url),
        protection=MACProtection(PBM_SECRET.encode(), sender_kid=PBM_REF.encode()),
        on_message=rec,
        **kw,
    )


def sig_config(mock, pki, kt: str, rec: Recorder | None = None, **kw) -> ClientConfig:
    key = load_private_key(pki.client_key(kt))
    return ClientConfig(
        transport=HTTPTransport(mock.url),
        protection=SignatureProtection(key, _cert(pki.client_cert(kt)), load_certificates(pki.chain)),
        trusted=load_certificates(pki.trusted),
        untrusted=load_certificates(pki.chain),
        on_message=rec,
        **kw,
    )


def request_for(key, subject: str = "CN=cmp-rsp,O=cmpclient test", **popo) -> object:
    builder = CertRequestBuilder().subject(subject).public_key(key)
    return builder.popo_signature(popo_signer(key)).build()


# --- enrollment ----------------------------------------------------------------------


def test_ir_pbm_with_cert_conf(mock_server_pbm, pki):
    rec = Recorder()
    key = load_private_key(pki.rsp_key("ec"))
    result = enroll(pbm_config(mock_server_pbm, rec), "ir", request_for(key))
    assert result.cert_der == _cert(pki.rsp_cert("ec")).public_bytes(serialization.Encoding.DER)
    assert result.confirmed and not result.implicit_confirm_granted
    assert rec.body_types() == ["ir", "certConf"]
    # the mock sends the issuing chain in extraCerts: the chain is rebuilt from it
    assert [c.subject for c in result.chain()] == [c.subject for c in load_certificates(pki.chain)]
    assert result.ca_pubs == [c.public_bytes(serialization.Encoding.DER) for c in load_certificates(pki.trusted)]


@pytest.mark.parametrize("owf,mac", [("sha256", "hmac-sha1"), ("sha512", "hmacWithSHA256"), ("sha1", "hmacWithSHA1")])
def test_ir_pbm_parameter_choices_accepted_by_openssl(mock_server_pbm, pki, owf, mac):
    key = load_private_key(pki.rsp_key("ec"))
    params = PBMParams.new(owf=owf, mac=mac, iterations=600)
    cfg = ClientConfig(
        transport=HTTPTransport(mock_server_pbm.url),
        protection=MACProtection(PBM_SECRET.encode(), params, sender_kid=PBM_REF.encode()),
    )
    assert enroll(cfg, "ir", request_for(key)).confirmed


def test_cr_implicit_confirm_granted_sends_no_cert_conf(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), grant_implicitconf=True)
    rec = Recorder()
    result = enroll(pbm_config(mock, rec, implicit_confirm=True), "cr", request_for(load_private_key(pki.rsp_key("ec"))))
    assert result.implicit_confirm_granted
    assert rec.body_types() == ["cr"]


def test_implicit_confirm_not_granted_falls_back_to_cert_conf(mock_server_pbm, pki):
    rec = Recorder()
    result = enroll(pbm_config(mock_server_pbm, rec, implicit_confirm=True), "cr",
                    request_for(load_private_key(pki.rsp_key("ec"))))
    assert not result.implicit_confirm_granted and result.confirmed
    assert rec.body_types() == ["cr", "certConf"]


def test_p10cr_pbm(mock_server_pbm, pki):
    key = load_private_key(pki.rsp_key("ec"))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cmp-rsp-ec")]))
        .sign(key, hashes.SHA256())
    )
    result = enroll(pbm_config(mock_server_pbm), "p10cr", csr.public_bytes(serialization.Encoding.DER))
    assert result.certificate == _cert(pki.rsp_cert("ec"))


@pytest.mark.parametrize("mock_server_sig", ["ec", "rsa"], indirect=True)
@pytest.mark.parametrize("client_kt", ["ec", "rsa"])
def test_ir_signature_protected(mock_server_sig, pki, client_kt):
    kt = mock_server_sig.key_type
    rec = Recorder()
    result = enroll(sig_config(mock_server_sig, pki, client_kt, rec), "ir", request_for(load_private_key(pki.rsp_key(kt))))
    assert result.certificate == _cert(pki.rsp_cert(kt))
    assert rec.body_types() == ["ir", "certConf"]


@pytest.mark.parametrize("mock_server_sig", ["ec"], indirect=True)
def test_kur_and_rr_signature_protected(mock_server_sig, pki):
    rsp_cert = _cert(pki.rsp_cert("ec"))
    key = load_private_key(pki.rsp_key("ec"))
    kur = (
        CertRequestBuilder()
        .subject(rsp_cert.subject)
        .public_key(key)
        .old_cert_id(rsp_cert.issuer, rsp_cert.serial_number)
        .popo_signature(popo_signer(key))
        .build()
    )
    cfg = sig_config(mock_server_sig, pki, "ec")
    result = enroll(cfg, "kur", kur)
    assert result.certificate == rsp_cert and result.confirmed
    rr = revoke(cfg, rsp_cert.issuer, rsp_cert.serial_number, reason="keyCompromise")
    assert rr.status.status == "accepted"


def test_ra_verified_popo(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), accept_raverified=True)
    key = load_private_key(pki.rsp_key("ec"))
    req = CertRequestBuilder().subject("CN=x").public_key(key).popo_ra_verified().build()
    assert enroll(pbm_config(mock), "ir", req).confirmed


def test_pvno3_request_refused_by_openssl_30_is_reported(mock_server_pbm, pki):
    # OpenSSL 3.0 predates cmp2021 (pvno 3): its protected error answer must reach the user
    # as a CMP error, with the server's own words.
    with pytest.raises(CMPErrorMessage) as info:
        enroll(pbm_config(mock_server_pbm, pvno=3), "ir", request_for(load_private_key(pki.rsp_key("ec"))))
    assert "pvno" in " ".join(info.value.status_strings + info.value.error_details).lower()


def test_genm_cacerts(mock_server_pbm):
    items = general_message(pbm_config(mock_server_pbm), [(oids.IT_CA_CERTS, None)])
    assert [oid for oid, _ in items] == [oids.IT_CA_CERTS]


# --- polling -------------------------------------------------------------------------


def test_polling_follows_check_after(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), poll_count=2, check_after=3)
    waits: list[float] = []
    rec = Recorder()
    cfg = pbm_config(mock, rec, sleep=waits.append)
    result = enroll(cfg, "ir", request_for(load_private_key(pki.rsp_key("ec"))))
    assert result.certificate == _cert(pki.rsp_cert("ec"))
    assert waits == [3]  # one pollRep with checkAfter 3, then the final ip
    assert rec.body_types() == ["ir", "pollReq", "pollReq", "certConf"]


def test_polling_total_timeout(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), poll_count=5, check_after=10)
    now = [0.0]

    def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    cfg = pbm_config(mock, sleep=fake_sleep, clock=lambda: now[0], total_timeout=25)
    with pytest.raises(PollTimeout) as info:
        enroll(cfg, "ir", request_for(load_private_key(pki.rsp_key("ec"))))
    assert info.value.exit_code == ExitCode.TIMEOUT
    assert now[0] <= 25


# --- confirmation later ----------------------------------------------------------------


def test_no_confirm_then_confirm(mock_server_pbm, pki):
    cfg = pbm_config(mock_server_pbm)
    result = enroll(cfg, "ir", request_for(load_private_key(pki.rsp_key("ec"))), confirm=False)
    assert not result.confirmed and result.confirm_state is not None
    state = type(result.confirm_state).from_dict(result.confirm_state.to_dict())
    pkiconf = confirm(cfg, state)
    assert pkiconf.body_type == "pkiconf"
    assert pkiconf.header.transaction_id == result.transaction_id


# --- negative answers ----------------------------------------------------------------


def test_rejection_reports_status_and_fail_info(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        pkistatus=2, failure=9, statusstring="no POP")
    rec = Recorder()
    with pytest.raises(CMPRejection) as info:
        enroll(pbm_config(mock, rec), "ir", request_for(load_private_key(pki.rsp_key("ec"))))
    err = info.value
    assert (err.status, err.fail_info_names, err.status_strings) == ("rejection", ("badPOP",), ("no POP",))
    assert err.exit_code == ExitCode.REJECTED
    assert "badPOP" in err.diagnostics() and "hint:" in err.diagnostics()
    assert rec.body_types() == ["ir"]  # no certConf after a rejection


def test_error_message(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"), send_error=True)
    with pytest.raises(CMPErrorMessage) as info:
        enroll(pbm_config(mock), "ir", request_for(load_private_key(pki.rsp_key("ec"))))
    assert info.value.status == "rejection"
    assert info.value.exit_code == ExitCode.REJECTED


def test_unprotected_error_needs_leniency(openssl_mock, pki):
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=SECRET_SRC, rsp_cert=pki.rsp_cert("ec"),
                        send_error=True, send_unprotected=True)
    key = load_private_key(pki.rsp_key("ec"))
    with pytest.raises(ProtectionError) as info:
        enroll(pbm_config(mock), "ir", request_for(key))
    assert "unprotected" in info.value.message and "--unprotected-errors" in info.value.diagnostics()
    with pytest.raises(CMPErrorMessage):
        enroll(pbm_config(mock, lenient=Leniency(unprotected_errors=True)), "ir", request_for(key))


def test_wrong_secret_is_a_protection_error(mock_server_pbm, pki):
    cfg = ClientConfig(
        transport=HTTPTransport(mock_server_pbm.url),
        protection=MACProtection(b"not-the-secret", sender_kid=PBM_REF.encode()),
        lenient=Leniency(unprotected_errors=True),
    )
    with pytest.raises(ProtectionError) as info:
        enroll(cfg, "ir", request_for(load_private_key(pki.rsp_key("ec"))))
    # the mock answers with an error protected by *its* secret, which ours cannot verify
    assert info.value.exit_code == ExitCode.PROTECTION


@pytest.mark.parametrize("mock_server_sig", ["ec"], indirect=True)
def test_untrusted_server_signature(mock_server_sig, pki, tmp_path):
    other_root = generate_key("secp256r1")
    import datetime as dt

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unrelated root")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(other_root.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(other_root, hashes.SHA256())
    )
    cfg = sig_config(mock_server_sig, pki, "ec")
    cfg.trusted, cfg.untrusted = [cert], ()
    with pytest.raises(TrustError):
        enroll(cfg, "ir", request_for(load_private_key(pki.rsp_key("ec"))))


def test_certificate_for_another_key_is_rejected_with_cert_conf(mock_server_pbm, pki):
    rec = Recorder()
    other = generate_key("secp256r1")
    with pytest.raises(ProtocolError) as info:
        enroll(pbm_config(mock_server_pbm, rec), "ir", request_for(other))
    assert "does not certify the requested public key" in info.value.message
    # we told the server with a negative certConf, as RFC 9810 §5.3.18 asks
    assert rec.body_types() == ["ir", "certConf"]
    from cmpclient.message.parse import parse_message

    entry = parse_message(rec.sent[1]).content[0]
    assert entry.status is not None and entry.status.status == "rejection"


def test_connection_refused_is_a_transport_error():
    from cmpclient.errors import TransportError
    from openssl_peer import free_port  # type: ignore[import-not-found]

    cfg = ClientConfig(
        transport=HTTPTransport(f"http://127.0.0.1:{free_port()}/pkix/", timeout=(2, 2)),
        protection=MACProtection(b"x", sender_kid=b"r"),
    )
    with pytest.raises(TransportError) as info:
        general_message(cfg)
    assert info.value.exit_code in (ExitCode.TRANSPORT, ExitCode.TIMEOUT)
