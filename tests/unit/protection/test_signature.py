"""Signature algorithm identifiers, sign/verify round trips and certHash digests."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_modules import rfc4055

from cmpclient.asn1 import oids
from cmpclient.errors import ProtectionError, UsageError
from cmpclient.protection import signature as sig

from protection_testlib import KEY_TYPES, key_of

DATA = b"ProtectedPart DER bytes"


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_sign_verify_round_trip_and_tamper(kind):
    key = key_of(kind)
    alg = sig.signature_algorithm(key, "sha256", rsa_pss=KEY_TYPES[kind][1])
    signature = sig.sign(key, alg, DATA)
    sig.verify(key.public_key(), alg, DATA, signature)
    with pytest.raises(ProtectionError, match="does not verify"):
        sig.verify(key.public_key(), alg, DATA[:-1] + b"X", signature)
    flipped = bytearray(signature)
    flipped[len(flipped) // 2] ^= 0x40
    with pytest.raises(ProtectionError):
        sig.verify(key.public_key(), alg, DATA, bytes(flipped))


@pytest.mark.parametrize(
    "kind,digest,oid,params",
    [
        ("rsa", "sha224", oids.SHA224_WITH_RSA, b"\x05\x00"),
        ("rsa", "sha512", oids.SHA512_WITH_RSA, b"\x05\x00"),
        ("ec-p256", "sha256", oids.ECDSA_WITH_SHA256, None),
        ("ec-p521", "sha512", oids.ECDSA_WITH_SHA512, None),
        ("ed25519", "sha256", oids.ED25519, None),
        ("ed448", "sha256", oids.ED448, None),
        ("ml-dsa-44", "sha256", oids.ML_DSA_44, None),
        ("ml-dsa-65", "sha256", oids.ML_DSA_65, None),
        ("ml-dsa-87", "sha256", oids.ML_DSA_87, None),
    ],
)
def test_algorithm_identifiers(kind, digest, oid, params):
    alg = sig.signature_algorithm(key_of(kind), digest)
    assert str(alg["algorithm"]) == oid
    assert (bytes(alg["parameters"]) if alg["parameters"].isValue else None) == params


@pytest.mark.parametrize("kind", list(KEY_TYPES))
@pytest.mark.parametrize("digest", ["sha256", "sha512"])
def test_popo_signer_writes_the_identifier_pyasn1_encodes(kind, digest):
    """popo_signer writes its AlgorithmIdentifier without pyasn1: the same bytes as
    encoding signature_algorithm(), the same parsed scheme, a signature that verifies."""
    from cmpclient.asn1 import codec

    key = key_of(kind)
    rsa_pss = KEY_TYPES[kind][1]
    alg = sig.signature_algorithm(key, digest, rsa_pss=rsa_pss)
    alg_der, signature = sig.popo_signer(key, digest, rsa_pss)(DATA)
    assert alg_der == codec.encode(alg)
    sig.verify(key.public_key(), alg, DATA, signature)


@pytest.mark.parametrize("digest,size", [("sha256", 32), ("sha384", 48), ("sha512", 64)])
def test_rsa_pss_parameters(digest, size):
    alg = sig.signature_algorithm(key_of("rsa"), digest, rsa_pss=True)
    assert str(alg["algorithm"]) == oids.RSASSA_PSS
    params, _ = der_decoder.decode(bytes(alg["parameters"]), asn1Spec=rfc4055.RSASSA_PSS_params())
    hash_oid = sig.DIGESTS[digest][0]
    assert str(params["hashAlgorithm"]["algorithm"]) == hash_oid
    assert str(params["maskGenAlgorithm"]["algorithm"]) == oids.MGF1
    assert int(params["saltLength"]) == size
    assert sig.parse_signature_algorithm(alg).mgf_digest == digest


def test_key_and_algorithm_mismatch():
    alg = sig.signature_algorithm(key_of("ec-p256"))
    with pytest.raises(ProtectionError, match="ecdsa-with-SHA256: the key type RSA-2048 does not match"):
        sig.verify(key_of("rsa").public_key(), alg, DATA, b"x")
    with pytest.raises(UsageError):
        sig.sign(key_of("ed25519"), alg, DATA)
    with pytest.raises(UsageError, match="RSA-PSS was requested"):
        sig.signature_algorithm(key_of("ec-p256"), rsa_pss=True)


def test_unsupported_algorithms_are_bad_alg():
    from pyasn1_modules import rfc5280

    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = oids.SHA1_WITH_RSA
    with pytest.raises(ProtectionError, match="unsupported signature algorithm") as err:
        sig.parse_signature_algorithm(alg)
    assert err.value.fail_info == "badAlg"
    with pytest.raises(UsageError, match="valid: sha224, sha256"):
        sig.signature_algorithm(key_of("rsa"), "sha1")


@pytest.mark.parametrize(
    "kind,rsa_pss,digest,expected",
    [
        ("rsa", False, "sha384", hashes.SHA384),
        ("rsa-pss", True, "sha512", hashes.SHA512),
        ("ec-p256", False, "sha256", hashes.SHA256),
        ("ed25519", False, "sha256", hashes.SHA512),  # RFC 9481 §3.3 / RFC 8419
        ("ed448", False, "sha256", hashes.SHAKE256),  # SHAKE256, 512-bit output
        ("ml-dsa-44", False, "sha256", hashes.SHA512),
        ("ml-dsa-87", False, "sha256", hashes.SHA512),
    ],
)
def test_digest_of_signature_algorithm(kind, rsa_pss, digest, expected):
    result = sig.digest_of_signature_algorithm(sig.signature_algorithm(key_of(kind), digest, rsa_pss))
    assert isinstance(result, expected)
    if expected is hashes.SHAKE256:
        assert result.digest_size == 64
        assert str(sig.digest_algorithm_identifier(result)["algorithm"]) == oids.SHAKE256


def test_certificate_hash(pki):
    from cryptography.hazmat.primitives.serialization import Encoding
    import hashlib

    der = pki.ee.public_bytes(Encoding.DER)
    value, used = sig.certificate_hash(der)
    assert isinstance(used, hashes.SHA256) and value == hashlib.sha256(der).digest()


def test_certificate_hash_remembers_the_digest_per_signature_algorithm_only():
    """certificate_hash keeps the digest of each signatureAlgorithm it has seen: certificates
    signed differently, in any order and again, each get their own hash."""
    import datetime
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    def cert(key, algorithm):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h")])
        now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, algorithm).public_bytes(Encoding.DER))

    def pss_cert(key, algorithm):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p")])
        now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        pad = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, algorithm, rsa_padding=pad).public_bytes(Encoding.DER))

    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    made = [(cert(ec_key, hashes.SHA256()), "sha256"), (cert(ec_key, hashes.SHA384()), "sha384"),
            (cert(ec_key, hashes.SHA512()), "sha512"), (cert(ed25519.Ed25519PrivateKey.generate(), None), "sha512"),
            # one OID (id-RSASSA-PSS), the hash in the parameters: the cache must key on the whole DER
            (pss_cert(rsa_key, hashes.SHA256()), "sha256"), (pss_cert(rsa_key, hashes.SHA384()), "sha384")]
    sig._CERT_HASH_DIGESTS.clear()
    for round_ in range(2):  # the second round is answered from what the first remembered
        for der, name in made + made[::-1]:
            value, used = sig.certificate_hash(der)
            assert used.name == name and value == hashlib.new(name, der).digest()
        remembered = {alg: d.name for alg, d in sig._CERT_HASH_DIGESTS.items()}
        assert remembered == {sig._signature_algorithm_der(der): name for der, name in made}
    # an unknown algorithm is refused every time, never remembered
    bad = bytearray(made[0][0])
    oid = bytes.fromhex("2a8648ce3d040302")  # ecdsa-with-SHA256 in the outer signatureAlgorithm
    at = bad.rindex(oid)
    bad[at + len(oid) - 1] = 0x7F
    for _ in range(2):
        with pytest.raises(ProtectionError):
            sig.certificate_hash(bytes(bad))
    assert sig._signature_algorithm_der(bytes(bad)) not in sig._CERT_HASH_DIGESTS


def test_one_popo_signer_serves_many_threads():
    """popo_signer parses its algorithm once; bench --newkey shares one signer between its
    workers: every signature made concurrently must verify."""
    import threading

    from cryptography.hazmat.primitives.asymmetric import ec

    from cmpclient.asn1 import codec
    from pyasn1_modules import rfc5280

    for key in (ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(public_exponent=65537, key_size=2048)):
        signer = sig.popo_signer(key)
        results: list[tuple[bytes, bytes, bytes]] = []
        lock = threading.Lock()

        def work(n: int) -> None:
            for i in range(40):
                data = f"{n}-{i}".encode()
                alg_der, signature = signer(data)
                with lock:
                    results.append((data, alg_der, signature))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 8 * 40
        for data, alg_der, signature in results:
            sig.verify(key.public_key(), codec.decode(alg_der, rfc5280.AlgorithmIdentifier()), data, signature)


def test_certificate_hash_leaves_what_the_der_reader_declines_to_the_full_decoder():
    """certificate_hash reads the signatureAlgorithm with the strict DER reader; a non-DER
    one (a long-form length for 10 bytes) goes to pyasn1's strict decode, which refuses it
    with its own words; a PSS identifier is still read (its parameters by pyasn1)."""
    from cmpclient.asn1 import codec
    from cmpclient.errors import DecodeError

    oid = codec.oid_der(oids.ECDSA_WITH_SHA256)

    def fake_cert(alg: bytes) -> bytes:
        inner = b"\x30\x00" + alg + b"\x03\x01\x00"
        return codec.der_header(0x30, len(inner)) + inner

    sig._CERT_HASH_DIGESTS.clear()
    with pytest.raises(DecodeError, match="certificate signatureAlgorithm: not DER"):
        sig.certificate_hash(fake_cert(b"\x30\x81" + bytes((len(oid),)) + oid))
    value, used = sig.certificate_hash(fake_cert(codec.algorithm_identifier_der(oids.ECDSA_WITH_SHA256)))
    assert isinstance(used, hashes.SHA256)
    with pytest.raises(ProtectionError, match="parameters must be absent"):
        sig.certificate_hash(fake_cert(codec.algorithm_identifier_der(oids.ECDSA_WITH_SHA384, b"\x05\x00")))
    pss = sig.signature_algorithm(key_of("rsa"), "sha384", rsa_pss=True)
    assert isinstance(sig.certificate_hash(fake_cert(codec.encode(pss)))[1], hashes.SHA384)
