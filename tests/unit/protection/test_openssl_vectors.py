"""Independent-peer proof: messages recorded from the real ``openssl cmp`` client and mock
server (tests/vectors/manifest.json) verify with cmpclient.protection, and a copy with one
byte of the protection BIT STRING flipped is rejected."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509

from cmpclient.asn1 import codec
from cmpclient.errors import ProtectionError
from cmpclient.protection import verify_protection

REPO = Path(__file__).resolve().parents[3]
MANIFEST_PATH = REPO / "tests" / "vectors" / "manifest.json"

if not MANIFEST_PATH.exists():  # pragma: no cover - the vectors are committed with the repo
    pytest.skip("tests/vectors/manifest.json is missing", allow_module_level=True)

MANIFEST = json.loads(MANIFEST_PATH.read_text())
VECTORS = MANIFEST["vectors"]
# Verify at the time the vectors were recorded so that fixture expiry cannot break the test.
RECORDED_AT = datetime.datetime.fromisoformat(MANIFEST["generated_at"])


def _pem_certs(rel: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((REPO / rel).read_bytes())


def flip_protection_byte(der: bytes) -> bytes:
    """Flip the last octet of the protection BIT STRING (the [0] element after the body)."""
    _, start, _ = codec.read_tlv(der, 0)
    _, _, header_end = codec.read_tlv(der, start)
    _, _, body_end = codec.read_tlv(der, header_end)
    tag, prot_start, _ = codec.read_tlv(der, body_end)
    assert tag == 0xA0, "message has no protection"
    bit_tag, bits_start, bits_end = codec.read_tlv(der, prot_start)
    assert bit_tag == 0x03 and bits_end - bits_start > 1
    out = bytearray(der)
    out[bits_end - 1] ^= 0x01
    return bytes(out)


def _verify(vec: dict, der: bytes):
    prot = vec["protection"]
    if prot["type"] == "pbm":
        return verify_protection(der, secret=prot["secret"].encode())
    return verify_protection(
        der,
        trusted=_pem_certs(prot["trusted"]),
        untrusted=_pem_certs(prot["chain"]),
        at_time=RECORDED_AT,
    )


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_openssl_vector_verifies(vec):
    der = (REPO / vec["file"]).read_bytes()
    result = _verify(vec, der)
    if vec["protection"]["type"] == "pbm":
        assert result.kind == "mac"
    else:
        assert result.kind == "signature"
        signer = _pem_certs(vec["protection"]["signer_cert"])[0]
        assert result.signer_cert == signer
        assert result.chain[0] == signer
        assert result.chain[-1] in _pem_certs(vec["protection"]["trusted"])
        # Pinning the signer (openssl -srvcert) works as well.
        assert verify_protection(der, pinned=signer).signer_cert == signer


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_openssl_vector_with_flipped_protection_is_rejected(vec):
    der = flip_protection_byte((REPO / vec["file"]).read_bytes())
    with pytest.raises(ProtectionError):
        _verify(vec, der)


@pytest.mark.parametrize("vec", [v for v in VECTORS if v["protection"]["type"] == "pbm"][:3], ids=lambda v: v["name"])
def test_openssl_pbm_vector_with_wrong_secret_is_rejected(vec):
    der = (REPO / vec["file"]).read_bytes()
    with pytest.raises(ProtectionError, match="PBM protection is wrong"):
        verify_protection(der, secret=b"not-the-secret")


def test_openssl_pbm_vector_over_iteration_limit_is_refused():
    vec = next(v for v in VECTORS if v["protection"]["type"] == "pbm")
    der = (REPO / vec["file"]).read_bytes()
    count = vec["protection"]["params"]["iteration_count"]
    with pytest.raises(ProtectionError, match=f"PBM iteration count {count} exceeds the limit {count - 1}") as err:
        verify_protection(der, secret=vec["protection"]["secret"].encode(), max_pbm_iterations=count - 1)
    assert err.value.fail_info == "badRequest"
