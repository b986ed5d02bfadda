"""Every openssl-made vector through our schema, our codec and our parser.

The vectors (tests/vectors/README.md) come from OpenSSL 3.0's ``openssl cmp`` client and mock
server, an implementation independent of ours.  For each file: strict DER decode with
:class:`cmpclient.asn1.cmp.PKIMessage`, the manifest's body type, byte-identical re-encoding,
``protected_part`` equal to a re-encoded ``ProtectedPart``, and typed content from
``parse_message``.  Both the vectors and messages made by our builders are also decoded with
the independent pyasn1-alt-modules ``rfc9810`` schema (imported here only: it is slow).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder

from cmpclient.asn1 import cmp, codec, oids
from cmpclient.message import body as bodies
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import (
    CertConfEntry,
    CertRepContent,
    ErrorContent,
    PollRepEntry,
    RevRepContent,
    parse_message,
)
from cmpclient.message.pkimessage import assemble, encode_message
from cmpclient.message.request import CertRequestBuilder

REPO = Path(__file__).resolve().parents[3]
MANIFEST = json.loads((REPO / "tests" / "vectors" / "manifest.json").read_text())
VECTORS = MANIFEST["vectors"]
SCENARIOS = {s["name"]: s for s in MANIFEST["scenarios"]}
IDS = [v["name"] for v in VECTORS]


def _read(vec: dict) -> bytes:
    der = (REPO / vec["file"]).read_bytes()
    # The manifest's hash guards against testing an accidentally edited file.
    assert hashlib.sha256(der).hexdigest() == vec["sha256"]
    return der


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _enrolled_spki(scenario: str) -> bytes:
    """The public key the scenario's client asked to certify (its -newkey, or the CSR's key)."""
    command = SCENARIOS[scenario]["client_command"].split()
    if "-newkey" in command:
        key_file = REPO / command[command.index("-newkey") + 1]
        return _spki(serialization.load_pem_private_key(key_file.read_bytes(), None).public_key())
    csr_file = REPO / command[command.index("-csr") + 1]
    return _spki(x509.load_pem_x509_csr(csr_file.read_bytes()).public_key())


def test_manifest_lists_every_vector_file() -> None:
    on_disk = {p.relative_to(REPO).as_posix() for p in (REPO / "tests" / "vectors").rglob("*.der")}
    assert on_disk == {v["file"] for v in VECTORS}
    assert len(VECTORS) >= 50


@pytest.mark.parametrize("vec", VECTORS, ids=IDS)
def test_decode_reencode_identical(vec: dict) -> None:
    der = _read(vec)
    msg = codec.decode(der, cmp.PKIMessage())
    assert msg["body"].getName() == vec["body"]
    assert int(msg["header"]["pvno"]) == vec["pvno"]
    assert codec.encode(msg) == der
    extra = msg["extraCerts"]
    assert (len(extra) if extra.isValue else 0) == vec["extra_certs"]
    assert msg["protection"].isValue


@pytest.mark.parametrize("vec", VECTORS, ids=IDS)
def test_protected_part_matches_reencoded_structure(vec: dict) -> None:
    der = _read(vec)
    msg = codec.decode(der, cmp.PKIMessage())
    part = cmp.ProtectedPart()
    part["header"] = msg["header"]
    part["body"] = msg["body"]
    sliced = codec.protected_part(der)
    assert sliced == codec.encode(part)
    # It is a prefix of the message content: header and body exactly as received.
    _, start, _ = codec.read_tlv(der, 0)
    _, inner_start, _ = codec.read_tlv(sliced, 0)
    assert der[start:].startswith(sliced[inner_start:])


@pytest.mark.parametrize("vec", VECTORS, ids=IDS)
def test_parse_message_typed_content(vec: dict) -> None:
    der = _read(vec)
    parsed = parse_message(der)
    kind = vec["body"]
    assert parsed.body_type == kind
    assert parsed.der == der
    assert parsed.protected is True
    assert len(parsed.extra_certs) == vec["extra_certs"]
    for cert_der in parsed.extra_certs:
        x509.load_der_x509_certificate(cert_der)
    h = parsed.header
    assert h.pvno == 2
    assert h.transaction_id and len(h.transaction_id) == 16
    assert h.sender_nonce and len(h.sender_nonce) == 16
    assert h.message_time is not None and h.message_time.tzinfo is not None
    assert h.protection_alg == vec["protection"]["alg_oid"]
    if vec["protection"]["type"] == "pbm":
        assert h.sender_kid == vec["protection"]["sender_kid"].encode()
    if vec["direction"] == "response":
        assert h.recip_nonce is not None and len(h.recip_nonce) == 16

    scenario = vec["scenario"]
    if kind in ("ip", "cp", "kup"):
        assert isinstance(parsed.content, CertRepContent)
        (resp,) = parsed.content.responses
        if scenario == "rejection_pbm":
            assert resp.status.status == "rejection"
            assert resp.status.fail_info == ("badPOP",)
            assert resp.status.texts == ("rejected by test",)
            assert resp.certificate is None
        elif scenario == "polling_pbm" and vec["index"] == 1:
            assert resp.status.status == "waiting"
            assert resp.certificate is None
        else:
            assert resp.status.ok
            cert = x509.load_der_x509_certificate(resp.certificate)
            assert _spki(cert.public_key()) == _enrolled_spki(scenario)
            assert resp.cert_req_id == (-1 if kind == "cp" and scenario == "p10cr_pbm" else 0)
            for ca in parsed.content.ca_pubs:
                x509.load_der_x509_certificate(ca)
    elif kind == "error":
        assert isinstance(parsed.content, ErrorContent)
        # README: -send_error answers rejection, badRequest, "error processing message".
        assert parsed.content.status.status == "rejection"
        assert parsed.content.status.fail_info == ("badRequest",)
        assert any("error" in t for t in parsed.content.status.texts + parsed.content.error_details)
    elif kind == "rp":
        assert isinstance(parsed.content, RevRepContent)
        assert [s.status for s in parsed.content.statuses] == ["accepted"]
    elif kind == "pollRep":
        (entry,) = parsed.content
        assert isinstance(entry, PollRepEntry)
        assert entry == PollRepEntry(0, 0, entry.reason)  # -check_after 0
    elif kind == "pollReq":
        assert parsed.content == (0,)
    elif kind == "certConf":
        (entry,) = parsed.content
        assert isinstance(entry, CertConfEntry)
        assert len(entry.cert_hash) in (32, 64)  # SHA-256 (EC/RSA) or SHA-512 (Ed25519)
        assert entry.status is None or entry.status.ok
    elif kind in ("genm", "genp"):
        if scenario == "genm_pbm_default":
            assert parsed.content == ()
        else:
            assert parsed.content == ((oids.IT_CA_CERTS, None),)
    elif kind == "pkiconf":
        assert parsed.content is None
    elif kind in ("ir", "cr", "kur", "p10cr", "rr"):
        assert parsed.content is None
    else:  # pragma: no cover - a new body type in the manifest needs a check here
        pytest.fail(f"no content check for {kind}")
    if scenario == "cr_pbm_implicitconfirm":
        assert h.implicit_confirm


def test_rr_vector_reason_code_is_key_compromise() -> None:
    der = (REPO / "tests/vectors/openssl/rr_sig_ec/req1.der").read_bytes()
    msg = codec.decode(der, cmp.PKIMessage())
    (details,) = msg["body"]["rr"]
    (ext,) = details["crlEntryDetails"]
    assert str(ext["extnID"]) == oids.CE_CRL_REASON
    assert bytes(ext["extnValue"]) == b"\x0a\x01\x01"  # ENUMERATED keyCompromise(1)


def test_p10cr_vector_carries_the_csr_file() -> None:
    der = (REPO / "tests/vectors/openssl/p10cr_pbm/req1.der").read_bytes()
    msg = codec.decode(der, cmp.PKIMessage())
    csr = x509.load_pem_x509_csr((REPO / "tests/vectors/openssl/p10cr_pbm/csr.pem").read_bytes())
    assert bytes(msg["body"]["p10cr"]) == csr.public_bytes(serialization.Encoding.DER)


# --- independent schema --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rfc9810():
    from pyasn1_alt_modules import rfc9810

    return rfc9810


def _alt_roundtrip(rfc9810, der: bytes):
    value, rest = der_decoder.decode(der, asn1Spec=rfc9810.PKIMessage())
    assert rest == b""
    assert der_encoder.encode(value) == der
    return value


@pytest.mark.parametrize("vec", VECTORS, ids=IDS)
def test_vector_decodes_with_rfc9810(rfc9810, vec: dict) -> None:
    der = _read(vec)
    value = _alt_roundtrip(rfc9810, der)
    assert value["body"].getName() == vec["body"]


def _built_messages() -> dict[str, bytes]:
    """One message per body builder, as our library produces them."""
    key = ed25519.Ed25519PrivateKey.generate()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert_der = (
        x509.load_pem_x509_certificate((REPO / "fixtures/pki/rsp-ec.crt.pem").read_bytes())
        .public_bytes(serialization.Encoding.DER)
    )
    root_der = (
        x509.load_pem_x509_certificate((REPO / "fixtures/pki/root-ca.crt.pem").read_bytes())
        .public_bytes(serialization.Encoding.DER)
    )

    def signer(data: bytes):
        from pyasn1.type import univ
        from pyasn1_modules import rfc5280

        alg = rfc5280.AlgorithmIdentifier()
        alg["algorithm"] = univ.ObjectIdentifier(oids.ED25519)
        return alg, key.sign(data)

    base = CertRequestBuilder().subject("CN=dev,O=Example").public_key(key)
    reqs = [
        base.cert_req_id(0).popo_signature(signer).build(),
        base.cert_req_id(1).popo_ra_verified().build(),
        base.cert_req_id(2).popo_key_encipherment().build(),
        base.cert_req_id(3).popo_key_agreement().build(),
        CertRequestBuilder().cert_req_id(4).public_key(key).popo_signature(signer, sender="CN=dev").build(),
        CertRequestBuilder().cert_req_id(5).subject("CN=dev").protocol_encr_key(spki).popo_none().build(),
    ]
    from cmpclient.keys.encrypted import PasswordRecipient, envelope

    enveloped = envelope(b"secret key bytes", recipients=[PasswordRecipient(b"pw-123456", iterations=1000)])
    reqs.append(base.cert_req_id(6).popo_key_encipherment(encrypted_key_der=enveloped).build())
    from cryptography.hazmat.primitives.asymmetric import ec

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=p10"))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    now = _dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)
    made = {
        "ir": bodies.cert_req_body("ir", reqs),
        "cr": bodies.cert_req_body("cr", reqs[:1]),
        "kur": bodies.cert_req_body("kur", reqs[:2]),
        "p10cr": bodies.p10cr_body(csr.public_bytes(serialization.Encoding.DER)),
        "rr": bodies.rr_body([bodies.rev_details("CN=CA", 7, reason="keyCompromise", invalidity_date=now)]),
        "certConf": bodies.cert_conf_body(
            [
                bodies.cert_status(0, b"\x11" * 32),
                bodies.cert_status(
                    1, b"\x22" * 32, status="rejection", fail_info=["badCertTemplate"], texts=["no"],
                    hash_alg_der=bytes.fromhex("300b0609608648016503040201"),
                ),
            ]
        ),
        "pollReq": bodies.poll_req_body([0, 1]),
        "pollRep": bodies.poll_rep_body([(0, 5, ["busy"]), (1, 0, [])]),
        "genm": bodies.genm_body([(oids.IT_CA_CERTS, None), (oids.IT_CERT_PROFILE, b"\x30\x03\x0c\x01a")]),
        "genp": bodies.genp_body([(oids.IT_CA_CERTS, codec.der_header(0x30, len(cert_der)) + cert_der)]),
        "pkiconf": bodies.pkiconf_body(),
        "error": bodies.error_body(fail_info=["badRequest"], texts=["x"], error_code=42, error_details=["d"]),
        "ip": bodies.cert_rep_body(
            "ip",
            [
                bodies.cert_response(
                    0, cert_der=cert_der,
                    private_key=bodies.encrypted_key(enveloped_data_der=enveloped),
                ),
                bodies.cert_response(1, "rejection", fail_info=["badPOP"], texts=["bad"]),
            ],
            ca_pubs=[root_der],
        ),
        "cp": bodies.cert_rep_body("cp", [bodies.cert_response(0, "waiting")]),
        "kup": bodies.cert_rep_body("kup", [bodies.cert_response(0, cert_der=cert_der)]),
        "rp": bodies.rp_body(
            [bodies.build_status_info("accepted"), bodies.build_status_info("rejection", fail_info=["badCertId"])],
            rev_certs=[("CN=CA", 7)],
        ),
    }
    out: dict[str, bytes] = {}
    for kind, body in made.items():
        header = HeaderBuilder().sender("CN=client").recipient("CN=CA").implicit_confirm().build()
        out[kind] = encode_message(assemble(header, body, extra_certs=[cert_der, root_der]))
    inner = [out["ir"], out["certConf"]]
    header = HeaderBuilder().sender("CN=RA").recipient("CN=CA").pvno(3).build()
    out["nested"] = encode_message(assemble(header, bodies.nested_body(inner)))
    return out


BUILT = _built_messages()


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_builder_message_decodes_with_rfc9810(rfc9810, kind: str) -> None:
    der = BUILT[kind]
    value = _alt_roundtrip(rfc9810, der)
    assert value["body"].getName() == kind
    # And with our own strict decoder, the same bytes again.
    assert codec.encode(codec.decode(der, cmp.PKIMessage())) == der
    assert parse_message(der).body_type == kind


def test_builder_nested_inner_messages_decode_with_rfc9810(rfc9810) -> None:
    value = _alt_roundtrip(rfc9810, BUILT["nested"])
    inner = value["body"]["nested"]
    assert [der_encoder.encode(m) for m in inner] == [BUILT["ir"], BUILT["certConf"]]


def test_builder_ir_popo_forms_as_seen_by_rfc9810(rfc9810) -> None:
    value = _alt_roundtrip(rfc9810, BUILT["ir"])
    popos = [m["popo"].getName() if m["popo"].isValue else None for m in value["body"]["ir"]]
    assert popos == ["signature", "raVerified", "keyEncipherment", "keyAgreement", "signature", None, "keyEncipherment"]
    poposk = value["body"]["ir"][4]["popo"]["signature"]
    assert poposk["poposkInput"].isValue
    assert value["body"]["ir"][6]["popo"]["keyEncipherment"].getName() == "encryptedKey"


def test_builder_cert_conf_hash_alg_as_seen_by_rfc9810(rfc9810) -> None:
    value = _alt_roundtrip(rfc9810, BUILT["certConf"])
    second = value["body"]["certConf"][1]
    assert str(second["hashAlg"]["algorithm"]) == oids.SHA256
    assert int(second["statusInfo"]["status"]) == 2
