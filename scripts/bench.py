"""Speed and memory targets of cmpclient, measured side by side with the openssl peer.

One command starts what it needs on 127.0.0.1 (``cmpclient serve`` with worker processes,
an ``openssl cmp -port`` mock server), runs each workload for cmpclient and for openssl in
the same run, and prints one line per target::

    P1 cold-crmf: cmpclient 142 ms vs openssl 12 ms -> 11.8x (goal <= 150 ms) PASS

Targets (see the speed issue):
  P1  cold ``cmpclient crmf`` (new process), PBM ir + implicit confirm, EC key, local test CA:
      median <= 150 ms (openssl's cold ``openssl cmp -cmd ir`` against the same CA for scale)
  P2  bulk PBM enrollments with implicit confirm against the same server (the openssl mock
      and our CA): >= 1.5x the tx/s of ``openssl cmp -repeat``
  P3  our test CA under ``openssl cmp -repeat`` load (4 clients), really issuing and persisting:
      >= 1.0x the tx/s of openssl's mock server under the same load (the same 4 clients)
  P4  test CA issuance latency with 1,000,000 certificates in its store vs an empty one: <= 1.2x
  P5  test CA resident memory per worker under load: <= 100 MB

Usage: ``.venv/bin/python scripts/bench.py [--quick] [--only P1,P3] [--reps 3] [--p4-rows N] [--json FILE]``
(``--quick`` uses small counts to check the harness itself; P2/P3 run ``--reps`` times,
alternating the two sides, and report medians with the range of the ratios).  Never run
as a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from openssl_peer import PKI, OpenSSLMockServer  # noqa: E402

BIN = Path(sys.executable).parent
CMPCLIENT = str(BIN / "cmpclient") if (BIN / "cmpclient").exists() else None
SECRET_ENV = "BENCH_SECRET"
SECRET = "password"  # the default test CA's `ra` alias secret (test material)
ENV = dict(os.environ, **{SECRET_ENV: SECRET, "NO_COLOR": "1"})


def cmpclient_argv(*args: str) -> list[str]:
    return [CMPCLIENT, *args] if CMPCLIENT else [sys.executable, "-m", "cmpclient", *args]


@dataclass
class Result:
    id: str
    name: str
    ours: float
    theirs: float | None
    unit: str
    goal: str
    passed: bool
    extra: dict = field(default_factory=dict)
    labels: tuple[str, str] = ("cmpclient", "openssl")

    def line(self) -> str:
        ours_label, theirs_label = self.labels
        ratio = f" -> {self.ours / self.theirs:.2f}x" if self.theirs else ""
        theirs = f" vs {theirs_label} {self.theirs:.1f} {self.unit}" if self.theirs is not None else ""
        ratios = self.extra.get("ratios")
        spread = f" [{len(ratios)} runs: {min(ratios):.2f}x-{max(ratios):.2f}x]" if ratios and len(ratios) > 1 else ""
        return (f"{self.id} {self.name}: {ours_label} {self.ours:.1f} {self.unit}{theirs}{ratio} "
                f"(goal {self.goal}) {'PASS' if self.passed else 'FAIL'}{spread}")


def paired(reps: int, ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[float, float, dict]:
    """Run both sides ``reps`` times, alternating (this machine's noise is large);
    medians of each side and every run's ratio."""
    o, t = [], []
    for i in range(reps):  # the order alternates too: neither side always runs first
        if i % 2:
            o.append(ours())
            t.append(theirs())
        else:
            t.append(theirs())
            o.append(ours())
    return statistics.median(o), statistics.median(t), {"ours": o, "theirs": t,
                                                         "ratios": [a / b for a, b in zip(o, t) if b]}


# --- servers ---------------------------------------------------------------------------------


class Serve:
    """``cmpclient serve`` as a subprocess on a free port."""

    def __init__(self, data_dir: Path, workers: int = 2):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.parent / "serve.out"
        with open(self.log, "wb") as out:  # a file, not a pipe: nothing can block the server
            self.proc = subprocess.Popen(
                cmpclient_argv("serve", "--data-dir", str(data_dir), "--port", "0", "--workers", str(workers)),
                stdout=out, stderr=subprocess.STDOUT, env=ENV, start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while True:  # bounded: a silent, hung server cannot stall the bench
            m = re.search(r"listening on (http://\S+)", self.log.read_text(errors="replace"))
            if m:
                self.base = m.group(1)
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited ({self.proc.returncode}): {self.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("serve did not start within 90 s")
            time.sleep(0.05)
        self.data_dir = data_dir

    def url(self, alias: str = "ra") -> str:
        return f"{self.base}/ejbca/publicweb/cmp/{alias}"

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, timeout=30).stdout.split()
        return [int(p) for p in out] or [self.proc.pid]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.proc.kill()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- workloads -------------------------------------------------------------------------------


def timed(argv: list[str], *, cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took


def openssl_ir(server_url: str, key: Path, subject: str, cert_out: Path, *, ref: str = "bench", repeat: int = 1,
               keep_alive: int | None = None) -> list[str]:
    argv = ["openssl", "cmp", "-config", "", "-server", server_url, "-cmd", "ir", "-ref", ref,
            "-secret", f"env:{SECRET_ENV}", "-newkey", str(key), "-subject", subject, "-implicit_confirm",
            "-certout", str(cert_out), "-unprotected_errors"]
    if repeat > 1:
        argv += ["-repeat", str(repeat)]
    if keep_alive is not None:
        argv += ["-keep_alive", str(keep_alive)]
    return argv


def p1_cold_crmf(serve: Serve, work: Path, runs: int) -> Result:
    ours, theirs = [], []
    key = work / "p1-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)],
                   check=True, capture_output=True, timeout=60)
    for i in range(runs):
        ours.append(timed(cmpclient_argv(
            "crmf", "--url", serve.url(), "--authparam", f"env:{SECRET_ENV}", "--keyid", "bench",
            "--dn", f"CN=p1-{i},UID=p1-ours-{i}", "--reqnewkeyspec", "secp256r1", "--implicit-confirm",
            "--certout", str(work / f"p1-{i}.pem"), "--keyout", str(work / f"p1-{i}-key.pem"), "-q"), cwd=work))
        theirs.append(timed(openssl_ir(serve.url(), key, f"/CN=p1-{i}/UID=p1-openssl-{i}", work / f"p1o-{i}.pem"),
                            cwd=work))
    o, t = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    return Result("P1", "cold-crmf", o, t, "ms", "<= 150 ms", o <= 150, {"runs": runs})


def tx_rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def ours_bulk(url: str, count: int, work: Path, *, newkey: Path | None = None, concurrency: int = 4,
              processes: int = 2, ref: str = "bench") -> float:
    argv = cmpclient_argv("bench", "--url", url, "--authparam", f"env:{SECRET_ENV}", "--keyid", ref,
                          "-n", str(count), "-c", str(concurrency), "--processes", str(processes),
                          "--implicit-confirm", "--json", "--dn", "CN=bulk-{i},UID=bulk-%d-{i}" % time.monotonic_ns())
    if newkey:
        argv += ["--newkey", str(newkey)]
    proc = subprocess.run(argv, cwd=work, env=ENV, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"cmpclient bench failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    return float(doc["tx_per_s"])


def openssl_repeat(url: str, count: int, key: Path, work: Path, *, clients: int = 1, ref: str = "bench",
                   keep_alive: int | None = None, tag: str = "r") -> float:
    per = max(1, count // clients)
    start = time.perf_counter()
    procs = [subprocess.Popen(openssl_ir(url, key, f"/CN=rep-{tag}-{c}/UID=rep-{tag}-{c}-{time.monotonic_ns()}",
                                         work / f"rep-{tag}-{c}.pem", ref=ref, repeat=per, keep_alive=keep_alive),
                              cwd=work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in range(clients)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    took = time.perf_counter() - start
    failed = [o for p, o in zip(procs, outs) if p.returncode != 0]
    if failed:
        raise SystemExit("openssl -repeat failed:\n" + failed[0][-2000:])
    return tx_rate(per * clients, took)


def p2_bulk(serve: Serve, mock: OpenSSLMockServer, pki: PKI, work: Path, count: int, reps: int) -> list[Result]:
    key = pki.rsp_key("ec")
    results = []
    # The mock serves one connection at a time and closes it when a transaction ends;
    # the client starts each transaction on a new connection (as openssl does), so
    # concurrent workers queue at the mock's accept instead of starving each other.
    ours_mock, theirs_mock, runs = paired(reps, lambda: ours_bulk(mock.url, count, work, newkey=key),
                                          lambda: openssl_repeat(mock.url, count, key, work, tag="p2m"))
    results.append(Result("P2", "bulk-vs-openssl-repeat (openssl mock)", ours_mock, theirs_mock, "tx/s",
                          ">= 1.5x", ours_mock >= 1.5 * theirs_mock, runs))
    key_ca = work / "p1-key.pem"
    ours_ca, theirs_ca, runs = paired(reps, lambda: ours_bulk(serve.url(), count, work),
                                      lambda: openssl_repeat(serve.url(), count, key_ca, work, tag="p2c"))
    results.append(Result("P2", "bulk-vs-openssl-repeat (our test CA)", ours_ca, theirs_ca, "tx/s",
                          ">= 1.5x", ours_ca >= 1.5 * theirs_ca, runs))
    return results


def p3_ca_under_load(serve: Serve, mock: OpenSSLMockServer, pki: PKI, work: Path, count: int, clients: int,
                     reps: int) -> list[Result]:
    peak: list[float] = []

    def sample() -> None:
        peak.append(max(rss_mb(pid) for pid in serve.worker_pids()))

    key = work / "p1-key.pem"
    import threading

    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.2):
            sample()

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    # "Under the same load": the same openssl clients, the same count, against the mock.
    ours, theirs, runs = paired(
        reps, lambda: openssl_repeat(serve.url(), count, key, work, clients=clients, keep_alive=0, tag="p3c"),
        lambda: openssl_repeat(mock.url, count, pki.rsp_key("ec"), work, clients=clients, keep_alive=0, tag="p3m"))
    stop.set()
    t.join()
    p5 = max(peak) if peak else 0.0
    return [
        Result("P3", f"test-CA-under-openssl-load ({clients} clients)", ours, theirs, "tx/s", ">= 1.0x",
               ours >= theirs, runs),
        Result("P5", "test-CA-RSS-per-worker", p5, None, "MB", "<= 100 MB", 0 < p5 <= 100,
               {"workers": len(serve.worker_pids())}),
    ]


def p4_big_store(work: Path, rows: int, samples: int) -> Result:
    """Issuance latency in-process: empty store vs one with ``rows`` certificates."""
    sys.path.insert(0, str(ROOT))
    from cmpclient.keys import generate_key
    from cmpclient.message import body as B
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.pkimessage import assemble, encode_message
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import MACProtection, PBMParams, popo_signer, protect_message
    from cmpclient.testca import TestCA

    def latency(data_dir: Path, fill: int) -> float:
        ca = TestCA.open(None, data_dir)
        try:
            if fill:
                from cmpclient.testca.core import DB_FILE

                fill_store(data_dir / DB_FILE, fill)
            prot = MACProtection(SECRET.encode(), PBMParams.new(iterations=500), sender_kid=b"bench")
            key = generate_key("secp256r1")
            times = []
            for i in range(samples):
                req = CertRequestBuilder().subject(f"CN=p4-{i},UID=p4-{fill}-{i}").public_key(key).popo_signature(
                    popo_signer(key)).build()
                hb = (HeaderBuilder().sender(f"CN=p4-{i}").recipient("").protection_alg(prot.algorithm_identifier())
                      .sender_kid(b"bench").implicit_confirm())
                der = encode_message(protect_message(assemble(hb.build(), B.cert_req_body("ir", [req])), prot))
                start = time.perf_counter()
                status, rsp = ca.handle("ra", der)
                times.append(time.perf_counter() - start)
                assert status == 200 and rsp
            return statistics.median(times)
        finally:
            ca.close()

    latency(work / "p4-warmup", 0)  # first-use costs (imports, caches) are not the store's
    empty = latency(work / "p4-empty", 0)
    full = latency(work / "p4-full", rows)
    return Result("P4", "issuance-latency", full * 1000, empty * 1000, "ms", "<= 1.2x",
                  full <= 1.2 * empty, {"rows": rows}, labels=(f"store with {rows:,} certs", "empty store"))


def fill_store(db_path: Path, rows: int) -> None:
    """Insert synthetic certificate rows (random serials, unique fingerprints) fast."""
    import secrets as _s

    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        now = time.time()
        batch = 20_000
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            db.executemany(
                "INSERT INTO certificates (ca, serial, subject, issuer, not_before, not_after, username, der, fingerprint)"
                " VALUES ('ManagementCA', ?, ?, 'CN=ManagementCA,O=cmpclient test,C=SE', ?, ?, ?, x'3000', ?)",
                [(_s.token_hex(16), f"CN=filler-{start + i}", now, now + 86400, f"filler-{start + i}", _s.token_hex(32))
                 for i in range(n)],
            )
            db.commit()
    finally:
        db.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, to check the harness")
    ap.add_argument("--only", default="P1,P2,P3,P4,P5")
    ap.add_argument("--p4-rows", type=int, default=1_000_000)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--reps", type=int, default=3, help="runs of each P2/P3 workload (medians are reported)")
    args = ap.parse_args()
    only = set(args.only.upper().split(","))
    # An installed package has byte-compiled modules; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE (set on this machine) recompiles ~40 modules on every cold
    # start (~150 ms).  Measure what users run: compile once, explicitly.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "cmpclient")], check=True, timeout=300)
    runs = 5 if args.quick else 15
    reps = 1 if args.quick else args.reps
    count = 40 if args.quick else 400
    rows = 20_000 if args.quick else args.p4_rows
    pki = PKI(ROOT / "fixtures" / "pki")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cmpclient-bench-") as tmp:
        work = Path(tmp)
        serve = Serve(work / "ca", workers=2)
        try:
            with OpenSSLMockServer(srv_ref="bench", srv_secret=f"env:{SECRET_ENV}", rsp_cert=pki.rsp_cert("ec"),
                                   grant_implicitconf=True, env=ENV) as mock:
                results.append(p1_cold_crmf(serve, work, runs))  # also makes the EC key the others use
                if "P1" in only:
                    print(results[-1].line(), flush=True)
                else:
                    results.pop()
                if "P2" in only:
                    for r in p2_bulk(serve, mock, pki, work, count, reps):
                        results.append(r)
                        print(r.line(), flush=True)
                if only & {"P3", "P5"}:
                    for r in p3_ca_under_load(serve, mock, pki, work, count, clients=4, reps=reps):
                        if r.id in only:
                            results.append(r)
                            print(r.line(), flush=True)
        finally:
            serve.stop()
        if "P4" in only:
            results.append(p4_big_store(work, rows, samples=30 if args.quick else 100))
            print(results[-1].line(), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
