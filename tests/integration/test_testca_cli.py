"""``cmpclient testca ...`` admin commands, against a real data directory.

The commands open the same SQLite store the served CA uses; one test registers an end
entity with the CLI and enrols it over HTTP against the running CA (client mode), so the
admin path and the served path are checked to agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from cmpclient.cli import testca_cmd
from cmpclient.client import ClientConfig, enroll
from cmpclient.errors import CMPRejection
from cmpclient.keys import generate_key
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, popo_signer
from cmpclient.transport.http import HTTPTransport


@pytest.fixture
def run(tmp_path: Path):
    data = tmp_path / "data"

    def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None, data_dir: Path | None = None):
        runner = CliRunner()
        argv = list(args) + ["--data-dir", str(data_dir or data)]
        return runner.invoke(testca_cmd.testca, argv, env=env, input=input, catch_exceptions=False)

    invoke.data_dir = data  # type: ignore[attr-defined]
    return invoke


def test_aliases_lists_the_default_aliases(run) -> None:
    res = run("aliases", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["alias"]: r for r in json.loads(res.output)}
    for alias in ("ra", "client", "ra-sig", "keyid", "nested", "servergen", "3gpp", "tcp", "lwcmp"):
        assert alias in rows
    assert rows["ra"]["mode"] == "ra" and rows["client"]["mode"] == "client"
    assert rows["tcp"]["tcp"] is True
    assert rows["ra-sig"]["url_path"] == "/ejbca/publicweb/cmp/ra-sig"
    table = run("aliases")
    assert table.exit_code == 0 and "ra-sig" in table.output


@pytest.mark.parametrize("source", ["env", "file", "stdin"])
def test_ee_add_reads_the_password_from_a_source(run, tmp_path: Path, source: str) -> None:
    env = None
    stdin = None
    if source == "env":
        spec, env = "env:EE_PW", {"EE_PW": "s3cret-1"}
    elif source == "file":
        (tmp_path / "pw").write_text("s3cret-1\n")
        spec = f"file:{tmp_path / 'pw'}"
    else:
        spec, stdin = "stdin", "s3cret-1\n"
    res = run("ee", "add", "--username", "dev7", "--password-source", spec, "--dn", "CN=dev7,O=Example", "--json", env=env, input=stdin)
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["username"] == "dev7" and row["status"] == "NEW" and row["dn"] == "CN=dev7,O=Example"
    assert "s3cret" not in res.output
    listed = run("ee", "list", "--json")
    assert any(r["username"] == "dev7" for r in json.loads(listed.output))
    assert "s3cret" not in listed.output
    from cmpclient.testca import TestCA

    ca = TestCA.open(None, run.data_dir)
    try:
        assert ca.store.get_end_entity("dev7").password == "s3cret-1"
    finally:
        ca.close()


def test_ee_add_refuses_a_literal_password(run) -> None:
    res = CliRunner().invoke(
        testca_cmd.testca, ["ee", "add", "--username", "x", "--password-source", "hunter2", "--dn", "CN=x", "--data-dir", str(run.data_dir)]
    )
    assert res.exit_code != 0
    assert "secret source" in res.output or "not a secret source" in res.output


def test_ee_add_unknown_alias_is_a_usage_error(run) -> None:
    res = run("ee", "add", "--username", "x", "--password-source", "env:P", "--dn", "CN=x", "--alias", "nope", env={"P": "pw"})
    assert res.exit_code == 2 and "nope" in res.output


def test_cert_list_and_revoke(run, testca_server) -> None:
    # Enrol one certificate against the served CA, then administer it with the CLI.
    key = generate_key("secp256r1")
    req = CertRequestBuilder().subject("CN=cli-cert,UID=cli-cert").public_key(key).popo_signature(popo_signer(key)).build()
    cfg = ClientConfig(transport=HTTPTransport(testca_server.url("ra")), protection=MACProtection(b"password", sender_kid=b"k"))
    cert = enroll(cfg, "ir", req).certificate
    serial = format(cert.serial_number, "X")
    serial = "0" * (len(serial) % 2) + serial  # as openssl x509 -serial prints it
    listed = run("cert", "list", "--json", data_dir=testca_server.data_dir)
    assert listed.exit_code == 0, listed.output
    rows = {r["serial"]: r for r in json.loads(listed.output)}
    assert rows[serial]["status"] != "revoked" and "cli-cert" in rows[serial]["subject"]
    res = run("cert", "revoke", "--serial", serial.lower(), "--reason", "keyCompromise", "--json", data_dir=testca_server.data_dir)
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["status"] == "revoked" and row["reason"] == "keyCompromise"
    again = CliRunner().invoke(testca_cmd.testca, ["cert", "revoke", "--serial", serial, "--data-dir", str(testca_server.data_dir)])
    assert again.exit_code != 0 and "already revoked" in again.output
    unknown = CliRunner().invoke(testca_cmd.testca, ["cert", "revoke", "--serial", "abc123", "--data-dir", str(testca_server.data_dir)])
    assert unknown.exit_code != 0 and "no certificate" in unknown.output
    bad_reason = CliRunner().invoke(
        testca_cmd.testca, ["cert", "revoke", "--serial", serial, "--reason", "bored", "--data-dir", str(testca_server.data_dir)]
    )
    assert bad_reason.exit_code == 2


def test_cli_registered_end_entity_enrols_in_client_mode(run, testca_server) -> None:
    res = run(
        "ee", "add", "--username", "cli-ee", "--password-source", "env:PW", "--dn", "CN=cli-ee,O=cmpclient test,C=SE",
        "--profile", "CMP_ENTITY", env={"PW": "one-time-pw"}, data_dir=testca_server.data_dir,
    )
    assert res.exit_code == 0, res.output
    key = generate_key("secp256r1")
    req = CertRequestBuilder().subject("CN=cli-ee,O=cmpclient test,C=SE").public_key(key).popo_signature(popo_signer(key)).build()
    from cmpclient.client import Leniency
    from cmpclient.keys import load_certificates

    cfg = ClientConfig(
        transport=HTTPTransport(testca_server.url("client")),
        protection=MACProtection(b"one-time-pw", sender_kid=b"cli-ee"),
        trusted=load_certificates(testca_server.root_cert),
        untrusted=load_certificates(testca_server.ca_chain),
        lenient=Leniency(unprotected_errors=True),
    )
    result = enroll(cfg, "ir", req)
    assert result.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # The one-time password is spent.
    cfg.transport = HTTPTransport(testca_server.url("client"))
    with pytest.raises(CMPRejection):
        enroll(cfg, "ir", req)


def test_standalone_entry_has_both_commands() -> None:
    res = CliRunner().invoke(testca_cmd._standalone, ["--help"])
    assert res.exit_code == 0 and "serve" in res.output and "testca" in res.output
    res = CliRunner().invoke(testca_cmd.serve, ["--help"])
    assert "--workers" in res.output and "--tcp-port" in res.output


@pytest.mark.parametrize("argv", [["cert", "list"], ["ee", "list"], ["cert", "revoke", "--serial", "01"]])
def test_commands_on_issued_state_refuse_a_directory_without_a_ca(tmp_path: Path, argv: list[str]) -> None:
    typo = tmp_path / "dmeo-ca"
    res = CliRunner().invoke(testca_cmd.testca, [*argv, "--data-dir", str(typo)])
    assert res.exit_code == 3, res.output
    assert f"no test CA in {typo}" in res.output and "hint:" in res.output
    assert not typo.exists()  # nothing was created for the typo


def test_commands_on_issued_state_work_once_ee_add_created_the_ca(run) -> None:
    assert run("ee", "add", "--username", "u1", "--password-source", "env:PW", "--dn", "CN=u1",
               env={"PW": "pw-1"}).exit_code == 0
    listed = run("ee", "list", "--json")
    assert listed.exit_code == 0 and any(r["username"] == "u1" for r in json.loads(listed.output))
    certs = run("cert", "list", "--json")
    assert certs.exit_code == 0 and isinstance(json.loads(certs.output), list)
