"""The fast reader (message/fastparse.py, asn1/der.py) against the full pyasn1 decoder.

The property that makes the fast reader safe: whatever it accepts, the full strict decoder
accepts too, with the same ParsedMessage.  It may decline more (then the full decoder
decides); it may never accept what the full decoder refuses, nor read it differently.
Checked on openssl's messages, on messages we build with every header field and body
variant the reader handles, on structure-aware random messages and on random mutations.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mutations import EDITS, mutate

from cmpclient.asn1 import codec, oids
from cmpclient.errors import DecodeError
from cmpclient.message import body as B
from cmpclient.message.fastparse import fast_parse
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import parse_decoded, parse_message
from cmpclient.message.pkimessage import decode_message
from cmpclient.message.status import build_status_info
from cmpclient.protection import MACProtection, PBMParams, protect_der

ROOT = Path(__file__).resolve().parents[3]
VECTORS = sorted((ROOT / "tests" / "vectors" / "openssl").glob("*/rsp*.der"))
NOW = dt.datetime(2026, 11, 27, 20, 30, 5, tzinfo=dt.timezone.utc)
PROTECTION = MACProtection(b"secret", PBMParams.new(iterations=10), sender_kid=b"kid")


def full(der: bytes):
    """What the full decoder makes of ``der`` (strict DER), or None when it refuses."""
    try:
        return parse_decoded(der, decode_message(der))
    except DecodeError:
        return None


def assert_agrees(der: bytes) -> object:
    """The fast reader's result equals the full decoder's, or the fast reader declined."""
    fast = fast_parse(der)
    if fast is None:
        return None
    slow = full(der)
    assert slow is not None, f"the fast reader accepted what the full decoder refuses: {der.hex()}"
    assert fast == slow
    assert fast.header == slow.header and fast.content == slow.content and fast.extra_certs == slow.extra_certs
    assert fast.decoded is None  # decoded lazily ...
    assert codec.encode(fast.message) == der  # ... to the same value
    if slow.protected:
        from pyasn1_modules import rfc5280

        alg = rfc5280.AlgorithmIdentifier()
        alg["algorithm"] = slow.message["header"]["protectionAlg"]["algorithm"]
        if slow.message["header"]["protectionAlg"]["parameters"].isValue:
            alg["parameters"] = slow.message["header"]["protectionAlg"]["parameters"]
        assert fast.protection_alg_der == codec.encode(alg)
        assert fast.protection_value == slow.message["protection"].asOctets()
    else:
        assert fast.protection_alg_der is None and fast.protection_value is None
    return fast


def certificate() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    for path in sorted((ROOT / "fixtures").rglob("*.pem")):
        text = path.read_bytes()
        if b"BEGIN CERTIFICATE" in text:
            return x509.load_pem_x509_certificates(text)[0].public_bytes(Encoding.DER)
    raise AssertionError("no certificate among the fixtures")


CERT = certificate()


def message(header: HeaderBuilder, body_der: bytes, *, protect: bool = True, extra: list[bytes] | None = None) -> bytes:
    if protect:
        header = header.protection_alg(PROTECTION.algorithm_identifier()).sender_kid(b"kid")
    return protect_der(header.build_der(), body_der, PROTECTION if protect else None, extra or [])


def base(sender: object = "CN=Test CA,O=Example,C=DE", recipient: object = "CN=client") -> HeaderBuilder:
    return (HeaderBuilder().sender(sender).recipient(recipient)
            .message_time(NOW).transaction_id(b"T" * 16).sender_nonce(b"S" * 16).recip_nonce(b"R" * 16))


BODIES = {
    "ip": lambda: B.cert_rep_body("ip", [B.cert_response(0, cert_der=CERT, as_der=True)], as_der=True),
    "cp-caPubs": lambda: B.cert_rep_body("cp", [B.cert_response(0, cert_der=CERT, as_der=True)], ca_pubs=[CERT, CERT],
                                         as_der=True),
    "kup-two": lambda: B.cert_rep_body("kup", [B.cert_response(1, "grantedWithMods", texts=["changed"], cert_der=CERT,
                                                               as_der=True),
                                               B.cert_response(2, "rejection", fail_info=["badPOP", "badAlg"],
                                                               texts=["a", "ü"], as_der=True)], as_der=True),
    "ccp-waiting": lambda: B.cert_rep_body("ccp", [B.cert_response(7, "waiting", as_der=True)], as_der=True),
    "ip-empty": lambda: B.cert_rep_body("ip", [], as_der=True),
    "pkiconf": lambda: B.pkiconf_body(as_der=True),
    "error": lambda: B.error_body(fail_info=["badRequest", "systemFailure"], texts=["no"], error_code=-5,
                                  error_details=["why", "because"], as_der=True),
    "error-bare": lambda: B.error_body("rejection", as_der=True),
    "genp": lambda: B.genp_body([(oids.IT_CA_CERTS, None), (oids.IT_IMPLICIT_CONFIRM, b"\x05\x00")], as_der=True),
    "genp-empty": lambda: B.genp_body([], as_der=True),
    "pollRep": lambda: B.poll_rep_body([(0, 5, []), (1, 300, ["busy", "later"])], as_der=True),
}


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_openssl_answers_read_alike(path: Path) -> None:
    der = path.read_bytes()
    fast = assert_agrees(der)
    if full(der).body_type != "rp":  # revocation answers are left to the full decoder
        assert fast is not None, "an answer openssl sends on every enrollment went to the slow path"


@pytest.mark.parametrize("name", sorted(BODIES))
@pytest.mark.parametrize("protect", [True, False])
def test_every_handled_body_reads_alike(name: str, protect: bool) -> None:
    der = message(base(), BODIES[name](), protect=protect, extra=[CERT] if protect else None)
    assert assert_agrees(der) is not None


def test_every_header_field_reads_alike() -> None:
    hb = (base(recipient=x509.Name([])).pvno(3).recip_kid(b"rk").free_text("one", "två")
          .implicit_confirm().general_info(oids.IT_CONFIRM_WAIT_TIME, b"\x18\x0f20310506050809Z"))
    fast = assert_agrees(message(hb, B.pkiconf_body(as_der=True)))
    assert fast is not None
    h = fast.header
    assert (h.pvno, h.recipient, h.free_text, h.implicit_confirm) == (3, "NULL-DN", ("one", "två"), True)
    assert h.message_time == NOW and h.sender_name == x509.Name.from_rfc4514_string("CN=Test CA,O=Example,C=DE")


def test_parse_message_uses_the_fast_reader_and_decodes_lazily() -> None:
    der = message(base(), BODIES["ip"](), extra=[CERT])
    parsed = parse_message(der)
    assert parsed.decoded is None and parsed.protection_value is not None
    assert parsed.message["body"].getName() == "ip"


@pytest.mark.parametrize("case", ["encryptedCert", "privateKey", "rp", "dns-sender", "multi-valued-rdn",
                                  "time-fraction", "long-length", "constructed-octets"])
def test_declined_shapes_go_to_the_full_decoder(case: str) -> None:
    der = _declined(case)
    assert fast_parse(der) is None
    slow = full(der)
    if slow is not None:  # the full decoder reads it, and parse_message returns its reading
        assert parse_message(der) == slow
    else:
        with pytest.raises(DecodeError):
            parse_message(der)


def _declined(case: str) -> bytes:
    hb = base()
    if case in ("encryptedCert", "privateKey"):
        key = B.encrypted_key(enveloped_data_der=b"\x30\x03\x02\x01\x00")  # opaque to both readers
        rsp = (B.cert_response(0, encrypted_cert=key, as_der=True) if case == "encryptedCert"
               else B.cert_response(0, cert_der=CERT, private_key=key, as_der=True))
        return message(hb, B.cert_rep_body("ip", [rsp], as_der=True))
    if case == "rp":
        return message(hb, B.rp_body([build_status_info("accepted")], as_der=True))
    if case == "dns-sender":
        return message(base(sender=x509.DNSName("ca.example")), B.pkiconf_body(as_der=True))
    if case == "multi-valued-rdn":
        rdn = x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "a"),
                                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, "b")])
        return message(base(sender=x509.Name([rdn])), B.pkiconf_body(as_der=True))
    der = message(hb, B.pkiconf_body(as_der=True), protect=False)
    tid = b"\x04\x10" + b"T" * 16
    if case == "time-fraction":  # valid DER, but not the plain form the fast reader takes
        return splice(der, b"20261127203005Z", b"20261127203005.5Z")
    if case == "long-length":  # the transactionID with a long-form length: BER, not DER
        return splice(der, tid, b"\x04\x81\x10" + b"T" * 16)
    return splice(der, tid, b"\x24\x12" + tid)  # a constructed OCTET STRING: BER


def splice(der: bytes, old: bytes, new: bytes) -> bytes:
    """``der`` with the one occurrence of ``old`` replaced by ``new``, every enclosing length fixed."""
    assert der.count(old) == 1
    start = der.index(old)
    return _splice(der, 0, start, start + len(old), new)


def _splice(der: bytes, pos: int, start: int, stop: int, new: bytes) -> bytes:
    tag, content, end = codec.read_tlv(der, pos)
    if (pos, end) == (start, stop):
        return new
    if not tag & 0x20:  # primitive: the replaced bytes are inside its content
        inner = der[content:start] + new + der[stop:end]
    else:
        inner, p = b"", content
        while p < end:
            _, _, child_end = codec.read_tlv(der, p)
            inner += _splice(der, p, start, stop, new) if p <= start and stop <= child_end else der[p:child_end]
            p = child_end
    return codec.der_header(tag, len(inner)) + inner


# --- random messages ---------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@st.composite
def status(draw: st.DrawFn) -> dict:
    return {"status": draw(st.sampled_from(["accepted", "grantedWithMods", "rejection", "waiting", "revocationWarning"])),
            "fail_info": draw(st.lists(st.sampled_from(["badAlg", "badPOP", "badRequest", "duplicateCertReq",
                                                        "systemFailure", "notAuthorized"]), max_size=3, unique=True)),
            "texts": draw(st.lists(TEXT, max_size=2))}


@st.composite
def random_message(draw: st.DrawFn) -> bytes:
    hb = (HeaderBuilder().pvno(draw(st.sampled_from([2, 3])))
          .sender(draw(st.sampled_from(["CN=CA", "CN=Test CA,O=Example,C=DE", ""])))
          .recipient(draw(st.sampled_from(["CN=client,UID=x", ""]))))
    if draw(st.booleans()):
        hb = hb.message_time(draw(st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(9999, 1, 1),
                                               timezones=st.just(dt.timezone.utc))).replace(microsecond=0))
    else:
        hb = hb.message_time(False)
    for setter in ("transaction_id", "sender_nonce", "recip_nonce", "recip_kid"):
        if draw(st.booleans()):
            hb = getattr(hb, setter)(draw(st.binary(min_size=1, max_size=20)))
    texts = draw(st.lists(TEXT, max_size=2))
    if texts:
        hb = hb.free_text(*texts)
    if draw(st.booleans()):
        hb = hb.implicit_confirm()
    kind = draw(st.sampled_from(["ip", "cp", "kup", "ccp", "error", "pollRep", "genp", "pkiconf"]))
    if kind in ("ip", "cp", "kup", "ccp"):
        responses = []
        for i in range(draw(st.integers(0, 2))):
            s = draw(status())
            cert = CERT if draw(st.booleans()) else None
            responses.append(B.cert_response(draw(st.integers(-2**70, 2**70)), s["status"], fail_info=s["fail_info"],
                                             texts=s["texts"], cert_der=cert, as_der=True))
        body = B.cert_rep_body(kind, responses, ca_pubs=[CERT] * draw(st.integers(0, 2)), as_der=True)
    elif kind == "error":
        s = draw(status())
        body = B.error_body(s["status"], fail_info=s["fail_info"], texts=s["texts"],
                            error_code=draw(st.none() | st.integers(-300, 2**40)),
                            error_details=draw(st.lists(TEXT, max_size=2)), as_der=True)
    elif kind == "pollRep":
        body = B.poll_rep_body([(draw(st.integers(-5, 2**33)), draw(st.integers(0, 2**33)), draw(st.lists(TEXT, max_size=2)))
                                for _ in range(draw(st.integers(1, 3)))], as_der=True)
    elif kind == "genp":
        body = B.genp_body(draw(st.lists(st.sampled_from([(oids.IT_CA_CERTS, None), (oids.IT_IMPLICIT_CONFIRM, b"\x05\x00"),
                                                           ("1.2.3.4.5.6.7.8.9.10.11", b"\x04\x01x")]), max_size=3)),
                           as_der=True)
    else:
        body = B.pkiconf_body(as_der=True)
    protect = draw(st.booleans())
    return message(hb, body, protect=protect, extra=[CERT] * draw(st.integers(0, 2)) if protect else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_message())
def test_random_messages_read_alike(der: bytes) -> None:
    assert assert_agrees(der) is not None


CORPUS = [p.read_bytes() for p in VECTORS] + [message(base(), make(), extra=[CERT]) for make in BODIES.values()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), EDITS)
def test_mutated_messages_never_read_differently(der: bytes, edits: list[tuple[str, int, int]]) -> None:
    data = mutate(der, edits)
    assume(data != der)
    assert_agrees(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), st.integers(0, 10**6))
def test_truncated_messages_are_declined(der: bytes, cut: int) -> None:
    assert fast_parse(der[: cut % len(der)]) is None


def test_the_mutation_test_reaches_accepted_variants() -> None:
    # A mutation inside a certificate or a nonce keeps the message valid: the property
    # test above must see accepted messages, not only declined ones.
    der = CORPUS[-1]
    at = der.index(b"S" * 16)
    assert assert_agrees(der[:at] + b"X" + der[at + 1:]) is not None


# --- protection checked from the fast reader's fields -----------------------------------------


def test_mac_verification_of_a_fast_read_message() -> None:
    from cmpclient.errors import ProtectionError
    from cmpclient.protection import verify_protection

    der = message(base(), BODIES["ip"](), extra=[CERT])
    parsed = parse_message(der)
    assert parsed.protection_alg_der is not None
    assert verify_protection(der, parsed, secret=b"secret").kind == "mac"
    assert parsed.decoded is None and "_message" not in parsed.__dict__  # no pyasn1 value was needed
    with pytest.raises(ProtectionError):
        verify_protection(der, parsed, secret=b"wrong")
    tampered = der[:-len(CERT) - 10] + bytes([der[-len(CERT) - 10] ^ 1]) + der[-len(CERT) - 9:]  # in the MAC value
    assert parse_message(tampered).protection_value != parsed.protection_value
    with pytest.raises(ProtectionError):
        verify_protection(tampered, parse_message(tampered), secret=b"secret")


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=8, max_size=40), st.integers(1, 2**40), st.sampled_from(["sha256", "sha1", "sha512"]),
       st.sampled_from(["hmacWithSHA256", "hmac-sha1", "hmacWithSHA512"]))
def test_pbm_parameters_read_alike(salt: bytes, iterations: int, owf: str, mac: str) -> None:
    from cmpclient.asn1 import cmp
    from cmpclient.protection import mac as M

    params = M.PBMParams(salt=salt, owf=owf, iterations=min(iterations, M.MAX_BUILD_ITERATIONS), mac=mac)
    alg = params.algorithm_identifier()
    der = codec.encode(alg)
    pbm_der = bytes(alg["parameters"])
    full_reading = M.PBMParams.from_asn1(codec.decode(pbm_der, cmp.PBMParameter()))
    M._pbm_params_from_der.cache_clear()
    real_decode = M.codec.decode
    try:  # the strict reader alone must read it: the full decoder is not reachable here
        M.codec.decode = None  # type: ignore[assignment]
        fast_reading = M.PBMParams.from_algorithm_identifier_der(der)
    finally:
        M.codec.decode = real_decode
        M._pbm_params_from_der.cache_clear()
    assert fast_reading == full_reading == params


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.replace(b"\x02\x02\x01\xf4", b"\x02\x03\x00\x01\xf4"), "not DER"),  # padded iteration count
    (lambda d: d.replace(b"\x02\x02\x01\xf4", b"\x02\x01\x00"), "not positive"),
])
def test_pbm_parameters_errors_are_the_full_decoders(mutate, words: str) -> None:
    from cmpclient.errors import ProtectionError
    from cmpclient.protection import mac as M

    der = codec.encode(M.PBMParams(salt=b"s" * 16, owf="sha256", iterations=500, mac="hmacWithSHA256").algorithm_identifier())
    bad = _refit(mutate(der))
    with pytest.raises(ProtectionError, match=words):
        M.PBMParams.from_algorithm_identifier_der(bad)


def _refit(der: bytes) -> bytes:
    """Fix the two enclosing SEQUENCE lengths (AlgorithmIdentifier, PBMParameter) after an edit."""
    tag, start, _ = codec.read_tlv(der + b"\x00" * 8, 0)
    oid_tag, oid_start, oid_end = codec.read_tlv(der, start)
    params = der[oid_end:]
    _, p_start, _ = codec.read_tlv(params + b"\x00" * 8, 0)
    inner = params[p_start:]
    params = codec.der_header(0x30, len(inner)) + inner
    body = der[start:oid_end] + params
    return codec.der_header(tag, len(body)) + body


# --- found by review: values the full decoder refuses inside opaque (ANY) slots ---------------


@pytest.mark.parametrize("tag", [t for t in range(256) if t & 0x1F != 0x1F])
def test_any_value_of_every_tag_reads_alike(tag: int) -> None:
    # pyasn1 refuses universal tag 0 (end-of-contents) in an ANY; the fast reader must too.
    for value in (bytes([tag, 0]), bytes([tag, 1, 0])):
        genp = B.genp_body([(oids.IT_CA_CERTS, value)], as_der=True)
        assert_agrees(message(base(), genp, protect=False))
        hb = base().general_info("1.2.3.4", value)
        assert_agrees(message(hb, B.pkiconf_body(as_der=True), protect=False))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.builds(lambda bits, low: (1 << bits) | (low % (1 << bits)), st.integers(0, 200), st.integers(0)),
                min_size=1, max_size=4))
def test_long_object_identifier_arcs_read_alike(arcs: list[int]) -> None:
    # Arcs of every length up to 201 bits; pyasn1 refuses those of more than 21 octets (147 bits).
    from pyasn1.type import univ

    oid = str(univ.ObjectIdentifier((1, 3, *arcs)))
    fast = assert_agrees(message(base(), B.genp_body([(oid, None)], as_der=True), protect=False))
    if max(arcs) < 2**100:
        assert fast is not None


@pytest.mark.parametrize("value", [None, "text", [0x30, 0x00], 12])
def test_what_is_not_bytes_is_left_to_the_full_decoder(value: object) -> None:
    assert fast_parse(value) is None  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="expected bytes"):
        parse_message(value)  # type: ignore[arg-type]
