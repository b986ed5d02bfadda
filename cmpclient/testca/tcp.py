"""The test CA's CMP-over-TCP listener (EJBCA's TCP transport framing, version 10).

The framing is :mod:`cmpclient.transport.tcp` -- the very functions the client uses
(:func:`~cmpclient.transport.tcp.read_frame`, :func:`~cmpclient.transport.tcp.encode_frame`).
Every pkiReq goes to ``ca.handle(ca.tcp_alias, der)``.

Per connection (one thread each, at most ``max_connections`` at once):

* frames are read until the peer closes, sets the closeConnection flag, or stays idle
  longer than ``timeout`` seconds (the same timeout bounds a slow sender and a slow
  reader of our answer);
* a pkiReq is answered with a pkiRep, or with a finRep when the answer is a PKIConf
  (what EJBCA does, and what its TCP test client expects);
* anything else -- a pollReq (this CA polls at the CMP level, never with TCP pollRep),
  an unknown type, a frame over ``max_frame`` bytes, a wrong version -- is answered with
  an errorMsgRep and the connection is closed.

:meth:`TCPListener.shutdown` stops accepting, lets requests being handled finish (up
to ``grace`` seconds), closes idle connections at once, and joins every thread.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Protocol

from cmpclient.errors import TransportError, TransportTimeout
from cmpclient.message.peek import peek
from cmpclient.transport.tcp import (
    ERROR_MSG_REP,
    FIN_REP,
    FLAG_CLOSE_CONNECTION,
    PKI_REP,
    PKI_REQ,
    POLL_REQ,
    encode_frame,
    read_frame,
)

__all__ = ["TCPListener", "DEFAULT_MAX_FRAME", "DEFAULT_TIMEOUT", "answer_frame_type"]

log = logging.getLogger("cmpclient.testca.tcp")

#: Same bound as the HTTP body limit.
DEFAULT_MAX_FRAME = 100_000
DEFAULT_TIMEOUT = 30.0


class _CA(Protocol):
    tcp_alias: str

    def alias_exists(self, alias: str) -> bool: ...

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]: ...


def answer_frame_type(response_der: bytes) -> int:
    """finRep for a PKIConf answer (as EJBCA sends it), pkiRep for everything else."""
    return FIN_REP if peek(response_der).body_type == "pkiconf" else PKI_REP


class _Connection:
    def __init__(self, sock: socket.socket, peer: Any):
        self.sock = sock
        self.peer = peer
        self.busy = False
        self.thread: threading.Thread | None = None


class TCPListener:
    """A threaded CMP-over-TCP listener for a test CA.

    ``sock``: an already bound and listening socket to serve (then ``host``/``port`` are
    ignored); otherwise one is bound to ``host:port`` (port 0 picks a free port; see
    :attr:`port`). Call :meth:`start` to serve in a background thread, or
    :meth:`serve_forever` in the current one.
    """

    def __init__(
        self,
        ca: _CA,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 64,
        grace: float = 10.0,
    ) -> None:
        self.ca = ca
        self.max_frame = max_frame
        self.timeout = timeout
        self.grace = grace
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if sock is None:
            sock = bind_socket(host, port)
        self.sock = sock
        self._address: tuple[str, int] = tuple(sock.getsockname()[:2])  # type: ignore[assignment]
        # accept() wakes up regularly so that shutdown() is noticed promptly.
        self.sock.settimeout(0.2)

    # -- addresses ----------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        return self._address

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"tcp://{host}:{port}"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "TCPListener":
        """Serve in a daemon thread; returns at once (the socket already listens)."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"cmp-tcp-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                log.exception("accept failed on the CMP TCP listener")
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("CMP TCP listener busy: refusing a connection from %s", peer)
                self._refuse(conn, "server busy, try again later")
                continue
            c = _Connection(conn, peer)
            t = threading.Thread(target=self._serve_connection, args=(c,), name=f"cmp-tcp-conn-{peer[1]}", daemon=True)
            c.thread = t
            with self._lock:
                self._connections.add(c)
            t.start()

    def shutdown(self) -> None:
        """Stop accepting, finish requests in progress, close everything, join threads."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            if not c.busy:
                _hard_close(c.sock)
        for c in conns:
            if c.thread is not None:
                c.thread.join(timeout=self.grace)
                if c.thread.is_alive():
                    _hard_close(c.sock)
                    c.thread.join(timeout=1)

    close = shutdown

    def __enter__(self) -> "TCPListener":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- one connection -------------------------------------------------------------------
    def _refuse(self, conn: socket.socket, text: str) -> None:
        try:
            conn.settimeout(1.0)
            conn.sendall(encode_frame(text.encode("utf-8"), ERROR_MSG_REP, flags=FLAG_CLOSE_CONNECTION))
        except OSError:
            pass
        finally:
            conn.close()

    def _serve_connection(self, c: _Connection) -> None:
        sock = c.sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.timeout)
            while not self._stopping.is_set():
                if not self._serve_one(c):
                    break
        except Exception:
            log.exception("CMP TCP connection from %s failed", c.peer)
        finally:
            with self._lock:
                self._connections.discard(c)
            try:
                sock.close()
            except OSError:
                pass
            self._slots.release()

    def _serve_one(self, c: _Connection) -> bool:
        """Handle one frame; False when the connection is to be closed."""
        sock = c.sock
        try:
            # A clean close between frames ends the connection quietly.
            first = sock.recv(1, socket.MSG_PEEK)
        except (socket.timeout, TimeoutError):
            log.debug("CMP TCP connection from %s idle for %g s: closing", c.peer, self.timeout)
            return False
        except OSError:
            return False
        if not first:
            return False
        c.busy = True
        try:
            try:
                frame = read_frame(sock, max_size=self.max_frame, raise_on_error=False)
            except TransportTimeout:
                log.info("CMP TCP peer %s too slow sending a frame: closing", c.peer)
                return False
            except TransportError as exc:
                log.info("bad CMP TCP frame from %s: %s", c.peer, exc.message)
                self._send(sock, exc.message.encode("utf-8"), ERROR_MSG_REP, close=True)
                return False
            if frame.msg_type == PKI_REQ:
                answer = self._handle(frame.payload)
                if answer is None:
                    return False
                self._send(sock, answer, answer_frame_type(answer), close=bool(frame.flags & FLAG_CLOSE_CONNECTION))
                return not frame.flags & FLAG_CLOSE_CONNECTION
            if frame.msg_type == POLL_REQ:
                text = "pollReq not supported: this CA never answers with a TCP pollRep (it polls with CMP pollReq/pollRep)"
            else:
                text = f"unexpected CMP-over-TCP message type {frame.msg_type}; send a pkiReq (0)"
            self._send(sock, text.encode("utf-8"), ERROR_MSG_REP, close=True)
            return False
        finally:
            c.busy = False

    def _handle(self, der: bytes) -> bytes | None:
        alias = self.ca.tcp_alias
        if not self.ca.alias_exists(alias):
            log.error("CMP TCP request but the CA has no alias %r", alias)
            return None
        status, answer = self.ca.handle(alias, der)
        if status != 200 or answer[:1] != b"\x30":
            log.error("CA answered HTTP %s to a CMP TCP request; closing the connection", status)
            return None
        return answer

    @staticmethod
    def _send(sock: socket.socket, value: bytes, msg_type: int, *, close: bool) -> None:
        try:
            sock.sendall(encode_frame(value, msg_type, flags=FLAG_CLOSE_CONNECTION if close else 0))
        except OSError as exc:
            log.info("could not send a CMP TCP answer: %s", exc)
            return
        if close:
            _drain_and_close(sock)


def bind_socket(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6 by the host's form)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _drain_and_close(sock: socket.socket, *, limit: int = 1 << 20, seconds: float = 1.0) -> None:
    """Half-close, then read (bounded) what the peer still sends before the final close.

    Closing a socket with unread input makes the kernel send a reset, which can destroy
    the errorMsgRep we just sent before the peer reads it.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        got = 0
        while got < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
