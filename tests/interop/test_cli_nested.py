"""``cmpclient nested`` and the nesting library against the bundled test CA (alias ``nested``).

openssl 3.0 has no nested messages, so the test CA is the peer: its ``nested`` alias unwraps
a nested message whose signature chains to a certificate in its RA trust directory and answers
the inner request (plainly for one, nested for a batch).  Inner requests are HMAC-protected
with the alias's secret; the outer message is signed by the CA's generated RA administrator.

A small in-test responder (WSGI on 127.0.0.1, port 0) plays a misbehaving CA for the
transaction checks that the real CA never fails (wrong recipNonce, foreign transactionID).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cmpclient.cli.main import cli
from cmpclient.client.nested import NestingTransport, outer_verifier, unwrap_response, wrap_in_nested
from cmpclient.client import ClientConfig, Transaction, enroll
from cmpclient.errors import ExitCode, UsageError
from cmpclient.keys import load_certificates, load_private_key
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import parse_message
from cmpclient.message.pkimessage import assemble, decode_message, encode_message, nested_messages
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, SignatureProtection, popo_signer, protect_message, verify_protection
from cmpclient.transport import open_transport

ALIAS = "nested"
SECRET = b"password"  # hmac_secret of the test CA's "nested" alias
REPO = Path(__file__).resolve().parents[2]
PKI = REPO / "fixtures" / "pki"


# --- helpers ------------------------------------------------------------------------------------


def make_ir(cn: str, *, tmp: Path | None = None) -> tuple[bytes, Any]:
    """A MAC-protected ir for CN=<cn> (what an end entity would hand to its RA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    msg = CertRequestBuilder().subject(f"CN={cn},O=cmpclient test").public_key(key).popo_signature(popo_signer(key)).build()
    cfg = ClientConfig(transport=None, protection=MACProtection(SECRET, sender_kid=b"nested"), sender=f"CN={cn},O=cmpclient test")
    der, _ = Transaction(cfg).build_request(B.cert_req_body("ir", [msg]))
    if tmp is not None:
        (tmp / f"{cn}.der").write_bytes(der)
    return der, key


def ra_protection(ca: Any) -> SignatureProtection:
    return SignatureProtection(load_private_key(ca.ra_admin_key), load_certificates(ca.ra_admin_cert)[0])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["nested", *args], env={"NO_COLOR": "1"}, catch_exceptions=False)


def ca_trust(ca: Any) -> list[str]:
    return ["--trusted", str(ca.root_cert), "--untrusted", str(ca.ca_chain)]


def ra_args(ca: Any) -> list[str]:
    return ["--ra-cert", str(ca.ra_admin_cert), "--ra-key", str(ca.ra_admin_key)]


# --- wrap / unwrap round trip ----------------------------------------------------------------------


def test_wrap_keeps_inner_bytes_and_signs_the_outer_message(testca_server: Any) -> None:
    first, _ = make_ir("wrap-a")
    second, _ = make_ir("wrap-b")
    prot = ra_protection(testca_server)
    outer = wrap_in_nested([first, second], prot)
    msg = decode_message(outer)
    assert nested_messages(msg) == [first, second]
    parsed = parse_message(outer)
    assert parsed.header.sender_name == prot.cert.subject
    assert parsed.header.transaction_id not in (parse_message(first).header.transaction_id,
                                                 parse_message(second).header.transaction_id)
    verified = verify_protection(outer, msg, pinned=prot.cert)
    assert verified.signer_cert == prot.cert
    assert unwrap_response(outer) == [first, second]


def test_single_inner_message_reuses_its_transaction_id(testca_server: Any) -> None:
    inner, _ = make_ir("wrap-single")
    outer = parse_message(wrap_in_nested([inner], ra_protection(testca_server)))
    assert outer.header.transaction_id == parse_message(inner).header.transaction_id
    assert outer.header.sender_nonce != parse_message(inner).header.sender_nonce
    assert outer.header.recipient == parse_message(inner).header.recipient


def test_nesting_depth_is_bounded(testca_server: Any) -> None:
    prot = ra_protection(testca_server)
    der, _ = make_ir("deep")
    for _ in range(15):
        der = wrap_in_nested([der], prot)
    assert len(unwrap_response(der)) == 1
    with pytest.raises(UsageError, match="already nested 15 levels"):
        wrap_in_nested([der], prot)


def test_wrap_refuses_garbage() -> None:
    from cmpclient.errors import DecodeError

    with pytest.raises(DecodeError, match="inner message 1"):
        wrap_in_nested([b"\x30\x03\x02\x01\x00"], None)
    with pytest.raises(UsageError):
        wrap_in_nested([], None)


# --- the command against the test CA ------------------------------------------------------------


def test_nested_ir_gets_a_plain_ip(testca_server: Any, tmp_path: Path) -> None:
    inner, key = make_ir("nested-cli-1", tmp=tmp_path)
    rsp_path = tmp_path / "ip.der"
    raw_path = tmp_path / "raw.der"
    req_path = tmp_path / "nested.der"
    result = invoke("--url", testca_server.url(ALIAS), "--in", str(tmp_path / "nested-cli-1.der"), *ra_args(testca_server),
                    *ca_trust(testca_server), "--inner-rspout", str(rsp_path), "--rspout", str(raw_path),
                    "--reqout", str(req_path))
    assert result.exit_code == 0, result.output
    assert "answered with ip" in result.stderr
    assert result.stdout.startswith("PKIMessage ip (")
    # What went out: a nested message signed by the RA carrying our request unchanged.
    sent = decode_message(req_path.read_bytes())
    assert nested_messages(sent) == [inner]
    # What came back answers the inner request.
    ip = parse_message(rsp_path.read_bytes())
    request = parse_message(inner)
    assert ip.body_type == "ip"
    assert ip.header.transaction_id == request.header.transaction_id
    assert ip.header.recip_nonce == request.header.sender_nonce
    cert = x509.load_der_x509_certificate(ip.content.responses[0].certificate)
    assert cert.public_key() == key.public_key()
    assert "CN=nested-cli-1" in cert.subject.rfc4514_string()
    assert raw_path.read_bytes() == rsp_path.read_bytes()  # EJBCA-style plain answer


def test_batch_gets_a_nested_response_unwrapped(testca_server: Any, tmp_path: Path) -> None:
    make_ir("batch-1", tmp=tmp_path)
    make_ir("batch-2", tmp=tmp_path)
    out1, out2 = tmp_path / "r1.der", tmp_path / "r2.der"
    result = invoke("--url", testca_server.url(ALIAS), "--in", str(tmp_path / "batch-1.der"), "--in", str(tmp_path / "batch-2.der"),
                    *ra_args(testca_server), *ca_trust(testca_server), "--inner-rspout", f"{out1},{out2}", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert [a["response"] for a in doc["answers"]] == ["ip", "ip"]
    subjects = {a["message"]["body"]["response"][0]["certificate"]["subject"] for a in doc["answers"]}
    assert subjects == {"CN=batch-1,O=cmpclient test", "CN=batch-2,O=cmpclient test"}
    for path, name in ((out1, "batch-1"), (out2, "batch-2")):
        request = parse_message((tmp_path / f"{name}.der").read_bytes())
        answer = parse_message(path.read_bytes())
        assert answer.header.transaction_id == request.header.transaction_id
        assert answer.header.recip_nonce == request.header.sender_nonce


def test_pem_input_and_cert_key_options(testca_server: Any, tmp_path: Path) -> None:
    import base64

    inner, _ = make_ir("nested-pem")
    pem = tmp_path / "ir.pem"
    pem.write_text("-----BEGIN PKIMESSAGE-----\n" + base64.encodebytes(inner).decode() + "-----END PKIMESSAGE-----\n")
    result = invoke("--url", testca_server.url(ALIAS), "--in", str(pem), "--cert", str(testca_server.ra_admin_cert),
                    "--key", str(testca_server.ra_admin_key), *ca_trust(testca_server), "--no-dump")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_untrusted_ra_is_rejected(testca_server: Any, tmp_path: Path) -> None:
    make_ir("nested-untrusted", tmp=tmp_path)
    args = ["--url", testca_server.url(ALIAS), "--in", str(tmp_path / "nested-untrusted.der"),
            "--ra-cert", str(PKI / "client-ec.crt.pem"), "--ra-key", str(PKI / "client-ec.key.pem"), *ca_trust(testca_server)]
    result = invoke(*args)
    assert result.exit_code == ExitCode.PROTECTION  # EJBCA-style unprotected error
    assert "unprotected error" in result.stderr
    result = invoke(*args, "--unprotected-errors")
    assert result.exit_code == ExitCode.REJECTED
    assert "trusted RA certificate" in result.stderr


def test_response_signer_must_be_trusted(testca_server: Any, tmp_path: Path) -> None:
    make_ir("nested-wrongtrust", tmp=tmp_path)
    result = invoke("--url", testca_server.url(ALIAS), "--in", str(tmp_path / "nested-wrongtrust.der"), *ra_args(testca_server),
                    "--trusted", str(PKI / "root-ca.crt.pem"))
    assert result.exit_code == ExitCode.PROTECTION
    assert "not trusted" in result.stderr


def test_usage_errors(tmp_path: Path) -> None:
    inner, _ = make_ir("nested-usage", tmp=tmp_path)
    result = invoke("--url", "http://127.0.0.1:9/x", "--in", str(tmp_path / "nested-usage.der"))
    assert result.exit_code == ExitCode.USAGE
    assert "RA's credentials" in result.stderr
    bad = tmp_path / "bad.der"
    bad.write_bytes(b"not a message")
    result = invoke("--url", "http://127.0.0.1:9/x", "--in", str(bad), "--ra-cert", str(PKI / "client-ec.crt.pem"),
                    "--ra-key", str(PKI / "client-ec.key.pem"))
    assert result.exit_code == ExitCode.PROTOCOL


# --- the transport adapter (how crmf --nest-with-ra-* uses it) ---------------------------------------


def test_nesting_transport_runs_a_whole_enrollment(testca_server: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    msg = CertRequestBuilder().subject("CN=nested-enroll,O=cmpclient test").public_key(key).popo_signature(popo_signer(key)).build()
    trusted = load_certificates(testca_server.root_cert)
    untrusted = load_certificates(testca_server.ca_chain)
    with open_transport(testca_server.url(ALIAS)) as transport:
        config = ClientConfig(transport=transport, protection=MACProtection(SECRET, sender_kid=b"nested"),
                              sender="CN=nested-enroll,O=cmpclient test", trusted=trusted, untrusted=untrusted)
        seen: list[str] = []

        class Spy:
            def send(self, der: bytes) -> bytes:
                seen.append(parse_message(der).body_type)
                return transport.send(der)

        config.transport = NestingTransport(Spy(), ra_protection(testca_server), verify_outer=outer_verifier(config))
        result = enroll(config, "ir", msg)
    assert result.certificate.public_key() == key.public_key()
    assert result.confirmed is True
    assert seen == ["nested", "nested"]  # ir and certConf, each wrapped


# --- a misbehaving responder ---------------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def responder() -> Iterator[Callable[[Callable[[bytes], bytes]], str]]:
    """``responder(handler) -> url``: serve ``handler(request_der) -> response_der``."""
    servers: list[WSGIServer] = []

    def start(handler: Callable[[bytes], bytes]) -> str:
        def app(environ: dict, start_response: Callable) -> list[bytes]:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = handler(environ["wsgi.input"].read(size))
            start_response("200 OK", [("Content-Type", "application/pkixcmp"), ("Content-Length", str(len(body)))])
            return [body]

        server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/nested"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _server_protection() -> SignatureProtection:
    return SignatureProtection(load_private_key(PKI / "server-ec.key.pem"), load_certificates(PKI / "server-ec.crt.pem")[0])


def _answer(request_der: bytes, *, tid: bytes | None = None, recip_nonce: bytes | None = None, nest: bool = False) -> bytes:
    """A signed rejection answering the (single) inner request of ``request_der``."""
    inner = parse_message(unwrap_response(request_der)[0])
    prot = _server_protection()
    header = (HeaderBuilder().sender(prot.cert.subject).recipient(inner.header.sender_name or "")
              .transaction_id(tid or inner.header.transaction_id)
              .recip_nonce(recip_nonce or inner.header.sender_nonce).protection_alg(prot.algorithm_identifier()).build())
    body = B.cert_rep_body("ip", [B.cert_response(0, "rejection", fail_info=["badCertTemplate"], texts=["no"])])
    der = encode_message(protect_message(assemble(header, body), prot))
    if nest:
        outer = parse_message(request_der)
        h2 = (HeaderBuilder().sender(prot.cert.subject).recipient(outer.header.sender_name or "")
              .transaction_id(outer.header.transaction_id).recip_nonce(outer.header.sender_nonce)
              .protection_alg(prot.algorithm_identifier()).build())
        der = encode_message(protect_message(assemble(h2, B.nested_body([der])), prot))
    return der


def _fixture_trust() -> list[str]:
    return ["--trusted", str(PKI / "root-ca.crt.pem"), "--untrusted", str(PKI / "chain.pem")]


def _fixture_ra() -> list[str]:
    return ["--ra-cert", str(PKI / "client-ec.crt.pem"), "--ra-key", str(PKI / "client-ec.key.pem")]


def test_a_nested_rejection_is_unwrapped_and_reported(responder: Any, tmp_path: Path) -> None:
    make_ir("resp-nested", tmp=tmp_path)
    url = responder(lambda der: _answer(der, nest=True))
    result = invoke("--url", url, "--in", str(tmp_path / "resp-nested.der"), *_fixture_ra(), *_fixture_trust())
    assert result.exit_code == ExitCode.REJECTED
    assert "failInfo: badCertTemplate" in result.stderr
    assert "failInfo: badCertTemplate" in result.stdout  # the dump of the inner answer


def test_wrong_recip_nonce_is_a_protocol_error(responder: Any, tmp_path: Path) -> None:
    make_ir("resp-nonce", tmp=tmp_path)
    url = responder(lambda der: _answer(der, recip_nonce=os.urandom(16)))
    result = invoke("--url", url, "--in", str(tmp_path / "resp-nonce.der"), *_fixture_ra(), *_fixture_trust())
    assert result.exit_code == ExitCode.PROTOCOL
    assert "recipNonce" in result.stderr


def test_foreign_transaction_id_is_a_protocol_error(responder: Any, tmp_path: Path) -> None:
    make_ir("resp-tid", tmp=tmp_path)
    url = responder(lambda der: _answer(der, tid=os.urandom(16)))
    result = invoke("--url", url, "--in", str(tmp_path / "resp-tid.der"), *_fixture_ra(), *_fixture_trust())
    assert result.exit_code == ExitCode.PROTOCOL
    assert "transactionID" in result.stderr


# --- crmf --nest-with-ra-cert/--nest-with-ra-key: wrapping on the fly -----------------------------


def test_crmf_nested_on_the_fly(testca_server: Any, tmp_path: Path) -> None:
    env = {"NO_COLOR": "1", "NESTED_SECRET": SECRET.decode()}
    args = [
        "crmf", "--url", testca_server.url(ALIAS), "--dn", "CN=nest-on-the-fly,O=cmpclient test",
        "--reqnewkeyspec", "secp256r1", "--keyout", str(tmp_path / "new-key.pem"), "--authparam", "env:NESTED_SECRET", "--keyid", "nested",
        *ca_trust(testca_server), "--nest-with-ra-cert", str(testca_server.ra_admin_cert),
        "--nest-with-ra-key", str(testca_server.ra_admin_key), "--reqout", str(tmp_path / "req.der"),
        "--certout", str(tmp_path / "cert.pem"), "--json",
    ]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert "nest-on-the-fly" in cert.subject.rfc4514_string()
    # what went on the wire was a nested message signed by the RA, holding our MAC-protected ir
    sent = parse_message((tmp_path / "req.der").read_bytes())
    assert sent.body_type == "nested"
    assert sent.header.sender_name == load_certificates(testca_server.ra_admin_cert)[0].subject
    assert parse_message(sent.content[0]).body_type == "ir"


def test_crmf_nest_options_go_together(testca_server: Any, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["crmf", "--url", testca_server.url(ALIAS), "--dn", "CN=x",
                                      "--reqnewkeyspec", "secp256r1", "--keyout", str(tmp_path / "new-key.pem"), "--authparam", "env:NESTED_SECRET",
                                      "--nest-with-ra-cert", str(testca_server.ra_admin_cert)],
                                env={"NO_COLOR": "1", "NESTED_SECRET": "password"})
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--nest-with-ra-key" in result.output
