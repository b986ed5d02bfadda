"""``cmpclient bench``: N enrollments with C concurrent workers against any CMP server.

Prints transactions per second and latency percentiles (p50/p90/p99) of the enrollments that
succeeded (``n/a``, ``null`` in JSON, when none did); ``--json`` prints one document.  A run
with failures exits with the status of its most frequent kind of failure (:meth:`BulkReport.exit_code`).  Also the load tool of the reliability work.  Each worker keeps its own
connection; ``--processes`` spreads workers over processes (building and checking CMP
messages is CPU-bound Python).
"""

from __future__ import annotations

import functools
from typing import Any

import click

from cmpclient.cli.config import ProfileCommand
from cmpclient.cli.enroll_cmd import _apply, _newkey_options
from cmpclient.cli.options import auth_options, build_client, common_options, opt, server_options, trust_options, unprotected_option
from cmpclient.cli.render import handle_errors
from cmpclient.cli.results import begin
from cmpclient.errors import ExitCode, UsageError


def _config_factory(params: dict[str, Any]) -> tuple[Any, Any]:
    return build_client(params)


def _request_factory(params: dict[str, Any], key_pem: bytes | None, i: int) -> tuple[str, Any, Any]:
    from cmpclient.keys import generate_key
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import popo_signer

    if key_pem is not None:
        key, signer = _cached_key(key_pem)
    else:
        key = generate_key(params.get("reqnewkeyspec") or "secp256r1")
        signer = popo_signer(key)
    subject = params["dn"].replace("{i}", str(i))
    request = CertRequestBuilder().subject(subject).public_key(key).popo_signature(signer)
    return ("cr" if params.get("use_cr") else "ir"), request, None


@functools.lru_cache(maxsize=4)
def _cached_key(pem: bytes) -> tuple[Any, Any]:
    """The --newkey key and its POPO signer, made once (not per request)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from cmpclient.protection import popo_signer

    key = load_pem_private_key(pem, None)
    return key, popo_signer(key)


_BENCH_OPTS = [
    click.command("bench", cls=ProfileCommand),
    opt("--count", "-n", name="count", type=click.IntRange(min=1), default=100, show_default=True,
        help="Number of enrollments."),
    opt("--concurrency", "-c", name="concurrency", type=click.IntRange(min=1), default=4, show_default=True,
        help="Concurrent workers (each on its own connections)."),
    opt("--processes", name="processes", type=click.IntRange(min=1), default=1, show_default=True,
        help="Worker processes to spread the workers over (use the cores)."),
    opt("--cr", name="use_cr", is_flag=True, default=False, help="Send cr instead of ir."),
    opt("--dn", "--subject", name="dn", default="CN=bench-{i},UID=bench{i}", show_default=True,
        help="Subject template; {i} is the enrollment's number."),
    *_newkey_options,
    opt("--implicit-confirm", name="implicit_confirm", is_flag=True, default=False,
        help="Ask for implicit confirmation (no certConf)."),
    server_options, auth_options, unprotected_option, trust_options, common_options,
    click.pass_context, handle_errors,
]


def bench(ctx: click.Context, **_: Any) -> None:
    """Run --count enrollments with --concurrency workers and report tx/s and latency.

    Latency percentiles are of the enrollments that succeeded (n/a, null with --json,
    when none did). Failures are counted by kind on stderr. Exit status: 0 when all
    succeeded, else that of the most frequent kind of failure (4 transport, 5 protocol,
    6 protection, 7 rejected by the CA, 8 timeout; between kinds as frequent the lowest).
    """
    from cmpclient.client.bulk import run_bulk

    out = begin(ctx)
    params = dict(ctx.params)
    if params.get("newkey") and params.get("reqnewkeyspec"):
        raise UsageError("give --newkey or --reqnewkeyspec, not both")
    key_pem = None
    if params.get("newkey"):
        from cryptography.hazmat.primitives import serialization

        from cmpclient.cli.options import read_opt_secret
        from cmpclient.keys import load_private_key

        key = load_private_key(params["newkey"], read_opt_secret(params, "newkeypass", what="--newkeypass"),
                               password_option="--newkeypass")
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    # Fail early (bad options, unreadable secrets) before starting any worker.
    _, cleanup = build_client(params, ctx=ctx)
    cleanup()
    make_config = functools.partial(_config_factory, params)
    make_request = functools.partial(_request_factory, params, key_pem)
    count = params["count"]
    if out.interactive:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=out.console) as bar:
            task = bar.add_task("enrolling", total=count)
            report = run_bulk(make_config, make_request, count=count, concurrency=params["concurrency"],
                              processes=params["processes"], progress=lambda n: bar.advance(task, n))
    else:
        report = run_bulk(make_config, make_request, count=count, concurrency=params["concurrency"],
                          processes=params["processes"])
    doc = report.to_dict()
    doc.update(concurrency=params["concurrency"], processes=params["processes"])
    if not report.latencies:
        doc["latency_ms"] = {p: None for p in doc["latency_ms"]}  # nothing succeeded: no latency
    code = report.exit_code()
    missing = count - report.count
    if missing > 0:
        # A worker died outside a transaction (run_bulk counts only the ones that ran): a bug.
        doc["not_run"] = missing
        code = ExitCode.FAILURE
    doc["exit_code"] = int(code)
    if out.json:
        out.emit_json(doc)
    else:
        lat = doc["latency_ms"]
        latency = ("latency n/a" if lat["p50"] is None else
                   f"latency p50 {lat['p50']} ms p90 {lat['p90']} ms p99 {lat['p99']} ms")
        click.echo(f"{report.ok}/{report.count} ok in {report.elapsed:.2f} s: {report.tx_per_s:.1f} tx/s, {latency}")
        for what, n in sorted(report.errors.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {n} x {what}", err=True)
        if missing > 0:
            click.echo(f"  {missing} x never run: a worker stopped (a bug)", err=True)
    if code:
        ctx.exit(int(code))


bench = _apply(bench, _BENCH_OPTS)
