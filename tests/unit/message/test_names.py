"""DN text parsing and GeneralName conversion."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from pyasn1_modules import rfc5280

from cmpclient.asn1 import codec
from cmpclient.errors import DecodeError, UsageError
from cmpclient.message.names import asn1_to_name, format_dn, general_name, general_name_text, name_to_asn1, parse_dn

EXPECTED = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        x509.NameAttribute(NameOID.COMMON_NAME, "dev1"),
    ]
)


def test_both_spellings_give_the_same_name() -> None:
    rfc = parse_dn("CN=dev1,O=Example,C=DE")
    slash = parse_dn("/C=DE/O=Example/CN=dev1")
    assert rfc == slash == EXPECTED
    # Encoding order: C first, as in both spellings' meaning.
    assert rfc.public_bytes() == EXPECTED.public_bytes()
    assert format_dn(rfc) == "CN=dev1,O=Example,C=DE"


def test_case_spaces_and_aliases() -> None:
    assert parse_dn(" cn = dev1 , o = Example , c = DE ") == EXPECTED
    assert parse_dn("/C=DE/O=Example/CN=dev1/") == EXPECTED
    assert [a.oid for a in parse_dn("emailAddress=a@b.example,ST=Bayern")] == [NameOID.STATE_OR_PROVINCE_NAME, NameOID.EMAIL_ADDRESS]


def test_escapes() -> None:
    name = parse_dn(r"CN=a\,b\+c,O=x\=y")
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a,b+c"
    assert name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "x=y"
    slash = parse_dn(r"/O=a\/b/CN=c")
    assert slash.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "a/b"


def test_multi_valued_rdn() -> None:
    name = parse_dn("CN=a+UID=u1,O=x")
    assert len(name.rdns) == 2
    assert {a.oid for a in name.rdns[1]} == {NameOID.COMMON_NAME, NameOID.USER_ID}


def test_dotted_oid_attribute() -> None:
    name = parse_dn("2.5.4.3=dotted")
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dotted"


def test_null_dn() -> None:
    assert parse_dn("") == x509.Name([])
    assert parse_dn("   ") == x509.Name([])
    assert codec.encode(name_to_asn1("")) == b"\x30\x00"
    assert general_name_text(general_name("")) == "NULL-DN"


@pytest.mark.parametrize(
    "text, message",
    [
        ("XX=1", "unknown DN attribute 'XX'"),
        ("CN=a,FOO=b", "unknown DN attribute 'FOO'"),
        ("CN", "expected TYPE=value"),
        ("C=DEU", "two letters"),
    ],
)
def test_bad_dn_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_dn(text)
    if "unknown" in message:
        assert "dotted OID" in info.value.hint


def test_name_passthrough() -> None:
    assert parse_dn(EXPECTED) is EXPECTED


def test_name_to_asn1_and_back() -> None:
    value = name_to_asn1("CN=dev1,O=Example,C=DE")
    assert codec.encode(value) == EXPECTED.public_bytes()
    assert asn1_to_name(value) == EXPECTED


@pytest.mark.parametrize(
    "value, tag, text",
    [
        ("CN=x", 0xA4, "CN=x"),
        (x509.DirectoryName(x509.Name.from_rfc4514_string("CN=y")), 0xA4, "CN=y"),
        (x509.RFC822Name("a@b.example"), 0x81, "rfc822Name:a@b.example"),
        (x509.DNSName("ca.example"), 0x82, "dNSName:ca.example"),
        (x509.UniformResourceIdentifier("http://ca.example/"), 0x86, "uniformResourceIdentifier:http://ca.example/"),
    ],
)
def test_general_name(value: object, tag: int, text: str) -> None:
    gn = general_name(value)  # type: ignore[arg-type]
    der = codec.encode(gn)
    assert der[0] == tag
    assert general_name_text(codec.decode(der, rfc5280.GeneralName())) == text


def test_general_name_unsupported() -> None:
    import ipaddress

    with pytest.raises(UsageError, match="unsupported GeneralName"):
        general_name(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def _name_with_value(value_der: bytes) -> rfc5280.Name:
    atv = b"\x06\x03\x55\x04\x03" + value_der
    atv = codec.der_header(0x30, len(atv)) + atv
    rdn = codec.der_header(0x31, len(atv)) + atv
    return codec.decode(codec.der_header(0x30, len(rdn)) + rdn, rfc5280.Name())


def test_received_name_string_types_kept() -> None:
    name = asn1_to_name(_name_with_value(b"\x13\x03abc"))  # PrintableString
    assert name.public_bytes() == codec.encode(_name_with_value(b"\x13\x03abc"))


def test_received_name_with_bad_utf8_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="invalid UTF8String"):
        asn1_to_name(_name_with_value(b"\x0c\x02\xc3\x28"))


def test_received_name_with_unsupported_string_type_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="unsupported string type 0x04"):
        asn1_to_name(_name_with_value(b"\x04\x01a"))


@pytest.mark.parametrize("cn", ["", "x" * 65])
def test_received_name_cryptography_would_refuse_is_shown_as_sent(cn: str) -> None:
    raw = cn.encode()
    name = asn1_to_name(_name_with_value(codec.der_header(0x0C, len(raw)) + raw))
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
