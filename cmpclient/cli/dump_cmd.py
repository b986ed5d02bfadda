"""``cmpclient dump FILE...``: show saved CMP messages as a tree.

Input formats, detected from the bytes (``-`` reads standard input):

* DER -- one PKIMessage, as written by ``--reqout/--rspout`` or ``openssl cmp -reqout``;
* PEM -- any ``-----BEGIN <label>-----`` armour around a PKIMessage (several blocks allowed);
* base64 text -- the DER in base64, line breaks and spaces ignored;
* a saved transaction state (JSON, e.g. written by ``--no-confirm``): every string field
  that holds a PKIMessage (or a certificate) in hex or base64 is dumped.

Text goes to stdout; a rich tree when stdout is a terminal and ``NO_COLOR`` is unset, plain
indented text otherwise. ``--json`` prints the tree of :func:`cmpclient.asn1.dump.dump`
(one message: the tree itself; several: a list of ``{"source", "message"}``). A file that
cannot be read is reported on stderr and the command exits with the first failure's status:
3 (CONFIG) for a file that cannot be opened, 5 (PROTOCOL) for one that is not a CMP message.
With ``--json`` such a file is the error document of every command (``{"ok": false,
"exit_code", "error", "message", "hint", "source"}``) when it was the only file, else an
entry ``{"source", "error": {...}}`` of the list in its place.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable

import click

from cmpclient.errors import CMPClientError, ConfigError, DecodeError, ExitCode

FORMATS_HINT = "expected a DER PKIMessage, PEM (-----BEGIN ...-----), base64 text, or a saved transaction JSON"
_PEM_RE = re.compile(rb"-----BEGIN ([^-\r\n]*)-----(.*?)-----END \1-----", re.DOTALL)
_B64_RE = re.compile(rb"^[A-Za-z0-9+/=\s]+$")
_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


@dataclass(frozen=True)
class Item:
    """One thing to dump: a PKIMessage's DER (``kind="message"``) or a certificate's."""

    source: str
    der: bytes
    kind: str = "message"


def _is_der_sequence(data: bytes) -> bool:
    from cmpclient.asn1 import codec

    if data[:1] != b"\x30":
        return False
    try:
        _, _, end = codec.read_tlv(data, 0)
    except DecodeError:
        return False
    return end == len(data)


def _b64(text: bytes) -> bytes | None:
    compact = re.sub(rb"\s+", b"", text)
    if not compact:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def read_items(data: bytes, source: str) -> list[Item]:
    """Split input bytes into the messages they hold (see the module docstring)."""
    if not data:
        raise DecodeError(f"{source}: empty input", hint=FORMATS_HINT)
    if data[:1] == b"\x30":
        # DER: a trailing-byte or truncation problem is reported by the decoder itself.
        return [Item(source, data)]
    stripped = data.strip()
    if b"-----BEGIN " in stripped:
        blocks = _PEM_RE.findall(stripped)
        if not blocks:
            raise DecodeError(f"{source}: PEM armour without a matching END line", hint=FORMATS_HINT)
        items = []
        for i, (label, body) in enumerate(blocks):
            der = _b64(body)
            if der is None:
                raise DecodeError(f"{source}: PEM block {label.decode(errors='replace')!r} is not valid base64")
            name = source if len(blocks) == 1 else f"{source}[{i}]"
            items.append(Item(name, der, "certificate" if label.strip() == b"CERTIFICATE" and not _looks_like_pkimessage(der) else "message"))
        return items
    if stripped[:1] == b"{":
        return _json_items(stripped, source)
    if _B64_RE.match(stripped):
        der = _b64(stripped)
        if der is not None and der[:1] == b"\x30":
            return [Item(source, der)]
    raise DecodeError(f"{source}: not a CMP message (first byte 0x{data[0]:02x})", hint=FORMATS_HINT)


def _looks_like_pkimessage(der: bytes) -> bool:
    try:
        from cmpclient.message.pkimessage import decode_message

        decode_message(der, strict=False)
        return True
    except CMPClientError:
        return False


def _json_items(text: bytes, source: str) -> list[Item]:
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"{source}: not valid JSON: {exc}", hint=FORMATS_HINT) from exc
    items: list[Item] = []
    for path, value in _strings(doc, ""):
        der = _decode_text(value)
        if der is None or not _is_der_sequence(der):
            continue
        if _looks_like_pkimessage(der):
            items.append(Item(f"{source}:{path}", der))
        elif _is_certificate(der):
            items.append(Item(f"{source}:{path}", der, "certificate"))
    if not items:
        raise DecodeError(
            f"{source}: the JSON document holds no PKIMessage or certificate (hex or base64 string fields)",
            hint=FORMATS_HINT,
        )
    return items


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str) and len(value) >= 8:
        yield path, value


def _decode_text(value: str) -> bytes | None:
    value = value.strip()
    if _HEX_RE.match(value):
        return bytes.fromhex(value)
    if "-----BEGIN " in value:
        m = _PEM_RE.search(value.encode())
        return _b64(m.group(2)) if m else None
    return _b64(value.encode())


def _is_certificate(der: bytes) -> bool:
    from cryptography import x509

    try:
        x509.load_der_x509_certificate(der)
        return True
    except ValueError:
        return False


def tree_of(item: Item, *, max_depth: int | None = None) -> dict[str, Any]:
    from cmpclient.asn1 import dump as _dump

    if item.kind == "certificate":
        return {"certificate": _dump.certificate_summary(item.der)}
    return _dump.dump(item.der, max_depth=max_depth)


def _read_source(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}", hint="check the file name") from exc


def _want_rich() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def print_rich(tree: dict[str, Any], title: str | None = None) -> None:
    """The tree as a rich Tree on stdout (used on a terminal)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    from cmpclient.asn1.dump import walk

    lines = walk(tree)
    root_text = title or (lines[0][1] if lines else "")
    root = Tree(f"[bold]{escape(root_text)}[/]")
    stack: list[tuple[int, Any]] = [(-1 if title else 0, root)]
    for depth, text in lines if title else lines[1:]:
        while stack and stack[-1][0] >= depth:
            stack.pop()
        key, sep, rest = text.partition(": ")
        label = f"[cyan]{escape(key)}[/]{sep}{escape(rest)}" if sep else f"[bold cyan]{escape(key)}[/]"
        node = stack[-1][1].add(label) if stack else root.add(label)
        stack.append((depth, node))
    Console(file=sys.stdout, highlight=False, soft_wrap=True).print(root)


@click.command("dump")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "json_output", is_flag=True, default=None, help="Print the tree as JSON on stdout.")
@click.option("--max-depth", "max_depth", type=click.IntRange(0, 15), default=15, show_default=True,
              help="How many levels of nested messages to show.")
@click.pass_context
def dump(ctx: click.Context, files: tuple[str, ...], json_output: bool | None, max_depth: int) -> None:
    """Show saved CMP messages (DER, PEM, base64 or a saved state JSON) as a tree.

    FILE is a file name or - for standard input. OIDs are named, failInfo bits spelled out,
    certificates summarised. A file that is not a CMP message is reported on stderr and the
    exit status is 5 (3: a file that cannot be read). With --json the error is in the
    output too: one FILE gives the error document ({"ok": false, "exit_code": 5, ...,
    "source": FILE}), several give a {"source", "error"} entry in the list in its place.

    \b
    Examples:
      cmpclient dump rsp1.der
      cmpclient crmf ... --rspout rsp.der && cmpclient dump --json rsp.der | jq .body
      base64 -d < msg.b64 | cmpclient dump -
    """
    from cmpclient.asn1 import dump as _dump
    from cmpclient.cli.render import error_document, get_output

    out = get_output(ctx)
    as_json = bool(json_output) or out.json
    entries: list[dict[str, Any]] = []  # per message read, or per file that failed
    failed: ExitCode | None = None
    for path in files:
        name = "<stdin>" if path == "-" else path
        try:
            for item in read_items(_read_source(path), name):
                entries.append({"source": item.source, "message": tree_of(item, max_depth=max_depth)})
            continue
        except CMPClientError as exc:
            error: CMPClientError = exc
        except RecursionError:
            error = DecodeError(f"{name}: structure nested too deeply")
        code = _report(error, name)
        failed = failed or code
        entries.append({"source": name, "error": error_document(error, code)})
    if as_json:
        if len(files) == 1 and len(entries) == 1:
            # One file: its tree, or the error document every command prints (with "source").
            doc: Any = entries[0].get("message") or {**entries[0]["error"], "source": entries[0]["source"]}
        else:
            doc = entries
        click.echo(json.dumps(doc, indent=2))
    else:
        rich = _want_rich()
        messages = [e for e in entries if "message" in e]
        for i, entry in enumerate(messages):
            if len(messages) > 1:
                click.echo(("\n" if i else "") + f"==> {entry['source']} <==")
            if rich:
                print_rich(entry["message"])
            else:
                click.echo(_dump.render_text(entry["message"]), nl=False)
    if failed:
        ctx.exit(int(failed))  # the first failure's code


def _report(exc: CMPClientError, source: str) -> ExitCode:
    """Print ``exc``; its exit code: 3 for a file that cannot be read, else 5 (not DER/CMP)."""
    code = ExitCode.CONFIG if isinstance(exc, ConfigError) else ExitCode.PROTOCOL
    text = exc.diagnostics()
    if not text.startswith(source):
        text = f"{source}: {text}"
    click.echo(f"error ({code.name.lower()}, exit {int(code)}): {text}", err=True)
    return code
