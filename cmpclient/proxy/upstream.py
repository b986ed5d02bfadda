"""The proxy's outgoing side: forwarding to the upstream CA, fetching CRLs.

:class:`Upstream` is the production ``send(alias, der) -> bytes`` of :class:`~cmpclient.proxy.core.Proxy`.
Its transports are :func:`cmpclient.transport.open_transport`'s (HTTP(S) with kept-alive
connections and one-write requests, or CMP over TCP); the messages of one transaction
share a connection, which no other transaction uses meanwhile (see :class:`Upstream`). Errors are the transports' own:
:class:`~cmpclient.errors.TransportTimeout`, :class:`~cmpclient.errors.HTTPStatusError`
(the upstream's non-200 answer, body included) and :class:`~cmpclient.errors.TransportError`.

:func:`fetch_url` GETs a CRL with :func:`cmpclient.transport.http.http_get` (a timeout, a
size limit, no redirects).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from cmpclient.transport import end_transaction, redact_url

__all__ = ["Upstream", "fetch_url", "MAX_CRL_SIZE", "DEFAULT_HOLD"]

log = logging.getLogger("cmpclient.proxy")

MAX_CRL_SIZE = 10 * 1024 * 1024
_MAX_FREE = 16  # transports kept per upstream URL for the next transactions
#: Seconds an open transaction keeps its upstream connection waiting for the client (certConf, pollReq).
DEFAULT_HOLD = 10.0
#: The most of a pollRep's checkAfter added to the hold (a day): beyond it the CA's word is not taken.
_MAX_POLL_WAIT = 86_400


class Upstream:
    """Forward a DER request of ``alias`` to ``resolve(alias)``; return the DER answer.

    ``timeout`` bounds connecting and then waiting for the answer (seconds); ``verify`` is
    the TLS verification setting of HTTPS upstreams (``True``, a CA bundle, ``False``).
    Safe to call from several threads.

    Over HTTP(S) a transaction keeps its upstream connection until it ends, as openssl's
    client does: some CAs (openssl's mock server) bind a transaction to the connection it
    started on and serve one connection at a time, so the certConf that follows an ip --
    or the pollReq after a pollRep -- goes on the connection that carried the ir, and no
    other transaction uses that connection meanwhile. The request's transactionID finds
    it; the answer says whether the transaction goes on
    (:func:`cmpclient.message.peek.transaction_continues`: not after a pkiConf, an error, an
    implicitly confirmed answer or one that rejects every request). When it ends, the connection
    is closed (:func:`cmpclient.transport.end_transaction`) and the transport goes back to
    a free list for the next transaction. A transaction whose client stays silent longer
    than ``hold`` seconds (an abandoned certConf) loses its connection, so such a CA can
    serve the next client; after a pollRep the client is given its checkAfter on top of
    ``hold`` (at most a day); the oldest open transaction also loses its connection when
    more than ``max_open_transactions`` wait. (``tcp://`` transports open a connection per message anyway.)
    """

    def __init__(self, resolve: Callable[[str], str], *, timeout: float = 30.0, verify: bool | str = True,
                 hold: float = DEFAULT_HOLD, max_open_transactions: int = 256) -> None:
        self._resolve = resolve
        self._timeout = (float(timeout), float(timeout))
        self._verify = verify
        self._hold = float(hold)
        self._max_open = max_open_transactions
        self._first: dict[str, Any] = {}  # per URL: the transport the others are forked from
        self._free: dict[str, list[Any]] = {}
        # (url, transactionID) -> (transport, deadline), oldest first (deadlines differ: polling).
        self._open: OrderedDict[tuple[str, bytes], tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._creating = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._janitor: threading.Thread | None = None
        self._closed = False

    def _new_transport(self, url: str) -> Any:
        with self._creating:  # one first transport per URL, even when two requests come at once
            with self._lock:
                first = self._first.get(url)
            if first is not None and hasattr(first, "fork"):
                return first.fork()  # same TLS context and session: no new context, resumed handshakes
            from cmpclient.transport import open_transport

            opts: dict[str, Any] = {"timeout": self._timeout}
            if url.lower().startswith("https://"):
                opts["verify"] = self._verify
            if url.lower().startswith(("http://", "https://")):
                # The proxy forwards directly: HTTP(S)_PROXY would make it one more hop.
                opts["trust_env"] = False
            transport = open_transport(url, **opts)
            with self._lock:
                if not self._closed:
                    self._first.setdefault(url, transport)
            return transport

    def _take(self, url: str, tid: bytes | None) -> Any:
        """The transport of transaction ``tid`` if it is open, else a free one or a new one."""
        with self._lock:
            entry = self._open.pop((url, tid), None) if tid else None
            transport = entry[0] if entry is not None else None
            if transport is None and self._free.get(url):
                transport = self._free[url].pop()
        return transport if transport is not None else self._new_transport(url)

    def _finish(self, url: str, transport: Any) -> None:
        """The transaction on ``transport`` is over: close its connection, keep the transport."""
        end_transaction(transport)
        with self._lock:
            free = self._free.setdefault(url, [])
            if not self._closed and len(free) < _MAX_FREE:
                free.append(transport)
                return
        transport.close()

    def _keep(self, url: str, tid: bytes, transport: Any, wait: float = 0.0) -> None:
        """Hold ``transport`` for transaction ``tid``: ``hold`` seconds, plus ``wait`` the
        client was told to wait (a pollRep's checkAfter, clamped to 0.._MAX_POLL_WAIT)."""
        key = (url, tid)
        with self._lock:
            if self._closed:
                let_go: list[tuple[str, Any]] = [(url, transport)]
            else:
                # The same transactionID twice at once (a client resending): the later answer wins.
                replaced = self._open.pop(key, None)
                self._open[key] = (transport, time.monotonic() + self._hold + wait)
                let_go = [(url, replaced[0])] if replaced is not None else []
                if len(self._open) > self._max_open:
                    (old_url, _), (old, _) = self._open.popitem(last=False)
                    let_go.append((old_url, old))
                    log.info("upstream %s: letting go of the connection of the oldest open transaction "
                             "(more than %d wait for their client)", redact_url(old_url), self._max_open)
                if self._janitor is None:
                    self._janitor = threading.Thread(target=self._expire, name="cmpclient-proxy-upstream-hold",
                                                     daemon=True)
                    self._janitor.start()
                self._changed.notify()
        for old_url, old in let_go:
            self._finish(old_url, old)

    def _expire(self) -> None:
        """Let go of the connections of transactions whose client stayed silent too long."""
        while True:
            expired: list[tuple[str, Any]] = []
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                # at most max_open_transactions entries: a scan is cheap and needs no order
                for key in [k for k, (_, deadline) in self._open.items() if deadline <= now]:
                    expired.append((key[0], self._open.pop(key)[0]))
                if not expired:
                    wait = min(deadline for _, deadline in self._open.values()) - now if self._open else None
                    self._changed.wait(None if wait is None else min(wait, threading.TIMEOUT_MAX))
                    continue
            for url, transport in expired:
                log.info("upstream %s: a transaction's client did not come back within %g s (plus any checkAfter); "
                         "its connection is closed", redact_url(url), self._hold)
                try:
                    self._finish(url, transport)
                except Exception:  # the janitor must outlive one bad transport
                    log.exception("upstream %s: closing an expired transaction's connection failed", redact_url(url))

    def send(self, alias: str, der: bytes) -> bytes:
        from cmpclient.message.peek import peek, transaction_continues

        url = self._resolve(alias)
        tid = peek(der).transaction_id
        transport = self._take(url, tid)
        try:
            answer = transport.send(der)
        except BaseException:
            self._finish(url, transport)
            raise
        rsp = peek(answer)
        if tid and transaction_continues(rsp.body_type, rsp.implicit_confirm, rsp.rejected):
            # clamped while still an int: a checkAfter of 400 digits is no float
            self._keep(url, tid, transport, float(min(max(rsp.check_after or 0, 0), _MAX_POLL_WAIT)))
        else:
            self._finish(url, transport)
        return answer

    def close(self) -> None:
        with self._lock:
            self._closed = True
            transports = [t for free in self._free.values() for t in free] + [t for t, _ in self._open.values()]
            transports += [t for t in self._first.values() if all(t is not u for u in transports)]
            self._free, self._open, self._first = {}, OrderedDict(), {}
            janitor, self._janitor = self._janitor, None
            self._changed.notify_all()
        for t in transports:
            t.close()
        if janitor is not None:
            janitor.join(5)


def fetch_url(url: str, *, timeout: float = 10.0, max_size: int = MAX_CRL_SIZE) -> bytes:
    """GET ``url`` (a CRL): the body of a 200 answer, at most ``max_size`` bytes."""
    from cmpclient.transport.http import http_get

    return http_get(url, timeout=timeout, max_size=max_size, user_agent="cmpclient-proxy")
