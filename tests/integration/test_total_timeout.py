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


def _serve(handle):
    """A listener on 127.0.0.1 whose connections go to ``handle(conn, over)`` in threads;
    yields its port, then sets ``over`` and closes everything."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    over = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not over.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=handle, args=(conn, over), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    over.set()
    thread.join(timeout=5)
    for conn in conns:
        conn.close()
    listener.close()


@pytest.fixture
def silent_server():
    """Accepts connections, reads what comes, never answers (until the test is over)."""
    yield from _serve(lambda conn, over: over.wait())


def _genm_within_one_second(scheme: str, port: int):
    """genm with a 30 s per-message timeout and a total timeout of 1 s: (result, seconds taken)."""
    url = f"http://127.0.0.1:{port}/x" if scheme == "http" else f"tcp://127.0.0.1:{port}"
    started = time.monotonic()
    r = CliRunner().invoke(cli, ["genm", "--url", url, "--authparam", "env:S", "--keyid", "k",
                                 "--timeout", "30", "--total-timeout", "1"], env={"S": "password", "NO_COLOR": "1"})
    return r, time.monotonic() - started


@pytest.mark.parametrize("scheme", ["http", "tcp"])
def test_total_timeout_ends_a_wait_for_an_answer(silent_server, scheme):
    r, took = _genm_within_one_second(scheme, silent_server)
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


@pytest.fixture
def dripping_server():
    """Answers at once with the head (HTTP, or a CMP-over-TCP frame header), then the 40
    bytes of the body one every 0.3 s: each byte restarts a socket's read timeout, so only a
    deadline for the whole exchange ends the wait."""

    def drip(conn: socket.socket, over: threading.Event) -> None:
        try:
            if conn.recv(65536).startswith(b"POST"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 40\r\n\r\n")
            else:  # a TCP frame: length (3 + 40), version 10, flags 0, type 5 (pkiRep)
                conn.sendall((43).to_bytes(4, "big") + bytes([10, 0, 5]))
            for _ in range(40):
                if over.wait(0.3):  # the server's own pace, not a wait for readiness
                    return
                conn.sendall(b"\x00")
        except OSError:
            return

    yield from _serve(drip)


@pytest.mark.parametrize("scheme", ["http", "tcp"])
def test_total_timeout_ends_an_answer_that_comes_a_byte_at_a_time(dripping_server, scheme):
    r, took = _genm_within_one_second(scheme, dripping_server)
    assert r.exit_code == ExitCode.TIMEOUT, r.output
    assert "total timeout ran out during the exchange" in r.output
    assert took < 8, took  # 40 bytes at 0.3 s would take 12 s


def test_total_timeout_zero_is_no_limit_as_with_openssl(silent_server):
    started = time.monotonic()
    r = CliRunner().invoke(cli, ["genm", "--url", f"http://127.0.0.1:{silent_server}/x", "--authparam", "env:S",
                                 "--keyid", "k", "--timeout", "1", "--total-timeout", "0"],
                           env={"S": "password", "NO_COLOR": "1"})
    assert r.exit_code == ExitCode.TIMEOUT, r.output
    assert "within 1 s" in r.output and "total timeout" not in r.output  # the per-message timeout ended it
    assert time.monotonic() - started < 10


def test_a_total_timeout_of_zero_lets_polling_wait():
    """ClientConfig(total_timeout=0) is no limit for the pauses between polls too (it refused
    the first one), as None is; a real limit still refuses a pause beyond it."""
    from cmpclient.client import ClientConfig
    from cmpclient.client.operations import _Poller
    from cmpclient.errors import PollTimeout

    slept: list[float] = []
    for limit in (0, None):
        _Poller(ClientConfig(transport=None, total_timeout=limit, sleep=slept.append)).wait(5)
    assert slept == [5, 5]
    with pytest.raises(PollTimeout):
        _Poller(ClientConfig(transport=None, total_timeout=2, sleep=slept.append)).wait(5)
