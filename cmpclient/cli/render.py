"""Everything the terminal sees: people on stderr (rich), data on stdout, errors in ONE place.

* :class:`Output` lives on ``ctx.obj``: verbosity (``-v`` counts), ``-q``, ``--json``, colour
  (off with ``NO_COLOR`` or when stderr is not a terminal), and a rich console on stderr.
* :func:`handle_errors` is the only place that turns exceptions into diagnostics and exit
  codes (:class:`cmpclient.errors.ExitCode`): every subcommand runs inside it.
* :meth:`Output.waiting` shows a spinner while a request is in flight, only on a TTY.
* :meth:`Output.message_hook` prints every CMP message at ``-vvv`` (to stderr).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

import click

from cmpclient.errors import CMPClientError, CMPRejection, ExitCode

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("cmpclient.cli")


def _color_wanted(stream: Any) -> bool:
    if "NO_COLOR" in os.environ and os.environ["NO_COLOR"] != "":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass
class Output:
    """Terminal settings and helpers for one command run."""

    verbosity: int = 0
    quiet: bool = False
    json: bool = False
    _console: Any = field(default=None, repr=False)

    # --- consoles -------------------------------------------------------------------------
    @property
    def color(self) -> bool:
        return _color_wanted(sys.stderr)

    @property
    def console(self) -> Any:
        """A rich console on stderr (created lazily: importing rich costs time)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=sys.stderr,
                no_color=not self.color,
                color_system="auto" if self.color else None,
                highlight=False,
                soft_wrap=True,
            )
        return self._console

    @property
    def interactive(self) -> bool:
        try:
            return sys.stderr.isatty() and not self.quiet and not self.json
        except (AttributeError, ValueError):
            return False

    def info(self, text: str) -> None:
        """A line for people (stderr), hidden by -q."""
        if not self.quiet:
            click.echo(text, err=True)

    def debug(self, text: str, level: int = 1) -> None:
        if self.verbosity >= level:
            click.echo(text, err=True)

    # --- logging ----------------------------------------------------------------------------
    def setup_logging(self) -> None:
        level = logging.WARNING
        if self.quiet:
            level = logging.ERROR
        if self.verbosity == 1:
            level = logging.INFO
        elif self.verbosity >= 2:
            level = logging.DEBUG
        root = logging.getLogger("cmpclient")
        root.setLevel(level)
        if not any(getattr(h, "_cmpclient", False) for h in root.handlers):
            handler = logging.StreamHandler(_StderrProxy())
            handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
            handler._cmpclient = True  # type: ignore[attr-defined]
            root.addHandler(handler)
        root.propagate = False

    # --- waiting ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def waiting(self, text: str) -> Iterator[None]:
        """A spinner on a TTY; nothing when output is not interactive."""
        if not self.interactive or self.verbosity >= 3:
            yield
            return
        with self.console.status(text, spinner="dots"):
            yield

    # --- messages ----------------------------------------------------------------------------
    def message_hook(self) -> Callable[[str, bytes], None] | None:
        if self.verbosity < 3:
            return None

        def dump(direction: str, der: bytes) -> None:
            click.echo(f"----- {direction} ({len(der)} bytes) -----", err=True)
            click.echo(dump_message(der), err=True)

        return dump

    # --- results ----------------------------------------------------------------------------
    def emit_json(self, doc: Any) -> None:
        import json  # only for --json (cold-start budget)

        click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))

    def table(self, title: str, rows: list[tuple[str, str]]) -> None:
        """The short success table (stderr, for people); skipped with -q."""
        if self.quiet:
            return
        from rich.table import Table

        t = Table(title=title, show_header=False, box=None, pad_edge=False)
        t.add_column(style="bold" if self.color else None)
        t.add_column()
        for k, v in rows:
            t.add_row(k, v)
        self.console.print(t)


class _StderrProxy:
    """Write to whatever sys.stderr is now (CliRunner swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def dump_message(der: bytes) -> str:
    """A readable dump of one PKIMessage (the ``dump`` module when present, else a summary)."""
    try:
        from cmpclient.asn1 import dump as _dump  # owned by the dump subcommand

        for name in ("dump_message", "dump_pkimessage", "dump_der", "dump"):
            fn = getattr(_dump, name, None)
            if callable(fn):
                try:
                    text = fn(der)
                except TypeError:
                    continue
                if isinstance(text, str):
                    return text
    except Exception:  # noqa: BLE001 - fall back to the summary below
        pass
    return summarize_message(der)


def summarize_message(der: bytes) -> str:
    lines = []
    try:
        from cmpclient.message.parse import parse_message

        msg = parse_message(der)
        h = msg.header
        lines += [
            f"body: {msg.body_type}",
            f"pvno: {h.pvno}",
            f"sender: {h.sender}",
            f"recipient: {getattr(h, 'recipient', '')}",
            f"transactionID: {h.transaction_id.hex() if h.transaction_id else 'absent'}",
            f"senderNonce: {h.sender_nonce.hex() if h.sender_nonce else 'absent'}",
            f"recipNonce: {h.recip_nonce.hex() if h.recip_nonce else 'absent'}",
            f"protected: {msg.protected}",
            f"extraCerts: {len(msg.extra_certs)}",
        ]
        if msg.content is not None:
            text = str(msg.content)
            lines.append("content: " + (text if len(text) < 2000 else text[:2000] + "..."))
    except Exception as exc:  # noqa: BLE001 - a dump never fails the command
        lines.append(f"(not decodable: {type(exc).__name__})")
    hexed = der.hex()
    lines.append("der: " + " ".join(hexed[i : i + 64] for i in range(0, len(hexed), 64)))
    return "\n".join(lines)


def get_output(ctx: click.Context | None = None) -> Output:
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return Output()
    root = ctx.find_root()
    if not isinstance(root.obj, Output):
        root.obj = Output()
    return root.obj


def error_document(exc: BaseException, code: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"ok": False, "exit_code": int(code), "error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, CMPClientError):
        doc["message"] = exc.message
        doc["hint"] = exc.hint
    if isinstance(exc, CMPRejection):
        doc["pki_status"] = exc.status
        doc["fail_info"] = list(exc.fail_info_names)
        doc["status_string"] = list(exc.status_strings)
        if exc.body_type:
            doc["body"] = exc.body_type
        for extra in ("error_code", "error_details"):
            if hasattr(exc, extra):
                value = getattr(exc, extra)
                doc[extra] = list(value) if isinstance(value, tuple) else value
    return doc


def json_requested(args: Any) -> bool:
    """Whether raw command-line ``args`` ask for ``--json`` (before click has parsed them:
    a usage error can stop parsing before the option is seen)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def usage_error_document(exc: click.ClickException) -> dict[str, Any]:
    """The error document of one of click's own errors: the shape of :func:`error_document`,
    ``"error": "UsageError"`` for every usage error (bad option, value, command, missing
    argument) as for cmpclient's own, and the ``--help`` to look at as the hint."""
    usage = isinstance(exc, click.UsageError)
    hint = None
    ctx = getattr(exc, "ctx", None)
    if usage and ctx is not None:
        hint = f"see '{ctx.command_path} --help'"
    return {"ok": False, "exit_code": int(exc.exit_code), "error": "UsageError" if usage else type(exc).__name__,
            "message": exc.format_message(), "hint": hint}


def emit_usage_error(exc: click.ClickException, out: Output) -> None:
    """Print :func:`usage_error_document` on stdout (click prints its text on stderr)."""
    out.emit_json(usage_error_document(exc))


def report_error(exc: BaseException, out: Output) -> int:
    """Print the diagnostics of ``exc`` (stderr; also a JSON document with --json) and
    return the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        code = ExitCode.INTERRUPTED
        click.echo("interrupted", err=True)
        if out.json:
            out.emit_json({"ok": False, "exit_code": int(code), "error": "KeyboardInterrupt", "message": "interrupted"})
        return int(code)
    if isinstance(exc, CMPClientError):
        code = exc.exit_code
        text = exc.diagnostics()
    else:
        code = ExitCode.FAILURE
        text = f"unexpected error: {type(exc).__name__}: {exc}"
        if out.verbosity >= 2:
            import traceback

            text += "\n" + "".join(traceback.format_exception(exc))
        else:
            text += "\nhint: run with -vv for a traceback and report it as a bug"
    label = f"error ({code.name.lower()}, exit {int(code)})"
    if out.color:
        out.console.print(f"[bold red]{label}[/]: ", end="", markup=True)
        out.console.print(text, markup=False)
    else:
        click.echo(f"{label}: {text}", err=True)
    if out.json:
        out.emit_json(error_document(exc, code))
    return int(code)


def handle_errors(fn: F) -> F:
    """Decorator for subcommand callbacks: the one place errors become exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        out = get_output(ctx)
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (CMPClientError, KeyboardInterrupt, Exception) as exc:  # noqa: BLE001
            code = report_error(exc, out)
            ctx.exit(code)

    return wrapper  # type: ignore[return-value]
