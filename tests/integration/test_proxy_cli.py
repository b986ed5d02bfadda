"""``cmpclient proxy`` as a process: listen line, forwarding to the test CA, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "proxy"))

from proxy_testlib import error_of, mac, request  # noqa: E402

from cmpclient.transport.http import HTTPTransport  # noqa: E402


def _wait_for_port(proc: subprocess.Popen, out: Path, err: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"^cmpclient proxy: listening on http://127\.0\.0\.1:(\d+)$", out.read_text(), re.M)
        if m:
            return int(m.group(1))
        try:
            proc.wait(timeout=0.05)
            pytest.fail(f"proxy exited early ({proc.returncode}): {out.read_text()} {err.read_text()}")
        except subprocess.TimeoutExpired:
            pass
    pytest.fail(f"no listen line: {out.read_text()} {err.read_text()}")


def test_cli_proxy_forwards_checks_and_stops(testca_server, tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text('[alias.ra]\nmac_keys = ["ManagementCA:env:PROXY_CLI_SECRET"]\n')
    out, err = tmp_path / "out", tmp_path / "err"
    argv = [sys.executable, "-m", "cmpclient", "proxy", "--listen", "127.0.0.1:0",
            "--upstream", f"{testca_server.base_url}/ejbca/publicweb/cmp/", "--config", str(config)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PROXY_CLI_SECRET="password")
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        port = _wait_for_port(proc, out, err)
        assert "alias ra -> " in out.read_text() and "password" not in out.read_text()
        with HTTPTransport(f"http://127.0.0.1:{port}/ejbca/publicweb/cmp/ra") as t:
            answer = t.send(request(mac(b"wrong")))
        assert error_of(answer)[1] == ("badRequest",)
        with HTTPTransport(f"http://127.0.0.1:{port}/ejbca/publicweb/cmp/ra") as t:
            answer = t.send(request(mac(b"password")))
        from cmpclient.message.parse import parse_message

        assert parse_message(answer).body_type == "genp"  # the test CA answered through the proxy
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, err.read_text()
        assert "stopped (SIGTERM)" in out.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.parametrize("args,message", [
    ([], "give --upstream URL, --config FILE, or both"),
    (["--upstream", "ftp://x"], "http://, https:// or tcp://"),
    (["--upstream", "http://x/", "--listen", "nope"], "HOST:PORT"),
])
def test_cli_proxy_usage_errors(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from cmpclient.cli.main import cli

    result = CliRunner().invoke(cli, ["proxy", *args])
    assert result.exit_code in (2, 3) and message in result.output, result.output
