"""Message protection: MAC (PasswordBasedMac, PBMAC1), signatures, and signer trust.

Public API (see :mod:`.protect`, :mod:`.mac`, :mod:`.signature`, :mod:`.trust`)::

    MACProtection(secret, params=None, sender_kid=None)
    SignatureProtection(private_key, cert, chain=(), digest="sha256", rsa_pss=False)
    protect_message(message, protection) -> new PKIMessage
    protect_der(header_der, body_der, protection, extra_certs=()) -> DER  (the fast path)
    header_protection_alg(protection) -> protectionAlg for HeaderBuilder (DER when the protection writes it)
    verify_protection(message_der, message=None, *, secret, trusted, pinned, untrusted,
                      max_pbm_iterations=10000, require_key_usage=True, at_time=None)
        (message: the pyasn1 PKIMessage or the ParsedMessage of message_der)
        -> VerifiedProtection(kind, algorithm, signer_cert, chain)
    PBMParams(salt, owf, iterations, mac), PBMAC1Params(salt, iterations, prf, mac, key_length)
    signature_algorithm / sign / verify / digest_of_signature_algorithm / certificate_hash
    verify_signer(signer_cert, *, extra_certs, trusted, pinned, untrusted, at_time, require_key_usage)
"""

from cmpclient.protection.mac import PBMAC1Params, PBMParams
from cmpclient.protection.protect import (
    MACProtection,
    Protection,
    SignatureProtection,
    VerifiedProtection,
    header_protection_alg,
    protect_der,
    protect_message,
    verify_protection,
)
from cmpclient.protection.signature import (
    certificate_hash,
    digest_algorithm_identifier,
    digest_of_signature_algorithm,
    popo_signer,
    sign,
    signature_algorithm,
    verify,
)
from cmpclient.protection.trust import verify_signer

__all__ = [
    "MACProtection",
    "SignatureProtection",
    "Protection",
    "VerifiedProtection",
    "protect_message",
    "protect_der",
    "header_protection_alg",
    "verify_protection",
    "PBMParams",
    "PBMAC1Params",
    "signature_algorithm",
    "sign",
    "popo_signer",
    "verify",
    "digest_of_signature_algorithm",
    "digest_algorithm_identifier",
    "certificate_hash",
    "verify_signer",
]
