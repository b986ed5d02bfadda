#!/usr/bin/env python3
"""Load the test CA: N concurrent clients x M enrolments against ``cmpclient serve`` (issue #6).

    python scripts/load.py --clients 8 --count 10000 --workers 2 --out /tmp/load

Starts ``cmpclient serve --workers W`` (gunicorn worker processes, SQLite WAL store) in a
data directory of its own, runs ``--clients`` client *processes* with our client library
against alias ``ra`` (PBM-protected ir/cr, RA mode), each doing ``--count`` enrolments
in a mix of

* implicit confirmation granted (no certConf),
* ``enroll`` with its explicit certConf,
* ``enroll(confirm=False)`` and a separate ``confirm`` (certConf as its own transaction step),

and records every certificate a client received (DER, serial, transactionID) in a JSON
lines file per client, written as soon as the certificate arrives.  Then it checks the
store (:func:`verify`):

* ``PRAGMA integrity_check`` is ``ok``;
* the number of certificates of this run in the store equals the successes;
* every certificate a client received is in the store, byte for byte;
* no serial appears twice (store and clients);
* every confirmed transaction is ``closed`` and its certificate ``confirmed``; a
  transaction is ``awaiting_conf`` only when its client could not send the certConf.

Exit status 0 when there were no failures and every check held.  ``scripts/crash.py``
reuses this module to kill the server in the middle of a run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECRET = b"password"
RECIPIENT = "CN=ManagementCA,O=cmpclient test,C=SE"
LISTEN = re.compile(r"cmpclient serve: listening on http://127\.0\.0\.1:(\d+)")


# ============================================================================ server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m cmpclient serve`` as a subprocess in its own process group."""

    def __init__(self, data_dir: Path, *, port: int, workers: int = 2, log_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.workers = workers
        self.log_dir = Path(log_dir or self.data_dir.parent)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ejbca/publicweb/cmp/ra"

    def start(self, timeout: float = 90.0) -> "Server":
        self.starts += 1
        out = self.log_dir / f"serve-{self.starts}.out"
        err = self.log_dir / f"serve-{self.starts}.err"
        argv = [sys.executable, "-m", "cmpclient", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
                "--workers", str(self.workers)]
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, cwd=REPO,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if LISTEN.search(out.read_text(errors="replace")):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {err.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("serve did not announce its port")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (master and gunicorn workers)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9


# ============================================================================ clients


def client_main(k: int, url: str, count: int, tag: str, out_dir: str, deadline: float, retry: float) -> dict[str, Any]:
    """One client process: ``count`` enrolments; each received certificate goes to a file
    at once. With ``retry`` > 0 a transport failure is retried (a new transaction) for up
    to that many seconds (used while the server is killed and restarted)."""
    import logging

    logging.disable(logging.CRITICAL)
    from cryptography.hazmat.primitives import serialization

    from cmpclient.client import ClientConfig, enroll
    from cmpclient.client.operations import confirm
    from cmpclient.errors import CMPClientError, TransportError
    from cmpclient.keys import generate_key
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import MACProtection, popo_signer
    from cmpclient.transport.http import HTTPTransport

    transport = HTTPTransport(url, timeout=60)
    rec_path = Path(out_dir) / f"client-{k}.jsonl"
    stats = {"ok": 0, "failed": 0, "retried": 0, "confirm_failed": 0, "errors": {}}
    with open(rec_path, "a", buffering=1) as rec:
        for i in range(count):
            if time.time() > deadline:
                break
            mode = ("implicit", "certconf", "separate")[i % 3]
            kind = "cr" if i % 5 == 4 else "ir"
            name = f"{tag}-c{k}-{i}"
            key = generate_key("secp256r1")
            req = (CertRequestBuilder().subject(f"CN={name},UID={name},O=cmpclient test").public_key(key)
                   .popo_signature(popo_signer(key)).build())
            first_try = time.time()
            while True:
                cfg = ClientConfig(transport=transport, protection=MACProtection(SECRET, sender_kid=b"load"),
                                   recipient=RECIPIENT, implicit_confirm=(mode == "implicit"))
                try:
                    res = enroll(cfg, kind, req, confirm=(mode == "certconf"))
                    break
                except TransportError as exc:
                    if retry > 0 and time.time() - first_try < retry:
                        stats["retried"] += 1
                        time.sleep(0.2)
                        continue
                    res = exc
                    break
                except CMPClientError as exc:
                    res = exc
                    break
            if isinstance(res, Exception):
                stats["failed"] += 1
                key_ = f"{type(res).__name__}: {str(res)[:120]}"
                stats["errors"][key_] = stats["errors"].get(key_, 0) + 1
                continue
            cert_der = res.certificate.public_bytes(serialization.Encoding.DER)
            entry = {"name": name, "mode": mode, "kind": kind, "serial": res.certificate.serial_number,
                     "der": cert_der.hex(), "tid": res.transaction_id.hex() if getattr(res, "transaction_id", None) else None,
                     "implicit": bool(getattr(res, "implicit_confirm", False)), "confirmed": mode != "separate"}
            if mode == "separate":
                rec.write(json.dumps(entry) + "\n")  # received: on record before the certConf
                try:
                    confirm(cfg, res.confirm_state)
                    entry = dict(entry, confirmed=True, confirm_line=True)
                except CMPClientError as exc:
                    stats["confirm_failed"] += 1
                    key_ = f"certConf {type(exc).__name__}: {str(exc)[:100]}"
                    stats["errors"][key_] = stats["errors"].get(key_, 0) + 1
                    continue
            rec.write(json.dumps(entry) + "\n")
            stats["ok"] += 1
    return stats


def _client_entry(args: tuple) -> dict[str, Any]:
    return client_main(*args)


def run_clients(url: str, *, clients: int, count: int, tag: str, out_dir: Path, max_seconds: float = 1e9,
                retry: float = 0.0) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + max_seconds
    t0 = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(clients) as pool:
        per = pool.map(_client_entry, [(k, url, count, tag, str(out_dir), deadline, retry) for k in range(clients)])
    total: dict[str, Any] = {"ok": 0, "failed": 0, "retried": 0, "confirm_failed": 0, "errors": {}}
    for s in per:
        for f in ("ok", "failed", "retried", "confirm_failed"):
            total[f] += s[f]
        for e, n in s["errors"].items():
            total["errors"][e] = total["errors"].get(e, 0) + n
    total["seconds"] = round(time.time() - t0, 1)
    total["per_second"] = round(total["ok"] / max(total["seconds"], 0.001), 1)
    return total


def received_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every certificate line the clients wrote (a 'separate' one may appear twice:
    when received and after its certConf; the later line wins)."""
    seen: dict[str, dict[str, Any]] = {}
    for f in sorted(out_dir.glob("client-*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                seen[r["der"]] = r
    return list(seen.values())


# ============================================================================ checks


def verify(db_path: Path, out_dir: Path, tag: str, *, successes: int | None = None) -> dict[str, Any]:
    """Check the store against what the clients received; returns figures and ``problems``."""
    problems: list[str] = []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        if [r[0] for r in integrity] != ["ok"]:
            problems.append(f"integrity_check: {integrity[:5]}")
        rows = db.execute(
            "SELECT serial, ca, der, confirmed, transaction_id, status FROM certificates WHERE subject LIKE ?",
            (f"%{tag}-c%",),
        ).fetchall()
        dup = db.execute("SELECT ca, serial, COUNT(*) FROM certificates GROUP BY ca, serial HAVING COUNT(*) > 1").fetchall()
        if dup:
            problems.append(f"duplicate serials in the store: {dup[:5]}")
        by_der = {bytes(r[2]): r for r in rows}
        received = received_records(out_dir)
        missing = [r["name"] for r in received if bytes.fromhex(r["der"]) not in by_der]
        if missing:
            problems.append(f"{len(missing)} received certificate(s) missing from the store: {missing[:5]}")
        serials = [r["serial"] for r in received]
        if len(set(serials)) != len(serials):
            problems.append("clients received a serial twice")
        confirmed_recs = [r for r in received if r.get("confirmed")]
        if successes is not None and len(rows) != successes:
            problems.append(f"store has {len(rows)} certificates of this run, clients counted {successes} successes")
        # certConf / transaction state
        bad_tx = 0
        unconfirmed = 0
        for r in confirmed_recs:
            row = by_der.get(bytes.fromhex(r["der"]))
            if row is None:
                continue
            if not row[3]:
                unconfirmed += 1
            tid = row[4]
            if tid is not None:
                st = db.execute("SELECT state FROM transactions WHERE alias = 'ra' AND transaction_id = ?", (tid,)).fetchone()
                if st is None or st[0] != "closed":
                    bad_tx += 1
        if unconfirmed:
            problems.append(f"{unconfirmed} certificate(s) the client confirmed are not marked confirmed")
        if bad_tx:
            problems.append(f"{bad_tx} confirmed transaction(s) not closed")
        states = dict(db.execute(
            "SELECT t.state, COUNT(*) FROM certificates c JOIN transactions t ON t.alias = 'ra' AND t.transaction_id = c.transaction_id"
            " WHERE c.subject LIKE ? GROUP BY t.state", (f"%{tag}-c%",)).fetchall())
        return {
            "integrity_check": integrity[0][0] if integrity else None,
            "store_certificates": len(rows),
            "client_received": len(received),
            "client_confirmed": len(confirmed_recs),
            "unique_serials_store": len({(r[1], r[0]) for r in rows}),
            "transaction_states": states,
            "problems": problems,
        }
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--count", type=int, default=100, help="enrolments per client")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-seconds", type=float, default=1e9, help="stop the clients after this long")
    ap.add_argument("--url", default=None, help="use a running server (alias ra) instead of starting one")
    ap.add_argument("--data-dir", type=Path, default=None, help="with --url: the server's data directory, for the checks")
    args = ap.parse_args(argv)
    import tempfile

    out = args.out or Path(tempfile.mkdtemp(prefix="cmpload-"))
    out.mkdir(parents=True, exist_ok=True)
    tag = f"load{int(time.time())}"
    server = None
    if args.url:
        url, data_dir = args.url, args.data_dir
    else:
        server = Server(out / "data", port=free_port(), workers=args.workers, log_dir=out).start()
        url, data_dir = server.url, out / "data"
    try:
        print(f"load: {args.clients} clients x {args.count} enrolments against {url} ({args.workers} workers)", flush=True)
        stats = run_clients(url, clients=args.clients, count=args.count, tag=tag, out_dir=out / "clients",
                            max_seconds=args.max_seconds)
    finally:
        rc = server.stop() if server else 0
    result: dict[str, Any] = {"clients": args.clients, "count": args.count, "workers": args.workers, **stats,
                              "server_exit": rc}
    if data_dir is not None:
        result["store"] = verify(Path(data_dir) / "testca.sqlite", out / "clients", tag, successes=stats["ok"])
    (out / "load-report.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    ok = stats["failed"] == 0 and stats["confirm_failed"] == 0 and not result.get("store", {}).get("problems")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
