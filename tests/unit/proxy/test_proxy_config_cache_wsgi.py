"""Proxy configuration, the CRL cache, and the WSGI edge (environ in, no sockets)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from proxy_testlib import PKI, SECRET, RecordingUpstream, config, issuing_ca, make_crl, mac, request, signer

from cmpclient.errors import ConfigError, SecretSourceError
from cmpclient.proxy import Proxy
from cmpclient.proxy.config import load_issuer_chain, upstream_for
from cmpclient.proxy.revocation import CertificateRevoked, CRLCache, RevocationUnavailable, check_revocation
from cmpclient.proxy.wsgi import make_app

# --------------------------------------------------------------------------- configuration


def test_upstream_rule() -> None:
    assert upstream_for("http://ca/ejbca/publicweb/cmp/", "ra") == "http://ca/ejbca/publicweb/cmp/ra"
    assert upstream_for("http://ca/pkix/", "x") == "http://ca/pkix/x"
    assert upstream_for("http://ca/pkix", "x") == "http://ca/pkix"


def test_default_upstream_serves_every_alias_unchecked() -> None:
    cfg = config("", upstream="http://ca:8080/ejbca/publicweb/cmp/")
    policy = cfg.policy("anything")
    assert policy is not None and policy.upstream == "http://ca:8080/ejbca/publicweb/cmp/anything" and not policy.checks


def test_without_default_only_configured_aliases_exist() -> None:
    cfg = config('[alias.ra]\nupstream = "http://ca/x"\n')
    assert cfg.policy("ra") is not None and cfg.policy("other") is None


def test_alias_inherits_the_default_upstream() -> None:
    cfg = config('upstream = "https://ca/cmp/"\n[alias.ra]\nmac_keys = ["CA:env:PROXY_TEST_SECRET"]\n')
    ra = cfg.policy("ra")
    assert ra.upstream == "https://ca/cmp/ra" and ra.require_mac and ra.mac_keys == {"CA": SECRET}


def test_upstream_hold() -> None:
    assert config('upstream = "http://x"').upstream_hold == 10.0
    assert config('upstream = "http://x"\nupstream_hold = 2.5').upstream_hold == 2.5


def test_open_proxy_gives_the_upstream_its_hold() -> None:
    from cmpclient.proxy.serve import open_proxy

    proxy = open_proxy(config('upstream = "http://x"\nupstream_hold = 3'))
    upstream = proxy._send.__self__  # type: ignore[attr-defined]
    assert upstream._hold == 3.0
    proxy.close()
    assert upstream._closed


def test_stopping_the_server_closes_the_upstream() -> None:
    from cmpclient.proxy.serve import ProxyServer, open_proxy

    proxy = open_proxy(config('upstream = "http://x"'))
    ProxyServer(proxy, host="127.0.0.1", port=0).start().stop()
    assert proxy._send.__self__._closed  # type: ignore[attr-defined]


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    cfg = config('[alias.s]\nupstream = "http://ca/x"\nissuer_chain = "chains"\ncrl = "c.crl"\n', base_dir=tmp_path)
    s = cfg.policy("s")
    assert s.issuer_chain == tmp_path / "chains" and s.crl == str(tmp_path / "c.crl") and s.require_signature


@pytest.mark.parametrize("toml,message", [
    ("", "nothing to forward to"),
    ('upstream = "ftp://x"', "http://, https:// or tcp://"),
    ('upstream = "http://x"\ntypo = 1', "unknown key"),
    ('[alias.ra]\nupstream = "http://x"\nmac_key = []', "unknown key"),
    ('[alias.ra]\nupstream = "http://x"\nmac_keys = ["nokey"]', "KeyID:source"),
    ('[alias.ra]\nupstream = "http://x"\nrequire_mac = true', "require_mac needs mac_keys"),
    ('[alias.ra]\nupstream = "http://x"\ncrl = "c.crl"', "needs require_signature"),
    ('[alias."bad/alias"]\nupstream = "http://x"', "not a usable alias"),
    ('[alias.ra]\nmac_keys = []', "no upstream"),
    ('upstream = "http://x"\nupstream_timeout = 0', "greater than 0"),
    ('upstream = "http://x"\nupstream_hold = -1', "upstream_hold must be greater than 0"),
    ('upstream = "http://x"\nupstream_hold = "10"', "upstream_hold must be a number"),
    ('upstream = "http://x"\nupstream_hold = inf', "upstream_hold must be a number"),
    ('upstream = "http://x"\nupstream_timeout = nan', "upstream_timeout must be a number"),
])
def test_config_errors(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(toml)


@pytest.mark.parametrize("source", ["pass:literal", "literal", "env:NOT_SET_ANYWHERE_42"])
def test_mac_secret_must_be_a_usable_source(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMPCLIENT_ALLOW_PASS_LITERAL", raising=False)
    with pytest.raises(SecretSourceError):
        config(f'[alias.ra]\nupstream = "http://x"\nmac_keys = ["CA:{source}"]')


def test_mac_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("from-a-file\n")
    cfg = config(f'[alias.ra]\nupstream = "http://x"\nmac_keys = ["CA:file:{tmp_path / "s"}"]')
    assert cfg.policy("ra").mac_keys == {"CA": b"from-a-file"}


def test_issuer_chain_file_or_directory(tmp_path: Path) -> None:
    assert len(load_issuer_chain(PKI / "chain.pem")) == 2
    d = tmp_path / "chains"
    d.mkdir()
    (d / "a.pem").write_bytes((PKI / "issuing-ca.crt.pem").read_bytes())
    (d / "b.crt").write_bytes((PKI / "root-ca.crt.pem").read_bytes())
    (d / "notes.txt").write_text("ignored")
    (d / "junk.pem").write_text("not a certificate")
    assert len(load_issuer_chain(d)) == 2
    assert load_issuer_chain(tmp_path / "missing") == [] and load_issuer_chain(None) == []


# --------------------------------------------------------------------------- CRL cache


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_crl_cache_ttl(tmp_path: Path) -> None:
    crl = make_crl(tmp_path / "c.crl")
    clock = Clock()
    cache = CRLCache(clock=clock)
    cache.get(str(crl), 60)
    clock.t = 59
    cache.get(str(crl), 60)
    assert cache.fetches == 1
    clock.t = 61
    cache.get(str(crl), 60)
    assert cache.fetches == 2


def test_crl_cache_refetches_past_next_update(tmp_path: Path) -> None:
    crl = make_crl(tmp_path / "c.crl", next_update=dt.timedelta(hours=1))
    later = [dt.datetime.now(dt.timezone.utc)]
    cache = CRLCache(now=lambda: later[0])
    cache.get(str(crl), 3600 * 24)
    later[0] += dt.timedelta(hours=2)  # the cached CRL is now stale: refetched, still stale
    with pytest.raises(RevocationUnavailable, match="expired"):
        cache.get(str(crl), 3600 * 24)
    assert cache.fetches == 2


def test_check_revocation_outcomes(tmp_path: Path) -> None:
    _, cert = signer()
    _, issuer = issuing_ca()
    cache = CRLCache()
    check_revocation(cache, str(make_crl(tmp_path / "ok.crl", revoked=[1, 2])), 60, cert, issuer)
    with pytest.raises(CertificateRevoked):
        check_revocation(cache, str(make_crl(tmp_path / "r.crl", revoked=[cert.serial_number])), 60, cert, issuer)
    with pytest.raises(RevocationUnavailable, match="not in the issuer chain"):
        check_revocation(cache, str(tmp_path / "ok.crl"), 60, cert, None)
    (tmp_path / "junk.crl").write_bytes(b"junk")
    with pytest.raises(RevocationUnavailable, match="does not parse"):
        check_revocation(cache, str(tmp_path / "junk.crl"), 60, cert, issuer)


# --------------------------------------------------------------------------- WSGI edge


class NoRead(io.RawIOBase):
    def read(self, n: int = -1) -> bytes:  # pragma: no cover - must not be called
        raise AssertionError("the body was read")


def call(app, path: str, body: bytes | None = b"", method: str = "POST", length: str | None = None, stream=None):
    captured = {}

    def start_response(status: str, headers: list) -> None:
        captured["status"], captured["headers"] = status, dict(headers)

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": stream or io.BytesIO(body or b"")}
    environ["CONTENT_LENGTH"] = length if length is not None else str(len(body or b""))
    out = b"".join(app(environ, start_response))
    return int(captured["status"].split()[0]), captured["headers"], out


def wsgi_proxy(tmp_path: Path):
    up = RecordingUpstream()
    cfg = config('[alias.ra]\nupstream = "http://ca/x"\nmac_keys = ["ManagementCA:env:PROXY_TEST_SECRET"]\n')
    return make_app(Proxy(cfg, up.send), max_body_size=1000), up


def test_wsgi_unknown_alias_404_before_the_body(tmp_path: Path) -> None:
    app, up = wsgi_proxy(tmp_path)
    status, headers, _ = call(app, "/ejbca/publicweb/cmp/nope", length="50", stream=NoRead())
    assert status == 404 and headers["Cache-Control"] == "no-cache" and up.calls == []


@pytest.mark.parametrize("path,method,length,status", [
    ("/ejbca/publicweb/cmp/ra", "GET", "0", 405),
    ("/ejbca/publicweb/cmp/ra", "POST", "1001", 400),
    ("/ejbca/publicweb/cmp/ra", "POST", "", 400),
    ("/ejbca/publicweb/cmp/" + "a" * 33, "POST", "10", 400),
    ("/ejbca/publicweb/cmp/r%a", "POST", "10", 400),
])
def test_wsgi_http_rules(tmp_path: Path, path: str, method: str, length: str, status: int) -> None:
    app, up = wsgi_proxy(tmp_path)
    got, headers, _ = call(app, path, method=method, length=length, stream=NoRead())
    assert got == status and up.calls == []
    if status == 405:
        assert headers["Allow"] == "POST"


def test_wsgi_forwards_and_answers_unchanged(tmp_path: Path) -> None:
    app, up = wsgi_proxy(tmp_path)
    der = request(mac())
    for path in ("/ejbca/publicweb/cmp/ra", "/ra", "/ra/"):
        status, headers, out = call(app, path, der)
        assert status == 200 and headers["Content-Type"] == "application/pkixcmp" and headers["Pragma"] == "no-cache"
        assert out == up.answers[-1] and up.calls[-1] == ("ra", der)
