"""The answers a client gets on every enrollment, read without pyasn1.

:func:`fast_parse` reads the common shapes -- ip/cp/kup/ccp carrying certificates,
pkiconf, error, genp and pollRep, with a directoryName sender and recipient -- straight
from DER with :mod:`cmpclient.asn1.der` and returns the same :class:`ParsedMessage` the
full decoder would (its pyasn1 value is then decoded only if someone asks for it).  For
anything else (another body, an encrypted certificate or key, another kind of name, a
construct the strict reader is unsure of) it returns None and :func:`parse_message`
uses the full decoder, which also produces every error message: this module never
refuses a message, it only declines to read it.
"""

from __future__ import annotations

import functools

from cmpclient.asn1.cmp_names import BODY_NAMES, CERT_REP_BODIES
from cmpclient.asn1.codec import MAX_MESSAGE_SIZE
from cmpclient.asn1.der import BIT_STRING, NULL, OCTET_STRING, SEQUENCE, SET, NotHandled, Reader

__all__ = ["fast_parse"]


def fast_parse(der: bytes):  # -> ParsedMessage | None
    """The :class:`ParsedMessage` of ``der`` when this reader handles it, else None."""
    return parse_with(der, _BODIES)


def parse_with(der: bytes, bodies: dict):  # -> ParsedMessage | None
    """:func:`fast_parse` with other body readers: ``bodies`` maps a body name to a
    function of the body's :class:`Reader` returning the ParsedMessage's ``content``
    (raising :class:`NotHandled` for what it does not read).  The test CA reads its
    most common requests this way (:mod:`cmpclient.testca.fastreq`)."""
    if not isinstance(der, (bytes, bytearray, memoryview)) or not 0 < len(der) <= MAX_MESSAGE_SIZE:
        return None  # the full decoder words the error
    try:
        return _parse(bytes(der), bodies)
    except NotHandled:
        return None
    except Exception:  # noqa: BLE001 - a reader bug must never hide the full decoder's verdict
        return None


def _parse(der: bytes, bodies: dict):
    from cmpclient.message.parse import ParsedMessage

    top = Reader(der)
    msg = top.enter(SEQUENCE)
    top.done()
    header, alg_der = _header(msg.enter(SEQUENCE))
    tag = msg.peek()
    if tag is None or tag & 0xE0 != 0xA0:
        raise NotHandled("no body")
    index = tag & 0x1F
    if index >= len(BODY_NAMES):
        raise NotHandled("unknown body")
    kind = BODY_NAMES[index]
    reader = bodies.get(kind)
    if reader is None:
        raise NotHandled(f"{kind} body")
    body = msg.enter(tag)
    content = reader(body)
    body.done()
    value = None
    if msg.peek() == 0xA0:
        box = msg.enter(0xA0)
        value = box.octet_bits()
        box.done()
    certs: tuple[bytes, ...] = ()
    if msg.peek() == 0xA1:
        box = msg.enter(0xA1)
        certs = _certificates(box)
        box.done()
    msg.done()
    if (value is None) != (alg_der is None):
        raise NotHandled("protection without protectionAlg or the reverse")
    return ParsedMessage(
        der=der,
        header=header,
        body_type=kind,
        protected=value is not None,
        extra_certs=certs,
        content=content,
        protection_alg_der=alg_der,
        protection_value=value,
    )


# --- header --------------------------------------------------------------------------------


def _header(h: Reader):
    from cmpclient.message.parse import Header

    pvno = h.integer()
    sender_name, sender = _directory_name(h)
    recipient_name, recipient = _directory_name(h)
    fields: dict[int, object] = {}
    last = -1
    while not h.at_end():
        tag = h.peek()
        number = tag - 0xA0  # type: ignore[operator]
        if not 0 <= number <= 8 or number <= last:
            raise NotHandled("unexpected PKIHeader field")
        last = number
        box = h.enter(tag)  # type: ignore[arg-type]
        fields[number] = _HEADER_FIELDS[number](box)
        box.done()
    alg = fields.get(1)
    return (
        Header(
            pvno=pvno,
            sender=sender,
            recipient=recipient,
            sender_name=sender_name,
            recipient_name=recipient_name,
            message_time=fields.get(0),  # type: ignore[arg-type]
            protection_alg=alg[0] if alg else None,  # type: ignore[index]
            sender_kid=fields.get(2),  # type: ignore[arg-type]
            recip_kid=fields.get(3),  # type: ignore[arg-type]
            transaction_id=fields.get(4),  # type: ignore[arg-type]
            sender_nonce=fields.get(5),  # type: ignore[arg-type]
            recip_nonce=fields.get(6),  # type: ignore[arg-type]
            free_text=fields.get(7, ()),  # type: ignore[arg-type]
            general_info=fields.get(8, ()),  # type: ignore[arg-type]
        ),
        alg[1] if alg else None,  # type: ignore[index]
    )


def _directory_name(h: Reader):
    """A GeneralName that is a directoryName: (x509.Name, its text as general_name_text)."""
    box = h.enter(0xA4)
    name = box.raw()
    box.done()
    return read_name(name)


@functools.lru_cache(maxsize=256)
def read_name(der: bytes):
    """(x509.Name, text) of a Name's DER; memoised, as a peer names itself and us in every
    message (both results are immutable).  Raises :class:`NotHandled` for what this reader
    leaves to the full decoder (a multi-valued RDN); the test CA's request reader uses it too."""
    from cmpclient.message.names import name_from_attributes

    rdns = []
    for rdn in Reader(der).sequence_of(SEQUENCE):
        attributes = rdn.sequence_of(SET, non_empty=True)
        if len(attributes) != 1:
            raise NotHandled("multi-valued RDN (DER SET OF order)")
        atv = attributes[0].enter(SEQUENCE)
        oid = atv.oid()
        value = atv.raw()
        atv.done()
        Reader(value).header()  # the value's own header must be DER too
        rdns.append([(oid, value)])
    name = name_from_attributes(rdns)
    return name, name.rfc4514_string() or "NULL-DN"


def _alg_id(box: Reader) -> tuple[str, bytes]:
    """An AlgorithmIdentifier: (OID, its whole DER)."""
    begin = box.pos
    oid, _ = box.algorithm_identifier()
    return oid, box.data[begin : box.pos]


def _free_text(r: Reader) -> tuple[str, ...]:
    return tuple(item.utf8() for item in r.sequence_of(SEQUENCE, non_empty=True))


def _itav(item: Reader) -> tuple[str, bytes | None]:
    seq = item.enter(SEQUENCE)
    oid = seq.oid()
    value = None if seq.at_end() else seq.raw()
    seq.done()
    return oid, value


def _general_info(r: Reader) -> tuple[tuple[str, bytes | None], ...]:
    return tuple(_itav(item) for item in r.sequence_of(SEQUENCE, non_empty=True))


_HEADER_FIELDS = {
    0: lambda r: r.generalized_time(),
    1: _alg_id,
    2: lambda r: r.octets(OCTET_STRING),
    3: lambda r: r.octets(OCTET_STRING),
    4: lambda r: r.octets(OCTET_STRING),
    5: lambda r: r.octets(OCTET_STRING),
    6: lambda r: r.octets(OCTET_STRING),
    7: _free_text,
    8: _general_info,
}


# --- bodies ----------------------------------------------------------------------------------


def _certificates(r: Reader) -> tuple[bytes, ...]:
    """SEQUENCE SIZE (1..MAX) OF CMPCertificate, each an opaque X.509 SEQUENCE."""
    return tuple(_certificate(item) for item in r.sequence_of(SEQUENCE, non_empty=True))


def _certificate(r: Reader) -> bytes:
    if r.peek() != SEQUENCE:
        raise NotHandled("a CMPCertificate that is not an X.509 certificate")
    cert = r.raw()
    r.done()
    return cert


def _status_info(r: Reader):
    from cmpclient.message.status import status_info

    seq = r.enter(SEQUENCE)
    code = seq.integer()
    texts = _free_text(seq) if seq.peek() == SEQUENCE else ()
    bits = seq.bits() if seq.peek() == BIT_STRING else ()
    seq.done()
    return status_info(code, bits, texts)


def _cert_rep(body: Reader):
    from cmpclient.message.parse import CertRepContent, CertResponseInfo

    rep = body.enter(SEQUENCE)
    ca_pubs: tuple[bytes, ...] = ()
    if rep.peek() == 0xA1:
        box = rep.enter(0xA1)
        ca_pubs = _certificates(box)
        box.done()
    responses = []
    for item in rep.sequence_of(SEQUENCE):
        r = item.enter(SEQUENCE)
        req_id = r.integer()
        status = _status_info(r)
        cert = rsp_info = None
        if r.peek() == SEQUENCE:
            pair = r.enter(SEQUENCE)
            box = pair.enter(0xA0)  # certOrEncCert: certificate [0]; encryptedCert [1] is not handled
            cert = _certificate(box)
            pair.done()  # privateKey [0], publicationInfo [1]: not handled
        if r.peek() == OCTET_STRING:
            rsp_info = r.octets()
        r.done()
        item.done()
        responses.append(CertResponseInfo(cert_req_id=req_id, status=status, certificate=cert, rsp_info=rsp_info))
    rep.done()
    return CertRepContent(ca_pubs, tuple(responses))


def _pkiconf(body: Reader) -> None:
    body.null(NULL)


def _error(body: Reader):
    from cmpclient.message.parse import ErrorContent

    seq = body.enter(SEQUENCE)
    status = _status_info(seq)
    code = seq.integer() if seq.peek() == 0x02 else None
    details = _free_text(seq) if seq.peek() == SEQUENCE else ()
    seq.done()
    return ErrorContent(status, code, details)


def _genp(body: Reader):
    return tuple(_itav(item) for item in body.sequence_of(SEQUENCE))


def _poll_rep(body: Reader):
    from cmpclient.message.parse import PollRepEntry

    out = []
    for item in body.sequence_of(SEQUENCE):
        seq = item.enter(SEQUENCE)
        req_id = seq.integer()
        check_after = seq.integer()
        reason = _free_text(seq) if seq.peek() == SEQUENCE else ()
        seq.done()
        item.done()
        out.append(PollRepEntry(req_id, check_after, reason))
    return tuple(out)


_BODIES = {
    **{kind: _cert_rep for kind in CERT_REP_BODIES},
    "pkiconf": _pkiconf,
    "error": _error,
    "genp": _genp,
    "pollRep": _poll_rep,
}
