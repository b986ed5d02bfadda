"""``cmpclient bench`` (bulk enrollment) against the test CA and the openssl mock."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cmpclient.cli.main import cli
from cmpclient.client.bulk import BulkReport
from cmpclient.errors import ExitCode


def _bench(*args: str, secret: str = "password"):
    return CliRunner().invoke(cli, ["bench", *args], env={"NO_COLOR": "1", "BENCH_SECRET": secret},
                              catch_exceptions=False)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_bench_against_the_test_ca(testca_server, processes):
    before = len(testca_server.ca.store.all_certificates())
    result = _bench("--url", testca_server.url("ra"), "--authparam", "env:BENCH_SECRET", "--keyid", "bench",
                    "-n", "12", "-c", "3", "--processes", processes, "--implicit-confirm", "--json",
                    "--dn", "CN=bench-{i},UID=bench-p" + processes + "-{i}")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["count"], doc["ok"], doc["failed"]) == (12, 12, 0)
    assert doc["tx_per_s"] > 0 and 0 < doc["latency_ms"]["p50"] <= doc["latency_ms"]["p99"]
    # every enrollment really issued and stored a certificate
    assert len(testca_server.ca.store.all_certificates()) == before + 12


def test_bench_reports_failures_with_an_exit_code(testca_server):
    result = _bench("--url", testca_server.url("ra"), "--authparam", "env:BENCH_SECRET", "--keyid", "bench",
                    "-n", "4", "-c", "2", "--unprotected-errors", secret="wrong")
    assert result.exit_code == ExitCode.REJECTED, result.output  # the CA refused them all
    assert "0/4 ok" in result.stdout and "latency n/a" in result.stdout
    assert "4 x CMPErrorMessage" in result.stderr


def test_bench_against_the_openssl_mock(openssl_mock, pki):
    mock = openssl_mock(srv_ref="bench", srv_secret="env:BENCH_SECRET", rsp_cert=pki.rsp_cert("ec"),
                        grant_implicitconf=True, env={"BENCH_SECRET": "password"})
    result = _bench("--url", mock.url, "--authparam", "env:BENCH_SECRET", "--keyid", "bench", "--newkey",
                    str(pki.rsp_key("ec")), "-n", "10", "-c", "1", "--implicit-confirm")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("10/10 ok")


def test_percentiles_are_nearest_rank():
    report = BulkReport(latencies=[0.01 * i for i in range(1, 101)], ok=100, elapsed=2.0)
    assert report.percentile(50) == pytest.approx(0.50)
    assert report.percentile(99) == pytest.approx(0.99)
    assert report.tx_per_s == 50


def test_worker_processes_are_not_forked_from_a_threaded_process() -> None:
    """A fork copies only the calling thread: with other threads running (an in-process test
    CA, an embedding application) a lock one of them held stays locked in the child, which
    then hangs (seen once in a full test run). Then the pool forks from a forkserver."""
    import threading

    from cmpclient.client.bulk import _pool_context

    assert _pool_context().get_start_method() in ("fork", "forkserver")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert _pool_context().get_start_method() == "forkserver"
    finally:
        stop.set()
        t.join(5)
