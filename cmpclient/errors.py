"""One exception hierarchy for the whole toolkit.

Every error knows three things:

* ``fail_info`` -- the PKIFailureInfo bit name a CA answers with when this error is
  raised while handling a request (``badRequest``, ``badMessageCheck``, ...);
* ``exit_code`` -- the documented process exit status the CLI uses;
* ``diagnostics()`` -- a human explanation with a hint on what to do.

Verification code raises one of these; it never returns ``False``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence


class ExitCode(IntEnum):
    """Documented exit statuses of the ``cmpclient`` command."""

    OK = 0
    FAILURE = 1  #: anything not covered below (a bug, an unexpected state)
    USAGE = 2  #: bad command line (click uses 2 as well)
    CONFIG = 3  #: bad configuration, key, certificate or secret source
    TRANSPORT = 4  #: could not talk to the server (connect, TLS, HTTP status, framing)
    PROTOCOL = 5  #: the response is malformed or fails a transaction check
    PROTECTION = 6  #: the response's protection or the signer's trust failed
    REJECTED = 7  #: the server answered with a rejection or an error message
    TIMEOUT = 8  #: a timeout or the polling deadline passed
    INTERRUPTED = 130  #: interrupted by the user (SIGINT)


class CMPClientError(Exception):
    """Base class of every error raised by cmpclient."""

    exit_code: ExitCode = ExitCode.FAILURE
    fail_info: str = "systemFailure"
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, fail_info: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if fail_info is not None:
            self.fail_info = fail_info

    def diagnostics(self) -> str:
        """A human-readable explanation, with a hint when there is one."""
        text = self.message
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


# --- Building and encoding -------------------------------------------------------------


class UsageError(CMPClientError, ValueError):
    """A builder or API was used wrongly (missing field, duplicate value, out of bounds)."""

    exit_code = ExitCode.USAGE
    fail_info = "badRequest"


class ConfigError(CMPClientError):
    """Configuration, key material or a secret source could not be used."""

    exit_code = ExitCode.CONFIG
    fail_info = "systemFailure"


class KeyLoadError(ConfigError):
    """A key, certificate or PKCS#12 file could not be loaded."""


class SecretSourceError(ConfigError):
    """A secret source (env:, file:, fd:, stdin) could not be read or is not allowed."""


# --- Decoding --------------------------------------------------------------------------


class DecodeError(CMPClientError):
    """Bytes that should be a DER structure are not (or carry trailing bytes)."""

    exit_code = ExitCode.PROTOCOL
    fail_info = "badDataFormat"

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        if field:
            message = f"{message} (in {field})"
        super().__init__(message, hint=hint)
        self.field = field


# --- Transport -------------------------------------------------------------------------


class TransportError(CMPClientError):
    """The message could not be delivered or no usable answer came back."""

    exit_code = ExitCode.TRANSPORT
    default_hint = "check the URL, that the server is running, and TLS settings"


class HTTPStatusError(TransportError):
    """The HTTP server answered with a non-200 status or a wrong Content-Type."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        content_type: str | None = None,
        body: bytes = b"",
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint)
        self.status = status
        self.content_type = content_type
        self.body = body


class TransportTimeout(TransportError):
    """A connect or read timeout expired."""

    exit_code = ExitCode.TIMEOUT
    default_hint = "the server did not answer in time; raise --timeout or check the server"


# --- Protocol checks -------------------------------------------------------------------


class ProtocolError(CMPClientError):
    """A message is well-formed DER but breaks a CMP rule (wrong body, IDs, nonces, pvno)."""

    exit_code = ExitCode.PROTOCOL
    fail_info = "badRequest"


class ProtectionError(CMPClientError):
    """Message protection is missing, wrong, or uses an unsupported algorithm."""

    exit_code = ExitCode.PROTECTION
    fail_info = "badMessageCheck"


class TrustError(ProtectionError):
    """A signer certificate does not chain to a trust anchor or is not acceptable."""

    fail_info = "signerNotTrusted"


class PollTimeout(CMPClientError):
    """The total polling time ran out before the server produced an answer."""

    exit_code = ExitCode.TIMEOUT
    fail_info = "systemUnavail"
    default_hint = "raise --total-timeout, or confirm later with the saved transaction"


# --- Server answers --------------------------------------------------------------------


class CMPRejection(CMPClientError):
    """The server rejected the request (a PKIStatus of rejection in a response body)."""

    exit_code = ExitCode.REJECTED

    def __init__(
        self,
        message: str,
        *,
        status: str = "rejection",
        fail_info_names: Sequence[str] = (),
        status_strings: Sequence[str] = (),
        body_type: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint, fail_info=fail_info_names[0] if fail_info_names else None)
        self.status = status
        self.fail_info_names = tuple(fail_info_names)
        self.status_strings = tuple(status_strings)
        self.body_type = body_type

    def diagnostics(self) -> str:
        lines = [self.message, f"PKIStatus: {self.status}"]
        if self.fail_info_names:
            lines.append("failInfo: " + ", ".join(self.fail_info_names))
        if self.status_strings:
            lines.append("statusString: " + " / ".join(self.status_strings))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class CMPErrorMessage(CMPRejection):
    """The server answered with an ``error`` body (ErrorMsgContent)."""

    def __init__(self, message: str, *, error_code: int | None = None, error_details: Sequence[str] = (), **kw):
        super().__init__(message, body_type="error", **kw)
        self.error_code = error_code
        self.error_details = tuple(error_details)

    def diagnostics(self) -> str:
        text = super().diagnostics()
        if self.error_code is not None:
            text += f"\nerrorCode: {self.error_code}"
        if self.error_details:
            text += "\nerrorDetails: " + " / ".join(self.error_details)
        return text
