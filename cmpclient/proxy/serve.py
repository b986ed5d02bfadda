"""Serving the CMP proxy: HTTP (threaded WSGI) and, optionally, CMP over TCP.

The proxy mostly waits on the upstream, so threads serve it well (unlike the CPU-bound
test CA). The pieces are the test CA's: :class:`~cmpclient.testca.serve.ThreadingWSGIServer`
(TCP_NODELAY, a per-connection ``client_timeout`` against slow clients) and
:class:`~cmpclient.testca.tcp.TCPListener` (EJBCA's TCP framing; every TCP request uses the
rules and upstream of ``tcp_alias``; a request the proxy cannot answer closes the
connection).
"""

from __future__ import annotations

from typing import Any

from cmpclient.proxy.core import CMP_CONTENT_TYPE, Proxy
from cmpclient.proxy.wsgi import make_app
from cmpclient.testca.serve import ThreadedFront, ThreadingWSGIServer
from cmpclient.testca.tcp import TCPListener, bind_socket

__all__ = ["ProxyServer", "split_host_port", "LISTEN_LINE_PREFIX"]

LISTEN_LINE_PREFIX = "cmpclient proxy: listening on "


def split_host_port(text: str, what: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{what} must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class _TCPFront:
    """What :class:`TCPListener` expects of a CA, backed by the proxy."""

    def __init__(self, proxy: Proxy, alias: str) -> None:
        self._proxy = proxy
        self.tcp_alias = alias

    def alias_exists(self, alias: str) -> bool:
        return self._proxy.alias_exists(alias)

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]:
        status, body, content_type = self._proxy.handle(alias, der)
        if content_type != CMP_CONTENT_TYPE:
            return 500, body  # not a CMP answer: the listener closes the connection
        return status, body


class ProxyServer(ThreadedFront):
    """The proxy's HTTP listener (and a TCP one when ``tcp_port`` is not None), in threads."""

    thread_name = "cmp-proxy"

    def __init__(
        self,
        proxy: Proxy,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tcp_host: str | None = None,
        tcp_port: int | None = None,
    ) -> None:
        config = proxy.config
        self.proxy = proxy
        self.host = host
        self.httpd = ThreadingWSGIServer(
            bind_socket(host, port), make_app(proxy, max_body_size=config.max_body_size), client_timeout=config.client_timeout
        )
        self.tcp: TCPListener | None = None
        if tcp_port is not None:
            self.tcp = TCPListener(
                _TCPFront(proxy, config.tcp_alias), tcp_host or host, tcp_port,
                max_frame=config.max_body_size, timeout=config.client_timeout,
            )
        self._thread = None

    @property
    def tcp_url(self) -> str | None:
        if self.tcp is None:
            return None
        host, port = self.tcp.address
        return f"tcp://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self, ready_timeout: float = 10.0) -> "ProxyServer":
        """Serve in daemon threads; returns once the HTTP accept loop runs."""
        self.ready_timeout = ready_timeout
        return super().start()  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Stop listening, then close the proxy's upstream connections."""
        super().stop()
        self.proxy.close()

    def describe(self) -> str:
        lines = [f"{LISTEN_LINE_PREFIX}{self.base_url}"]
        if self.tcp_url:
            lines.append(f"cmpclient proxy: CMP over TCP on {self.tcp_url} (alias {self.proxy.config.tcp_alias})")
        config = self.proxy.config
        from cmpclient.transport import redact_url

        for name, policy in sorted(config.aliases.items()):
            lines.append(f"cmpclient proxy: alias {name} -> {redact_url(policy.upstream)} ({policy.describe()})")
        if config.default_upstream:
            lines.append(f"cmpclient proxy: other aliases -> {redact_url(config.default_upstream)}"
                         f"{'<alias>' if config.default_upstream.endswith('/') else ''} (no checks)")
        return "\n".join(lines)


def open_proxy(config: Any, **kw: Any) -> Proxy:
    """A :class:`Proxy` with the production upstream for ``config``."""
    from cmpclient.proxy.upstream import Upstream

    def resolve(alias: str) -> str:
        policy = config.policy(alias)
        if policy is None:  # pragma: no cover - handle() answers 404 first
            raise KeyError(alias)
        return policy.upstream

    upstream = Upstream(resolve, timeout=config.upstream_timeout, verify=config.upstream_verify, hold=config.upstream_hold)
    return Proxy(config, upstream.send, on_close=upstream.close, **kw)
