#!/usr/bin/env python3
"""kill -9 the test CA in the middle of a load run, restart it, check the store (issue #6).

    python scripts/crash.py --clients 8 --count 500 --kills 3 --out /tmp/crash

Starts ``cmpclient serve --workers 2`` on a fixed port, runs the clients of
``scripts/load.py`` against it (a transport failure is retried with a new transaction
while the server is down), and ``--kills`` times: waits ``--interval`` seconds, sends
SIGKILL to the server's whole process group (master and gunicorn workers, no chance to
clean up), runs ``PRAGMA integrity_check`` on the database the dead server left, and
restarts the server on the same port and data directory.  When the clients are done:

* ``PRAGMA integrity_check`` is ``ok`` (after every kill and at the end);
* every certificate a client received is in the store, byte for byte (a certificate
  the server issued but whose answer died with it may be in the store without a client
  having it: counted as ``issued_not_received``, not a failure);
* no duplicate serials; every transaction a client confirmed is closed.

Exit 0 when every check held.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402  (scripts/load.py)


def integrity(db_path: Path) -> str:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
        return "ok" if [r[0] for r in rows] == ["ok"] else repr(rows[:5])
    finally:
        db.close()


def run(*, clients: int, count: int, kills: int, interval: float, workers: int, out: Path, retry: float = 120.0,
        kill_after: int | None = None, log=print) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    tag = f"crash{int(time.time())}"
    server = load.Server(data_dir, port=load.free_port(), workers=workers, log_dir=out).start()
    result: dict[str, Any] = {"clients": clients, "count": count, "workers": workers, "kills": [], "problems": []}
    stats: dict[str, Any] = {}

    def drive() -> None:
        stats.update(load.run_clients(server.url, clients=clients, count=count, tag=tag, out_dir=out / "clients",
                                      retry=retry))

    t = threading.Thread(target=drive, name="load-clients")
    t.start()
    try:
        last = 0
        for n in range(kills):
            # Kill after --interval seconds, or (--kill-after N) as soon as the clients hold N more
            # certificates than at the last kill: progress, not time, so it lands mid-load at any speed.
            deadline = time.time() + interval
            while time.time() < deadline and t.is_alive():
                if kill_after is not None and len(load.received_records(out / "clients")) >= last + kill_after:
                    break
                time.sleep(0.1)
            if not t.is_alive():
                log(f"crash: clients finished before kill {n + 1}; raise --count or lower --interval")
                break
            received = last = len(load.received_records(out / "clients"))
            server.kill()  # SIGKILL to the process group: master and workers
            check = integrity(data_dir / "testca.sqlite")
            result["kills"].append({"after_received": received, "integrity_after_kill": check})
            log(f"crash: kill -9 #{n + 1} with {received} certificates received; integrity_check after kill: {check}")
            if check != "ok":
                result["problems"].append(f"integrity_check after kill {n + 1}: {check}")
            server.start()
        t.join()
    finally:
        if t.is_alive():
            t.join()
        rc = server.stop()
    result.update(stats)
    result["server_exit"] = rc
    store = load.verify(data_dir / "testca.sqlite", out / "clients", tag)
    store["issued_not_received"] = store["store_certificates"] - store["client_received"]
    result["store"] = store
    result["problems"] += store["problems"]
    (out / "crash-report.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--count", type=int, default=200, help="enrolments per client")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--interval", type=float, default=20.0, help="seconds of load before each kill")
    ap.add_argument("--kill-after", type=int, default=None,
                    help="kill as soon as the clients have received this many more certificates (--interval is then the cap)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import tempfile

    out = args.out or Path(tempfile.mkdtemp(prefix="cmpcrash-"))
    res = run(clients=args.clients, count=args.count, kills=args.kills, interval=args.interval, workers=args.workers, out=out,
              kill_after=args.kill_after)
    print(json.dumps(res, indent=1))
    return 0 if not res["problems"] and len(res["kills"]) == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
