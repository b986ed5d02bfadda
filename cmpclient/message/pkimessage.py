"""Assemble PKIMessages from header and body, and decode received ones."""

from __future__ import annotations

from typing import Sequence

from cmpclient.asn1 import codec
from cmpclient.asn1.lazy import cmp
from cmpclient.errors import DecodeError, UsageError


def assemble(header: cmp.PKIHeader, body: cmp.PKIBody, *, extra_certs: Sequence[bytes] = ()) -> cmp.PKIMessage:
    """An unprotected PKIMessage; protect it with :func:`cmpclient.protection.protect_message`."""
    if not body.isValue or body.getName() is None:
        raise UsageError("PKIMessage needs a body with one alternative set")
    msg = cmp.PKIMessage()
    msg["header"] = header
    msg["body"] = body
    if extra_certs:
        set_extra_certs(msg, extra_certs)
    return msg


def set_extra_certs(msg: cmp.PKIMessage, certs_der: Sequence[bytes]) -> None:
    """Replace extraCerts with ``certs_der`` (in order, duplicates dropped)."""
    unique: list[bytes] = []
    for der in certs_der:
        if der not in unique:
            unique.append(bytes(der))
    if not unique:
        return
    inner = b"".join(unique)
    seq = codec.der_header(0x30, len(inner)) + inner
    msg["extraCerts"] = codec.value_from_der(msg.componentType["extraCerts"].asn1Object, seq)


def extra_certs(msg: cmp.PKIMessage) -> list[bytes]:
    ec = msg["extraCerts"]
    return [bytes(c) for c in ec] if ec.isValue else []


def encode_message(msg: cmp.PKIMessage) -> bytes:
    return codec.encode(msg)


def decode_message(der: bytes, *, strict: bool = True) -> cmp.PKIMessage:
    """Decode one PKIMessage (strict DER, no trailing bytes)."""
    return codec.decode(der, cmp.PKIMessage(), what="PKIMessage", strict=strict)


def decode_messages(der: bytes) -> list[bytes]:
    """Split a DER PKIMessages (SEQUENCE OF PKIMessage) into the messages' DER."""
    tag, start, end = codec.read_tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise DecodeError("PKIMessages: expected exactly one DER SEQUENCE")
    out, pos = [], start
    while pos < end:
        _, _, item_end = codec.read_tlv(der, pos)
        out.append(der[pos:item_end])
        pos = item_end
    return out


def body_type(msg: cmp.PKIMessage) -> str:
    name = msg["body"].getName()
    if name is None:
        raise DecodeError("PKIMessage has no body")
    return name


def nested_messages(msg: cmp.PKIMessage) -> list[bytes]:
    """The inner messages' exact DER of a ``nested`` body."""
    if body_type(msg) != "nested":
        raise UsageError(f"not a nested message but {body_type(msg)}")
    return [bytes(m) for m in msg["body"]["nested"]]
