"""A small strict DER reader for the hot path: answers the client receives on every enrollment.

Written by hand because no dependency offers it: pyasn1 decodes a 3–4 kB ip in about
2 ms (its decode plus the re-encoding that proves the input was DER), which is half of
what a bulk enrollment costs the client; ``cryptography`` parses X.509 but exposes no
generic ASN.1 reader.

The reader is deliberately narrow and **never the judge of bad input**: every rule it is
not sure of -- a long-form length that could be short, a constructed string, an
indefinite length, a tag it does not expect, an encoding pyasn1 might read differently --
raises :class:`NotHandled`, and the caller hands the whole message to the full pyasn1
decoder, which accepts it or produces the error the user sees.  So the fast path may be
stricter than the full decoder, never more lenient; ``tests/unit/message/test_fastparse.py``
checks that property against the pyasn1 path on real and mutated messages.
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["NotHandled", "Reader"]


class NotHandled(Exception):
    """The fast reader does not handle this input; decode it with the full decoder."""


SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
GENERALIZED_TIME = 0x18


class Reader:
    """Reads consecutive DER TLVs from ``data[pos:end]``."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek(self) -> int | None:
        """The next tag byte, or None at the end."""
        return self.data[self.pos] if self.pos < self.end else None

    def header(self) -> tuple[int, int, int]:
        """Read one TLV header: (tag byte, content start, content end); moves past the TLV."""
        data, pos, end = self.data, self.pos, self.end
        if pos + 2 > end:
            raise NotHandled("truncated")
        tag = data[pos]
        if tag & 0x1F == 0x1F or tag & 0xDF == 0:
            raise NotHandled("multi-byte tag, or universal tag 0 (end-of-contents)")
        length = data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or pos + count > end or data[pos] == 0:
                raise NotHandled("indefinite, oversized or padded length")
            length = int.from_bytes(data[pos : pos + count], "big")
            if length < 0x80:
                raise NotHandled("long form for a short length")
            pos += count
        stop = pos + length
        if stop > end:
            raise NotHandled("value runs past its container")
        self.pos = stop
        return tag, pos, stop

    def expect(self, tag: int) -> tuple[int, int]:
        """Read a TLV that must have ``tag``: (content start, content end)."""
        got, start, stop = self.header()
        if got != tag:
            raise NotHandled(f"tag {got:#04x} where {tag:#04x} was expected")
        return start, stop

    def enter(self, tag: int) -> "Reader":
        """A reader over the content of the next TLV, which must have ``tag``."""
        start, stop = self.expect(tag)
        return Reader(self.data, start, stop)

    def optional(self, tag: int) -> "Reader | None":
        """Like :meth:`enter` when the next tag is ``tag``; None (nothing read) otherwise."""
        return self.enter(tag) if self.peek() == tag else None

    def raw(self) -> bytes:
        """The whole next TLV (tag, length and content), its header checked."""
        begin = self.pos
        self.header()
        return self.data[begin : self.pos]

    def done(self) -> None:
        if self.pos != self.end:
            raise NotHandled("unexpected content after the last component")

    # --- universal types -------------------------------------------------------------------

    def integer(self, tag: int = INTEGER) -> int:
        start, stop = self.expect(tag)
        data = self.data
        if stop == start:
            raise NotHandled("empty INTEGER")
        if stop - start > 1 and ((data[start] == 0 and data[start + 1] < 0x80) or (data[start] == 0xFF and data[start + 1] >= 0x80)):
            raise NotHandled("INTEGER not in its fewest octets")
        return int.from_bytes(data[start:stop], "big", signed=True)

    def octets(self, tag: int = OCTET_STRING) -> bytes:
        start, stop = self.expect(tag)
        return self.data[start:stop]

    def null(self, tag: int = NULL) -> None:
        start, stop = self.expect(tag)
        if stop != start:
            raise NotHandled("NULL with content")

    def oid(self) -> str:
        """An OBJECT IDENTIFIER in dotted form."""
        start, stop = self.expect(OID)
        content = self.data[start:stop]
        dotted = _OIDS.get(content)
        if dotted is None:
            dotted = _dotted(content)
            if len(_OIDS) < 512:  # the few OIDs of CMP answers; bounded against odd peers
                _OIDS[content] = dotted
        return dotted

    def bits(self) -> tuple[int, ...]:
        """A BIT STRING as its bits, first bit first; unused bits must be zero."""
        start, stop = self.expect(BIT_STRING)
        data = self.data
        if stop == start:
            raise NotHandled("empty BIT STRING")
        unused = data[start]
        if unused > 7 or (unused and stop - start == 1) or (unused and data[stop - 1] & ((1 << unused) - 1)):
            raise NotHandled("BIT STRING with bad unused bits")
        out = []
        for byte in data[start + 1 : stop]:
            out.extend((byte >> (7 - i)) & 1 for i in range(8))
        return tuple(out[: len(out) - unused])

    def octet_bits(self) -> bytes:
        """A BIT STRING of whole octets (a signature or MAC value)."""
        start, stop = self.expect(BIT_STRING)
        if stop == start or self.data[start] != 0:
            raise NotHandled("BIT STRING that is not whole octets")
        return self.data[start + 1 : stop]

    def utf8(self) -> str:
        start, stop = self.expect(UTF8_STRING)
        try:
            return self.data[start:stop].decode("utf-8")
        except UnicodeDecodeError:
            raise NotHandled("invalid UTF-8") from None

    def generalized_time(self, tag: int = GENERALIZED_TIME) -> _dt.datetime:
        """Only the plain DER form ``YYYYMMDDHHMMSSZ`` (anything else: the full decoder)."""
        start, stop = self.expect(tag)
        text = self.data[start:stop]
        if stop - start != 15 or text[14] != 0x5A or not text[:14].isdigit():
            raise NotHandled("GeneralizedTime not in the plain form")
        try:
            return _dt.datetime(
                int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14]),
                tzinfo=_dt.timezone.utc,
            )
        except ValueError:
            raise NotHandled("invalid GeneralizedTime") from None

    def sequence_of(self, tag: int = SEQUENCE, *, non_empty: bool = False) -> list["Reader"]:
        """Readers over each element's TLV of a SEQUENCE OF (each element read whole)."""
        inner = self.enter(tag)
        items = []
        while not inner.at_end():
            begin = inner.pos
            inner.header()
            items.append(Reader(inner.data, begin, inner.pos))
        if non_empty and not items:
            raise NotHandled("empty SEQUENCE OF where SIZE (1..MAX)")
        return items

    def algorithm_identifier(self) -> tuple[str, bytes | None]:
        """An AlgorithmIdentifier: (OID, parameters' DER or None when absent)."""
        alg = self.enter(SEQUENCE)
        oid = alg.oid()
        params = None if alg.at_end() else alg.raw()
        alg.done()
        return oid, params


_OIDS: dict[bytes, str] = {}

#: Octets of one OID arc we read: pyasn1 (0.6) refuses arcs of more than 20 continuation
#: octets, so we stop well below (an arc of 16 octets holds 112 bits).
MAX_ARC_OCTETS = 16


def _dotted(content: bytes) -> str:
    if not content or content[-1] & 0x80:
        raise NotHandled("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    octets = 0
    for byte in content:
        if octets == 0 and byte == 0x80:
            raise NotHandled("OBJECT IDENTIFIER arc with a leading 0x80")
        octets += 1
        if octets > MAX_ARC_OCTETS:
            raise NotHandled("OBJECT IDENTIFIER arc longer than pyasn1 reads")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            octets = 0
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return ".".join(map(str, (*head, *arcs[1:])))
