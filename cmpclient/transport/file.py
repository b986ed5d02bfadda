"""Capture and replay of CMP messages as DER files (openssl cmp's -reqout/-rspout/-reqin/-rspin).

File lists follow openssl cmp: a list of names (or one string of names separated by commas
and/or whitespace); the n-th message goes to / comes from the n-th name, one DER
PKIMessage per file.

When a list runs out we do what openssl's ``apps/cmp.c`` does:

* writing (``reqout``/``rspout``): it is an error -- openssl stops the transaction with
  "not enough file names provided for writing PKIMessage". A request is captured *before*
  it is sent, so a missing ``reqout`` name means the request is not sent at all. Pass
  ``strict=False`` to write only as many messages as there are names and skip the rest
  (logged at debug level).
* reading responses (``rspin``): openssl falls back to the server when one is given
  ("too few -rspin filename arguments; resorting to contacting server"), else it fails.
  :class:`ReplayTransport` does the same with its optional ``inner`` transport.
* reading requests (``reqin``): the built requests are sent once the list is used up
  (openssl 3.0's documented behaviour: "the remaining ones are taken from ... the sequence
  of requests produced internally").  The request a saved one replaced is reported in
  :attr:`ReplayTransport.replaced_request`, so the client checks the answer against the
  request that really went out.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Protocol, Sequence, Union

from cmpclient.errors import ConfigError, TransportError
from cmpclient.transport import end_transaction

__all__ = ["Transport", "CaptureTransport", "ReplayTransport", "split_file_list", "FileList"]

log = logging.getLogger("cmpclient.transport")

FileList = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]


class Transport(Protocol):
    """What every transport offers."""

    def send(self, request: bytes) -> bytes: ...

    def close(self) -> None: ...


def split_file_list(spec: FileList | None) -> list[Path]:
    """Turn ``"a.der, b.der c.der"`` or a sequence of paths into a list of Paths.

    A single string is split on commas and whitespace like openssl's file-list options;
    items of a sequence are taken as they are (so they may contain spaces).
    """
    if spec is None:
        return []
    if isinstance(spec, (str, os.PathLike)):
        return [Path(p) for p in re.split(r"[,\s]+", os.fspath(spec)) if p]
    return [Path(os.fspath(p)) for p in spec]


def _write(path: Path, data: bytes, what: str) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:  # a local file, not the server: a configuration error (exit 3)
        raise ConfigError(f"cannot write {what} to file '{path}': {exc.strerror or exc}",
                          hint="check the directory and permissions") from exc


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} from file '{path}': {exc.strerror or exc}", hint="check the file name") from exc
    if not data:
        raise TransportError(f"file '{path}' for {what} is empty")
    return data


class CaptureTransport:
    """Wrap a transport and save each request and/or response to the next file name.

    :param inner: the transport that really sends.
    :param reqout: file names for the requests (see :func:`split_file_list`).
    :param rspout: file names for the responses.
    :param strict: when a list is exhausted, raise TransportError (openssl's behaviour);
        with False, messages beyond the list are simply not written.
    """

    def __init__(
        self,
        inner: Transport,
        reqout: FileList | None = None,
        rspout: FileList | None = None,
        *,
        strict: bool = True,
    ) -> None:
        self.inner = inner
        self._reqout = split_file_list(reqout)
        self._rspout = split_file_list(rspout)
        self._has_reqout = reqout is not None
        self._has_rspout = rspout is not None
        self.strict = strict
        self.written: list[Path] = []

    def _next(self, names: list[Path], enabled: bool, what: str) -> Path | None:
        if not enabled:
            return None
        if names:
            return names.pop(0)
        if self.strict:
            raise TransportError(
                f"not enough file names provided for writing the {what}",
                hint=f"give one file name per {what} of the transaction",
            )
        log.debug("no file name left for the %s; not capturing it", what)
        return None

    def send(self, request: bytes) -> bytes:
        """Save the request, send it with the inner transport, save the response."""
        path = self._next(self._reqout, self._has_reqout, "request")
        if path is not None:
            _write(path, request, "request")
            self.written.append(path)
        response = self.inner.send(request)
        path = self._next(self._rspout, self._has_rspout, "response")
        if path is not None:
            _write(path, response, "response")
            self.written.append(path)
        return response

    @property
    def replaced_request(self) -> bytes | None:
        """What the inner transport sent instead of the last request (``reqin``), if anything."""
        return getattr(self.inner, "replaced_request", None)

    def next_saved_request(self) -> bytes | None:
        """What the inner transport will send instead of the next request (``reqin``), if anything."""
        peek = getattr(self.inner, "next_saved_request", None)
        return peek() if peek is not None else None

    def end_transaction(self) -> None:
        end_transaction(self.inner)

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()

    def __enter__(self) -> "CaptureTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ReplayTransport:
    """Answer requests from saved DER responses, in order (openssl's ``-rspin``).

    :param rspin: file names of the responses to return, one per :meth:`send`.
    :param reqin: optional file names whose contents REPLACE the requests given to
        :meth:`send` (openssl's ``-reqin``), in order; once they are used up the given
        requests are sent.  Useful with ``inner`` to resend saved requests.
    :param inner: a transport to fall back to once ``rspin`` is exhausted (openssl:
        "resorting to contacting server"); without it, exhaustion is a TransportError.

    The requests actually handled are kept in :attr:`requests`, in order;
    :attr:`replaced_request` is the saved request the last :meth:`send` used instead of
    the one it was given (None when it used the given one).
    """

    replaced_request: bytes | None = None

    def __init__(
        self,
        rspin: FileList | None = None,
        reqin: FileList | None = None,
        *,
        inner: Transport | None = None,
    ) -> None:
        self._rspin = split_file_list(rspin)
        self._reqin = split_file_list(reqin)
        self._has_reqin = reqin is not None
        self.inner = inner
        self.requests: list[bytes] = []
        self._peeked: tuple[Path, bytes] | None = None
        if not self._rspin and inner is None and not self._has_reqin:
            raise TransportError("ReplayTransport needs rspin files or an inner transport")

    def next_saved_request(self) -> bytes | None:
        """The saved request the next :meth:`send` will use instead of the one it is given
        (None once the reqin files are used up), read now so a caller can refuse it before
        anything goes out."""
        if not self._reqin:
            return None
        if self._peeked is None or self._peeked[0] != self._reqin[0]:
            self._peeked = (self._reqin[0], _read(self._reqin[0], "request"))
        return self._peeked[1]

    def send(self, request: bytes) -> bytes:
        """Return the next saved response (or the inner transport's answer)."""
        self.replaced_request = None
        if self._reqin:
            saved = self.next_saved_request()
            path = self._reqin.pop(0)
            request = self.replaced_request = saved  # type: ignore[assignment]
            self._peeked = None
            log.info("sending the saved request %s instead of the built one", path)
        elif self._has_reqin:
            log.info("no reqin file left; sending the built request")
        self.requests.append(request)
        if self._rspin:
            return _read(self._rspin.pop(0), "response")
        if self.inner is not None:
            log.info("too few rspin files; resorting to contacting the server")
            return self.inner.send(request)
        raise TransportError(
            f"no saved response left for request #{len(self.requests)} (rspin exhausted)",
            hint="give one rspin file per message of the transaction, or a server to fall back to",
        )

    def end_transaction(self) -> None:
        end_transaction(self.inner)  # no fallback transport: nothing to do

    def close(self) -> None:
        """Close the fallback transport, if any."""
        if self.inner is not None:
            self.inner.close()

    def __enter__(self) -> "ReplayTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
