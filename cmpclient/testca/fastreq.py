"""The certificate requests the test CA gets most, read without pyasn1.

Decoding an ir with pyasn1 cost the CA about 1.4 ms of the ~5 ms it spends on a request
(plus re-encoding the CertRequest for the POPO check and the sender for the answer's
recipient).  :func:`read_request` reads the common shape straight from DER with
:mod:`cmpclient.asn1.der` and :mod:`cmpclient.message.fastparse`: an ir or cr whose
CertReqMsgs carry a CertTemplate with only issuer, subject and publicKey, no controls, a
signature POPO without poposkInput and no regInfo; the header with directoryName sender
and recipient (what ``openssl cmp`` and our client send).

Like fastparse it **never judges a request**: anything else -- another body or field, a
construct that might not be DER, a name it does not read -- returns None and the CA
decodes the message with pyasn1 as before, which accepts it or words the refusal.  What it
accepts is strict DER, so the exact bytes it keeps (the CertRequest a POPO signature
covers, the SubjectPublicKeyInfo, the sender) are the bytes pyasn1 would re-encode;
``tests/unit/testca/test_fastreq.py`` checks that against the full decoder on openssl's
requests, on built ones and on random mutations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmpclient.asn1.der import BIT_STRING, SEQUENCE, NotHandled, Reader
from cmpclient.message import fastparse

__all__ = ["FastCertReqMsg", "FastRequest", "read_request"]

#: CertTemplate [3] issuer and [5] subject (explicit: Name is a CHOICE), [6] publicKey (implicit)
_ISSUER, _SUBJECT, _PUBLIC_KEY = 0xA3, 0xA5, 0xA6
_POPO_SIGNATURE = 0xA1  #: ProofOfPossession [1] POPOSigningKey (implicit)
_POPOSK_INPUT = 0xA0


@dataclass(frozen=True)
class FastCertReqMsg:
    """One CertReqMsg of the handled shape."""

    cert_req_id: int
    cert_req_der: bytes  #: the CertRequest's exact DER: what the POPO signature covers
    subject: Any  #: x509.Name, or None when the template has no subject
    spki_der: bytes | None  #: the template's publicKey as a SubjectPublicKeyInfo (universal tag)
    empty_key: bool  #: the publicKey BIT STRING is empty (a request for a server-generated key)
    popo_alg_der: bytes  #: POPOSigningKey.algorithmIdentifier's DER
    popo_signature: bytes  #: POPOSigningKey.signature (whole octets)


@dataclass(frozen=True)
class FastRequest:
    parsed: Any  #: the ParsedMessage (content None, as the full decoder gives for ir/cr)
    sender_der: bytes  #: header.sender, the GeneralName's DER
    items: tuple[FastCertReqMsg, ...]


def read_request(der: bytes) -> FastRequest | None:
    """The request read by the fast reader, or None: then decode it with pyasn1."""
    items: list[FastCertReqMsg] = []

    def cert_req_messages(body: Reader) -> None:
        items.extend(_cert_req_msg(r) for r in body.sequence_of(SEQUENCE, non_empty=True))
        return None

    parsed = fastparse.parse_with(der, {"ir": cert_req_messages, "cr": cert_req_messages})
    if parsed is None:
        return None
    try:
        header = Reader(parsed.der).enter(SEQUENCE).enter(SEQUENCE)
        header.integer()
        sender = header.raw()
    except NotHandled:  # pragma: no cover - fastparse read the same bytes
        return None
    return FastRequest(parsed, sender, tuple(items))


def _cert_req_msg(item: Reader) -> FastCertReqMsg:
    data = item.data
    msg = item.enter(SEQUENCE)
    item.done()
    begin = msg.pos
    req = msg.enter(SEQUENCE)
    cert_req_der = data[begin : msg.pos]
    cert_req_id = req.integer()
    template = req.enter(SEQUENCE)
    req.done()  # controls: the full decoder
    subject = spki = None
    empty = False
    if template.peek() == _ISSUER:  # openssl names the CA when it signs with a certificate; the CA ignores it
        box = template.enter(_ISSUER)
        fastparse.read_name(box.raw())  # read only to know it is DER (single-valued RDNs) like the rest
        box.done()
    if template.peek() == _SUBJECT:
        box = template.enter(_SUBJECT)
        subject = fastparse.read_name(box.raw())[0]
        box.done()
    if template.peek() == _PUBLIC_KEY:
        begin = template.pos
        key = template.enter(_PUBLIC_KEY)
        key.algorithm_identifier()
        start, stop = key.expect(BIT_STRING)
        unused = data[start] if stop > start else 0xFF
        if unused > 7 or (unused and stop - start == 1) or (unused and data[stop - 1] & ((1 << unused) - 1)):
            raise NotHandled("BIT STRING with bad unused bits")
        key.done()
        spki = b"\x30" + data[begin + 1 : template.pos]
        empty = stop - start == 1
    template.done()  # any other template field: the full decoder
    if msg.peek() != _POPO_SIGNATURE:
        raise NotHandled("no signature POPO")
    popo = msg.enter(_POPO_SIGNATURE)
    if popo.peek() == _POPOSK_INPUT:
        raise NotHandled("POPOSigningKeyInput")
    begin = popo.pos
    popo.algorithm_identifier()
    alg_der = data[begin : popo.pos]
    signature = popo.octet_bits()
    popo.done()
    msg.done()  # regInfo: the full decoder
    return FastCertReqMsg(cert_req_id, cert_req_der, subject, spki, empty, alg_der, signature)
