"""Authentication modules of an alias (ordered; the first that succeeds wins).

* ``HMAC`` -- PasswordBasedMac or PBMAC1 with the alias secret (RA mode, else the CA's RA
  secret) or the end entity's clear-text password (client mode).  A peer-chosen iteration
  count above :data:`MAX_ITERATIONS` is refused outright (denial-of-service bound).
* ``EndEntityCertificate`` -- a signature by the first non-CA certificate in extraCerts,
  which must be one this CA issued, active and unexpired.  RA mode: issued by the CA the
  module parameter names and owned by an RA administrator (or, with
  ``ee_cert_authorises = "subject"``, acting for its own subject only).  Client mode: it
  belongs to the end entity the request is about; with ``vendor_cas`` a device certificate
  chaining to a vendor CA is accepted too (3GPP initial enrolment).
* ``RegTokenPwd`` -- the regToken control carries the end entity's password (client mode,
  not p10cr; the message itself may be unprotected).
* ``DnPartPwd`` -- a DN component of the request subject is the password (client mode).
* ``KemBasedMac`` -- a KEM-based MAC keyed by a secret encapsulated to the sender's ML-KEM
  certificate in an earlier genm/genp of the same transaction (:mod:`cmpclient.testca.kem`).

A module that does not apply or fails raises :class:`NotApplicable` and the next one is
tried; when all fail the request gets an unprotected error (badRequest) listing each
module's reason.  Client-mode outcomes EJBCA answers with a signed rejection (unknown end
entity, wrong enrolment code) raise :class:`Refusal` with ``form="reject"`` at once.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.type import char, univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import codec, oids
from cmpclient.errors import CMPClientError, DecodeError, ProtectionError
from cmpclient.protection import PBMAC1Params, PBMParams, verify_protection, verify_signer
from cmpclient.protection import signature as _sig
from cmpclient.protection.trust import load_der_certificate

if TYPE_CHECKING:  # pragma: no cover
    from cmpclient.testca.handlers import Request
    from cmpclient.testca.store import CertRecord

#: Largest PBM/PBMAC1 iteration count the CA computes (EJBCA's bound).
MAX_ITERATIONS = 10_000
MAC_ALGS = (oids.PASSWORD_BASED_MAC, oids.PBMAC1)


class Refusal(CMPClientError):
    """The CA refuses a request.

    ``form`` is ``"error"`` (an unprotected error message) or ``"reject"`` (a signed
    response body of the request's kind with status rejection).
    """

    def __init__(self, fail_info: str, message: str, *, form: str = "error") -> None:
        super().__init__(message, fail_info=fail_info)
        self.form = form


class NotApplicable(Exception):
    """An authentication module did not authenticate the request (with the reason)."""


@dataclass
class AuthResult:
    module: str
    kind: str  #: "mac", "signature" or "none" (regToken, DN part, nested)
    secret: bytes | None = None
    mac_params: Any = None
    signer_cert: x509.Certificate | None = None
    signer_record: "CertRecord | None" = None
    ra_admin: bool = False
    acts_for_subject: str | None = None  #: lwcmp: the signer may only act for this subject
    vendor: bool = False
    ref: str = ""  #: how pollReq/certConf re-authenticate ("secret:alias", "secret:ee:<u>", "cert:<fp>", "")


def protection_alg(msg: Any) -> rfc5280.AlgorithmIdentifier | None:
    src = msg["header"]["protectionAlg"]
    if not src.isValue or not msg["protection"].isValue:
        return None
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = src["algorithm"]
    if src["parameters"].isValue:
        alg["parameters"] = univ.Any(bytes(src["parameters"]))
    return alg


def mac_params(alg: rfc5280.AlgorithmIdentifier) -> Any:
    """Parse the MAC parameters; an iteration count over the bound is a Refusal (badRequest)."""
    if str(alg["algorithm"]) == oids.PASSWORD_BASED_MAC:
        return _bounded(lambda: PBMParams.from_algorithm_identifier(alg))
    return _bounded(lambda: PBMAC1Params.from_algorithm_identifier(alg))


def request_mac_params(req: "Request") -> Any:
    """:func:`mac_params` of a MAC-protected request's protectionAlg.  A PasswordBasedMac
    the fast reader read is parsed from its DER (the same parser, the same bytes)."""
    der = req.parsed.protection_alg_der
    if req.fast is not None and der is not None and req.protection_oid() == oids.PASSWORD_BASED_MAC:
        return _bounded(lambda: PBMParams.from_algorithm_identifier_der(der))
    return mac_params(req.protection_alg())


def _bounded(parse: Callable[[], Any]) -> Any:
    """``parse()``'s MAC parameters; unusable ones or an iteration count over the bound
    are a Refusal (badRequest)."""
    try:
        params = parse()
    except (ProtectionError, DecodeError) as exc:
        raise Refusal("badRequest", f"HMAC: cannot use the protection parameters: {exc.message}") from exc
    if params.iterations > MAX_ITERATIONS:
        raise Refusal("badRequest", f"HMAC: iteration count {params.iterations} exceeds the limit {MAX_ITERATIONS}")
    return params


def verify_mac(req: "Request", secret: bytes) -> Any:
    """Verify MAC protection with ``secret``; return the parameters (NotApplicable on failure)."""
    if req.protection_oid() not in MAC_ALGS:
        raise NotApplicable("the message is not MAC-protected")
    params = request_mac_params(req)
    try:
        verify_protection(req.der, req.parsed, secret=secret, max_pbm_iterations=MAX_ITERATIONS)
    except ProtectionError as exc:
        raise NotApplicable(f"MAC verification failed ({exc.message})") from exc
    return params


def _is_ca_cert(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return False


def verify_signature_by(req: "Request", cert: x509.Certificate) -> None:
    """The message's signature protection verifies with ``cert`` (NotApplicable otherwise)."""
    alg = req.protection_alg()
    if alg is None or str(alg["algorithm"]) in MAC_ALGS:
        raise NotApplicable("the message is not signature-protected")
    # The fast reader kept the PKIProtection octets: no full decode of the message for them.
    value = req.parsed.protection_value
    if value is None:
        value = req.msg["protection"].asOctets()
    try:
        _sig.verify(cert.public_key(), alg, codec.protected_part(req.der), value)  # type: ignore[arg-type]
    except (ProtectionError, DecodeError) as exc:
        raise NotApplicable(f"the signature does not verify with the extraCerts signer ({exc.message})") from exc
    except UnsupportedAlgorithm as exc:
        raise NotApplicable(f"the extraCerts signer's key is not supported ({exc})") from exc


def extra_certs(req: "Request") -> list[x509.Certificate]:
    out = []
    for der in req.parsed.extra_certs:
        try:
            out.append(load_der_certificate(der))
        except ValueError as exc:
            raise NotApplicable(f"an extraCerts entry is not a valid certificate ({exc})") from exc
    return out


# --- the modules ---------------------------------------------------------------------------------


def hmac_module(ca: Any, req: "Request") -> AuthResult:
    alias = req.alias
    oid = req.protection_oid()
    if oid is None:
        raise NotApplicable("the message is not protected")
    if oid not in MAC_ALGS:
        raise NotApplicable("the message is not MAC-protected")
    if alias.hmac_bodies and req.body_type not in alias.hmac_bodies:
        raise NotApplicable(f"MAC protection is not accepted for {req.body_type} on this alias")
    request_mac_params(req)  # the iteration bound applies before any secret is looked at
    if alias.mode == "ra":
        text = alias.hmac_secret
        if text is None:
            text = ca.ca_config_for(req).ra_secret
        if not text:
            raise NotApplicable("no HMAC secret is configured for this alias or its CA")
        ref = "secret:alias"
    else:
        ee = req.require_end_entity()
        if not ee.password:
            raise NotApplicable(f"end entity {ee.username!r} has no password to verify the MAC with")
        text, ref = ee.password, f"secret:ee:{ee.username}"
    secret = text.encode("utf-8")
    params = verify_mac(req, secret)
    return AuthResult("HMAC", "mac", secret=secret, mac_params=params, ra_admin=alias.mode == "ra", ref=ref)


def end_entity_certificate_module(ca: Any, req: "Request") -> AuthResult:
    alias = req.alias
    oid = req.protection_oid()
    if oid is None or oid in MAC_ALGS:
        raise NotApplicable("the message is not signature-protected")
    certs = extra_certs(req)
    signer = next((c for c in certs if not _is_ca_cert(c)), None)
    if signer is None:
        raise NotApplicable("no end-entity certificate in extraCerts")
    verify_signature_by(req, signer)
    from cmpclient.testca.ca import fingerprint

    der = signer.public_bytes(Encoding.DER)
    fp = fingerprint(der)
    rec = ca.store.find_by_fingerprint(fp)
    if rec is None:
        if alias.mode == "client" and alias.vendor_cas:
            anchors = [ca.cas[name].cert for name in alias.vendor_cas]
            try:
                verify_signer(signer, extra_certs=certs, trusted=anchors, require_key_usage=False)
            except ProtectionError as exc:
                raise NotApplicable(f"the signer certificate was not issued by this CA nor a vendor CA ({exc.message})") from exc
            req.require_end_entity()
            return AuthResult("EndEntityCertificate", "signature", signer_cert=signer, vendor=True, ref=f"cert:{fp}")
        raise NotApplicable(f"the signer certificate '{signer.subject.rfc4514_string()}' was not issued by this CA")
    now = _dt.datetime.now(_dt.timezone.utc).timestamp()
    if rec.revoked:
        raise NotApplicable(f"the signer certificate (serial {rec.serial:x}) is revoked")
    if rec.not_after < now or rec.not_before > now:
        raise NotApplicable(f"the signer certificate (serial {rec.serial:x}) is expired or not yet valid")
    if alias.strict and not rec.confirmed:
        raise NotApplicable(f"the signer certificate (serial {rec.serial:x}) was never confirmed (certConf)")
    if alias.mode == "ra":
        param = alias.auth_parameter("EndEntityCertificate")
        if param and rec.ca != param:
            raise NotApplicable(f"the signer certificate was issued by {rec.ca}, not by {param}")
        if alias.ee_cert_authorises == "subject":
            return AuthResult("EndEntityCertificate", "signature", signer_cert=signer, signer_record=rec,
                              acts_for_subject=rec.subject, ref=f"cert:{fp}")
        ee = ca.store.get_end_entity(rec.username) if rec.username else None
        if not ((ee is not None and ee.ra_admin) or (rec.username in alias.ra_admins)):
            raise NotApplicable(f"the signer '{rec.subject}' is not an authorised RA administrator")
        return AuthResult("EndEntityCertificate", "signature", signer_cert=signer, signer_record=rec, ra_admin=True, ref=f"cert:{fp}")
    # For rr the handler answers a foreign certificate with notAuthorized per RevDetails.
    if req.username is not None and req.body_type != "rr" and rec.username != req.username:
        raise NotApplicable(f"the signer certificate belongs to {rec.username!r}, not to {req.username!r}")
    return AuthResult("EndEntityCertificate", "signature", signer_cert=signer, signer_record=rec, ref=f"cert:{fp}")


def reg_token_module(ca: Any, req: "Request") -> AuthResult:
    if req.alias.mode != "client":
        raise NotApplicable("RegTokenPwd works in client mode only")
    if req.body_type not in ("ir", "cr", "kur"):
        raise NotApplicable(f"RegTokenPwd does not apply to {req.body_type}")
    token = req.reg_token()
    if token is None:
        raise NotApplicable("no regToken control in the request")
    ee = req.require_end_entity()
    if ee.password is None or token != ee.password:
        raise Refusal("notAuthorized", f"wrong enrollment code (regToken) for end entity {ee.username!r}", form="reject")
    return AuthResult("RegTokenPwd", "none", ref="")


def dn_part_module(ca: Any, req: "Request") -> AuthResult:
    if req.alias.mode != "client":
        raise NotApplicable("DnPartPwd works in client mode only")
    part = (req.alias.auth_parameter("DnPartPwd") or "OU").upper()
    subject = req.subject()
    if subject is None:
        raise NotApplicable("no subject DN to take the password from")
    from cmpclient.testca.handlers import dn_component

    value = dn_component(subject, part)
    if value is None:
        raise NotApplicable(f"the subject DN has no {part} component")
    ee = req.require_end_entity()
    if ee.password is None or value != ee.password:
        raise Refusal("notAuthorized", f"wrong enrollment code (DN part {part}) for end entity {ee.username!r}", form="reject")
    return AuthResult("DnPartPwd", "none", ref="")


def kem_based_mac_module(ca: Any, req: "Request") -> AuthResult:
    """``KemBasedMac`` (RFC 9810 section 5.1.3.4): see :mod:`cmpclient.testca.kem`."""
    from cmpclient.testca import kem

    return kem.module(ca, req)


MODULES = {
    "HMAC": hmac_module,
    "KemBasedMac": kem_based_mac_module,
    "EndEntityCertificate": end_entity_certificate_module,
    "RegTokenPwd": reg_token_module,
    "DnPartPwd": dn_part_module,
}


def authenticate(ca: Any, req: "Request", modules: tuple[str, ...] | None = None) -> AuthResult:
    """Run the alias's modules in order; raise Refusal(badRequest) when none succeeds."""
    reasons = []
    for name in modules if modules is not None else req.alias.auth_modules:
        try:
            return MODULES[name](ca, req)
        except NotApplicable as exc:
            reasons.append(f"{name}: {exc}")
    raise Refusal("badRequest", "authentication failed: " + "; ".join(reasons or ["no authentication module configured"]))


def utf8_value(der: bytes) -> str | None:
    try:
        return str(codec.decode(der, char.UTF8String(), what="UTF8String", strict=False))
    except DecodeError:
        return None
