"""KEM-based MAC for a client holding an ML-KEM certificate (RFC 9810 section 5.1.3.4).

:func:`establish_kem_mac` runs the genm/genp exchange that delivers a ``KemCiphertextInfo``
and returns the :class:`~cmpclient.client.transaction.Transaction` whose later messages
(ir/cr/kur and certConf) carry the KEM-based MAC::

    tx, cfg = establish_kem_mac(config, kem_key, kem_cert)
    result = enroll(cfg, "kur", request, transaction=tx, new_private_key=new_key)

The genm is unprotected (the KEM key cannot sign) and carries the KEM certificate first in
extraCerts. The genp may be protected (our test CA signs it; then it is verified like any
response, and the server's later answers may carry the KEM-based MAC too) or unprotected,
as in RFC 9810's figure 3 -- then the KEM-based MAC only authenticates *us*, and the
server's answers must be signed (a KEM-MAC-protected answer is refused with
wrongIntegrity).  Everything after the genp stays in the same transaction: the
transactionID is bound into the MAC key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cmpclient.asn1 import oids
from cmpclient.client.transaction import ClientConfig, Transaction
from cmpclient.errors import KeyLoadError, ProtocolError, UsageError
from cmpclient.message import body as bodies
from cmpclient.protection.kem import KemBMParams, KEMMACProtection, decapsulate_ciphertext_info, kem_algorithm_oid

__all__ = ["establish_kem_mac"]


def establish_kem_mac(
    config: ClientConfig,
    kem_key: Any,
    kem_cert: x509.Certificate,
    *,
    params: KemBMParams | None = None,
    chain: list[x509.Certificate] | None = None,
) -> tuple[Transaction, ClientConfig]:
    """genm(id-it-KemCiphertextInfo) -> genp(KemCiphertextInfo), decapsulate, and return the
    transaction plus a config whose protection is the KEM-based MAC (pvno 3)."""
    if kem_algorithm_oid(kem_key) is None:
        raise UsageError("the KEM key must be an ML-KEM-768 or ML-KEM-1024 private key")
    if kem_cert.public_key() != kem_key.public_key():
        raise KeyLoadError("the KEM private key does not belong to the KEM certificate",
                           hint="pass the key that matches --cert")
    certs = [kem_cert.public_bytes(Encoding.DER)] + [c.public_bytes(Encoding.DER) for c in chain or ()]
    sender = config.sender if config.sender is not None else kem_cert.subject
    genm_cfg = dataclasses.replace(config, protection=None, pvno=3, sender=sender,
                                   extra_certs=certs + [c for c in config.extra_certs if c not in certs])
    tx = Transaction(genm_cfg)
    tx.accept_unprotected_once = True
    # The certificate request that follows belongs to this transaction: keep its connection.
    rsp = tx.exchange(bodies.genm_body([(oids.IT_KEM_CIPHERTEXT_INFO, None)], as_der=True), expect=["genp"],
                      continues=True)
    value = next((v for oid, v in rsp.content or () if oid == oids.IT_KEM_CIPHERTEXT_INFO), None)  # type: ignore[union-attr]
    if value is None:
        raise ProtocolError("the genp carries no KemCiphertextInfo: the server does not offer KEM-based MAC",
                            fail_info="badAlg")
    ss = decapsulate_ciphertext_info(kem_key, value)
    tx.accept_unprotected_once = False
    protection = KEMMACProtection(ss, tx.transaction_id, params, peer_authenticated=rsp.protected)
    kem_cfg = dataclasses.replace(config, protection=protection, pvno=3, sender=sender)
    tx.config = kem_cfg
    tx.pvno_used = 3
    return tx, kem_cfg
