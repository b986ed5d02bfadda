"""A few facts read straight from a PKIMessage's DER, without decoding it.

For code that routes or frames messages without looking inside them -- the proxy keeping
a transaction on its upstream connection, the TCP listener choosing a frame type: the
transactionID, whether the header grants implicit confirmation, the body's type and
whether a certificate answer rejects every request.
This walks the outer TLVs with :func:`cmpclient.asn1.codec.read_tlv`; it validates
nothing (the full, strict decoder does that), and what it cannot find it reports as
absent.

:func:`transaction_continues` is the one place that says which answers leave a CMP
transaction open (the client's transaction logic asks it too).
"""

from __future__ import annotations

from typing import NamedTuple

from cmpclient.asn1.cmp_names import BODY_NAMES, CERT_REP_BODIES
from cmpclient.asn1.codec import read_tlv
from cmpclient.errors import DecodeError

__all__ = ["Peek", "peek", "transaction_continues"]

#: DER content of the OBJECT IDENTIFIER id-it-implicitConfirm (1.3.6.1.5.5.7.4.13).
_IMPLICIT_CONFIRM_OID = bytes.fromhex("2b060105050704" "0d")
_TRANSACTION_ID = 0xA4  # PKIHeader transactionID [4] EXPLICIT OCTET STRING
_GENERAL_INFO = 0xA8  # PKIHeader generalInfo [8] EXPLICIT SEQUENCE OF InfoTypeAndValue




class Peek(NamedTuple):
    transaction_id: bytes | None
    implicit_confirm: bool
    body_type: str | None
    #: A CertRepMessage (ip, cp, kup, ccp) whose every CertResponse is a rejection.
    rejected: bool = False
    #: A pollRep's largest checkAfter (seconds): when the client will ask again.
    check_after: int | None = None


def transaction_continues(body_type: str | None, implicit_confirm: bool, rejected: bool = False) -> bool:
    """Whether more messages of a transaction can follow an answer of ``body_type``:
    certConf after a certificate answer without implicit confirmation (none follows an
    answer that rejects every request: there is no certificate to confirm), pollReq
    after pollRep."""
    if body_type == "pollRep":
        return True
    return (body_type in CERT_REP_BODIES or body_type == "krp") and not implicit_confirm and not rejected


def peek(der: bytes) -> Peek:
    """transactionID, implicitConfirm, the body type and, for a certificate answer,
    whether it rejects every request, of the PKIMessage ``der``."""
    tid: bytes | None = None
    implicit = False
    body: str | None = None
    rejected = False
    check_after: int | None = None
    try:
        tag, pos, end = read_tlv(der, 0)
        if tag != 0x30:
            return Peek(None, False, None)
        tag, start, header_end = read_tlv(der, pos)
        if tag != 0x30:
            return Peek(None, False, None)
        field = 0
        while start < header_end:
            tag, inner, after = read_tlv(der, start)
            # pvno, sender and recipient come first: a GeneralName's own tags look like
            # the optional fields' tags, so those three are skipped by position.
            if field >= 3 and tag == _TRANSACTION_ID:
                t, v, e = read_tlv(der, inner)
                if t == 0x04:
                    tid = bytes(der[v:e])
            elif field >= 3 and tag == _GENERAL_INFO:
                implicit = _grants_implicit_confirm(der, inner)
            field += 1
            start = after
        if header_end < end:
            tag = der[header_end]
            number = tag & 0x1F
            if tag & 0xE0 == 0xA0 and number < len(BODY_NAMES):
                body = BODY_NAMES[number]
                if body in CERT_REP_BODIES:
                    rejected = _all_rejected(der, read_tlv(der, header_end)[1])
                elif body == "pollRep":
                    check_after = _longest_check_after(der, read_tlv(der, header_end)[1])
    except DecodeError:
        pass
    return Peek(tid, implicit, body, rejected, check_after)


def _longest_check_after(der: bytes, pos: int) -> int | None:
    """PollRepContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER, checkAfter INTEGER,
    reason PKIFreeText OPTIONAL }: the largest checkAfter, None if there is none."""
    tag, start, end = read_tlv(der, pos)
    if tag != 0x30:
        return None
    longest: int | None = None
    while start < end:
        t, entry, after = read_tlv(der, start)
        if t != 0x30:
            return None
        t, _, value_pos = read_tlv(der, entry)  # certReqId
        t2, v, e = read_tlv(der, value_pos)  # checkAfter
        if t != 0x02 or t2 != 0x02 or v == e:
            return None
        seconds = int.from_bytes(der[v:e], "big", signed=True)
        longest = seconds if longest is None else max(longest, seconds)
        start = after
    return longest


def _all_rejected(der: bytes, pos: int) -> bool:
    """CertRepMessage ::= SEQUENCE { caPubs [1] OPTIONAL, response SEQUENCE OF CertResponse }:
    whether there is a response and every one has PKIStatus rejection (2)."""
    tag, start, end = read_tlv(der, pos)
    if tag != 0x30 or start >= end:
        return False
    tag, inner, after = read_tlv(der, start)
    if tag == 0xA1:  # caPubs
        if after >= end:
            return False
        tag, inner, after = read_tlv(der, after)
    if tag != 0x30 or inner >= after:
        return False
    pos, seen = inner, 0
    while pos < after:
        _, response, next_pos = read_tlv(der, pos)  # CertResponse
        _, _, status_pos = read_tlv(der, response)  # certReqId INTEGER
        t, info, _ = read_tlv(der, status_pos)  # PKIStatusInfo
        if t != 0x30:
            return False
        t, v, e = read_tlv(der, info)  # status INTEGER
        if t != 0x02 or der[v:e] != b"\x02":
            return False
        seen += 1
        pos = next_pos
    return seen > 0


def _grants_implicit_confirm(der: bytes, pos: int) -> bool:
    tag, start, end = read_tlv(der, pos)  # SEQUENCE OF InfoTypeAndValue
    if tag != 0x30:
        return False
    while start < end:
        _, item, after = read_tlv(der, start)  # InfoTypeAndValue
        t, v, e = read_tlv(der, item)
        if t == 0x06 and der[v:e] == _IMPLICIT_CONFIRM_OID:
            return True
        start = after
    return False
