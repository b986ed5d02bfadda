"""``cmpclient crmf --server-keygen`` against the in-process test CA (alias ``servergen``)."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli


try:  # the test CA is built concurrently; until it exports TestCA this module skips
    from cmpclient.testca import TestCA  # noqa: F401
except ImportError:
    pytest.skip("cmpclient.testca.TestCA is not available yet", allow_module_level=True)


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


def test_crmf_server_keygen_unprotected_error_hint(testca_server):
    # EC protocolEncrKey with pvno 2 cannot be served; the CA answers with an unprotected error
    args = ["crmf", "--url", testca_server.url("servergen"), "--secret", "env:SG_SECRET",
            "--trusted", testca_server.root_cert, "--untrusted", testca_server.ca_chain,
            "--dn", "CN=sg-ec2,O=Test", "--server-keygen", "--protocol-encr-key", "EC"]
    r = _run(args)
    assert r.exit_code == 6 and "--unprotected-errors" in r.stderr
    r = _run([*args, "--unprotected-errors"])
    assert r.exit_code == 7 and "RSA protocolEncrKey" in r.stderr
