"""Outputs are checked before anything is sent: a certificate the CA issues is never lost
because a file cannot be written afterwards, and a key made for the request always has a
file to go to. The URL is a closed port: exit 2 (usage) rather than 4 (transport) proves
that the request was never sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli
from cmpclient.errors import ExitCode


def crmf(url: str, *extra: object) -> object:
    args = ["crmf", "--url", url, "--secret", "env:SEC", "--ref", "x", "--dn", "CN=out,UID=out", *map(str, extra)]
    return CliRunner().invoke(cli, args, env={"NO_COLOR": "1", "SEC": "password"}, catch_exceptions=False)


@pytest.fixture
def url(closed_port: int) -> str:
    return f"http://127.0.0.1:{closed_port}/ejbca/publicweb/cmp/ra"


def test_the_reference_run_reaches_the_transport(url: str, tmp_path: Path) -> None:
    r = crmf(url, "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path / "k.pem", "--certout", tmp_path / "c.pem")
    assert r.exit_code == ExitCode.TRANSPORT, r.output


def test_a_generated_key_without_a_key_output_is_refused(url: str, tmp_path: Path) -> None:
    r = crmf(url, "--reqnewkeyspec", "secp256r1", "--certout", tmp_path / "c.pem")
    assert r.exit_code == ExitCode.USAGE and "would be lost" in r.output and "hint:" in r.output, r.output
    for keep in (["--dest", tmp_path / "d"], ["--p12out", tmp_path / "k.p12"]):
        assert crmf(url, "--reqnewkeyspec", "secp256r1", *keep).exit_code == ExitCode.TRANSPORT


def test_an_existing_key_needs_no_key_output(url: str, tmp_path: Path) -> None:
    from cmpclient.keys import generate_key, write_private_key

    write_private_key(tmp_path / "mine.pem", generate_key("secp256r1"))
    assert crmf(url, "--newkey", tmp_path / "mine.pem", "--certout", tmp_path / "c.pem").exit_code == ExitCode.TRANSPORT


@pytest.mark.parametrize("option", ["--certout", "--keyout", "--chainout", "--extracertsout", "--cacertsout",
                                    "--p12out", "--rspout", "--reqout"])
def test_an_output_in_a_missing_directory_is_refused_before_sending(url: str, tmp_path: Path, option: str) -> None:
    existing = tmp_path / "c.pem"
    existing.write_text("keep me")
    extra = [] if option == "--keyout" else ["--keyout", tmp_path / "k.pem"]
    r = crmf(url, "--reqnewkeyspec", "secp256r1", *extra, option, tmp_path / "no-such-dir" / "f")
    assert r.exit_code == ExitCode.USAGE and "does not exist" in r.output and "nothing was sent" in r.output, r.output
    assert existing.read_text() == "keep me"


def test_device_outputs_are_written_to_not_replaced(url: str, tmp_path: Path) -> None:
    """--keyout /dev/null throws a key away on purpose; a FIFO or /dev/stdout is written to,
    never replaced by a renamed file."""
    from cmpclient.keys import atomic_write

    for target in (Path(os.devnull),):
        r = crmf(url, "--reqnewkeyspec", "secp256r1", "--keyout", target)
        assert r.exit_code == ExitCode.TRANSPORT, r.output  # accepted: the request went out
    atomic_write(os.devnull, b"discarded")
    assert Path(os.devnull).is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write(fifo, b"through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert fifo.is_fifo()
    r = crmf(url, "--reqnewkeyspec", "secp256r1", "--keyout", tmp_path)
    assert r.exit_code == ExitCode.USAGE and "is a directory" in r.output, r.output


def test_dest_under_a_file_is_refused(url: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    r = crmf(url, "--reqnewkeyspec", "secp256r1", "--dest", tmp_path / "f" / "sub")
    assert r.exit_code == ExitCode.USAGE and "not a writable directory" in r.output, r.output


def test_a_key_output_without_a_known_key_is_refused_before_sending(url: str, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from cmpclient.keys import generate_key

    key = generate_key("secp256r1")
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string("CN=csr")).sign(key, hashes.SHA256())
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    r = CliRunner().invoke(cli, ["p10cr", "--url", url, "--secret", "env:SEC", "--ref", "x", "--csr", str(tmp_path / "r.csr"),
                                 "--keyout", str(tmp_path / "k.pem")], env={"NO_COLOR": "1", "SEC": "password"})
    assert r.exit_code == ExitCode.USAGE and "no private key to write" in r.output, r.output


def test_a_fifo_without_reader_fails_at_once_and_links_are_kept(tmp_path: Path) -> None:
    from cmpclient.errors import KeyLoadError
    from cmpclient.keys import atomic_write

    fifo = tmp_path / "nobody-reads"
    os.mkfifo(fifo)
    with pytest.raises(KeyLoadError, match="no reader"):
        atomic_write(fifo, b"x")  # before: blocked forever, after the CA had issued the certificate
    real = tmp_path / "real.pem"
    real.write_text("old")
    link = tmp_path / "link.pem"
    link.symlink_to(real)
    atomic_write(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert (real.stat().st_mode & 0o777) == 0o600


def test_proc_fd_outputs_are_written_through(tmp_path: Path) -> None:
    """/dev/stdout and /proc/self/fd/N name whatever the fd is (a pipe, a redirected file):
    written to, never replaced (as root a rename used to replace /dev/stdout itself)."""
    from cmpclient.keys import atomic_write

    read_end, write_end = os.pipe()
    try:
        atomic_write(f"/proc/self/fd/{write_end}", b"through the pipe")
        assert os.read(read_end, 100) == b"through the pipe"
    finally:
        os.close(read_end)
        os.close(write_end)
    redirected = tmp_path / "out.pem"
    redirected.write_bytes(b"kept|")
    with open(redirected, "ab") as fh:  # like a shell's >>: the descriptor's own flags and offset count
        atomic_write(f"/proc/self/fd/{fh.fileno()}", b"appended")
    assert redirected.read_bytes() == b"kept|appended" and Path("/dev/stdout").is_symlink()


def test_a_new_file_under_dev_shm_is_an_ordinary_atomic_0600_write() -> None:
    """Only our own descriptors and existing non-regular paths are written to directly; a
    key file on tmpfs (/dev/shm) is created like any other, mode 0600."""
    import uuid

    from cmpclient.keys import atomic_write
    from cmpclient.keys.load import is_special_output

    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm here")
    target = shm / f"cmpclient-test-{uuid.uuid4().hex}.pem"
    try:
        assert not is_special_output(target) and is_special_output("/dev/stdout") and is_special_output(os.devnull)
        atomic_write(target, b"key")
        assert target.read_bytes() == b"key" and (target.stat().st_mode & 0o777) == 0o600
    finally:
        target.unlink(missing_ok=True)
