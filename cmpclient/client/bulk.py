"""Bulk enrollment: N transactions with C concurrent workers, for load and benchmarks.

Each worker owns its :class:`ClientConfig` (and so its transport: one kept-alive connection
per worker).  Workers are threads by default; ``processes > 1`` starts that many worker
processes (each running ``concurrency // processes`` threads), which is what scales on
more than one core since building and checking messages is CPU-bound Python.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cmpclient.errors import CMPClientError, ExitCode

#: Makes a worker's configuration: () -> (ClientConfig, cleanup).
ConfigFactory = Callable[[], "tuple[Any, Callable[[], None]]"]
#: Makes the i-th request: (i) -> (kind, request, expected public key or None).
RequestFactory = Callable[[int], "tuple[str, Any, Any]"]


@dataclass
class BulkReport:
    """What a bulk run did: counts, failures by kind, and per-transaction latencies (s)."""

    count: int = 0
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    serials: list[int] = field(default_factory=list)
    #: failures by the exit status their error carries (:class:`ExitCode` value -> count)
    exit_codes: dict[int, int] = field(default_factory=dict)

    def record_failure(self, exc: CMPClientError) -> None:
        """Count one failed transaction under its kind (class and message) and exit status."""
        self.count += 1
        self.failed += 1
        key = f"{type(exc).__name__}: {exc.message[:80]}"
        self.errors[key] = self.errors.get(key, 0) + 1
        code = int(exc.exit_code)
        self.exit_codes[code] = self.exit_codes.get(code, 0) + 1

    def exit_code(self) -> ExitCode:
        """OK without failures; else the exit status of the most frequent kind of failure,
        the lowest of those as frequent (so refused connections everywhere give 4, rejections
        7, timeouts 8, bad answers 5, protection failures 6)."""
        if not self.failed:
            return ExitCode.OK
        if not self.exit_codes:
            return ExitCode.FAILURE
        return ExitCode(min(self.exit_codes, key=lambda c: (-self.exit_codes[c], c)))

    @property
    def tx_per_s(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile (nearest rank) in seconds; 0 when nothing succeeded."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def merge(self, other: "BulkReport") -> None:
        self.count += other.count
        self.ok += other.ok
        self.failed += other.failed
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        for c, v in other.exit_codes.items():
            self.exit_codes[c] = self.exit_codes.get(c, 0) + v
        self.latencies += other.latencies
        self.serials += other.serials

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "ok": self.ok,
            "failed": self.failed,
            "errors": dict(self.errors),
            "elapsed_s": round(self.elapsed, 4),
            "tx_per_s": round(self.tx_per_s, 2),
            "latency_ms": {f"p{p}": round(self.percentile(p) * 1000, 2) for p in (50, 90, 99)},
        }


def _worker(
    make_config: ConfigFactory,
    make_request: RequestFactory,
    next_index: Callable[[], int | None],
    report: BulkReport,
    lock: threading.Lock,
    progress: Callable[[int], None] | None,
) -> None:
    from cmpclient.client.operations import enroll

    config, cleanup = make_config()
    try:
        while True:
            i = next_index()
            if i is None:
                return
            kind, request, expected = make_request(i)
            started = time.perf_counter()
            try:
                result = enroll(config, kind, request, expected_public_key=expected)
            except CMPClientError as exc:
                with lock:
                    report.record_failure(exc)
            else:
                took = time.perf_counter() - started
                with lock:
                    report.count += 1
                    report.ok += 1
                    report.latencies.append(took)
                    report.serials.append(result.certificate.serial_number)
            if progress:
                progress(1)
    finally:
        cleanup()


def run_threads(
    make_config: ConfigFactory,
    make_request: RequestFactory,
    *,
    count: int,
    concurrency: int = 1,
    start: int = 0,
    progress: Callable[[int], None] | None = None,
) -> BulkReport:
    """Run ``count`` enrollments (indices ``start`` .. ``start+count-1``) on ``concurrency`` threads."""
    report = BulkReport()
    lock = threading.Lock()
    counter = iter(range(start, start + count))

    def next_index() -> int | None:
        with lock:
            return next(counter, None)

    began = time.perf_counter()
    threads = [
        threading.Thread(target=_worker, args=(make_config, make_request, next_index, report, lock, progress), daemon=True)
        for _ in range(max(1, min(concurrency, count)))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.elapsed = time.perf_counter() - began
    return report


def _process_main(args: tuple) -> BulkReport:  # pragma: no cover - runs in child processes
    make_config, make_request, count, concurrency, start = args
    return run_threads(make_config, make_request, count=count, concurrency=concurrency, start=start)


def run_bulk(
    make_config: ConfigFactory,
    make_request: RequestFactory,
    *,
    count: int,
    concurrency: int = 1,
    processes: int = 1,
    progress: Callable[[int], None] | None = None,
) -> BulkReport:
    """Run ``count`` enrollments with ``concurrency`` workers over ``processes`` processes.

    With processes, the factories must be picklable (module-level functions or partials);
    progress is then reported per finished process.
    """
    if count < 1 or concurrency < 1 or processes < 1:
        from cmpclient.errors import UsageError

        raise UsageError("count, concurrency and processes must be at least 1")
    if processes == 1:
        return run_threads(make_config, make_request, count=count, concurrency=concurrency, progress=progress)
    share, extra = divmod(count, processes)
    jobs, start = [], 0
    for p in range(processes):
        n = share + (1 if p < extra else 0)
        if n:
            jobs.append((make_config, make_request, n, max(1, concurrency // processes), start))
            start += n
    began = time.perf_counter()
    total = BulkReport()
    with _pool_context().Pool(len(jobs)) as pool:
        for part in pool.imap_unordered(_process_main, jobs):
            total.merge(part)
            if progress:
                progress(part.count)
    total.elapsed = time.perf_counter() - began
    return total


def _pool_context() -> Any:
    """fork when this process has one thread (the CLI: workers start at once); otherwise
    forkserver, which forks from a clean single-threaded process. A fork copies only the
    calling thread: a lock another thread held at that moment (a module being imported, a
    logging handler, a server thread of the embedding application) stays locked in the
    child for ever, and the worker hangs."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx
