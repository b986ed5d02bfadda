"""CA hierarchy and issuance, parametrised over the CA key type."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from testca_testlib import B, ir, issued_cert, load_material, mac, message, send, sig

from cmpclient.asn1 import oids
from cmpclient.keys import decrypt_returned_private_key, make_protocol_encr_key
from cmpclient.message.request import CertRequestBuilder
from cmpclient.protection import verify_protection
from cmpclient.protection.trust import subject_key_identifier
from cmpclient.testca import DEFAULT_CONFIG_TOML, TestCA, load_config


def test_hierarchy_extensions(testca) -> None:
    root, issuing = testca.ca("RootCA").cert, testca.ca("ManagementCA").cert
    assert root.subject == root.issuer and issuing.issuer == root.subject
    issuing.verify_directly_issued_by(root)
    bc = issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = issuing.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and ku.digital_signature
    aki = issuing.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == subject_key_identifier(root)


def test_issued_certificate_extensions(testca) -> None:
    cert = issued_cert(ir(testca, "ra", "CN=exts,UID=exts", protection=mac()))
    issuing = testca.ca("ManagementCA").cert
    cert.verify_directly_issued_by(issuing)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == subject_key_identifier(issuing)
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment


@pytest.mark.parametrize("ca_key", ["secp384r1", "Ed25519", "ML-DSA-65"])
def test_other_ca_key_types(tmp_path: Path, ca_key: str) -> None:
    text = DEFAULT_CONFIG_TOML
    for name in ("RootCA", "ManagementCA"):
        text = text.replace(f'name = "{name}"\nkey = "RSA2048"', f'name = "{name}"\nkey = "{ca_key}"')
    ca = TestCA.from_config(load_config(text=text), tmp_path)
    try:
        rsp = ir(ca, "ra-sig", "CN=keytype", protection=sig(*load_material(tmp_path, "ra", "raadmin")))
        cert = issued_cert(rsp)
        cert.verify_directly_issued_by(ca.ca("ManagementCA").cert)
        verify_protection(rsp.der, rsp.message, trusted=[ca.ca("RootCA").cert])
        assert rsp.header.sender_kid == subject_key_identifier(ca.ca("ManagementCA").cert)
        pek_key, pek = make_protocol_encr_key("EC")
        crm = CertRequestBuilder().subject("CN=sg").control(oids.REGCTRL_PROTOCOL_ENCR_KEY, pek).popo_none().build()
        rsp = send(ca, "servergen", message(B.cert_req_body("ir", [crm]), mac(), pvno=3))
        key = decrypt_returned_private_key(rsp.content.response(0).private_key.der, private_key=pek_key,
                                           signer_certificate=ca.ca("ManagementCA").cert)
        assert key.public_key() == issued_cert(rsp).public_key()
    finally:
        ca.close()
