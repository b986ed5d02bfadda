"""The README, tried as a new user would: its main job and its walkthrough, as written.

The walkthrough's first block (the server) runs in the background with ``PORT`` set to a
free port; the test waits for its "listening" line, then runs the second block with
``bash -e`` exactly as it stands in README.md, in a fresh working directory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def readme_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 4)
    return re.findall(r"```sh\n(.*?)```", text[start : end if end > 0 else None], re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMPCLIENT_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def test_readme_main_job_enrolls_against_the_test_ca():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "listening on http://127.0.0.1:" in proc.stdout
    assert "certificate issued" in proc.stderr or "certificate issued" in proc.stdout
    assert re.search(r"enrolled: files in .*: demo-device-chain\.pem, demo-device-key\.pem, demo-device\.pem",
                     proc.stdout)


def test_readme_walkthrough_runs_as_written(tmp_path: Path):
    server_block, client_block = readme_blocks("Walkthrough")
    env = user_env(PORT=str(free_port()))
    log = tmp_path / "serve.out"
    with open(log, "wb") as out:  # a file: polled with a deadline, and it never blocks the server
        server = subprocess.Popen(["bash", "-c", "exec 2>&1\n" + server_block.replace("cmpclient serve", "exec cmpclient serve")],
                                  cwd=tmp_path, env=env, stdout=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "listening on http://" not in log.read_text(errors="replace"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        run = subprocess.run(["bash", "-e", "-c", client_block], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    out = tmp_path / "out"
    first = x509.load_pem_x509_certificate((out / "device1.pem").read_bytes())
    renewed = x509.load_pem_x509_certificate((out / "renewed" / "device1.pem").read_bytes())
    assert first.subject == renewed.subject and first.public_key() != renewed.public_key()
    assert oct((out / "device1-key.pem").stat().st_mode & 0o777) == "0o600"
    assert "ir" in run.stdout  # the dump of the saved request names its body type
    listing = run.stdout[run.stdout.rfind("device1") - 2000 :]
    assert "revoked" in listing.lower(), run.stdout[-3000:]
    assert (tmp_path / "demo-ca" / "ca" / "RootCA.pem").exists()


@pytest.mark.parametrize("section", ["Quick start"])
def test_readme_names_the_two_setup_commands(section: str):
    block = readme_blocks(section)[0]
    assert "bash scripts/demo" in block and "bash scripts/test" in block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash scripts/test" in ci


def test_readme_library_example_runs_as_written(testca_server, capsys):
    """The "Library use" block, with only the server URL pointed at the test CA of the tests."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Library use\n"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    url = "http://127.0.0.1:8080/ejbca/publicweb/cmp/ra"
    assert url in block
    exec(compile(block.replace(url, testca_server.url("ra")), "README.md (Library use)", "exec"), {})
    out = capsys.readouterr().out
    assert "CN=device1" in out and "UID=device1" in out
