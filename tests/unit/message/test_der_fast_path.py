"""The byte-assembled fast path gives exactly the bytes the pyasn1 path gives."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cmpclient.asn1 import cmp, codec, oids
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.pkimessage import assemble, decode_message, encode_message
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import MACProtection, PBMParams, SignatureProtection, popo_signer, protect_der, protect_message

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def headers():
    prot = MACProtection(b"secret", PBMParams.new(iterations=100), sender_kid=b"kid")
    yield HeaderBuilder().sender("CN=a,O=b").recipient("").message_time(NOW).transaction_id(b"t" * 16).sender_nonce(b"n" * 16)
    yield (
        HeaderBuilder().pvno(3).sender("CN=a").recipient(x509.DNSName("ca.example")).message_time(NOW)
        .protection_alg(prot.algorithm_identifier()).sender_kid(b"kid").recip_kid(b"rk").transaction_id(b"t")
        .sender_nonce(b"n").recip_nonce(b"r").free_text("one", "två").implicit_confirm()
        .general_info(oids.IT_CA_CERTS, None)
    )
    yield HeaderBuilder().sender(x509.Name([])).recipient("CN=ca").message_time(False).transaction_id(b"t").sender_nonce(b"n")


@pytest.mark.parametrize("builder", list(headers()))
def test_header_build_der_equals_encoded_build(builder):
    assert builder.build_der() == codec.encode(builder.build())


BODIES = [
    (B.pkiconf_body, (), {}),
    (B.poll_req_body, ([0, 7],), {}),
    (B.genm_body, ([(oids.IT_CA_CERTS, None)],), {}),
    (B.error_body, ("rejection",), {"fail_info": ["badPOP"], "texts": ["x"], "error_code": 4}),
    (B.poll_rep_body, ([(0, 5, ["wait"])],), {}),
    (B.genp_body, (), {}),
    (B.rr_body, ([B.rev_details("CN=ca", 12, reason="keyCompromise")],), {}),
    (B.cert_conf_body, ([B.cert_status(0, b"h" * 32)],), {}),
]


@pytest.mark.parametrize("fn,args,kw", BODIES, ids=[b[0].__name__ for b in BODIES])
def test_body_as_der_equals_encoded_body(fn, args, kw):
    assert fn(*args, as_der=True, **kw) == codec.encode(fn(*args, **kw))


@pytest.mark.parametrize("kind", ["mac", "signature"])
def test_protect_der_equals_protect_message(kind):
    key = ec.generate_private_key(ec.SECP256R1())
    if kind == "mac":
        prot = MACProtection(b"secret", PBMParams.new(iterations=100), sender_kid=b"kid")
    else:
        name = x509.Name.from_rfc4514_string("CN=signer")
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
            .sign(key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256())
        )
        prot = SignatureProtection(key, cert)
    req = CertRequestBuilder().subject("CN=x").public_key(key).popo_signature(popo_signer(key)).build()
    hb = (HeaderBuilder().sender("CN=x").recipient("").message_time(NOW).transaction_id(b"t" * 16)
          .sender_nonce(b"n" * 16).protection_alg(prot.algorithm_identifier()))
    if prot.sender_kid():
        hb = hb.sender_kid(prot.sender_kid())
    body = B.cert_req_body("ir", [req])
    # (an opaque stand-in extra certificate only where nothing parses certificates)
    extra = [b"\x30\x03\x02\x01\x01"] if kind == "mac" else []
    fast = protect_der(hb.build_der(), B.cert_req_body("ir", [req], as_der=True), prot, extra)
    slow = encode_message(protect_message(assemble(hb.build(), body, extra_certs=extra), prot))
    if kind == "mac":  # MAC is deterministic: the bytes are identical
        assert fast == slow
    msg = decode_message(fast)  # strict DER
    assert codec.encode(msg["header"]) == hb.build_der()
    from cmpclient.protection import verify_protection

    assert verify_protection(fast, secret=b"secret", pinned=getattr(prot, "cert", None)).kind == prot.kind


def test_protect_der_unprotected():
    hb = HeaderBuilder().sender("CN=x").recipient("").message_time(NOW).transaction_id(b"t").sender_nonce(b"n")
    der = protect_der(hb.build_der(), B.pkiconf_body(as_der=True), None)
    assert der == encode_message(assemble(hb.build(), B.pkiconf_body()))


# --- CertRequestBuilder: the DER is written by hand; check it against pyasn1 assembling it ---


def _pyasn1_cert_req_msg(b: CertRequestBuilder, key, issuer: str, subject: str) -> bytes:
    """The same CertReqMsg assembled with pyasn1 field by field (what the builder did before)."""
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280

    from cmpclient.asn1 import crmf
    from cmpclient.message.names import name_to_asn1
    from cmpclient.message.request import public_key_der

    t = crmf.CertTemplate()
    spec = t.componentType
    t["serialNumber"] = 4660
    t["issuer"] = name_to_asn1(issuer, spec["issuer"].asn1Object)
    validity = t["validity"]
    vspec = validity.componentType
    validity["notBefore"] = codec.value_from_der(vspec["notBefore"].asn1Object, b"\x17\x0d" + b"260102030405Z")
    validity["notAfter"] = codec.value_from_der(vspec["notAfter"].asn1Object, b"\x18\x0f" + b"20600102030405Z")
    t["subject"] = name_to_asn1(subject, spec["subject"].asn1Object)
    t["publicKey"] = codec.value_from_der(spec["publicKey"].asn1Object, public_key_der(key))
    for i, (oid, critical, value) in enumerate(b._extensions):
        ext = rfc5280.Extension()
        ext["extnID"] = univ.ObjectIdentifier(oid)
        if critical:
            ext["critical"] = True
        ext["extnValue"] = value
        t["extensions"][i] = ext
    req = crmf.CertRequest()
    req["certReqId"] = 7
    req["certTemplate"] = t
    for seq, items in ((req["controls"], b._controls),):
        for i, (oid, der) in enumerate(items):
            atv = crmf.AttributeTypeAndValue()
            atv["type"] = univ.ObjectIdentifier(oid)
            atv["value"] = univ.Any(der)
            seq[i] = atv
    msg = crmf.CertReqMsg()
    msg["certReq"] = req
    msg["popo"] = codec.decode(b"\x80\x00", msg.componentType["popo"].asn1Object, strict=False)
    for i, (oid, der) in enumerate(b._reg_info):
        atv = crmf.AttributeTypeAndValue()
        atv["type"] = univ.ObjectIdentifier(oid)
        atv["value"] = univ.Any(der)
        msg["regInfo"][i] = atv
    return codec.encode(msg)


def test_cert_request_der_equals_pyasn1_assembly():
    key = ec.generate_private_key(ec.SECP256R1())
    issuer, subject = "CN=Issuing CA,O=Example,C=SE", "CN=dev+UID=42,O=Example,C=SE"
    b = (CertRequestBuilder().cert_req_id(7).serial_number(4660).issuer(issuer).subject(subject).public_key(key)
         .validity(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), dt.datetime(2060, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
         .extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
         .subject_alt_names([x509.DNSName("dev.example")])
         .reg_token("token").authenticator("auth").reg_info(oids.REGCTRL_REG_TOKEN, b"\x0c\x01x").popo_ra_verified())
    assert b.build_der() == _pyasn1_cert_req_msg(b, key, issuer, subject)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 32767, 32768, -1, -128, -129, -256, -32768, -32769,
                                   2**64, 2**159 + 12345])
def test_integer_content_is_minimal(value):
    from pyasn1.type import univ

    content = codec.int_content(value)
    assert codec.der_header(0x02, len(content)) + content == codec.encode(univ.Integer(value))
    assert int(codec.decode(codec.encode(univ.Integer(value)), univ.Integer())) == value


def test_cert_req_body_from_builders_equals_from_messages():
    key = ec.generate_private_key(ec.SECP256R1())
    builders = [CertRequestBuilder().cert_req_id(i).subject(f"CN=d{i}").public_key(key).popo_ra_verified() for i in range(2)]
    assert B.cert_req_body("cr", builders, as_der=True) == B.cert_req_body("cr", [x.build() for x in builders], as_der=True)
    with pytest.raises(Exception, match="duplicate certReqId"):
        B.cert_req_body("ir", [builders[0], builders[0]], as_der=True)


def test_protection_alg_as_der_gives_the_same_header():
    prot = MACProtection(b"secret", PBMParams.new(iterations=100), sender_kid=b"kid")
    base = HeaderBuilder().sender("CN=a").recipient("").message_time(NOW).transaction_id(b"t").sender_nonce(b"n")
    with_object = base.protection_alg(prot.algorithm_identifier())
    with_der = base.protection_alg(prot.algorithm_identifier_der())
    assert with_der.build_der() == with_object.build_der() == codec.encode(with_object.build())
    assert codec.encode(with_der.build()) == with_object.build_der()


def test_mac_algorithm_identifier_der_follows_the_parameters():
    prot = MACProtection(b"secret", PBMParams.new(iterations=100))
    first = prot.algorithm_identifier_der()
    assert first == codec.encode(prot.algorithm_identifier())
    assert prot.algorithm_identifier_der() is first  # made once
    prot.params = PBMParams.new(iterations=200)
    assert prot.algorithm_identifier_der() == codec.encode(prot.algorithm_identifier()) != first


def test_empty_subject_and_issuer_are_left_out():
    """subject("")/issuer(Name([])) leave the fields out (as pyasn1 wrote them); without a
    subject the signature POPO needs POPOSigningKeyInput (RFC 4211 section 4.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = CertRequestBuilder().subject("").issuer(x509.Name([])).public_key(key)
    assert b.template_der() == codec.encode(b.build_template())
    template = b.build_template()
    assert not template["subject"].isValue and not template["issuer"].isValue
    with pytest.raises(Exception, match="POPOSigningKeyInput"):
        b.popo_signature(popo_signer(key)).build_der()
    msg = b.popo_signature(popo_signer(key), sender="CN=device").build()
    assert msg["popo"]["signature"]["poposkInput"].isValue


def test_public_key_given_as_der_is_checked_and_written_as_der():
    from cmpclient.errors import UsageError
    from cmpclient.message.request import public_key_der

    key = ec.generate_private_key(ec.SECP256R1())
    spki = public_key_der(key)
    assert public_key_der(spki) == spki
    assert spki[1] < 0x80
    ber = b"\x30\x81" + spki[1:]  # the same SPKI with a long-form length (BER, not DER)
    assert public_key_der(ber) == spki
    with pytest.raises(UsageError, match="not a SubjectPublicKeyInfo"):
        public_key_der(b"\x04\x03abc")


@pytest.mark.parametrize("cert_req_id", [0, 1, 127, 128, 255, 256, 2**31 - 1, 2**63, -1, -129])
@pytest.mark.parametrize("hash_len", [20, 32, 64, 127, 128, 300])
def test_accepted_cert_status_der_is_what_pyasn1_writes(cert_req_id: int, hash_len: int) -> None:
    digest = bytes(range(256)) * 2
    digest = digest[:hash_len]
    assert B.accepted_cert_status_der(cert_req_id, digest) == codec.encode(B.cert_status(cert_req_id, digest))
    # and a certConf of DER entries is the certConf of pyasn1 entries
    assert (B.cert_conf_body([B.accepted_cert_status_der(cert_req_id, digest)], as_der=True)
            == B.cert_conf_body([B.cert_status(cert_req_id, digest)], as_der=True))


def _fail_info_cases() -> list[tuple]:
    import random

    from cmpclient.message.status import FAIL_INFO_NAMES

    rng = random.Random(4210)
    cases: list[tuple] = [(), ("badAlg",), ("systemFailure",), ("duplicateCertReq",), (0, 7, 8), (7,), (8,), (15,), (16,),
                          ("badPOP", "BADPOP", 9)]
    cases += [(name,) for name in FAIL_INFO_NAMES]
    cases += [tuple(rng.sample(range(len(FAIL_INFO_NAMES)), rng.randint(1, 6))) for _ in range(60)]
    return cases


@pytest.mark.parametrize("fail_info", _fail_info_cases())
def test_status_info_der_is_what_pyasn1_writes(fail_info: tuple) -> None:
    from cmpclient.message.status import STATUS_NAMES, build_status_info, status_info_der

    for status in (*STATUS_NAMES, *range(len(STATUS_NAMES))):
        assert status_info_der(status, fail_info=fail_info) == codec.encode(build_status_info(status, fail_info=fail_info))


def test_status_info_der_refuses_what_build_status_info_refuses() -> None:
    from cmpclient.errors import UsageError
    from cmpclient.message.status import status_info_der

    for status, fail_info in (("nosuch", ()), (7, ()), (-1, ()), ("accepted", ("nosuch",)), ("rejection", (27,))):
        with pytest.raises(UsageError):
            status_info_der(status, fail_info=fail_info)


def _cert_response_pyasn1(cert_req_id: int, status: str, fail_info: tuple, cert_der: bytes | None) -> bytes:
    """CertResponse as pyasn1 writes it (certReqId and PKIStatusInfo encoded by pyasn1)."""
    from pyasn1.type import univ

    from cmpclient.message.status import build_status_info

    parts = codec.encode(univ.Integer(cert_req_id)) + codec.encode(build_status_info(status, fail_info=fail_info))
    if cert_der is not None:
        coec = codec.der_header(0xA0, len(cert_der)) + cert_der
        parts += codec.der_header(0x30, len(coec)) + coec
    return codec.der_header(0x30, len(parts)) + parts


@pytest.mark.parametrize("cert_req_id", [0, 1, 127, 128, 255, 256, 2**31 - 1, 2**63, -1, -128, -129])
@pytest.mark.parametrize("status, fail_info, cert_der", [
    ("accepted", (), b"\x30\x03\x02\x01\x05"),
    ("accepted", (), b"\x30\x82\x01\x00" + bytes(256)),
    ("grantedWithMods", (), b"\x30\x00"),
    ("waiting", (), None),
    ("rejection", ("badCertTemplate",), None),
    ("rejection", ("badPOP", "systemFailure"), None),
])
def test_cert_response_der_is_what_pyasn1_writes(cert_req_id: int, status: str, fail_info: tuple,
                                                 cert_der: bytes | None) -> None:
    got = B.cert_response(cert_req_id, status, fail_info=list(fail_info), cert_der=cert_der, as_der=True)
    assert got == _cert_response_pyasn1(cert_req_id, status, fail_info, cert_der)
    # the decoded form (as_der False) reads back the same
    assert codec.encode(B.cert_response(cert_req_id, status, fail_info=list(fail_info), cert_der=cert_der)) == got
    # with texts the status is still pyasn1's own
    texts = ["refused: ünïcode", "second"]
    with_texts = B.cert_response(cert_req_id, status, fail_info=list(fail_info), texts=texts, as_der=True)
    decoded = codec.decode(with_texts, cmp.CertResponse(), what="CertResponse", strict=False)
    assert [str(t) for t in decoded["status"]["statusString"]] == texts


def test_builder_copies_are_what_dataclasses_replace_makes() -> None:
    import dataclasses

    from cmpclient.errors import UsageError

    key = ec.generate_private_key(ec.SECP256R1())
    start = HeaderBuilder().pvno(2).sender("CN=a")
    steps = [("_recipient", "CN=b"), ("_sender_kid", b"kid"), ("_transaction_id", b"t" * 16), ("_recip_nonce", b"n" * 16)]
    hb = start
    for name, value in steps:
        before = dict(hb.__dict__)
        nxt = hb._set(name, value)
        assert nxt == dataclasses.replace(hb, **{name: value}) and type(nxt) is HeaderBuilder
        assert hb.__dict__ == before and nxt is not hb  # the original is untouched
        assert set(nxt.__dict__) == set(hb.__dict__)
        hb = nxt
    appended = hb.implicit_confirm()
    assert appended == dataclasses.replace(hb, _general_info=hb._general_info + ((oids.IT_IMPLICIT_CONFIRM, b"\x05\x00"),))
    assert hash(appended) == hash(dataclasses.replace(appended))
    with pytest.raises(UsageError, match="already set"):
        hb.recipient("CN=c")
    with pytest.raises(TypeError):
        hb._with("_no_such_field", 1)
    fixed = hb.message_time(False).sender_nonce(b"s" * 16)
    assert fixed.build_der() == HeaderBuilder(_pvno=2, _sender="CN=a", _recipient="CN=b", _sender_kid=b"kid", _transaction_id=b"t" * 16,
                                              _recip_nonce=b"n" * 16, _message_time=False, _sender_nonce=b"s" * 16).build_der()
    crb = CertRequestBuilder().cert_req_id(3).subject("CN=x").public_key(key)
    assert crb == dataclasses.replace(CertRequestBuilder(), **{f.name: getattr(crb, f.name) for f in dataclasses.fields(crb)})
