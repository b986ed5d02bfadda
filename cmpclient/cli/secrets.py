"""Secret sources: secrets never travel in argv.

A secret option (``--authparam``/``--secret``, ``--keystorepwd``, ``--keypass``, ...) takes a
*source*, as openssl does:

* ``env:VAR``   -- the value of environment variable VAR
* ``file:PATH`` -- the first line of PATH (without the line ending)
* ``fd:N``      -- the first line read from file descriptor N
* ``stdin``     -- the first line of standard input
* ``pass:TEXT`` -- a literal, REFUSED unless ``CMPCLIENT_ALLOW_PASS_LITERAL=1`` or
  ``--allow-insecure-literal-secrets`` (meant for tests: argv is visible to other users)

When the option is missing and a secret is required, the user is prompted on a TTY
(without echo); when stdin is not a TTY nothing interactive happens and the command fails
with a config error naming the option.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from cmpclient.errors import SecretSourceError

ALLOW_LITERAL_ENV = "CMPCLIENT_ALLOW_PASS_LITERAL"
SOURCE_KINDS = ("env:", "file:", "fd:", "stdin", "pass:")

#: The prompter used for missing secrets; tests swap in a dummy (pyHanko's idea).
Prompter = Callable[[str], str]


def _default_prompter(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


_prompter: Prompter = _default_prompter


def set_prompter(prompter: Prompter | None) -> None:
    """Replace the TTY prompter (``None`` restores the default)."""
    global _prompter
    _prompter = prompter or _default_prompter


def literal_allowed(flag: bool = False) -> bool:
    return flag or os.environ.get(ALLOW_LITERAL_ENV, "") in ("1", "true", "yes")


def refuse_url_password(url: str | None, option: str, param: str, *, allow_literal: bool = False) -> None:
    """A password in a URL (``http://user:password@host/``, sent as HTTP Basic auth) is a
    secret: refused when ``param`` was given on the command line, where every user of the
    machine can read it, unless literal secrets are allowed (tests). From the environment
    (``CMPCLIENT_URL``) or a profile it is accepted; it is never shown (``***``)."""
    from urllib.parse import urlsplit

    if not url or "@" not in url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        return  # the transport reports the malformed URL
    if password is None or literal_allowed(allow_literal) or not _on_command_line(param):
        return
    from cmpclient.transport import redact_url

    raise SecretSourceError(
        f"{option}: a password in the URL ({redact_url(url)}) is refused on the command line: "
        "argv is visible to every user of this machine",
        hint="give the URL in the environment (CMPCLIENT_URL) or in a profile (--config), "
        f"or set {ALLOW_LITERAL_ENV}=1 for tests",
    )


def _on_command_line(param: str) -> bool:
    import click
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if param in ctx.params:
            return ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE
        ctx = ctx.parent
    return False


def is_secret_source(spec: str) -> bool:
    return spec == "stdin" or spec.startswith(SOURCE_KINDS)


def redact(spec: str | None) -> str | None:
    """How a source is shown (``--show-config``, logs): references are kept, literals hidden."""
    if spec is None:
        return None
    if spec.startswith("pass:"):
        return "pass:<redacted>"
    if is_secret_source(spec):
        return spec
    return "<redacted>"


def _first_line(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0].rstrip(b"\r")


def read_secret(
    spec: str | None,
    *,
    what: str,
    allow_literal: bool = False,
    required: bool = True,
    stdin_is_tty: bool | None = None,
) -> bytes | None:
    """Resolve a secret source to bytes.

    ``what`` names the option in messages (``--authparam``).  A missing ``spec`` prompts on a
    TTY when ``required``; otherwise returns None.
    """
    if spec is None or spec == "":
        if not required:
            return None
        tty = sys.stdin.isatty() if stdin_is_tty is None else stdin_is_tty
        if not tty:
            raise SecretSourceError(
                f"{what} is required and stdin is not a terminal",
                hint=f"pass {what} env:VAR, file:PATH, fd:N or stdin",
            )
        value = _prompter(f"{what}: ")
        if not value:
            raise SecretSourceError(f"no value entered for {what}")
        return value.encode()
    if spec.startswith("env:"):
        name = spec[4:]
        if name not in os.environ:
            raise SecretSourceError(f"{what}: environment variable {name!r} is not set", hint=f"export {name}=...")
        value = os.environ[name].encode()
    elif spec.startswith("file:"):
        path = spec[5:]
        try:
            with open(path, "rb") as fh:
                value = _first_line(fh.read())
        except OSError as exc:
            raise SecretSourceError(f"{what}: cannot read {path!r}: {exc.strerror or exc}") from None
    elif spec.startswith("fd:"):
        try:
            fd = int(spec[3:])
        except ValueError:
            raise SecretSourceError(f"{what}: fd: needs a number, got {spec[3:]!r}") from None
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                value = _first_line(fh.readline())
        except OSError as exc:
            raise SecretSourceError(f"{what}: cannot read file descriptor {fd}: {exc.strerror or exc}") from None
    elif spec == "stdin":
        line = sys.stdin.buffer.readline() if hasattr(sys.stdin, "buffer") else sys.stdin.readline().encode()
        value = _first_line(line)
    elif spec.startswith("pass:"):
        if not literal_allowed(allow_literal):
            raise SecretSourceError(
                f"{what}: literal secrets (pass:) are refused: argv is visible to every user of this machine",
                hint=f"use env:VAR, file:PATH, fd:N or stdin; for tests set {ALLOW_LITERAL_ENV}=1 "
                "or pass --allow-insecure-literal-secrets",
            )
        value = spec[5:].encode()
    else:
        raise SecretSourceError(
            f"{what}: {_describe(spec)} is not a secret source",
            hint="use env:VAR, file:PATH, fd:N or stdin (secrets never go in the command line)",
        )
    if not value:
        raise SecretSourceError(f"{what}: the secret from {redact(spec)} is empty")
    return value


def _describe(spec: str) -> str:
    kind = spec.split(":", 1)[0] + ":" if ":" in spec else None
    return f"a value of kind {kind!r}" if kind else "a bare value"
