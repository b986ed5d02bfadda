"""The proxy's outgoing side: forwarding to the upstream CA, fetching CRLs.

:class:`Upstream` is the production ``send(alias, der) -> bytes`` of :class:`~cmpclient.proxy.core.Proxy`.
It keeps one transport per upstream URL (:func:`cmpclient.transport.open_transport`:
HTTP(S) with a kept-alive connection pool and one-write requests, or CMP over TCP), so
consecutive requests reuse connections. Errors are the transports' own:
:class:`~cmpclient.errors.TransportTimeout`, :class:`~cmpclient.errors.HTTPStatusError`
(the upstream's non-200 answer, body included) and :class:`~cmpclient.errors.TransportError`.

:func:`fetch_url` GETs a CRL with :func:`cmpclient.transport.http.http_get` (a timeout, a
size limit, no redirects).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

__all__ = ["Upstream", "fetch_url", "MAX_CRL_SIZE"]

log = logging.getLogger("cmpclient.proxy")

MAX_CRL_SIZE = 10 * 1024 * 1024


class Upstream:
    """Forward a DER request of ``alias`` to ``resolve(alias)``; return the DER answer.

    ``timeout`` bounds connecting and then waiting for the answer (seconds); ``verify`` is
    the TLS verification setting of HTTPS upstreams (``True``, a CA bundle, ``False``).
    Safe to call from several threads (the transports' connection pools are).
    """

    def __init__(self, resolve: Callable[[str], str], *, timeout: float = 30.0, verify: bool | str = True) -> None:
        self._resolve = resolve
        self._timeout = (float(timeout), float(timeout))
        self._verify = verify
        self._transports: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _transport(self, url: str) -> Any:
        with self._lock:
            transport = self._transports.get(url)
            if transport is None:
                from cmpclient.transport import open_transport

                opts: dict[str, Any] = {"timeout": self._timeout}
                if url.lower().startswith("https://"):
                    opts["verify"] = self._verify
                if url.lower().startswith(("http://", "https://")):
                    # The proxy forwards directly: HTTP(S)_PROXY would make it one more hop.
                    opts["trust_env"] = False
                transport = self._transports[url] = open_transport(url, **opts)
            return transport

    def send(self, alias: str, der: bytes) -> bytes:
        return self._transport(self._resolve(alias)).send(der)

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for t in transports:
            t.close()


def fetch_url(url: str, *, timeout: float = 10.0, max_size: int = MAX_CRL_SIZE) -> bytes:
    """GET ``url`` (a CRL): the body of a 200 answer, at most ``max_size`` bytes."""
    from cmpclient.transport.http import http_get

    return http_get(url, timeout=timeout, max_size=max_size, user_agent="cmpclient-proxy")
