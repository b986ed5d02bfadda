"""Distinguished names and GeneralNames: parsing user text and converting to pyasn1.

Accepted DN spellings: RFC 4514 / EJBCA style ``CN=dev1,O=Example`` (first RDN first, as
users write it) and openssl style ``/O=Example/CN=dev1``.  Multi-valued RDNs use ``+``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from cmpclient.asn1 import codec
from cmpclient.asn1.lazy import rfc5280
from cmpclient.errors import DecodeError, UsageError

_ATTRS = {
    "CN": NameOID.COMMON_NAME,
    "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "SN": NameOID.SURNAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "GN": NameOID.GIVEN_NAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "UID": NameOID.USER_ID,
    "DC": NameOID.DOMAIN_COMPONENT,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "STREET": NameOID.STREET_ADDRESS,
    "POSTALCODE": NameOID.POSTAL_CODE,
    "DNQUALIFIER": NameOID.DN_QUALIFIER,
    "PSEUDONYM": NameOID.PSEUDONYM,
    "ORGANIZATIONIDENTIFIER": NameOID.ORGANIZATION_IDENTIFIER,
}


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash; keep escapes for the value step."""
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        cur.append("\\")
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _attribute(text: str, dn: str) -> x509.NameAttribute:
    if "=" not in text:
        raise UsageError(f"bad DN component {text!r} in {dn!r}: expected TYPE=value", hint="example: CN=device1,O=Example")
    key, value = text.split("=", 1)
    key = key.strip()
    oid = _ATTRS.get(key.upper())
    if oid is None:
        if key[:1].isdigit():
            try:
                oid = x509.ObjectIdentifier(key)
            except ValueError:
                raise UsageError(f"bad DN attribute type {key!r} in {dn!r}: not a dotted OID",
                                 hint="use a name (CN, O, ...) or an OID like 2.5.4.3") from None
        else:
            raise UsageError(
                f"unknown DN attribute {key!r} in {dn!r}",
                hint="use one of " + ", ".join(sorted(_ATTRS)) + " or a dotted OID",
            )
    value = _unescape(value.strip())
    if oid == NameOID.COUNTRY_NAME and len(value) != 2:
        raise UsageError(f"country (C) must be two letters, got {value!r}")
    try:
        return x509.NameAttribute(oid, value)
    except ValueError as exc:  # e.g. an empty CN, or one over the 64 characters X.520 allows
        raise UsageError(f"bad DN component {text!r} in {dn!r}: {exc}", hint="example: CN=device1,O=Example") from None


def parse_dn(dn: str | x509.Name) -> x509.Name:
    """Parse ``CN=a,O=b`` (first RDN first) or ``/O=b/CN=a`` into a cryptography Name.

    An empty string gives the NULL-DN (used as sender when only a senderKID identifies
    the sender).
    """
    if isinstance(dn, x509.Name):
        return dn
    text = dn.strip()
    if not text:
        return x509.Name([])
    if text.startswith("/"):
        rdn_texts = [p for p in _split(text[1:], "/") if p]
        # openssl lists the most significant RDN first, in encoding order.
        ordered = rdn_texts
    else:
        rdn_texts = [p for p in _split(text, ",") if p.strip()]
        # RFC 4514 strings list the last RDN of the encoding first.
        ordered = list(reversed(rdn_texts))
    rdns = [x509.RelativeDistinguishedName([_attribute(a, dn) for a in _split(r, "+")]) for r in ordered]
    return x509.Name(rdns)


def format_dn(name: x509.Name) -> str:
    """RFC 4514 text of a name (``CN=a,O=b``)."""
    return name.rfc4514_string()


@lru_cache(maxsize=256)
def name_der(name: x509.Name) -> bytes:
    """The DER of a Name (cryptography's encoding, remembered for the names in use)."""
    return name.public_bytes()


def name_to_asn1(name: x509.Name | str, spec: rfc5280.Name | None = None) -> rfc5280.Name:
    """A pyasn1 Name (with the tags of ``spec`` when given)."""
    return codec.value_from_der(spec if spec is not None else rfc5280.Name(), name_der(parse_dn(name)))


def general_name_der(value: x509.Name | str | x509.GeneralName | bytes) -> bytes:
    """DER of a GeneralName: a directoryName for names/DN strings, or the given GeneralName
    (``bytes`` are taken as a GeneralName's DER, e.g. copied from a received header)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (str, x509.Name)):
        inner = name_der(parse_dn(value))
        return codec.der_header(0xA4, len(inner)) + inner
    if isinstance(value, x509.DirectoryName):
        inner = name_der(value.value)
        return codec.der_header(0xA4, len(inner)) + inner
    for kind, tag_byte in ((x509.RFC822Name, 0x81), (x509.DNSName, 0x82), (x509.UniformResourceIdentifier, 0x86)):
        if isinstance(value, kind):
            raw = value.value.encode("ascii")
            return codec.der_header(tag_byte, len(raw)) + raw
    raise UsageError(f"unsupported GeneralName {value!r}")


def general_name(value: x509.Name | str | x509.GeneralName, spec: rfc5280.GeneralName | None = None) -> rfc5280.GeneralName:
    """A pyasn1 GeneralName: a directoryName for names/DN strings, or the given GeneralName."""
    der = general_name_der(value)
    if spec is None:
        return codec.decode(der, rfc5280.GeneralName(), strict=False)
    return codec.value_from_der(spec, der)


def asn1_to_name(value: object) -> x509.Name:
    """A cryptography Name from a pyasn1 Name, whatever tags its slot has.

    cryptography has no public loader for a bare Name, so the decoded RDNs are walked
    and each attribute value's string type is kept.
    """
    return name_from_attributes(
        [[(str(atv["type"]), bytes(atv["value"])) for atv in rdn] for rdn in value["rdnSequence"]]  # type: ignore[index]
    )


def name_from_attributes(rdns: list[list[tuple[str, bytes]]]) -> x509.Name:
    """A cryptography Name from RDNs given as (attribute type OID, value DER) pairs."""
    return x509.Name(
        [x509.RelativeDistinguishedName([_decode_attribute(x509.ObjectIdentifier(oid), raw) for oid, raw in rdn]) for rdn in rdns]
    )


def _decode_attribute(oid: x509.ObjectIdentifier, raw: bytes) -> x509.NameAttribute:
    from cryptography.x509.name import _ASN1Type

    tag_byte, start, end = codec.read_tlv(raw, 0)
    body = raw[start:end]
    string_types = {
        0x0C: ("utf-8", _ASN1Type.UTF8String),
        0x13: ("ascii", _ASN1Type.PrintableString),
        0x16: ("ascii", _ASN1Type.IA5String),
        0x14: ("latin-1", _ASN1Type.T61String),
        0x1E: ("utf-16-be", _ASN1Type.BMPString),
        0x1C: ("utf-32-be", _ASN1Type.UniversalString),
    }
    if tag_byte not in string_types:
        # Names read here come from received messages: a bad one is a decoding error.
        raise DecodeError(f"unsupported string type 0x{tag_byte:02x} in a name attribute")
    encoding, asn1_type = string_types[tag_byte]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"name attribute {oid.dotted_string}: invalid {asn1_type.name} bytes") from exc
    try:
        return x509.NameAttribute(oid, text, _type=asn1_type)
    except ValueError:
        # cryptography refuses some values it would accept in a loaded certificate
        # (an empty or 65-character CN, a three-letter C); a peer's name is shown as sent.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return x509.NameAttribute(oid, text, _type=asn1_type, _validate=False)


def general_name_text(value: object) -> str:
    """Readable text of a pyasn1 GeneralName (for messages and dumps)."""
    kind = value.getName()  # type: ignore[attr-defined]
    if kind == "directoryName":
        name = asn1_to_name(value["directoryName"])  # type: ignore[index]
        return name.rfc4514_string() or "NULL-DN"
    return f"{kind}:{value[kind]}"  # type: ignore[index]
