"""peek(): transactionID, implicitConfirm and body type read from DER without decoding,
checked against messages built and encoded with pyasn1 and against the full parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmpclient.asn1 import cmp, oids
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import parse_message
from cmpclient.message.peek import Peek, peek, transaction_continues
from cmpclient.message.pkimessage import assemble, encode_message

# The sender/recipient are directoryNames: tag [4], the same tag byte as the header's
# transactionID [4] -- peek must not take the one for the other.
BASE = HeaderBuilder().sender("CN=client,O=Example").recipient("CN=CA,O=Example")


def _message(header: HeaderBuilder, body: object) -> bytes:
    return encode_message(assemble(header.build(), body))


@pytest.mark.parametrize("body_type, body", [
    ("pkiconf", B.pkiconf_body()),
    ("error", B.error_body(fail_info=["badRequest"])),
    ("genm", B.genm_body([(oids.IT_CA_CERTS, None)])),
    ("pollRep", B.poll_rep_body([(0, 5, [])])),
    ("ip", B.cert_rep_body("ip", [])),
    ("kup", B.cert_rep_body("kup", [])),
    ("certConf", B.cert_conf_body([])),
])
def test_body_type_and_transaction_id_agree_with_the_parser(body_type: str, body: object) -> None:
    der = _message(BASE.transaction_id(b"T" * 16).sender_kid(b"kid").free_text("x"), body)
    parsed = parse_message(der)
    assert peek(der) == Peek(parsed.header.transaction_id, False, parsed.body_type) == Peek(b"T" * 16, False, body_type)


def test_implicit_confirm_among_other_general_info() -> None:
    hb = BASE.transaction_id(b"t").general_info(oids.IT_CONFIRM_WAIT_TIME, b"\x18\x0f20310506050809Z")
    assert peek(_message(hb, B.pkiconf_body())).implicit_confirm is False
    assert peek(_message(hb.implicit_confirm(), B.pkiconf_body())).implicit_confirm is True


def test_recipient_tag_is_not_taken_for_the_transaction_id() -> None:
    full = BASE.build()
    bare = cmp.PKIHeader()  # pvno, sender, recipient (a directoryName, tag [4]) and nothing else
    for name in ("pvno", "sender", "recipient"):
        bare[name] = full[name]
    der = encode_message(assemble(bare, B.pkiconf_body()))
    assert parse_message(der).header.transaction_id is None
    assert peek(der) == Peek(None, False, "pkiconf")


@pytest.mark.parametrize("garbage", [b"", b"\x30", b"\x04\x00", b"\x30\x03\x02\x01\x02", b"\x30\x80\x00\x00",
                                     bytes.fromhex("3006300402010230")])
def test_garbage_gives_absent_fields(garbage: bytes) -> None:
    assert peek(garbage) == Peek(None, False, None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_never_raises(data: bytes) -> None:
    assert isinstance(peek(data), Peek)


@given(st.integers(min_value=0, max_value=len(cmp.BODY_NAMES) - 1), st.booleans())
def test_continues_only_after_certificate_answers_and_pollrep(index: int, implicit: bool) -> None:
    name = cmp.BODY_NAMES[index]
    expected = name == "pollRep" or (name in ("ip", "cp", "kup", "ccp", "krp") and not implicit)
    assert transaction_continues(name, implicit) is expected
