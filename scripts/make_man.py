#!/usr/bin/env python3
"""Generate the man pages under ``man/`` from the click command tree.

Usage::

    .venv/bin/python scripts/make_man.py            # (re)write man/*.1
    .venv/bin/python scripts/make_man.py --check    # exit 1 when the committed pages are stale
    .venv/bin/python scripts/make_man.py --out DIR  # write elsewhere

``man/cmpclient.1`` documents the group (global options, the command list, exit status,
environment, shell completion); ``man/cmpclient-<command>.1`` each subcommand, and
``man/cmpclient-<group>-<command>.1`` the commands of subgroups (``testca ee add``).
NAME, SYNOPSIS, DESCRIPTION and OPTIONS come from click (the same text as ``--help``);
EXAMPLES, EXIT STATUS, ENVIRONMENT and SEE ALSO are written by hand in :data:`EXTRA` below
and from :class:`cmpclient.errors.ExitCode`.

The output is deterministic (no dates, no terminal width), so ``--check`` can run in CI
(``tests/unit/cli/test_man_pages.py``): when a command's options or help change, re-run this
script and commit ``man/``.  Every command registered in ``cmpclient.cli.main.COMMANDS``
must load; a missing one is an error (``--allow-missing`` skips it, for work in progress).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import click  # noqa: E402

from cmpclient import __version__  # noqa: E402
from cmpclient.errors import ExitCode  # noqa: E402

MAN_DIR = REPO / "man"
PROG = "cmpclient"

# --- hand-written sections ------------------------------------------------------------------

EXIT_MEANINGS = {
    ExitCode.OK: "Success.",
    ExitCode.FAILURE: "An unexpected failure (a bug or an unexpected state); run with -vv for a traceback.",
    ExitCode.USAGE: "Bad command line: unknown option, missing argument, conflicting options.",
    ExitCode.CONFIG: "Bad configuration, key, certificate, keystore or secret source.",
    ExitCode.TRANSPORT: "Could not talk to the server: connection, TLS, HTTP status or framing.",
    ExitCode.PROTOCOL: "A message is malformed or fails a transaction check "
    "(transactionID, nonces, pvno, body type); also input that is not a CMP message.",
    ExitCode.PROTECTION: "The response's protection or the signer's trust failed.",
    ExitCode.REJECTED: "The server rejected the request or answered with an error message.",
    ExitCode.TIMEOUT: "A timeout, or the polling deadline passed.",
    ExitCode.INTERRUPTED: "Interrupted by the user (SIGINT).",
}

ENVIRONMENT = [
    ("CMPCLIENT_<OPTION>", "Default for the option of that name, e.g. CMPCLIENT_URL for --url, "
     "CMPCLIENT_TOTAL_TIMEOUT for --total-timeout. The command line wins over the environment, "
     "which wins over the profile."),
    ("CMPCLIENT_CONFIG", "TOML configuration file with profiles (as --config)."),
    ("CMPCLIENT_PROFILE", "Profile of the configuration file (as --profile; default 'default')."),
    ("CMPCLIENT_ALLOW_PASS_LITERAL", "Accept pass:TEXT secret sources (tests only: argv is visible to other users)."),
    ("CMPCLIENT_TESTCA_DIR", "Data directory of the bundled test CA (serve, testca)."),
    ("CMPCLIENT_TESTCA_CONFIG", "Configuration file of the bundled test CA (serve, testca)."),
    ("NO_COLOR", "When set and not empty: no colours, and dump prints plain text even on a terminal."),
    ("HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY", "Proxies for http:// and https:// servers (an http:// proxy; "
     "https:// goes through CONNECT; user:password@ in the proxy URL is sent as Basic proxy authorization)."),
    ("SSL_CERT_FILE, SSL_CERT_DIR", "The trust store for HTTPS servers when --tls-ca is not given (default: "
     "OpenSSL's system paths, as for openssl)."),
    ("REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE", "When set and not empty, and --tls-ca is not given: the only CAs "
     "trusted for HTTPS servers. --tls-ca FILE likewise trusts that file only."),
    ("_CMPCLIENT_COMPLETE", "Set by the shell completion scripts (see SHELL COMPLETION)."),
]

#: Per page (the command path after "cmpclient", "" for the main page): examples as
#: (description, command line) pairs, and optional extra sections.
EXTRA: dict[str, dict[str, Any]] = {
    "": {
        "examples": [
            ("Enroll with a shared secret (EJBCA HMAC alias); the certificate goes to ./dev1.pem",
             "cmpclient crmf --url https://ca.example/ejbca/publicweb/cmp/ra --secret env:CMP_SECRET --dn CN=dev1,O=Example --dest ."),
            ("Renew with the current certificate", "cmpclient update --url URL --cert dev1.pem --key dev1-key.pem --trusted ca.pem"),
            ("Look at a saved response", "cmpclient dump rsp.der"),
            ("Run the bundled test CA on a free port", "cmpclient serve --port 0"),
        ],
    },
    "crmf": {
        "examples": [
            ("Enroll a new EC key with an HMAC secret from the environment",
             "cmpclient crmf --url http://localhost:8080/ejbca/publicweb/cmp/ra --secret env:CMP_SECRET --ref ra --dn CN=dev1 --dest out"),
            ("Save the messages for later inspection", "cmpclient crmf ... --reqout ir.der,certconf.der --rspout ip.der,pkiconf.der"),
        ],
    },
    "p10cr": {"examples": [("Enroll a CSR made elsewhere", "cmpclient p10cr --url URL --secret env:CMP_SECRET --csr dev1.csr --certout dev1.pem")]},
    "update": {"examples": [("Key update signed with the current credentials",
                             "cmpclient update --url URL --cert dev1.pem --key dev1-key.pem --trusted ca.pem --dest .")]},
    "revoke": {"examples": [("Revoke because of a key compromise",
                             "cmpclient revoke --url URL --cert dev1.pem --key dev1-key.pem --reason keyCompromise")]},
    "certconf": {"examples": [("Confirm a certificate enrolled with --no-confirm",
                               "cmpclient certconf --url URL --secret env:CMP_SECRET --state dev1.cmpstate.json")]},
    "genm": {"examples": [("Fetch the CA certificates", "cmpclient genm --url URL --secret env:CMP_SECRET --cacertsout cacerts.pem")]},
    "dump": {
        "examples": [
            ("Dump a response saved with --rspout", "cmpclient dump rsp.der"),
            ("Only the body, as JSON", "cmpclient dump --json rsp.der | jq .body"),
            ("A base64 or PEM message from the clipboard", "xclip -o | cmpclient dump -"),
            ("The messages of a saved transaction state", "cmpclient dump dev1.cmpstate.json"),
        ],
        "sections": [
            ("OUTPUT FORMAT",
             "The JSON tree keeps the ASN.1 field names (bodyType, header, body, protection, "
             "extraCerts; certReqId, failInfo, senderKID...). Four leaf shapes are printed on one "
             "line in the text form: an OID {\"oid\", \"name\"}, a named number {\"value\", \"name\"}, "
             "bytes {\"hex\", \"ascii\", \"length\"} and {\"error\"} for a part that could not be read. "
             "Several inputs give a JSON list of {\"source\", \"message\"}."),
        ],
    },
    "nested": {
        "examples": [
            ("Forward an end entity's saved ir through the RA",
             "cmpclient nested --url http://ca:8080/ejbca/publicweb/cmp/nested --in ir.der "
             "--ra-cert ra.pem --ra-key ra-key.pem --trusted ca.pem --inner-rspout ip.der"),
            ("Batch two requests", "cmpclient nested --url URL --in ir1.der --in ir2.der --ra-cert ra.pem --ra-key ra-key.pem --trusted ca.pem"),
        ],
    },
    "serve": {"examples": [("Serve HTTP on 8080 and CMP over TCP on 8829", "cmpclient serve --port 8080 --tcp-port 8829")]},
    "completion": {"examples": [("Enable completion in bash", 'eval "$(cmpclient completion bash)"')]},
}

COMPLETION_TEXT = [
    "cmpclient uses click's completion mechanism. The completion script is printed by running "
    "the program with _CMPCLIENT_COMPLETE set to <shell>_source:",
    ("nf", "_CMPCLIENT_COMPLETE=bash_source cmpclient > ~/.cmpclient-complete.bash\n"
           ". ~/.cmpclient-complete.bash             # in ~/.bashrc\n"
           "_CMPCLIENT_COMPLETE=zsh_source cmpclient > ~/.cmpclient-complete.zsh\n"
           "_CMPCLIENT_COMPLETE=fish_source cmpclient > ~/.config/fish/completions/cmpclient.fish"),
    "The same scripts are printed by cmpclient completion bash|zsh|fish, e.g. "
    "eval \"$(cmpclient completion bash)\".",
]

# --- roff ---------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens of options, leading control characters."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w])-", r"\\-", text)
    lines = []
    for line in text.split("\n"):
        if line[:1] in (".", "'"):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def bold(text: str) -> str:
    """Bold literal text (option and command names): every hyphen is a real minus sign,
    so the text can be copied from the rendered page."""
    literal = esc(text).replace("\\-", "-").replace("-", "\\-")
    return "\\fB" + literal + "\\fR"


def paragraphs(help_text: str, *, skip_examples: bool = False) -> list[str]:
    """roff for a click help text: paragraphs, and \\b blocks kept as they are written.

    With ``skip_examples`` an ``Examples:`` block is left out (the page has its own
    EXAMPLES section).
    """
    out: list[str] = []
    text = inspect.cleandoc(help_text or "")
    for block in re.split(r"\n\s*\n", text):
        if not block.strip():
            continue
        if block.startswith("\b"):
            body = block[1:].lstrip("\n")
            if skip_examples and body.lstrip().lower().startswith("examples:"):
                continue
            out += [".PP", ".nf", ".RS 2", esc(body), ".RE", ".fi"]
        else:
            out += [".PP", esc(" ".join(line.strip() for line in block.splitlines()))]
    return out


def short_help(cmd: click.Command) -> str:
    return cmd.get_short_help_str(limit=200).rstrip(".")


# --- walking the click tree -------------------------------------------------------------------


def load_cli() -> click.Group:
    from cmpclient.cli.main import cli

    return cli


def walk(group: click.Group, ctx: click.Context, path: list[str], missing: list[str]) -> Iterable[tuple[list[str], click.Command, click.Context]]:
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None:
            missing.append(" ".join([*path, name]))
            continue
        # The command's own context settings, as click.make_context applies them
        # (help_option_names is inherited from the group's: "-h, --help").
        sub_ctx = click.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
        yield [*path, name], cmd, sub_ctx
        if isinstance(cmd, click.Group):
            yield from walk(cmd, sub_ctx, [*path, name], missing)


def synopsis(path: list[str], cmd: click.Command, ctx: click.Context) -> list[str]:
    words = [f"\\fB{esc(' '.join([PROG, *path]))}\\fR"]
    if any(isinstance(p, click.Option) for p in cmd.params):
        words.append("[\\fIOPTIONS\\fR]")
    for param in cmd.params:
        if isinstance(param, click.Argument):
            metavar = param.make_metavar(ctx)
            words.append(f"\\fI{esc(metavar)}\\fR" if param.required else f"[\\fI{esc(metavar)}\\fR]")
    if isinstance(cmd, click.Group):
        words.append("\\fICOMMAND\\fR [\\fIARGS\\fR]...")
    return [" ".join(words)]


def options_section(cmd: click.Command, ctx: click.Context) -> list[str]:
    lines: list[str] = []
    records = []
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            records.append(record)
    # Not cmd.get_params(): click caches the help option on the command object, with the
    # names of whichever context asked first (a test invoking a command on its own gives
    # "--help"); the names come from this context, as when run as "cmpclient <command>".
    names = cmd.get_help_option_names(ctx)
    if cmd.add_help_option and names:
        records.append((", ".join(sorted(names, key=len)), "Show this message and exit."))
    for opts, help_text in records:
        lines += [".TP", _opts_roff(opts), esc(help_text) or ""]
    return lines


def _opts_roff(opts: str) -> str:
    # "--in FILE" or "-v, --verbose": bold option names, italic metavars.
    parts = []
    for chunk in opts.split(", "):
        name, _, metavar = chunk.partition(" ")
        parts.append(bold(name) + (f" \\fI{esc(metavar)}\\fR" if metavar else ""))
    return ", ".join(parts)


def exit_status_section() -> list[str]:
    lines = [".SH EXIT STATUS"]
    for code in ExitCode:
        lines += [".TP", f"\\fB{int(code)}\\fR ({code.name})", esc(EXIT_MEANINGS.get(code, ""))]
    return lines


def environment_section() -> list[str]:
    lines = [".SH ENVIRONMENT"]
    for name, text in ENVIRONMENT:
        lines += [".TP", bold(name), esc(text)]
    return lines


def examples_section(key: str) -> list[str]:
    examples = EXTRA.get(key, {}).get("examples", [])
    if not examples:
        return []
    lines = [".SH EXAMPLES"]
    for text, command in examples:
        lines += [".PP", esc(text) + ":", ".PP", ".nf", ".RS 4", esc(command), ".RE", ".fi"]
    return lines


def extra_sections(key: str) -> list[str]:
    lines: list[str] = []
    for title, text in EXTRA.get(key, {}).get("sections", []):
        lines += [f".SH {title}", ".PP", esc(text)]
    return lines


def page_name(path: list[str]) -> str:
    return "-".join([PROG, *path])


def header(path: list[str]) -> list[str]:
    title = page_name(path).upper()
    return [
        f'.\\" Generated by scripts/make_man.py from the click commands; do not edit.',
        f'.TH "{esc(title)}" "1" "" "{PROG} {__version__}" "{PROG} manual"',
        ".nh",
        ".ad l",
    ]


def subcommand_page(path: list[str], cmd: click.Command, ctx: click.Context, children: list[str]) -> str:
    key = " ".join(path)
    lines = header(path)
    lines += [".SH NAME", f"{esc(page_name(path))} \\- {esc(short_help(cmd))}"]
    lines += [".SH SYNOPSIS", *synopsis(path, cmd, ctx)]
    has_examples = bool(EXTRA.get(key, {}).get("examples"))
    lines += [".SH DESCRIPTION", *paragraphs(cmd.help or cmd.short_help or "", skip_examples=has_examples)]
    opts = options_section(cmd, ctx)
    if opts:
        lines += [".SH OPTIONS", *opts]
    if children:
        lines += [".SH COMMANDS"]
        for child in children:
            lines += [".TP", bold(child), f"See \\fB{esc(page_name([*path, child]))}\\fR(1)."]
    lines += extra_sections(key)
    lines += examples_section(key)
    lines += exit_status_section()
    lines += [".SH SEE ALSO", f"\\fB{PROG}\\fR(1)"]
    return "\n".join(lines) + "\n"


def main_page(cli: click.Group, ctx: click.Context, commands: list[tuple[str, str]]) -> str:
    lines = header([])
    lines += [".SH NAME", f"{PROG} \\- Certificate Management Protocol (CMP) client and test CA"]
    lines += [".SH SYNOPSIS", *synopsis([], cli, ctx)]
    lines += [".SH DESCRIPTION", *paragraphs(cli.help or "")]
    lines += [".PP", esc("Secrets are given as SOURCES (env:VAR, file:PATH, fd:N, stdin), never as literals on "
                          "the command line. Options default from CMPCLIENT_<OPTION> environment variables and "
                          "from a TOML profile (--config/--profile).")]
    lines += [".SH OPTIONS", *options_section(cli, ctx)]
    lines += [".SH COMMANDS"]
    for name, text in commands:
        lines += [".TP", bold(name), f"{esc(text)}. See \\fB{esc(page_name([name]))}\\fR(1)."]
    lines += [".SH SHELL COMPLETION"]
    for item in COMPLETION_TEXT:
        if isinstance(item, tuple):
            lines += [".PP", ".nf", ".RS 4", esc(item[1]), ".RE", ".fi"]
        else:
            lines += [".PP", esc(item)]
    lines += examples_section("")
    lines += exit_status_section()
    lines += environment_section()
    see = ", ".join(f"\\fB{esc(page_name([n]))}\\fR(1)" for n, _ in commands)
    lines += [".SH SEE ALSO", see + ", \\fBopenssl\\-cmp\\fR(1)"]
    return "\n".join(lines) + "\n"


def render_all() -> tuple[dict[str, str], list[str]]:
    """{file name: page text} for every command, and the commands that could not be loaded."""
    cli = load_cli()
    ctx = click.Context(cli, info_name=PROG, **cli.context_settings)
    missing: list[str] = []
    entries = list(walk(cli, ctx, [], missing))
    pages: dict[str, str] = {}
    top = [(path[0], short_help(cmd)) for path, cmd, _ in entries if len(path) == 1]
    pages[f"{PROG}.1"] = main_page(cli, ctx, top)
    for path, cmd, sub_ctx in entries:
        children = [p[-1] for p, _, _ in entries if len(p) == len(path) + 1 and p[: len(path)] == path]
        pages[f"{page_name(path)}.1"] = subcommand_page(path, cmd, sub_ctx, children)
    return pages, missing


def check(out_dir: Path, pages: dict[str, str]) -> list[str]:
    """Names of pages that differ from, or are missing in, ``out_dir``; and extra files there."""
    problems = []
    for name, text in sorted(pages.items()):
        path = out_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.read_text() != text:
            problems.append(f"{name}: stale")
    for path in sorted(out_dir.glob("*.1")):
        if path.name not in pages:
            problems.append(f"{path.name}: no such command any more")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MAN_DIR, help="directory of the pages (default man/)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the pages in --out are stale")
    parser.add_argument("--allow-missing", action="store_true",
                        help="skip commands whose module cannot be imported (work in progress)")
    args = parser.parse_args(argv)
    pages, missing = render_all()
    if missing and not args.allow_missing:
        print("these commands could not be loaded: " + ", ".join(missing), file=sys.stderr)
        print("fix them (cmpclient <command> --help shows why), or pass --allow-missing", file=sys.stderr)
        return 1 if args.check else 2
    if args.check:
        problems = check(args.out, pages)
        if problems:
            print("man pages are stale; run: .venv/bin/python scripts/make_man.py", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            return 1
        print(f"{len(pages)} man pages up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in pages.items():
        (args.out / name).write_text(text)
    for path in args.out.glob("*.1"):
        if path.name not in pages:
            path.unlink()
    print(f"wrote {len(pages)} man pages to {args.out}" + (f" (skipped: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
