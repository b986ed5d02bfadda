"""``cmpclient proxy``: run a CMP proxy in front of a CA (see :mod:`cmpclient.proxy`)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

DEFAULT_LISTEN = "127.0.0.1:8081"


def _read_secret(source: str, what: str) -> bytes:
    from cmpclient.cli.secrets import read_secret

    value = read_secret(source, what=what, required=True, stdin_is_tty=False)
    assert value is not None
    return value


@click.command("proxy")
@click.option("--listen", metavar="HOST:PORT", default=None,
              help=f"HTTP address to listen on (port 0 picks a free one). [default: the config's listen, else {DEFAULT_LISTEN}]")
@click.option("--upstream", metavar="URL", default=None,
              help="Default upstream: every alias not in --config goes there, unchecked. A URL ending in '/' "
              "gets the alias appended (http://ca:8080/ejbca/publicweb/cmp/ + ra); otherwise all aliases go to the URL as is. "
              "A user:password@ in it is refused here (argv is public): put such an upstream in --config.")
@click.option("--config", "config_path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Proxy configuration (TOML): per alias upstream, mac_keys, issuer_chain, crl; see the README.")
@click.option("--tcp-listen", metavar="HOST:PORT", default=None, help="Also accept CMP over TCP here (requests use alias tcp_alias).")
@click.option("--upstream-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Seconds to connect to and wait for the upstream; a timeout is answered systemUnavail. [default: 30]")
def proxy(listen: str | None, upstream: str | None, config_path: Path | None, tcp_listen: str | None,
          upstream_timeout: float | None) -> None:
    """Run a CMP proxy: clients post to http://HOST:PORT/ejbca/publicweb/cmp/<alias> as to
    the CA; the proxy checks each request as the alias says (MAC with a KeyID's secret,
    signature against an issuer chain, signer not on the CRL), forwards it, and returns
    the CA's answer unchanged. Refused requests never reach the CA. Over HTTP(S) a
    transaction keeps one upstream connection until it ends (ir, certConf, polling) or its
    client stays silent for upstream_hold seconds (config; default 10; after a pollRep
    its checkAfter is added), as openssl's client does.

    Prints 'cmpclient proxy: listening on http://HOST:PORT' once it accepts connections;
    stops on SIGTERM or Ctrl-C. MAC secrets are sources (env:VAR, file:PATH), never literals.
    """
    from cmpclient.cli.secrets import refuse_url_password
    from cmpclient.errors import CMPClientError
    from cmpclient.proxy.config import load_config
    from cmpclient.proxy.serve import ProxyServer, open_proxy, split_host_port

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s", stream=sys.stderr)
    if config_path is None and upstream is None:
        raise click.UsageError("give --upstream URL, --config FILE, or both")
    try:
        refuse_url_password(upstream, "--upstream", "upstream")
        config = load_config(config_path, read_secret=_read_secret, upstream=upstream)
    except CMPClientError as exc:
        err = click.ClickException(exc.diagnostics())
        err.exit_code = int(exc.exit_code)
        raise err from None
    if upstream_timeout is not None:
        config = dataclasses.replace(config, upstream_timeout=upstream_timeout)
    try:
        host, port = split_host_port(listen or config.listen or DEFAULT_LISTEN, "--listen")
        tcp = tcp_listen or config.tcp_listen
        tcp_host, tcp_port = split_host_port(tcp, "--tcp-listen") if tcp else (None, None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        server = ProxyServer(open_proxy(config), host=host, port=port, tcp_host=tcp_host, tcp_port=tcp_port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}: {exc.strerror or exc}") from None
    sys.exit(_run(server))


def _run(server: Any) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        click.echo(server.describe())
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        server.stop()
    name = signal.Signals(received[0]).name if received else "request"
    click.echo(f"cmpclient proxy: stopped ({name})")
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m cmpclient.cli.proxy_cmd
    proxy()
