"""asn1/der.py, the strict reader of the fast path: it reads what pyasn1's strict decode
reads, the same way, and declines (NotHandled) what that decode refuses."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.type import univ, useful

from cmpclient.asn1 import codec
from cmpclient.asn1.der import NotHandled, Reader
from cmpclient.errors import DecodeError


def strict(der: bytes, spec: object) -> object | None:
    try:
        return codec.decode(der, spec)  # type: ignore[arg-type]
    except DecodeError:
        return None


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_integers_as_pyasn1_reads_them(value: int) -> None:
    der = codec.encode(univ.Integer(value))
    assert Reader(der).integer() == value == int(strict(der, univ.Integer()))  # type: ignore[call-overload]


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=6))
def test_integer_contents_are_read_only_when_minimal(content: bytes) -> None:
    der = codec.der_header(0x02, len(content)) + content
    theirs = strict(der, univ.Integer())
    try:
        ours = Reader(der).integer()
    except NotHandled:
        assert theirs is None
    else:
        assert theirs is not None and int(theirs) == ours  # type: ignore[call-overload]


@given(st.lists(st.integers(min_value=0, max_value=2**70), min_size=1, max_size=8), st.integers(0, 2))
def test_object_identifiers_as_pyasn1_reads_them(arcs: list[int], first: int) -> None:
    second = arcs[0] % 40 if first < 2 else arcs[0]
    oid = univ.ObjectIdentifier((first, second, *arcs[1:]))
    der = codec.encode(oid)
    assert Reader(der).oid() == str(oid)
    assert Reader(der).oid() == str(oid)  # a second read comes from the cache, the same


@pytest.mark.parametrize("der", [
    "0600",  # empty
    "06028001",  # leading 0x80 in an arc: not DER
    "060181",  # last octet with the continuation bit
])
def test_bad_object_identifiers_are_declined(der: str) -> None:
    with pytest.raises(NotHandled):
        Reader(bytes.fromhex(der)).oid()


@pytest.mark.parametrize("der", [
    "048101ff",  # long form for a short length
    "0482000100",  # padded long form
    "0480",  # indefinite
    "04850100000000",  # oversized
    "0403aabb",  # runs past the end
    "1f0100",  # multi-byte tag
    "04",  # truncated
])
def test_lengths_and_tags_that_are_not_der_are_declined(der: str) -> None:
    with pytest.raises(NotHandled):
        Reader(bytes.fromhex(der)).octets()


@pytest.mark.parametrize("der, bits", [
    ("030100", ()),
    ("03020780", (1,)),
    ("03020640", (0, 1)),
    ("030200a5", (1, 0, 1, 0, 0, 1, 0, 1)),
])
def test_bit_strings(der: str, bits: tuple[int, ...]) -> None:
    raw = bytes.fromhex(der)
    assert Reader(raw).bits() == bits == tuple(strict(raw, univ.BitString()))  # type: ignore[arg-type]


@pytest.mark.parametrize("der", ["0300", "030108", "03020781", "030201ff"])
def test_bit_strings_with_bad_unused_bits_are_declined(der: str) -> None:
    with pytest.raises(NotHandled):
        Reader(bytes.fromhex(der)).bits()


@pytest.mark.parametrize("text", ["20261127120000Z", "19500101000000Z", "99991231235959Z"])
def test_generalized_time_plain_form(text: str) -> None:
    der = bytes([0x18, len(text)]) + text.encode()
    theirs = strict(der, useful.GeneralizedTime())
    assert Reader(der).generalized_time() == theirs.asDateTime  # type: ignore[union-attr]
    assert Reader(der).generalized_time().tzinfo == dt.timezone.utc


@pytest.mark.parametrize("text", ["20261127120000.5Z", "202611271200Z", "20261127120000+0100", "20261327120000Z",
                                  "2026112712000aZ", "20261127120000z"])
def test_other_generalized_time_forms_are_declined(text: str) -> None:
    with pytest.raises(NotHandled):
        Reader(bytes([0x18, len(text)]) + text.encode()).generalized_time()


def test_utf8_and_null() -> None:
    assert Reader(bytes.fromhex("0c03e282ac")).utf8() == "€"
    with pytest.raises(NotHandled):
        Reader(bytes.fromhex("0c02c328")).utf8()
    Reader(bytes.fromhex("0500")).null()
    with pytest.raises(NotHandled):
        Reader(bytes.fromhex("050100")).null()


def test_sequence_of_size_and_trailing_content() -> None:
    with pytest.raises(NotHandled):
        Reader(bytes.fromhex("3000")).sequence_of(non_empty=True)
    r = Reader(bytes.fromhex("30030201010500"))
    seq = r.enter(0x30)
    assert seq.integer() == 1
    with pytest.raises(NotHandled):
        r.done()  # the NULL after the SEQUENCE
