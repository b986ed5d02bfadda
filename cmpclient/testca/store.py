"""The test CA's state in SQLite (WAL): CAs, end entities, certificates, transactions, nonces.

One :class:`Store` per process and data directory; it keeps one connection per thread
(``sqlite3`` connections must not cross threads) and reopens after a ``fork`` (a
connection must not cross processes either).  Writers take ``BEGIN IMMEDIATE`` so two
worker processes serialise on the database lock instead of failing half-way, and
``busy_timeout`` makes them wait for each other instead of raising "database is locked".

Serial numbers are random, 63 to 159 bits, and unique per CA by a UNIQUE constraint: a
collision is retried with a fresh serial, so concurrent issuers can never hand out the
same number twice.  Serials are stored as lower-case hex text because they exceed
SQLite's 64-bit integers.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS cas (
    name TEXT PRIMARY KEY,
    dn TEXT NOT NULL,
    parent TEXT,
    cert_der BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS end_entities (
    username TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    password TEXT,
    dn TEXT NOT NULL,
    ca TEXT,
    cert_profile TEXT,
    ee_profile TEXT,
    ra_admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ca TEXT NOT NULL,
    serial TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    not_before REAL NOT NULL,
    not_after REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    revocation_reason INTEGER,
    revocation_time REAL,
    username TEXT,
    der BLOB NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    confirmed INTEGER NOT NULL DEFAULT 1,
    transaction_id BLOB,
    UNIQUE (ca, serial)
);
CREATE INDEX IF NOT EXISTS certificates_issuer_serial ON certificates (issuer, serial);
CREATE INDEX IF NOT EXISTS certificates_username ON certificates (username);
CREATE INDEX IF NOT EXISTS certificates_subject ON certificates (subject);
CREATE INDEX IF NOT EXISTS certificates_status ON certificates (ca, status);
CREATE TABLE IF NOT EXISTS transactions (
    alias TEXT NOT NULL,
    transaction_id BLOB NOT NULL,
    state TEXT NOT NULL,
    request_body TEXT NOT NULL,
    response_body TEXT,
    auth_kind TEXT,
    auth_ref TEXT,
    ca TEXT,
    last_nonce BLOB,
    polls INTEGER NOT NULL DEFAULT 0,
    pending TEXT,
    cert_ids TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (alias, transaction_id)
);
CREATE TABLE IF NOT EXISTS nonces (
    alias TEXT NOT NULL,
    nonce BLOB NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (alias, nonce)
);
CREATE INDEX IF NOT EXISTS transactions_updated ON transactions (updated);
CREATE INDEX IF NOT EXISTS nonces_seen ON nonces (seen);
"""

#: os.getpid(), kept current in forked children (a connection must not cross processes).
_PID = os.getpid()


def _forked() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)

SERIAL_MIN_BITS = 63
SERIAL_MAX_BITS = 159


def random_serial() -> int:
    """A positive serial of 63 to 159 bits (RFC 5280: at most 20 octets, non-negative)."""
    low = 1 << (SERIAL_MIN_BITS - 1)
    return low + secrets.randbelow((1 << SERIAL_MAX_BITS) - low)


def serial_text(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class EndEntity:
    username: str
    status: str
    password: str | None
    dn: str
    ca: str | None
    cert_profile: str | None
    ee_profile: str | None
    ra_admin: bool


@dataclass(frozen=True)
class CertRecord:
    id: int
    ca: str
    serial: int
    subject: str
    issuer: str
    not_before: float
    not_after: float
    status: str
    revocation_reason: int | None
    revocation_time: float | None
    username: str | None
    der: bytes
    fingerprint: str
    confirmed: bool
    transaction_id: bytes | None

    @property
    def revoked(self) -> bool:
        return self.status == "revoked"


@dataclass(frozen=True)
class Transaction:
    alias: str
    transaction_id: bytes
    state: str
    request_body: str
    response_body: str | None
    auth_kind: str | None
    auth_ref: str | None
    ca: str | None
    last_nonce: bytes | None
    polls: int
    pending: Any
    cert_ids: dict[str, int]


class SerialCollision(Exception):
    """The chosen serial is taken for this CA (the caller re-signs with a fresh one)."""


#: Transactions and senderNonces untouched for this long are purged (a CA serving CI for
#: weeks would otherwise keep two rows per request forever).  Far beyond any CMP exchange,
#: polling included; the test CA makes it longer than twice a strict alias's messageTime
#: window when that is longer, so a replay too old to be remembered is refused as too old.
RETENTION_S = 24 * 3600.0
#: How often one Store looks for such rows (when a transaction begins) ...
PURGE_EVERY_S = 600.0
#: ... and how many of each it deletes then, within that request's own write (~12 ms here):
#: a store that has collected millions (the first start of this version on an old data
#: directory) is emptied a batch per transaction instead of holding the write lock for
#: many seconds (one DELETE of 1.9 million stale rows took 25 s).
PURGE_BATCH = 250


class Store:
    """SQLite store of one data directory."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 30000, retention_s: float = RETENTION_S) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.retention_s = retention_s
        self._next_purge = 0.0  # the first transaction purges what an earlier run left
        self._local = threading.local()
        # End entity passwords are stored here (HMAC client mode needs them in clear text):
        # the file is created 0600 whatever the umask; SQLite gives its -wal and -shm files
        # the database file's permissions.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._conn().executescript(SCHEMA)

    # --- connections -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        # _PID is this process's id (refreshed after a fork): no getpid() call per statement.
        if conn is not None and getattr(self._local, "pid", None) == _PID:
            return conn
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - only on file systems without WAL support
            raise RuntimeError(f"SQLite refused WAL mode for {self.path} (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        self._local.pid = _PID
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: the write lock is taken up front)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        return self._conn()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == _PID:
            conn.close()
        self._local.conn = None

    # --- CAs -----------------------------------------------------------------------------
    def put_ca(self, name: str, dn: str, parent: str | None, cert_der: bytes) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO cas (name, dn, parent, cert_der) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET dn = excluded.dn, parent = excluded.parent, cert_der = excluded.cert_der",
                (name, dn, parent, cert_der),
            )

    # --- end entities --------------------------------------------------------------------
    def _ee(self, row: sqlite3.Row | None) -> EndEntity | None:
        if row is None:
            return None
        return EndEntity(row["username"], row["status"], row["password"], row["dn"], row["ca"], row["cert_profile"],
                         row["ee_profile"], bool(row["ra_admin"]))

    def get_end_entity(self, username: str) -> EndEntity | None:
        return self._ee(self.read().execute("SELECT * FROM end_entities WHERE username = ?", (username,)).fetchone())

    def find_end_entity_by_dn(self, dn: str) -> EndEntity | None:
        row = self.read().execute("SELECT * FROM end_entities WHERE dn = ? ORDER BY updated DESC LIMIT 1", (dn,)).fetchone()
        return self._ee(row)

    def upsert_end_entity(self, username: str, **fields: Any) -> None:
        """Create or update an end entity (the fields :meth:`_upsert_end_entity` takes:
        ``dn``, ``status``, ``password``, ``ca``, ``cert_profile``, ``ee_profile``,
        ``ra_admin``, ``keep_existing`` -- which leaves an existing one untouched).

        One statement (an upsert on the primary key), not a SELECT and then an INSERT or UPDATE.
        """
        with self.write() as db:
            self._upsert_end_entity(db, username, **fields)

    @staticmethod
    def _upsert_end_entity(
        db: sqlite3.Connection,
        username: str,
        *,
        dn: str,
        status: str = "NEW",
        password: str | None = None,
        ca: str | None = None,
        cert_profile: str | None = None,
        ee_profile: str | None = None,
        ra_admin: bool | None = None,
        keep_existing: bool = False,
    ) -> None:
        """:meth:`upsert_end_entity` inside the caller's write transaction (``keep_existing``:
        leave an existing end entity untouched)."""
        now = time.time()
        insert = (
            "INSERT INTO end_entities (username, status, password, dn, ca, cert_profile, ee_profile, ra_admin, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        values: tuple[Any, ...] = (username, status, password, dn, ca, cert_profile, ee_profile, int(bool(ra_admin)), now, now)
        if keep_existing:
            db.execute(insert + " ON CONFLICT (username) DO NOTHING", values)
        else:
            db.execute(
                insert + " ON CONFLICT (username) DO UPDATE SET status = excluded.status,"
                " password = COALESCE(excluded.password, password), dn = excluded.dn, ca = COALESCE(excluded.ca, ca),"
                " cert_profile = COALESCE(excluded.cert_profile, cert_profile),"
                " ee_profile = COALESCE(excluded.ee_profile, ee_profile), ra_admin = COALESCE(?, ra_admin),"
                " updated = excluded.updated",
                (*values, None if ra_admin is None else int(ra_admin)),
            )

    def set_end_entity_status(self, username: str, status: str, *, expect: str | None = None) -> bool:
        """Set the status; with ``expect`` only if the current status is that (atomically)."""
        with self.write() as db:
            return self._set_end_entity_status(db, username, status, expect)

    @staticmethod
    def _set_end_entity_status(db: sqlite3.Connection, username: str, status: str, expect: str | None = None) -> bool:
        """:meth:`set_end_entity_status` inside the caller's write transaction."""
        if expect is None:
            cur = db.execute("UPDATE end_entities SET status = ?, updated = ? WHERE username = ?", (status, time.time(), username))
        else:
            cur = db.execute(
                "UPDATE end_entities SET status = ?, updated = ? WHERE username = ? AND status = ?",
                (status, time.time(), username, expect),
            )
        return cur.rowcount == 1

    def list_end_entities(self) -> list[EndEntity]:
        return [self._ee(r) for r in self.read().execute("SELECT * FROM end_entities ORDER BY username")]  # type: ignore[misc]

    # --- certificates ---------------------------------------------------------------------
    @staticmethod
    def _cert(row: sqlite3.Row | None) -> CertRecord | None:
        if row is None:
            return None
        return CertRecord(
            row["id"], row["ca"], int(row["serial"], 16), row["subject"], row["issuer"], row["not_before"], row["not_after"],
            row["status"], row["revocation_reason"], row["revocation_time"], row["username"], bytes(row["der"]),
            row["fingerprint"], bool(row["confirmed"]), bytes(row["transaction_id"]) if row["transaction_id"] is not None else None,
        )

    def insert_certificate(
        self,
        *,
        ca: str,
        serial: int,
        subject: str,
        issuer: str,
        not_before: float,
        not_after: float,
        username: str | None,
        der: bytes,
        fingerprint: str,
        confirmed: bool = True,
        transaction_id: bytes | None = None,
        ee_status: str | None = None,
        ee_upsert: dict[str, Any] | None = None,
    ) -> int:
        """Insert a certificate; raise :class:`SerialCollision` when the serial is taken.

        In the same write transaction, before the certificate: ``ee_upsert`` (keyword
        arguments of :meth:`upsert_end_entity`) registers its end entity; and after it,
        ``ee_status`` sets the status of the end entity ``username`` (what
        :meth:`set_end_entity_status` does).  The CA registers an end entity and marks it
        GENERATED with its certificate: one write transaction instead of three.  When the
        insert fails, none of them is written.
        """
        try:
            with self.write() as db:
                if ee_upsert is not None:
                    self._upsert_end_entity(db, **ee_upsert)
                cur = db.execute(
                    "INSERT INTO certificates (ca, serial, subject, issuer, not_before, not_after, username, der, fingerprint,"
                    " confirmed, transaction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ca, serial_text(serial), subject, issuer, not_before, not_after, username, der, fingerprint,
                     int(confirmed), transaction_id),
                )
                if ee_status is not None and username is not None:
                    self._set_end_entity_status(db, username, ee_status)
                return int(cur.lastrowid)  # type: ignore[arg-type]
        except sqlite3.IntegrityError as exc:
            if "serial" in str(exc) or "UNIQUE" in str(exc):
                raise SerialCollision(str(exc)) from exc
            raise

    def serial_taken(self, ca: str, serial: int) -> bool:
        return self.read().execute("SELECT 1 FROM certificates WHERE ca = ? AND serial = ?", (ca, serial_text(serial))).fetchone() is not None

    def get_certificate(self, cert_id: int) -> CertRecord | None:
        return self._cert(self.read().execute("SELECT * FROM certificates WHERE id = ?", (cert_id,)).fetchone())

    def find_certificate(self, ca: str, serial: int) -> CertRecord | None:
        return self._cert(self.read().execute("SELECT * FROM certificates WHERE ca = ? AND serial = ?", (ca, serial_text(serial))).fetchone())

    def find_by_issuer_serial(self, issuer: str, serial: int) -> CertRecord | None:
        return self._cert(
            self.read().execute("SELECT * FROM certificates WHERE issuer = ? AND serial = ?", (issuer, serial_text(serial))).fetchone()
        )

    def find_by_fingerprint(self, fingerprint: str) -> CertRecord | None:
        return self._cert(self.read().execute("SELECT * FROM certificates WHERE fingerprint = ?", (fingerprint,)).fetchone())

    def certificates_of(self, username: str) -> list[CertRecord]:
        rows = self.read().execute("SELECT * FROM certificates WHERE username = ? ORDER BY id", (username,))
        return [self._cert(r) for r in rows]  # type: ignore[misc]

    def certificates_by_subject(self, subject: str) -> list[CertRecord]:
        rows = self.read().execute("SELECT * FROM certificates WHERE subject = ? ORDER BY id", (subject,))
        return [self._cert(r) for r in rows]  # type: ignore[misc]

    def all_certificates(self, ca: str | None = None) -> list[CertRecord]:
        if ca is None:
            rows = self.read().execute("SELECT * FROM certificates ORDER BY id")
        else:
            rows = self.read().execute("SELECT * FROM certificates WHERE ca = ? ORDER BY id", (ca,))
        return [self._cert(r) for r in rows]  # type: ignore[misc]

    def revoked_certificates(self, ca: str) -> list[CertRecord]:
        rows = self.read().execute("SELECT * FROM certificates WHERE ca = ? AND status = 'revoked' ORDER BY id", (ca,))
        return [self._cert(r) for r in rows]  # type: ignore[misc]

    def revoke(self, cert_id: int, reason: int = 0, when: float | None = None) -> bool:
        """Revoke an active certificate; False when it was already revoked (atomic)."""
        with self.write() as db:
            cur = db.execute(
                "UPDATE certificates SET status = 'revoked', revocation_reason = ?, revocation_time = ? WHERE id = ? AND status != 'revoked'",
                (reason, when if when is not None else time.time(), cert_id),
            )
            return cur.rowcount == 1

    def set_confirmed(self, cert_id: int) -> None:
        with self.write() as db:
            db.execute("UPDATE certificates SET confirmed = 1 WHERE id = ?", (cert_id,))

    # --- transactions and nonces -------------------------------------------------------------------
    @staticmethod
    def _tx(row: sqlite3.Row | None) -> Transaction | None:
        if row is None:
            return None
        return Transaction(
            row["alias"], bytes(row["transaction_id"]), row["state"], row["request_body"], row["response_body"], row["auth_kind"],
            row["auth_ref"], row["ca"], bytes(row["last_nonce"]) if row["last_nonce"] is not None else None, row["polls"],
            json.loads(row["pending"]) if row["pending"] else None, json.loads(row["cert_ids"]) if row["cert_ids"] else {},
        )

    def get_transaction(self, alias: str, transaction_id: bytes) -> Transaction | None:
        return self._tx(
            self.read().execute("SELECT * FROM transactions WHERE alias = ? AND transaction_id = ?", (alias, transaction_id)).fetchone()
        )

    def purge(self, before: float, *, limit: int | None = None) -> tuple[int, int]:
        """Delete transactions last updated, and senderNonces seen, before ``before`` (epoch
        seconds), at most ``limit`` of each; returns how many of each."""
        with self.write() as db:
            return self._purge(db, before, limit)

    @staticmethod
    def _purge(db: sqlite3.Connection, before: float, limit: int | None) -> tuple[int, int]:
        counts = []
        for table, column in (("transactions", "updated"), ("nonces", "seen")):
            # (the indexes on updated and seen make both cheap however big the tables are)
            if limit is None:
                cur = db.execute(f"DELETE FROM {table} WHERE {column} < ?", (before,))
            else:
                cur = db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {column} < ?"
                                 f" ORDER BY {column} LIMIT ?)", (before, limit))
            counts.append(cur.rowcount)
        return counts[0], counts[1]

    def _purge_now_and_then(self, db: sqlite3.Connection, now: float) -> None:
        """Within a write: a batch when PURGE_EVERY_S has passed since this Store last found
        nothing more to purge (a full batch: the next transaction goes on with the rest)."""
        if now >= self._next_purge:
            done = self._purge(db, now - self.retention_s, PURGE_BATCH)
            self._next_purge = now if max(done) >= PURGE_BATCH else now + PURGE_EVERY_S

    def begin_transaction(self, alias: str, transaction_id: bytes, request_body: str, *, exclusive: bool) -> bool:
        """Record a new transaction.  With ``exclusive`` an existing one is a conflict (False);
        without, an existing record is replaced (EJBCA does not track transactions).  Now and
        then (:data:`PURGE_EVERY_S`) transactions and nonces older than the retention go."""
        now = time.time()
        with self.write() as db:
            self._purge_now_and_then(db, now)  # in the same write: no extra commit
            if not exclusive:
                # REPLACE deletes the existing row (the primary key is the only unique
                # constraint) and inserts the new one: one statement for the former
                # SELECT, DELETE and INSERT.
                db.execute(
                    "INSERT OR REPLACE INTO transactions (alias, transaction_id, state, request_body, created, updated)"
                    " VALUES (?, ?, 'open', ?, ?, ?)",
                    (alias, transaction_id, request_body, now, now),
                )
                return True
            row = db.execute("SELECT 1 FROM transactions WHERE alias = ? AND transaction_id = ?", (alias, transaction_id)).fetchone()
            if row is not None:
                return False
            db.execute(
                "INSERT INTO transactions (alias, transaction_id, state, request_body, created, updated) VALUES (?, ?, 'open', ?, ?, ?)",
                (alias, transaction_id, request_body, now, now),
            )
            return True

    def update_transaction(self, alias: str, transaction_id: bytes, **fields: Any) -> None:
        allowed = {"state", "response_body", "auth_kind", "auth_ref", "ca", "last_nonce", "polls", "pending", "cert_ids"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown transaction fields {bad}")
        values = []
        for k, v in fields.items():
            values.append(json.dumps(v) if k in ("pending", "cert_ids") and v is not None else v)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.write() as db:
            db.execute(
                f"UPDATE transactions SET {sets}, updated = ? WHERE alias = ? AND transaction_id = ?",
                (*values, time.time(), alias, transaction_id),
            )

    def bump_polls(self, alias: str, transaction_id: bytes) -> int:
        """Count one more pollReq; returns the new count (atomic)."""
        with self.write() as db:
            db.execute("UPDATE transactions SET polls = polls + 1, updated = ? WHERE alias = ? AND transaction_id = ?",
                       (time.time(), alias, transaction_id))
            row = db.execute("SELECT polls FROM transactions WHERE alias = ? AND transaction_id = ?", (alias, transaction_id)).fetchone()
            return int(row["polls"]) if row else 0

    def remember_nonce(self, alias: str, nonce: bytes) -> bool:
        """Record a senderNonce; False when it was seen before (a replay)."""
        try:
            with self.write() as db:
                db.execute("INSERT INTO nonces (alias, nonce, seen) VALUES (?, ?, ?)", (alias, nonce, time.time()))
            return True
        except sqlite3.IntegrityError:
            return False


def with_fresh_serial(store: Store, ca: str, make: Callable[[int], Any], insert: Callable[[Any, int], int], *, attempts: int = 16) -> tuple[Any, int]:
    """Make a certificate with a fresh random serial and insert it, retrying on a collision."""
    last: Exception | None = None
    for _ in range(attempts):
        serial = random_serial()
        if store.serial_taken(ca, serial):
            continue
        obj = make(serial)
        try:
            return obj, insert(obj, serial)
        except SerialCollision as exc:
            last = exc
    raise RuntimeError(f"could not find a free serial number for CA {ca} after {attempts} attempts: {last}")
