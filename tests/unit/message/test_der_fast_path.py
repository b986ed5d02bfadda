"""The byte-assembled fast path gives exactly the bytes the pyasn1 path gives."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cmpclient.asn1 import codec, oids
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
