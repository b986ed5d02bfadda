"""Strict DER encoding and decoding helpers.

``decode`` refuses trailing bytes and anything that is not DER (a value that re-encodes
to different bytes), and turns pyasn1's errors into :class:`cmpclient.errors.DecodeError`
naming what was being decoded.  ``protected_part`` slices the exact bytes of header and
body out of a received message, so protection is checked over what the peer sent.

Importing this module does not import pyasn1: the raw TLV helpers and the DER writers
(``der_header``, ``integer_der``, ``oid_der``, ``algorithm_identifier_der``) need none,
and ``encode``/``decode`` load the pyasn1 half, :mod:`cmpclient.asn1._pyasn1_codec`
(pyasn1's DER codec with minimal INTEGERs), on their first call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeVar

from cmpclient.asn1.lazy import LazyModule
from cmpclient.errors import DecodeError

if TYPE_CHECKING:
    from pyasn1.type import base, univ

#: The pyasn1 half of this module, imported by the first encode or decode.
_pyasn1 = LazyModule("cmpclient.asn1._pyasn1_codec")


def int_content(value: int) -> bytes:
    """Content octets of a DER INTEGER: minimal two's complement (X.690 8.3.2)."""
    return value.to_bytes(((value if value >= 0 else ~value).bit_length() // 8) + 1, "big", signed=True)


T = TypeVar("T", bound="base.Asn1Item")

#: Largest message we agree to decode (the test CA uses a lower HTTP limit).
MAX_MESSAGE_SIZE = 10 * 1024 * 1024


def encode(value: base.Asn1Item) -> bytes:
    """DER-encode a pyasn1 value, turning an incomplete structure into a clear error."""
    return _pyasn1.encode(value)  # type: ignore[no-any-return]


def decode(data: bytes, spec: T, *, what: str | None = None, strict: bool = True) -> T:
    """Decode ``data`` as ``spec``; no trailing bytes; with ``strict`` it must be DER.

    ``what`` names the structure in error messages (defaults to the spec's class name).
    """
    name = what or type(spec).__name__
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{name}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise DecodeError(f"{name}: empty input")
    if len(data) > MAX_MESSAGE_SIZE:
        raise DecodeError(f"{name}: {len(data)} bytes is larger than the {MAX_MESSAGE_SIZE}-byte limit")
    return _pyasn1.decode(data, spec, name, strict)  # type: ignore[no-any-return]


def _short(exc: BaseException) -> str:
    """pyasn1's error as one short line a user can act on.

    pyasn1 puts the repr of whole schema objects into its messages (hundreds of characters
    of ``<TagSet object, tags 0:0:2> not in asn1Spec: <PKIHeader schema object, ...``),
    and some errors have no text but their class name.  The common ones are rewritten
    ("found INTEGER where PKIHeader was expected", "truncated: ..."); anything else keeps
    pyasn1's words up to the first schema repr.  These texts reach the CA's statusString
    and the CLI's error lines.
    """
    text = str(exc).strip() or type(exc).__name__
    if text in ("EndOfStreamError", "SubstrateUnderrunError", "Short substrate on input"):
        return "truncated: the data ends inside a value"
    if re.fullmatch(r"Read \d+ bytes instead of expected \d+\.?", text):
        return "inconsistent lengths: a component runs past the end of the value that contains it"
    if text == "PyAsn1UnicodeDecodeError" or isinstance(exc, UnicodeError):
        return "a character string is not valid in its declared encoding"
    found = _MISPLACED.match(text)
    if found:
        # outermost first, as ASN.1 writes an explicitly tagged type: "[0] INTEGER"
        tags = [_tag_text(t) for t in reversed(found.group(1).split("-"))]
        tag = " ".join(tags[:3]) + (" ..." if len(tags) > 3 else "")
        expected = found.group(2)
        names = list(dict.fromkeys(_EXPECTED.findall(expected) if expected.startswith("<TagMap") else
                                   _SCHEMA.findall(expected)[:1]))
        if len(names) == 1:
            return f"found {tag} where {names[0]} was expected"
        if names:
            return f"found {tag} where one of {', '.join(names[:4])}{', ...' if len(names) > 4 else ''} was expected"
        return f"found {tag} where the schema does not allow it"
    excessive = re.match(r"Excessive components decoded at <(\w+) schema object", text)
    if excessive:
        return f"{excessive.group(1)} has more components than its schema allows"
    missing = re.match(r"ASN\.1 object (\w+) has uninitialized components", text)
    if missing:
        return f"{missing.group(1)} lacks a required component"
    text = re.sub(r"<(\w+) (?:schema )?object\b.*", r"\1", text.splitlines()[0]).strip()
    return text if len(text) <= 200 else text[:197] + "..."


#: pyasn1: "<TagSet object, tags 0:0:2> not in asn1Spec: <PKIHeader schema object, ..." (the
#: tags of what was found, base tag first and the outermost last; then the expected schema,
#: or for a CHOICE or optional fields a TagMap of them).
_MISPLACED = re.compile(r"<TagSet object, tags ([\d:-]+)> not in asn1Spec: (.*)", re.S)
_SCHEMA = re.compile(r"<(\w+) schema object")
_EXPECTED = re.compile(r">: <(\w+) schema object")
_UNIVERSAL_TAGS = {
    1: "BOOLEAN", 2: "INTEGER", 3: "BIT STRING", 4: "OCTET STRING", 5: "NULL", 6: "OBJECT IDENTIFIER",
    10: "ENUMERATED", 12: "UTF8String", 16: "SEQUENCE", 17: "SET", 18: "NumericString", 19: "PrintableString",
    20: "TeletexString", 22: "IA5String", 23: "UTCTime", 24: "GeneralizedTime", 26: "VisibleString",
    28: "UniversalString", 30: "BMPString",
}


def _tag_text(tag: str) -> str:
    """``class:format:number`` (pyasn1's numbers) as ASN.1 notation: INTEGER, [0], [APPLICATION 3]."""
    try:
        cls, _fmt, number = (int(part) for part in tag.split(":"))
    except ValueError:
        return "an unexpected tag"
    if cls == 0:
        return _UNIVERSAL_TAGS.get(number, f"universal tag {number}")
    return f"[{ {64: 'APPLICATION ', 192: 'PRIVATE '}.get(cls, '')}{number}]"


# --- Raw TLV helpers ---------------------------------------------------------------------


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Parse one DER TLV at ``offset``: return (tag byte, content start, end)."""
    try:
        tag_byte = data[offset]
        if tag_byte & 0x1F == 0x1F:
            raise DecodeError("multi-byte tags are not used in CMP")
        length_byte = data[offset + 1]
        pos = offset + 2
        if length_byte < 0x80:
            length = length_byte
        else:
            count = length_byte & 0x7F
            if count == 0 or count > 4:
                raise DecodeError("indefinite or oversized length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
    except IndexError as exc:
        raise DecodeError("truncated DER value") from exc
    end = pos + length
    if end > len(data):
        raise DecodeError("truncated DER value")
    return tag_byte, pos, end


def integer_der(value: int, tag_byte: int = 0x02) -> bytes:
    """A DER INTEGER of ``value`` (``tag_byte``: an implicit tag in its place, e.g. 0x81)."""
    content = int_content(value)
    return der_header(tag_byte, len(content)) + content


def der_header(tag_byte: int, length: int) -> bytes:
    """The DER tag-and-length header for a value of ``length`` content bytes."""
    if length < 0x80:
        return bytes((tag_byte, length))
    size = (length.bit_length() + 7) // 8
    return bytes((tag_byte, 0x80 | size)) + length.to_bytes(size, "big")


#: A dotted OID as :func:`oid_der` writes it itself: decimal arcs without leading zeros,
#: at least two.  Every other spelling pyasn1 would read ("1.02.3", "1..2", " 1.2") or refuse
#: goes to pyasn1, so the bytes and the errors are pyasn1's.
_DOTTED_OID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+")


def oid_der(oid: str) -> bytes:
    """The DER OBJECT IDENTIFIER of a dotted OID (X.690 8.19), the bytes pyasn1 writes for
    ``univ.ObjectIdentifier(oid)``, without pyasn1 for the usual spelling (cached)."""
    if type(oid) is str:
        der = _OID_DER.get(oid)
        if der is not None:
            return der
        der = _oid_der_written(oid)
        if der is not None:
            if len(_OID_DER) < 1024:  # the OIDs of our tables and a user's few; bounded
                _OID_DER[oid] = der
            return der
    from cmpclient.asn1.lazy import univ

    return encode(univ.ObjectIdentifier(oid))  # pyasn1 reads it, or words the error


_OID_DER: dict[str, bytes] = {}


def _oid_der_written(oid: str) -> bytes | None:
    """:func:`oid_der` for the plain spelling; None when pyasn1 should judge ``oid``."""
    if len(oid) > 1000 or not _DOTTED_OID.fullmatch(oid):
        return None
    arcs = [int(arc) for arc in oid.split(".")]
    first, second = arcs[0], arcs[1]
    if first > 2 or (first < 2 and second > 39):
        return None  # pyasn1: "Impossible first/second arcs"
    content = bytearray()
    for arc in (first * 40 + second, *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        content.extend(reversed(chunk))
    return der_header(0x06, len(content)) + bytes(content)


def algorithm_identifier_der(oid: str, params_der: bytes | None = None) -> bytes:
    """The DER AlgorithmIdentifier ``{ oid, params }``: ``params_der`` is the parameters'
    DER, None when they are absent (what pyasn1 writes for an ``rfc5280.AlgorithmIdentifier``
    whose ``parameters`` is ``univ.Any(params_der)`` or unset)."""
    inner = oid_der(oid) + (bytes(params_der) if params_der is not None else b"")
    return der_header(0x30, len(inner)) + inner


def protected_part(message_der: bytes) -> bytes:
    """DER of ``ProtectedPart ::= SEQUENCE { header, body }`` cut from a PKIMessage's bytes."""
    _, start, end = read_tlv(message_der, 0)
    _, _, header_end = read_tlv(message_der, start)
    _, _, body_end = read_tlv(message_der, header_end)
    if body_end > end:
        raise DecodeError("PKIMessage: body runs past the end of the message")
    inner = message_der[start:body_end]
    return der_header(0x30, len(inner)) + inner


# --- Opaque values -----------------------------------------------------------------------


def any_der(value: univ.Any) -> bytes:
    """The DER bytes held by an untagged opaque ``Any`` (a certificate, CRL, CSR...)."""
    return bytes(value)


def enveloped_data_der(opaque: univ.Any) -> bytes:
    """Full ``EnvelopedData`` DER from an implicitly tagged opaque value (content octets)."""
    content = bytes(opaque)
    return der_header(0x30, len(content)) + content


def opaque_content(der: bytes) -> bytes:
    """The content octets of a DER SEQUENCE, for an implicitly tagged opaque field."""
    tag_byte, start, end = read_tlv(der, 0)
    if tag_byte != 0x30 or end != len(der):
        raise DecodeError("expected exactly one DER SEQUENCE")
    return der[start:end]


def _tag_byte(t: object) -> int:
    tag_class, tag_format, tag_id = t.tagClass, t.tagFormat, t.tagId  # type: ignore[attr-defined]
    if tag_id >= 31:
        raise DecodeError("multi-byte tags are not used in CMP")
    return tag_class | tag_format | tag_id


def value_from_der(spec: T, der: bytes) -> T:
    """Turn the DER of an *untagged* value into a value of ``spec``, tags included.

    pyasn1 refuses to assign a value whose tags differ from the schema slot (an
    untagged ``Name`` into ``[5] EXPLICIT Name``), and cloning with new tags fails for
    nested SET OF values.  Re-wrapping the DER in the slot's tags and decoding it with
    the slot's own schema yields exactly the object the slot expects.
    """
    natural = type(spec).tagSet.superTags  # type: ignore[attr-defined]
    wanted = spec.tagSet.superTags  # type: ignore[attr-defined]
    data = bytes(der)
    if natural and wanted and wanted[0] != natural[0]:
        # Implicit tag: the first (innermost) tag replaces the natural one.
        data = bytes((_tag_byte(wanted[0]),)) + data[1:]
        extra = wanted[1:]
    else:
        extra = wanted[len(natural) :]
    for t in extra:
        data = der_header(_tag_byte(t), len(data)) + data
    return decode(data, spec, strict=False)


def set_from_der(parent: base.Asn1Item, name: str, der: bytes) -> None:
    """Set component ``name`` of ``parent`` from the DER of its untagged value.

    Constraint objects are not compared: pyasn1 may build the slot's constraints as an
    intersection and the decoded value's as a bare constraint (``rfc5280.Extensions``),
    which are equal in meaning but not in identity.
    """
    spec = parent.componentType[name].asn1Object  # type: ignore[attr-defined]
    value = value_from_der(spec, der)
    parent.setComponentByName(name, value, matchConstraints=False)  # type: ignore[attr-defined]
