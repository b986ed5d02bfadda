"""CMP over HTTP(S) (RFC 6712 / RFC 9811) on the standard library's ``http.client``.

Why not ``requests``: importing requests + urllib3 + charset_normalizer + idna costs about
100 ms of a cold ``cmpclient crmf`` (issue #5's budget is 150 ms for the whole command);
``http.client`` costs ~10 ms and ``ssl`` is imported only for ``https://``. What this
transport does beyond a plain POST:

* **one write per request.** ``http.client`` sends the request head and the body with two
  ``send()`` calls. On a kept-alive connection with Nagle's algorithm on, the second small
  write waits for the ACK of the first, which the server delays (~40 ms per message). The
  connection collects everything written during ``request()`` and flushes it with a single
  ``sendall`` -- one TLS record for HTTPS -- and TCP_NODELAY is on as well.
* **kept-alive connections within a transaction**, so its messages (ir, certConf, polling)
  reuse the TCP/TLS connection; :meth:`HTTPTransport.end_transaction` (called by the client
  when a transaction is over) drops them, so the next transaction starts on a new one, as
  with openssl.  A connection the server has closed (or that has unread bytes) is replaced
  before it is used, never after a request was written (a CMP POST is not retried).
* **TLS session resumption**: a new connection to the same endpoint offers the last
  session the server gave (same context, same host), so a transaction's connection costs
  an abbreviated handshake.
* **TLS verification on**: ``verify=True`` uses the system trust store (OpenSSL's default
  paths; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` override it, as for ``openssl``; a non-empty
  ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` replaces it when ``trust_env`` is on), a path
  trusts only that CA file or directory, ``False`` switches it off and logs a warning.
* **proxies**: ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` (any case) when
  ``trust_env`` is on, or an explicit ``proxies`` mapping; ``https://`` goes through a
  ``CONNECT`` tunnel, ``http://`` is sent to the proxy with the absolute URL; ``user:pass@``
  in the proxy URL becomes ``Proxy-Authorization: Basic`` (and in the server URL,
  ``Authorization: Basic``). Only ``http://`` proxies; an IPv6 literal as CONNECT target
  is sent without brackets (Python 3.11's http.client).
* **strict answers**: status 200 and ``Content-Type: application/pkixcmp`` or
  :class:`~cmpclient.errors.HTTPStatusError`; a size limit; no redirects (a CMP POST must
  not silently become a GET elsewhere).
* socket, TLS and HTTP errors become :class:`~cmpclient.errors.TransportError` /
  :class:`~cmpclient.errors.TransportTimeout` with a hint.
"""

from __future__ import annotations

import base64
import copy
import http.client
import logging
import os
import select
import socket
import sys
import threading
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from cmpclient.errors import HTTPStatusError, TransportError, TransportTimeout, UsageError
from cmpclient.transport import CUT_BY_TOTAL_TIMEOUT, TOTAL_TIMEOUT_HINT, bounded, redact_url, watchdog

__all__ = ["HTTPTransport", "CMP_CONTENT_TYPE", "DEFAULT_TIMEOUT", "DEFAULT_MAX_RESPONSE_SIZE", "http_get"]

log = logging.getLogger("cmpclient.transport")

CMP_CONTENT_TYPE = "application/pkixcmp"
DEFAULT_TIMEOUT = (10.0, 60.0)
DEFAULT_MAX_RESPONSE_SIZE = 10 * 1024 * 1024
_SNIPPET = 200
_CHUNK = 65536
_MAX_IDLE = 16


# --- connections -------------------------------------------------------------------------


class _OneWrite:
    """Collect every ``send()`` made while a request is written; ``flush()`` sends it at once."""

    _pending: list[bytes] | None = None

    def send(self, data: Any) -> None:
        if self._pending is not None and not hasattr(data, "read"):
            self._pending.append(bytes(data))
            return
        super().send(data)  # type: ignore[misc]

    def write_request(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> None:
        self._pending = []
        try:
            self.request(method, target, body=body, headers=dict(headers))  # type: ignore[attr-defined]
            data = b"".join(self._pending)
        finally:
            self._pending = None
        self.sock.sendall(data)  # type: ignore[attr-defined]


class _HTTPConnection(_OneWrite, http.client.HTTPConnection):
    pass


def _https_connection_class() -> type:
    # Defined on first use: http.client.HTTPSConnection exists only when ssl imports.
    global _HTTPSConnection
    if _HTTPSConnection is None:
        class _Conn(_OneWrite, http.client.HTTPSConnection):
            #: A TLS session of an earlier connection to the same endpoint, offered for resumption.
            tls_session: Any = None

            def connect(self) -> None:
                # HTTPSConnection.connect with the session passed on: each CMP transaction
                # starts on a new connection, and resumption saves the full handshake.
                http.client.HTTPConnection.connect(self)  # TCP, and the CONNECT tunnel if any
                self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
                    self.sock, server_hostname=self._tunnel_host or self.host, session=self.tls_session)

        _HTTPSConnection = _Conn
    return _HTTPSConnection


_HTTPSConnection: type | None = None


def _env_proxy_for(url: str) -> str | None:
    """The proxy URL the environment names for ``url``, or None.

    ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` (any case; urllib's precedence rules) and
    ``NO_PROXY`` entries: ``*``, a domain (``corp``, ``.corp``: the domain and its
    subdomains), ``host:port``, an IP address or a CIDR block (``10.0.0.0/8``).
    """
    if not any(k.lower().endswith("_proxy") for k in os.environ):
        return None  # the common case: no need to import urllib.request (~10 ms)
    import urllib.request

    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None  # _Endpoint reports the malformed URL or port
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or _no_proxy(parts.hostname or "", port, proxies.get("no", "")):
        return None
    return proxy


def _no_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host:port``."""
    import ipaddress

    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry and address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        name = name.strip("[]").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def _basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode("ascii")
    return f"Basic {token}"


#: Characters left as they are in a URL path (requests' requote_uri set): everything else,
#: spaces and non-ASCII included, is percent-encoded; existing %XX escapes are kept.
_PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"


def _ascii_host(host: str, url: str) -> str:
    try:
        host.encode("ascii")
        return host
    except UnicodeEncodeError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UsageError(f"invalid host name in URL {url!r}: {exc}", hint="check the host name") from exc


class _Endpoint:
    """Where and how to connect for one URL: target host/port, path, proxy, TLS context."""

    def __init__(self, url: str, *, proxy: str | None, verify: bool | str,
                 client_cert: tuple[str, str] | None, trust_env: bool = True) -> None:
        from urllib.parse import quote

        shown = redact_url(url)
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed [IPv6 address
            raise UsageError(f"malformed URL {shown!r}: {exc}", hint="use http(s)://host[:port]/path") from None
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an HTTP(S) URL: {shown!r}", hint="use http(s)://host[:port]/path")
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"invalid port in URL {shown!r}", hint="use http(s)://host[:port]/path") from exc
        self.host = _ascii_host(parts.hostname, shown)
        self.port = port or (443 if self.scheme == "https" else 80)
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        self.path = path + (f"?{quote(parts.query, safe=_PATH_SAFE)}" if parts.query else "")
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = bracketed if port is None else f"{bracketed}:{self.port}"
        self.url = shown
        self.auth_headers: dict[str, str] = {}
        if parts.username is not None:  # http://user:pass@host/ -> Basic auth, never in the target
            self.auth_headers["Authorization"] = _basic_auth(parts.username, parts.password or "")
        self.proxy_host: str | None = None
        self.proxy_port = 0
        self.proxy_headers: dict[str, str] = {}
        if proxy:
            if "://" not in proxy:
                proxy = "http://" + proxy
            px = urlsplit(proxy)
            if px.scheme.lower() != "http" or not px.hostname:
                raise UsageError(f"unsupported proxy {proxy!r}: only http:// proxies are supported",
                                 hint="use http://host:port in HTTP(S)_PROXY (https:// goes through CONNECT)")
            try:
                self.proxy_host, self.proxy_port = _ascii_host(px.hostname, proxy), px.port or 80
            except ValueError as exc:
                raise UsageError(f"invalid port in proxy {proxy!r}") from exc
            if px.username is not None:
                self.proxy_headers["Proxy-Authorization"] = _basic_auth(px.username, px.password or "")
        self.context = self._tls_context(verify, client_cert, trust_env) if self.scheme == "https" else None
        #: The last TLS session the server gave (resumed by the next connection; same context and host).
        self.tls_session: Any = None
        #: The request target: the path, or the absolute URL when talking to a proxy in clear.
        self.target = f"http://{self.authority}{self.path}" if self.proxy_host and self.scheme == "http" else self.path

    def describe_proxy(self) -> str:
        return f"{self.proxy_host}:{self.proxy_port}"

    @staticmethod
    def _tls_context(verify: bool | str, client_cert: tuple[str, str] | None, trust_env: bool) -> Any:
        import ssl

        if verify is True and trust_env:
            # Kept from the requests era: a CA bundle named by these replaces the default store.
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                verify = bundle
        try:
            if isinstance(verify, str):
                # Only this CA file or directory: not the system store as well.
                if os.path.isdir(verify):
                    ctx = ssl.create_default_context(capath=verify)
                else:
                    ctx = ssl.create_default_context(cafile=verify)
            else:
                ctx = ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the TLS CA {verify!r}: {exc}", hint="give a PEM CA file or a hashed CA directory") from exc
        if verify is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            try:
                ctx.load_cert_chain(client_cert[0], client_cert[1])
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"cannot load the TLS client certificate/key: {exc}",
                                 hint="give the PEM certificate and its unencrypted PEM key") from exc
        return ctx

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.auth_headers)
        if self.proxy_host and self.scheme == "http":
            headers.update(self.proxy_headers)
        return headers

    def connect(self, connect_timeout: float, read_timeout: float) -> http.client.HTTPConnection:
        host, port = (self.proxy_host, self.proxy_port) if self.proxy_host else (self.host, self.port)
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = _https_connection_class()(host, port, timeout=connect_timeout, context=self.context)
            conn.tls_session = self.tls_session  # type: ignore[attr-defined]
            if self.proxy_host:
                conn.set_tunnel(self.host, self.port, headers=self.proxy_headers or None)
        else:
            conn = _HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            if self.proxy_host and not (isinstance(exc, OSError) and "Tunnel connection failed" in str(exc)):
                exc.cmpclient_proxy = self.describe_proxy()  # type: ignore[attr-defined]
            raise
        sock = conn.sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not a TCP socket
            pass
        sock.settimeout(read_timeout)
        return conn


def _stale(conn: http.client.HTTPConnection) -> bool:
    """True if a kept-alive connection was closed by the server (or has unexpected bytes)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        poller = select.poll()  # not select(): it fails for descriptors >= 1024
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


# --- answers -----------------------------------------------------------------------------


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
    if status in (405, 501):
        # 501 Not Implemented: a server without POST at all (python -m http.server, a plain
        # file server), not a CMP server failing.
        return "the server does not accept POST at this URL: probably not a CMP endpoint; check the URL and its path"
    if status in (413, 414):
        return "the request is too large for the server"
    if 500 <= status < 600:
        return "server-side error; look in the CA's log"
    return "the server did not answer with a CMP message"


def _read_body(response: http.client.HTTPResponse, url: str, limit: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise TransportError(
            f"HTTP answer of {declared.strip()} bytes from {url} exceeds the limit of {limit} bytes",
            hint="raise the response size limit if this is really expected",
        )
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise TransportError(
                f"HTTP answer from {url} exceeds the limit of {limit} bytes",
                hint="raise the response size limit if this is really expected",
            )
        chunks.append(chunk)
    if declared is not None and declared.strip().isdigit() and total < int(declared) and \
            (response.getheader("Transfer-Encoding") or "").lower() != "chunked":
        # http.client's read(n) returns short data at EOF instead of raising IncompleteRead.
        raise TransportError(
            f"HTTP answer from {url} cut short: {total} of {declared.strip()} bytes",
            hint="the server or a middlebox closed the connection early",
        )
    return b"".join(chunks)


def _map_error(exc: BaseException, url: str, timeout: tuple[float, float], *, connecting: bool,
               total: bool = False) -> TransportError:
    """A socket/TLS/HTTP exception as a TransportError with a hint; ``total``: the
    transaction's total timeout had cut ``timeout``."""
    ssl = sys.modules.get("ssl")  # imported only if TLS was used
    proxy = getattr(exc, "cmpclient_proxy", None)
    if proxy is not None and not (ssl is not None and isinstance(exc, ssl.SSLError)):
        what = "timed out" if isinstance(exc, (socket.timeout, TimeoutError)) else str(exc)
        error = TransportTimeout if isinstance(exc, (socket.timeout, TimeoutError)) else TransportError
        return error(f"proxy error for {url}: cannot reach the proxy {proxy}: {what}",
                     hint="check HTTP(S)_PROXY / NO_PROXY")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        left = CUT_BY_TOTAL_TIMEOUT if total else ""
        hint = TOTAL_TIMEOUT_HINT if total else None
        if connecting:
            return TransportTimeout(f"timed out connecting to {url} after {timeout[0]:g} s{left}", hint=hint)
        return TransportTimeout(f"no answer from {url} within {timeout[1]:g} s{left}", hint=hint)
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(
            f"TLS certificate verification failed for {url}: {exc}",
            hint="trust the server's TLS CA with --tls-ca FILE (library: verify=CA file; --trusted is only for "
            "CMP message signatures); check that the host name matches the certificate",
        )
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return TransportError(f"TLS handshake with {url} failed: {exc}", hint="check the TLS options and client certificate")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"connection refused by {url}", hint="is the CA running and listening on that port?")
    if isinstance(exc, socket.gaierror):
        return TransportError(f"cannot resolve the host of {url}", hint="check the host name in the URL")
    if isinstance(exc, OSError) and "Tunnel connection failed" in str(exc):  # CONNECT refused by the proxy
        return TransportError(f"proxy error for {url}: {exc}", hint="check HTTP(S)_PROXY / NO_PROXY")
    if isinstance(exc, http.client.HTTPException):
        return TransportError(f"bad HTTP answer from {url}: {exc!r}", hint="the server closed the connection or did not speak HTTP/1.1")
    if isinstance(exc, (ConnectionError, OSError)):
        if connecting:
            return TransportError(f"connection to {url} failed: {exc}")
        return TransportError(f"connection to {url} broke: {exc}", hint="the server closed the connection; look in its log")
    return TransportError(f"HTTP request to {url} failed: {exc}")


# --- the transport -----------------------------------------------------------------------


class HTTPTransport:
    """POST DER PKIMessages to a CMP HTTP(S) endpoint and return the DER answers.

    :param url: the full endpoint URL, e.g. ``https://ca/ejbca/publicweb/cmp/<alias>``.
    :param timeout: ``(connect, read)`` seconds, or one number for both.
    :param verify: ``True`` (the system trust store), a path to a CA file or hashed CA
        directory, or ``False`` -- which disables TLS server verification and logs a warning.
    :param client_cert: ``(cert_path, key_path)`` for TLS client authentication.
    :param trust_env: honour ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``; on by default like
        openssl's ``-proxy``/``-no_proxy`` defaults.
    :param proxies: explicit proxies, ``{"http": url, "https": url}``; they win over the environment.
    :param lenient_content_type: accept a 200 answer whose Content-Type is missing or
        not ``application/pkixcmp``, logging a warning (named leniency, off by default).
    :param max_response_size: refuse larger answers (TransportError).
    :param require_keep_alive: openssl's ``-keep_alive 2``: a server that closes the
        connection (``Connection: close``, or HTTP/1.0 without keep-alive) while the
        transaction still has messages to send is an error (TransportError on the next
        :meth:`send` of the transaction) instead of being answered on a new connection.

    Connections are kept alive and reused (up to 16 idle ones) until
    :meth:`end_transaction`; ``send`` may be called from several threads at once, each
    request then uses its own connection.  The idle connections are shared: a server that
    binds a transaction to its connection (openssl's mock) needs one transport per thread,
    as ``cmpclient bench`` does, because another thread may take the connection of a
    transaction that is waiting for its certConf; :meth:`fork` makes such a transport
    without building the TLS context again.
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
        require_keep_alive: bool = False,
    ) -> None:
        shown = redact_url(url)  # for messages: never the password of user:password@host
        if not url.lower().startswith(("http://", "https://")):
            raise UsageError(f"not an HTTP(S) URL: {shown!r}")
        if verify is False:
            log.warning("TLS server certificate verification is OFF for %s (verify=False)", shown)
        elif not (verify is True or isinstance(verify, str)):
            raise UsageError("verify must be True, False or a path to a CA bundle")
        self.url = shown
        self.timeout: tuple[float, float] = (
            (float(timeout[0]), float(timeout[1])) if isinstance(timeout, tuple) else (float(timeout), float(timeout))
        )
        self.verify = verify
        self.lenient_content_type = lenient_content_type
        self.max_response_size = max_response_size
        scheme = url.split("://", 1)[0].lower()
        proxy = (proxies or {}).get(scheme) or (proxies or {}).get("all")
        if proxy is None and trust_env:
            proxy = _env_proxy_for(url)
        self._endpoint = _Endpoint(url, proxy=proxy, verify=verify, client_cert=client_cert, trust_env=trust_env)
        self._idle: list[http.client.HTTPConnection] = []
        self._closed = False
        self._lock = threading.Lock()
        self.require_keep_alive = require_keep_alive
        self._server_closed = False  # the server closed the connection during this transaction
        self._headers = {
            "Content-Type": CMP_CONTENT_TYPE,
            "Accept": CMP_CONTENT_TYPE,
            "Cache-Control": "no-cache",
            # DER hardly compresses; identity also rules out decompression bombs.
            "Accept-Encoding": "identity",
            "User-Agent": "cmpclient",
        }
        self._headers.update(self._endpoint.request_headers())
        if headers:
            self._headers.update(headers)

    # -- the exchange ---------------------------------------------------------------

    def _acquire(self, limits: tuple[float, float], total: bool) -> http.client.HTTPConnection:
        """An idle kept-alive connection that is still usable, or a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if not _stale(conn):
                return conn
            conn.close()
        try:
            return self._endpoint.connect(*limits)
        except UsageError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise _map_error(exc, self.url, limits, connecting=True, total=total) from exc

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def send(self, request: bytes) -> bytes:
        """POST one DER PKIMessage; return the DER body of a 200 application/pkixcmp answer.

        Within a transaction's total timeout (:class:`cmpclient.transport.deadline`) the
        connect and read timeouts are cut to what is left of it."""
        connect_timeout, read_timeout, total = bounded(self.timeout, f"the request to {self.url}")
        limits = (connect_timeout, read_timeout)
        if self.require_keep_alive and self._server_closed:
            self._server_closed = False
            raise TransportError(
                f"keep-alive required, but {self.url} closed the connection before the end of the transaction",
                hint="the server does not keep connections alive: use --keep-alive 1 (keep alive if possible, "
                "the default) or 0")
        conn = self._acquire(limits, total)
        sock = conn.sock  # getresponse() lets go of it when the server closes after answering
        dog = watchdog(sock, f"the exchange with {self.url}")  # a server answering a byte at a time
        try:
            with dog:
                sock.settimeout(read_timeout)  # a kept-alive connection has the timeout of its last use
                conn.write_request("POST", self._endpoint.target, bytes(request), self._headers)  # type: ignore[attr-defined]
                response = conn.getresponse()
                # TLS 1.3 session tickets come before the answer: keep the session for the next connection.
                session = getattr(sock, "session", None)
                if session is not None:
                    self._endpoint.tls_session = session
                body = _read_body(response, self.url, self.max_response_size)
            dog.check()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            dog.check()
            raise _map_error(exc, self.url, limits, connecting=False, total=total) from exc
        except BaseException:
            conn.close()
            dog.check()
            raise
        if response.will_close:
            conn.close()
            self._server_closed = True
        else:
            self._release(conn)
        self._check(response, body)
        return body

    def _check(self, response: http.client.HTTPResponse, body: bytes) -> None:
        status = response.status
        content_type = response.getheader("Content-Type")
        if status != 200:
            raise HTTPStatusError(
                f"HTTP {status} {response.reason or ''}".rstrip()
                + f" from {self.url} (Content-Type: {content_type or 'none'}); body: {_snippet(body)}",
                status=status,
                content_type=content_type,
                body=body,
                hint=_status_hint(status, self.url, response.getheader("Location")),
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

    # -- lifetime -------------------------------------------------------------------

    def fork(self) -> "HTTPTransport":
        """A transport to the same endpoint with connections of its own: it shares the
        settings, the TLS context (built once, which costs tens of milliseconds) and the
        TLS session to resume, not the kept-alive connections."""
        twin = copy.copy(self)
        twin._idle = []
        twin._closed = False
        twin._lock = threading.Lock()
        twin._server_closed = False
        return twin

    def end_transaction(self) -> None:
        """A CMP transaction is over: close the kept-alive connections instead of
        carrying them into the next transaction.

        openssl's client keeps a connection only while a transaction may need more
        round trips, and servers act on that: openssl's mock server closes the
        connection when a transaction ends even though its answer said keep-alive.  A
        connection reused for the next transaction would race that close -- the request
        written just before it arrives is lost (connection reset), and a POST is never
        sent twice.  Within a transaction (ir then certConf, polling) the connection is
        still reused.
        """
        with self._lock:
            idle, self._idle = self._idle, []
            self._server_closed = False
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Close the kept-alive connection (the server sees the end at once)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> "HTTPTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HTTPTransport({self.url!r})"


def http_get(url: str, *, timeout: float = 10.0, max_size: int = DEFAULT_MAX_RESPONSE_SIZE,
             verify: bool | str = True, trust_env: bool = True, user_agent: str = "cmpclient") -> bytes:
    """GET ``url`` (a CRL, a certificate): the body of a 200 answer, at most ``max_size`` bytes.

    No redirects; errors are :class:`~cmpclient.errors.TransportError` /
    :class:`~cmpclient.errors.TransportTimeout`.
    """
    proxy = _env_proxy_for(url) if trust_env else None
    endpoint = _Endpoint(url, proxy=proxy, verify=verify, client_cert=None, trust_env=trust_env)
    url = endpoint.url  # messages below: without a password
    if verify is False:
        log.warning("TLS server certificate verification is OFF for %s (verify=False)", url)
    limits = (float(timeout), float(timeout))
    try:
        conn = endpoint.connect(*limits)
    except (OSError, http.client.HTTPException) as exc:
        raise _map_error(exc, url, limits, connecting=True) from exc
    try:
        headers = {"Accept-Encoding": "identity", "User-Agent": user_agent, "Connection": "close",
                   **endpoint.request_headers()}
        conn.write_request("GET", endpoint.target, None, headers)  # type: ignore[attr-defined]
        response = conn.getresponse()
        if response.status != 200:
            raise TransportError(f"HTTP {response.status} from {url}")
        return _read_body(response, url, max_size)
    except (OSError, http.client.HTTPException) as exc:
        raise _map_error(exc, url, limits, connecting=False) from exc
    finally:
        conn.close()
