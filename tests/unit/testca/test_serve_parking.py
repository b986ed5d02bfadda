"""The sync worker's parking of silent connections (cmpclient.testca.serve._Parking)."""

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


def test_a_sender_is_not_parked(listener):
    parking = serve_mod._Parking()
    c, srv, addr = _connect(listener)
    c.sendall(b"POST / HTTP/1.1\r\n")
    assert select.select([srv], [], [], 5)[0]  # the bytes are there before the peek
    assert parking.park_if_silent(srv, addr, listener) is False
    assert len(parking) == 0
    c.close()
    srv.close()


def test_a_late_request_is_served_even_after_the_deadline(listener, monkeypatch):
    # Under load the worker may come back to the parked connections only after the
    # first-byte deadline: bytes that arrived meanwhile must be served, not dropped.
    monkeypatch.setattr(serve_mod, "FIRST_BYTE_TIMEOUT", 0.2)
    parking = serve_mod._Parking()
    late, late_srv, late_addr = _connect(listener)
    silent, silent_srv, silent_addr = _connect(listener)
    assert parking.park_if_silent(late_srv, late_addr, listener)
    assert parking.park_if_silent(silent_srv, silent_addr, listener)
    assert len(parking) == 2
    late.sendall(b"POST / HTTP/1.1\r\n")
    time.sleep(0.3)  # both deadlines have passed
    ready = parking.take_ready()
    assert [entry[0] for entry in ready] == [late_srv]  # served ...
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
    assert parking.park_if_silent(srv, addr, listener)
    t0 = time.monotonic()
    ready_g, ready_p = parking.poll([listener], timeout=30)  # nothing happens: wakes at the deadline
    assert time.monotonic() - t0 < 5 and ready_g == [] and ready_p == []
    assert len(parking) == 0  # expired and closed
    c2, srv2, addr2 = _connect(listener)
    assert parking.park_if_silent(srv2, addr2, listener)
    c2.sendall(b"x")
    ready_g, ready_p = parking.poll([listener], timeout=30)
    assert [e[0] for e in ready_p] == [srv2]
    for s in (c, c2, srv2):
        s.close()


def test_the_number_of_parked_connections_is_bounded(listener, monkeypatch):
    monkeypatch.setattr(serve_mod._Parking, "MAX_PARKED", 3)
    parking = serve_mod._Parking()
    clients = []
    for _ in range(5):
        c, srv, addr = _connect(listener)
        clients.append(c)
        parking.park_if_silent(srv, addr, listener)
    assert len(parking) == 3
    clients[0].settimeout(2)
    assert clients[0].recv(1) == b""  # the oldest went first
    for c in clients:
        c.close()
