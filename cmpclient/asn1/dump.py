"""Any CMP message as a tree of plain values, for ``cmpclient dump`` and for debugging.

:func:`dump` turns a PKIMessage (its DER, a decoded :class:`cmpclient.asn1.cmp.PKIMessage`,
or anything with a ``.der`` attribute such as ``message.parse.ParsedMessage``) into nested
dicts and lists of ``str``/``int``/``bool``/``None`` -- ready for ``json.dumps`` -- and
:func:`render_text` prints that tree indented.

The tree keeps the ASN.1 field names (``certReqId``, ``failInfo``, ``senderKID``) so it
reads like the RFC, and uses four small *leaf* shapes that the text renderer prints on one
line:

* an OID:            ``{"oid": "1.2.840.113533.7.66.13", "name": "passwordBasedMac"}``
  (``name`` equals the dotted form when the OID is unknown);
* a named number:    ``{"value": 2, "name": "rejection"}``;
* bytes:             ``{"hex": "636d70...", "ascii": "cmp-ref", "length": 7}``
  (``ascii`` only when every byte is printable, ``truncated`` when the hex was cut);
* an error:          ``{"error": "..."}`` where a part could not be summarised.

Certificates, CSRs and CRLs stay opaque DER in the schema and are summarised with
``cryptography``.  Nothing here raises on a well-formed PKIMessage: a part that cannot be
read becomes an ``error`` leaf.  Bytes that are not a PKIMessage raise
:class:`cmpclient.errors.DecodeError`.

This module depends only on :mod:`cmpclient.asn1` and ``cryptography`` (no message
layer), so names are rendered here rather than with ``message.names``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import warnings
from typing import Any, Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pyasn1.codec.der import decoder as _der_decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import cmp, codec, crmf, oids
from cmpclient.errors import CMPClientError, DecodeError

__all__ = ["dump", "render_text", "MAX_NESTING_DEPTH", "Tree"]

Tree = dict[str, Any]

#: Nested messages are dumped this many levels deep; deeper ones are cut off.
MAX_NESTING_DEPTH = 15
#: Unknown values are shown as hex up to this many bytes.
MAX_HEX_BYTES = 64

PVNO_NAMES = {1: "cmp1999", 2: "cmp2000", 3: "cmp2021"}
CRL_REASON_NAMES = {
    0: "unspecified",
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    8: "removeFromCRL",
    9: "privilegeWithdrawn",
    10: "aACompromise",
}
KEY_USAGE_NAMES = (
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
)
# Names people read in certificate dumps; ``oids.NAMES`` has protocol OIDs first.
_EXTRA_NAMES = {
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName",
    "2.5.29.19": "basicConstraints",
    "2.5.29.21": "cRLReason",
    "2.5.29.24": "invalidityDate",
    "2.5.29.31": "cRLDistributionPoints",
    "2.5.29.32": "certificatePolicies",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.37": "extKeyUsage",
    "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
    "1.3.6.1.5.5.7.3.1": "serverAuth",
    "1.3.6.1.5.5.7.3.2": "clientAuth",
    "1.3.6.1.5.5.7.3.28": "cmcRA",
    "1.3.6.1.5.5.7.3.27": "cmcCA",
    oids.REGINFO_UTF8_PAIRS: "utf8Pairs",
    oids.REGINFO_CERT_REQ: "certReq",
    oids.REGCTRL_PKI_PUBLICATION_INFO: "pkiPublicationInfo",
    oids.REGCTRL_PKI_ARCHIVE_OPTIONS: "pkiArchiveOptions",
    oids.REGCTRL_ALG_ID: "algId",
    oids.REGCTRL_RSA_KEY_LEN: "rsaKeyLen",
    oids.IT_CA_PROT_ENC_CERT: "caProtEncCert",
    oids.IT_SIGN_KEY_PAIR_TYPES: "signKeyPairTypes",
    oids.IT_ENC_KEY_PAIR_TYPES: "encKeyPairTypes",
    oids.IT_PREFERRED_SYMM_ALG: "preferredSymmAlg",
    oids.IT_CA_KEY_UPDATE_INFO: "caKeyUpdateInfo",
    oids.IT_CURRENT_CRL: "currentCRL",
    oids.IT_UNSUPPORTED_OIDS: "unsupportedOIDs",
    oids.IT_KEY_PAIR_PARAM_REQ: "keyPairParamReq",
    oids.IT_KEY_PAIR_PARAM_REP: "keyPairParamRep",
    oids.IT_REV_PASSPHRASE: "revPassphrase",
    oids.IT_SUPP_LANG_TAGS: "suppLangTags",
    oids.IT_ROOT_CA_CERT: "rootCaCert",
    oids.SECP256R1: "secp256r1",
    oids.SECP384R1: "secp384r1",
    oids.SECP521R1: "secp521r1",
    oids.RSA_ENCRYPTION: "rsaEncryption",
    oids.EC_PUBLIC_KEY: "id-ecPublicKey",
}


# --- leaves -------------------------------------------------------------------------------


def name_of_oid(oid: object) -> str:
    """A readable name for an OID: ours first, then cryptography's table, else dotted."""
    dotted = str(oid)
    if dotted in _EXTRA_NAMES:
        return _EXTRA_NAMES[dotted]
    if dotted in oids.NAMES:
        return oids.NAMES[dotted]
    try:
        # ``_name`` is cryptography's (private) table of well-known OIDs; it answers
        # "Unknown OID" for the rest.
        name = x509.ObjectIdentifier(dotted)._name
    except Exception:  # noqa: BLE001 - any failure only means "no name"
        return dotted
    return dotted if not name or name == "Unknown OID" else name


def oid_leaf(oid: object) -> Tree:
    dotted = str(oid)
    return {"oid": dotted, "name": name_of_oid(dotted)}


def named(value: int, names: dict[int, str] | tuple[str, ...]) -> Tree:
    if isinstance(names, tuple):
        name = names[value] if 0 <= value < len(names) else f"unknown({value})"
    else:
        name = names.get(value, f"unknown({value})")
    return {"value": value, "name": name}


def bytes_leaf(data: bytes, *, ascii_too: bool = False, limit: int | None = None) -> Tree:
    data = bytes(data)
    shown = data if limit is None or len(data) <= limit else data[:limit]
    leaf: Tree = {"hex": shown.hex(), "length": len(data)}
    if len(shown) < len(data):
        leaf["truncated"] = True
    if ascii_too and data and all(0x20 <= b < 0x7F for b in data):
        leaf["ascii"] = data.decode("ascii")
    return leaf


def error_leaf(exc: BaseException) -> Tree:
    text = exc.message if isinstance(exc, CMPClientError) else str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"error": text[:300]}


def _safe(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a summariser; a part that cannot be read becomes an error leaf, never a crash."""
    try:
        return fn(*args, **kw)
    except RecursionError:
        return {"error": "structure too deeply nested"}
    except Exception as exc:  # noqa: BLE001 - a dump must show the rest of the message
        return error_leaf(exc)


def _time_text(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _asn1_time(value: Any) -> str:
    """GeneralizedTime, UTCTime or an rfc5280.Time CHOICE as ISO 8601 UTC."""
    if isinstance(value, univ.Choice):
        value = value.getComponent()
    try:
        return _time_text(value.asDateTime)
    except (PyAsn1Error, ValueError, AttributeError):
        return str(value)


def _present(value: Any) -> bool:
    return value is not None and value.isValue


# --- names --------------------------------------------------------------------------------

_STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _attribute_text(raw: bytes) -> str | None:
    tag_byte, start, end = codec.read_tlv(raw, 0)
    encoding = _STRING_TAGS.get(tag_byte)
    if encoding is None:
        return None
    return raw[start:end].decode(encoding)


def name_text(name: Any) -> str:
    """RFC 4514 text of a pyasn1 ``Name`` (``NULL-DN`` when empty)."""
    rdns = []
    for rdn in name["rdnSequence"]:
        attrs = []
        for atv in rdn:
            oid = x509.ObjectIdentifier(str(atv["type"]))
            raw = bytes(atv["value"])
            text = _attribute_text(raw)
            if text is None:
                # A non-string value (rare): RFC 4514 writes it as #hex of its DER.
                text = "#" + raw.hex()
            with warnings.catch_warnings():
                # A peer's name is shown as sent, even when cryptography would object to it.
                warnings.simplefilter("ignore")
                attrs.append(x509.NameAttribute(oid, text, _validate=False))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns).rfc4514_string() or "NULL-DN"


def general_name_text(gn: Any) -> str:
    kind = gn.getName()
    value = gn.getComponent()
    if kind == "directoryName":
        return name_text(value)
    if kind in ("rfc822Name", "dNSName", "uniformResourceIdentifier"):
        return f"{kind}:{value}"
    if kind == "iPAddress":
        return f"iPAddress:{bytes(value).hex()}"
    if kind == "registeredID":
        return f"registeredID:{value}"
    return f"{kind}:{codec.encode(value).hex()[: 2 * MAX_HEX_BYTES]}"


# --- keys, certificates, CSRs, CRLs ---------------------------------------------------------


def _public_key_info(spki_der: bytes, alg_oid: str | None = None) -> Tree:
    """Algorithm and size of a SubjectPublicKeyInfo (DER)."""
    if alg_oid is None:
        spki, _ = _der_decoder.decode(spki_der, asn1Spec=rfc5280.SubjectPublicKeyInfo())
        alg_oid = str(spki["algorithm"]["algorithm"])
        if not spki["subjectPublicKey"].asOctets():
            return {"algorithm": oid_leaf(alg_oid), "empty": True}
    info: Tree = {"algorithm": oid_leaf(alg_oid)}
    try:
        key = load_der_public_key(spki_der)
    except Exception:  # noqa: BLE001 - an algorithm cryptography does not know (ML-DSA...)
        return info
    return _key_info(key, info)


def _key_info(key: Any, info: Tree) -> Tree:
    if isinstance(key, rsa.RSAPublicKey):
        info["type"] = "RSA"
        info["size"] = key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        info["type"] = "EC"
        info["curve"] = key.curve.name
        info["size"] = key.key_size
    elif isinstance(key, dsa.DSAPublicKey):
        info["type"] = "DSA"
        info["size"] = key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        info["type"] = "Ed25519"
    elif isinstance(key, ed448.Ed448PublicKey):
        info["type"] = "Ed448"
    elif isinstance(key, x25519.X25519PublicKey):
        info["type"] = "X25519"
    elif isinstance(key, x448.X448PublicKey):
        info["type"] = "X448"
    else:
        info["type"] = type(key).__name__.replace("PublicKey", "").lstrip("_") or "unknown"
    return info


def _cert_key_info(cert: x509.Certificate) -> Tree:
    alg = cert.public_key_algorithm_oid.dotted_string
    try:
        key = cert.public_key()
    except Exception:  # noqa: BLE001
        return {"algorithm": oid_leaf(alg)}
    return _key_info(key, {"algorithm": oid_leaf(alg)})


def certificate_summary(der: bytes) -> Tree:
    """Subject, issuer, serial, validity and key of a DER certificate."""
    with warnings.catch_warnings():
        # Certificates in a dump are shown, not validated: no deprecation noise for odd ones.
        warnings.simplefilter("ignore")
        return _certificate_summary(bytes(der))


def _certificate_summary(der: bytes) -> Tree:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        # cryptography's parse errors are long Rust debug strings: keep the gist.
        reason = str(exc).split(":", 1)[0].split("(", 1)[0].strip() or "invalid"
        return {"error": f"not a parsable X.509 certificate ({reason[:80]})", "length": len(der)}
    out: Tree = {
        "subject": cert.subject.rfc4514_string() or "NULL-DN",
        "issuer": cert.issuer.rfc4514_string() or "NULL-DN",
        "serialNumber": _serial_hex(cert.serial_number),
        "notBefore": _time_text(cert.not_valid_before_utc),
        "notAfter": _time_text(cert.not_valid_after_utc),
        "publicKey": _safe(_cert_key_info, cert),
        "signatureAlgorithm": oid_leaf(cert.signature_algorithm_oid.dotted_string),
        "sha256": hashlib.sha256(der).hexdigest(),
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["subjectAltName"] = [_crypto_general_name(g) for g in san]
    except (x509.ExtensionNotFound, ValueError):
        pass
    return out


def _crypto_general_name(g: x509.GeneralName) -> str:
    if isinstance(g, x509.DirectoryName):
        return g.value.rfc4514_string()
    return f"{type(g).__name__}:{g.value}"


def _serial_hex(serial: int) -> str:
    if serial < 0:
        return "-" + _serial_hex(-serial)
    text = f"{serial:x}"
    return ("0" + text) if len(text) % 2 else text


def csr_summary(der: bytes) -> Tree:
    der = bytes(der)
    csr = x509.load_der_x509_csr(der)
    out: Tree = {
        "subject": csr.subject.rfc4514_string() or "NULL-DN",
        "publicKey": _safe(lambda: _key_info(csr.public_key(), {"algorithm": oid_leaf(_csr_key_oid(der))})),
        "signatureAlgorithm": oid_leaf(csr.signature_algorithm_oid.dotted_string),
    }
    try:
        out["extensions"] = [
            {"extnID": oid_leaf(e.oid.dotted_string), "critical": e.critical} for e in csr.extensions
        ]
    except ValueError:
        pass
    return out


def _csr_key_oid(der: bytes) -> str:
    # CertificationRequest -> certificationRequestInfo -> subjectPKInfo -> algorithm.
    _, start, _ = codec.read_tlv(der, 0)
    _, info_start, _ = codec.read_tlv(der, start)
    pos = info_start
    for _ in range(2):  # version, subject
        _, _, pos = codec.read_tlv(der, pos)
    _, _, spki_end = codec.read_tlv(der, pos)
    spki, _ = _der_decoder.decode(der[pos:spki_end], asn1Spec=rfc5280.SubjectPublicKeyInfo())
    return str(spki["algorithm"]["algorithm"])


def crl_summary(der: bytes) -> Tree:
    crl = x509.load_der_x509_crl(bytes(der))
    out: Tree = {
        "issuer": crl.issuer.rfc4514_string() or "NULL-DN",
        "thisUpdate": _time_text(crl.last_update_utc),
        "revoked": len(crl),
    }
    if crl.next_update_utc is not None:
        out["nextUpdate"] = _time_text(crl.next_update_utc)
    return out


def _certs(seq: Any) -> list[Tree]:
    return [_safe(certificate_summary, bytes(c)) for c in seq] if _present(seq) else []


# --- algorithm identifiers ----------------------------------------------------------------


def algorithm_leaf(alg: Any) -> Tree:
    """An AlgorithmIdentifier: the OID leaf plus readable parameters for the MAC algorithms."""
    oid = str(alg["algorithm"])
    leaf = oid_leaf(oid)
    params = alg["parameters"]
    if not _present(params):
        return leaf
    raw = bytes(params)
    if oid == oids.PASSWORD_BASED_MAC:
        leaf["parameters"] = _safe(_pbm_params, raw)
    elif oid == oids.PBMAC1:
        leaf["parameters"] = _safe(_pbmac1_params, raw)
    elif oid == oids.KEM_BASED_MAC:
        leaf["parameters"] = _safe(_kem_bm_params, raw)
    elif oid == oids.EC_PUBLIC_KEY and raw[:1] == b"\x06":
        leaf["parameters"] = oid_leaf(_der_decoder.decode(raw, asn1Spec=univ.ObjectIdentifier())[0])
    elif raw != b"\x05\x00":
        leaf["parameters"] = bytes_leaf(raw, limit=MAX_HEX_BYTES)
    return leaf


def _pbm_params(raw: bytes) -> Tree:
    p = codec.decode(raw, cmp.PBMParameter(), what="PBMParameter", strict=False)
    return {
        "salt": bytes_leaf(bytes(p["salt"])),
        "owf": oid_leaf(p["owf"]["algorithm"]),
        "iterationCount": int(p["iterationCount"]),
        "mac": oid_leaf(p["mac"]["algorithm"]),
    }


def _kem_bm_params(raw: bytes) -> Tree:
    p = codec.decode(raw, cmp.KemBMParameter(), what="KemBMParameter", strict=False)
    out: Tree = {"kdf": oid_leaf(p["kdf"]["algorithm"])}
    if p["kemContext"].isValue:
        out["kemContext"] = bytes_leaf(bytes(p["kemContext"]))
    out["len"] = int(p["len"])
    out["mac"] = oid_leaf(p["mac"]["algorithm"])
    return out


def _pbmac1_params(raw: bytes) -> Tree:
    # PBMAC1-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, messageAuthScheme AlgorithmIdentifier }
    seq, _ = _der_decoder.decode(raw)
    kdf, mac = seq[0], seq[1]
    out: Tree = {"keyDerivationFunc": oid_leaf(kdf[0]), "messageAuthScheme": oid_leaf(mac[0])}
    if str(kdf[0]) == oids.PBKDF2 and len(kdf) > 1:
        p = kdf[1]
        out["salt"] = bytes_leaf(bytes(p[0])) if isinstance(p[0], univ.OctetString) else str(p[0])
        out["iterationCount"] = int(p[1])
        for item in list(p)[2:]:
            if isinstance(item, univ.Integer):
                out["keyLength"] = int(item)
            elif isinstance(item, univ.Sequence):
                out["prf"] = oid_leaf(item[0])
    return out


# --- header -------------------------------------------------------------------------------


def _free_text(value: Any) -> list[str]:
    return [str(t) for t in value] if _present(value) else []


def header_tree(h: Any, *, depth: int = 0, limit: int = MAX_NESTING_DEPTH) -> Tree:
    out: Tree = {"pvno": named(int(h["pvno"]), PVNO_NAMES)}
    out["sender"] = _safe(general_name_text, h["sender"])
    out["recipient"] = _safe(general_name_text, h["recipient"])
    if _present(h["messageTime"]):
        out["messageTime"] = _asn1_time(h["messageTime"])
    if _present(h["protectionAlg"]):
        out["protectionAlg"] = _safe(algorithm_leaf, h["protectionAlg"])
    for name in ("senderKID", "recipKID"):
        if _present(h[name]):
            out[name] = bytes_leaf(bytes(h[name]), ascii_too=True)
    for name in ("transactionID", "senderNonce", "recipNonce"):
        if _present(h[name]):
            out[name] = bytes_leaf(bytes(h[name]))
    if _present(h["freeText"]):
        out["freeText"] = _free_text(h["freeText"])
    gi = h["generalInfo"]
    if _present(gi):
        out["implicitConfirm"] = any(str(i["infoType"]) == oids.IT_IMPLICIT_CONFIRM for i in gi)
        out["generalInfo"] = [_itav(i, depth=depth, limit=limit) for i in gi]
    else:
        out["implicitConfirm"] = False
    return out


# --- InfoTypeAndValue ---------------------------------------------------------------------


def _decode_value(raw: bytes, spec: Any) -> Any:
    return codec.decode(raw, spec, strict=False)


def _itav(itav: Any, *, depth: int, limit: int) -> Tree:
    oid = str(itav["infoType"])
    out: Tree = {"infoType": oid_leaf(oid)}
    value = itav["infoValue"]
    if not _present(value):
        out["value"] = None
        return out
    out["value"] = _safe(_info_value, oid, bytes(value), depth, limit)
    return out


def _info_value(oid: str, raw: bytes, depth: int, limit: int) -> Any:
    if raw == b"\x05\x00":
        return None
    if oid == oids.IT_CA_CERTS:
        return [_safe(certificate_summary, bytes(c)) for c in _decode_value(raw, cmp.CACertsValue())]
    if oid in (oids.IT_CA_PROT_ENC_CERT, oids.IT_ROOT_CA_CERT):
        return certificate_summary(raw)
    if oid in (oids.IT_SIGN_KEY_PAIR_TYPES, oids.IT_ENC_KEY_PAIR_TYPES):
        seq = _decode_value(raw, univ.SequenceOf(componentType=rfc5280.AlgorithmIdentifier()))
        return [algorithm_leaf(a) for a in seq]
    if oid == oids.IT_PREFERRED_SYMM_ALG:
        return algorithm_leaf(_decode_value(raw, rfc5280.AlgorithmIdentifier()))
    if oid == oids.IT_UNSUPPORTED_OIDS:
        return [oid_leaf(o) for o in _decode_value(raw, univ.SequenceOf(componentType=univ.ObjectIdentifier()))]
    if oid == oids.IT_ROOT_CA_KEY_UPDATE:
        v = _decode_value(raw, cmp.RootCaKeyUpdateContent())
        return {k: _safe(certificate_summary, bytes(v[k])) for k in ("newWithNew", "newWithOld", "oldWithNew") if _present(v[k])}
    if oid == oids.IT_CERT_REQ_TEMPLATE:
        v = _decode_value(raw, cmp.CertReqTemplateContent())
        out: Tree = {"certTemplate": template_tree(v["certTemplate"])}
        if _present(v["keySpec"]):
            out["keySpec"] = [_control(c) for c in v["keySpec"]]
        return out
    if oid == oids.IT_CERT_PROFILE:
        return [str(s) for s in _decode_value(raw, cmp.CertProfileValue())]
    if oid == oids.IT_CRLS:
        return [_safe(crl_summary, bytes(c)) for c in _decode_value(raw, cmp.CRLsValue())]
    if oid == oids.IT_CURRENT_CRL:
        return crl_summary(raw)
    if oid == oids.IT_CONFIRM_WAIT_TIME:
        return _generalized(raw)
    if oid == oids.IT_SUPP_LANG_TAGS:
        return [str(s) for s in _decode_value(raw, univ.SequenceOf(componentType=char.UTF8String()))]
    if oid == oids.IT_ORIG_PKI_MESSAGE:
        # PKIMessages: the original message(s) an RA received.
        return [_message_tree(m, depth + 1, limit) for m in _split_sequence(raw)]
    if oid == oids.IT_KEM_CIPHERTEXT_INFO:
        v = _decode_value(raw, cmp.KemCiphertextInfo())
        return {"kem": algorithm_leaf(v["kem"]), "ct": bytes_leaf(bytes(v["ct"]), limit=MAX_HEX_BYTES)}
    return {"der": bytes_leaf(raw, limit=MAX_HEX_BYTES)}


def _generalized(raw: bytes) -> str:
    from pyasn1.type import useful

    return _asn1_time(_decode_value(raw, useful.GeneralizedTime()))


def _split_sequence(raw: bytes) -> list[bytes]:
    tag_byte, start, end = codec.read_tlv(raw, 0)
    if tag_byte != 0x30 or end != len(raw):
        raise DecodeError("expected one DER SEQUENCE")
    items, pos = [], start
    while pos < end:
        _, _, item_end = codec.read_tlv(raw, pos)
        items.append(raw[pos:item_end])
        pos = item_end
    return items


# --- CRMF ---------------------------------------------------------------------------------


def _implicit_to_universal(value: Any) -> bytes:
    """DER of an implicitly tagged constructed value with its universal SEQUENCE tag back."""
    der = codec.encode(value)
    return b"\x30" + der[1:]


def _extension(ext: Any) -> Tree:
    oid = str(ext["extnID"])
    out: Tree = {"extnID": oid_leaf(oid)}
    if _present(ext["critical"]) and bool(ext["critical"]):
        out["critical"] = True
    out["value"] = _safe(_extension_value, oid, bytes(ext["extnValue"]))
    return out


def _extension_value(oid: str, raw: bytes) -> Any:
    if oid == oids.CE_KEY_USAGE:
        bits = _der_decoder.decode(raw, asn1Spec=rfc5280.KeyUsage())[0]
        return [KEY_USAGE_NAMES[i] if i < len(KEY_USAGE_NAMES) else f"bit{i}" for i, b in enumerate(bits) if b]
    if oid == oids.CE_SUBJECT_ALT_NAME:
        names = _der_decoder.decode(raw, asn1Spec=rfc5280.GeneralNames())[0]
        return [general_name_text(g) for g in names]
    if oid == oids.CE_BASIC_CONSTRAINTS:
        bc = _der_decoder.decode(raw, asn1Spec=rfc5280.BasicConstraints())[0]
        out: Tree = {"cA": bool(bc["cA"]) if _present(bc["cA"]) else False}
        if _present(bc["pathLenConstraint"]):
            out["pathLenConstraint"] = int(bc["pathLenConstraint"])
        return out
    if oid == oids.CE_EXT_KEY_USAGE:
        return [oid_leaf(o) for o in _der_decoder.decode(raw, asn1Spec=rfc5280.ExtKeyUsageSyntax())[0]]
    if oid == oids.CE_SUBJECT_KEY_IDENTIFIER:
        return bytes_leaf(bytes(_der_decoder.decode(raw, asn1Spec=univ.OctetString())[0]))
    if oid == oids.CE_CRL_REASON:
        return named(int(_der_decoder.decode(raw, asn1Spec=univ.Enumerated())[0]), CRL_REASON_NAMES)
    if oid == "2.5.29.24":
        from pyasn1.type import useful

        return _asn1_time(_der_decoder.decode(raw, asn1Spec=useful.GeneralizedTime())[0])
    return bytes_leaf(raw, limit=MAX_HEX_BYTES)


def _extensions(exts: Any) -> list[Tree]:
    return [_extension(e) for e in exts] if _present(exts) else []


def template_tree(t: Any) -> Tree:
    """A CertTemplate: only the fields that are present."""
    out: Tree = {}
    if _present(t["version"]):
        out["version"] = int(t["version"])
    if _present(t["serialNumber"]):
        out["serialNumber"] = _serial_hex(int(t["serialNumber"]))
    if _present(t["signingAlg"]):
        out["signingAlg"] = oid_leaf(t["signingAlg"]["algorithm"])
    if _present(t["issuer"]):
        out["issuer"] = _safe(name_text, t["issuer"])
    # pyasn1 fills in an absent OptionalValidity (its fields are all OPTIONAL) when decoding,
    # and an empty [4] {} is not DER (the strict decoder refuses it): no time, no validity.
    validity = {k: _asn1_time(t["validity"][k]) for k in ("notBefore", "notAfter")
                if _present(t["validity"]) and _present(t["validity"][k])}
    if validity:
        out["validity"] = validity
    if _present(t["subject"]):
        out["subject"] = _safe(name_text, t["subject"])
    if _present(t["publicKey"]):
        pk = t["publicKey"]
        if not pk["subjectPublicKey"].asOctets():
            # An empty key asks the CA to generate the key pair (RFC 9483 §4.1.6).
            out["publicKey"] = {"algorithm": oid_leaf(pk["algorithm"]["algorithm"]), "empty": True}
        else:
            out["publicKey"] = _safe(_public_key_info, _implicit_to_universal(pk))
    for name in ("issuerUID", "subjectUID"):
        if _present(t[name]):
            out[name] = bytes_leaf(t[name].asOctets())
    if _present(t["extensions"]):
        out["extensions"] = _extensions(t["extensions"])
    return out


def cert_id_tree(cid: Any) -> Tree:
    return {"issuer": _safe(general_name_text, cid["issuer"]), "serialNumber": _serial_hex(int(cid["serialNumber"]))}


def _control(atv: Any) -> Tree:
    oid = str(atv["type"])
    out: Tree = {"type": oid_leaf(oid)}
    out["value"] = _safe(_control_value, oid, bytes(atv["value"]))
    return out


def _control_value(oid: str, raw: bytes) -> Any:
    if oid in (oids.REGCTRL_REG_TOKEN, oids.REGCTRL_AUTHENTICATOR, oids.REGINFO_UTF8_PAIRS):
        return str(_decode_value(raw, char.UTF8String()))
    if oid == oids.REGCTRL_OLD_CERT_ID:
        return cert_id_tree(_decode_value(raw, crmf.CertId()))
    if oid == oids.REGCTRL_PROTOCOL_ENCR_KEY:
        return _public_key_info(raw)
    if oid == oids.REGCTRL_ALG_ID:
        return algorithm_leaf(_decode_value(raw, rfc5280.AlgorithmIdentifier()))
    if oid == oids.REGCTRL_RSA_KEY_LEN:
        return int(_decode_value(raw, univ.Integer()))
    if oid == oids.REGINFO_CERT_REQ:
        req = _decode_value(raw, crmf.CertRequest())
        return {"certReqId": int(req["certReqId"]), "certTemplate": template_tree(req["certTemplate"])}
    return {"der": bytes_leaf(raw, limit=MAX_HEX_BYTES)}


def _popo(popo: Any) -> Tree:
    kind = popo.getName()
    out: Tree = {"kind": kind}
    value = popo.getComponent()
    if kind == "signature":
        out["algorithm"] = oid_leaf(value["algorithmIdentifier"]["algorithm"])
        out["poposkInput"] = _present(value["poposkInput"])
    elif kind in ("keyEncipherment", "keyAgreement"):
        sub = value.getName()
        out["method"] = sub
        if sub == "subsequentMessage":
            out["subsequentMessage"] = named(int(value[sub]), ("encrCert", "challengeResp"))
    return out


def cert_req_msg_tree(msg: Any) -> Tree:
    req = msg["certReq"]
    out: Tree = {"certReqId": int(req["certReqId"]), "certTemplate": _safe(template_tree, req["certTemplate"])}
    if _present(req["controls"]):
        out["controls"] = [_control(c) for c in req["controls"]]
    out["popo"] = _safe(_popo, msg["popo"]) if _present(msg["popo"]) else {"kind": "none"}
    if _present(msg["regInfo"]):
        out["regInfo"] = [_control(c) for c in msg["regInfo"]]
    return out


# --- responses ----------------------------------------------------------------------------


def status_tree(info: Any) -> Tree:
    out: Tree = {"status": named(int(info["status"]), cmp.PKI_STATUS_NAMES)}
    fi = info["failInfo"]
    if _present(fi):
        out["failInfo"] = [
            cmp.FAIL_INFO_NAMES[i] if i < len(cmp.FAIL_INFO_NAMES) else f"bit{i}" for i, bit in enumerate(fi) if bit
        ]
    if _present(info["statusString"]):
        out["statusString"] = _free_text(info["statusString"])
    return out


def _encrypted_key(value: Any) -> Tree:
    kind = value.getName()
    out: Tree = {"kind": kind}
    if kind == "encryptedValue":
        ev = value["encryptedValue"]
        for name in ("intendedAlg", "symmAlg", "keyAlg"):
            if _present(ev[name]):
                out[name] = oid_leaf(ev[name]["algorithm"])
        out["encValueLength"] = len(ev["encValue"].asOctets())
    else:
        der = codec.enveloped_data_der(value["envelopedData"])
        out["length"] = len(der)
        out.update(_safe(_enveloped_summary, der))
    return out


def _enveloped_summary(der: bytes) -> Tree:
    """Version, recipient kinds and algorithms of a CMS EnvelopedData (content stays opaque)."""
    from pyasn1_modules import rfc5652

    env = codec.decode(der, rfc5652.EnvelopedData(), what="EnvelopedData", strict=False)
    eci = env["encryptedContentInfo"]
    return {
        "version": int(env["version"]),
        "recipientInfos": [ri.getName() for ri in env["recipientInfos"]],
        "contentType": oid_leaf(eci["contentType"]),
        "contentEncryptionAlgorithm": oid_leaf(eci["contentEncryptionAlgorithm"]["algorithm"]),
    }


def cert_rep_tree(rep: Any) -> Tree:
    out: Tree = {}
    if _present(rep["caPubs"]):
        out["caPubs"] = _certs(rep["caPubs"])
    responses = []
    for r in rep["response"]:
        item: Tree = {"certReqId": int(r["certReqId"]), "status": _safe(status_tree, r["status"])}
        ckp = r["certifiedKeyPair"]
        if _present(ckp):
            coec = ckp["certOrEncCert"]
            if coec.getName() == "certificate":
                item["certificate"] = _safe(certificate_summary, bytes(coec["certificate"]))
            else:
                item["encryptedCert"] = _safe(_encrypted_key, coec["encryptedCert"])
            if _present(ckp["privateKey"]):
                item["privateKey"] = _safe(_encrypted_key, ckp["privateKey"])
            if _present(ckp["publicationInfo"]):
                item["publicationInfo"] = True
        if _present(r["rspInfo"]):
            item["rspInfo"] = bytes_leaf(bytes(r["rspInfo"]), ascii_too=True)
        responses.append(item)
    out["response"] = responses
    return out


def _rev_details(d: Any) -> Tree:
    t = d["certDetails"]
    out: Tree = {}
    if _present(t["issuer"]):
        out["issuer"] = _safe(name_text, t["issuer"])
    if _present(t["serialNumber"]):
        out["serialNumber"] = _serial_hex(int(t["serialNumber"]))
    others = {k: v for k, v in template_tree(t).items() if k not in ("issuer", "serialNumber")}
    if others:
        out["certDetails"] = others
    exts = d["crlEntryDetails"]
    if _present(exts):
        rest = []
        for e in exts:
            oid = str(e["extnID"])
            if oid == oids.CE_CRL_REASON:
                out["reason"] = _safe(_extension_value, oid, bytes(e["extnValue"]))
            elif oid == "2.5.29.24":
                out["invalidityDate"] = _safe(_extension_value, oid, bytes(e["extnValue"]))
            else:
                rest.append(_extension(e))
        if rest:
            out["crlEntryDetails"] = rest
    return out


def rev_rep_tree(rp: Any) -> Tree:
    out: Tree = {"status": [_safe(status_tree, s) for s in rp["status"]]}
    if _present(rp["revCerts"]):
        out["revCerts"] = [_safe(cert_id_tree, c) for c in rp["revCerts"]]
    if _present(rp["crls"]):
        out["crls"] = [_safe(crl_summary, bytes(c)) for c in rp["crls"]]
    return out


def cert_status_tree(s: Any) -> Tree:
    out: Tree = {"certReqId": int(s["certReqId"]), "certHash": bytes_leaf(bytes(s["certHash"]))}
    if _present(s["statusInfo"]):
        out["statusInfo"] = _safe(status_tree, s["statusInfo"])
    else:
        out["statusInfo"] = None  # absent statusInfo means "accepted" (RFC 9810 §5.3.18)
    if _present(s["hashAlg"]):
        out["hashAlg"] = oid_leaf(s["hashAlg"]["algorithm"])
    return out


def error_tree(e: Any) -> Tree:
    out: Tree = {"pKIStatusInfo": _safe(status_tree, e["pKIStatusInfo"])}
    if _present(e["errorCode"]):
        out["errorCode"] = int(e["errorCode"])
    if _present(e["errorDetails"]):
        out["errorDetails"] = _free_text(e["errorDetails"])
    return out


# --- body dispatch ------------------------------------------------------------------------


def _body_tree(kind: str, body: Any, depth: int, limit: int) -> Any:
    if kind in ("ir", "cr", "kur", "krr", "ccr"):
        return [_safe(cert_req_msg_tree, m) for m in body]
    if kind in cmp.CERT_REP_BODIES:
        return cert_rep_tree(body)
    if kind == "p10cr":
        return _safe(csr_summary, bytes(body))
    if kind == "rr":
        return [_safe(_rev_details, d) for d in body]
    if kind == "rp":
        return rev_rep_tree(body)
    if kind == "certConf":
        return [_safe(cert_status_tree, s) for s in body]
    if kind == "pkiconf":
        return None
    if kind == "pollReq":
        return [{"certReqId": int(e["certReqId"])} for e in body]
    if kind == "pollRep":
        out = []
        for e in body:
            item: Tree = {"certReqId": int(e["certReqId"]), "checkAfter": int(e["checkAfter"])}
            if _present(e["reason"]):
                item["reason"] = _free_text(e["reason"])
            out.append(item)
        return out
    if kind in ("genm", "genp"):
        return [_itav(i, depth=depth, limit=limit) for i in body]
    if kind == "error":
        return error_tree(body)
    if kind == "nested":
        return {"messages": [_message_tree(bytes(m), depth + 1, limit) for m in body]}
    if kind == "popdecc":
        return [
            {
                **({"owf": oid_leaf(c["owf"]["algorithm"])} if _present(c["owf"]) else {}),
                "witness": bytes_leaf(bytes(c["witness"])),
                "challenge": bytes_leaf(bytes(c["challenge"]), limit=MAX_HEX_BYTES),
                **({"encryptedRand": True} if _present(c["encryptedRand"]) else {}),
            }
            for c in body
        ]
    if kind == "popdecr":
        return [int(i) for i in body]
    if kind == "krp":
        out_krp: Tree = {"status": _safe(status_tree, body["status"])}
        if _present(body["newSigCert"]):
            out_krp["newSigCert"] = _safe(certificate_summary, bytes(body["newSigCert"]))
        if _present(body["caCerts"]):
            out_krp["caCerts"] = _certs(body["caCerts"])
        if _present(body["keyPairHist"]):
            out_krp["keyPairHist"] = len(body["keyPairHist"])
        return out_krp
    if kind == "ckuann":
        return {k: _safe(certificate_summary, bytes(body[k])) for k in ("oldWithNew", "newWithOld", "newWithNew")}
    if kind == "cann":
        return _safe(certificate_summary, bytes(body))
    if kind == "rann":
        out_rann: Tree = {
            "status": named(int(body["status"]), cmp.PKI_STATUS_NAMES),
            "certId": _safe(cert_id_tree, body["certId"]),
            "willBeRevokedAt": _asn1_time(body["willBeRevokedAt"]),
            "badSinceDate": _asn1_time(body["badSinceDate"]),
        }
        if _present(body["crlDetails"]):
            out_rann["crlDetails"] = _extensions(body["crlDetails"])
        return out_rann
    if kind == "crlann":
        return [_safe(crl_summary, bytes(c)) for c in body]
    return {"der": bytes_leaf(codec.encode(body), limit=MAX_HEX_BYTES)}  # pragma: no cover - all 27 handled


# --- messages -----------------------------------------------------------------------------


def _decode(der: bytes) -> tuple[cmp.PKIMessage, list[str]]:
    """Decode strictly; a BER (non-DER) message is still dumped, with a warning."""
    try:
        return codec.decode(der, cmp.PKIMessage(), what="PKIMessage"), []
    except DecodeError as exc:
        if "not DER" not in exc.message or "indefinite" in exc.message:
            raise
        msg = codec.decode(der, cmp.PKIMessage(), what="PKIMessage", strict=False)
        return msg, [exc.message]


def _message_tree(der: bytes, depth: int, limit: int) -> Tree:
    if depth > limit:
        return {"truncated": f"nesting deeper than {limit} levels is not shown", "size": len(der)}
    try:
        msg, warnings = _decode(der)
    except DecodeError as exc:
        if depth == 0:
            raise
        return {"error": exc.message, "size": len(der)}
    return message_tree(msg, der=der, depth=depth, limit=limit, warnings=warnings)


def message_tree(
    msg: cmp.PKIMessage,
    *,
    der: bytes | None = None,
    depth: int = 0,
    limit: int = MAX_NESTING_DEPTH,
    warnings: Sequence[str] = (),
) -> Tree:
    """The tree of an already decoded PKIMessage."""
    kind = msg["body"].getName()
    out: Tree = {"bodyType": kind}
    if der is not None:
        out["size"] = len(der)
    if warnings:
        out["warnings"] = list(warnings)
    out["header"] = _safe(header_tree, msg["header"], depth=depth, limit=limit)
    out["body"] = _safe(_body_tree, kind, msg["body"].getComponent(), depth, limit) if kind else None
    prot = msg["protection"]
    if _present(prot):
        alg = msg["header"]["protectionAlg"]
        out["protection"] = {
            "present": True,
            "algorithm": _safe(lambda: oid_leaf(alg["algorithm"])) if _present(alg) else None,
            "length": len(prot.asOctets()),
        }
    else:
        out["protection"] = {"present": False}
    if _present(msg["extraCerts"]):
        out["extraCerts"] = _certs(msg["extraCerts"])
    return out


def dump(message: bytes | bytearray | memoryview | cmp.PKIMessage | Any, *, max_depth: int | None = None) -> Tree:
    """Any CMP message as a tree of plain values (see the module docstring for the shapes).

    ``message`` is DER bytes, a decoded ``cmp.PKIMessage``, or an object with a ``der``
    attribute (``ParsedMessage``).  Raises :class:`~cmpclient.errors.DecodeError` when the
    bytes are not a PKIMessage.  ``max_depth`` lowers the nesting bound
    (:data:`MAX_NESTING_DEPTH`).
    """
    if isinstance(message, cmp.PKIMessage):
        der = codec.encode(message)
    elif isinstance(message, (bytes, bytearray, memoryview)):
        der = bytes(message)
    elif hasattr(message, "der"):
        der = bytes(message.der)
    else:
        raise DecodeError(f"cannot dump a {type(message).__name__}: expected DER bytes or a PKIMessage")
    limit = MAX_NESTING_DEPTH if max_depth is None else max(0, min(max_depth, MAX_NESTING_DEPTH))
    return _message_tree(der, 0, limit)


# --- text rendering -----------------------------------------------------------------------


def inline(value: Any) -> str | None:
    """The one-line text of a leaf, or None when ``value`` needs its own subtree."""
    if value is None:
        return "(absent)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, dict):
        keys = set(value)
        if keys and keys <= {"oid", "name"}:
            oid, name = value.get("oid"), value.get("name")
            return oid if name in (None, oid) else f"{name} ({oid})"
        if keys and keys <= {"value", "name"} and "value" in keys:
            return f"{value.get('name')} ({value['value']})"
        if "hex" in keys and keys <= {"hex", "ascii", "length", "truncated"}:
            text = value["hex"] or "(empty)"
            if value.get("truncated"):
                text += f"... ({value['length']} bytes)"
            if "ascii" in value:
                text += f" ({value['ascii']!r})"
            return text
        if keys == {"error"}:
            return f"<error: {value['error']}>"
        if not value:
            return "(empty)"
    if isinstance(value, list):
        if not value:
            return "(none)"
        parts = [inline(v) for v in value]
        if all(p is not None for p in parts) and all(not isinstance(v, dict) or _is_small_leaf(v) for v in value):
            joined = ", ".join(parts)  # type: ignore[arg-type]
            if len(joined) <= 100:
                return joined
    return None


def _is_small_leaf(value: dict) -> bool:
    return set(value) <= {"oid", "name"} or (set(value) <= {"value", "name"} and "value" in value)


def _title(tree: Tree) -> str:
    kind = tree.get("bodyType", "?")
    size = tree.get("size")
    return f"PKIMessage {kind}" + (f" ({size} bytes)" if size is not None else "")


def walk(value: Any, label: str | None = None) -> list[tuple[int, str]]:
    """(depth, text) lines of a tree: the structure both renderers share."""
    lines: list[tuple[int, str]] = []

    def visit(v: Any, key: str | None, depth: int) -> None:
        if isinstance(v, dict) and "bodyType" in v and "header" in v:
            lines.append((depth, (f"{key}: " if key else "") + _title(v)))
            for k, sub in v.items():
                if k in ("bodyType", "size"):
                    continue
                visit(sub, k, depth + 1)
            return
        text = inline(v)
        if text is not None:
            lines.append((depth, f"{key}: {text}" if key is not None else text))
            return
        head = None
        if isinstance(v, dict) and {"oid", "name"} <= set(v):
            # An algorithm with parameters: its name on the key's line, parameters below.
            head = inline({"oid": v["oid"], "name": v["name"]})
            v = {k: sub for k, sub in v.items() if k not in ("oid", "name")}
        if key is not None:
            lines.append((depth, f"{key}: {head}" if head else key))
            depth += 1
        elif head:
            lines.append((depth, head))
            depth += 1
        if isinstance(v, dict):
            for k, sub in v.items():
                visit(sub, k, depth)
        else:
            for i, sub in enumerate(v):
                visit(sub, f"[{i}]", depth)

    visit(value, label, 0)
    return lines


def render_text(tree: Tree, *, indent: str = "  ") -> str:
    """The tree as indented plain text (one field per line)."""
    return "\n".join(indent * depth + text for depth, text in walk(tree)) + "\n"


def dump_message(der: bytes) -> str:
    """``render_text(dump(der))``: the text dump of one message (used by ``-vvv``)."""
    return render_text(dump(der))
