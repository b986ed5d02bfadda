"""TOML profiles, option precedence and ``--show-config``.

Precedence, highest first: command line > environment (``CMPCLIENT_<OPTION>``) > profile >
built-in default.  click already implements exactly this order when the profile is given to
it as the context's ``default_map``; :class:`ProfileCommand` loads the profile before click
parses the subcommand's options, and click's ``get_parameter_source`` then tells where each
value came from.

A config file (``--config FILE`` or ``$CMPCLIENT_CONFIG``) looks like::

    [profiles.ejbca]                 # or simply [ejbca]
    url = "https://ca.example/ejbca/publicweb/cmp/enroll"
    authparam = "env:EJBCA_CMP_SECRET"   # a secret SOURCE, never the secret itself
    trusted = ["ca.pem"]
    implicit-confirm = true

    [profiles.ejbca.crmf]            # values only for one subcommand (optional)
    reqnewkeyspec = "secp384r1"

``--profile NAME`` (or ``$CMPCLIENT_PROFILE``) picks the table; without it a table named
``default`` is used when present. A single value for an option that can be repeated is a
one-item list (``trusted = "ca.pem"``); a value an option does not take is a ConfigError
(exit 3) naming the file, the profile and the key, not click's message (which names the
option's environment variable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import click
from click.core import ParameterSource

from cmpclient.errors import ConfigError

CONFIG_ENV = "CMPCLIENT_CONFIG"
PROFILE_ENV = "CMPCLIENT_PROFILE"
ENV_PREFIX = "CMPCLIENT_"

#: Parameter names whose values are secret sources (redacted by --show-config).
#: Parameters holding secret sources, redacted by --show-config; ``options.opt(secret=True)``
#: adds every secret option to it (these are there from the start).
SECRET_PARAMS: set[str] = {"authparam", "keystorepwd", "keypass", "newkeypass", "p12pwd"}


def envvar_for(name: str) -> str:
    """``CMPCLIENT_<NAME>`` for a parameter name (``total_timeout`` -> ``CMPCLIENT_TOTAL_TIMEOUT``)."""
    return ENV_PREFIX + name.upper()


def _norm(key: str) -> str:
    return key.strip().replace("-", "_").lower()


def load_profile(path: str | os.PathLike[str], profile: str | None, command: str | None = None) -> dict[str, Any]:
    """The option values of ``profile`` (names normalised to click parameter names).

    Raises ConfigError for an unreadable file, bad TOML or an unknown profile.
    """
    return profile_values(profile_table(path, profile), command)


def profile_table(path: str | os.PathLike[str], profile: str | None) -> dict[str, Any]:
    """The raw TOML table of ``profile`` ({} when no profile was asked for and there is no
    ``default``). Raises ConfigError for an unreadable file, bad TOML or an unknown profile."""
    import tomllib  # only when a configuration file is read (cold-start budget, issue #5)

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text (byte {exc.start})",
                          hint="give a TOML file (--config or CMPCLIENT_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    tables = data.get("profiles", {}) if isinstance(data.get("profiles"), dict) else {}
    tables = {**{k: v for k, v in data.items() if isinstance(v, dict) and k != "profiles"}, **tables}
    name = profile or "default"
    if name not in tables:
        if profile is None:
            return {}
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigError(f"profile {name!r} not found in {str(p)!r} (profiles: {known})")
    return tables[name]  # type: ignore[no-any-return]


def profile_values(table: dict[str, Any], command: str | None) -> dict[str, Any]:
    """A profile table's values for ``command``: its top-level keys, then those of its
    ``[<profile>.<command>]`` sub-table (which win)."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            continue  # per-command sub-table, merged below
        values[_norm(key)] = value
    if command and isinstance(table.get(command), dict):
        for key, value in table[command].items():
            values[_norm(key)] = value
    return values


def profile_warnings(command: str, known: set[str], table: dict[str, Any], ignored: Sequence[str]) -> list[str]:
    """Warnings for what in a profile no command that reads profiles uses: a key of the
    command's own sub-table that ``command`` lacks, a shared key that none of them has (a
    typo, or an option of ``serve``/``proxy``/``testca``, which take no profile), a
    sub-table named after no such command. A shared key another command uses
    (``reqnewkeyspec`` while revoking) is fine. ``known``: the command's parameter names."""
    import difflib

    from cmpclient.cli.option_names import OPTION_NAMES, PROFILE_COMMANDS

    warnings = []
    for name, value in table.items():
        if isinstance(value, dict) and name not in PROFILE_COMMANDS:
            close = difflib.get_close_matches(name, sorted(PROFILE_COMMANDS), n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            warnings.append(f"warning: config: the [{name}] table names no cmpclient command that reads profiles "
                            f"(ignored){hint}")
    own = {_norm(k) for k in table[command]} if isinstance(table.get(command), dict) else set()
    for key in ignored:
        if key in own:
            what, candidates = f"in the [{command}] table is not an option of 'cmpclient {command}'", known
        elif key not in OPTION_NAMES:
            what, candidates = "is not an option of any cmpclient command that reads profiles", OPTION_NAMES
        else:
            continue
        close = difflib.get_close_matches(key, sorted(candidates), n=1)
        hint = f"; did you mean {close[0].replace('_', '-')!r}?" if close else ""
        warnings.append(f"warning: config: {key.replace('_', '-')!r} {what} (ignored){hint}")
    return warnings


def _as_param_value(param: click.Parameter, value: Any) -> Any:
    """A profile value as click wants it: a single value (``trusted = "ca.pem"``) is a
    one-item list for an option that can be repeated (``multiple=True``), as TOML lists are."""
    many = getattr(param, "multiple", False) or param.nargs != 1
    if many and not isinstance(value, (list, tuple)):
        return [value]
    if not many and isinstance(value, (list, tuple)):
        raise click.BadParameter(f"a list ({len(value)} values) where the option takes one value", param=param)
    return value


def profile_value_error(exc: click.BadParameter, table: dict[str, Any], command: str | None,
                        path: str | os.PathLike[str], ctx: click.Context) -> ConfigError:
    """The ConfigError for a profile value click refused: which key of which profile table in
    which file, and what is wrong with it."""
    param = exc.param
    name = param.name if param is not None and param.name else "?"
    where = f"profile {ctx.meta.get('cmpclient.profile_name')!s}"
    key = name.replace("_", "-")
    sub = table.get(command) if command else None
    for tbl, label in ((sub, f"{where}, table [{command}]"), (table, where)):
        if isinstance(tbl, dict):
            spelt = next((k for k in tbl if not isinstance(tbl[k], dict) and _norm(k) == name), None)
            if spelt is not None:
                key, where = spelt, label
                break
    option = param.opts[0] if param is not None and getattr(param, "opts", None) else f"--{name.replace('_', '-')}"
    return ConfigError(f"config file {str(path)!r}, {where}, key {key!r}: {exc.message}",
                       hint=f"fix the value in the config file, or override it with {option} on the command line")


def _prescan(args: Sequence[str], long: str) -> str | None:
    """The value of ``long`` in raw ``args`` (``--x V`` or ``--x=V``), before click parses them."""
    value = None
    it = iter(range(len(args)))
    for i in it:
        a = args[i]
        if a == "--":
            break
        if a == long and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(long + "="):
            value = a.split("=", 1)[1]
    return value


class ProfileCommand(click.Command):
    """A click command whose ``default_map`` comes from the selected TOML profile."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        root = ctx.find_root()
        meta = root.meta
        path = _prescan(args, "--config") or meta.get("cmpclient.config") or os.environ.get(CONFIG_ENV)
        profile = _prescan(args, "--profile") or meta.get("cmpclient.profile") or os.environ.get(PROFILE_ENV)
        ctx.meta["cmpclient.config_file"] = path
        ctx.meta["cmpclient.profile_name"] = profile or ("default" if path else None)
        if path:
            try:
                table = profile_table(path, profile)
                values = profile_values(table, self.name)
            except ConfigError as exc:
                _exit_reporting(ctx, exc)
            params = {p.name: p for p in self.params if p.name}
            known = set(params)
            try:
                usable = {k: _as_param_value(params[k], v) for k, v in values.items() if k in known}
            except click.BadParameter as exc:
                _exit_reporting(ctx, profile_value_error(exc, table, self.name, path, ctx))
            ignored = sorted(set(values) - known)
            ctx.meta["cmpclient.profile_ignored"] = ignored
            ctx.default_map = {**(ctx.default_map or {}), **usable}
            try:
                rest = super().parse_args(ctx, args)
            except click.BadParameter as exc:
                if exc.param is None or ctx.get_parameter_source(exc.param.name or "") != ParameterSource.DEFAULT_MAP:
                    raise
                # A bad value from the profile: name the key and the file, not the option's
                # environment variable (click's own message would).
                _exit_reporting(ctx, profile_value_error(exc, table, self.name, path, ctx))
            # After parsing: the subcommand's own -q (or the profile's quiet) counts too;
            # nothing is printed while the shell completes a word.
            if self.name and not ctx.resilient_parsing and (ignored or any(isinstance(v, dict) for v in table.values())):
                from cmpclient.cli.render import get_output

                if not (ctx.params.get("quiet") or get_output(ctx).quiet):
                    for line in profile_warnings(self.name, known, table, ignored):
                        click.echo(line, err=True)
            return rest
        return super().parse_args(ctx, args)


def _exit_reporting(ctx: click.Context, exc: ConfigError) -> None:
    """Report a profile's error and exit: options are not parsed yet, so no command's
    handle_errors can (render.py formats it, with --json too)."""
    from cmpclient.cli.render import get_output, report_error

    ctx.exit(report_error(exc, get_output(ctx)))


def envvars_of(param: Any) -> list[str]:
    """The environment variables a parameter reads (click's ``envvar``: none, one or several)."""
    envvar = getattr(param, "envvar", None)
    if not envvar:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def origin_of(ctx: click.Context, name: str) -> str:
    src = ctx.get_parameter_source(name)
    if src == ParameterSource.COMMANDLINE:
        return "command line"
    if src == ParameterSource.ENVIRONMENT:
        param = next((p for p in ctx.command.params if p.name == name), None)
        envvars = envvars_of(param) or [envvar_for(name)]
        return f"environment ${next((v for v in envvars if os.environ.get(v)), envvars[0])}"
    if src == ParameterSource.DEFAULT_MAP:
        return f"profile {ctx.meta.get('cmpclient.profile_name')!s} ({ctx.meta.get('cmpclient.config_file')})"
    if src == ParameterSource.PROMPT:
        return "prompt"
    return "default"


def show_config(ctx: click.Context) -> list[dict[str, Any]]:
    """Every parameter of the command with its value and origin; secrets redacted."""
    from cmpclient.cli.secrets import redact

    rows = []
    for param in ctx.command.params:
        name = param.name
        if not name or name in ("show_config",):
            continue
        value = ctx.params.get(name)
        if name in SECRET_PARAMS and value is not None:
            value = redact(value)
        elif name == "url" and isinstance(value, str):
            from cmpclient.transport import redact_url

            value = redact_url(value)
        if isinstance(value, tuple):
            value = list(value)
        rows.append({"name": name, "value": value, "origin": origin_of(ctx, name)})
    if "url" in ctx.params:  # the URL a request goes to, after --path and --host/--port/--alias
        from cmpclient.cli.options import server_url
        from cmpclient.errors import UsageError
        from cmpclient.transport import redact_url

        params = dict(ctx.params)
        if isinstance(params.get("url"), str):  # resolved from the redacted URL: no secret can reach the row
            params["url"] = redact_url(params["url"])
        try:
            endpoint = server_url(params)
            rows.append({"name": "endpoint", "value": redact_url(endpoint) if endpoint else None,
                         "origin": "resolved from url, host, port, alias and path"})
        except UsageError as exc:
            rows.append({"name": "endpoint", "value": None, "origin": f"not resolved: {exc.message}"})
        except ValueError as exc:  # a URL urllib cannot split ("http://[::1"): the command itself says so
            rows.append({"name": "endpoint", "value": None, "origin": f"not resolved: {exc}"})
    ignored = ctx.meta.get("cmpclient.profile_ignored") or []
    for name in ignored:
        rows.append({"name": name, "value": None, "origin": "profile (not an option of this command, ignored)"})
    return rows
