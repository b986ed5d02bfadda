"""Strict DER helpers of :mod:`cmpclient.asn1.codec`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.type import char, univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import cmp, codec, crmf
from cmpclient.errors import DecodeError

REPO = Path(__file__).resolve().parents[3]
VECTOR_FILES = sorted((REPO / "tests" / "vectors" / "openssl").rglob("*.der"))
VECTORS = [p.read_bytes() for p in VECTOR_FILES]
SMALL = (REPO / "tests/vectors/openssl/genm_pbm_default/req1.der").read_bytes()


def _content(der: bytes) -> bytes:
    _, start, end = codec.read_tlv(der, 0)
    return der[start:end]


# --- decode: strictness --------------------------------------------------------------------


def test_decode_vector_roundtrip() -> None:
    msg = codec.decode(SMALL, cmp.PKIMessage())
    assert msg["body"].getName() == "genm"
    assert codec.encode(msg) == SMALL


@pytest.mark.parametrize("extra", [b"\x00", b"\x30\x00", SMALL])
def test_trailing_bytes_refused(extra: bytes) -> None:
    with pytest.raises(DecodeError, match="trailing") as info:
        codec.decode(SMALL + extra, cmp.PKIMessage())
    assert f"{len(extra)} trailing byte" in str(info.value)


def test_indefinite_length_refused_as_not_der() -> None:
    ber = b"\x30\x80" + _content(SMALL) + b"\x00\x00"
    with pytest.raises(DecodeError, match="not DER") as info:
        codec.decode(ber, cmp.PKIMessage())
    assert "BER" in (info.value.hint or "")


def test_nested_indefinite_length_refused_as_not_der() -> None:
    # CertRequest { certReqId 5, certTemplate {} } with the inner template's length indefinite.
    value = b"\x30\x07\x02\x01\x05\x30\x80\x00\x00"
    assert codec.decode(b"\x30\x05\x02\x01\x05\x30\x00", crmf.CertRequest())["certReqId"] == 5
    with pytest.raises(DecodeError, match="not DER"):
        codec.decode(value, crmf.CertRequest())


def test_non_minimal_length_refused_as_not_der() -> None:
    content = _content(SMALL)
    assert len(content) < 0x10000
    ber = b"\x30\x83" + len(content).to_bytes(3, "big") + content
    with pytest.raises(DecodeError, match=r"not DER \(re-encoding differs at byte offset 1\)"):
        codec.decode(ber, cmp.PKIMessage())


@pytest.mark.parametrize(
    "ber, spec",
    [
        (b"\x02\x81\x01\x05", univ.Integer()),  # long form for a short length
        (b"\x02\x02\x00\x05", univ.Integer()),  # non-minimal integer
        (b"\x01\x01\x01", univ.Boolean()),  # TRUE must be 0xFF
    ],
)
def test_other_ber_forms_refused_as_not_der(ber: bytes, spec: object) -> None:
    with pytest.raises(DecodeError, match="not DER"):
        codec.decode(ber, spec)  # type: ignore[arg-type]
    # Not strict: accepted (used for values we build ourselves).
    codec.decode(ber, spec, strict=False)  # type: ignore[arg-type]


def test_empty_input_refused() -> None:
    with pytest.raises(DecodeError, match="empty input"):
        codec.decode(b"", cmp.PKIMessage())


def test_non_bytes_refused() -> None:
    with pytest.raises(DecodeError, match="expected bytes"):
        codec.decode("30 00", cmp.PKIMessage())  # type: ignore[arg-type]


def test_bytearray_and_memoryview_accepted() -> None:
    assert codec.encode(codec.decode(bytearray(SMALL), cmp.PKIMessage())) == SMALL
    assert codec.encode(codec.decode(memoryview(SMALL), cmp.PKIMessage())) == SMALL


@pytest.mark.parametrize("cut", [1, 2, 10, len(SMALL) // 2, len(SMALL) - 1])
def test_truncated_input_refused(cut: int) -> None:
    with pytest.raises(DecodeError, match="not a valid PKIMessage"):
        codec.decode(SMALL[:cut], cmp.PKIMessage())


def test_oversized_input_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_MESSAGE_SIZE", len(SMALL) - 1)
    with pytest.raises(DecodeError, match="larger than"):
        codec.decode(SMALL, cmp.PKIMessage())


def test_what_names_the_structure() -> None:
    with pytest.raises(DecodeError, match="^my message: empty input"):
        codec.decode(b"", cmp.PKIMessage(), what="my message")


def test_wrong_structure_refused() -> None:
    with pytest.raises(DecodeError, match="not a valid PKIMessage"):
        codec.decode(b"\x02\x01\x05", cmp.PKIMessage())


# pyasn1 writes whole schema reprs into its messages; these reach the CA's statusString.
@pytest.mark.parametrize("der, expected", [
    (b"hello", "not a valid PKIMessage: truncated: the data ends inside a value"),
    (bytes.fromhex("3003020105"), "not a valid PKIMessage: found INTEGER where PKIHeader was expected"),
    (bytes.fromhex("0c03616263"), "not a valid PKIMessage: found UTF8String where PKIMessage was expected"),
    (bytes.fromhex("a0020500"), "not a valid PKIMessage: found [0] NULL where PKIMessage was expected"),
    (bytes.fromhex("6103020105"), "not a valid PKIMessage: found [APPLICATION 1] INTEGER where PKIMessage was expected"),
    (bytes.fromhex("a106a104a1020500"), "not a valid PKIMessage: found [1] [1] [1] ... where PKIMessage was expected"),
    (bytes.fromhex("30053003020102"), "not a valid PKIMessage: PKIHeader lacks a required component"),
    # a CHOICE (the header's sender, a GeneralName) lists its alternatives' types, once each
    (bytes.fromhex("300a3008020102a403040100"), "not a valid PKIMessage: found OCTET STRING where RDNSequence was expected"),
])
def test_pyasn1_errors_become_short_sentences(der: bytes, expected: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(der, cmp.PKIMessage())
    assert str(info.value) == expected


def test_misplaced_component_in_a_body_names_the_choice() -> None:
    # An ir body ([0]) holding an INTEGER instead of CertReqMessages; then an unknown body tag.
    header = codec.encode(codec.decode(SMALL, cmp.PKIMessage())["header"])
    # pyasn1 reads an unknown constructed tag as an explicit one around what follows
    for body, expected in ((bytes.fromhex("a003020105"), "found [0] INTEGER where PKIBody was expected"),
                           (bytes.fromhex("bf3f020500"), "found [63] NULL where PKIBody was expected")):
        with pytest.raises(DecodeError) as info:
            codec.decode(codec.der_header(0x30, len(header) + len(body)) + header + body, cmp.PKIMessage())
        assert str(info.value) == f"not a valid PKIMessage: {expected}"


def test_encode_incomplete_value_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="cannot DER-encode PKIStatusInfo"):
        codec.encode(cmp.PKIStatusInfo())


# --- raw TLV helpers -------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000])
def test_der_header_matches_pyasn1(length: int) -> None:
    value = b"\x00" * length
    assert codec.der_header(0x04, length) + value == codec.encode(univ.OctetString(value))


def test_read_tlv() -> None:
    tag, start, end = codec.read_tlv(SMALL, 0)
    assert (tag, end) == (0x30, len(SMALL))
    assert SMALL[:start] == codec.der_header(0x30, len(SMALL) - start)
    with pytest.raises(DecodeError, match="truncated"):
        codec.read_tlv(SMALL[:-1], 0)
    with pytest.raises(DecodeError, match="truncated"):
        codec.read_tlv(b"\x30", 0)
    with pytest.raises(DecodeError, match="indefinite"):
        codec.read_tlv(b"\x30\x80\x00\x00", 0)
    with pytest.raises(DecodeError, match="multi-byte tags"):
        codec.read_tlv(b"\x1f\x81\x00\x00", 0)


# --- protected_part --------------------------------------------------------------------------


def _hand_made_message(with_protection: bool = True) -> tuple[bytes, bytes, bytes]:
    """A PKIMessage written byte by byte: (message DER, header DER, body DER)."""
    dn_cn = bytes.fromhex("300f310d300b06035504030c0474657374")  # Name: CN=test
    sender = b"\xa4" + bytes([len(dn_cn)]) + dn_cn  # GeneralName directoryName [4]
    recipient = bytes.fromhex("a4023000")  # NULL-DN
    header_content = b"\x02\x01\x02" + sender + recipient + b"\xa4\x06\x04\x04tid1"
    header = codec.der_header(0x30, len(header_content)) + header_content
    body = bytes.fromhex("b3020500")  # pkiconf [19] EXPLICIT NULL
    content = header + body
    if with_protection:
        content += bytes.fromhex("a0050303") + b"\x00\xab\xcd"
    return codec.der_header(0x30, len(content)) + content, header, body


@pytest.mark.parametrize("with_protection", [True, False])
def test_protected_part_on_hand_made_message(with_protection: bool) -> None:
    der, header, body = _hand_made_message(with_protection)
    msg = codec.decode(der, cmp.PKIMessage())
    assert msg["body"].getName() == "pkiconf"
    assert bytes(msg["header"]["transactionID"]) == b"tid1"
    expected = codec.der_header(0x30, len(header) + len(body)) + header + body
    assert codec.protected_part(der) == expected
    part = cmp.ProtectedPart()
    part["header"] = msg["header"]
    part["body"] = msg["body"]
    assert codec.encode(part) == expected


def test_protected_part_long_form_length() -> None:
    der = (REPO / "tests/vectors/openssl/ir_sig_rsa/rsp1.der").read_bytes()
    part = codec.protected_part(der)
    assert part[:2] == b"\x30\x82"
    msg = codec.decode(der, cmp.PKIMessage())
    assert part == codec.der_header(0x30, len(part) - 4) + codec.encode(msg["header"]) + codec.encode(msg["body"])


def test_protected_part_of_truncated_message_refused() -> None:
    der, _, _ = _hand_made_message()
    with pytest.raises(DecodeError):
        codec.protected_part(der[:20])


# --- value_from_der / set_from_der ---------------------------------------------------------


def test_value_from_der_implicit_slot() -> None:
    # CertTemplate.publicKey is [6] IMPLICIT SubjectPublicKeyInfo.
    spki_der = bytes.fromhex("302a300506032b6570032100") + bytes(range(32))
    template = crmf.CertTemplate()
    slot = template.componentType["publicKey"].asn1Object
    value = codec.value_from_der(slot, spki_der)
    template["publicKey"] = value
    encoded = codec.encode(template)
    assert encoded[2] == 0xA6  # the SEQUENCE tag replaced by [6] constructed
    assert encoded[2 + 1 :] == spki_der[1:]
    assert bytes(template["publicKey"]["subjectPublicKey"].asOctets()) == bytes(range(32))


def test_value_from_der_explicit_slot() -> None:
    # CertTemplate.subject is [5] EXPLICIT Name (Name is a CHOICE).
    name_der = bytes.fromhex("300f310d300b06035504030c0474657374")
    template = crmf.CertTemplate()
    template["subject"] = codec.value_from_der(template.componentType["subject"].asn1Object, name_der)
    encoded = codec.encode(template)
    assert encoded[2:] == b"\xa5" + bytes([len(name_der)]) + name_der


def test_value_from_der_untagged_any_slot() -> None:
    # PKIBody.p10cr is [4] EXPLICIT over an opaque ANY: the DER is wrapped once.
    csr_like = b"\x30\x03\x02\x01\x00"
    body = cmp.PKIBody()
    body["p10cr"] = codec.value_from_der(body.componentType["p10cr"].asn1Object, csr_like)
    assert codec.encode(body) == b"\xa4\x05" + csr_like


def test_value_from_der_double_explicit() -> None:
    # PKIBody.error [23] EXPLICIT ErrorMsgContent, a plain SEQUENCE.
    content = cmp.ErrorMsgContent()
    content["pKIStatusInfo"]["status"] = 2
    der = codec.encode(content)
    body = cmp.PKIBody()
    body["error"] = codec.value_from_der(body.componentType["error"].asn1Object, der)
    assert codec.encode(body) == codec.der_header(0xB7, len(der)) + der


def test_set_from_der_extensions() -> None:
    details = cmp.RevDetails()
    details["certDetails"]["serialNumber"] = 5
    ext = rfc5280.Extension()
    ext["extnID"] = univ.ObjectIdentifier("2.5.29.21")
    ext["extnValue"] = b"\x0a\x01\x01"
    exts_der = codec.der_header(0x30, len(codec.encode(ext))) + codec.encode(ext)
    codec.set_from_der(details, "crlEntryDetails", exts_der)
    assert codec.encode(details).endswith(exts_der)


# --- opaque EnvelopedData helpers ------------------------------------------------------------


def test_opaque_enveloped_data_helpers_round_trip() -> None:
    from cmpclient.keys.encrypted import PasswordRecipient, envelope

    env = envelope(b"private key", recipients=[PasswordRecipient(b"password-1", iterations=1000)])
    content = codec.opaque_content(env)
    assert codec.der_header(0x30, len(content)) + content == env
    # As [0] IMPLICIT EnvelopedData in an EncryptedKey: decode, then restore the full DER.
    ek = codec.decode(codec.der_header(0xA0, len(content)) + content, crmf.EncryptedKey())
    assert ek.getName() == "envelopedData"
    assert codec.enveloped_data_der(ek["envelopedData"]) == env
    assert codec.encode(ek)[0] == 0xA0


def test_opaque_content_refuses_non_sequence_and_trailing() -> None:
    with pytest.raises(DecodeError, match="exactly one DER SEQUENCE"):
        codec.opaque_content(b"\x04\x01\x00")
    with pytest.raises(DecodeError, match="exactly one DER SEQUENCE"):
        codec.opaque_content(b"\x30\x00\x00")


def test_any_der() -> None:
    value = univ.Any(b"\x0c\x02hi")
    assert codec.any_der(value) == b"\x0c\x02hi"
    assert str(codec.decode(codec.any_der(value), char.UTF8String())) == "hi"


# --- fuzzing: decode() raises DecodeError and nothing else ----------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        codec.decode(data, cmp.PKIMessage())
    except DecodeError:
        pass


@FUZZ
@given(st.binary(min_size=0, max_size=200))
def test_random_sequence_only_raises_decode_error(data: bytes) -> None:
    # Start with a plausible SEQUENCE header so the decoder goes deeper than the first byte.
    try:
        codec.decode(codec.der_header(0x30, len(data)) + data, cmp.PKIMessage())
    except DecodeError:
        pass


@FUZZ
@given(
    st.sampled_from(range(len(VECTORS))),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)), min_size=1, max_size=4),
)
def test_bit_flipped_vectors_only_raise_decode_error(index: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(VECTORS[index])
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    try:
        msg = codec.decode(bytes(data), cmp.PKIMessage())
    except DecodeError:
        return
    # Accepted: then it must be DER that re-encodes to exactly these bytes.
    assert codec.encode(msg) == bytes(data)


@FUZZ
@given(
    st.sampled_from(range(len(VECTORS))),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)), min_size=1, max_size=3),
)
def test_bit_flipped_vectors_parse_only_raises_decode_error(index: int, flips: list[tuple[int, int]]) -> None:
    from cmpclient.message.parse import parse_message

    data = bytearray(VECTORS[index])
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    try:
        parse_message(bytes(data))
    except DecodeError:
        pass


@pytest.mark.parametrize(
    "time_text",
    [b"2026!127100135Z", b"2026112710013xZ", b"20261327100135Z"],
)
def test_parse_message_malformed_message_time_is_decode_error(time_text: bytes) -> None:
    # Found by the fuzz test above: pyasn1's asDateTime error escaped parse_message.
    from cmpclient.message.parse import parse_message

    der = (REPO / "tests/vectors/openssl/genm_pbm_default/req1.der").read_bytes()
    msg = codec.decode(der, cmp.PKIMessage())
    original = str(msg["header"]["messageTime"]).encode()
    assert len(original) == 15
    broken = der.replace(original, time_text, 1)
    with pytest.raises(DecodeError, match="messageTime"):
        parse_message(broken)


# --- INTEGER: the fewest octets (pyasn1 0.6 alone writes -128 as ff80) ------------------------


@pytest.mark.parametrize("value, der", [(-128, "020180"), (-32768, "02028000"), (-129, "0202ff7f"), (-1, "0201ff"),
                                        (0, "020100"), (127, "02017f"), (128, "02020080"), (-2**63, "02088000000000000000")])
def test_integer_encoding_is_minimal_and_decodes_strictly(value: int, der: str) -> None:
    assert codec.encode(univ.Integer(value)).hex() == der
    assert int(codec.decode(bytes.fromhex(der), univ.Integer())) == value
    assert int(codec.decode(bytes.fromhex("0a" + der[2:]), univ.Enumerated())) == value


@pytest.mark.parametrize("der", ["0202ff80", "0203ff8000", "02020005", "0202ffff"])
def test_integer_with_a_redundant_octet_is_not_der(der: str) -> None:
    with pytest.raises(DecodeError, match="not DER"):
        codec.decode(bytes.fromhex(der), univ.Integer())


@FUZZ
@given(st.binary(min_size=1, max_size=200))
def test_decode_errors_carry_no_schema_reprs(data: bytes) -> None:
    try:
        codec.decode(codec.der_header(0x30, len(data)) + data, cmp.PKIMessage())
    except DecodeError as exc:
        text = str(exc)
        assert "object" not in text and "<" not in text and len(text) <= 250, text


# --- OBJECT IDENTIFIER and AlgorithmIdentifier written without pyasn1 -------------------------


def _pyasn1_oid_der(oid: object) -> bytes:
    return codec.encode(univ.ObjectIdentifier(oid))


def _pyasn1_alg_der(oid: str, params: bytes | None) -> bytes:
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = univ.ObjectIdentifier(oid)
    if params is not None:
        alg["parameters"] = univ.Any(params)
    return codec.encode(alg)


_ARC = st.one_of(st.integers(0, 200), st.integers(0, 2**32), st.integers(0, 2**140))
_DOTTED = st.one_of(
    st.tuples(st.integers(0, 1), st.integers(0, 39), st.lists(_ARC, max_size=12)),
    st.tuples(st.just(2), _ARC, st.lists(_ARC, max_size=12)),
).map(lambda t: ".".join(map(str, (t[0], t[1], *t[2]))))


@pytest.mark.parametrize("oid", [
    "0.0", "0.39", "1.0", "1.39", "2.0", "2.39", "2.40", "2.47", "2.48", "2.127", "2.128", "2.999", "2.999.3",
    "2.16383", "2.16384", "2.25.329800735698586629295641978511506172918", "1.2.840.113549.1.1.11",
    "1.2.840.113533.7.66.13", "1.3.6.1.5.5.7.4.13", "2.16.840.1.101.3.4.2.1", "1.3.6.1.4.1.311.21.20",
    "1.2.127.128.255.256.16383.16384.2097151.2097152", "1.2." + str(2**64 - 1), "0.0.0.0",
])
def test_oid_der_equals_pyasn1(oid: str) -> None:
    assert codec.oid_der(oid) == _pyasn1_oid_der(oid)
    assert codec._oid_der_written(oid) == _pyasn1_oid_der(oid)  # written here, not by the fallback
    assert str(codec.decode(codec.oid_der(oid), univ.ObjectIdentifier())) == oid


@settings(max_examples=400, deadline=None)
@given(_DOTTED)
def test_oid_der_equals_pyasn1_on_random_oids(oid: str) -> None:
    assert codec._oid_der_written(oid) == _pyasn1_oid_der(oid)
    assert codec.oid_der(oid) == _pyasn1_oid_der(oid)


@pytest.mark.parametrize("oid", ["1.02.3", "1..2.3", "1.2.3.", ".1.2", "01.2", "1.2.03", "\uff11.2", "1 .2", "1.2_0.3"])
def test_oid_der_other_spellings_pyasn1_reads_are_left_to_it(oid: str) -> None:
    assert codec._oid_der_written(oid) is None
    assert codec.oid_der(oid) == _pyasn1_oid_der(oid)


@pytest.mark.parametrize("oid", ["1", "", "0.40", "1.40", "3.1", "1.2.-3", "1.2.a", "1.2.3x", None, 1.5])
def test_oid_der_errors_are_pyasn1s(oid: object) -> None:
    with pytest.raises(Exception) as expected:
        _pyasn1_oid_der(oid)
    with pytest.raises(type(expected.value)) as got:
        codec.oid_der(oid)  # type: ignore[arg-type]
    assert str(got.value) == str(expected.value)


def test_oid_der_of_a_pyasn1_or_tuple_value() -> None:
    assert codec.oid_der(univ.ObjectIdentifier("1.2.3")) == codec.oid_der((1, 2, 3)) == codec.oid_der("1.2.3")  # type: ignore[arg-type]


_PARAMS = [None, b"\x05\x00", b"\x04\x03abc", b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07",
           b"\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00", b"\x02\x01\x05",
           b"\x30\x81\x80" + b"\x04\x7e" + bytes(126)]


@pytest.mark.parametrize("params", _PARAMS)
@pytest.mark.parametrize("oid", ["1.2.840.10045.4.3.2", "1.2.840.113549.1.1.11", "2.16.840.1.101.3.4.2.1", "2.999.12345678901234567890"])
def test_algorithm_identifier_der_equals_pyasn1(oid: str, params: bytes | None) -> None:
    der = codec.algorithm_identifier_der(oid, params)
    assert der == _pyasn1_alg_der(oid, params)
    alg = codec.decode(der, rfc5280.AlgorithmIdentifier())
    assert str(alg["algorithm"]) == oid
    assert (bytes(alg["parameters"]) if alg["parameters"].isValue else None) == params


@settings(max_examples=150, deadline=None)
@given(_DOTTED, st.one_of(st.none(), st.just(b"\x05\x00"), st.binary(max_size=300).map(lambda b: codec.der_header(0x04, len(b)) + b)))
def test_algorithm_identifier_der_equals_pyasn1_on_random_input(oid: str, params: bytes | None) -> None:
    assert codec.algorithm_identifier_der(oid, params) == _pyasn1_alg_der(oid, params)
