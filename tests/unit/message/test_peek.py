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
    p = peek(der)
    assert p[:3] == (parsed.header.transaction_id, False, parsed.body_type) == (b"T" * 16, False, body_type)
    assert p.rejected is False and p.check_after == (5 if body_type == "pollRep" else None)  # pollRep: checkAfter 5


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


@given(st.integers(min_value=0, max_value=len(cmp.BODY_NAMES) - 1), st.booleans(), st.booleans())
def test_continues_only_after_certificate_answers_and_pollrep(index: int, implicit: bool, rejected: bool) -> None:
    name = cmp.BODY_NAMES[index]
    expected = name == "pollRep" or (name in ("ip", "cp", "kup", "ccp", "krp") and not implicit and not rejected)
    assert transaction_continues(name, implicit, rejected) is expected



@pytest.mark.parametrize("statuses, ca_pubs, rejected", [
    (["rejection"], False, True),
    (["rejection", "rejection"], True, True),  # with caPubs in front
    (["rejection", "accepted"], False, False),
    (["accepted"], False, False),
    (["waiting"], False, False),
    ([], False, False),  # no response at all: nothing was rejected
])
def test_rejected_when_every_certificate_response_is_a_rejection(statuses: list[str], ca_pubs: bool,
                                                                 rejected: bool) -> None:
    from cmpclient.message.parse import CertRepContent

    responses = [B.cert_response(i, status, fail_info=["badPOP"] if status == "rejection" else (),
                                 texts=["no"] if status == "rejection" else ()) for i, status in enumerate(statuses)]
    pubs = [_a_certificate_der()] if ca_pubs else []
    for kind in ("ip", "cp", "kup", "ccp"):
        der = _message(BASE.transaction_id(b"r"), B.cert_rep_body(kind, responses, ca_pubs=pubs))
        content = parse_message(der).content
        assert isinstance(content, CertRepContent) and len(content.responses) == len(statuses)
        assert peek(der) == Peek(b"r", False, kind, rejected)


def test_an_error_body_is_not_a_rejected_certificate_answer() -> None:
    assert peek(_message(BASE, B.error_body(fail_info=["badRequest"]))).rejected is False


def _a_certificate_der() -> bytes:
    from pathlib import Path

    from cmpclient.keys import load_certificates
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = sorted((Path(__file__).resolve().parents[3] / "fixtures").rglob("*.pem"))
    for path in pem:
        try:
            certs = load_certificates(path)
        except Exception:  # noqa: BLE001 - keys and other PEM files
            continue
        if certs:
            return certs[0].public_bytes(Encoding.DER)
    raise AssertionError("no certificate under fixtures/")


@pytest.mark.parametrize("entries, longest", [
    ([(0, 5, [])], 5),
    ([(0, 5, []), (1, 300, ["busy", "later"]), (2, 7, [])], 300),
    ([(0, 0, [])], 0),
    ([(0, 2**40, [])], 2**40),
])
def test_pollrep_gives_its_longest_check_after(entries, longest) -> None:
    p = peek(_message(BASE.transaction_id(b"t"), B.poll_rep_body(entries)))
    assert p == Peek(b"t", False, "pollRep", False, longest)


def test_check_after_of_openssl_s_pollrep_and_only_of_a_pollrep() -> None:
    # made by openssl's mock (-check_after 0), see tests/vectors/manifest.json
    from pathlib import Path

    vectors = Path(__file__).resolve().parents[2] / "vectors" / "openssl" / "polling_pbm"
    seen = {}
    for rsp in sorted(vectors.glob("rsp*.der")):
        p = peek(rsp.read_bytes())
        seen[p.body_type] = p.check_after
    assert seen == {"ip": None, "pollRep": 0, "pkiconf": None}
