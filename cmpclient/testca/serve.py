"""Run the test CA: HTTP (WSGI) and CMP-over-TCP, in worker processes or threads.

Two ways to serve, one behaviour:

* :func:`serve` -- the ``cmpclient serve`` command. With ``workers > 1`` and gunicorn
  installed, gunicorn's *sync* worker processes serve HTTP (the CA is CPU-bound pure
  Python: processes scale, threads do not). Each worker opens its own :class:`TestCA`
  (SQLite in WAL mode copes with several processes) and also serves the CMP-over-TCP
  listening socket, which the master binds once and every worker accepts on. With
  ``workers == 1``, or without gunicorn, a threading wsgiref server and the TCP listener
  run in this process.
* :class:`BackgroundServer` -- the same WSGI app and TCP listener in threads of the
  current process, for tests (``tests/integration/conftest.py``'s ``testca_server``).

The sockets are bound by the master before anything else starts, so ``port 0`` is
resolved at once and printed::

    cmpclient serve: listening on http://127.0.0.1:PORT
    cmpclient serve: CMP over TCP on tcp://127.0.0.1:PORT (alias tcp)

Once the first line is printed, connections are accepted (they wait in the listen
backlog until a worker is up). SIGTERM and SIGINT stop gracefully: no new connections,
requests in progress finish (gunicorn's graceful timeout, 10 s), exit status 0.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Callable, TextIO
from urllib.parse import unquote, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from cmpclient.testca.tcp import TCPListener, bind_socket
from cmpclient.testca.wsgi import PATH_PREFIX, HTTPRefusal, alias_from_path, make_app

__all__ = ["serve", "BackgroundServer", "ThreadingWSGIServer", "LISTEN_LINE_PREFIX", "gunicorn_available"]

log = logging.getLogger("cmpclient.testca.serve")

#: Tests and scripts parse the line that starts with this to learn the port.
LISTEN_LINE_PREFIX = "cmpclient serve: listening on "
GRACEFUL_TIMEOUT = 10
#: Slow or idle clients (issue #6): a connection must send its first byte within
#: FIRST_BYTE_TIMEOUT seconds and then the whole request (headers and body) within
#: REQUEST_READ_TIMEOUT seconds, else it is closed.  A gunicorn sync worker serves one
#: connection at a time: without these, two idle sockets stalled the whole server until
#: the arbiter killed the workers (60 s). Silent connections are parked (:class:`_Parking`)
#: so that they cost no worker time at all; one that has started sending holds its worker
#: for at most REQUEST_READ_TIMEOUT.
FIRST_BYTE_TIMEOUT = 2.0
REQUEST_READ_TIMEOUT = 10.0
#: Seconds a client connection may stay silent (slow or stalled clients are dropped).
CLIENT_TIMEOUT = 30.0


def _open_ca(config: Path | None, data_dir: Path) -> Any:
    from cmpclient.testca import TestCA

    return TestCA.open(config, data_dir)


def gunicorn_available() -> bool:
    try:
        import gunicorn.app.base  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- threads


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler, logging through :mod:`logging` and with TCP_NODELAY.

    wsgiref writes the head and the body of an answer with separate ``sendall`` calls;
    without TCP_NODELAY the second small write waits for the client's delayed ACK.
    """

    # An error answer to a malformed request line (no version, HTTP/0.9, "HELLO") still
    # gets a status line and headers: http.server writes HTTP/0.9 answers as a bare body.
    default_request_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        # Bounds a slow client (request line, headers, body) and a slow reader of our answer.
        self.connection.settimeout(self.server.client_timeout)  # type: ignore[attr-defined]

    def parse_request(self) -> bool:
        """http.server answers ``Expect: 100-continue`` only for an HTTP/1.1 handler; this
        one speaks HTTP/1.0, so a client that waits for "100 Continue" (curl before 7.69 for
        bodies over 1 kB, or when told to) would wait its full timeout (curl: 1 s). The
        interim answer is sent when the application starts reading the body, so a request
        refused from its headers (404, 405, 400) gets only its final answer (RFC 9110
        section 10.1.1)."""
        if not super().parse_request():
            return False
        if self.request_version >= "HTTP/1.1" and self.headers.get("Expect", "").strip().lower() == "100-continue":
            self.rfile = _ContinueOnRead(self.rfile, self.wfile)  # type: ignore[assignment]
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's name
        log.debug("%s - %s", self.address_string(), format % args)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        log.info("%s - %s", self.address_string(), format % args)


class _ContinueOnRead:
    """The request body stream; its first read sends "HTTP/1.1 100 Continue" once."""

    def __init__(self, rfile: Any, wfile: Any) -> None:
        self._rfile = rfile
        self._wfile = wfile
        self._pending = True

    def _continue(self) -> None:
        if self._pending:
            self._pending = False
            self._wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._wfile.flush()

    def read(self, *args: Any) -> bytes:
        self._continue()
        return self._rfile.read(*args)

    def readline(self, *args: Any) -> bytes:
        self._continue()
        return self._rfile.readline(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with one thread per connection, on an already listening socket."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, app: Callable, *, client_timeout: float = CLIENT_TIMEOUT) -> None:
        super().__init__(sock.getsockname()[:2], _QuietHandler, bind_and_activate=False)
        self.client_timeout = client_timeout
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()[:2]
        host, port = self.server_address
        # What HTTPServer.server_bind would do, without its slow getfqdn().
        self.server_name = host
        self.server_port = port
        self.setup_environ()
        self.set_app(app)
        self.ready = threading.Event()

    def service_actions(self) -> None:
        # Called by serve_forever() on every loop turn: the loop is running.
        self.ready.set()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or goes silent mid-request is one log line, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.info("%s: connection ended: %s", client_address[0] if client_address else "?", exc)
            return
        log.exception("error serving %s", client_address)


class _DeadlineSocket:
    """A client socket whose reads share one deadline (see REQUEST_READ_TIMEOUT).

    A read past the deadline is logged and reported as end of stream, so gunicorn's
    parser ends the connection quietly (a short body becomes the app's HTTP 400).
    Everything else is the socket's own.
    """

    def __init__(self, sock: socket.socket, peer: Any, *, start: float | None = None, prefix: bytes = b"") -> None:
        self._sock = sock
        self._peer = peer
        self._start = time.monotonic() if start is None else start
        self._prefix = prefix  # what the parking already read of this request
        self._got = len(prefix)
        self._cap: float | None = None  # a shorter timeout gunicorn asked for (draining, closing)

    def settimeout(self, timeout: float | None) -> None:
        """gunicorn bounds its own waits (draining a body, the graceful close's 2 s); those
        caps are kept, so a client that stays connected after its answer is let go then."""
        self._cap = timeout
        self._sock.settimeout(timeout)

    def recv(self, size: int, *flags: int) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        if self._got < 0:
            return b""
        limit = FIRST_BYTE_TIMEOUT if self._got == 0 else REQUEST_READ_TIMEOUT
        remaining = self._start + limit - time.monotonic()
        if remaining <= 0:
            return self._expired(limit)
        capped = self._cap is not None and self._cap < remaining
        self._sock.settimeout(self._cap if capped else remaining)
        try:
            data = self._sock.recv(size, *flags)
        except (socket.timeout, TimeoutError):
            if capped:
                raise  # gunicorn's own shorter wait ended: its timeout, not a slow client
            return self._expired(limit)
        finally:
            # bounds the answer's sendall too
            self._sock.settimeout(self._cap if self._cap is not None else REQUEST_READ_TIMEOUT)
        self._got += len(data)
        return data

    def _expired(self, limit: float) -> bytes:
        if self._got < 0:
            return b""
        what = "sent nothing" if self._got == 0 else f"sent only {self._got} bytes"
        log.warning("closing slow client %s: %s within %.0f s", self._peer, what, limit)
        self._got = -1  # reported once; every later read is end of stream too
        return b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Pending:
    """A connection whose request is still arriving: what it has sent so far."""

    __slots__ = ("sock", "addr", "listener", "start", "buf", "eof")

    def __init__(self, sock: socket.socket, addr: Any, listener: Any) -> None:
        self.sock, self.addr, self.listener = sock, addr, listener
        self.start = time.monotonic()
        self.buf = bytearray()
        self.eof = False

    @property
    def deadline(self) -> float:
        return self.start + (REQUEST_READ_TIMEOUT if self.buf else FIRST_BYTE_TIMEOUT)

    def fill(self) -> None:
        """Read what has arrived, without blocking."""
        while not self.eof and len(self.buf) <= _MAX_BUFFERED:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.eof = True
                return
            if not chunk:
                self.eof = True
                return
            self.buf += chunk
            if len(chunk) < 65536:
                # A short read took everything that had arrived: no second recv just to
                # hear EAGAIN (what arrives later, the next poll reports).
                return


#: Bytes a parked connection may buffer: the largest request the CA reads, plus headers.
_MAX_BUFFERED = 100_000 + 65_536


def request_complete(buf: bytes | bytearray, wants_body: Callable[[str, str], bool]) -> bool:
    """Whether ``buf`` holds a whole request for the app to answer: the headers, and the
    body too when ``wants_body(method, target)`` says the app will read one (a POST to a
    known alias; others are answered from the headers, like the 404 before the body).
    Anything odd -- no Content-Length, Transfer-Encoding, oversize -- counts as complete:
    gunicorn and the app refuse it without waiting for more."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return len(buf) > 65_536
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rpartition(" ")[0] or rest
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "transfer-encoding":
            return True
        if name == "content-length":
            value = value.strip()
            if not (value.isascii() and value.isdigit() and len(value) <= 9):
                return True  # malformed or absurd: refused from the headers
            length = int(value)
        if name == "expect" and value.strip().lower() == "100-continue":
            return True  # the client waits for "100 Continue", which gunicorn sends once it has the request
    if length is None or length > 100_000:
        return True
    try:
        if not wants_body(method, target):
            return True
    except Exception:  # noqa: BLE001 - a malformed target: the app answers it
        return True
    return len(buf) - (end + 4) >= length


def _wants_body(method: str, target: str) -> bool:
    """Whether this worker's app reads a body for this request line: a POST to an alias
    its CA knows (anything else is answered from the headers)."""
    if method != "POST":
        return False
    ca = _worker_state.get("ca")
    if ca is None:
        return True
    path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
    try:
        return bool(ca.alias_exists(alias_from_path(unquote(path))))
    except HTTPRefusal:
        return False


class _Parking:
    """Accepted connections whose request has not fully arrived, waiting without a worker.

    A gunicorn sync worker handles one connection at a time; waiting for a silent or a
    slow one (up to FIRST_BYTE_TIMEOUT for the first byte, REQUEST_READ_TIMEOUT for the
    whole request) used to hold the worker, so a few slow clients delayed everyone. Now a
    new connection is read for PEEK_SECONDS; unless its whole request has arrived it is
    parked with what it sent: the worker's wait() polls the listening socket *and* the
    parked sockets, reads what arrives, and hands a connection to gunicorn once its
    request is complete (gunicorn reads the buffered bytes first). At the deadline a
    connection that sent nothing is closed; one that sent part of a request is handed
    over as it is (a short body becomes the app's 400) -- checked only then, so a request
    that arrived late is still served. Ready connections are served before new ones are
    accepted (a busy worker would otherwise starve them). At most MAX_PARKED per worker
    (the oldest is closed first).
    """

    PEEK_SECONDS = 0.005
    MAX_PARKED = 512
    _EVENTS = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR

    def __init__(self, wants_body: Callable[[str, str], bool] = lambda method, target: method == "POST") -> None:
        self._parked: list[_Pending] = []
        self._wants_body = wants_body

    def __len__(self) -> int:
        return len(self._parked)

    def admit(self, client: socket.socket, addr: Any, listener: Any) -> _Pending | None:
        """A new connection: returned when its request is complete (serve it now), else
        parked (None)."""
        entry = _Pending(client, addr, listener)
        client.setblocking(False)
        poller = select.poll()
        poller.register(client, self._EVENTS)
        deadline = entry.start + self.PEEK_SECONDS
        done = False
        while True:
            remaining = deadline - time.monotonic()
            if not poller.poll(max(0, int(remaining * 1000))):
                break
            entry.fill()
            done = self._done(entry)
            if done or time.monotonic() >= deadline:
                break
        if done:
            return entry
        self._parked.append(entry)
        while len(self._parked) > self.MAX_PARKED:
            self._close(self._parked.pop(0), "too many waiting connections")
        return None

    def poll(self, gunicorn_fds: list[Any], timeout: float) -> tuple[list[Any], list[_Pending]]:
        """Wait up to ``timeout`` (less if a parked connection's deadline comes sooner);
        return the ready gunicorn fds (as given) and the connections to serve now."""
        if self._parked:
            timeout = max(0.0, min(timeout, min(p.deadline for p in self._parked) - time.monotonic()))
        by_fd = {(obj if isinstance(obj, int) else obj.fileno()): obj for obj in gunicorn_fds}
        poller = self._poller()
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(timeout * 1000)}
        return [obj for fd, obj in by_fd.items() if fd in readable], self._partition(readable)

    def take_ready(self) -> list[_Pending]:
        """Remove and return the parked connections to serve now, oldest first (read what
        has arrived; close the silent ones past their deadline). Never blocks."""
        if not self._parked:
            return []
        return self._partition({fd for fd, _ in self._poller().poll(0)})

    def _done(self, entry: _Pending) -> bool:
        try:
            return entry.eof or request_complete(entry.buf, self._wants_body)
        except Exception:  # noqa: BLE001 - a request we cannot judge is gunicorn's to refuse; the worker lives on
            log.info("handing over an unusual request from %s as it is", entry.addr)
            return True

    def _poller(self) -> Any:
        poller = select.poll()
        for entry in self._parked:
            poller.register(entry.sock.fileno(), self._EVENTS)
        return poller

    def _partition(self, readable: set[int]) -> list[_Pending]:
        now = time.monotonic()
        ready, keep = [], []
        for entry in self._parked:
            if entry.sock.fileno() in readable:
                entry.fill()
            if self._done(entry):
                ready.append(entry)
            elif entry.deadline <= now:
                if entry.buf:
                    ready.append(entry)  # handed over as it is: the app answers a short body with 400
                else:
                    self._close(entry, f"sent nothing within {FIRST_BYTE_TIMEOUT:.0f} s")
            else:
                keep.append(entry)
        self._parked = keep
        return ready

    @staticmethod
    def _close(entry: _Pending, why: str | None) -> None:
        if why:
            log.warning("closing slow client %s: %s", entry.addr, why)
        try:
            entry.sock.close()
        except OSError:
            pass


class _SerializedCA:
    """Wraps a CA so that only one thread at a time is inside ``handle``.

    Used when threads share one CA object: correctness first (the CA is CPU-bound, so
    threads would not run in parallel anyway). Processes are the way to scale.
    """

    def __init__(self, ca: Any) -> None:
        self._ca = ca
        self._lock = threading.Lock()

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]:
        with self._lock:
            return self._ca.handle(alias, der)

    def alias_exists(self, alias: str) -> bool:
        with self._lock:
            return self._ca.alias_exists(alias)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ca, name)


class ThreadedFront:
    """An HTTP server (``self.httpd``) and an optional TCP listener (``self.tcp``) served
    in daemon threads of this process; shared by the test CA and the proxy.

    ``start()`` returns once the HTTP accept loop runs (polled readiness, no sleeps).
    """

    httpd: ThreadingWSGIServer
    tcp: "TCPListener | None" = None
    host: str = "127.0.0.1"
    ready_timeout: float = 10.0
    thread_name: str = "cmp-http"
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def tcp_port(self) -> int | None:
        return self.tcp.port if self.tcp else None

    @property
    def base_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    def url(self, alias: str) -> str:
        return f"{self.base_url}{PATH_PREFIX}/{alias}"

    @property
    def tcp_url(self) -> str | None:
        return f"tcp://{_url_host(self.host)}:{self.tcp_port}" if self.tcp else None

    def start(self) -> Any:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{self.thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if self.tcp is not None:
            self.tcp.start()
        if not self.httpd.ready.wait(self.ready_timeout):
            self.stop()
            raise RuntimeError(f"{self.thread_name} server did not start within {self.ready_timeout} s")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()
        if self.tcp is not None:
            self.tcp.shutdown()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BackgroundServer(ThreadedFront):
    """The test CA's HTTP and TCP front ends in threads of this process.

    ``tcp_port=None`` disables the TCP listener. ``serialize`` puts one lock around
    ``ca.handle`` (needed unless the CA is safe to share between threads).
    """

    thread_name = "testca-http"

    def __init__(
        self,
        ca: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tcp_port: int | None = 0,
        serialize: bool = True,
        ready_timeout: float = 10.0,
    ) -> None:
        self.ca = ca
        self.host = host
        self._front = _SerializedCA(ca) if serialize else ca
        self._http_sock = bind_socket(host, port)
        self.httpd = ThreadingWSGIServer(self._http_sock, make_app(self._front))
        self.tcp = TCPListener(self._front, host, tcp_port) if tcp_port is not None else None
        self.ready_timeout = ready_timeout
        self._thread = None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------- serve


def _announce(out: TextIO, ca: Any, host: str, http_sock: socket.socket, tcp_sock: socket.socket | None, mode: str) -> None:
    port = http_sock.getsockname()[1]
    base = f"http://{_url_host(host)}:{port}"
    summary = ca.summary()
    if summary:
        print(summary.rstrip("\n"), file=out)
    print(f"{LISTEN_LINE_PREFIX}{base}", file=out)
    print(f"cmpclient serve: CMP endpoints {base}{PATH_PREFIX}/<alias> (also {base}/<alias>)", file=out)
    if tcp_sock is not None:
        print(
            f"cmpclient serve: CMP over TCP on tcp://{_url_host(host)}:{tcp_sock.getsockname()[1]} (alias {ca.tcp_alias})",
            file=out,
        )
    print(f"cmpclient serve: {mode}; data in {ca.data_dir}; stop with Ctrl-C or SIGTERM", file=out)
    out.flush()


def serve(
    *,
    config: Path | None = None,
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    tcp_port: int | None = None,
    workers: int = 1,
    out: TextIO | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status (0 after a graceful stop).

    ``tcp_port=None`` serves no CMP-over-TCP; ``0`` picks free ports.
    """
    out = out or sys.stdout
    if workers < 1:
        raise ValueError("workers must be at least 1")
    data_dir = Path(data_dir)
    ca = _open_ca(config, data_dir)  # materialises the default config and keys once
    try:
        http_sock = bind_socket(host, port)
        tcp_sock = None
        if tcp_port is not None:
            if not ca.alias_exists(ca.tcp_alias):
                log.warning("no alias %r in the configuration: CMP over TCP requests will be refused", ca.tcp_alias)
            tcp_sock = bind_socket(host, tcp_port)
    except BaseException:
        ca.close()
        raise
    use_gunicorn = workers > 1 and gunicorn_available()
    if workers > 1 and not use_gunicorn:
        log.warning("gunicorn is not installed: serving with threads in one process instead of %d workers", workers)
    mode = f"{workers} gunicorn worker processes" if use_gunicorn else "one process, threads"
    try:
        _announce(out, ca, host, http_sock, tcp_sock, mode)
    finally:
        if use_gunicorn:
            # Workers are forked: none may inherit this process's open database.
            ca.close()
    if use_gunicorn:
        return _serve_gunicorn(config, data_dir, http_sock, tcp_sock, workers, out)
    return _serve_threads(ca, http_sock, tcp_sock, out)


def _serve_threads(ca: Any, http_sock: socket.socket, tcp_sock: socket.socket | None, out: TextIO) -> int:
    front = _SerializedCA(ca)
    httpd = ThreadingWSGIServer(http_sock, make_app(front))
    tcp = TCPListener(front, sock=tcp_sock) if tcp_sock is not None else None
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="testca-http", daemon=True)
    try:
        thread.start()
        if tcp is not None:
            tcp.start()
        while not stop.wait(1.0):
            if not thread.is_alive():  # pragma: no cover - serve_forever died
                log.error("HTTP server thread ended unexpectedly")
                return 1
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        httpd.shutdown()
        thread.join(timeout=GRACEFUL_TIMEOUT)
        httpd.server_close()
        if tcp is not None:
            tcp.shutdown()
        ca.close()
    name = signal.Signals(received[0]).name if received else "request"
    print(f"cmpclient serve: stopped ({name})", file=out)
    out.flush()
    return 0


# --------------------------------------------------------------------------- gunicorn

# Per worker process: its own CA and TCP listener (set in load() / post_worker_init).
_worker_state: dict[str, Any] = {}


def _serve_gunicorn(
    config: Path | None, data_dir: Path, http_sock: socket.socket, tcp_sock: socket.socket | None, workers: int, out: TextIO
) -> int:
    from gunicorn.app.base import BaseApplication

    def post_worker_init(worker: Any) -> None:
        ca = _worker_state.get("ca")
        if tcp_sock is not None and ca is not None:
            _worker_state["tcp"] = TCPListener(ca, sock=tcp_sock).start()

    def worker_exit(server: Any, worker: Any) -> None:
        tcp = _worker_state.pop("tcp", None)
        if tcp is not None:
            tcp.shutdown()
        ca = _worker_state.pop("ca", None)
        if ca is not None:
            try:
                ca.close()
            except Exception:
                log.exception("closing the CA in worker %s", os.getpid())

    def on_exit(server: Any) -> None:
        print("cmpclient serve: stopped", file=out)
        out.flush()

    from gunicorn import util as _gutil
    from gunicorn.workers.sync import SyncWorker

    class _GuardedSyncWorker(SyncWorker):  # type: ignore[misc]
        """gunicorn's sync worker with the slow-client deadlines of :class:`_DeadlineSocket`,
        and silent connections parked instead of waited for (see :class:`_Parking`)."""

        def init_process(self) -> None:
            self._parking = _Parking(wants_body=_wants_body)
            super().init_process()

        def _serve(self, entry: _Pending) -> None:
            entry.sock.settimeout(REQUEST_READ_TIMEOUT)  # blocking again, and it bounds the answer's sendall
            sock = _DeadlineSocket(entry.sock, entry.addr, start=entry.start, prefix=bytes(entry.buf))
            self.handle(entry.listener, sock, entry.addr)

        def accept(self, listener: Any) -> None:
            # Parked connections whose request has arrived go first: under load gunicorn
            # keeps accepting while the backlog is not empty and would starve them.
            for entry in self._parking.take_ready():
                self._serve(entry)
            client, addr = listener.accept()
            _gutil.close_on_exec(client)
            entry = self._parking.admit(client, addr, listener)
            if entry is not None:
                self._serve(entry)

        def wait(self, timeout: float) -> Any:
            if not self._parking:
                return super().wait(timeout)
            self.notify()
            try:
                ready_gunicorn, ready_parked = self._parking.poll(self.wait_fds, timeout)
            except (OSError, ValueError):  # a closed listener while stopping: gunicorn's own wait decides
                return super().wait(0)
            for entry in ready_parked:
                self._serve(entry)
            if self.PIPE[0] in ready_gunicorn:
                try:
                    os.read(self.PIPE[0], 1)
                except OSError:
                    pass
            return ready_gunicorn or None

        # Parked connections still open at exit are closed with the process.

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": [f"fd://{http_sock.fileno()}"],
                "workers": workers,
                "worker_class": _GuardedSyncWorker,
                "preload_app": False,
                "graceful_timeout": GRACEFUL_TIMEOUT,
                "timeout": 60,
                "proc_name": "cmpclient-testca",
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
                "post_worker_init": post_worker_init,
                "worker_exit": worker_exit,
                "on_exit": on_exit,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Callable:
            # Runs in each worker after the fork: a database connection of its own.
            # Sync workers serve one request at a time, so the CA needs no lock here;
            # the TCP listener thread shares it, hence the serialising wrapper.
            ca = _SerializedCA(_open_ca(config, data_dir))
            _worker_state["ca"] = ca
            return make_app(ca)

    try:
        _App().run()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
