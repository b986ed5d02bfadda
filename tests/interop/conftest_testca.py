"""The ``testca_server`` fixture: the real test CA served in-process on 127.0.0.1.

Imported by ``tests/interop/conftest.py`` and ``tests/integration/conftest.py`` (it is a
plain module, not a conftest, so both directories share one implementation).

* ``testca_server`` (session) -> :class:`RunningTestCA` with the default configuration.
* ``testca_factory`` (session) -> ``testca_factory(name, extra_toml="", serialize=True) -> RunningTestCA``:
  another CA (own data directory) whose configuration is the embedded default plus
  ``extra_toml`` (e.g. an alias with a polling fault); cached per ``name``.

The WSGI app (:func:`cmpclient.testca.wsgi.make_app`) runs under a threading wsgiref
server and the CMP-over-TCP listener beside it (:class:`cmpclient.testca.serve.BackgroundServer`);
readiness is polled, never slept for. Everything stops at the end of the session.

:class:`RunningTestCA`::

    .url(alias)          http://127.0.0.1:PORT/ejbca/publicweb/cmp/<alias>
    .short_url(alias)    http://127.0.0.1:PORT/<alias>
    .server_arg(alias)   127.0.0.1:PORT/ejbca/publicweb/cmp/<alias> (openssl -server)
    .tcp_url             tcp://127.0.0.1:PORT (alias "tcp")
    .port / .tcp_port / .base_url
    .ca                  the TestCA object (its .store for assertions)
    .data_dir            the CA's data directory
    .ca_cert(name="ManagementCA") / .root_cert  paths of CA certificates (PEM)
    .ca_chain            PEM bundle: issuing CA then root (for -untrusted / -trusted)
    .ra_admin_cert / .ra_admin_key   the generated RA administrator (alias ra-sig)
    .client_cert / .client_key       the generated client-mode certificate (if any)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

__all__ = ["RunningTestCA", "start_testca", "testca_server", "testca_factory"]


def _first(paths: list[Path], what: str) -> Path:
    for p in paths:
        if p.is_file():
            return p
    raise FileNotFoundError(f"test CA data directory has no {what} (looked for {', '.join(map(str, paths))})")


class RunningTestCA:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, ca: Any, server: Any, data_dir: Path):
        self.ca = ca
        self.server = server
        self.data_dir = Path(data_dir)

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tcp_port(self) -> int | None:
        return self.server.tcp_port

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def url(self, alias: str) -> str:
        return self.server.url(alias)

    def short_url(self, alias: str) -> str:
        return f"{self.base_url}/{alias}"

    def server_arg(self, alias: str) -> str:
        return self.url(alias).removeprefix("http://")

    @property
    def tcp_url(self) -> str | None:
        return self.server.tcp_url

    # -- material --------------------------------------------------------------------------
    def ca_cert(self, name: str = "ManagementCA") -> Path:
        return _first([self.data_dir / "ca" / f"{name}.pem", self.data_dir / "ca" / f"{name}.crt.pem"], f"certificate of CA {name}")

    @property
    def root_cert(self) -> Path:
        return self.ca_cert("RootCA")

    @property
    def ca_chain(self) -> Path:
        """Issuing CA (ManagementCA) then RootCA, one PEM bundle (written on first use)."""
        path = self.data_dir.parent / f"{self.data_dir.name}-chain-ManagementCA.pem"  # beside, not inside, the CA's files
        if not path.is_file():
            path.write_bytes(self.ca_cert().read_bytes() + self.root_cert.read_bytes())
        return path

    def _pair(self, sub: str) -> tuple[Path, Path]:
        d = self.data_dir / sub
        keys = sorted(d.glob("*key*.pem")) if d.is_dir() else []
        certs = sorted(p for p in d.glob("*.pem") if "key" not in p.name and "chain" not in p.name) if d.is_dir() else []
        if not keys or not certs:
            raise FileNotFoundError(f"no certificate/key pair under {d}: {sorted(p.name for p in d.glob('*')) if d.is_dir() else 'missing'}")
        return certs[0], keys[0]

    @property
    def ra_admin_cert(self) -> Path:
        return self._pair("ra")[0]

    @property
    def ra_admin_key(self) -> Path:
        return self._pair("ra")[1]

    @property
    def client_cert(self) -> Path:
        return self._pair("client")[0]

    @property
    def client_key(self) -> Path:
        return self._pair("client")[1]

    def stop(self) -> None:
        self.server.stop()
        self.ca.close()

    def __repr__(self) -> str:
        return f"RunningTestCA({self.base_url}, tcp={self.tcp_url}, data_dir={self.data_dir})"


def start_testca(data_dir: Path, *, extra_toml: str = "", config_path: Path | None = None, serialize: bool = True) -> RunningTestCA:
    """Open a TestCA in ``data_dir`` and serve it (HTTP + TCP) on free 127.0.0.1 ports."""
    from cmpclient.testca import TestCA
    from cmpclient.testca.serve import BackgroundServer

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if extra_toml and config_path is None:
        from cmpclient.testca.config import DEFAULT_CONFIG_TOML

        config_path = data_dir.parent / f"{data_dir.name}.toml"
        config_path.write_text(DEFAULT_CONFIG_TOML + "\n" + extra_toml)
    ca = TestCA.open(config_path, data_dir)
    try:
        server = BackgroundServer(ca, host="127.0.0.1", port=0, tcp_port=0, serialize=serialize).start()
    except BaseException:
        ca.close()
        raise
    return RunningTestCA(ca, server, data_dir)


@pytest.fixture(scope="session")
def testca_server(tmp_path_factory: pytest.TempPathFactory):
    """The real test CA, default configuration, served in-process for the whole session."""
    running = start_testca(tmp_path_factory.mktemp("testca") / "data")
    try:
        yield running
    finally:
        running.stop()


def ra_hmac_alias(name: str, *extra: str) -> str:
    """TOML of an RA-mode alias taking the HMAC secret "password", naming end entities by
    the DN's CN and issuing from ManagementCA with PBM-protected answers, for
    ``testca_factory(name, extra_toml)``; ``extra`` lines (faults, strict, ...) follow."""
    lines = [f"[alias.{name}]", 'mode = "ra"', 'auth_modules = ["HMAC"]', 'hmac_secret = "password"',
             'ra_name_generation = { scheme = "DN", parameter = "CN" }', 'ca = "ManagementCA"',
             'cert_profile = "CMP_CERT"', 'ee_profile = "CMP_ENTITY"', 'response_protection = "pbe"', *extra]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def testca_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., RunningTestCA]:
    """``testca_factory(name, extra_toml="", serialize=True)``: a separately configured CA,
    one per name (``serialize=False`` lets server threads call ``ca.handle`` concurrently)."""
    started: dict[str, RunningTestCA] = {}

    def get(name: str, extra_toml: str = "", *, serialize: bool = True) -> RunningTestCA:
        if name not in started:
            started[name] = start_testca(
                tmp_path_factory.mktemp(f"testca-{name}") / "data", extra_toml=extra_toml, serialize=serialize
            )
        return started[name]

    yield get
    for running in started.values():
        running.stop()
