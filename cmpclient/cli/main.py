"""The ``cmpclient`` click group.

Subcommands are registered LAZILY by module path: ``cmpclient --version`` and ``--help``
import neither pyasn1 nor cryptography, and a subcommand whose module is missing or broken
only makes that one subcommand unavailable.
"""

from __future__ import annotations

import gc
import importlib
import sys

import click

from cmpclient import __version__

#: name -> ("module:attribute", short help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "crmf": ("cmpclient.cli.enroll_cmd:crmf", "Enroll with a CRMF request: ir (default) or cr, new or server-generated key."),
    "p10cr": ("cmpclient.cli.enroll_cmd:p10cr", "Enroll with a PKCS#10 CSR (p10cr)."),
    "update": ("cmpclient.cli.enroll_cmd:update", "Key update (kur) signed with the current certificate."),
    "revoke": ("cmpclient.cli.revoke_cmd:revoke", "Revoke a certificate (rr)."),
    "certconf": ("cmpclient.cli.certconf_cmd:certconf", "Confirm or reject a certificate enrolled with --no-confirm."),
    "genm": ("cmpclient.cli.genm_cmd:genm", "General message (genm): caCerts, rootCaKeyUpdate, certReqTemplate, ..."),
    "check": ("cmpclient.cli.check_cmd:check", "Conformance run against a CMP server: a pass/fail matrix (--json, --junit)."),
    "dump": ("cmpclient.cli.dump_cmd:dump", "Dump a DER CMP message as a tree."),
    "nested": ("cmpclient.cli.nested_cmd:nested", "Send requests wrapped in a nested message (RA)."),
    "bench": ("cmpclient.cli.bench_cmd:bench", "Bulk enrollments with concurrent workers: tx/s and latency."),
    "serve": ("cmpclient.cli.testca_cmd:serve", "Run the bundled test CA."),
    "testca": ("cmpclient.cli.testca_cmd:testca", "Manage the bundled test CA."),
    "proxy": ("cmpclient.cli.proxy_cmd:proxy", "Run a CMP proxy: check requests per alias, forward them to the CA."),
    "completion": ("cmpclient.cli.main:completion", "Print the shell completion script (bash, zsh, fish)."),
}

DEPENDENCIES = ("cryptography", "pyasn1", "pyasn1-modules", "requests", "click", "rich")


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
            command = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            ctx.meta.setdefault("cmpclient.unavailable", {})[cmd_name] = f"{type(exc).__name__}: {exc}"
            return None
        resume_gc()
        return command  # type: ignore[no-any-return]

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        cmd = self.get_command(ctx, name) if name else None
        if name and cmd is None and name in COMMANDS:
            why = ctx.meta.get("cmpclient.unavailable", {}).get(name, "not installed")
            raise click.UsageError(f"the '{name}' command is not available in this installation ({why})")
        return super().resolve_command(ctx, args)

    # click's own usage errors (a bad Choice, an unknown option or command, a missing
    # argument) are printed by click on stderr; with --json stdout carries the error
    # document as well, like every other error (render.report_usage_error).
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["cmpclient.argv"] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            _json_usage_error(ctx, exc)
            raise

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _json_usage_error(ctx, exc)
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(60)))
            else:
                rows.append((name, COMMANDS[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _json_usage_error(ctx: click.Context, exc: click.ClickException) -> None:
    """The JSON error document of a click error, when --json was asked for (once)."""
    if getattr(exc, "_cmpclient_reported", False):
        return
    from cmpclient.cli.render import emit_usage_error, get_output, json_requested

    if get_output(ctx).json or json_requested(ctx.meta.get("cmpclient.argv") or ()):
        emit_usage_error(exc, get_output(ctx))
    exc._cmpclient_reported = True  # type: ignore[attr-defined]


def _print_version(verbose: int) -> None:
    click.echo(f"cmpclient {__version__}")
    if verbose:
        from importlib.metadata import PackageNotFoundError, version

        for dep in DEPENDENCIES:
            try:
                click.echo(f"  {dep} {version(dep)}")
            except PackageNotFoundError:
                click.echo(f"  {dep} (not installed)")
        import ssl

        click.echo(f"  Python {sys.version.split()[0]}")
        click.echo(f"  {ssl.OPENSSL_VERSION}")


EPILOG = """\b
Exit codes: 0 ok, 1 failure, 2 usage, 3 config, 4 transport, 5 protocol,
6 protection/trust, 7 rejected by the CA, 8 timeout, 130 interrupted.
Secrets are SOURCES (env:VAR, file:PATH, fd:N, stdin), never literals.
Options default from CMPCLIENT_<OPTION> and from --config/--profile (TOML).
--json: one document on stdout, results or error (usage errors too).
"""


def openssl_spelling(token: str) -> str:
    """click's ``token_normalize_func``: ``_`` reads as ``-``, so openssl cmp's spellings
    (``--implicit_confirm``, ``--total_timeout``, ``--unprotected_errors``) name the same
    options. click applies it to option names, command names and Choice values alike (none
    of which holds a ``_`` of its own); option values, profile keys and environment
    variables are not touched."""
    return token.replace("_", "-")


@click.group(cls=LazyGroup, invoke_without_command=True, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                               "token_normalize_func": openssl_spelling})
@click.option("--version", "version", is_flag=True, help="Print the version (with -v: dependency versions) and exit.")
@click.option("-v", "--verbose", "verbose", count=True, help="More output (-v, -vv, -vvv dumps every message).")
@click.option("-q", "--quiet", "quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable output on stdout.")
@click.option("--config", "config", metavar="FILE", help="TOML config file with profiles.")
@click.option("--profile", "profile", metavar="NAME", help="Profile of the config file.")
@click.pass_context
def cli(ctx: click.Context, version: bool, verbose: int, quiet: bool, json_output: bool,
        config: str | None, profile: str | None) -> None:
    """cmpclient: a Certificate Management Protocol (CMP, RFC 9810/4210) client.

    EJBCA cmpclient option names work, with openssl cmp spellings as aliases: an
    underscore in an option name reads as a dash (--implicit_confirm, --total_timeout),
    and a --server without a scheme is http:// (--server 127.0.0.1:8080/pkix/).
    """
    if version:
        _print_version(verbose)
        ctx.exit(0)
    from cmpclient.cli.render import get_output

    out = get_output(ctx)
    out.verbosity = verbose
    out.quiet = quiet
    out.json = json_output
    if config:
        ctx.meta["cmpclient.config"] = config
    if profile:
        ctx.meta["cmpclient.profile"] = profile
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(cmpclient completion bash)"
    zsh:   eval "$(cmpclient completion zsh)"
    fish:  cmpclient completion fish | source
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    comp = cls(cli, {}, "cmpclient", "_CMPCLIENT_COMPLETE")
    click.echo(comp.source())


_gc_paused = False


def resume_gc() -> None:
    """Resume the garbage collector that the process entry point (:mod:`cmpclient.__main__`)
    paused for start-up, once the command's modules are loaded: what start-up built lives
    until exit, so it is frozen out of the collector's view first.  A no-op otherwise."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None, *, gc_paused: bool = False) -> int:
    """Run the command line; returns the exit status.  ``gc_paused``: the caller disabled
    the garbage collector for start-up; it is resumed as soon as the command is loaded."""
    global _gc_paused
    _gc_paused = gc_paused
    try:
        cli.main(args=argv, prog_name="cmpclient", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        if _gc_paused:  # no command was loaded (--help, --version, a usage error)
            _gc_paused = False
            gc.enable()
    return 0
