"""Signer trust: chain building to trust anchors, and the failures users will meet."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cmpclient.errors import TrustError
from cmpclient.protection.trust import verify_signer

from protection_testlib import NOW, make_cert


def test_chain_through_extra_certs(pki):
    chain = verify_signer(pki.ee, extra_certs=[pki.ee, pki.sub], trusted=[pki.root])
    assert chain == [pki.ee, pki.sub, pki.root]


def test_chain_through_untrusted_and_trusted_intermediate(pki):
    assert verify_signer(pki.ee, extra_certs=[], untrusted=[pki.sub], trusted=[pki.root]) == [pki.ee, pki.sub, pki.root]
    # A trusted intermediate ends the chain early.
    assert verify_signer(pki.ee, trusted=[pki.sub]) == [pki.ee, pki.sub]
    # A directly trusted signer is a chain of one.
    assert verify_signer(pki.ee, trusted=[pki.ee]) == [pki.ee]


def test_untrusted_root_is_named(pki):
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_root = make_cert("Other Root", other_key, ca=True, key_usage="ca")
    with pytest.raises(TrustError, match="chains to the root 'CN=Test Root CA', which is not trusted") as err:
        verify_signer(pki.ee, extra_certs=[pki.sub, pki.root], trusted=[other_root])
    assert "--trusted" in err.value.diagnostics()
    with pytest.raises(TrustError, match="no trusted or intermediate certificate issued 'CN=Test Sub CA'"):
        verify_signer(pki.ee, extra_certs=[pki.sub], trusted=[other_root])


def test_missing_intermediate(pki):
    with pytest.raises(TrustError, match="issued 'CN=CMP Server'.*issuer 'CN=Test Sub CA'") as err:
        verify_signer(pki.ee, extra_certs=[], trusted=[pki.root])
    assert err.value.fail_info == "signerNotTrusted"


def test_no_trust_anchor_configured(pki):
    with pytest.raises(TrustError, match="no trust anchor is configured") as err:
        verify_signer(pki.ee, extra_certs=[pki.sub], trusted=None)
    assert "pass the CA certificate with --trusted" in err.value.diagnostics()


def test_expired_signer(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    expired = make_cert(
        "Expired Server", key, issuer=(pki.sub, pki.sub_key),
        not_before=NOW - datetime.timedelta(days=10), not_after=NOW - datetime.timedelta(hours=1),
    )
    with pytest.raises(TrustError, match="signer certificate 'CN=Expired Server' has expired"):
        verify_signer(expired, extra_certs=[pki.sub], trusted=[pki.root])
    # at_time in its validity period accepts it.
    assert verify_signer(expired, extra_certs=[pki.sub], trusted=[pki.root], at_time=NOW - datetime.timedelta(hours=2))


def test_not_yet_valid_signer(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    future = make_cert("Future", key, issuer=(pki.sub, pki.sub_key), not_before=NOW + datetime.timedelta(days=1))
    with pytest.raises(TrustError, match="is not yet valid"):
        verify_signer(future, extra_certs=[pki.sub], trusted=[pki.root])


def test_signer_without_digital_signature(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    enc_only = make_cert("Enc Only", key, issuer=(pki.sub, pki.sub_key), key_usage="keyEncipherment")
    with pytest.raises(TrustError, match="'CN=Enc Only' has keyUsage without digitalSignature"):
        verify_signer(enc_only, extra_certs=[pki.sub], trusted=[pki.root])
    assert verify_signer(enc_only, extra_certs=[pki.sub], trusted=[pki.root], require_key_usage=False)
    # No keyUsage extension at all is fine.
    no_ku = make_cert("No KU", key, issuer=(pki.sub, pki.sub_key), key_usage=None)
    assert verify_signer(no_ku, extra_certs=[pki.sub], trusted=[pki.root])


def test_intermediate_not_ca(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    not_ca = make_cert("Not A CA", key, issuer=(pki.root, pki.root_key), ca=False, key_usage="ca")
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee = make_cert("Leaf", ee_key, issuer=(not_ca, key))
    with pytest.raises(TrustError, match="intermediate certificate 'CN=Not A CA' is not a CA"):
        verify_signer(ee, extra_certs=[not_ca], trusted=[pki.root])
    no_bc = make_cert("No BC", key, issuer=(pki.root, pki.root_key), ca=None, key_usage="ca")
    ee2 = make_cert("Leaf2", ee_key, issuer=(no_bc, key))
    with pytest.raises(TrustError, match="'CN=No BC' has no basicConstraints"):
        verify_signer(ee2, extra_certs=[no_bc], trusted=[pki.root])


def test_path_length_constraint(pki):
    k1, k2, k3 = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca0 = make_cert("CA pathlen 0", k1, issuer=(pki.root, pki.root_key), ca=True, key_usage="ca", path_length=0)
    ca1 = make_cert("CA below", k2, issuer=(ca0, k1), ca=True, key_usage="ca")
    leaf = make_cert("Leaf", k3, issuer=(ca1, k2))
    with pytest.raises(TrustError, match="pathLenConstraint 0"):
        verify_signer(leaf, extra_certs=[ca1, ca0], trusted=[pki.root])


def test_wrong_signature_on_chain(pki):
    # Same subject name as the Sub CA but a different key: the issuer match fails on signature.
    fake_key = ec.generate_private_key(ec.SECP256R1())
    fake_sub = make_cert("Test Sub CA", fake_key, issuer=(pki.root, pki.root_key), ca=True, key_usage="ca", ski=False)
    with pytest.raises(TrustError, match="does not verify with the key of 'CN=Test Sub CA'"):
        verify_signer(pki.ee, extra_certs=[fake_sub], trusted=[pki.root])


def test_pinned_overrides_chain(pki):
    assert verify_signer(pki.ee, pinned=pki.ee, trusted=None) == [pki.ee]
    with pytest.raises(TrustError, match="not by the pinned certificate 'CN=Test Sub CA'"):
        verify_signer(pki.ee, pinned=pki.sub)


def test_expired_trust_anchor(pki):
    old_key = ec.generate_private_key(ec.SECP256R1())
    old_root = make_cert("Old Root", old_key, ca=True, key_usage="ca",
                         not_before=NOW - datetime.timedelta(days=10), not_after=NOW - datetime.timedelta(days=2))
    leaf = make_cert("Leaf", ec.generate_private_key(ec.SECP256R1()), issuer=(old_root, old_key))
    with pytest.raises(TrustError, match="trust anchor certificate 'CN=Old Root' has expired"):
        verify_signer(leaf, trusted=[old_root])
