"""The store's cheaper writes keep the store's contents: upserts against the former
SELECT-then-INSERT/UPDATE, the transaction REPLACE against DELETE+INSERT, the end entity
status written with the certificate, and the CA's cached issuer data."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from testca_testlib import issued_cert, ir, mac

from cmpclient.testca import TestCA
from cmpclient.testca import store as store_mod
from cmpclient.testca.store import Store

_EE_COLUMNS = "username, status, password, dn, ca, cert_profile, ee_profile, ra_admin"
_TX_COLUMNS = "alias, transaction_id, state, request_body, response_body, auth_kind, auth_ref, ca, last_nonce, polls, pending, cert_ids"


def _old_upsert(db: sqlite3.Connection, username: str, *, dn: str, status: str = "NEW", password: str | None = None,
                ca: str | None = None, cert_profile: str | None = None, ee_profile: str | None = None,
                ra_admin: bool | None = None, keep_existing: bool = False) -> None:
    """Store.upsert_end_entity as it was (SELECT, then INSERT or UPDATE)."""
    now = time.time()
    row = db.execute("SELECT * FROM end_entities WHERE username = ?", (username,)).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO end_entities (username, status, password, dn, ca, cert_profile, ee_profile, ra_admin, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (username, status, password, dn, ca, cert_profile, ee_profile, int(bool(ra_admin)), now, now),
        )
    elif not keep_existing:
        db.execute(
            "UPDATE end_entities SET status = ?, password = COALESCE(?, password), dn = ?, ca = COALESCE(?, ca),"
            " cert_profile = COALESCE(?, cert_profile), ee_profile = COALESCE(?, ee_profile),"
            " ra_admin = COALESCE(?, ra_admin), updated = ? WHERE username = ?",
            (status, password, dn, ca, cert_profile, ee_profile, None if ra_admin is None else int(ra_admin), now, username),
        )


_UPSERTS: list[dict[str, Any]] = [
    dict(username="a", dn="CN=a"),
    dict(username="a", dn="CN=a2", status="GENERATED", ca="CA1", keep_existing=True),
    dict(username="a", dn="CN=a3", status="GENERATED", ca="CA1", cert_profile="P", ra_admin=True),
    dict(username="a", dn="CN=a4", password="pw"),  # None keeps ca, profiles, ra_admin
    dict(username="a", dn="CN=a5", ra_admin=False, ee_profile="E"),
    dict(username="b", dn="CN=b", password="x", ra_admin=True, keep_existing=True),
    dict(username="b", dn="CN=b", status="REVOKED", password=None, ca=None),
    dict(username="c", dn="CN=c", status="NEW", ra_admin=None, keep_existing=False),
]


def test_upsert_end_entity_writes_what_select_then_insert_or_update_wrote(tmp_path: Path) -> None:
    new = Store(tmp_path / "new.sqlite")
    old = Store(tmp_path / "old.sqlite")
    for i, kw in enumerate(_UPSERTS):
        new.upsert_end_entity(**kw)
        with old.write() as db:
            _old_upsert(db, **kw)
        rows = [s.read().execute(f"SELECT {_EE_COLUMNS} FROM end_entities ORDER BY username").fetchall() for s in (new, old)]
        assert [tuple(r) for r in rows[0]] == [tuple(r) for r in rows[1]], (i, kw)
    created = new.read().execute("SELECT created, updated FROM end_entities WHERE username = 'a'").fetchone()
    assert created["created"] < created["updated"]  # an update keeps the creation time


def test_begin_transaction_replace_resets_the_record_like_delete_and_insert(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    assert s.begin_transaction("ra", b"t1", "ir", exclusive=False)
    s.update_transaction("ra", b"t1", state="closed", response_body="ip", auth_kind="mac", auth_ref="secret:alias",
                         ca="X", last_nonce=b"n", pending={"a": 1}, cert_ids={"0": 7})
    s.bump_polls("ra", b"t1")
    first_created = s.read().execute("SELECT created FROM transactions").fetchone()[0]
    assert s.begin_transaction("ra", b"t2", "cr", exclusive=False)
    time.sleep(0.01)
    assert s.begin_transaction("ra", b"t1", "cr", exclusive=False)  # replaced: every field fresh
    tx = s.get_transaction("ra", b"t1")
    assert tx is not None
    assert (tx.state, tx.request_body, tx.response_body, tx.auth_kind, tx.auth_ref, tx.ca, tx.last_nonce, tx.polls,
            tx.pending, tx.cert_ids) == ("open", "cr", None, None, None, None, None, 0, None, {})
    assert s.read().execute("SELECT created FROM transactions WHERE transaction_id = ?", (b"t1",)).fetchone()[0] > first_created
    assert s.read().execute("SELECT COUNT(*) FROM transactions").fetchone()[0] == 2
    # exclusive: an existing transaction is a conflict and stays as it is
    assert not s.begin_transaction("ra", b"t1", "ir", exclusive=True)
    assert s.get_transaction("ra", b"t1").request_body == "cr"  # type: ignore[union-attr]


def test_certificate_and_end_entity_status_are_one_write(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    s.upsert_end_entity("u", dn="CN=u")
    kw = dict(ca="X", serial=2**70, subject="CN=u", issuer="CN=X", not_before=0.0, not_after=1.0, username="u")
    s.insert_certificate(der=b"1", fingerprint="f1", ee_status="GENERATED", **kw)
    assert s.get_end_entity("u").status == "GENERATED"  # type: ignore[union-attr]
    s.set_end_entity_status("u", "NEW")
    with pytest.raises(store_mod.SerialCollision):  # the insert fails: the status is not written either
        s.insert_certificate(der=b"2", fingerprint="f2", ee_status="GENERATED", **kw)
    assert s.get_end_entity("u").status == "NEW"  # type: ignore[union-attr]
    s.insert_certificate(der=b"3", fingerprint="f3", **{**kw, "serial": 2**71})  # without ee_status: untouched
    assert s.get_end_entity("u").status == "NEW"  # type: ignore[union-attr]


def _writes_of(testca: TestCA, run: Any) -> list[str]:
    statements: list[str] = []
    conn = testca.store.read()
    conn.set_trace_callback(statements.append)
    try:
        run()
    finally:
        conn.set_trace_callback(None)
    return statements


@pytest.mark.parametrize("alias, kid", [("ra", b"ra"), ("lwcmp", b"lw")])
def test_implicitly_confirmed_ir_is_stored_confirmed_generated_and_closed(testca: TestCA, alias: str, kid: bytes) -> None:
    name = f"implicit-{alias}-{time.monotonic_ns()}"
    holder: list[Any] = []
    statements = _writes_of(testca, lambda: holder.append(
        ir(testca, alias, f"CN={name},UID={name}", protection=mac(kid=kid), hdr=dict(implicit_confirm=True))))
    rsp = holder[0]
    assert rsp.header.implicit_confirm
    cert = issued_cert(rsp)
    rec = testca.store.find_certificate("ManagementCA", cert.serial_number)
    assert rec is not None and rec.confirmed and rec.status == "active"
    assert rec.issuer == testca.ca("ManagementCA").cert.subject.rfc4514_string()
    ee = testca.store.get_end_entity(rec.username)  # type: ignore[arg-type]
    assert ee is not None and ee.status == "GENERATED"
    tx = testca.store.get_transaction(alias, rsp.header.transaction_id)
    assert tx is not None and tx.state == "closed" and tx.last_nonce == rsp.header.sender_nonce
    assert tx.cert_ids == {"0": rec.id}
    assert (ee.dn, ee.ca, ee.cert_profile, ee.ee_profile) == (f"CN={name},UID={name}", "ManagementCA", "CMP_CERT", "CMP_ENTITY")
    # The cost this guards: the non-strict ir used to take 6 write transactions.
    writes = sum(1 for st in statements if st.startswith("BEGIN IMMEDIATE"))
    assert writes <= (3 if alias == "ra" else 4), statements
    assert not any("SET confirmed" in st for st in statements)


@pytest.mark.parametrize("alias", ["reject", "ra"])
def test_ra_end_entity_is_registered_when_no_certificate_is_stored(testca: TestCA, alias: str) -> None:
    """RA mode registers the end entity with its first certificate; a request that stores
    none (a rejection) still registers it, NEW, as before."""
    name = f"noissue-{alias}-{time.monotonic_ns()}"
    # "reject" rejects every item (fault injection); on "ra" the POPO is missing
    rsp = ir(testca, alias, f"CN={name},UID={name}", protection=mac(), popo="none" if alias == "ra" else "signature")
    assert rsp.content.responses[0].status.status == "rejection", rsp.content
    ee = testca.store.find_end_entity_by_dn(f"CN={name},UID={name}")
    assert ee is not None and ee.status == "NEW" and (ee.ca, ee.cert_profile) == ("ManagementCA", "CMP_CERT"), ee
    assert testca.store.certificates_of(ee.username) == []


def test_rejected_client_mode_request_leaves_the_end_entity_new(testca: TestCA) -> None:
    testca.store.upsert_end_entity("rejectme", dn="CN=rejectme", status="NEW", password="pw123")
    rsp = ir(testca, "client", "CN=rejectme", protection=mac(secret=b"pw123", kid=b"rejectme"),
             popo="none")
    assert rsp.body_type == "ip" and rsp.content.responses[0].status.status == "rejection"
    assert testca.store.get_end_entity("rejectme").status == "NEW"  # type: ignore[union-attr]
    assert testca.store.certificates_of("rejectme") == []


def test_issuer_info_is_cached_per_certificate(testca: TestCA) -> None:
    ca = testca.ca("ManagementCA")
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki, issuer = ca.issuer_info()
    assert aki == x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    assert issuer == ca.cert.subject.rfc4514_string()
    assert ca.issuer_info()[0] is aki  # cached
    other = testca.ca("RootCA")
    original = ca.cert
    try:
        ca.cert = other.cert  # a different certificate: read again, not the cached values
        aki2, issuer2 = ca.issuer_info()
        assert issuer2 == other.cert.subject.rfc4514_string() and aki2 != aki
    finally:
        ca.cert = original
    assert ca.issuer_info()[1] == issuer


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """The store notices a fork without calling getpid() per statement."""
    import os

    s = Store(tmp_path / "db.sqlite")
    parent_conn = s.read()
    s.upsert_end_entity("parent", dn="CN=parent")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        try:
            ok = s.read() is not parent_conn and s._local.pid == os.getpid()
            s.upsert_end_entity("child", dn="CN=child")
            os.write(w, b"1" if ok and s.get_end_entity("parent") is not None else b"0")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    os.waitpid(pid, 0)
    assert s.read() is parent_conn  # the parent keeps its connection
    assert s.get_end_entity("child") is not None


def test_old_transactions_and_nonces_are_purged_now_and_then(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA serving CI for weeks keeps two rows per request; what nobody touched within the
    retention goes, at most every PURGE_EVERY_S, when a transaction begins."""
    clock = [1_000_000.0]
    monkeypatch.setattr(store_mod.time, "time", lambda: clock[0])
    store = Store(tmp_path / "s.sqlite", retention_s=100.0)

    def rows() -> tuple[int, int]:
        db = store.read()
        return (db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])

    store.begin_transaction("a", b"old", "ir", exclusive=True)  # the first one purges (nothing yet)
    assert store.remember_nonce("a", b"old-nonce")
    clock[0] += 60
    store.begin_transaction("a", b"recent", "ir", exclusive=True)  # within PURGE_EVERY_S: no purge
    assert store.remember_nonce("a", b"recent-nonce")
    assert rows() == (2, 2)
    clock[0] += store_mod.PURGE_EVERY_S  # 'old' is now older than the retention, 'recent' too
    store.update_transaction("a", b"recent", state="waiting")  # ... but was touched just now
    store.begin_transaction("a", b"new", "ir", exclusive=True)
    assert rows() == (2, 0)
    assert store.get_transaction("a", b"old") is None and store.get_transaction("a", b"recent") is not None
    assert store.remember_nonce("a", b"old-nonce"), "a purged nonce is new again (messageTime guards strict aliases)"
    assert store.purge(clock[0] + 1) == (2, 1)


def test_a_big_backlog_is_purged_a_batch_per_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An old data directory full of stale rows: each transaction deletes one batch of each
    (oldest first) within its own write, and the next one goes on until nothing is left."""
    clock = [1_000_000.0]
    monkeypatch.setattr(store_mod.time, "time", lambda: clock[0])
    monkeypatch.setattr(store_mod, "PURGE_BATCH", 10)
    store = Store(tmp_path / "s.sqlite", retention_s=100.0)
    with store.write() as db:
        db.executemany("INSERT INTO transactions (alias, transaction_id, state, request_body, created, updated)"
                       " VALUES ('a', ?, 'closed', 'ir', ?, ?)", [(b"t%d" % i, 500.0 + i, 500.0 + i) for i in range(25)])
        db.executemany("INSERT INTO nonces (alias, nonce, seen) VALUES ('a', ?, ?)", [(b"n%d" % i, 500.0 + i) for i in range(13)])

    def count(table: str) -> int:
        return store.read().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    left = []
    for i in range(4):
        store.begin_transaction("a", b"new%d" % i, "ir", exclusive=True)
        left.append((count("transactions") - (i + 1), count("nonces")))
    assert left == [(15, 3), (5, 0), (0, 0), (0, 0)]
    assert store.get_transaction("a", b"t24") is None and store.get_transaction("a", b"new0") is not None
    # with nothing left, the next look is PURGE_EVERY_S away
    assert store._next_purge == clock[0] + store_mod.PURGE_EVERY_S
    plan = " ".join(r[-1] for r in store.read().execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM nonces WHERE seen < 1 ORDER BY seen LIMIT 5"))
    assert "nonces_seen" in plan, plan  # the batch reads the index, not the whole table


def test_the_test_ca_remembers_nonces_longer_than_twice_a_strict_alias_clock_skew(tmp_path: Path) -> None:
    from cmpclient.testca.config import DEFAULT_CONFIG_TOML, load_config

    text = DEFAULT_CONFIG_TOML + "\n[alias.skewed]\nstrict = true\nmax_clock_skew = 100000\n"
    ca = TestCA.from_config(load_config(text=text), tmp_path)
    try:
        assert ca.store.retention_s == 2 * 100000 + 3600
    finally:
        ca.close()
    ca = TestCA.from_config(load_config(text=DEFAULT_CONFIG_TOML), tmp_path / "d")
    try:
        assert ca.store.retention_s == store_mod.RETENTION_S
    finally:
        ca.close()
