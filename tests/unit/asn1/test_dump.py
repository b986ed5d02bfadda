"""cmpclient.asn1.dump: every openssl vector, every body type we build, nesting, bad input."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.dump import MAX_NESTING_DEPTH, dump, dump_message, render_text
from cmpclient.errors import DecodeError
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.parse import parse_message
from cmpclient.message.pkimessage import assemble, decode_message, encode_message
from cmpclient.message.request import CertRequestBuilder

REPO = Path(__file__).resolve().parents[3]
MANIFEST = json.loads((REPO / "tests" / "vectors" / "manifest.json").read_text())
VECTORS = {v["name"]: v for v in MANIFEST["vectors"]}
PKI = REPO / "fixtures" / "pki"


def _der(name: str) -> bytes:
    return (REPO / VECTORS[name]["file"]).read_bytes()


def _errors(tree: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(tree, dict):
        if isinstance(tree.get("error"), str):
            yield path, tree["error"]
        for k, v in tree.items():
            yield from _errors(v, f"{path}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _errors(v, f"{path}[{i}]")


def _cert_der(name: str) -> bytes:
    cert = x509.load_pem_x509_certificate((PKI / name).read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def _message(body: Any, **kw: Any) -> bytes:
    hb = HeaderBuilder().sender("CN=dump test,O=cmpclient").recipient("CN=CA").sender_kid(b"my-ref")
    for name, value in kw.items():
        hb = getattr(hb, name)(value) if value is not True else getattr(hb, name)()
    return encode_message(assemble(hb.build(), body))


# --- the openssl vectors ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_every_vector_dumps_as_text_and_json(name: str) -> None:
    vector = VECTORS[name]
    der = _der(name)
    tree = dump(der)
    assert tree["bodyType"] == vector["body"]
    assert tree["size"] == len(der)
    assert tree["header"]["pvno"] == {"value": vector["pvno"], "name": f"cmp{1999 + vector['pvno'] - 1 if vector['pvno'] == 1 else 2000}"}
    assert tree["protection"]["present"] is True
    assert tree["protection"]["algorithm"]["oid"] == vector["protection"]["alg_oid"]
    assert list(_errors(tree)) == []
    # JSON round trip: only plain values in the tree.
    assert json.loads(json.dumps(tree)) == tree
    text = render_text(tree)
    assert text.startswith(f"PKIMessage {vector['body']} ({len(der)} bytes)\n")
    assert "transactionID: " in text
    assert len(tree.get("extraCerts", [])) == vector["extra_certs"]


def test_pbm_vector_names_protection_and_sender_kid() -> None:
    tree = dump(_der("ir_pbm_certconf/req1"))
    alg = tree["header"]["protectionAlg"]
    assert alg["name"] == "passwordBasedMac"
    assert alg["parameters"]["iterationCount"] == 500
    assert alg["parameters"]["owf"]["name"] == "sha256"
    assert alg["parameters"]["mac"]["name"] == "hmac-sha1"
    kid = tree["header"]["senderKID"]
    assert kid["ascii"] == "cmp-vector-ref" and kid["hex"] == b"cmp-vector-ref".hex()
    text = render_text(tree)
    assert "protectionAlg: passwordBasedMac (1.2.840.113533.7.66.13)" in text
    assert "senderKID: 636d702d766563746f722d726566 ('cmp-vector-ref')" in text


def test_ir_request_template_and_popo() -> None:
    tree = dump(_der("ir_sig_ec/req1"))
    (req,) = tree["body"]
    assert req["certReqId"] == 0
    assert req["certTemplate"]["subject"] == "O=cmpclient test,CN=cmp-rsp-ec"
    assert req["certTemplate"]["publicKey"]["type"] == "EC"
    assert req["certTemplate"]["publicKey"]["curve"] == "secp256r1"
    assert req["popo"]["kind"] == "signature"
    assert req["popo"]["algorithm"]["name"] == "ecdsa-with-SHA256"


def test_ed25519_key_in_template() -> None:
    (req,) = dump(_der("ir_ed25519_newkey_pbm/req1"))["body"]
    assert req["certTemplate"]["publicKey"]["type"] == "Ed25519"


def test_ip_certificate_and_ca_pubs_are_summarised() -> None:
    tree = dump(_der("ir_sig_ec/rsp1"))
    (rsp,) = tree["body"]["response"]
    assert rsp["status"]["status"] == {"value": 0, "name": "accepted"}
    cert = rsp["certificate"]
    assert cert["subject"] == "O=cmpclient test,CN=cmp-rsp-ec"
    assert cert["issuer"] == "O=cmpclient test,CN=cmpclient test issuing CA"
    real = x509.load_pem_x509_certificate((PKI / "rsp-ec.crt.pem").read_bytes())
    assert int(cert["serialNumber"], 16) == real.serial_number
    assert cert["publicKey"]["size"] == 256
    assert [c["subject"] for c in tree["body"]["caPubs"]] == ["O=cmpclient test,CN=cmpclient test root CA"]
    assert tree["extraCerts"][0]["subject"] == "O=cmpclient test,CN=cmp-server-ec"
    text = render_text(tree)
    assert "subject: O=cmpclient test,CN=cmp-rsp-ec" in text


def test_rejection_vector_spells_out_fail_info() -> None:
    tree = dump(_der("rejection_pbm/rsp1"))
    status = tree["body"]["response"][0]["status"]
    assert status["status"]["name"] == "rejection"
    assert status["failInfo"] == ["badPOP"]
    assert status["statusString"] == ["rejected by test"]
    text = render_text(tree)
    assert "status: rejection (2)" in text
    assert "failInfo: badPOP" in text


def test_error_vector() -> None:
    body = dump(_der("error_send_error_pbm/rsp1"))["body"]
    assert body["pKIStatusInfo"]["status"]["name"] == "rejection"
    assert body["pKIStatusInfo"]["failInfo"] == ["badRequest"]
    assert isinstance(body["errorCode"], int)
    assert body["errorDetails"]


def test_certconf_vector() -> None:
    (entry,) = dump(_der("ir_sig_ec/req2"))["body"]
    assert entry["certReqId"] == 0
    real = (PKI / "rsp-ec.crt.pem").read_bytes()
    import hashlib

    der = x509.load_pem_x509_certificate(real).public_bytes(serialization.Encoding.DER)
    assert entry["certHash"]["hex"] == hashlib.sha256(der).hexdigest()
    assert entry["statusInfo"]["status"]["name"] == "accepted"


def test_rr_and_rp_vectors() -> None:
    (details,) = dump(_der("rr_pbm/req1"))["body"]
    real = x509.load_pem_x509_certificate((PKI / "rsp-ec.crt.pem").read_bytes())
    assert details["issuer"] == real.issuer.rfc4514_string()
    assert int(details["serialNumber"], 16) == real.serial_number
    rp = dump(_der("rr_pbm/rsp1"))["body"]
    assert rp["status"][0]["status"]["name"] == "accepted"


def test_genm_and_poll_vectors() -> None:
    (item,) = dump(_der("genm_pbm_cacerts/req1"))["body"]
    assert item["infoType"] == {"oid": oids.IT_CA_CERTS, "name": "caCerts"}
    assert dump(_der("polling_pbm/req2"))["body"] == [{"certReqId": 0}]
    (poll,) = dump(_der("polling_pbm/rsp2"))["body"]
    assert poll["certReqId"] == 0 and isinstance(poll["checkAfter"], int)


def test_p10cr_vector() -> None:
    body = dump(_der("p10cr_pbm/req1"))["body"]
    assert body["subject"] == "O=cmpclient test,CN=cmp-rsp-ec"
    assert body["publicKey"]["type"] == "EC"


def test_pkiconf_vector() -> None:
    tree = dump(_der("ir_sig_ec/rsp2"))
    assert tree["body"] is None
    assert "body: (absent)" in render_text(tree)


# --- messages built here: every remaining body shape ---------------------------------------


def test_error_body_with_several_fail_infos_and_unknown_bits() -> None:
    der = _message(B.error_body(fail_info=["badAlg", "badPOP", "duplicateCertReq"], texts=["no"], error_code=7,
                                error_details=["detail"]))
    body = dump(der)["body"]
    assert body["pKIStatusInfo"]["failInfo"] == ["badAlg", "badPOP", "duplicateCertReq"]
    assert body["errorCode"] == 7 and body["errorDetails"] == ["detail"]
    assert "failInfo: badAlg, badPOP, duplicateCertReq" in render_text(dump(der))


def test_header_fields_implicit_confirm_and_general_info() -> None:
    der = _message(B.pkiconf_body(), implicit_confirm=True, free_text="hello", recip_kid=b"\x00\x01")
    header = dump(der)["header"]
    assert header["implicitConfirm"] is True
    assert header["generalInfo"] == [{"infoType": {"oid": oids.IT_IMPLICIT_CONFIRM, "name": "implicitConfirm"}, "value": None}]
    assert header["freeText"] == ["hello"]
    assert header["recipKID"] == {"hex": "0001", "length": 2}  # not printable: no ascii
    assert header["sender"] == "CN=dump test,O=cmpclient"
    assert header["messageTime"].endswith("Z")


@pytest.mark.parametrize("times,expected", [
    (None, None),
    ((None, _dt.datetime(2030, 1, 3, tzinfo=_dt.timezone.utc)), {"notAfter": "2030-01-03T00:00:00Z"}),
])
def test_a_template_without_validity_shows_none(times: Any, expected: Any) -> None:
    """A certTemplate without [4] validity (our ir without --days; openssl's ir) showed
    `validity: (empty)`: pyasn1 fills in the all-OPTIONAL OptionalValidity when decoding.
    Absent template fields are left out, as the others are."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = CertRequestBuilder().subject("CN=dev1").public_key(key.public_key()).popo_ra_verified()
    if times:
        b = b.validity(*times)
    der = _message(B.cert_req_body("ir", [b.build()]))
    (req,) = dump(der)["body"]
    assert req["certTemplate"].get("validity") == expected
    text = render_text(dump(der))
    assert ("validity" in text) == bool(expected) and "(empty)" not in text
    for name in ("ir_sig_ec/req1", "rr_pbm/req1"):  # openssl's: no [4] either
        assert "validity" not in render_text(dump(_der(name))), name


def test_cert_request_template_extensions_and_controls() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    enc_key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)
    msg = (
        CertRequestBuilder()
        .cert_req_id(5)
        .subject("CN=dev1,O=Example")
        .issuer("CN=Issuing CA")
        .public_key(key.public_key())
        .validity(now, now + _dt.timedelta(days=1))
        .extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .subject_alt_names([x509.DNSName("dev1.example")])
        .extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.2"), x509.ObjectIdentifier("1.2.3.4.5")]))
        .reg_token("token-123")
        .old_cert_id("CN=Issuing CA", 0x1234)
        .protocol_encr_key(enc_key.public_key())
        .control("1.2.3.4.99", b"\x05\x00")
        .popo_ra_verified()
        .build()
    )
    tree = dump(_message(B.cert_req_body("cr", [msg])))
    (req,) = tree["body"]
    t = req["certTemplate"]
    assert req["certReqId"] == 5
    assert t["subject"] == "CN=dev1,O=Example" and t["issuer"] == "CN=Issuing CA"
    assert t["publicKey"]["curve"] == "secp384r1" and t["publicKey"]["size"] == 384
    assert t["validity"] == {"notBefore": "2030-01-02T03:04:05Z", "notAfter": "2030-01-03T03:04:05Z"}
    exts = {e["extnID"]["name"]: e for e in t["extensions"]}
    assert exts["keyUsage"]["critical"] is True
    assert exts["keyUsage"]["value"] == ["digitalSignature", "keyEncipherment"]
    assert exts["subjectAltName"]["value"] == ["dNSName:dev1.example"]
    assert [o["oid"] for o in exts["extKeyUsage"]["value"]] == ["1.3.6.1.5.5.7.3.2", "1.2.3.4.5"]
    assert exts["extKeyUsage"]["value"][1]["name"] == "1.2.3.4.5"  # unknown OIDs stay dotted
    controls = {c["type"]["name"]: c["value"] for c in req["controls"]}
    assert controls["regToken"] == "token-123"
    assert controls["oldCertID"] == {"issuer": "CN=Issuing CA", "serialNumber": "1234"}
    assert controls["protocolEncrKey"]["curve"] == "secp256r1"
    assert controls["1.2.3.4.99"] == {"der": {"hex": "0500", "length": 2}}
    assert req["popo"] == {"kind": "raVerified"}
    text = render_text(tree)
    assert "type: 1.2.3.4.99" in text
    assert "regToken (1.3.6.1.5.5.7.5.1.1)" in text


def test_server_keygen_request_shows_empty_key() -> None:
    from cmpclient.message.request import empty_public_key

    alg = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")  # id-ecPublicKey, secp256r1
    msg = CertRequestBuilder().subject("CN=keygen").public_key(empty_public_key(alg)).popo_none().build()
    tree = dump(_message(B.cert_req_body("ir", [msg])))
    (req,) = tree["body"]
    assert req["popo"] == {"kind": "none"}
    assert req["certTemplate"]["publicKey"] == {"algorithm": {"oid": oids.EC_PUBLIC_KEY, "name": "id-ecPublicKey"}, "empty": True}


def test_cert_rep_rp_pollrep_genp_and_rr_built() -> None:
    root = _cert_der("root-ca.crt.pem")
    issuing = _cert_der("issuing-ca.crt.pem")
    ip = dump(_message(B.cert_rep_body("ip", [B.cert_response(3, cert_der=_cert_der("rsp-ec.crt.pem"))], ca_pubs=[root])))
    assert ip["body"]["response"][0]["certificate"]["subject"] == "O=cmpclient test,CN=cmp-rsp-ec"
    rp = dump(_message(B.rp_body([B.build_status_info("rejection", fail_info=["certRevoked"])],
                                 rev_certs=[("CN=Issuing CA", 0xABC)])))["body"]
    assert rp["status"][0]["failInfo"] == ["certRevoked"]
    assert rp["revCerts"] == [{"issuer": "CN=Issuing CA", "serialNumber": "0abc"}]
    poll = dump(_message(B.poll_rep_body([(1, 30, ["busy"])])))["body"]
    assert poll == [{"certReqId": 1, "checkAfter": 30, "reason": ["busy"]}]
    seq = codec.der_header(0x30, len(root + issuing)) + root + issuing
    genp = dump(_message(B.genp_body([(oids.IT_CA_CERTS, seq), ("1.2.3.4.5.6", b"\x04\x02hi"),
                                      (oids.IT_CERT_PROFILE, b"\x30\x04\x0c\x02p1")])))["body"]
    assert genp[0]["infoType"]["name"] == "caCerts"
    assert [c["subject"] for c in genp[0]["value"]] == [
        "O=cmpclient test,CN=cmpclient test root CA",
        "O=cmpclient test,CN=cmpclient test issuing CA",
    ]
    assert genp[1] == {"infoType": {"oid": "1.2.3.4.5.6", "name": "1.2.3.4.5.6"}, "value": {"der": {"hex": "04026869", "length": 4}}}
    assert genp[2]["value"] == ["p1"]
    rr = dump(_message(B.rr_body([B.rev_details("CN=Issuing CA", 0x1F, reason="keyCompromise",
                                                invalidity_date=_dt.datetime(2030, 1, 1, tzinfo=_dt.timezone.utc))])))
    (details,) = rr["body"]
    assert details["reason"] == {"value": 1, "name": "keyCompromise"}
    assert details["serialNumber"] == "1f"
    assert details["invalidityDate"] == "2030-01-01T00:00:00Z"
    assert "reason: keyCompromise (1)" in render_text(rr)


def test_cert_conf_with_hash_alg_and_rejection() -> None:
    from cmpclient.protection import digest_algorithm_identifier
    from cryptography.hazmat.primitives import hashes

    alg = codec.encode(digest_algorithm_identifier(hashes.SHA384()))
    der = _message(B.cert_conf_body([B.cert_status(0, b"\x01" * 48, status="rejection", fail_info=["badCertTemplate"],
                                                   hash_alg_der=alg)]))
    (entry,) = dump(der)["body"]
    assert entry["hashAlg"]["name"] == "sha384"
    assert entry["statusInfo"]["failInfo"] == ["badCertTemplate"]


def test_poll_req_and_empty_genm() -> None:
    assert dump(_message(B.poll_req_body([0, 1])))["body"] == [{"certReqId": 0}, {"certReqId": 1}]
    tree = dump(_message(B.genm_body()))
    assert tree["body"] == []
    assert "body: (none)" in render_text(tree)


# --- nesting --------------------------------------------------------------------------------


def _nest(inner: bytes, levels: int) -> bytes:
    der = inner
    for _ in range(levels):
        der = _message(B.nested_body([der]))
    return der


def test_nested_messages_are_dumped_recursively() -> None:
    inner = [_der("ir_sig_ec/req1"), _der("rr_pbm/req1")]
    tree = dump(_message(B.nested_body(inner)))
    assert tree["bodyType"] == "nested"
    assert [m["bodyType"] for m in tree["body"]["messages"]] == ["ir", "rr"]
    assert tree["body"]["messages"][0]["body"][0]["certTemplate"]["subject"] == "O=cmpclient test,CN=cmp-rsp-ec"
    text = render_text(tree)
    assert "    [0]: PKIMessage ir (" in text
    assert "    [1]: PKIMessage rr (" in text


def test_nesting_is_bounded() -> None:
    der = _nest(_der("rr_pbm/req1"), MAX_NESTING_DEPTH + 5)
    tree = dump(der)
    level, node = 0, tree
    while node.get("bodyType") == "nested":
        node = node["body"]["messages"][0]
        level += 1
    assert level == MAX_NESTING_DEPTH + 1
    assert "truncated" in node
    small = dump(der, max_depth=2)
    assert "truncated" in small["body"]["messages"][0]["body"]["messages"][0]["body"]["messages"][0]


def test_a_bad_inner_message_is_shown_not_raised() -> None:
    # A well-formed outer message whose nested element is a SEQUENCE but not a PKIMessage.
    tree = dump(_message(B.nested_body([b"\x30\x03\x02\x01\x00"])))
    (inner,) = tree["body"]["messages"]
    assert "error" in inner and inner["size"] == 5


# --- inputs and failures --------------------------------------------------------------------


def test_accepts_parsed_and_decoded_messages() -> None:
    der = _der("rr_pbm/req1")
    assert dump(parse_message(der)) == dump(der)
    assert dump(decode_message(der))["bodyType"] == "rr"
    assert dump_message(der) == render_text(dump(der))


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x05\x02\x01", b"\x30\x03\x02\x01\x00", b"\x04\x00"],
    ids=["empty", "text", "truncated", "not-a-pkimessage", "octet-string"],
)
def test_invalid_input_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        dump(data)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        dump(_der("rr_pbm/req1") + b"\x00")


def test_unknown_cert_bytes_do_not_crash() -> None:
    # extraCerts holding something that is not a certificate: summarised as an error leaf.
    msg = assemble(HeaderBuilder().sender("CN=a").recipient("CN=b").build(), B.pkiconf_body(),
                   extra_certs=[b"\x30\x03\x02\x01\x05"])
    tree = dump(encode_message(msg))
    assert "error" in tree["extraCerts"][0]
    assert "error: not a parsable X.509 certificate" in render_text(tree)


def test_encrypted_cert_and_private_key_kinds() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from cmpclient.keys.encrypted import PasswordRecipient, encrypt_encrypted_value, envelope

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enveloped = envelope(b"secret key bytes", recipients=[PasswordRecipient(b"pw")])
    encrypted_value = encrypt_encrypted_value(b"certificate bytes", rsa_key.public_key())
    resp = B.cert_response(
        0,
        encrypted_cert=B.encrypted_key(encrypted_value_der=encrypted_value),
        private_key=B.encrypted_key(enveloped_data_der=enveloped),
    )
    tree = dump(_message(B.cert_rep_body("ip", [resp])))
    (r,) = tree["body"]["response"]
    assert r["encryptedCert"]["kind"] == "encryptedValue"
    assert r["encryptedCert"]["symmAlg"]["name"].startswith("aes")
    assert r["privateKey"]["kind"] == "envelopedData"
    assert r["privateKey"]["recipientInfos"] == ["pwri"]
    assert r["privateKey"]["contentEncryptionAlgorithm"]["oid"] == oids.AES256_CBC
    assert list(_errors(tree)) == []
