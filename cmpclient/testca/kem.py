"""The test CA's side of KEM-based MAC (RFC 9810 section 5.1.3.4).

* ``genm`` with ``id-it-KemCiphertextInfo``: the first extraCert with an ML-KEM key must be a
  certificate this CA issued (active, unexpired).  The CA encapsulates to it and answers a
  signed ``genp`` with ``KemCiphertextInfo``; the shared secret is kept with the transaction
  (``auth_kind "kem"``; like the clear-text passwords of client-mode HMAC, the test CA keeps
  it in its store so any worker process can continue the transaction).
* A later ir/cr/kur/certConf of the same transaction protected with ``id-KemBasedMac``
  authenticates as the KEM certificate's holder (module ``KemBasedMac`` of an alias; kur
  accepts it always).  A MAC that does not verify is ``badMessageCheck``; unsupported KDF or
  MAC algorithms are ``badAlg``.  Responses of such a transaction carry the same KEM-based
  MAC (fresh protection over the response, same KemBMParameter).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509

from cmpclient.asn1 import oids
from cmpclient.errors import DecodeError, ProtectionError
from cmpclient.protection import kem as _kem
from cmpclient.protection.kem import kem_algorithm_oid  # noqa: F401  (handlers call it as K.kem_algorithm_oid)
from cmpclient.protection.trust import load_der_certificate
from cmpclient.testca.auth import AuthResult, NotApplicable, Refusal, protection_alg

if TYPE_CHECKING:  # pragma: no cover
    from cmpclient.testca.handlers import Engine, Request

STATE = "kem"  #: transaction state after the genp, until the KEM-MAC-protected request


@dataclass(frozen=True)
class KemContext:
    """What the genm/genp exchange established for a transaction."""

    fingerprint: str
    shared_secret: bytes
    state: str

    @property
    def ref(self) -> str:
        return f"kem:{self.fingerprint}:{self.shared_secret.hex()}"


def wants_kem(req: "Request") -> bool:
    return any(oid == oids.IT_KEM_CIPHERTEXT_INFO for oid, _ in (req.parsed.content or ()))


def is_kem_protected(req: "Request") -> bool:
    return req.protection_oid() == oids.KEM_BASED_MAC


def _parse_ref(ref: str) -> tuple[str, bytes] | None:
    parts = ref.split(":")
    if len(parts) != 3 or parts[0] != "kem":
        return None
    try:
        return parts[1], bytes.fromhex(parts[2])
    except ValueError:
        return None


def context_of(engine: "Engine", req: "Request") -> KemContext | None:
    """The KEM context of a KEM-MAC-protected request's transaction (None when the request is
    not KEM-MAC-protected); Refusal when it is but the transaction established none."""
    if not is_kem_protected(req):
        return None
    tid = req.header.transaction_id
    tx = engine.store.get_transaction(req.alias.name, tid) if tid else None
    parsed = _parse_ref(tx.auth_ref or "") if tx is not None and tx.auth_kind == "kem" else None
    if tx is None or parsed is None:
        raise Refusal("badRequest", "KEM-based MAC without a KEM shared secret: send genm with id-it-KemCiphertextInfo "
                      "first, in the same transaction")
    return KemContext(parsed[0], parsed[1], tx.state)


def handle_genm(engine: "Engine", req: "Request") -> bytes:
    """genm(id-it-KemCiphertextInfo) -> signed genp(KemCiphertextInfo)."""
    from cmpclient.message import body as B
    from cmpclient.testca.ca import fingerprint

    if "KemBasedMac" not in req.alias.auth_modules:
        raise Refusal("badAlg", f"alias {req.alias.name} does not offer KEM-based MAC (auth module KemBasedMac)")
    kem_cert = None
    for der in req.parsed.extra_certs:
        try:
            cert = load_der_certificate(der)
            if _kem.kem_algorithm_oid(cert.public_key()) is not None:
                kem_cert = (cert, der)
                break
        except Exception:  # noqa: BLE001 - unparsable or unsupported keys are simply not KEM certificates
            continue
    if kem_cert is None:
        raise Refusal("badAlg", "genm KemCiphertextInfo: no ML-KEM certificate in extraCerts")
    cert, der = kem_cert
    fp = fingerprint(der)
    rec = engine.store.find_by_fingerprint(fp)
    if rec is None:
        raise Refusal("notAuthorized", f"the KEM certificate '{cert.subject.rfc4514_string()}' was not issued by this CA")
    now = _dt.datetime.now(_dt.timezone.utc).timestamp()
    if rec.revoked:
        raise Refusal("certRevoked", f"the KEM certificate (serial {rec.serial:x}) is revoked")
    if rec.not_after < now or rec.not_before > now:
        raise Refusal("badRequest", f"the KEM certificate (serial {rec.serial:x}) is expired or not yet valid")
    ss, info_der = _kem.encapsulate_to(cert.public_key())
    ca = engine.cas.get(rec.ca) or engine.default_ca(req.alias)
    req.ca = ca
    req.auth = AuthResult("KemCiphertextInfo", "none", ref="")
    ctx = KemContext(fp, ss, STATE)
    engine._tx_state(req, STATE, auth_kind="kem", auth_ref=ctx.ref, ca=ca.name)
    return engine.respond(req, B.genp_body([(oids.IT_KEM_CIPHERTEXT_INFO, info_der)]), ca=ca)


def authenticate(engine: "Engine", req: "Request", *, continuation: bool = False) -> AuthResult:
    """Verify the KEM-based MAC with the transaction's shared secret; the result names the
    KEM certificate's record as the authenticated entity."""
    ctx = getattr(req, "kem", None)
    if ctx is None:
        raise NotApplicable("the message is not protected with a KEM-based MAC")
    if not continuation and ctx.state != STATE:
        raise Refusal("badRequest", "the transaction's KEM shared secret was already used for a request")
    alg = protection_alg(req.msg)
    tid = req.header.transaction_id or b""
    try:
        params = _kem.KemBMParams.from_algorithm_identifier(alg)
        from cmpclient.asn1 import codec

        _kem.verify_kem_mac(ctx.shared_secret, alg, tid, codec.protected_part(req.der), req.msg["protection"].asOctets())
    except ProtectionError as exc:
        raise Refusal(exc.fail_info or "badMessageCheck", f"KemBasedMac: {exc.message}") from exc
    except DecodeError as exc:
        raise Refusal("badDataFormat", f"KemBasedMac: {exc.message}") from exc
    rec = engine.store.find_by_fingerprint(ctx.fingerprint)
    if rec is None:
        raise Refusal("badRequest", "KemBasedMac: the KEM certificate is no longer known")
    now = _dt.datetime.now(_dt.timezone.utc).timestamp()
    if rec.revoked or rec.not_after < now:
        raise Refusal("badRequest", f"KemBasedMac: the KEM certificate (serial {rec.serial:x}) is revoked or expired")
    alias = req.alias
    if not continuation and alias.mode == "client" and req.body_type in ("ir", "cr") and req.username is not None \
            and rec.username != req.username:
        raise Refusal("notAuthorized", f"the KEM certificate belongs to {rec.username!r}, not to {req.username!r}", form="reject")
    cert = x509.load_der_x509_certificate(rec.der)
    return AuthResult("KemBasedMac", "kem", secret=ctx.shared_secret, mac_params=params, signer_cert=cert,
                      signer_record=rec, acts_for_subject=rec.subject if alias.mode == "ra" else None, ref=ctx.ref)


def module(engine: Any, req: "Request") -> AuthResult:
    """The ``KemBasedMac`` authentication module."""
    return authenticate(engine, req)


def response_protection(req: "Request") -> Any:
    """The KEM-based MAC for a response in a KEM-authenticated transaction."""
    auth = req.auth
    return _kem.KEMMACProtection(auth.secret, req.header.transaction_id or b"", auth.mac_params)  # type: ignore[union-attr]
