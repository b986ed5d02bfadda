"""Configuration, data-directory materialisation and the SQLite store."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from testca_testlib import issued_cert, ir, mac

from cmpclient.errors import ConfigError
from cmpclient.testca import DEFAULT_CONFIG_TOML, TestCA, load_config
from cmpclient.testca import store as store_mod
from cmpclient.testca.store import Store, random_serial


def test_default_config_has_the_documented_aliases() -> None:
    config = load_config()
    assert set(config.aliases) >= {"ra", "client", "ra-sig", "keyid", "nested", "servergen", "3gpp", "tcp", "lwcmp"}
    ra = config.aliases["ra"]
    assert (ra.mode, ra.hmac_secret, ra.response_protection, ra.allow_ra_verify) == ("ra", "password", "pbe", True)
    assert (ra.ra_name_generation.scheme, ra.ra_name_generation.parameter, ra.ra_name_generation.prefix) == ("DN", "UID", "cmp")
    assert (ra.ee_profile, ra.cert_profile, ra.ca) == ("CMP_ENTITY", "CMP_CERT", "ManagementCA")
    assert config.aliases["client"].auth_modules == ("RegTokenPwd", "HMAC")
    assert config.aliases["client"].extract_username_component == "CN"
    assert config.aliases["lwcmp"].strict and config.aliases["servergen"].allow_server_keygen
    assert config.aliases["keyid"].ca == "KeyId"
    client1 = next(e for e in config.end_entities if e.username == "client1")
    assert (client1.password, client1.status) == ("foo123", "NEW")
    assert config.ca("ManagementCA").parent == "RootCA"


@pytest.mark.parametrize(
    "extra, needle",
    [
        ("[alias.bad]\nmode = 'server'\n", "mode"),
        ("[alias.bad]\nauth_modules = ['Password']\n", "auth module"),
        ("[alias.bad]\nno_such_setting = 1\n", "unknown key"),
        ("[alias.bad]\nca = 'NoCA'\n", "unknown CA"),
        ("[alias.bad]\nresponse_protection = 'none'\n", "response_protection"),
    ],
)
def test_config_errors_are_named(extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text=DEFAULT_CONFIG_TOML + extra)
    assert needle in info.value.message


def test_config_rejects_invalid_toml() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(text="[alias.x\n")


def test_open_materialises_once_and_is_idempotent(tmp_path: Path) -> None:
    ca = TestCA.open(None, tmp_path)
    try:
        for rel in ("testca.toml", "testca.sqlite", "ca/RootCA.pem", "ca/ManagementCA.pem", "ca/ManagementCA.key.pem",
                    "ra/raadmin.pem", "ra/raadmin.key.pem", "client/clientcert.pem", "nested-trust/raadmin.pem"):
            assert (tmp_path / rel).exists(), rel
        assert (tmp_path / "ca/ManagementCA.key.pem").stat().st_mode & 0o077 == 0
        first = (tmp_path / "ca/ManagementCA.pem").read_bytes()
        count = len(ca.store.all_certificates())
        assert ca.alias_exists("ra") and not ca.alias_exists("nope")
        text = ca.summary()
        for needle in (str(tmp_path), "ManagementCA.pem", "raadmin.key.pem", "ra: mode=ra", "secret=(see config)", "client1"):
            assert needle in text
        for secret in ("password", "foo123"):  # secrets are never printed
            assert secret not in text
    finally:
        ca.close()
    again = TestCA.open(None, tmp_path)
    try:
        assert (tmp_path / "ca/ManagementCA.pem").read_bytes() == first
        assert len(again.store.all_certificates()) == count
    finally:
        again.close()


def test_store_uses_wal(testca: TestCA) -> None:
    assert testca.store.read().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_random_serials_have_63_to_159_bits() -> None:
    bits = [random_serial().bit_length() for _ in range(2000)]
    assert min(bits) >= 63 and max(bits) <= 159


def test_serial_collision_is_retried(testca: TestCA, monkeypatch: pytest.MonkeyPatch) -> None:
    first = issued_cert(ir(testca, "ra", "CN=collide1,UID=collide1", protection=mac()))
    serials = iter([first.serial_number, first.serial_number, 2**100 + 12345])
    monkeypatch.setattr(store_mod, "random_serial", lambda: next(serials))
    second = issued_cert(ir(testca, "ra", "CN=collide2,UID=collide2", protection=mac()))
    assert second.serial_number == 2**100 + 12345


def test_insert_duplicate_serial_raises_collision(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    kw = dict(ca="X", serial=2**70, subject="CN=a", issuer="CN=X", not_before=0.0, not_after=1.0, username=None)
    s.insert_certificate(der=b"1", fingerprint="f1", **kw)
    with pytest.raises(store_mod.SerialCollision):
        s.insert_certificate(der=b"2", fingerprint="f2", **kw)
    s.insert_certificate(der=b"3", fingerprint="f3", **{**kw, "ca": "Y"})  # unique per CA only


def test_nonce_replay_and_exclusive_transactions(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    assert s.remember_nonce("a", b"n" * 16) and not s.remember_nonce("a", b"n" * 16)
    assert s.remember_nonce("b", b"n" * 16)
    assert s.begin_transaction("a", b"t", "ir", exclusive=True)
    assert not s.begin_transaction("a", b"t", "ir", exclusive=True)
    assert s.begin_transaction("a", b"t", "ir", exclusive=False)


def _worker(data_dir: str, prefix: str, count: int) -> list[int]:
    from testca_testlib import issued_cert, ir, mac

    ca = TestCA.open(None, Path(data_dir))
    try:
        return [issued_cert(ir(ca, "ra", f"CN={prefix}{i},UID={prefix}{i}", protection=mac())).serial_number for i in range(count)]
    finally:
        ca.close()


def test_concurrent_processes_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_worker, [(str(tmp_path), f"p{n}-", 6) for n in range(3)])
    serials = [s for r in results for s in r]
    assert len(serials) == 18 and len(set(serials)) == 18
    db = sqlite3.connect(tmp_path / "testca.sqlite")
    rows = db.execute("SELECT serial FROM certificates WHERE subject LIKE 'CN=p%'").fetchall()
    assert sorted(int(r[0], 16) for r in rows) == sorted(serials)
    # The CA hierarchy was created exactly once although three processes opened it together.
    assert db.execute("SELECT COUNT(*) FROM cas").fetchone()[0] == 3
    assert db.execute("SELECT COUNT(*) FROM certificates WHERE username = 'raadmin'").fetchone()[0] == 1
