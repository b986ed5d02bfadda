"""CMP over HTTP(S) (RFC 6712 / RFC 9811) with ``requests``.

The only module of cmpclient that imports ``requests``. What it does beyond a plain POST:

* **one write per request.** urllib3 sends the request head and the body with two
  ``send()`` calls. On a kept-alive connection with Nagle's algorithm on, the second small
  write waits for the ACK of the first, which the server delays (~40 ms per message). We
  mount an adapter whose connections buffer everything written during ``request()`` and
  flush it with a single ``sendall`` -- one TLS record for HTTPS -- and keep TCP_NODELAY
  on as well (urllib3's default, kept explicitly).
* **one session**, so consecutive messages of a transaction reuse the TCP/TLS connection.
* **strict answers**: status 200 and ``Content-Type: application/pkixcmp`` or
  :class:`~cmpclient.errors.HTTPStatusError`; a size limit; no redirects (a CMP POST must
  not silently become a GET elsewhere).
* requests' exceptions become :class:`~cmpclient.errors.TransportError` /
  :class:`~cmpclient.errors.TransportTimeout` with a hint.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Mapping

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cmpclient.errors import HTTPStatusError, TransportError, TransportTimeout, UsageError

__all__ = ["HTTPTransport", "CMP_CONTENT_TYPE", "DEFAULT_TIMEOUT", "DEFAULT_MAX_RESPONSE_SIZE"]

log = logging.getLogger("cmpclient.transport")

CMP_CONTENT_TYPE = "application/pkixcmp"
DEFAULT_TIMEOUT = (10.0, 60.0)
DEFAULT_MAX_RESPONSE_SIZE = 10 * 1024 * 1024
_SNIPPET = 200

_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
_SOCKET_OPTIONS = list(HTTPConnection.default_socket_options)
if _NODELAY not in _SOCKET_OPTIONS:
    _SOCKET_OPTIONS.append(_NODELAY)


class _OneWriteMixin:
    """Collect every ``send()`` made while a request is being written; flush once.

    urllib3's ``request()`` writes the head (``endheaders``) and then each body chunk
    separately; buffering them turns a request into a single ``sendall``.
    """

    _pending: list[bytes] | None = None

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any) -> None:  # type: ignore[override]
        self._pending = []
        try:
            super().request(method, url, body=body, headers=headers, **kw)  # type: ignore[misc]
            data = b"".join(self._pending)
        finally:
            self._pending = None
        if data:
            super().send(data)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        if self._pending is not None:
            if hasattr(data, "read"):
                # A file-like body cannot be joined; write what we have, then stream it.
                pending, self._pending = self._pending, None
                try:
                    if pending:
                        super().send(b"".join(pending))  # type: ignore[misc]
                    super().send(data)  # type: ignore[misc]
                finally:
                    self._pending = []
                return
            self._pending.append(bytes(data))
            return
        super().send(data)  # type: ignore[misc]


class _OneWriteHTTPConnection(_OneWriteMixin, HTTPConnection):
    default_socket_options = _SOCKET_OPTIONS


class _OneWriteHTTPSConnection(_OneWriteMixin, HTTPSConnection):
    default_socket_options = _SOCKET_OPTIONS


class _OneWriteHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _OneWriteHTTPConnection


class _OneWriteHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _OneWriteHTTPSConnection


_POOL_CLASSES = {"http": _OneWriteHTTPConnectionPool, "https": _OneWriteHTTPSConnectionPool}


class _OneWriteAdapter(HTTPAdapter):
    """A requests adapter whose pools (direct and via HTTP proxies) use one-write connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("socket_options", _SOCKET_OPTIONS)
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def close(self) -> None:
        # urllib3 2 no longer closes pools when a PoolManager is cleared (sockets would
        # stay open until garbage collection); close them so the server sees the end now.
        managers = [getattr(self, "poolmanager", None), *getattr(self, "proxy_manager", {}).values()]
        for manager in managers:
            if manager is None:
                continue
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _snippet(body: bytes) -> str:
    head = body[:_SNIPPET]
    if not head:
        return "(empty body)"
    text = head.decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if printable >= 0.9 * len(text):
        shown = " ".join(text.split())
    else:
        shown = head.hex()
    more = "..." if len(body) > _SNIPPET else ""
    return f"{shown}{more}"


def _status_hint(status: int, url: str, location: str | None) -> str:
    if status == 404:
        return "unknown CMP alias? check the URL path /ejbca/publicweb/cmp/<alias>"
    if status in (301, 302, 303, 307, 308):
        return f"the server redirects to {location or '(no Location)'}; use the final URL directly"
    if status == 400:
        return "the server could not use the request: check the alias' configuration and the message"
    if status in (401, 403):
        return "access denied: check the TLS client certificate (client_cert) and the CA's authorization"
    if status == 405:
        return "the server does not accept POST at this URL; check the path"
    if status in (413, 414):
        return "the request is too large for the server"
    if 500 <= status < 600:
        return "server-side error; look in the CA's log"
    return "the server did not answer with a CMP message"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, its args that are exceptions, and its cause/context chain."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for nxt in (getattr(e, "reason", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


class HTTPTransport:
    """POST DER PKIMessages to a CMP HTTP(S) endpoint and return the DER answers.

    :param url: the full endpoint URL, e.g. ``https://ca/ejbca/publicweb/cmp/<alias>``.
    :param timeout: ``(connect, read)`` seconds, or one number for both.
    :param verify: ``True`` (system CAs), a path to a CA bundle file or directory, or
        ``False`` -- which disables TLS server verification and logs a warning.
    :param client_cert: ``(cert_path, key_path)`` for TLS client authentication.
    :param trust_env: honour ``HTTP(S)_PROXY``/``NO_PROXY`` (and requests' other
        environment settings); on by default like openssl's ``-proxy``/``-no_proxy``.
    :param proxies: explicit proxies mapping, as for requests.
    :param lenient_content_type: accept a 200 answer whose Content-Type is missing or
        not ``application/pkixcmp``, logging a warning (named leniency, off by default).
    :param max_response_size: refuse larger answers (TransportError).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        client_cert: tuple[str, str] | None = None,
        trust_env: bool = True,
        proxies: Mapping[str, str] | None = None,
        lenient_content_type: bool = False,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise UsageError(f"not an HTTP(S) URL: {url!r}")
        if verify is False:
            log.warning("TLS server certificate verification is OFF for %s (verify=False)", url)
        elif not (verify is True or isinstance(verify, str)):
            raise UsageError("verify must be True, False or a path to a CA bundle")
        self.url = url
        self.timeout: tuple[float, float] = (
            (float(timeout[0]), float(timeout[1])) if isinstance(timeout, tuple) else (float(timeout), float(timeout))
        )
        self.verify = verify
        self.lenient_content_type = lenient_content_type
        self.max_response_size = max_response_size
        self._session = requests.Session()
        self._session.trust_env = trust_env
        if proxies:
            self._session.proxies.update(proxies)
        if client_cert is not None:
            self._session.cert = tuple(client_cert)  # type: ignore[assignment]
        adapter = _OneWriteAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._headers = {
            "Content-Type": CMP_CONTENT_TYPE,
            "Accept": CMP_CONTENT_TYPE,
            "Cache-Control": "no-cache",
            # DER hardly compresses; identity also rules out decompression bombs.
            "Accept-Encoding": "identity",
            "User-Agent": "cmpclient",
        }
        if headers:
            self._headers.update(headers)

    # -- the exchange ---------------------------------------------------------------

    def send(self, request: bytes) -> bytes:
        """POST one DER PKIMessage; return the DER body of a 200 application/pkixcmp answer."""
        try:
            response = self._session.post(
                self.url,
                data=bytes(request),
                headers=self._headers,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.RequestException as exc:
            raise self._map_exception(exc) from exc
        try:
            body = self._read_body(response)
        finally:
            response.close()
        self._check(response, body)
        return body

    def _read_body(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_response_size:
            raise TransportError(
                f"HTTP answer of {declared} bytes from {self.url} exceeds the limit of {self.max_response_size} bytes",
                hint="raise the response size limit if this is really expected",
            )
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                total += len(chunk)
                if total > self.max_response_size:
                    raise TransportError(
                        f"HTTP answer from {self.url} exceeds the limit of {self.max_response_size} bytes",
                        hint="raise the response size limit if this is really expected",
                    )
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise self._map_exception(exc) from exc
        return b"".join(chunks)

    def _check(self, response: requests.Response, body: bytes) -> None:
        status = response.status_code
        content_type = response.headers.get("Content-Type")
        if status != 200:
            raise HTTPStatusError(
                f"HTTP {status} {response.reason or ''}".rstrip()
                + f" from {self.url} (Content-Type: {content_type or 'none'}); body: {_snippet(body)}",
                status=status,
                content_type=content_type,
                body=body,
                hint=_status_hint(status, self.url, response.headers.get("Location")),
            )
        if _media_type(content_type) != CMP_CONTENT_TYPE:
            what = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
            if self.lenient_content_type:
                log.warning("accepting HTTP answer from %s with %s (lenient_content_type)", self.url, what)
            else:
                raise HTTPStatusError(
                    f"HTTP 200 from {self.url} with {what}, expected {CMP_CONTENT_TYPE}; body: {_snippet(body)}",
                    status=status,
                    content_type=content_type,
                    body=body,
                    hint="this is not a CMP endpoint, or a proxy/portal answered; "
                    "lenient_content_type accepts such answers",
                )
        if not body:
            raise TransportError(f"HTTP 200 from {self.url} with an empty body", hint="the server sent no CMP message")

    def _map_exception(self, exc: requests.exceptions.RequestException) -> TransportError:
        url = self.url
        chain = _causes(exc)
        text = " ".join(str(e) for e in chain)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return TransportTimeout(f"timed out connecting to {url} after {self.timeout[0]:g} s")
        if isinstance(exc, requests.exceptions.ReadTimeout) or any(
            isinstance(e, (urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError)) for e in chain
        ):
            return TransportTimeout(f"no answer from {url} within {self.timeout[1]:g} s")
        if isinstance(exc, requests.exceptions.SSLError):
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                return TransportError(
                    f"TLS certificate verification failed for {url}: {exc}",
                    hint="trust the server's TLS CA with --tls-ca FILE (library: verify=CA file; --trusted is only for "
                    "CMP message signatures); "
                    "check that the host name matches the certificate",
                )
            return TransportError(f"TLS handshake with {url} failed: {exc}", hint="check the TLS options and client certificate")
        if isinstance(exc, requests.exceptions.ProxyError):
            return TransportError(f"proxy error for {url}: {exc}", hint="check HTTP(S)_PROXY / NO_PROXY")
        if isinstance(exc, requests.exceptions.ConnectionError):
            if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
                return TransportError(f"connection refused by {url}", hint="is the CA running and listening on that port?")
            if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo failed" in text:
                return TransportError(f"cannot resolve the host of {url}", hint="check the host name in the URL")
            return TransportError(f"connection to {url} failed: {exc}")
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
            return TransportError(f"invalid URL {url!r}: {exc}", hint="use http(s)://host[:port]/path")
        return TransportError(f"HTTP request to {url} failed: {exc}")

    # -- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> "HTTPTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HTTPTransport({self.url!r})"
