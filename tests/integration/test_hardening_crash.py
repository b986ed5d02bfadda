"""Load and crash, bounded for CI (issue #6): ``scripts/load.py`` and ``scripts/crash.py``
with small counts against a real ``cmpclient serve --workers 2`` (gunicorn, SQLite WAL).

* load: several client processes enrol concurrently (implicit confirm, certConf, separate
  certConf); no failure; the store holds exactly the certificates the clients got, no
  serial twice, every confirmed transaction closed, ``PRAGMA integrity_check`` ok;
* crash: the server's whole process group gets SIGKILL in the middle of the load and is
  restarted on the same port and data directory; the database passes the integrity check
  right after the kill and at the end, and every certificate a client received is in it.

The full-size runs (8 clients x 10 000 enrolments, several kills) are the scripts' job;
README "Reliability" has the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import crash as crash_script  # noqa: E402
import load as load_script  # noqa: E402


def test_load_small_is_consistent(tmp_path):
    out = tmp_path / "load"
    rc = load_script.main(["--clients", "3", "--count", "12", "--workers", "2", "--out", str(out)])
    import json

    report = json.loads((out / "load-report.json").read_text())
    assert rc == 0, report
    assert report["ok"] == 36 and report["failed"] == 0
    store = report["store"]
    assert store["integrity_check"] == "ok" and not store["problems"]
    assert store["store_certificates"] == store["client_received"] == store["unique_serials_store"] == 36
    assert store["transaction_states"] == {"closed": 36}


def test_kill_9_mid_load_loses_nothing(tmp_path):
    lines: list[str] = []
    # The kill is triggered by progress (20 of 120 certificates received), not by a clock:
    # faster clients once finished before a 4 s timer fired.
    res = crash_script.run(clients=3, count=40, kills=1, interval=60.0, kill_after=20, workers=2,
                           out=tmp_path / "crash", log=lines.append)
    assert len(res["kills"]) == 1, lines
    assert res["kills"][0]["integrity_after_kill"] == "ok"
    assert 20 <= res["kills"][0]["after_received"] < 3 * 40, "the kill should land in the middle of the load"
    assert not res["problems"], res["problems"]
    store = res["store"]
    assert store["integrity_check"] == "ok"
    assert store["client_received"] > 0 and store["issued_not_received"] >= 0
    assert res["ok"] + res["failed"] + res["confirm_failed"] == 3 * 40
