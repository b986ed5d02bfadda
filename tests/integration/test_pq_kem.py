"""Post-quantum CMP end to end (issue #8): ML-DSA, ML-KEM and KEM-based MAC, client <-> test CA.

* ML-DSA-87 root + ML-DSA-65 issuing CA (alias ``mldsa``): ir with ML-DSA-65 signature POPO
  (HMAC), then kur signed with the ML-DSA certificate (signature protection and POPO), via the CLI.
* ML-KEM-768/1024 end-entity keys (alias ``kem``): indirect POPO, the certificate comes back in
  EnvelopedData with KEMRecipientInfo (RFC 9629) to the new key; server-generated ML-KEM keys
  and keys delivered to an ML-KEM protocolEncrKey.
* KEM-based MAC (RFC 9810 section 5.1.3.4): genm/genp KemCiphertextInfo then a KEM-MAC
  protected kur/cr, certConf; the CA answers with the same protection.
* Negative twins: wrong KEM key, tampered ciphertext, wrong MAC, unsupported KDF.
* Every new structure is decoded with pyasn1-alt-modules (rfc9810, rfc9629: an independent
  schema, test-only) and re-encoded byte-identically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder

from cmpclient.asn1 import codec, oids
from cmpclient.cli.main import cli
from cmpclient.errors import CMPErrorMessage, ProtectionError
from cmpclient.keys import generate_key

EXTRA_TOML = """
[[ca]]
name = "MLDSARootCA"
key = "ML-DSA-87"
dn = "CN=ML-DSA Root CA,O=cmpclient test,C=SE"
validity_days = 3650

[[ca]]
name = "MLDSACA"
key = "ML-DSA-65"
dn = "CN=ML-DSA Issuing CA,O=cmpclient test,C=SE"
validity_days = 1825
parent = "MLDSARootCA"

[alias.mldsa]
mode = "ra"
auth_modules = ["HMAC", "EndEntityCertificate"]
auth_parameters = { EndEntityCertificate = "MLDSACA" }
ee_cert_authorises = "subject"
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "MLDSACA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "signature"
strict = true

[alias.kem]
mode = "ra"
auth_modules = ["HMAC", "KemBasedMac"]
hmac_secret = "password"
ra_name_generation = { scheme = "DN", parameter = "CN" }
ca = "ManagementCA"
cert_profile = "CMP_CERT"
ee_profile = "CMP_ENTITY"
response_protection = "signature"
strict = true
allow_indirect_popo = true
allow_server_keygen = true
"""

ENV = {"NO_COLOR": "1", "PQ_SECRET": "password"}


@pytest.fixture(scope="module")
def pq(testca_factory):
    return testca_factory("pq", EXTRA_TOML)


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=ENV, catch_exceptions=False)


def _pem_key(path: Path, key) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _msg(der: bytes):
    from cmpclient.message.parse import parse_message

    return parse_message(der)


def _alt_roundtrip(der: bytes, spec) -> object:
    """Decode with the independent pyasn1-alt-modules schema; re-encode byte-identically."""
    obj, rest = der_decoder.decode(der, asn1Spec=spec)
    assert rest == b""
    assert der_encoder.encode(obj) == der
    return obj


def _kem_crmf(pq, tmp_path: Path, name: str, spec: str, *extra):
    certout, keyout = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    r = _run("crmf", "--json", "--url", pq.url("kem"), "--secret", "env:PQ_SECRET", "--ref", "kem",
             "--trusted", pq.root_cert, "--untrusted", pq.ca_chain, "--dn", f"CN={name},O=PQ",
             "--reqnewkeyspec", spec, "--certout", certout, "--keyout", keyout, *extra)
    return r, certout, keyout


# --------------------------------------------------------------------------- ML-DSA


def test_mldsa_ca_hierarchy(pq) -> None:
    root = x509.load_pem_x509_certificate(pq.ca_cert("MLDSARootCA").read_bytes())
    ca = x509.load_pem_x509_certificate(pq.ca_cert("MLDSACA").read_bytes())
    assert root.signature_algorithm_oid.dotted_string == oids.ML_DSA_87
    assert ca.signature_algorithm_oid.dotted_string == oids.ML_DSA_87  # signed by the root
    ca.verify_directly_issued_by(root)
    # RFC 9881: the ML-DSA AlgorithmIdentifier has absent parameters (tbs signature field).
    tbs = ca.tbs_certificate_bytes
    alg = bytes.fromhex("300b0609608648016503040313")  # SEQUENCE { id-ml-dsa-87 } -- no NULL
    assert alg in tbs


def test_mldsa_enrolment_and_update_via_cli(pq, tmp_path: Path) -> None:
    chain = tmp_path / "mldsa-chain.pem"
    chain.write_bytes(pq.ca_cert("MLDSACA").read_bytes() + pq.ca_cert("MLDSARootCA").read_bytes())
    root = pq.ca_cert("MLDSARootCA")
    cert, key = tmp_path / "d.pem", tmp_path / "d-key.pem"
    ir, ip = tmp_path / "ir.der", tmp_path / "ip.der"
    r = _run("crmf", "--json", "--url", pq.url("mldsa"), "--secret", "env:PQ_SECRET", "--ref", "mldsa",
             "--trusted", root, "--untrusted", chain, "--dn", "CN=mldsa-dev,O=PQ", "--reqnewkeyspec", "ML-DSA-65",
             "--certout", cert, "--keyout", key, "--reqout", f"{ir},{tmp_path / 'cc.der'}", "--rspout", f"{ip},{tmp_path / 'pc.der'}")
    assert r.exit_code == 0, r.stdout + r.stderr
    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    assert issued.signature_algorithm_oid.dotted_string == oids.ML_DSA_65
    popo = _msg(ir.read_bytes()).message["body"]["ir"][0]["popo"]["signature"]
    assert str(popo["algorithmIdentifier"]["algorithm"]) == oids.ML_DSA_65
    assert not popo["algorithmIdentifier"]["parameters"].isValue
    rsp = _msg(ip.read_bytes())
    assert str(rsp.message["header"]["protectionAlg"]["algorithm"]) == oids.ML_DSA_65  # the CA signs with ML-DSA-65

    # kur signed by the ML-DSA-65 certificate: ML-DSA signature protection and POPO.
    kur, kup = tmp_path / "kur.der", tmp_path / "kup.der"
    r = _run("update", "--json", "--url", pq.url("mldsa"), "--cert", cert, "--key", key, "--trusted", root,
             "--untrusted", chain, "--certout", tmp_path / "new.pem", "--keyout", tmp_path / "new-key.pem",
             "--reqout", f"{kur},{tmp_path / 'cc2.der'}", "--rspout", f"{kup},{tmp_path / 'pc2.der'}")
    assert r.exit_code == 0, r.stdout + r.stderr
    req = _msg(kur.read_bytes())
    assert str(req.message["header"]["protectionAlg"]["algorithm"]) == oids.ML_DSA_65
    assert not req.message["header"]["protectionAlg"]["parameters"].isValue
    new = x509.load_pem_x509_certificate((tmp_path / "new.pem").read_bytes())
    assert new.subject == issued.subject and new.public_key() != issued.public_key()


def test_mldsa_key_not_matching_the_certificate_is_refused(pq, tmp_path: Path) -> None:
    """Negative twin: an ML-DSA key that does not belong to --cert never gets to sign."""
    k = generate_key("ML-DSA-65")
    r = _run("update", "--url", pq.url("mldsa"), "--cert", pq.ca_cert("MLDSACA"), "--key", _pem_key(tmp_path / "x.pem", k),
             "--trusted", pq.ca_cert("MLDSARootCA"), "--keyout", tmp_path / "new.pem")
    assert r.exit_code == 3 and "is not the private key of --cert" in r.stderr, r.stderr


# --------------------------------------------------------------------------- ML-KEM, indirect POPO


@pytest.mark.parametrize("spec, kem_oid", [("ML-KEM-768", oids.ML_KEM_768), ("ML-KEM-1024", oids.ML_KEM_1024)])
def test_mlkem_enrolment_indirect_popo(pq, tmp_path: Path, spec: str, kem_oid: str) -> None:
    from pyasn1_alt_modules import rfc5652, rfc9629

    name = f"kem-{spec}"
    ir, ip = tmp_path / "ir.der", tmp_path / "ip.der"
    r, certout, keyout = _kem_crmf(pq, tmp_path, name, spec, "--reqout", f"{ir},{tmp_path / 'cc.der'}",
                                   "--rspout", f"{ip},{tmp_path / 'pc.der'}")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["confirmed"] is True
    cert = x509.load_pem_x509_certificate(certout.read_bytes())
    key = serialization.load_pem_private_key(keyout.read_bytes(), None)
    assert cert.public_key() == key.public_key()
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_encipherment and not ku.digital_signature
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert codec.encode(__import__("pyasn1.type.univ", fromlist=["ObjectIdentifier"]).ObjectIdentifier(kem_oid)) in spki[:20]
    rec = pq.ca.store.find_by_fingerprint(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest())
    assert rec.confirmed  # the certConf certHash proved possession

    req, rsp = _msg(ir.read_bytes()), _msg(ip.read_bytes())
    assert req.header.pvno == 3 and req.message["body"]["ir"][0]["popo"].getName() == "keyEncipherment"
    enc = rsp.content.response(0).encrypted_cert
    assert enc.kind == "envelopedData"
    env = _alt_roundtrip(enc.der, rfc5652.EnvelopedData())
    assert int(env["version"]) == 3  # RFC 5652: an ori recipient makes version 3
    ori = env["recipientInfos"][0]["ori"]
    assert str(ori["oriType"]) == "1.2.840.113549.1.9.16.13.3"
    kemri = _alt_roundtrip(bytes(ori["oriValue"]), rfc9629.KEMRecipientInfo())
    assert int(kemri["version"]) == 0
    assert str(kemri["kem"]["algorithm"]) == kem_oid and not kemri["kem"]["parameters"].isValue
    assert str(kemri["kdf"]["algorithm"]) == oids.HKDF_WITH_SHA256 and not kemri["kdf"]["parameters"].isValue
    assert str(kemri["wrap"]["algorithm"]) == oids.AES256_WRAP and int(kemri["kekLength"]) == 32
    assert kemri["rid"].getName() == "issuerAndSerialNumber"
    assert int(kemri["rid"]["issuerAndSerialNumber"]["serialNumber"]) == cert.serial_number

    # Negative twins on the captured EnvelopedData: another key, a tampered ciphertext.
    from cmpclient.keys import decrypt_enveloped_data

    assert decrypt_enveloped_data(enc.der, private_key=key) == cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(ProtectionError, match="wrong private key or tampered"):
        decrypt_enveloped_data(enc.der, private_key=generate_key(spec))
    ct = bytes(kemri["kemct"])
    tampered = enc.der.replace(ct, ct[:100] + bytes([ct[100] ^ 1]) + ct[101:])
    with pytest.raises(ProtectionError, match="wrong private key or tampered"):
        decrypt_enveloped_data(tampered, private_key=key)
    # A truncated ciphertext (other DER lengths) is a clean error, never a bare ValueError.
    from cmpclient.errors import DecodeError

    bad, _ = der_decoder.decode(bytes(ori["oriValue"]), asn1Spec=rfc9629.KEMRecipientInfo())
    bad["kemct"] = ct[:-1]
    cut = enc.der.replace(bytes(ori["oriValue"]), der_encoder.encode(bad))
    if cut != enc.der:  # the outer lengths changed too: rebuild through the schema
        env2, _ = der_decoder.decode(enc.der, asn1Spec=rfc5652.EnvelopedData())
        env2["recipientInfos"][0]["ori"]["oriValue"] = der_encoder.encode(bad)
        cut = der_encoder.encode(env2)
    with pytest.raises((DecodeError, ProtectionError)):
        decrypt_enveloped_data(cut, private_key=key)


def test_mlkem_wrong_key_cannot_decrypt_certificate(pq, tmp_path: Path) -> None:
    """The library flow: the client holds another ML-KEM key than the one it asked to certify."""
    from cmpclient.client import ClientConfig, enroll
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import MACProtection
    from cmpclient.transport import open_transport

    key, other = generate_key("ML-KEM-768"), generate_key("ML-KEM-768")
    req = CertRequestBuilder().subject("CN=kem-wrong,O=PQ").public_key(key).popo_key_encipherment().build()
    cfg = ClientConfig(transport=open_transport(pq.url("kem")), protection=MACProtection(b"password", sender_kid=b"kem"),
                       pvno=3, trusted=[x509.load_pem_x509_certificate(pq.root_cert.read_bytes())],
                       untrusted=x509.load_pem_x509_certificates(pq.ca_chain.read_bytes()))
    with pytest.raises(ProtectionError, match="wrong private key or tampered"):
        enroll(cfg, "ir", req, new_private_key=other)


def test_mlkem_popo_with_cmpv2_is_bad_pop(pq, tmp_path: Path) -> None:
    from cmpclient.client import ClientConfig, enroll
    from cmpclient.errors import CMPRejection
    from cmpclient.message.request import CertRequestBuilder
    from cmpclient.protection import MACProtection
    from cmpclient.transport import open_transport

    key = generate_key("ML-KEM-768")
    req = CertRequestBuilder().subject("CN=kem-v2,O=PQ").public_key(key).popo_key_encipherment().build()
    cfg = ClientConfig(transport=open_transport(pq.url("kem")), protection=MACProtection(b"password", sender_kid=b"kem"),
                       pvno=2, trusted=[x509.load_pem_x509_certificate(pq.root_cert.read_bytes())],
                       untrusted=x509.load_pem_x509_certificates(pq.ca_chain.read_bytes()))
    with pytest.raises(CMPRejection) as ei:
        enroll(cfg, "ir", req, new_private_key=key)
    assert "badPOP" in ei.value.fail_info_names


# --------------------------------------------------------------------------- server-generated ML-KEM keys


@pytest.mark.parametrize("spec, pek, ri_kind", [
    ("ML-KEM-768", "ML-KEM-1024", "ori"),    # KEMRecipientInfo to an ML-KEM protocolEncrKey
    ("ML-KEM-1024", "RSA", "ktri"),          # an ML-KEM key delivered to an RSA protocolEncrKey
    ("secp256r1", "ML-KEM-768", "ori"),      # a classic key delivered through KEMRecipientInfo
])
def test_server_generated_keys_with_mlkem(pq, tmp_path: Path, spec: str, pek: str, ri_kind: str) -> None:
    from pyasn1_alt_modules import rfc5652, rfc9629

    ip = tmp_path / "ip.der"
    r, certout, keyout = _kem_crmf(pq, tmp_path, f"sk-{spec}-{pek}", spec, "--server-keygen", "--protocol-encr-key", pek,
                                   "--pvno", "3", "--rspout", f"{ip},{tmp_path / 'pc.der'}")
    assert r.exit_code == 0, r.stdout + r.stderr
    cert = x509.load_pem_x509_certificate(certout.read_bytes())
    key = serialization.load_pem_private_key(keyout.read_bytes(), None)
    assert cert.public_key() == key.public_key()
    from cmpclient.keys import key_spec_of

    assert key_spec_of(key).name == spec
    blob = _msg(ip.read_bytes()).content.response(0).private_key
    env = _alt_roundtrip(blob.der, rfc5652.EnvelopedData())
    ri = env["recipientInfos"][0]
    assert ri.getName() == ri_kind
    if ri_kind == "ori":
        _alt_roundtrip(bytes(ri["ori"]["oriValue"]), rfc9629.KEMRecipientInfo())


# --------------------------------------------------------------------------- KEM-based MAC


@pytest.fixture(scope="module")
def kem_identity(pq, tmp_path_factory):
    """An ML-KEM-768 certificate (and key) issued by the CA, via the CLI."""
    d = tmp_path_factory.mktemp("kemid")
    r, cert, key = _kem_crmf(pq, d, "kem-holder", "ML-KEM-768")
    assert r.exit_code == 0, r.stdout + r.stderr
    return cert, key


def _config(pq, protection=None, pvno=3):
    from cmpclient.client import ClientConfig, Leniency
    from cmpclient.transport import open_transport

    # The CA answers authentication failures with unprotected errors (EJBCA behaviour).
    return ClientConfig(transport=open_transport(pq.url("kem")), protection=protection, pvno=pvno,
                        lenient=Leniency(unprotected_errors=True),
                        trusted=[x509.load_pem_x509_certificate(pq.root_cert.read_bytes())],
                        untrusted=x509.load_pem_x509_certificates(pq.ca_chain.read_bytes()))


def test_kem_mac_kur_via_cli(pq, kem_identity, tmp_path: Path) -> None:
    from pyasn1_alt_modules import rfc9810

    cert, key = kem_identity
    genm, kur, conf = tmp_path / "genm.der", tmp_path / "kur.der", tmp_path / "conf.der"
    genp, kup, pkiconf = tmp_path / "genp.der", tmp_path / "kup.der", tmp_path / "pkiconf.der"
    r = _run("update", "--json", "--url", pq.url("kem"), "--cert", cert, "--key", key, "--trusted", pq.root_cert,
             "--untrusted", pq.ca_chain, "--certout", tmp_path / "new.pem", "--keyout", tmp_path / "new-key.pem",
             "--reqout", f"{genm},{kur},{conf}", "--rspout", f"{genp},{kup},{pkiconf}")
    assert r.exit_code == 0, r.stdout + r.stderr
    old = x509.load_pem_x509_certificate(cert.read_bytes())
    new = x509.load_pem_x509_certificate((tmp_path / "new.pem").read_bytes())
    assert new.subject == old.subject and new.public_key() != old.public_key()

    g = _msg(genm.read_bytes())
    assert g.body_type == "genm" and not g.protected and g.header.pvno == 3
    assert list(g.content) == [(oids.IT_KEM_CIPHERTEXT_INFO, None)]
    p = _msg(genp.read_bytes())
    (oid, value), = list(p.content)
    assert oid == oids.IT_KEM_CIPHERTEXT_INFO
    info = _alt_roundtrip(value, rfc9810.KemCiphertextInfo())
    assert str(info["kem"]["algorithm"]) == oids.ML_KEM_768 and len(bytes(info["ct"])) == 1088
    tids = set()
    for path in (kur, kup, conf, pkiconf):
        m = _msg(path.read_bytes())
        alg = m.message["header"]["protectionAlg"]
        assert str(alg["algorithm"]) == oids.KEM_BASED_MAC, path.name
        param = _alt_roundtrip(bytes(alg["parameters"]), rfc9810.KemBMParameter())
        assert str(param["kdf"]["algorithm"]) == oids.HKDF_WITH_SHA256 and int(param["len"]) == 32
        assert str(param["mac"]["algorithm"]) == oids.HMAC_WITH_SHA256
        tids.add(m.header.transaction_id)
    assert tids == {g.header.transaction_id}  # one transaction: the transactionID is in KemOtherInfo

    # dump names the new OIDs
    r = _run("dump", genp, kur)
    assert r.exit_code == 0, r.stderr
    for name in ("kemCiphertextInfo", "ML-KEM-768", "kemBasedMac", "id-alg-hkdf-with-sha256", "hmacWithSHA256"):
        assert name in r.stdout, name


def test_kem_mac_cr_library(pq, kem_identity) -> None:
    """cr protected by the KEM-based MAC, for the KEM certificate's own subject (RA mode)."""
    from cmpclient.client import enroll
    from cmpclient.client.kem import establish_kem_mac
    from cmpclient.keys import load_private_key
    from cmpclient.message.request import CertRequestBuilder

    cert = x509.load_pem_x509_certificate(kem_identity[0].read_bytes())
    key = load_private_key(str(kem_identity[1]))
    tx, cfg = establish_kem_mac(_config(pq), key, cert)
    new = generate_key("ML-KEM-1024")
    req = CertRequestBuilder().subject(cert.subject).public_key(new).popo_key_encipherment().build()
    result = enroll(cfg, "cr", req, transaction=tx, new_private_key=new)
    assert result.certificate.public_key() == new.public_key() and result.confirmed


def _genm_kem(pq, cert: x509.Certificate):
    """genm(KemCiphertextInfo) by hand: (transaction, KemCiphertextInfo DER)."""
    import dataclasses

    from cmpclient.client.transaction import Transaction
    from cmpclient.message import body as B

    cfg = dataclasses.replace(_config(pq), sender=cert.subject, extra_certs=[cert.public_bytes(serialization.Encoding.DER)])
    tx = Transaction(cfg)
    rsp = tx.exchange(B.genm_body([(oids.IT_KEM_CIPHERTEXT_INFO, None)], as_der=True), expect=["genp"])
    return tx, dict(rsp.content)[oids.IT_KEM_CIPHERTEXT_INFO]


def _kur_with(pq, tx, cert, protection):
    import dataclasses

    from cmpclient.client import enroll
    from cmpclient.message.request import CertRequestBuilder

    tx.config = dataclasses.replace(tx.config, protection=protection, extra_certs=[])
    new = generate_key("ML-KEM-768")
    req = (CertRequestBuilder().subject(cert.subject).public_key(new).old_cert_id(cert.issuer, cert.serial_number)
           .popo_key_encipherment().build())
    return enroll(tx.config, "kur", req, transaction=tx, new_private_key=new)


def _holder(kem_identity):
    from cmpclient.keys import load_private_key

    return x509.load_pem_x509_certificate(kem_identity[0].read_bytes()), load_private_key(str(kem_identity[1]))


def test_kem_mac_wrong_kem_key_is_bad_message_check(pq, kem_identity) -> None:
    from cmpclient.protection.kem import KEMMACProtection, decapsulate_ciphertext_info

    cert, _ = _holder(kem_identity)
    tx, info = _genm_kem(pq, cert)
    ss = decapsulate_ciphertext_info(generate_key("ML-KEM-768"), info)  # implicit rejection: a wrong secret
    with pytest.raises(CMPErrorMessage) as ei:
        _kur_with(pq, tx, cert, KEMMACProtection(ss, tx.transaction_id))
    assert tuple(ei.value.fail_info_names) == ("badMessageCheck",)


def test_kem_mac_tampered_ciphertext_is_bad_message_check(pq, kem_identity) -> None:
    from cmpclient.asn1 import cmp
    from cmpclient.protection.kem import KEMMACProtection, decapsulate_ciphertext_info

    cert, key = _holder(kem_identity)
    tx, info = _genm_kem(pq, cert)
    obj = codec.decode(info, cmp.KemCiphertextInfo(), what="KemCiphertextInfo")
    ct = bytearray(bytes(obj["ct"]))
    ct[7] ^= 0x40
    obj["ct"] = bytes(ct)
    ss = decapsulate_ciphertext_info(key, codec.encode(obj))
    with pytest.raises(CMPErrorMessage) as ei:
        _kur_with(pq, tx, cert, KEMMACProtection(ss, tx.transaction_id))
    assert tuple(ei.value.fail_info_names) == ("badMessageCheck",)


def test_kem_mac_wrong_mac_is_bad_message_check(pq, kem_identity) -> None:
    from cmpclient.protection.kem import KEMMACProtection, decapsulate_ciphertext_info

    cert, key = _holder(kem_identity)
    tx, info = _genm_kem(pq, cert)
    ss = decapsulate_ciphertext_info(key, info)

    class Flipped(KEMMACProtection):
        def compute(self, protected_part_der: bytes) -> bytes:
            mac = bytearray(super().compute(protected_part_der))
            mac[0] ^= 1
            return bytes(mac)

    with pytest.raises(CMPErrorMessage) as ei:
        _kur_with(pq, tx, cert, Flipped(ss, tx.transaction_id))
    assert tuple(ei.value.fail_info_names) == ("badMessageCheck",)
    # KemOtherInfo binds the transactionID: the right secret under another transactionID fails too.
    tx2, info2 = _genm_kem(pq, cert)
    with pytest.raises(CMPErrorMessage) as ei:
        _kur_with(pq, tx2, cert, KEMMACProtection(decapsulate_ciphertext_info(key, info2), os.urandom(16)))
    assert tuple(ei.value.fail_info_names) == ("badMessageCheck",)


def test_kem_mac_unsupported_kdf_is_bad_alg(pq, kem_identity) -> None:
    from pyasn1.type import univ

    from cmpclient.protection.kem import KEMMACProtection, decapsulate_ciphertext_info

    cert, key = _holder(kem_identity)
    tx, info = _genm_kem(pq, cert)
    ss = decapsulate_ciphertext_info(key, info)

    class OddKdf(KEMMACProtection):
        def algorithm_identifier(self):
            alg = super().algorithm_identifier()
            p = self.params.parameter()
            p["kdf"]["algorithm"] = univ.ObjectIdentifier("1.3.133.16.840.63.0.2")  # not HKDF
            alg["parameters"] = univ.Any(codec.encode(p))
            return alg

    with pytest.raises(CMPErrorMessage) as ei:
        _kur_with(pq, tx, cert, OddKdf(ss, tx.transaction_id))
    assert tuple(ei.value.fail_info_names) == ("badAlg",)


def test_kem_mac_without_genm_is_refused(pq, kem_identity) -> None:
    from cmpclient.client.transaction import Transaction
    from cmpclient.protection.kem import KEMMACProtection

    cert, _ = _holder(kem_identity)
    tx = Transaction(_config(pq))
    with pytest.raises(CMPErrorMessage) as ei:
        _kur_with(pq, tx, cert, KEMMACProtection(os.urandom(32), tx.transaction_id))
    assert tuple(ei.value.fail_info_names) == ("badRequest",)


def test_kem_genm_for_a_foreign_certificate_is_refused(pq, tmp_path: Path) -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foreign")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(generate_key("ML-KEM-768").public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(ca, hashes.SHA256()))
    with pytest.raises(CMPErrorMessage) as ei:
        _genm_kem(pq, cert)
    assert tuple(ei.value.fail_info_names) == ("notAuthorized",)


def test_kem_mac_response_verification_needs_the_secret(pq, kem_identity) -> None:
    """The client checks the CA's KEM-MAC-protected answer: a different secret fails cleanly."""
    from cmpclient.protection import verify_protection
    from cmpclient.protection.kem import KEMMACProtection, decapsulate_ciphertext_info

    cert, key = _holder(kem_identity)
    tx, info = _genm_kem(pq, cert)
    ss = decapsulate_ciphertext_info(key, info)
    result = _kur_with(pq, tx, cert, KEMMACProtection(ss, tx.transaction_id))
    kup = result.response.der if hasattr(result, "response") else tx.last_response.der  # type: ignore[union-attr]
    last = tx.last_response
    verify_protection(last.der, last.message, kem_secret=ss)
    with pytest.raises(ProtectionError) as ei:
        verify_protection(last.der, last.message, kem_secret=os.urandom(32))
    assert ei.value.fail_info == "badMessageCheck"
    assert kup


class _UnprotectGenp:
    """A transport that strips the protection from the server's genp (RFC 9810 figure 3 sends
    it unprotected) and passes everything else through unchanged."""

    def __init__(self, inner):
        self.inner = inner
        self.stripped = 0
        self.answers: list[str] = []

    def send(self, der: bytes) -> bytes:
        from cmpclient.asn1 import cmp

        answer = self.inner.send(der)
        msg = codec.decode(answer, cmp.PKIMessage())
        self.answers.append(msg["body"].getName())
        if msg["body"].getName() != "genp":
            return answer
        header = cmp.PKIHeader()
        for name in [nt.name for nt in cmp.PKIHeader.componentType.namedTypes]:
            if name != "protectionAlg" and msg["header"][name].isValue:
                header[name] = msg["header"][name]
        plain = cmp.PKIMessage()
        plain["header"] = header
        plain["body"] = msg["body"]
        self.stripped += 1
        return der_encoder.encode(plain)

    def close(self) -> None:
        self.inner.close()


def test_kem_mac_after_an_unprotected_genp(pq, kem_identity) -> None:
    """RFC 9810 §5.1.3.4 figure 3: the genp with the ciphertext may be unprotected. The client
    accepts it and MACs its request (the CA verifies and answers); but a KEM-based MAC on the
    answer no longer shows who answered, so the client refuses it (wrongIntegrity)."""
    import dataclasses

    from cmpclient.client import enroll
    from cmpclient.client.kem import establish_kem_mac
    from cmpclient.message.request import CertRequestBuilder

    cert, key = _holder(kem_identity)
    base = _config(pq)
    strip = _UnprotectGenp(base.transport)
    tx, cfg = establish_kem_mac(dataclasses.replace(base, transport=strip), key, cert)
    assert strip.stripped == 1 and cfg.protection.peer_authenticated is False
    new = generate_key("ML-KEM-768")
    req = (CertRequestBuilder().subject(cert.subject).public_key(new).old_cert_id(cert.issuer, cert.serial_number)
           .popo_key_encipherment().build())
    with pytest.raises(ProtectionError) as ei:
        enroll(cfg, "kur", req, transaction=tx, new_private_key=new)
    assert ei.value.fail_info == "wrongIntegrity" and "unprotected" in ei.value.message
    assert "sign" in ei.value.diagnostics()
    # the CA did verify the KEM-MAC-protected kur: it answered a kup, not an error
    assert strip.answers == ["genp", "kup"]
    # an unprotected genp is accepted only for this exchange: the same shape elsewhere is refused
    from cmpclient.client.transaction import Transaction
    from cmpclient.message import body as B

    plain_tx = Transaction(dataclasses.replace(base, transport=strip, sender=cert.subject,
                                               extra_certs=[cert.public_bytes(serialization.Encoding.DER)]))
    with pytest.raises(ProtectionError, match="not protected"):
        plain_tx.exchange(B.genm_body([(oids.IT_KEM_CIPHERTEXT_INFO, None)], as_der=True), expect=["genp"])


def test_kem_mac_after_a_signed_genp_still_authenticates_the_ca(pq, kem_identity) -> None:
    from cmpclient.client.kem import establish_kem_mac

    cert, key = _holder(kem_identity)
    tx, cfg = establish_kem_mac(_config(pq), key, cert)
    assert cfg.protection.peer_authenticated is True
    _kur_with(pq, tx, cert, cfg.protection)  # the CA's KEM-MAC-protected kup is accepted
