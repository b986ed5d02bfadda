"""Self-check of the recorded openssl vectors and their manifest (no cmpclient code involved).

Proves the manifest carries enough to verify each vector: every file decodes as exactly one DER
PKIMessage with the recorded body type, PBM protection verifies with the recorded secret,
signature protection verifies with the recorded signer certificate, and a flipped byte in the
protected part is detected. Independent pieces only: raw DER slicing, pyasn1-alt-modules,
cryptography. Our library's own tests use the same vectors through cmpclient.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((REPO / "tests" / "vectors" / "manifest.json").read_text())
VECTORS = MANIFEST["vectors"]

HASHES = {"2.16.840.1.101.3.4.2.1": "sha256", "1.3.14.3.2.26": "sha1"}
MACS = {"1.3.6.1.5.5.8.1.2": "sha1", "1.2.840.113549.2.9": "sha256"}


def tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of element) of the DER element at pos."""
    tag = data[pos]
    n = data[pos + 1]
    if n < 0x80:
        return tag, pos + 2, pos + 2 + n
    k = n & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + k], "big")
    return tag, pos + 2 + k, pos + 2 + k + length


def split_message(der: bytes) -> tuple[bytes, bytes, bytes | None, bytes | None]:
    """(ProtectedPart DER, protection BIT STRING value, extraCerts [1] value or None)."""
    tag, start, end = tlv(der, 0)
    assert tag == 0x30 and end == len(der)
    _, _, h_end = tlv(der, start)
    _, _, b_end = tlv(der, h_end)
    content = der[start:b_end]
    if len(content) < 0x80:
        prot_part = b"\x30" + bytes([len(content)]) + content
    else:
        ln = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
        prot_part = b"\x30" + bytes([0x80 | len(ln)]) + ln + content
    protection = extra = None
    pos = b_end
    while pos < end:
        t, vs, ve = tlv(der, pos)
        if t == 0xA0:
            _, bs, be = tlv(der, vs)
            assert der[bs] == 0  # no unused bits
            protection = der[bs + 1 : be]
        elif t == 0xA1:
            extra = der[vs:ve]
        pos = ve
    return prot_part, protection, extra


def pbm_mac(secret: bytes, salt: bytes, owf: str, iterations: int, mac: str, data: bytes) -> bytes:
    key = secret + salt
    for _ in range(iterations):
        key = hashlib.new(owf, key).digest()
    return hmac.new(key, data, mac).digest()


def verify(vec: dict, der: bytes) -> None:
    from pyasn1.codec.der import decoder
    from pyasn1_alt_modules import rfc9810

    prot_part, protection, extra = split_message(der)
    assert protection is not None
    prot = vec["protection"]
    if prot["type"] == "pbm":
        _, start, _ = tlv(der, 0)
        _, _, h_end = tlv(der, start)
        header, _ = decoder.decode(der[start:h_end], asn1Spec=rfc9810.PKIHeader())
        params, _ = decoder.decode(header["protectionAlg"]["parameters"],
                                   asn1Spec=rfc9810.PBMParameter())
        expect = pbm_mac(prot["secret"].encode(), bytes(params["salt"]),
                         HASHES[str(params["owf"]["algorithm"])], int(params["iterationCount"]),
                         MACS[str(params["mac"]["algorithm"])], prot_part)
        if not hmac.compare_digest(expect, protection):
            raise ValueError("PBM mismatch")
    else:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

        cert = x509.load_pem_x509_certificate((REPO / prot["signer_cert"]).read_bytes())
        pub = cert.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(protection, prot_part, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(protection, prot_part, ec.ECDSA(hashes.SHA256()))
        else:  # pragma: no cover - OpenSSL 3.0 cannot sign CMP with anything else here
            raise AssertionError(type(pub))


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_matches_manifest_and_verifies(vec):
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_alt_modules import rfc9810

    der = (REPO / vec["file"]).read_bytes()
    assert hashlib.sha256(der).hexdigest() == vec["sha256"]
    msg, rest = decoder.decode(der, asn1Spec=rfc9810.PKIMessage())
    assert rest == b"" and encoder.encode(msg) == der
    assert msg["body"].getName() == vec["body"]
    verify(vec, der)
    if vec["protection"]["type"] == "signature":  # the signer travels first in extraCerts
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        first = encoder.encode(msg["extraCerts"][0])
        signer = x509.load_pem_x509_certificate((REPO / vec["protection"]["signer_cert"]).read_bytes())
        assert first == signer.public_bytes(Encoding.DER)


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_flipped_byte_is_detected(vec):
    der = bytearray((REPO / vec["file"]).read_bytes())
    # flip a byte in the last octet of the body (inside the protected part, keeps DER shape)
    _, start, _ = tlv(bytes(der), 0)
    _, _, h_end = tlv(bytes(der), start)
    _, _, b_end = tlv(bytes(der), h_end)
    der[b_end - 1] ^= 0x01
    from cryptography.exceptions import InvalidSignature

    if vec["protection"]["type"] == "pbm":
        with pytest.raises(ValueError, match="PBM mismatch"):
            verify(vec, bytes(der))
    else:
        with pytest.raises(InvalidSignature):
            verify(vec, bytes(der))


def test_manifest_covers_the_scenarios():
    bodies = {v["body"] for v in VECTORS}
    assert {"ir", "ip", "cr", "cp", "kur", "kup", "p10cr", "certConf", "pkiconf", "rr", "rp",
            "genm", "genp", "pollReq", "pollRep", "error"} <= bodies
    for sc in MANIFEST["scenarios"]:
        files = [v for v in VECTORS if v["scenario"] == sc["name"]]
        assert [v["body"] for v in files if v["direction"] == "request"] == sc["requests"]
        assert [v["body"] for v in files if v["direction"] == "response"] == sc["responses"]
