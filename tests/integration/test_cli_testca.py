"""The CLI against the in-process test CA: server-generated keys (alias ``servergen``),
genm info types, and the RA form of update."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner
from cryptography import x509

from cmpclient.cli.main import cli
from conftest_testca import ra_hmac_alias




def _run(args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"NO_COLOR": "1", "SG_SECRET": "password", **(env or {})},
                              catch_exceptions=False)


@pytest.mark.parametrize("spec,pek,pvno", [(None, "RSA", 2), ("RSA2048", "RSA", 2), ("secp256r1", "EC", 3), ("Ed25519", "RSA", 3)])
def test_crmf_server_keygen(testca_server, tmp_path, spec, pek, pvno):
    """The CA generates the key and returns it encrypted to our protocolEncrKey (EncryptedValue
    with pvno 2, which needs RSA; EnvelopedData with pvno 3); the CLI decrypts and saves it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography import x509

    args = ["crmf", "--json", "--url", testca_server.url("servergen"), "--secret", "env:SG_SECRET",
            "--trusted", testca_server.root_cert, "--untrusted", testca_server.ca_chain,
            "--dn", f"CN=sg-{spec or 'default'}-{pek},O=Test", "--server-keygen", "--protocol-encr-key", pek,
            "--dest", tmp_path, "--pvno", str(pvno)]
    if spec:
        args += ["--reqnewkeyspec", spec]
    r = _run(args)
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["server_generated_key"] is True
    key_file = next(p for p in doc["files"] if p.endswith("-key.pem"))
    assert stat.S_IMODE(__import__("os").stat(key_file).st_mode) == 0o600
    key = serialization.load_pem_private_key(open(key_file, "rb").read(), None)
    cert = x509.load_pem_x509_certificate(doc["certificate"]["pem"].encode())
    assert cert.public_key() == key.public_key()
    if spec == "secp256r1":
        assert key.curve.name == "secp256r1"


def test_crmf_server_keygen_unprotected_error_hint(testca_server, tmp_path):
    # EC protocolEncrKey with pvno 2 cannot be served; the CA answers with an unprotected error
    args = ["crmf", "--url", testca_server.url("servergen"), "--secret", "env:SG_SECRET",
            "--trusted", testca_server.root_cert, "--untrusted", testca_server.ca_chain,
            "--dn", "CN=sg-ec2,O=Test", "--server-keygen", "--protocol-encr-key", "EC", "--keyout", tmp_path / "k.pem"]
    r = _run(args)
    assert r.exit_code == 6 and "--unprotected-errors" in r.stderr
    r = _run([*args, "--unprotected-errors"])
    assert r.exit_code == 7 and "RSA protocolEncrKey" in r.stderr


def _cli(*args: str, secret: str = "password"):
    return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1", "CA_SECRET": secret}, catch_exceptions=False)


@pytest.mark.parametrize("infotype", ["caCerts", "certReqTemplate", "crlStatusList", "rootCaKeyUpdate"])
def test_genm_infotypes_against_the_test_ca(testca_server, tmp_path, infotype):
    args = ["genm", "--url", testca_server.url("ra"), "--authparam", "env:CA_SECRET", "--keyid", "genm",
            "--infotype", infotype, "--dest", str(tmp_path), "--json"]
    if infotype == "crlStatusList":
        args += ["--oldcrl", str(_old_crl(testca_server, tmp_path)), "--crlout", str(tmp_path / "crl.der")]
    if infotype == "caCerts":
        args += ["--cacertsout", str(tmp_path / "ca.pem")]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc, result.stdout
    # the test CA has no root CA key update: the genp leaves it out, and that is said
    assert doc["missing"] == (["rootCaKeyUpdate"] if infotype == "rootCaKeyUpdate" else [])
    if infotype == "rootCaKeyUpdate":
        assert "the CA sent no rootCaKeyUpdate (no root CA key update available)" in result.stderr
        table = _cli(*[a for a in args if a != "--json"], "--newwithnew", str(tmp_path / "nwn.pem"))
        assert "not in the answer" in table.stderr and "(none written)" in table.stderr, table.stderr
        assert not (tmp_path / "nwn.pem").exists()
    if infotype == "caCerts":
        names = {c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates((tmp_path / "ca.pem").read_bytes())}
        assert any("ManagementCA" in n for n in names) and any("RootCA" in n for n in names)
    if infotype == "crlStatusList":  # answered with id-it-crls: a CRL signed by the CA
        crl = x509.load_der_x509_crl((tmp_path / "crl.der").read_bytes())  # --crlout writes DER
        ca = x509.load_pem_x509_certificate((testca_server.data_dir / "ca" / "ManagementCA.pem").read_bytes())
        assert crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())
        assert crl.last_update_utc > x509.load_pem_x509_crl((tmp_path / "old-crl.pem").read_bytes()).last_update_utc


def _old_crl(testca_server, tmp_path):
    """A day-old CRL of ManagementCA (signed with its key), as a client would hold."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization

    ca_dir = testca_server.data_dir / "ca"
    cert = x509.load_pem_x509_certificate((ca_dir / "ManagementCA.pem").read_bytes())
    key = serialization.load_pem_private_key((ca_dir / "ManagementCA.key.pem").read_bytes(), None)
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject).last_update(then)
           .next_update(then + dt.timedelta(hours=12)).sign(key, hashes.SHA256()))
    path = tmp_path / "old-crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def test_update_ra_form_names_another_end_entity(testca_server, tmp_path):
    """kur sent by the RA administrator for an end entity's certificate (--oldcert)."""
    out = tmp_path / "ee"
    result = _cli("crmf", "--url", testca_server.url("ra"), "--authparam", "env:CA_SECRET", "--keyid", "ra-form",
                  "--dn", "CN=ra-form-ee,UID=ra-form-ee", "--reqnewkeyspec", "secp256r1", "--implicit-confirm",
                  "--dest", str(out))
    assert result.exit_code == 0, result.output
    old = x509.load_pem_x509_certificate((out / "ra-form-ee.pem").read_bytes())
    result = _cli("update", "--url", testca_server.url("ra-sig"), "--cert", str(testca_server.ra_admin_cert),
                  "--key", str(testca_server.ra_admin_key), "--oldcert", str(out / "ra-form-ee.pem"),
                  "--reqnewkeyspec", "secp256r1", "--trusted", str(testca_server.root_cert),
                  "--untrusted", str(testca_server.ca_chain), "--certout", str(tmp_path / "new.pem"),
                  "--keyout", str(tmp_path / "new-key.pem"))
    assert result.exit_code == 0, result.output
    new = x509.load_pem_x509_certificate((tmp_path / "new.pem").read_bytes())
    assert new.subject == old.subject and new.public_key() != old.public_key()
    assert new.serial_number != old.serial_number


def test_an_output_that_fails_after_issuance_rejects_the_certificate(testca_server, tmp_path, monkeypatch):
    """The outputs are written before the certConf: when a write fails anyway (a full disk,
    simulated here), the certConf rejects the certificate instead of confirming one the
    client lost -- the strict lwcmp alias then revokes it -- and the CLI reports the write."""
    import uuid

    from cmpclient.cli import testca_cmd
    from cmpclient.errors import KeyLoadError
    from cmpclient.keys import load as keys_load

    def disk_full(path, certs, **kw):
        raise KeyLoadError(f"cannot write {str(path)!r}: No space left on device")

    monkeypatch.setattr(keys_load, "write_certificates", disk_full)
    import cmpclient.keys as keys_pkg

    monkeypatch.setattr(keys_pkg, "write_certificates", disk_full, raising=False)
    name = f"full-{uuid.uuid4().hex[:8]}"
    r = CliRunner().invoke(cli, ["crmf", "--url", testca_server.url("lwcmp"), "--authparam", "env:S", "--keyid", "device1",
                                 "--dn", f"CN={name},O=Example", "--reqnewkeyspec", "secp256r1",
                                 "--trusted", str(testca_server.root_cert), "--dest", str(tmp_path / "out")],
                           env={"NO_COLOR": "1", "S": "password"})
    assert r.exit_code == 3 and "No space left" in r.output, r.output
    listed = CliRunner().invoke(testca_cmd.testca, ["cert", "list", "--json", "--data-dir", str(testca_server.data_dir)])
    (row,) = [x for x in json.loads(listed.output) if name in x["subject"]]
    assert row["status"] == "revoked", row  # the CA got a rejecting certConf, not a confirmation


def test_reqin_resends_a_saved_request_and_the_answer_is_checked_against_it(testca_server, tmp_path):
    """--reqin sends a saved ir instead of the built one (openssl's -reqin): the ip answers
    the saved request's transactionID and senderNonce, so those are what the client checks,
    and the certConf it builds next carries on that transaction."""
    from cryptography.hazmat.primitives import serialization

    from cmpclient.message.parse import parse_message

    url = testca_server.url("ra")
    common = ["--url", url, "--authparam", "env:CA_SECRET", "--keyid", "reqin", "--dn", "CN=reqin,UID=reqin"]
    first = _cli("crmf", *common, "--reqnewkeyspec", "secp256r1", "--keyout", str(tmp_path / "k.pem"),
                 "--certout", str(tmp_path / "first.pem"), "--reqout", f"{tmp_path / 'ir.der'},{tmp_path / 'cc.der'}")
    assert first.exit_code == 0, first.output
    again = _cli("crmf", *common, "--newkey", str(tmp_path / "k.pem"), "--reqin", str(tmp_path / "ir.der"),
                 "--certout", str(tmp_path / "again.pem"),
                 "--reqout", f"{tmp_path / 'built-ir.der'},{tmp_path / 'cc2.der'}", "--rspout", str(tmp_path / "ip2.der"))
    assert again.exit_code == 0, again.output
    saved = parse_message((tmp_path / "ir.der").read_bytes()).header
    ip = parse_message((tmp_path / "ip2.der").read_bytes()).header
    cert_conf = parse_message((tmp_path / "cc2.der").read_bytes()).header
    assert ip.transaction_id == saved.transaction_id and ip.recip_nonce == saved.sender_nonce
    assert cert_conf.transaction_id == saved.transaction_id and cert_conf.recip_nonce == ip.sender_nonce
    # the built ir (captured by --reqout) had a fresh transactionID: it is not what went out
    assert parse_message((tmp_path / "built-ir.der").read_bytes()).header.transaction_id != saved.transaction_id
    key = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((tmp_path / "again.pem").read_bytes())
    assert cert.public_key() == key.public_key()


def test_reqin_and_rspin_replay_a_captured_transaction_offline(testca_server, tmp_path):
    url = testca_server.url("ra")
    common = ["--authparam", "env:CA_SECRET", "--keyid", "replay", "--dn", "CN=replay,UID=replay"]
    reqs, rsps = f"{tmp_path / 'ir.der'},{tmp_path / 'cc.der'}", f"{tmp_path / 'ip.der'},{tmp_path / 'pc.der'}"
    live = _cli("crmf", "--url", url, *common, "--reqnewkeyspec", "secp256r1", "--keyout", str(tmp_path / "k.pem"),
                "--certout", str(tmp_path / "live.pem"), "--reqout", reqs, "--rspout", rsps)
    assert live.exit_code == 0, live.output
    offline = _cli("crmf", *common, "--newkey", str(tmp_path / "k.pem"), "--reqin", reqs, "--rspin", rsps,
                   "--certout", str(tmp_path / "offline.pem"))
    assert offline.exit_code == 0, offline.output
    assert (tmp_path / "offline.pem").read_bytes() == (tmp_path / "live.pem").read_bytes()
    # a saved answer to another request is still refused
    alone = _cli("crmf", *common, "--newkey", str(tmp_path / "k.pem"), "--rspin", rsps,
                 "--certout", str(tmp_path / "alone.pem"))
    assert alone.exit_code == 5 and "transactionID does not match" in alone.output


def test_an_unprotected_request_refused_gets_a_hint_about_credentials(testca_server):
    """--unprotected-requests: the request goes out unprotected and the CA refuses it with an
    unprotected error; the hint points at the missing credentials, not at
    --unprotected-errors alone (which would only show the refusal)."""
    r = _cli("genm", "--url", testca_server.url("ra"), "--unprotected-requests")
    assert r.exit_code == 6, r.output
    assert "our request was not protected" in r.output and "--authparam" in r.output
    shown = _cli("genm", "--url", testca_server.url("ra"), "--unprotected_requests", "--unprotected-errors")
    assert shown.exit_code == 7 and "not protected" in shown.output.lower(), shown.output


@pytest.mark.parametrize("args", [
    ["genm"],
    ["crmf", "--dn", "CN=nocreds,O=Test", "--reqnewkeyspec", "secp256r1", "--keyout", "/dev/null"],
    ["p10cr", "--dn", "CN=nocreds,O=Test", "--reqnewkeyspec", "secp256r1", "--keyout", "/dev/null"],
    ["revoke", "--issuer", "CN=x", "--serno", "1A"],
    ["bench", "-n", "1", "-c", "1"],
    ["crmf", "--dn", "CN=nocreds,O=Test", "--reqnewkeyspec", "secp256r1", "--keyout", "/dev/null", "--keyid", "ref"],
])
def test_no_credentials_is_refused_before_sending(testca_server, args):
    """Without --authparam, --cert/--key or --keystore the request would go out unprotected:
    refused as a usage error before anything is sent (as openssl's "must give -key or
    -secret unless -unprotected_requests is used"), with a hint naming the options."""
    before = _cli("testca", "cert", "list", "--data-dir", str(testca_server.data_dir), "--json").stdout
    r = _cli(args[0], "--url", testca_server.url("ra"), *args[1:])
    assert r.exit_code == 2, r.output
    assert "no credentials to protect the request" in r.stderr
    for option in ("--authparam", "--cert", "--keystore", "--unprotected-requests"):
        assert option in r.stderr
    after = _cli("testca", "cert", "list", "--data-dir", str(testca_server.data_dir), "--json").stdout
    assert before == after
    # the same against a port where nobody listens: still 2 (refused), never 4 (sent)
    dead = _cli(args[0], "--url", "http://127.0.0.1:9/", *args[1:])
    assert dead.exit_code == 2, dead.output


def test_certconf_from_a_state_file_needs_the_credentials_again(testca_server, tmp_path):
    """The state file of a --no-confirm run does not record the credentials: certconf without
    them is refused up front (the CA would refuse the unprotected certConf, exit 6)."""
    state = tmp_path / "tx.json"
    r = _cli("crmf", "--url", testca_server.url("ra"), "--authparam", "env:CA_SECRET", "--keyid", "cc",
             "--dn", "CN=cc-state,UID=cc-state,O=Test", "--reqnewkeyspec", "secp256r1",
             "--trusted", str(testca_server.root_cert), "--untrusted", str(testca_server.ca_chain),
             "--dest", str(tmp_path), "--no-confirm", "--state-out", str(state))
    assert r.exit_code == 0, r.output
    refused = _cli("certconf", "--state", str(state), "--trusted", str(testca_server.root_cert),
                   "--untrusted", str(testca_server.ca_chain))
    assert refused.exit_code == 2, refused.output
    assert "state file does not record the credentials" in refused.stderr and "--authparam" in refused.stderr
    done = _cli("certconf", "--state", str(state), "--authparam", "env:CA_SECRET", "--keyid", "cc",
                "--trusted", str(testca_server.root_cert), "--untrusted", str(testca_server.ca_chain))
    assert done.exit_code == 0, done.output


def test_openssl_path_with_a_host_port_server(testca_server):
    """openssl's `-server 127.0.0.1:PORT -path ejbca/publicweb/cmp/ra`; --path wins over a
    path given with --server, as openssl's does."""
    hostport = testca_server.url("ra").split("://", 1)[1].split("/", 1)[0]
    creds = ["--authparam", "env:CA_SECRET", "--keyid", "path"]
    r = _cli("genm", "--server", hostport, "--path", "ejbca/publicweb/cmp/ra", *creds)
    assert r.exit_code == 0, r.output
    r = _cli("genm", "--server", f"{hostport}/no/such/alias", "--path", "/ejbca/publicweb/cmp/ra", *creds)
    assert r.exit_code == 0, r.output


def test_keep_alive_required_is_checked(testca_server, tmp_path):
    """--keep-alive 2 (openssl -keep_alive 2): the ir/ip/certConf transaction needs the
    connection kept; the test CA closes it after each answer, which is then said (exit 4)
    instead of the certConf going out on a new connection as with 1."""
    args = ["crmf", "--url", testca_server.url("ra"), "--authparam", "env:CA_SECRET", "--keyid", "ka",
            "--reqnewkeyspec", "secp256r1", "--keyout", "/dev/null",
            "--trusted", str(testca_server.root_cert), "--untrusted", str(testca_server.ca_chain)]
    r = _cli(*args, "--dn", "CN=ka1,UID=ka1,O=Test", "--keep_alive", "2")
    assert r.exit_code == 4 and "keep-alive required" in r.output, r.output
    assert _cli(*args, "--dn", "CN=ka2,UID=ka2,O=Test", "--keep_alive", "1").exit_code == 0
    assert _cli(*args, "--dn", "CN=ka3,UID=ka3,O=Test", "--keep_alive", "0").exit_code == 0


_BADPOP_ALIAS = ra_hmac_alias("rrpop", 'faults = { force_reject = "badPOP" }')


def test_badpop_hints_fit_the_request(testca_factory, tmp_path):
    """A badPOP answer to an rr got the enrolment hint "check that the key signing the
    request matches the requested public key"; the hint now fits the request."""
    ca = testca_factory("rrpop", _BADPOP_ALIAS)
    trust = ["--trusted", str(ca.root_cert), "--untrusted", str(ca.ca_chain)]
    mac = ["--authparam", "env:CA_SECRET", "--keyid", "rrpop"]
    ok = _cli("crmf", "--url", ca.url("ra"), *mac, *trust, "--dn", "CN=rrpop,UID=rrpop,O=Test",
              "--reqnewkeyspec", "secp256r1", "--dest", str(tmp_path))
    assert ok.exit_code == 0, ok.output
    rr = _cli("revoke", "--url", ca.url("rrpop"), *mac, *trust, "--oldcert", str(tmp_path / "rrpop.pem"))
    assert rr.exit_code == 7 and "badPOP" in rr.output, rr.output
    assert "requested public key" not in rr.output and "key of the certificate to revoke" in rr.output
    ir = _cli("crmf", "--url", ca.url("rrpop"), *mac, *trust, "--dn", "CN=irpop,O=Test",
              "--reqnewkeyspec", "secp256r1", "--keyout", "/dev/null")
    assert ir.exit_code == 7 and "requested public key" in ir.output, ir.output


def test_reqin_without_a_sender_nonce_is_refused(testca_server, tmp_path, closed_port):
    """A saved request without senderNonce would leave its answer's recipNonce unchecked; it
    is refused before it goes out (against a closed port: a protocol error, not exit 4)."""
    from cmpclient.asn1.codec import der_header
    from cmpclient.message import body as bodies

    def tlv(tag: int, content: bytes) -> bytes:
        return der_header(tag, len(content)) + content

    name = tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"x"))))  # CN=x
    # pvno, sender, recipient, transactionID: no senderNonce (HeaderBuilder always adds one)
    header = tlv(0x30, bytes.fromhex("020102") + tlv(0xA4, name) + tlv(0xA4, name) + tlv(0xA4, tlv(0x04, bytes(16))))
    saved = tmp_path / "no-nonce.der"
    saved.write_bytes(tlv(0x30, header + bodies.genm_body([], as_der=True)))
    r = _cli("genm", "--url", testca_server.url("ra"), "--authparam", "env:CA_SECRET", "--keyid", "x",
             "--reqin", str(saved))
    assert r.exit_code == 5 and "has no senderNonce" in r.output, r.output
    r = _cli("genm", "--url", f"http://127.0.0.1:{closed_port}/x", "--authparam", "env:CA_SECRET", "--keyid", "x",
             "--reqin", str(saved))
    assert r.exit_code == 5 and "has no senderNonce" in r.output, r.output
