"""Typed views of received PKIMessages: header fields and the content of each body."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Union

from cryptography import x509

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.cmp_names import CERT_REP_BODIES
from cmpclient.asn1.lazy import cmp, crmf
from cmpclient.errors import DecodeError
from cmpclient.message.names import asn1_to_name, general_name_text
from cmpclient.message.fastparse import fast_parse
from cmpclient.message.pkimessage import body_type, decode_message, extra_certs
from cmpclient.message.status import StatusInfo, read_free_text, read_status_info


def _opt_bytes(value: object) -> bytes | None:
    return bytes(value) if value.isValue else None  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Header:
    pvno: int
    sender: str
    recipient: str
    sender_name: x509.Name | None
    recipient_name: x509.Name | None
    message_time: _dt.datetime | None
    protection_alg: str | None
    sender_kid: bytes | None
    recip_kid: bytes | None
    transaction_id: bytes | None
    sender_nonce: bytes | None
    recip_nonce: bytes | None
    free_text: tuple[str, ...]
    general_info: tuple[tuple[str, bytes | None], ...]

    @property
    def implicit_confirm(self) -> bool:
        return any(oid == oids.IT_IMPLICIT_CONFIRM for oid, _ in self.general_info)


def read_header(h: cmp.PKIHeader) -> Header:
    from pyasn1.error import PyAsn1Error  # h is a pyasn1 value: pyasn1 is loaded

    def name_of(gn: object) -> x509.Name | None:
        return asn1_to_name(gn["directoryName"]) if gn.getName() == "directoryName" else None  # type: ignore[index,attr-defined]

    mt = h["messageTime"]
    try:
        when = mt.asDateTime.astimezone(_dt.timezone.utc) if mt.isValue else None
    except (PyAsn1Error, ValueError) as exc:
        raise DecodeError(f"PKIHeader: messageTime {str(mt)!r} is not a valid GeneralizedTime") from exc
    alg = h["protectionAlg"]
    gi = h["generalInfo"]
    info = tuple(
        (str(itav["infoType"]), bytes(itav["infoValue"]) if itav["infoValue"].isValue else None) for itav in gi
    ) if gi.isValue else ()
    return Header(
        pvno=int(h["pvno"]),
        sender=general_name_text(h["sender"]),
        recipient=general_name_text(h["recipient"]),
        sender_name=name_of(h["sender"]),
        recipient_name=name_of(h["recipient"]),
        message_time=when,
        protection_alg=str(alg["algorithm"]) if alg.isValue else None,
        sender_kid=_opt_bytes(h["senderKID"]),
        recip_kid=_opt_bytes(h["recipKID"]),
        transaction_id=_opt_bytes(h["transactionID"]),
        sender_nonce=_opt_bytes(h["senderNonce"]),
        recip_nonce=_opt_bytes(h["recipNonce"]),
        free_text=read_free_text(h["freeText"]),
        general_info=info,
    )


@dataclass(frozen=True)
class EncryptedKeyInfo:
    """An EncryptedKey: ``kind`` is encryptedValue or envelopedData; ``der`` is the full
    DER of that EncryptedValue or EnvelopedData, ready for :mod:`cmpclient.keys`."""

    kind: str
    der: bytes


def read_encrypted_key(value: crmf.EncryptedKey) -> EncryptedKeyInfo:
    kind = value.getName()
    if kind == "envelopedData":
        return EncryptedKeyInfo(kind, codec.enveloped_data_der(value["envelopedData"]))
    return EncryptedKeyInfo(kind, codec.encode(value["encryptedValue"]))


@dataclass(frozen=True)
class CertResponseInfo:
    cert_req_id: int
    status: StatusInfo
    certificate: bytes | None = None
    encrypted_cert: EncryptedKeyInfo | None = None
    private_key: EncryptedKeyInfo | None = None
    rsp_info: bytes | None = None


@dataclass(frozen=True)
class CertRepContent:
    ca_pubs: tuple[bytes, ...]
    responses: tuple[CertResponseInfo, ...]

    def response(self, cert_req_id: int) -> CertResponseInfo:
        for r in self.responses:
            if r.cert_req_id == cert_req_id:
                return r
        raise DecodeError(f"no CertResponse for certReqId {cert_req_id}")


def read_cert_rep(rep: cmp.CertRepMessage) -> CertRepContent:
    responses = []
    for r in rep["response"]:
        cert = enc_cert = key = None
        ckp = r["certifiedKeyPair"]
        if ckp.isValue:
            coec = ckp["certOrEncCert"]
            if coec.getName() == "certificate":
                cert = bytes(coec["certificate"])
            else:
                enc_cert = read_encrypted_key(coec["encryptedCert"])
            if ckp["privateKey"].isValue:
                key = read_encrypted_key(ckp["privateKey"])
        responses.append(
            CertResponseInfo(
                cert_req_id=int(r["certReqId"]),
                status=read_status_info(r["status"]),
                certificate=cert,
                encrypted_cert=enc_cert,
                private_key=key,
                rsp_info=_opt_bytes(r["rspInfo"]),
            )
        )
    ca = rep["caPubs"]
    return CertRepContent(tuple(bytes(c) for c in ca) if ca.isValue else (), tuple(responses))


@dataclass(frozen=True)
class ErrorContent:
    status: StatusInfo
    error_code: int | None
    error_details: tuple[str, ...]


@dataclass(frozen=True)
class RevRepContent:
    statuses: tuple[StatusInfo, ...]
    rev_certs: tuple[tuple[str, int], ...]
    crls: tuple[bytes, ...]


@dataclass(frozen=True)
class PollRepEntry:
    cert_req_id: int
    check_after: int
    reason: tuple[str, ...]


@dataclass(frozen=True)
class CertConfEntry:
    cert_req_id: int
    cert_hash: bytes
    status: StatusInfo | None
    hash_alg: str | None


Content = Union[CertRepContent, ErrorContent, RevRepContent, tuple, None]


@dataclass(frozen=True)
class ParsedMessage:
    """A received PKIMessage: its exact DER, header and body content, and the pyasn1 value.

    ``content`` depends on ``body_type``: CertRepContent for ip/cp/kup/ccp, ErrorContent
    for error, RevRepContent for rp, a tuple of PollRepEntry for pollRep, of
    (infoType, value DER) for genm/genp, of CertConfEntry for certConf, of inner DER for
    nested, of certReqIds for pollReq; None for pkiconf and for request bodies (use
    ``message['body']`` directly).

    ``message`` is the pyasn1 value.  When the message was read by
    :mod:`cmpclient.message.fastparse` it is decoded on first use (the DER was already
    checked); that reader also keeps ``protection_alg_der`` (header.protectionAlg's
    AlgorithmIdentifier DER) and ``protection_value`` (the PKIProtection octets), so MAC
    verification needs no pyasn1 value at all.
    """

    der: bytes
    header: Header
    body_type: str
    protected: bool
    extra_certs: tuple[bytes, ...]
    content: object = field(default=None)
    decoded: cmp.PKIMessage | None = field(default=None, repr=False, compare=False)
    protection_alg_der: bytes | None = field(default=None, repr=False, compare=False)
    protection_value: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def message(self) -> cmp.PKIMessage:
        """The pyasn1 PKIMessage (decoded on first use if the fast reader read this message)."""
        if self.decoded is not None:
            return self.decoded
        # Remembered in the instance dict (the dataclass is frozen).  Not functools.cached_property:
        # on Python 3.11 it holds one lock for all instances, serialising every thread's decode.
        value = self.__dict__.get("_message")
        if value is None:
            value = self.__dict__["_message"] = decode_message(self.der, strict=False)
        return value


def parse_message(der: bytes, *, strict: bool = True) -> ParsedMessage:
    """Parse a received PKIMessage (strict DER unless ``strict`` is False).

    The common answers are read by :func:`cmpclient.message.fastparse.fast_parse`; it
    declines everything else, which the full pyasn1 decoder then reads (or refuses).
    """
    if strict:
        fast = fast_parse(der)
        if fast is not None:
            return fast
    msg = decode_message(der, strict=strict)
    return parse_decoded(der, msg)


def parse_decoded(der: bytes, msg: cmp.PKIMessage) -> ParsedMessage:
    kind = body_type(msg)
    body = msg["body"][kind]
    content: object = None
    if kind in CERT_REP_BODIES:
        content = read_cert_rep(body)
    elif kind == "error":
        code = body["errorCode"]
        content = ErrorContent(
            read_status_info(body["pKIStatusInfo"]),
            int(code) if code.isValue else None,
            read_free_text(body["errorDetails"]),
        )
    elif kind == "rp":
        rev = body["revCerts"]
        crls = body["crls"]
        content = RevRepContent(
            tuple(read_status_info(s) for s in body["status"]),
            tuple((general_name_text(c["issuer"]), int(c["serialNumber"])) for c in rev) if rev.isValue else (),
            tuple(bytes(c) for c in crls) if crls.isValue else (),
        )
    elif kind == "pollRep":
        content = tuple(
            PollRepEntry(int(e["certReqId"]), int(e["checkAfter"]), read_free_text(e["reason"])) for e in body
        )
    elif kind == "pollReq":
        content = tuple(int(e["certReqId"]) for e in body)
    elif kind in ("genm", "genp"):
        content = tuple(
            (str(i["infoType"]), bytes(i["infoValue"]) if i["infoValue"].isValue else None) for i in body
        )
    elif kind == "certConf":
        content = tuple(
            CertConfEntry(
                int(s["certReqId"]),
                bytes(s["certHash"]),
                read_status_info(s["statusInfo"]) if s["statusInfo"].isValue else None,
                str(s["hashAlg"]["algorithm"]) if s["hashAlg"].isValue else None,
            )
            for s in body
        )
    elif kind == "nested":
        content = tuple(bytes(m) for m in body)
    return ParsedMessage(
        der=bytes(der),
        decoded=msg,
        header=read_header(msg["header"]),
        body_type=kind,
        protected=msg["protection"].isValue,
        extra_certs=tuple(extra_certs(msg)),
        content=content,
    )
