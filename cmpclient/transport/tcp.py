"""CMP over plain TCP, as spoken by EJBCA's CMP TCP listener.

Frame layout (version 10, "Transport Protocols for CMP",
draft-ietf-pkix-cmp-transport-protocols, the successor of RFC 2510 section 5.2)::

    offset  size  field
    0       4     length        unsigned, big-endian: number of octets that FOLLOW this
                                field (3 + len(value)); the whole frame is length + 4
    4       1     version       10 for the draft format (EJBCA checks for and sends 10)
    5       1     flags         bit 0 (LSB) = closeConnection; all other bits 0
    6       1     message type  see below
    7       n     value         depends on the type (a DER PKIMessage for 0, 3, 5)

Message types (draft name / RFC 2510 name, value)::

    0  pkiReq       / pkiMsg         a PKIMessage (what a client sends)
    1  pollRep      / pollRep        polling reference (4 octets) + time-to-check-back
                                     (4 octets, seconds): the answer is not ready yet
    2  pollReq      / pollReq        polling reference (4 octets): "is it ready now?"
    3  finRep       / negPollRep     transaction finished. EJBCA uses this type for the
                                     answer to a certConf, carrying the PKIConf message
    4  (none)       / partialMsgRep  RFC 2510 only; not used by version 10
    5  pkiRep       / finalMsgRep    a PKIMessage (the server's answer)
    6  errorMsgRep  / errorMsgRep    human-readable error text (UTF-8 here)

RFC 2510 section 5.2 had no version and flags octets: its byte at offset 4 was the message
type (0..6). Version 10 was chosen in the draft so that both formats can be told apart by
that octet; we speak version 10 only and name an RFC 2510 frame as such when we see one.

Sources, read for facts: RFC 2510 section 5.2 (length semantics, the 0..6 type table);
draft-ietf-pkix-cmp-transport-protocols (-05 .. -10, section "TCP-Based Management
Protocol": version 10, flags with closeConnection in the LSB, the pkiReq/pollRep/pollReq/
finRep/pkiRep/errorMsgRep numbering); cross-checked against Wireshark's CMP dissector
(length excludes its own 4 octets, 7-octet header when octet 4 is 10) and EJBCA's CMP TCP
test client (reads version 10, flags "1 means close", expects type 5 for a response and
3 for the PKIConf that answers a certConf).

The functions here are pure or take a socket/reader so that our test CA's TCP listener
can use the very same framing.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from typing import BinaryIO, Callable, NamedTuple, Protocol, Union
from urllib.parse import urlsplit

from cmpclient.errors import TransportError, TransportTimeout, UsageError
from cmpclient.transport import CUT_BY_TOTAL_TIMEOUT, bounded, watchdog

__all__ = [
    "VERSION",
    "FLAG_CLOSE_CONNECTION",
    "PKI_REQ",
    "PKI_MSG",
    "POLL_REP",
    "POLL_REQ",
    "FIN_REP",
    "PKI_REP",
    "ERROR_MSG_REP",
    "MESSAGE_TYPE_NAMES",
    "DEFAULT_PORT",
    "DEFAULT_MAX_FRAME",
    "Frame",
    "encode_frame",
    "read_frame",
    "encode_poll_req",
    "encode_poll_rep",
    "parse_poll_rep",
    "TCPTransport",
]

log = logging.getLogger("cmpclient.transport")

VERSION = 10
FLAG_CLOSE_CONNECTION = 0x01

PKI_REQ = 0
PKI_MSG = PKI_REQ  # RFC 2510 name of the same value
POLL_REP = 1
POLL_REQ = 2
FIN_REP = 3
PKI_REP = 5
ERROR_MSG_REP = 6

MESSAGE_TYPE_NAMES: dict[int, str] = {
    PKI_REQ: "pkiReq",
    POLL_REP: "pollRep",
    POLL_REQ: "pollReq",
    FIN_REP: "finRep",
    PKI_REP: "pkiRep",
    ERROR_MSG_REP: "errorMsgRep",
}

#: IANA port 829 (pkix-3-ca-ra), the port RFC 2510 names for CMP over TCP.
DEFAULT_PORT = 829
DEFAULT_MAX_FRAME = 10 * 1024 * 1024

_HEADER = struct.Struct(">IBBB")  # length, version, flags, message type
_LENGTH = struct.Struct(">I")
_MAX_LENGTH_FIELD = 0xFFFFFFFF


class Frame(NamedTuple):
    """One decoded CMP-over-TCP frame."""

    version: int
    flags: int
    msg_type: int
    payload: bytes


class _Recv(Protocol):
    def recv(self, bufsize: int) -> bytes: ...


Source = Union[_Recv, BinaryIO]


def _type_name(msg_type: int) -> str:
    return MESSAGE_TYPE_NAMES.get(msg_type, f"unknown type {msg_type}")


def encode_frame(der: bytes, msg_type: int = PKI_REQ, version: int = VERSION, flags: int = 0) -> bytes:
    """Return ``der`` wrapped in one CMP-over-TCP frame (header and value in one buffer).

    ``der`` is the value field: a DER PKIMessage for pkiReq/pkiRep/finRep, or the raw
    value of the other types (see :func:`encode_poll_req`, :func:`encode_poll_rep`).
    """
    for name, value in (("msg_type", msg_type), ("version", version), ("flags", flags)):
        if not 0 <= value <= 0xFF:
            raise UsageError(f"CMP-over-TCP {name} must fit in one octet, got {value}")
    length = 3 + len(der)
    if length > _MAX_LENGTH_FIELD:
        raise UsageError(f"message of {len(der)} bytes is too long for a CMP-over-TCP frame")
    # One buffer, so that the caller can hand it to a single sendall().
    return _HEADER.pack(length, version, flags, msg_type) + bytes(der)


def _read_exact(source: Source, n: int, what: str) -> bytes:
    """Read exactly ``n`` bytes from a socket-like (recv) or file-like (read) source."""
    chunks: list[bytes] = []
    got = 0
    recv = getattr(source, "recv", None)
    read = None if recv is not None else getattr(source, "read")
    while got < n:
        want = min(n - got, 65536)
        try:
            chunk = recv(want) if recv is not None else read(want)  # type: ignore[misc]
        except (socket.timeout, TimeoutError) as exc:
            raise TransportTimeout(f"timed out reading the CMP-over-TCP {what}") from exc
        if not chunk:
            raise TransportError(
                f"connection closed after {got} of {n} bytes of the CMP-over-TCP {what}",
                hint="the server closed the connection early; is this a CMP TCP port?",
            )
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(source: Source, *, max_size: int = DEFAULT_MAX_FRAME, raise_on_error: bool = True) -> Frame:
    """Read one frame from a socket (``recv``) or a binary reader (``read``).

    Refuses (TransportError) a length field below 3 or announcing more than ``max_size``
    value bytes before reading the value, a version other than 10, a short read, and --
    unless ``raise_on_error`` is False -- an errorMsgRep, whose text becomes the message.
    """
    head = _read_exact(source, _HEADER.size, "header")
    length, version, flags, msg_type = _HEADER.unpack(head)
    if version != VERSION:
        hint = None
        if version <= 6:
            hint = (
                "this looks like an RFC 2510 frame (octet 5 is a message type); "
                "only the version 10 format of the CMP TCP transport draft is supported"
            )
        elif head[:4] in (b"HTTP", b"POST"):
            hint = "the peer speaks HTTP; use an http:// URL"
        raise TransportError(f"unsupported CMP-over-TCP version {version} (expected {VERSION})", hint=hint)
    if length < 3:
        raise TransportError(f"CMP-over-TCP length field {length} is shorter than the 3-octet header rest")
    value_len = length - 3
    if value_len > max_size:
        raise TransportError(
            f"CMP-over-TCP frame announces {value_len} bytes, more than the limit of {max_size}",
            hint="the peer is not speaking CMP over TCP, or the message is unreasonably large",
        )
    payload = _read_exact(source, value_len, "value") if value_len else b""
    if msg_type == ERROR_MSG_REP and raise_on_error:
        text = payload.decode("utf-8", errors="replace").strip() or "(no text)"
        raise TransportError(f"CMP TCP server answered errorMsgRep: {text}")
    return Frame(version, flags, msg_type, payload)


def encode_poll_req(polling_ref: int) -> bytes:
    """The value of a pollReq frame: the 4-octet polling reference."""
    return _LENGTH.pack(polling_ref)


def encode_poll_rep(polling_ref: int, check_after: int) -> bytes:
    """The value of a pollRep frame: polling reference and time-to-check-back (seconds)."""
    return struct.pack(">II", polling_ref, check_after)


def parse_poll_rep(value: bytes) -> tuple[int, int]:
    """Split a pollRep value into (polling reference, time-to-check-back seconds)."""
    if len(value) < 8:
        raise TransportError(f"pollRep value of {len(value)} bytes is shorter than 8")
    ref, ttcb = struct.unpack(">II", value[:8])
    return ref, ttcb


def _split_timeout(timeout: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(timeout, tuple):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)


class TCPTransport:
    """Send DER PKIMessages to a CMP TCP listener (``tcp://host:port``).

    Each :meth:`send` opens a connection, writes one pkiReq frame in one ``sendall`` with
    TCP_NODELAY set, reads the answer frame and closes: EJBCA's listener handles one
    message per connection, so keeping sockets open buys nothing and risks stale ones.
    A pollRep (answer not ready) is followed by pollReq frames after the server's
    time-to-check-back, for at most ``poll_timeout`` seconds in total.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        max_response_size: int = DEFAULT_MAX_FRAME,
        poll_timeout: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a bad port raises here
        except ValueError as exc:
            raise UsageError(f"malformed CMP TCP URL {url!r}: {exc}", hint="use tcp://host:port") from None
        if parts.scheme != "tcp" or not parts.hostname:
            raise UsageError(f"not a CMP TCP URL: {url!r} (expected tcp://host:port)")
        if parts.path not in ("", "/"):
            log.warning("ignoring path %r of %s: CMP over TCP has no paths", parts.path, url)
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORT
        self.connect_timeout, self.read_timeout = _split_timeout(timeout)
        self.max_response_size = max_response_size
        self.poll_timeout = poll_timeout
        self._sleep = sleep
        self._closed = False

    def _exchange(self, frame: bytes) -> Frame:
        where = f"{self.host}:{self.port}"
        # within a transaction's total timeout (cmpclient.transport.deadline): what is left of it
        connect_timeout, read_timeout, total = bounded((self.connect_timeout, self.read_timeout), f"the request to {where}")
        left = CUT_BY_TOTAL_TIMEOUT if total else ""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=connect_timeout)
        except ConnectionRefusedError as exc:
            raise TransportError(f"connection refused by {where}", hint="is the CMP TCP listener running on that port?") from exc
        except (socket.timeout, TimeoutError) as exc:
            raise TransportTimeout(f"timed out connecting to {where} after {connect_timeout:g} s{left}") from exc
        except OSError as exc:
            raise TransportError(f"cannot connect to {where}: {exc}") from exc
        dog = watchdog(sock, f"the exchange with {where}")  # a server answering a byte at a time
        try:
            with dog:
                # Nagle would only matter if we wrote twice; set it anyway so a server that
                # answers fast is never held back by a delayed ACK on our side.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(read_timeout)
                try:
                    sock.sendall(frame)
                except (socket.timeout, TimeoutError) as exc:
                    raise TransportTimeout(f"timed out sending to {where}") from exc
                except OSError as exc:
                    raise TransportError(f"sending to {where} failed: {exc}") from exc
                try:
                    answer = read_frame(sock, max_size=self.max_response_size)
                except TransportError:
                    raise
                except OSError as exc:
                    raise TransportError(f"reading the answer from {where} failed: {exc}") from exc
            dog.check()
            return answer
        except TransportError:
            dog.check()
            raise
        finally:
            sock.close()

    def send(self, request: bytes) -> bytes:
        """Send one DER PKIMessage and return the DER PKIMessage that answers it."""
        if self._closed:
            raise TransportError("transport is closed", hint=None)
        answer = self._exchange(encode_frame(request, PKI_REQ))
        deadline = time.monotonic() + self.poll_timeout
        while answer.msg_type == POLL_REP:
            ref, ttcb = parse_poll_rep(answer.payload)
            remaining = deadline - time.monotonic()
            if ttcb > remaining:
                raise TransportTimeout(
                    f"CMP TCP server asks to check back in {ttcb} s, beyond the polling limit of {self.poll_timeout:g} s"
                )
            log.info("CMP TCP server not ready (pollRep ref=%d); polling again in %d s", ref, ttcb)
            self._sleep(ttcb)
            answer = self._exchange(encode_frame(encode_poll_req(ref), POLL_REQ))
        if answer.msg_type in (PKI_REP, FIN_REP, PKI_REQ):
            # EJBCA sends the PKIConf answering a certConf as finRep with the message in
            # it; pkiReq-typed answers come from servers that echo the request type.
            if answer.payload[:1] == b"\x30":
                return answer.payload
            raise TransportError(
                f"CMP TCP server answered {_type_name(answer.msg_type)} without a PKIMessage "
                f"({len(answer.payload)} value bytes)"
            )
        raise TransportError(f"unexpected CMP-over-TCP message type in answer: {_type_name(answer.msg_type)}")

    def close(self) -> None:
        """Mark the transport closed (no socket is kept between messages)."""
        self._closed = True

    def __enter__(self) -> "TCPTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TCPTransport({self.url!r})"
