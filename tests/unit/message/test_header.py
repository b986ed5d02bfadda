"""HeaderBuilder (RFC 9810 section 5.1.1)."""

from __future__ import annotations

import datetime as _dt

import pytest
from cryptography import x509

from cmpclient.asn1 import cmp, codec, oids
from cmpclient.errors import UsageError
from cmpclient.message.header import HeaderBuilder, generalized_time, has_implicit_confirm
from cmpclient.message.parse import read_header

BASE = HeaderBuilder().sender("CN=client,O=Example").recipient("/O=Example/CN=CA")


def _roundtrip(header: cmp.PKIHeader) -> cmp.PKIHeader:
    der = codec.encode(header)
    return codec.decode(der, cmp.PKIHeader())


def test_defaults() -> None:
    before = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    h = read_header(_roundtrip(BASE.build()))
    after = _dt.datetime.now(_dt.timezone.utc)
    assert h.pvno == 2  # cmp2000 unless a CMPv3 feature is used (RFC 9810 section 7)
    assert len(h.transaction_id) == 16 and len(h.sender_nonce) == 16
    assert h.recip_nonce is None and h.sender_kid is None and h.protection_alg is None
    assert before <= h.message_time <= after
    assert h.sender_name == x509.Name.from_rfc4514_string("CN=client,O=Example")
    assert h.recipient_name == x509.Name.from_rfc4514_string("CN=CA,O=Example")
    assert not h.implicit_confirm


def test_random_ids_differ_between_builds() -> None:
    a, b = read_header(BASE.build()), read_header(BASE.build())
    assert a.transaction_id != b.transaction_id
    assert a.sender_nonce != b.sender_nonce
    assert a.transaction_id != a.sender_nonce


def test_every_field() -> None:
    when = _dt.datetime(2031, 5, 6, 7, 8, 9, 999, tzinfo=_dt.timezone(_dt.timedelta(hours=2)))
    h = (
        BASE.pvno(3)
        .message_time(when)
        .sender_kid(b"kid")
        .recip_kid(b"rkid")
        .transaction_id(b"T" * 16)
        .sender_nonce(b"S" * 16)
        .recip_nonce(b"R" * 16)
        .free_text("one", "zwei")
        .implicit_confirm()
        .general_info(oids.IT_CONFIRM_WAIT_TIME, b"\x18\x0f20310506050809Z")
        .build()
    )
    assert str(h["messageTime"]) == "20310506050809Z"  # UTC, whole seconds
    parsed = read_header(_roundtrip(h))
    assert parsed.pvno == 3
    assert parsed.message_time == _dt.datetime(2031, 5, 6, 5, 8, 9, tzinfo=_dt.timezone.utc)
    assert (parsed.sender_kid, parsed.recip_kid) == (b"kid", b"rkid")
    assert (parsed.transaction_id, parsed.sender_nonce, parsed.recip_nonce) == (b"T" * 16, b"S" * 16, b"R" * 16)
    assert parsed.free_text == ("one", "zwei")
    assert parsed.general_info == (
        (oids.IT_IMPLICIT_CONFIRM, b"\x05\x00"),
        (oids.IT_CONFIRM_WAIT_TIME, b"\x18\x0f20310506050809Z"),
    )
    assert parsed.implicit_confirm and has_implicit_confirm(h)


def test_message_time_off() -> None:
    h = BASE.message_time(False).build()
    assert not h["messageTime"].isValue


def test_protection_alg_goes_into_explicit_slot() -> None:
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280

    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = univ.ObjectIdentifier(oids.PASSWORD_BASED_MAC)
    h = _roundtrip(BASE.protection_alg(alg).build())
    assert read_header(h).protection_alg == oids.PASSWORD_BASED_MAC


def test_null_dn_and_general_names() -> None:
    h = read_header(_roundtrip(HeaderBuilder().sender("").recipient(x509.DNSName("ca.example")).build()))
    assert h.sender == "NULL-DN" and h.sender_name == x509.Name([])
    assert h.recipient_name is None and h.recipient == "dNSName:ca.example"


@pytest.mark.parametrize(
    "setter, value",
    [
        ("pvno", 3),
        ("sender", "CN=other"),
        ("recipient", "CN=other"),
        ("message_time", False),
        ("sender_kid", b"k"),
        ("recip_kid", b"k"),
        ("transaction_id", b"t"),
        ("sender_nonce", b"n"),
        ("recip_nonce", b"n"),
        ("free_text", "x"),
    ],
)
def test_setting_twice_refused_naming_the_field(setter: str, value: object) -> None:
    once = getattr(BASE, setter)(value) if setter not in ("sender", "recipient") else BASE
    with pytest.raises(UsageError, match=rf"HeaderBuilder: {setter} is already set"):
        getattr(once, setter)(value)


def test_builder_is_immutable() -> None:
    b = HeaderBuilder()
    b2 = b.sender("CN=a")
    assert b2 is not b
    with pytest.raises(UsageError, match="cannot build without sender, recipient"):
        b.build()


def test_general_info_twice_refused() -> None:
    with pytest.raises(UsageError, match="generalInfo implicitConfirm is already set"):
        BASE.implicit_confirm().implicit_confirm()


@pytest.mark.parametrize(
    "builder, missing",
    [
        (HeaderBuilder(), "sender, recipient"),
        (HeaderBuilder().sender("CN=a"), "recipient"),
        (HeaderBuilder().recipient("CN=a"), "sender"),
    ],
)
def test_build_without_sender_or_recipient_refused(builder: HeaderBuilder, missing: str) -> None:
    with pytest.raises(UsageError, match=f"cannot build without {missing}$"):
        builder.build()


def test_bad_values_refused() -> None:
    with pytest.raises(UsageError, match="pvno must be 1, 2 or 3"):
        BASE.pvno(4)
    with pytest.raises(UsageError, match="transactionID must not be empty"):
        BASE.transaction_id(b"")
    with pytest.raises(UsageError, match="senderNonce must not be empty"):
        BASE.sender_nonce(b"")
    with pytest.raises(UsageError, match="timezone-aware"):
        BASE.message_time(_dt.datetime(2030, 1, 1)).build()
    with pytest.raises(UsageError, match="timezone-aware"):
        generalized_time(_dt.datetime(2030, 1, 1))
