"""PKIBody builders for every request and response body cmpclient and its test CA use.

Each function returns a :class:`cmpclient.asn1.cmp.PKIBody` with one alternative set.
Certificates, CRLs, CSRs and nested messages are passed as DER bytes.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, Sequence

from cryptography import x509

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.cmp_names import BODY_NAMES, CERT_REP_BODIES
from cmpclient.asn1.lazy import cmp, crmf, univ
from cmpclient.errors import UsageError
from cmpclient.message.header import build_itav, generalized_time
from cmpclient.message.names import general_name, name_to_asn1
from cmpclient.message.status import build_status_info, status_info_der

REQUEST_BODIES = ("ir", "cr", "kur", "krr", "ccr")
RESPONSE_FOR = {"ir": "ip", "cr": "cp", "kur": "kup", "krr": "krp", "ccr": "ccp", "p10cr": "cp", "rr": "rp",
                "certConf": "pkiconf", "genm": "genp", "pollReq": "pollRep"}

#: CRLReason codes (RFC 5280 §5.3.1) by name.
CRL_REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}


def _body(name: str, value_der: bytes, as_der: bool = False) -> Any:
    """A PKIBody with alternative ``name`` holding the (untagged) DER ``value_der``.

    With ``as_der`` the PKIBody's DER is returned instead of a pyasn1 value: the hot
    paths (the client's requests, the test CA's answers) assemble messages as bytes
    (see :func:`cmpclient.protection.protect_der`) and skip decoding and re-encoding.
    """
    if as_der:
        return body_der(name, value_der)
    body = cmp.PKIBody()
    body[name] = codec.value_from_der(body.componentType[name].asn1Object, value_der)
    return body


def body_der(name: str, value_der: bytes) -> bytes:
    """DER of a PKIBody: ``[n] EXPLICIT`` around the alternative's DER (CMP uses explicit tags)."""
    tag_number = BODY_NAMES.index(name)
    return codec.der_header(0xA0 | tag_number, len(value_der)) + value_der


def _seq_of(items: Iterable[bytes]) -> bytes:
    inner = b"".join(items)
    return codec.der_header(0x30, len(inner)) + inner


# --- requests ----------------------------------------------------------------------


def cert_req_body(kind: str, requests: Sequence[Any], *, as_der: bool = False) -> Any:
    """ir, cr, kur, krr or ccr with one or more requests: pyasn1 CertReqMsg values or
    :class:`~cmpclient.message.request.CertRequestBuilder` objects (written as DER directly)."""
    if kind not in REQUEST_BODIES:
        raise UsageError(f"not a certificate request body: {kind!r} (one of {', '.join(REQUEST_BODIES)})")
    if not requests:
        raise UsageError(f"{kind} needs at least one CertReqMsg")
    ids = [r.cert_req_id_value if hasattr(r, "build_der") else int(r["certReq"]["certReqId"]) for r in requests]
    if len(set(ids)) != len(ids):
        raise UsageError(f"duplicate certReqId in {kind}: {ids}")
    return _body(kind, _seq_of(r.build_der() if hasattr(r, "build_der") else codec.encode(r) for r in requests), as_der)


def p10cr_body(csr_der: bytes, *, as_der: bool = False) -> Any:
    """p10cr carrying a PKCS#10 request (DER)."""
    try:
        x509.load_der_x509_csr(csr_der)
    except ValueError as exc:
        raise UsageError(f"p10cr: not a DER PKCS#10 request: {exc}") from exc
    return _body("p10cr", csr_der, as_der)


def rev_details(
    issuer: x509.Name | str,
    serial: int,
    *,
    reason: int | str | None = None,
    invalidity_date: _dt.datetime | None = None,
) -> cmp.RevDetails:
    """RevDetails naming a certificate by issuer and serial, with an optional CRL reason."""
    details = cmp.RevDetails()
    template = details["certDetails"]
    template["serialNumber"] = int(serial)
    template["issuer"] = name_to_asn1(issuer, template.componentType["issuer"].asn1Object)
    exts: list[bytes] = []
    if reason is not None:
        code = CRL_REASONS.get(reason) if isinstance(reason, str) else reason
        if code is None or not 0 <= code <= 10 or code == 7:
            raise UsageError(f"unknown revocation reason {reason!r}", hint="one of " + ", ".join(CRL_REASONS))
        exts.append(_extension_der(oids.CE_CRL_REASON, bytes((0x0A, 0x01, code))))
    if invalidity_date is not None:
        text = generalized_time(invalidity_date).encode()
        exts.append(_extension_der("2.5.29.24", codec.der_header(0x18, len(text)) + text))
    if exts:
        codec.set_from_der(details, "crlEntryDetails", _seq_of(exts))
    return details


def _extension_der(oid: str, value: bytes) -> bytes:
    inner = codec.oid_der(oid) + codec.der_header(0x04, len(value)) + value
    return codec.der_header(0x30, len(inner)) + inner


def rr_body(details: Sequence[cmp.RevDetails], *, as_der: bool = False) -> Any:
    if not details:
        raise UsageError("rr needs at least one RevDetails")
    return _body("rr", _seq_of(codec.encode(d) for d in details), as_der)


def cert_status(
    cert_req_id: int,
    cert_hash: bytes,
    *,
    status: str | None = None,
    fail_info: Sequence[str] = (),
    texts: Sequence[str] = (),
    hash_alg_der: bytes | None = None,
) -> cmp.CertStatus:
    """One CertStatus for certConf; ``status`` None means acceptance without statusInfo."""
    entry = cmp.CertStatus()
    entry["certHash"] = cert_hash
    entry["certReqId"] = cert_req_id
    if status is not None:
        entry["statusInfo"] = build_status_info(status, fail_info=fail_info, texts=texts)
    if hash_alg_der is not None:
        entry["hashAlg"] = codec.value_from_der(entry.componentType["hashAlg"].asn1Object, hash_alg_der)
    return entry


def accepted_cert_status_der(cert_req_id: int, cert_hash: bytes) -> bytes:
    """The DER of ``cert_status(cert_req_id, cert_hash)`` (acceptance, no statusInfo, no
    hashAlg), written directly: the CertStatus of every certConf a client sends."""
    inner = codec.der_header(0x04, len(cert_hash)) + cert_hash + codec.integer_der(cert_req_id)
    return codec.der_header(0x30, len(inner)) + inner


def cert_conf_body(statuses: Sequence[cmp.CertStatus | bytes], *, as_der: bool = False) -> Any:
    """certConf with CertStatus entries: pyasn1 values or their DER."""
    return _body("certConf", _seq_of(bytes(s) if isinstance(s, (bytes, bytearray)) else codec.encode(s)
                                     for s in statuses), as_der)


def poll_req_body(cert_req_ids: Sequence[int], *, as_der: bool = False) -> Any:
    if not cert_req_ids:
        raise UsageError("pollReq needs at least one certReqId")
    return _body("pollReq", _seq_of(_seq_of([codec.encode(univ.Integer(i))]) for i in cert_req_ids), as_der)


def genm_body(items: Sequence[tuple[str, bytes | None]] = (), *, as_der: bool = False) -> Any:
    """genm with (infoType OID, value DER or None) pairs; an empty list is allowed."""
    return _body("genm", _seq_of(codec.encode(build_itav(oid, der)) for oid, der in items), as_der)


def nested_body(messages_der: Sequence[bytes], *, as_der: bool = False) -> Any:
    """nested carrying complete PKIMessages (their exact DER)."""
    if not messages_der:
        raise UsageError("nested needs at least one inner PKIMessage")
    for der in messages_der:
        tag, _, end = codec.read_tlv(der, 0)
        if tag != 0x30 or end != len(der):
            raise UsageError("nested: each inner message must be one DER PKIMessage")
    return _body("nested", _seq_of(messages_der), as_der)


# --- responses ---------------------------------------------------------------------


def pkiconf_body(*, as_der: bool = False) -> Any:
    return _body("pkiconf", b"\x05\x00", as_der)


def error_body(
    status: str = "rejection",
    *,
    fail_info: Sequence[str] = (),
    texts: Sequence[str] = (),
    error_code: int | None = None,
    error_details: Sequence[str] = (),
    as_der: bool = False,
) -> Any:
    content = cmp.ErrorMsgContent()
    content["pKIStatusInfo"] = build_status_info(status, fail_info=fail_info, texts=texts)
    if error_code is not None:
        content["errorCode"] = error_code
    for i, text in enumerate(error_details):
        content["errorDetails"][i] = text
    return _body("error", codec.encode(content), as_der)


def cert_response(
    cert_req_id: int,
    status: str = "accepted",
    *,
    fail_info: Sequence[str] = (),
    texts: Sequence[str] = (),
    cert_der: bytes | None = None,
    encrypted_cert: crmf.EncryptedKey | None = None,
    private_key: crmf.EncryptedKey | None = None,
    as_der: bool = False,
) -> Any:
    """One CertResponse; a certificate (plain or encrypted) and optionally a private key.

    Built as DER (``as_der`` returns it; otherwise it is decoded once into a CertResponse).
    """
    h = codec.der_header
    parts = codec.integer_der(cert_req_id)
    if texts:
        parts += codec.encode(build_status_info(status, fail_info=fail_info, texts=texts))
    else:  # the answers the CA sends most: written directly, the bytes pyasn1 would write
        parts += status_info_der(status, fail_info=fail_info)
    if cert_der is not None or encrypted_cert is not None:
        if cert_der is not None and encrypted_cert is not None:
            raise UsageError("a CertResponse carries a certificate or an encrypted certificate, not both")
        if cert_der is not None:
            coec = h(0xA0, len(cert_der)) + bytes(cert_der)  # certificate [0] EXPLICIT
        else:
            inner = codec.encode(encrypted_cert)  # type: ignore[arg-type]
            coec = h(0xA1, len(inner)) + inner  # encryptedCert [1] EXPLICIT EncryptedKey
        ckp = coec
        if private_key is not None:
            inner = codec.encode(private_key)
            ckp += h(0xA0, len(inner)) + inner  # privateKey [0] EXPLICIT EncryptedKey
        parts += h(0x30, len(ckp)) + ckp
    elif private_key is not None:
        raise UsageError("a private key can only be returned together with its certificate")
    der = h(0x30, len(parts)) + parts
    if as_der:
        return der
    return codec.decode(der, cmp.CertResponse(), what="CertResponse", strict=False)


def encrypted_key(*, encrypted_value_der: bytes | None = None, enveloped_data_der: bytes | None = None) -> crmf.EncryptedKey:
    """EncryptedKey from EncryptedValue DER (CMPv2) or EnvelopedData DER (CMPv3)."""
    if (encrypted_value_der is None) == (enveloped_data_der is None):
        raise UsageError("EncryptedKey takes exactly one of EncryptedValue or EnvelopedData")
    if encrypted_value_der is not None:
        return codec.decode(encrypted_value_der, crmf.EncryptedKey(), what="EncryptedValue")
    content = codec.opaque_content(enveloped_data_der)  # type: ignore[arg-type]
    return codec.decode(codec.der_header(0xA0, len(content)) + content, crmf.EncryptedKey(), strict=False)


def cert_rep_body(kind: str, responses: Sequence[cmp.CertResponse | bytes], *, ca_pubs: Sequence[bytes] = (), as_der: bool = False) -> Any:
    """ip, cp, kup or ccp."""
    if kind not in CERT_REP_BODIES:
        raise UsageError(f"not a certificate response body: {kind!r}")
    parts = b""
    if ca_pubs:
        seq = _seq_of(ca_pubs)
        parts += codec.der_header(0xA1, len(seq)) + seq
    parts += _seq_of(r if isinstance(r, (bytes, bytearray)) else codec.encode(r) for r in responses)
    return _body(kind, codec.der_header(0x30, len(parts)) + parts, as_der)


def rp_body(
    statuses: Sequence[cmp.PKIStatusInfo],
    *,
    rev_certs: Sequence[tuple[x509.Name | str, int]] = (),
    crls: Sequence[bytes] = (),
    as_der: bool = False,
) -> Any:
    if not statuses:
        raise UsageError("rp needs at least one PKIStatusInfo")
    parts = _seq_of(codec.encode(s) for s in statuses)
    if rev_certs:
        ids = []
        for issuer, serial in rev_certs:
            cid = crmf.CertId()
            cid["issuer"] = general_name(issuer)
            cid["serialNumber"] = serial
            ids.append(codec.encode(cid))
        seq = _seq_of(ids)
        parts += codec.der_header(0xA0, len(seq)) + seq
    if crls:
        seq = _seq_of(crls)
        parts += codec.der_header(0xA1, len(seq)) + seq
    return _body("rp", codec.der_header(0x30, len(parts)) + parts, as_der)


def poll_rep_body(entries: Sequence[tuple[int, int, Sequence[str]]], *, as_der: bool = False) -> Any:
    """pollRep with (certReqId, checkAfter seconds, reason texts) entries."""
    if not entries:
        raise UsageError("pollRep needs at least one entry")
    items = []
    for cert_req_id, check_after, reason in entries:
        if check_after < 0:
            raise UsageError("checkAfter must not be negative")
        inner = codec.encode(univ.Integer(cert_req_id)) + codec.encode(univ.Integer(check_after))
        if reason:
            free = cmp.PKIFreeText()
            for i, text in enumerate(reason):
                free[i] = text
            inner += codec.encode(free)
        items.append(codec.der_header(0x30, len(inner)) + inner)
    return _body("pollRep", _seq_of(items), as_der)


def genp_body(items: Sequence[tuple[str, bytes | None]] = (), *, as_der: bool = False) -> Any:
    return _body("genp", _seq_of(codec.encode(build_itav(oid, der)) for oid, der in items), as_der)
