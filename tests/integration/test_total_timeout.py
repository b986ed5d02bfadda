"""--total-timeout bounds the whole transaction, the waits for answers included (openssl's
-total_timeout), not only the pauses between polls."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli
from cmpclient.errors import ExitCode, TransportTimeout
from cmpclient.transport import bounded, deadline


@pytest.fixture
def silent_server():
    """Accepts connections, reads what comes, never answers (until the test is over)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    over = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not over.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    over.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("scheme", ["http", "tcp"])
def test_total_timeout_ends_a_wait_for_an_answer(silent_server, scheme):
    url = f"{scheme}://127.0.0.1:{silent_server}/x" if scheme == "http" else f"tcp://127.0.0.1:{silent_server}"
    started = time.monotonic()
    r = CliRunner().invoke(cli, ["genm", "--url", url, "--authparam", "env:S", "--keyid", "k",
                                 "--timeout", "30", "--total-timeout", "1"], env={"S": "password", "NO_COLOR": "1"})
    took = time.monotonic() - started
    assert r.exit_code == ExitCode.TIMEOUT, r.output
    assert took < 10, took  # the per-message --timeout of 30 s would have been waited out before
    if scheme == "http":
        assert "total timeout" in r.output and "--total-timeout" in r.output


def test_bounded_cuts_the_timeouts_to_the_deadline_and_refuses_after_it():
    assert bounded((10.0, 60.0), "x") == (10.0, 60.0, False)  # no deadline: unchanged
    with deadline(time.monotonic() + 2):
        connect, read, cut = bounded((10.0, 60.0), "x")
        assert 0 < connect <= 2 and 0 < read <= 2 and cut
        assert bounded((0.5, 1.0), "x") == (0.5, 1.0, False)  # already shorter: not cut
    with deadline(time.monotonic() - 1):
        with pytest.raises(TransportTimeout, match="total timeout ran out before x"):
            bounded((10.0, 60.0), "x")
    assert bounded((10.0, 60.0), "x")[2] is False  # the deadline ends with its block
