"""``openssl cmp`` (3.0.x) client -> OUR CMP proxy -> our test CA / the openssl mock server.

The proxy runs in-process (:class:`cmpclient.proxy.serve.ProxyServer` on a free port) with
the production upstream wrapped by a recorder. Each pass-through test asserts that
openssl accepted the exchange AND that every response openssl received (``-rspout``) is
byte for byte what the upstream answered the proxy. Each refusal asserts openssl got the
proxy's unprotected error (``-unprotected_errors``) and the upstream saw nothing.
Secrets reach openssl and the proxy through the environment (``env:VAR``), never argv.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from openssl_peer import PBM_REF, PBM_SECRET, PBM_SECRET_ENV, run_openssl_client  # type: ignore[import-not-found]
from test_testca_openssl import CA_DN, assert_accepted, cert_of, genkey  # type: ignore[import-not-found]

from cmpclient.cli.secrets import read_secret
from cmpclient.proxy import Proxy, parse_config
from cmpclient.proxy.serve import ProxyServer
from cmpclient.proxy.upstream import Upstream

pytestmark = pytest.mark.interop

RA_SECRET_ENV = "PROXY_RA_SECRET"
ENV = {RA_SECRET_ENV: "password", PBM_SECRET_ENV: PBM_SECRET}


class RunningProxy:
    """A proxy in front of the given upstreams, recording (alias, request, answer)."""

    def __init__(self, toml: str, base_dir: Path) -> None:
        saved = {k: os.environ.get(k) for k in ENV}
        os.environ.update(ENV)
        try:
            self.config = parse_config(toml, base_dir=base_dir, read_secret=lambda s, w: read_secret(s, what=w, stdin_is_tty=False))
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        self.upstream = Upstream(lambda a: self.config.policy(a).upstream, timeout=30, hold=self.config.upstream_hold)
        self.seen: list[tuple[str, bytes, bytes]] = []
        self.forwarding = 0  # requests waiting for the upstream's answer now
        self.transports_made = 0
        self._lock = threading.Lock()
        make = self.upstream._new_transport

        def counted(url: str) -> Any:
            transport = make(url)
            with self._lock:
                self.transports_made += 1
            return transport

        self.upstream._new_transport = counted  # type: ignore[method-assign]
        self.server = ProxyServer(Proxy(self.config, self._send), host="127.0.0.1", port=0).start()

    def _send(self, alias: str, der: bytes) -> bytes:
        with self._lock:
            self.forwarding += 1
        try:
            answer = self.upstream.send(alias, der)
        finally:
            with self._lock:
                self.forwarding -= 1
        self.seen.append((alias, der, answer))
        return answer

    def url(self, alias: str) -> str:
        return self.server.url(alias)

    def stop(self) -> None:
        self.server.stop()
        self.upstream.close()


@pytest.fixture
def running_proxy(tmp_path: Path):
    started: list[RunningProxy] = []

    def start(toml: str) -> RunningProxy:
        p = RunningProxy(toml, tmp_path)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def parse_body(der: bytes) -> str:
    from cmpclient.message.peek import peek

    return str(peek(der).body_type)


def rspout(tmp: Path, name: str, n: int) -> tuple[str, list[Path]]:
    files = [tmp / f"{name}-rsp{i}.der" for i in range(n)]
    return ",".join(map(str, files)), files


def assert_identical(files: list[Path], seen: list[tuple[str, bytes, bytes]]) -> None:
    """What openssl received == what the upstream answered, message by message."""
    got = [f.read_bytes() for f in files if f.is_file()]
    assert got == [answer for _, _, answer in seen[-len(got):]] and len(got) == len(files)


def make_crl(ca_key: Path, ca_cert: Path, out: Path, revoked: tuple[int, ...] = ()) -> Path:
    key = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    issuer = cert_of(ca_cert)
    now = dt.datetime.now(dt.timezone.utc)
    b = x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(now - dt.timedelta(minutes=1))
    b = b.next_update(now + dt.timedelta(days=1))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    out.write_bytes(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- -> our test CA


def proxy_to_testca(running_proxy, testca, crl: Path) -> RunningProxy:
    return running_proxy(f"""
upstream = "{testca.base_url}/ejbca/publicweb/cmp/"
[alias.ra]
mac_keys = ["ManagementCA:env:{RA_SECRET_ENV}"]
[alias.lwcmp]
mac_keys = ["ManagementCA:env:{RA_SECRET_ENV}"]
issuer_chain = "{testca.ca_chain}"
crl = "{crl}"
crl_cache_ttl = 0
""")


def pbm_via(proxy: RunningProxy, alias: str = "ra", **kw: Any) -> dict[str, Any]:
    opts = dict(server=proxy.url(alias), ref="ManagementCA", secret=f"env:{RA_SECRET_ENV}", recipient=CA_DN, env=ENV)
    opts.update(kw)
    return opts


def test_openssl_ir_certconf_rr_via_proxy_to_testca(running_proxy, testca_server, tmp_path: Path) -> None:
    ca = testca_server
    proxy = proxy_to_testca(running_proxy, ca, make_crl(ca.data_dir / "ca" / "ManagementCA.key.pem", ca.ca_cert(), tmp_path / "m.crl"))
    key = genkey(tmp_path / "p.key.pem")
    certout = tmp_path / "p.crt.pem"
    out, files = rspout(tmp_path, "ir", 2)
    res = run_openssl_client(cmd="ir", newkey=key, subject="/CN=proxied-ir/UID=proxied-ir", certout=certout, rspout=out,
                             **pbm_via(proxy))
    assert_accepted(res, certout, key)
    assert "sending CERTCONF" in res.output and "received PKICONF" in res.output, res.describe()
    assert [a for a, _, _ in proxy.seen] == ["ra", "ra"]
    assert_identical(files, proxy.seen)

    out, files = rspout(tmp_path, "rr", 1)
    res = run_openssl_client(cmd="rr", oldcert=certout, revreason=4, rspout=out, **pbm_via(proxy))
    assert res.returncode == 0 and "received RP" in res.output, res.describe()
    assert_identical(files, proxy.seen)
    rec = [r for r in ca.ca.store.all_certificates() if r.serial == cert_of(certout).serial_number]
    assert rec and rec[0].revoked


def test_openssl_kur_signed_via_proxy_with_crl_then_revoked(running_proxy, testca_server, tmp_path: Path) -> None:
    ca = testca_server
    ca_key = ca.data_dir / "ca" / "ManagementCA.key.pem"
    crl = make_crl(ca_key, ca.ca_cert(), tmp_path / "m.crl")
    proxy = proxy_to_testca(running_proxy, ca, crl)
    key = genkey(tmp_path / "k.key.pem")
    certout = tmp_path / "k.crt.pem"
    res = run_openssl_client(cmd="ir", newkey=key, subject="/CN=proxied-kur", certout=certout, **pbm_via(proxy, "lwcmp"))
    assert_accepted(res, certout, key)
    sig = dict(server=proxy.url("lwcmp"), cert=certout, key=key, trusted=ca.root_cert, untrusted=ca.ca_chain, recipient=CA_DN)

    newkey = genkey(tmp_path / "k2.key.pem")
    newcert = tmp_path / "k2.crt.pem"
    out, files = rspout(tmp_path, "kur", 2)
    res = run_openssl_client(cmd="kur", oldcert=certout, newkey=newkey, certout=newcert, rspout=out, **sig)
    assert_accepted(res, newcert, newkey)
    assert "sending KUR" in res.output and "received KUP" in res.output, res.describe()
    assert_identical(files, proxy.seen)

    # The signer (the new certificate) is now on the CRL: the proxy refuses, the CA sees nothing.
    make_crl(ca_key, ca.ca_cert(), crl, revoked=(cert_of(newcert).serial_number,))
    before = len(proxy.seen)
    sig.update(cert=newcert, key=newkey)
    res = run_openssl_client(cmd="kur", oldcert=newcert, newkey=genkey(tmp_path / "k3.key.pem"), certout=tmp_path / "k3.crt.pem",
                             unprotected_errors=True, **sig)
    assert res.returncode != 0 and "received ERROR" in res.output and "badRequest" in res.output, res.describe()
    assert "signer revoked" in res.output, res.describe()
    assert len(proxy.seen) == before


def test_openssl_wrong_secret_refused_by_the_proxy(running_proxy, testca_server, tmp_path: Path) -> None:
    ca = testca_server
    proxy = proxy_to_testca(running_proxy, ca, make_crl(ca.data_dir / "ca" / "ManagementCA.key.pem", ca.ca_cert(), tmp_path / "m.crl"))
    key = genkey(tmp_path / "w.key.pem")
    res = run_openssl_client(cmd="ir", newkey=key, subject="/CN=proxied-bad", certout=tmp_path / "w.crt.pem",
                             unprotected_errors=True, **pbm_via(proxy, env={RA_SECRET_ENV: "not-the-password"}))
    assert res.returncode != 0 and "received ERROR" in res.output, res.describe()
    assert "badRequest" in res.output and "MAC verification failed" in res.output, res.describe()
    assert proxy.seen == []


# --------------------------------------------------------------------------- -> the openssl mock server


def test_openssl_ir_certconf_rr_via_proxy_to_openssl_mock(running_proxy, mock_server_pbm, pki, tmp_path: Path) -> None:
    proxy = running_proxy(f"""
[alias.mock]
upstream = "{mock_server_pbm.url}"
mac_keys = ["{PBM_REF}:env:{PBM_SECRET_ENV}"]
""")
    common = dict(server=proxy.url("mock"), ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}", trusted=pki.trusted, env=ENV)
    certout = tmp_path / "m.crt.pem"
    out, files = rspout(tmp_path, "mir", 2)
    res = run_openssl_client(cmd="ir", newkey=pki.rsp_key("ec"), subject="/CN=mock-proxied", certout=certout, rspout=out, **common)
    assert res.returncode == 0 and "received PKICONF" in res.output, res.describe() + mock_server_pbm.describe()
    assert_identical(files, proxy.seen)

    out, files = rspout(tmp_path, "mrr", 1)
    res = run_openssl_client(cmd="rr", oldcert=pki.rsp_cert("ec"), rspout=out, **common)
    assert res.returncode == 0 and "received RP" in res.output, res.describe() + mock_server_pbm.describe()
    assert_identical(files, proxy.seen)
    assert len(proxy.seen) == 3


def test_openssl_kur_via_proxy_to_openssl_mock(running_proxy, mock_server_sig, pki, tmp_path: Path) -> None:
    proxy = running_proxy(f"""
[alias.mocksig]
upstream = "{mock_server_sig.url}"
issuer_chain = "{pki.chain}"
""")
    kt = mock_server_sig.key_type
    out, files = rspout(tmp_path, "mkur", 2)
    res = run_openssl_client(
        # The mock accepts a kur only for its own -rsp_cert (its "wrong certid" otherwise).
        cmd="kur", oldcert=pki.rsp_cert(kt),
        server=proxy.url("mocksig"), cert=pki.client_cert(kt), key=pki.client_key(kt), untrusted=pki.chain,
        trusted=pki.trusted, newkey=pki.rsp_key(kt), certout=tmp_path / "mk.crt.pem", rspout=out,
    )
    assert res.returncode == 0 and "received KUP" in res.output, res.describe() + mock_server_sig.describe()
    assert_identical(files, proxy.seen)
    # Unsigned (MAC) on a signature-only alias: refused by the proxy; the mock sees nothing.
    before = len(proxy.seen)
    res = run_openssl_client(cmd="ir", server=proxy.url("mocksig"), ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}", env=ENV,
                             newkey=pki.rsp_key(kt), subject="/CN=x", certout=tmp_path / "x.pem", unprotected_errors=True)
    assert res.returncode != 0 and "badRequest" in res.output, res.describe()
    assert len(proxy.seen) == before


def _mock_proxy(running_proxy, mock, *, hold: float | None = None) -> RunningProxy:
    hold_line = f"upstream_hold = {hold}" if hold is not None else ""
    return running_proxy(f"""
{hold_line}
[alias.mock]
upstream = "{mock.url}"
mac_keys = ["{PBM_REF}:env:{PBM_SECRET_ENV}"]
""")


def _our_client(proxy: RunningProxy, pki) -> tuple[Any, Any]:
    """Our client library through the proxy (a transaction we can hold open at will)."""
    from cmpclient.client import ClientConfig
    from cmpclient.keys import load_private_key
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import MACProtection, popo_signer
    from cmpclient.transport.http import HTTPTransport

    cfg = ClientConfig(transport=HTTPTransport(proxy.url("mock"), timeout=30),
                       protection=MACProtection(PBM_SECRET.encode(), sender_kid=PBM_REF.encode()))
    key = load_private_key(pki.rsp_key("ec"))  # the mock answers with rsp-ec: the key must match
    return cfg, CertRequestBuilder().subject("CN=held,O=cmpclient test").public_key(key).popo_signature(popo_signer(key))


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.01)


def test_a_transaction_keeps_its_connection_while_another_client_comes(running_proxy, mock_server_pbm, pki,
                                                                       tmp_path: Path) -> None:
    """A's transaction is open (ip received, certConf not yet sent) when openssl client B
    starts. The mock serves one connection at a time and binds A's transaction to its
    connection: B's ir must wait on a connection of its own (not take A's), and A's
    certConf must go on A's connection. Then B completes."""
    import concurrent.futures

    from cmpclient.client import confirm, enroll

    proxy = _mock_proxy(running_proxy, mock_server_pbm)
    cfg, request = _our_client(proxy, pki)
    try:
        held = enroll(cfg, "ir", request, confirm=False)
        assert held.confirm_state is not None
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            b = pool.submit(run_openssl_client, cmd="ir", newkey=pki.rsp_key("ec"), subject="/CN=second",
                            certout=tmp_path / "b.pem", timeout=60, server=proxy.url("mock"), ref=PBM_REF,
                            secret=f"env:{PBM_SECRET_ENV}", trusted=pki.trusted, env=ENV)
            # B's ir is on its way upstream on a connection of its own (a second transport),
            # which the mock does not serve while A's transaction holds the first.
            _wait_for(lambda: proxy.forwarding >= 1 and proxy.transports_made >= 2, 30, "B's ir to reach the upstream")
            assert confirm(cfg, held.confirm_state).body_type == "pkiconf"
            res = b.result(timeout=60)
    finally:
        cfg.transport.close()
    assert res.returncode == 0 and "received PKICONF" in res.output, res.describe() + mock_server_pbm.describe()
    assert sorted(parse_body(d) for _, d, _ in proxy.seen) == ["certConf", "certConf", "ir", "ir"]


def test_an_abandoned_transaction_lets_go_of_the_mock_after_upstream_hold(running_proxy, mock_server_pbm, pki,
                                                                           tmp_path: Path) -> None:
    """A client that never sends its certConf: after upstream_hold seconds the proxy
    closes that transaction's connection, so the mock (one connection at a time) serves
    the next client instead of waiting for good."""
    from cmpclient.client import enroll

    proxy = _mock_proxy(running_proxy, mock_server_pbm, hold=0.5)
    cfg, request = _our_client(proxy, pki)
    try:
        assert enroll(cfg, "ir", request, confirm=False).confirm_state is not None  # and never confirmed
    finally:
        cfg.transport.close()
    started = time.monotonic()
    res = run_openssl_client(cmd="ir", newkey=pki.rsp_key("ec"), subject="/CN=next", certout=tmp_path / "n.pem",
                             timeout=60, server=proxy.url("mock"), ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}",
                             trusted=pki.trusted, env=ENV)
    assert res.returncode == 0 and "received PKICONF" in res.output, res.describe() + mock_server_pbm.describe()
    assert time.monotonic() - started < 20  # well before the 30 s upstream timeout


def test_a_rejected_request_lets_go_of_the_mock_at_once(running_proxy, openssl_mock, pki, tmp_path: Path) -> None:
    """The mock rejects every ir (and keeps the transaction open, waiting on its
    connection); openssl's client sends no certConf after a rejection. The proxy closes
    that connection at once, so the next client is served without waiting upstream_hold."""
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=f"env:{PBM_SECRET_ENV}", rsp_cert=pki.rsp_cert("ec"),
                        pkistatus=2, failure=9, statusstring="no POP")
    proxy = _mock_proxy(running_proxy, mock, hold=30)
    common = dict(server=proxy.url("mock"), ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}", trusted=pki.trusted, env=ENV,
                  newkey=pki.rsp_key("ec"), timeout=60)
    started = time.monotonic()
    for i in range(2):
        res = run_openssl_client(cmd="ir", subject=f"/CN=rejected-{i}", certout=tmp_path / f"r{i}.pem", **common)
        assert res.returncode != 0 and "rejection" in res.output and "badPOP" in res.output, res.describe()
    assert time.monotonic() - started < 15  # not held for the 30 s upstream_hold
    assert [parse_body(d) for _, d, _ in proxy.seen] == ["ir", "ir"]


def test_concurrent_openssl_transactions_via_proxy_to_openssl_mock(running_proxy, mock_server_pbm, pki, tmp_path: Path) -> None:
    """Several openssl clients at once, each ir -> ip -> certConf -> pkiConf, through the proxy.

    openssl's mock server keeps a transaction on the connection it started on (a certConf
    on another connection: "unexpected pkibody") and serves one connection at a time. The
    proxy must keep each transaction on its own upstream connection until it ends, and
    hand a connection to the next transaction only then.
    """
    import concurrent.futures

    proxy = _mock_proxy(running_proxy, mock_server_pbm)
    common = dict(server=proxy.url("mock"), ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}", trusted=pki.trusted, env=ENV)

    def enroll(i: int) -> Any:
        return run_openssl_client(cmd="ir", newkey=pki.rsp_key("ec"), subject=f"/CN=mock-proxied-{i}",
                                  certout=tmp_path / f"c{i}.pem", timeout=60, **common)

    rounds = 3
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(enroll, range(3 * rounds)))
    for res in results:
        assert res.returncode == 0 and "received PKICONF" in res.output, res.describe() + mock_server_pbm.describe()
    bodies = [answer for _, _, answer in proxy.seen]
    assert len(bodies) == 2 * len(results)


def test_polling_through_the_proxy_outlasts_upstream_hold(running_proxy, openssl_mock, pki, tmp_path: Path) -> None:
    """openssl's mock answers the ir with 'waiting', the first pollReq with a pollRep of
    checkAfter 2 s (longer than the proxy's upstream_hold, 0.5 s), the second with the ip. The proxy keeps the
    transaction's upstream connection for hold + checkAfter, so openssl's client polls to
    its certificate and confirms it."""
    mock = openssl_mock(srv_ref=PBM_REF, srv_secret=f"env:{PBM_SECRET_ENV}", rsp_cert=pki.rsp_cert("ec"),
                        rsp_capubs=pki.trusted, rsp_extracerts=pki.chain, poll_count=2, check_after=2)
    proxy = _mock_proxy(running_proxy, mock, hold=0.5)
    started = time.monotonic()
    res = run_openssl_client(cmd="ir", newkey=pki.rsp_key("ec"), subject="/CN=polled", certout=tmp_path / "p.pem",
                             timeout=60, server=proxy.url("mock"), ref=PBM_REF, secret=f"env:{PBM_SECRET_ENV}",
                             trusted=pki.trusted, env=ENV)
    assert res.returncode == 0 and "received PKICONF" in res.output, res.describe() + mock.describe()
    assert "checkAfter = 2 seconds" in res.output
    assert time.monotonic() - started >= 2  # the pollRep's 2 s were waited out
    assert [parse_body(d) for _, d, _ in proxy.seen] == ["ir", "pollReq", "pollReq", "certConf"]
    assert (tmp_path / "p.pem").exists()
