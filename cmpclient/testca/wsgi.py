"""The test CA's HTTP layer: a WSGI application in front of :meth:`TestCA.handle`.

It reproduces what EJBCA's CMP servlet does at the HTTP level (shared/spec/testca.md,
"HTTP layer"); everything CMP happens in ``ca.handle(alias, der)``, which never raises.

Paths
    ``/ejbca/publicweb/cmp/<alias>`` and the short form ``/<alias>`` (an optional
    trailing ``/`` is ignored). ``/ejbca/publicweb/cmp`` without an alias means the
    alias ``cmp``, as in EJBCA. Any other path is 404.
Alias
    1 to 32 characters of ``[A-Za-z0-9_-]``. EJBCA's documentation says
    "alphanumeric"; ``-`` and ``_`` are allowed here because our default configuration
    has aliases like ``ra-sig`` and EJBCA's own sample aliases use them. A longer alias
    or another character -> 400. A well-formed alias the CA does not know -> 404,
    decided before a single body byte is read.
Method
    Only POST carries CMP; anything else -> 405 with ``Allow: POST``.
Body
    ``Content-Length`` is required (missing or malformed -> 400, as EJBCA; a chunked
    body has none and is refused the same way) and at most 100 000 bytes (-> 400,
    without reading the body). The body is then read in full and handed to the CA;
    a body that is not a PKIMessage is the CA's business (it answers HTTP 200 with an
    unprotected CMP error, failInfo badRequest).
Answers
    CMP answers carry ``Content-Type: application/pkixcmp``; every answer carries
    ``Cache-Control: no-cache`` and ``Pragma: no-cache``. HTTP errors have a short
    ``text/plain`` body. The client never sees a traceback or a 500: an unexpected
    exception is logged here and answered with an unprotected CMP error
    (systemFailure), HTTP 200, like any other CMP failure.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Iterable, Protocol

__all__ = [
    "CMP_CONTENT_TYPE",
    "MAX_ALIAS_LENGTH",
    "MAX_BODY_SIZE",
    "PATH_PREFIX",
    "DEFAULT_ALIAS",
    "make_app",
    "alias_from_path",
    "HTTPRefusal",
    "read_cmp_request",
    "plain_response",
    "cmp_response",
]

log = logging.getLogger("cmpclient.testca.http")

CMP_CONTENT_TYPE = "application/pkixcmp"
MAX_ALIAS_LENGTH = 32
MAX_BODY_SIZE = 100_000
PATH_PREFIX = "/ejbca/publicweb/cmp"
#: EJBCA's alias when the path names none (``/ejbca/publicweb/cmp``).
DEFAULT_ALIAS = "cmp"

_ALIAS_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_NO_CACHE = [("Cache-Control", "no-cache"), ("Pragma", "no-cache")]

StartResponse = Callable[..., Any]


class _CA(Protocol):
    def alias_exists(self, alias: str) -> bool: ...

    def handle(self, alias: str, der: bytes) -> tuple[int, bytes]: ...


class HTTPRefusal(Exception):
    """A request refused at the HTTP level: ``status``, a short ``text``, extra ``headers``."""

    def __init__(self, status: int, text: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = list(headers)


#: The name this module used before :class:`HTTPRefusal` was shared with the CMP proxy.
_PathError = HTTPRefusal


def alias_from_path(path: str) -> str:
    """The alias a request path names, or :class:`HTTPRefusal` (400 or 404).

    >>> alias_from_path("/ejbca/publicweb/cmp/ra")
    'ra'
    >>> alias_from_path("/ra-sig/")
    'ra-sig'
    """
    if path.startswith(PATH_PREFIX + "/") or path == PATH_PREFIX:
        rest = path[len(PATH_PREFIX) + 1 :]
        if rest.endswith("/"):
            rest = rest[:-1]
        candidate = rest or DEFAULT_ALIAS
    else:
        candidate = path[1:] if path.startswith("/") else path
        if candidate.endswith("/"):
            candidate = candidate[:-1]
        if not candidate:
            raise HTTPRefusal(404, "no CMP alias in the path; use /ejbca/publicweb/cmp/<alias>")
    if "/" in candidate:
        raise HTTPRefusal(404, "not a CMP path; use /ejbca/publicweb/cmp/<alias>")
    if len(candidate) > MAX_ALIAS_LENGTH:
        raise HTTPRefusal(400, f"CMP alias longer than {MAX_ALIAS_LENGTH} characters")
    if not _ALIAS_CHARS.fullmatch(candidate):
        raise HTTPRefusal(400, "CMP alias may contain only letters, digits, '-' and '_'")
    return candidate


def plain_response(start_response: StartResponse, status: int, text: str, extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    """A short ``text/plain`` answer (HTTP errors), with the no-cache headers."""
    body = (text.rstrip("\n") + "\n").encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    headers += _NO_CACHE
    headers += list(extra)
    start_response(_STATUS_LINES.get(status, f"{status} Error"), headers)
    return [body]


_STATUS_LINES = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    411: "411 Length Required",
    413: "413 Payload Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


def _read_body(stream: Any, length: int) -> bytes | None:
    """Exactly ``length`` bytes from wsgi.input, or None when the client sent fewer (it
    closed, reset the connection or went silent past the read timeout)."""
    chunks: list[bytes] = []
    got = 0
    while got < length:
        try:
            chunk = stream.read(length - got)
        except (OSError, ValueError) as exc:  # TimeoutError, ConnectionResetError, a closed stream
            log.info("the client stopped sending its body after %d of %d bytes: %s", got, length, exc)
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _system_failure_der(text: str) -> bytes:
    """An unprotected CMP error (systemFailure) for when the CA itself failed."""
    from cmpclient.message.body import error_body
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.pkimessage import assemble, encode_message

    header = HeaderBuilder().sender("").recipient("").build()
    return encode_message(assemble(header, error_body("rejection", fail_info=["systemFailure"], texts=[text])))


def read_cmp_request(
    environ: dict, alias_exists: Callable[[str], bool], *, max_body_size: int = MAX_BODY_SIZE
) -> tuple[str, bytes]:
    """Apply the HTTP rules of the module docstring; return ``(alias, body)``.

    Raises :class:`HTTPRefusal` for a bad path or alias (400/404), an alias that
    ``alias_exists`` does not know (404, before a single body byte is read), another
    method than POST (405), and a missing, malformed, too large or short body (400).
    Shared by the test CA and the CMP proxy, so both refuse exactly the same requests.
    """
    path = environ.get("PATH_INFO") or "/"
    alias = alias_from_path(path)
    # Checked before the body is read: a stranger's upload costs us nothing.
    if not alias_exists(alias):
        raise HTTPRefusal(404, f"unknown CMP alias {alias!r}")
    method = environ.get("REQUEST_METHOD", "GET")
    if method != "POST":  # methods are case-sensitive (RFC 9110): "post" is not POST
        raise HTTPRefusal(405, "only POST carries CMP messages", [("Allow", "POST")])
    if environ.get("HTTP_TRANSFER_ENCODING"):
        # CMP over HTTP sends a Content-Length. With both headers the framing is ambiguous
        # (RFC 9112 section 6.3: request smuggling), and wsgiref would read the chunks raw.
        raise HTTPRefusal(400, "Transfer-Encoding is not accepted: send the message with a Content-Length")
    raw_length = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw_length:
        raise HTTPRefusal(400, "Content-Length is required")
    if not (raw_length.isascii() and raw_length.isdigit()):
        raise HTTPRefusal(400, "malformed Content-Length")
    length = int(raw_length)
    if length > max_body_size:
        raise HTTPRefusal(400, f"CMP message larger than {max_body_size} bytes")
    body = _read_body(environ["wsgi.input"], length)
    if body is None:
        raise HTTPRefusal(400, "request body shorter than its Content-Length")
    return alias, body


def make_app(ca: _CA, *, max_body_size: int = MAX_BODY_SIZE) -> Callable[[dict, StartResponse], list[bytes]]:
    """A WSGI application serving ``ca`` (see the module docstring for the HTTP rules).

    ``ca`` needs ``alias_exists(alias)`` and ``handle(alias, der) -> (status, der)``.
    The application does no locking: give each worker process its own CA, and use a CA
    whose ``handle`` is safe to call from several threads when serving with threads.
    """

    def app(environ: dict, start_response: StartResponse) -> list[bytes]:
        try:
            return _serve(environ, start_response)
        except Exception:  # the client must never see a traceback or a 500
            log.exception("unexpected error serving %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            try:
                der = _system_failure_der("internal error in the test CA; see its log")
            except Exception:  # pragma: no cover - the message layer itself is broken
                log.exception("cannot even build a CMP error message")
                return plain_response(start_response, 503, "internal error in the test CA; see its log")
            return cmp_response(start_response, 200, der)

    def _serve(environ: dict, start_response: StartResponse) -> list[bytes]:
        try:
            alias, body = read_cmp_request(environ, ca.alias_exists, max_body_size=max_body_size)
        except HTTPRefusal as refusal:
            return plain_response(start_response, refusal.status, refusal.text, refusal.headers)
        status, der = ca.handle(alias, body)
        if status == 200 or (400 <= status < 500 and der[:1] == b"\x30"):
            return cmp_response(start_response, status, der)
        if 400 <= status < 500:
            return plain_response(start_response, status, der.decode("utf-8", "replace") or "request refused by the CA")
        # A 5xx (or anything odd) from the CA still reaches the client as a CMP error.
        log.error("CA answered HTTP %s for alias %r; sending a CMP systemFailure instead", status, alias)
        return cmp_response(start_response, 200, _system_failure_der("internal error in the test CA; see its log"))

    return app


def cmp_response(start_response: StartResponse, status: int, der: bytes, content_type: str = CMP_CONTENT_TYPE) -> list[bytes]:
    """An answer carrying ``der`` (a CMP message unless ``content_type`` says otherwise)."""
    headers = [("Content-Type", content_type), ("Content-Length", str(len(der)))] + _NO_CACHE
    start_response(_STATUS_LINES.get(status, f"{status} Error"), headers)
    return [der]
