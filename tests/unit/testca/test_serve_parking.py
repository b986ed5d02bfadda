"""The sync worker's parking of connections whose request has not fully arrived
(cmpclient.testca.serve._Parking): silent ones and slow senders."""

from __future__ import annotations

import select
import socket
import time

import pytest

from cmpclient.testca import serve as serve_mod


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


def _connect(listener):
    c = socket.create_connection(listener.getsockname(), timeout=5)
    server_side, addr = listener.accept()
    return c, server_side, addr


def test_a_whole_request_is_served_at_once(listener):
    parking = serve_mod._Parking()
    c, srv, addr = _connect(listener)
    request = b"POST /ra HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    c.sendall(request)
    assert select.select([srv], [], [], 5)[0]  # the bytes are there before the peek
    entry = parking.admit(srv, addr, listener)
    assert entry is not None and bytes(entry.buf) == request and len(parking) == 0
    c.close()
    srv.close()


def test_a_slow_sender_is_parked_until_its_request_is_complete(listener):
    """A client dripping its request no longer holds a worker: it waits parked, with what
    it sent, and is handed over once the body is complete -- gunicorn reads the buffered
    bytes first, through the deadline socket."""
    parking = serve_mod._Parking()
    c, srv, addr = _connect(listener)
    c.sendall(b"POST /ra HTTP/1.1\r\nContent-Length: 5\r\n")
    assert select.select([srv], [], [], 5)[0]
    assert parking.admit(srv, addr, listener) is None and len(parking) == 1
    c.sendall(b"\r\nab")
    _, ready = parking.poll([listener], timeout=5)
    assert ready == [] and len(parking) == 1  # still 3 body bytes to come
    c.sendall(b"cde")
    _, ready = parking.poll([listener], timeout=5)
    assert len(ready) == 1 and len(parking) == 0
    sock = serve_mod._DeadlineSocket(ready[0].sock, addr, start=ready[0].start, prefix=bytes(ready[0].buf))
    ready[0].sock.setblocking(True)
    assert sock.recv(1000) == b"POST /ra HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde"
    c.close()
    srv.close()


@pytest.mark.parametrize("data, complete", [
    (b"POST /ra HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", False),
    (b"POST /ra HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", True),
    (b"POST /ra HTTP/1.1\r\ncontent-length:3\r\n", False),  # headers not finished
    (b"GET /ra HTTP/1.1\r\n\r\n", True),  # no body to wait for
    (b"POST /ra HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", True),  # refused from the headers
    (b"POST /ra HTTP/1.1\r\nContent-Length: x\r\n\r\n", True),
    (b"POST /ra HTTP/1.1\r\nContent-Length: 100001\r\n\r\n", True),  # too large: 400 at once
    (b"POST /nope HTTP/1.1\r\nContent-Length: 50\r\n\r\n", True),  # unknown alias: 404 before the body
    (b"POST /ra HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", True),  # a latin-1 "superscript two": isdigit() but not a number
    (b"POST /ra HTTP/1.1\r\nContent-Length: " + b"0" * 5001 + b"\r\n\r\n", True),  # int() refuses 5001 digits
    (b"POST /ra HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", True),  # waits for 100 Continue
])
def test_request_complete(data: bytes, complete: bool) -> None:
    def wants_body(method: str, target: str) -> bool:
        return method == "POST" and target == "/ra"

    assert serve_mod.request_complete(data, wants_body) is complete


def test_a_late_request_is_served_even_after_the_deadline(listener, monkeypatch):
    # Under load the worker may come back to the parked connections only after the
    # first-byte deadline: bytes that arrived meanwhile must be served, not dropped.
    monkeypatch.setattr(serve_mod, "FIRST_BYTE_TIMEOUT", 0.2)
    parking = serve_mod._Parking()
    late, late_srv, late_addr = _connect(listener)
    silent, silent_srv, silent_addr = _connect(listener)
    assert parking.admit(late_srv, late_addr, listener) is None
    assert parking.admit(silent_srv, silent_addr, listener) is None
    assert len(parking) == 2
    late.sendall(b"GET / HTTP/1.1\r\n\r\n")
    time.sleep(0.3)  # both deadlines have passed
    ready = parking.take_ready()
    assert [entry.sock for entry in ready] == [late_srv]  # served ...
    assert len(parking) == 0
    silent.settimeout(2)
    assert silent.recv(1) == b""  # ... and the silent one was closed
    late_srv.close()
    late.close()
    silent.close()


def test_poll_returns_ready_parked_connections_and_times_out_at_the_deadline(listener, monkeypatch):
    monkeypatch.setattr(serve_mod, "FIRST_BYTE_TIMEOUT", 0.3)
    parking = serve_mod._Parking()
    c, srv, addr = _connect(listener)
    assert parking.admit(srv, addr, listener) is None
    t0 = time.monotonic()
    ready_g, ready_p = parking.poll([listener], timeout=30)  # nothing happens: wakes at the deadline
    assert time.monotonic() - t0 < 5 and ready_g == [] and ready_p == []
    assert len(parking) == 0  # expired and closed
    c2, srv2, addr2 = _connect(listener)
    assert parking.admit(srv2, addr2, listener) is None
    c2.sendall(b"GET / HTTP/1.1\r\n\r\n")
    ready_g, ready_p = parking.poll([listener], timeout=30)
    assert [e.sock for e in ready_p] == [srv2]
    for s in (c, c2, srv2):
        s.close()


def test_the_number_of_parked_connections_is_bounded(listener, monkeypatch):
    monkeypatch.setattr(serve_mod._Parking, "MAX_PARKED", 3)
    parking = serve_mod._Parking()
    clients = []
    for _ in range(5):
        c, srv, addr = _connect(listener)
        clients.append(c)
        parking.admit(srv, addr, listener)
    assert len(parking) == 3
    clients[0].settimeout(2)
    assert clients[0].recv(1) == b""  # the oldest went first
    for c in clients:
        c.close()


def test_a_request_that_cannot_be_judged_does_not_kill_the_worker(listener, monkeypatch):
    def broken(method: str, target: str) -> bool:
        raise RuntimeError("boom")

    parking = serve_mod._Parking(wants_body=broken)
    c, srv, addr = _connect(listener)
    c.sendall(b"POST /ra HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
    assert select.select([srv], [], [], 5)[0]
    assert parking.admit(srv, addr, listener) is not None  # handed over, not an exception
    c.close()
    srv.close()


def test_a_shorter_wait_asked_by_gunicorn_is_kept(listener):
    """gunicorn's graceful close waits 2 s for the client to go; the deadline socket used
    to stretch that to the full request deadline (a client staying connected after its
    answer held the worker ~10 s)."""
    c, srv, addr = _connect(listener)
    sock = serve_mod._DeadlineSocket(srv, addr, prefix=b"GET / HTTP/1.1\r\n\r\n")
    assert sock.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    sock.settimeout(0.2)
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        sock.recv(100)  # the client stays connected and silent
    assert time.monotonic() - t0 < 2
    c.close()
    srv.close()


class _CountingSocket:
    """A non-blocking socket's recv, with the calls that only raised EAGAIN counted."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.eagain = sock, 0

    def recv(self, size: int) -> bytes:
        try:
            return self.sock.recv(size)
        except BlockingIOError:
            self.eagain += 1
            raise


@pytest.mark.parametrize("size", [100, 65536 + 1000, 150_000])
def test_fill_reads_what_arrived_without_a_recv_that_only_says_eagain(listener, size: int) -> None:
    c, srv, addr = _connect(listener)
    srv.setblocking(False)
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    c.sendall(data)
    entry = serve_mod._Pending(srv, addr, listener)
    counting = _CountingSocket(srv)
    entry.sock = counting  # type: ignore[assignment]
    deadline = time.monotonic() + 5
    while len(entry.buf) < size and time.monotonic() < deadline:  # the bytes may arrive in pieces
        assert select.select([srv], [], [], 1)[0]
        entry.fill()
    assert bytes(entry.buf) == data and not entry.eof
    if size < 65536:  # (a larger one may, rarely, arrive as an exact multiple of a full read)
        assert counting.eagain == 0  # the fill stopped at its short read
    before = counting.eagain
    entry.fill()  # nothing new: one recv, EAGAIN, nothing read
    assert counting.eagain == before + 1 and bytes(entry.buf) == data
    c.close()
    assert select.select([srv], [], [], 5)[0]
    entry.fill()
    assert entry.eof
    srv.close()
