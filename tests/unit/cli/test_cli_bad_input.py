"""Bad input is a usage or config error with a hint, never "unexpected error" (exit 1).
Found by an audit that fed the CLI malformed values; each case here exited 1 before."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli
from cmpclient.errors import ExitCode


def run(*args: object, env: dict[str, str] | None = None) -> object:
    merged = {"NO_COLOR": "1", "SEC": "password", "CMPCLIENT_CONFIG": "", "CMPCLIENT_PROFILE": "", **(env or {})}
    return CliRunner().invoke(cli, [str(a) for a in args], env=merged, catch_exceptions=False)


@pytest.fixture
def url(closed_port: int) -> str:
    return f"http://127.0.0.1:{closed_port}/x"


@pytest.mark.parametrize("dn, words", [
    ("CN=,UID=a", "bad DN component"),
    ("CN=" + "x" * 5000 + ",UID=a", "bad DN component"),
    ("1.2.x=x,UID=a", "not a dotted OID"),
])
def test_bad_dns(url: str, tmp_path: Path, dn: str, words: str) -> None:
    r = run("crmf", "--url", url, "--secret", "env:SEC", "--dn", dn, "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "k")
    assert r.exit_code == ExitCode.USAGE and words in r.output and "hint:" in r.output, r.output


@pytest.mark.parametrize("altname, words", [("ip:999.1.1.1", "is not valid"), ("email:", "has no value"),
                                            ("dns:", "has no value"),
                                            # accepted and issued as they were before
                                            ("foo bar", "separated by commas, not spaces"),
                                            ("dns:foo bar", "separated by commas, not spaces"),
                                            ("a..example", "not a valid DNS name"),
                                            ("dns:-a.example", "not a valid DNS name"),
                                            ("host_1.example", "not a valid DNS name"),
                                            ("dns:a*.example", "not a valid DNS name"),
                                            ("dns:*", "not a valid DNS name"),
                                            ("dns:" + "a" * 64 + ".example", "not a valid DNS name"),
                                            ("bücher.example", "xn--bcher-kva.example")])
def test_bad_altnames(url: str, tmp_path: Path, altname: str, words: str) -> None:
    r = run("crmf", "--url", url, "--secret", "env:SEC", "--dn", "CN=a,UID=a", "--altname", altname,
            "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "k")
    assert r.exit_code == ExitCode.USAGE and words in r.output and "hint:" in r.output, r.output


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "x"])
def test_bad_timeouts(url: str, value: str) -> None:
    r = run("genm", "--url", url, "--secret", "env:SEC", "--timeout", value)
    assert r.exit_code == ExitCode.USAGE and "--timeout" in r.output, r.output
    r = run("genm", "--url", url, "--secret", "env:SEC", env={"CMPCLIENT_TIMEOUT": value})
    assert r.exit_code == ExitCode.USAGE, r.output


def test_days_beyond_the_year_9999(url: str, tmp_path: Path) -> None:
    r = run("crmf", "--url", url, "--secret", "env:SEC", "--dn", "CN=a,UID=a", "--days", "99999999",
            "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "k")
    assert r.exit_code == ExitCode.USAGE and "--days" in r.output, r.output


@pytest.mark.parametrize("bad", ["http://[::1", "tcp://[::1", "tcp://h:99999"])
def test_malformed_urls(bad: str) -> None:
    r = run("genm", "--url", bad, "--secret", "env:SEC")
    assert r.exit_code == ExitCode.USAGE and "malformed" in r.output and "hint:" in r.output, r.output


def test_a_config_file_that_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_bytes(b"\x80\x95\xff garbage")
    r = run("--config", tmp_path / "c.toml", "genm", "--url", "http://127.0.0.1:1/")
    assert r.exit_code == ExitCode.CONFIG and "not UTF-8" in r.output and "hint:" in r.output, r.output
    r = run("genm", "--url", "http://127.0.0.1:1/", env={"CMPCLIENT_CONFIG": str(tmp_path / "c.toml")})
    assert r.exit_code == ExitCode.CONFIG and "not UTF-8" in r.output, r.output


def test_oldcrl_missing_or_not_a_crl(url: str, tmp_path: Path) -> None:
    (tmp_path / "g").write_bytes(b"\x30\x03garbage")
    for path, words in ((tmp_path / "missing", "does not exist"), (tmp_path / "g", "not a readable CRL")):
        r = run("genm", "--url", url, "--secret", "env:SEC", "--infotype", "crlStatusList", "--oldcrl", path)
        assert r.exit_code == ExitCode.CONFIG and words in r.output and "hint:" in r.output, r.output


def test_local_files_are_config_errors_not_server_errors(url: str, tmp_path: Path) -> None:
    """A missing --rspin, dump or nested input is a local file problem: exit 3 with a hint,
    not "check the URL" (4) or "malformed response" (5)."""
    r = run("genm", "--url", url, "--secret", "env:SEC", "--rspin", tmp_path / "none.der")
    assert r.exit_code == ExitCode.CONFIG and "check the file name" in r.output, r.output
    r = run("dump", tmp_path / "none.der")
    assert r.exit_code == ExitCode.CONFIG and "check the file name" in r.output, r.output


@pytest.mark.parametrize("args, words", [
    (["revoke", "--issuer", "CN=x", "--serno", "-5"], "positive"),
    (["genm", "--pbm-iterations", "0"], "--pbm-iterations"),
])
def test_values_out_of_range(url: str, args: list[str], words: str) -> None:
    r = run(*args, "--url", url, "--secret", "env:SEC")
    assert r.exit_code == ExitCode.USAGE and words in r.output, r.output


def test_conflicting_inputs_are_refused(url: str, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from cmpclient.keys import generate_key

    key = generate_key("secp256r1")
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string("CN=csr")).sign(key, hashes.SHA256())
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    r = run("p10cr", "--url", url, "--secret", "env:SEC", "--csr", tmp_path / "r.csr", "--dn", "CN=other")
    assert r.exit_code == ExitCode.USAGE and "--csr already carries the subject" in r.output, r.output
    r = run("crmf", "--url", url, "--secret", "env:SEC", "--dn", "CN=a", "--reqnewkeyspec", "", "--keyout", tmp_path / "k")
    assert r.exit_code == ExitCode.USAGE and "--reqnewkeyspec is empty" in r.output, r.output
    r = run("update", "--url", url, "--keystore", tmp_path / "ks.p12", "--cert", tmp_path / "c.pem", "--key", tmp_path / "k.pem")
    assert r.exit_code == ExitCode.USAGE and "--keystore or --cert/--key" in r.output, r.output


def test_an_encrypted_newkey_hint_names_newkeypass(url: str, tmp_path: Path) -> None:
    from cmpclient.keys import generate_key, write_private_key

    write_private_key(tmp_path / "enc.pem", generate_key("secp256r1"), password=b"pw")
    r = run("crmf", "--url", url, "--secret", "env:SEC", "--dn", "CN=a", "--newkey", tmp_path / "enc.pem")
    assert r.exit_code == ExitCode.CONFIG and "--newkeypass" in r.output and "--keypass env" not in r.output, r.output


PKI = Path(__file__).resolve().parents[3] / "fixtures" / "pki"


@pytest.mark.parametrize("args", [
    ["genm"],
    ["revoke", "--issuer", "CN=x", "--serno", "1"],
    ["update", "--keyout", "/dev/null"],
    ["crmf", "--dn", "CN=a", "--reqnewkeyspec", "secp256r1", "--keyout", "/dev/null"],
])
@pytest.mark.parametrize("key", ["server-ec.key.pem", "client-rsa.key.pem"])
def test_a_key_that_is_not_the_certificates_is_a_config_error(url: str, args: list, key: str) -> None:
    """--cert A --key B exited 2 (usage); the README's table puts an unusable key or
    certificate under 3, and so does the code now, naming both files."""
    r = run(args[0], "--url", url, "--cert", PKI / "client-ec.crt.pem", "--key", PKI / key, *args[1:])
    assert r.exit_code == ExitCode.CONFIG, r.output
    assert f"--key {PKI / key} is not the private key of --cert {PKI / 'client-ec.crt.pem'}" in r.output
    assert "hint:" in r.output


def test_a_nesting_ra_key_that_is_not_the_certificates_is_a_config_error(url: str) -> None:
    r = run("crmf", "--url", url, "--secret", "env:SEC", "--dn", "CN=a", "--reqnewkeyspec", "secp256r1",
            "--keyout", "/dev/null", "--nest-with-ra-cert", PKI / "client-ec.crt.pem",
            "--nest-with-ra-key", PKI / "server-ec.key.pem")
    assert r.exit_code == ExitCode.CONFIG and "does not belong to the certificate" in r.output, r.output


def test_valid_dns_altnames_pass() -> None:
    from cryptography import x509

    from cmpclient.cli.enroll_cmd import general_names

    names = general_names(["dns:*.example.com,host-1.example", "a.b.c", "192.0.2.1", "xn--bcher-kva.example"])
    assert [n.value if isinstance(n, x509.DNSName) else str(n.value) for n in names] == [
        "*.example.com", "host-1.example", "a.b.c", "192.0.2.1", "xn--bcher-kva.example"]
