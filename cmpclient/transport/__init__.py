"""Transports move DER PKIMessages: every transport has ``send(request: bytes) -> bytes``
and ``close()`` and is a context manager.

* :class:`~cmpclient.transport.http.HTTPTransport` -- ``http://`` and ``https://`` (RFC 6712/9811)
* :class:`~cmpclient.transport.tcp.TCPTransport` -- ``tcp://`` (EJBCA's CMP TCP framing)
* :class:`~cmpclient.transport.file.CaptureTransport` /
  :class:`~cmpclient.transport.file.ReplayTransport` -- ``-reqout/-rspout/-rspin`` files

This package imports nothing heavy: ``requests`` is loaded only when an HTTP transport is
opened, so commands that work offline (dump, replay) stay fast to start.
"""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cmpclient.errors import TransportTimeout, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from cmpclient.transport.http import HTTPTransport
    from cmpclient.transport.tcp import TCPTransport

__all__ = ["Transport", "open_transport", "end_transaction", "redact_url", "deadline", "bounded", "watchdog"]


@runtime_checkable
class Transport(Protocol):
    """The interface every transport implements."""

    def send(self, request: bytes) -> bytes:
        """Deliver one DER PKIMessage and return the DER PKIMessage answering it."""
        ...

    def close(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo (``user:password@host``) replaced by ``***``,
    for messages, logs and ``--show-config``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


#: A transaction's total timeout as a time.monotonic() deadline, set around each send by
#: the client (per thread: contexts are), read by the HTTP and TCP transports; wrappers
#: (capture, replay, nested) need not pass it on.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("cmpclient_deadline", default=None)
#: The hint of every TransportTimeout the deadline causes, and what a timeout message adds
#: when the deadline had cut the socket's timeout.
TOTAL_TIMEOUT_HINT = "raise --total-timeout (0 or unset: no total limit)"
CUT_BY_TOTAL_TIMEOUT = " (what was left of the transaction's total timeout)"


class deadline:
    """``with deadline(at):`` -- transports started inside finish by ``at`` (monotonic
    seconds) or raise TransportTimeout; ``None`` sets no limit."""

    def __init__(self, at: float | None) -> None:
        self.at = at

    def __enter__(self) -> None:
        self._token = _DEADLINE.set(self.at)

    def __exit__(self, *exc_info: object) -> None:
        _DEADLINE.reset(self._token)


def bounded(limits: tuple[float, float], what: str) -> tuple[float, float, bool]:
    """``(connect, read)`` timeouts cut to what is left before the current deadline, and
    whether the deadline cut them.  Raises TransportTimeout when it has passed already."""
    at = _DEADLINE.get()
    if at is None:
        return limits[0], limits[1], False
    left = at - time.monotonic()
    if left <= 0:
        raise TransportTimeout(f"the transaction's total timeout ran out before {what}",
                               hint=TOTAL_TIMEOUT_HINT)
    return min(limits[0], left), min(limits[1], left), left < max(limits)


class watchdog:
    """``with watchdog(sock, what) as dog:`` -- should the current deadline pass while the
    block runs, ``sock`` is shut down, ending a read that a server sending a byte at a time
    keeps alive (each byte restarts the socket's read timeout); then :meth:`check` (or the
    block's own error) becomes a TransportTimeout.  Without a deadline: nothing, no thread."""

    def __init__(self, sock: Any, what: str) -> None:
        self.sock = sock
        self.what = what
        self.fired = False
        self._timer: Any = None

    def __enter__(self) -> "watchdog":
        at = _DEADLINE.get()
        if at is not None:
            import threading

            self._timer = threading.Timer(max(0.0, at - time.monotonic()), self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _fire(self) -> None:
        import socket

        self.fired = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def check(self) -> None:
        """TransportTimeout if the deadline cut the block short."""
        if self.fired:
            raise TransportTimeout(f"the transaction's total timeout ran out during {self.what}",
                                   hint=TOTAL_TIMEOUT_HINT)


def end_transaction(transport: Any) -> None:
    """Tell ``transport`` that a CMP transaction is over (transports that keep
    connections drop them: the next transaction starts on a fresh one)."""
    end = getattr(transport, "end_transaction", None)
    if end is not None:
        end()


def open_transport(url: str, **opts: Any) -> "HTTPTransport | TCPTransport":
    """Create the transport for ``url``, importing only the module that scheme needs.

    ``http://`` and ``https://`` give an HTTPTransport, ``tcp://`` a TCPTransport; ``opts``
    are passed to its constructor (``timeout``, ``verify``, ``client_cert``, ...).
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        from cmpclient.transport.http import HTTPTransport

        return HTTPTransport(url, **opts)
    if scheme == "tcp":
        from cmpclient.transport.tcp import TCPTransport

        return TCPTransport(url, **opts)
    raise UsageError(
        f"unsupported server URL {url!r}: expected http://, https:// or tcp://",
        hint="e.g. http://localhost:8080/ejbca/publicweb/cmp/<alias> or tcp://localhost:829",
    )
