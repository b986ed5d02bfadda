"""The battery of conformance scenarios, as data (:data:`SCENARIOS`).

Each entry says what it needs, what RFC 9810 / RFC 9483 expect, and how to run it with
the library's own layers.  Positive scenarios return an :class:`Observation`; negative
ones build a deliberately broken message and return the server's :class:`Answer` (the
runner judges it: a rejection passes, an acceptance fails, unless it is a documented EJBCA
deviation and ``--expect ejbca`` is in force).
"""

from __future__ import annotations

import os
from typing import Any

from cmpclient.check.context import CheckContext
from cmpclient.check.model import Answer, Deviation, Failure, Observation, Scenario, Signer, Skip, Unsupported

# ----------------------------------------------------------------------------- helpers


def _confirm_text(result: Any) -> str:
    if result.implicit_confirm_granted:
        return "implicitConfirm granted"
    return "certConf -> pkiconf" if result.confirmed else "not confirmed"


def _enrolled(kind: str, rep: str, result: Any) -> str:
    polls = f", {result.polls} poll(s)" if result.polls else ""
    return f"{rep} accepted, {_confirm_text(result)}{polls}"


def _kur(ctx: CheckContext, old: Any, old_key: Any, new_key: Any) -> Any:
    """kur signed with the certificate being updated (RFC 9810 §5.3.5, RFC 9483 §4.1.3)."""
    from cmpclient.client import enroll
    from cmpclient.message.request import CertRequestBuilder

    cert = old.certificate
    req = (
        CertRequestBuilder()
        .subject(cert.subject)
        .public_key(new_key)
        .old_cert_id(cert.issuer, cert.serial_number)
        .popo_signature(ctx.popo(new_key))
        .build()
    )
    config = ctx.config(ctx.signer_protection(ctx.signed_by(old, old_key)))
    return enroll(config, "kur", req)


def _rr(ctx: CheckContext, cert: Any, protection: Any) -> Any:
    """rr for ``cert`` (reason superseded) protected by ``protection``, to the setup's
    recipient, else the certificate's issuer."""
    from cmpclient.client import revoke

    return revoke(ctx.config(protection, recipient=ctx.setup.recipient or cert.issuer), cert.issuer,
                  cert.serial_number, reason="superseded")


def _revoke(ctx: CheckContext, result: Any, key: Any) -> Any:
    """rr for ``result``'s certificate: MAC when a secret is given (and the scenario does not
    run as the end entity, :attr:`CheckContext.own_signer`), else signed by the certificate
    itself (RFC 9483 §4.2); when that is refused and signer credentials are given, signed by
    them (an RA revoking for the end entity, RFC 9483 §5.1.4) -- not as the end entity."""
    from cmpclient.errors import CMPRejection

    cert = result.certificate
    if ctx.own_signer is None and ctx.setup.mac_secret is not None:
        # base_protection() is the MAC here: a policy refusal of it may be retried as the end entity
        return _rr(ctx, cert, ctx.base_protection())
    try:
        return _rr(ctx, cert, ctx.signer_protection(ctx.signed_by(result, key)))
    except CMPRejection:
        if ctx.setup.signer is None or ctx.own_signer is not None:
            raise
    return _rr(ctx, cert, ctx.signer_protection())


def _revoke_first(ctx: CheckContext, result: Any, key: Any) -> Any:
    """:func:`_revoke` as a negative scenario's set-up step.  When the server's policy refuses
    its MAC (RFC 9483: MAC for the first ir only), the certificate revokes itself (RFC 9483
    §4.2), so the case the scenario is about can still be tried (the runner reruns only
    positive scenarios as the end entity)."""
    from cmpclient.check.runner import policy_refusal, rejection_texts
    from cmpclient.errors import CMPRejection

    try:
        return _revoke(ctx, result, key)
    except CMPRejection as exc:
        if ctx.last_protection != "mac" or not policy_refusal(rejection_texts(exc), "mac"):
            raise
    return _rr(ctx, result.certificate, ctx.signer_protection(ctx.signed_by(result, key)))


def _protected_request(ctx: CheckContext, body: Any, protection: Any, **kw: Any) -> tuple[bytes, Any]:
    from cmpclient.client import Transaction

    tx = Transaction(ctx.config(protection))
    der, _ = tx.build_request(body, **kw)
    return der, tx


def _ir_body(ctx: CheckContext, key: Any = None, *, popo: str = "signature") -> Any:
    from cmpclient.message import body as bodies

    key = key if key is not None else ctx.new_key()
    return bodies.cert_req_body("ir", [ctx.request(key, popo=popo)])


def _self_signed(key: Any, name: str) -> Any:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from cmpclient.message.names import parse_dn

    now = dt.datetime.now(dt.timezone.utc)
    subject = parse_dn(name)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


# ----------------------------------------------------------------------------- positive


def s_ir(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("ir")
    return Observation(_enrolled("ir", "ip", result))


def s_cr(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("cr")
    return Observation(_enrolled("cr", "cp", result))


def s_p10cr(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("p10cr")
    got = _enrolled("p10cr", "cp", result) + f", certReqId {result.cert_req_id}"
    if result.cert_req_id != -1:
        return Observation(got, deviation=f"cp answers p10cr with certReqId {result.cert_req_id}; RFC 9810 §5.3.4 / RFC 9483 §4.1.4 require -1")
    return Observation(got)


def s_ir_signer(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("ir", protection=ctx.signer_protection())
    return Observation(_enrolled("ir", "ip", result) + " (signature-protected)")


def s_implicit_confirm(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("ir", implicit_confirm=True)
    if not result.implicit_confirm_granted:
        raise Unsupported("the server did not grant implicitConfirm (allowed by RFC 9810 §5.1.1.1); certConf was sent",
                          got=_enrolled("ir", "ip", result))
    return Observation(_enrolled("ir", "ip", result))


def s_certconf(ctx: CheckContext) -> Observation:
    from cmpclient.client import confirm

    result, _ = ctx.enroll("ir", confirm=False)
    if result.implicit_confirm_granted:
        raise Failure("implicitConfirm was granted although the request did not ask for it")
    rsp = confirm(ctx.config(ctx.base_protection()), result.confirm_state)
    return Observation(f"ip, then certConf in the same transaction -> {rsp.body_type}")


_RA_KUR = "EJBCA in RA mode accepts kur only from an RA administrator, not signed with the end entity's own certificate"


def _own_kur(ctx: CheckContext, old: Any, old_key: Any, new_key: Any) -> Any:
    """kur signed with the old certificate; a rejection is the documented RA-mode deviation."""
    from cmpclient.errors import CMPRejection

    try:
        return _kur(ctx, old, old_key, new_key)
    except CMPRejection as exc:
        from cmpclient.check.runner import _UNSUPPORTED_TEXT, _rejection_text

        text = _rejection_text(exc)
        if _UNSUPPORTED_TEXT.search(" ".join(exc.status_strings)):
            # e.g. a MAC-only server with no trust anchor at all: it verifies no signed request
            raise Unsupported(f"the server does not take signed requests here: {text}", got=text) from exc
        raise Deviation(f"kur signed with the certificate being updated was rejected: {text}", got=text) from exc


def s_kur(ctx: CheckContext) -> Observation:
    from cmpclient.errors import CMPRejection

    old, old_key = ctx.enroll("ir")
    new_key = ctx.new_key()
    if ctx.setup.signer is not None:
        try:
            result = _kur(ctx, old, old_key, new_key)
        except CMPRejection as exc:
            # An RA (EJBCA RA mode): the RA administrator signs the kur for the end entity.
            from cmpclient.check.runner import _rejection_text
            from cmpclient.client import enroll
            from cmpclient.message.request import CertRequestBuilder

            cert = old.certificate
            req = (CertRequestBuilder().subject(cert.subject).public_key(new_key)
                   .old_cert_id(cert.issuer, cert.serial_number).popo_signature(ctx.popo(new_key)).build())
            result = enroll(ctx.config(ctx.signer_protection()), "kur", req)
            return Observation(_enrolled("kur", "kup", result) + " (signed by the RA)",
                               deviation=f"kur signed with the old certificate was rejected ({_rejection_text(exc)}); "
                                         "the RA-signed kur was accepted")
    else:
        result = _own_kur(ctx, old, old_key, new_key)
    if ctx.setup.newkey is None and result.certificate.serial_number == old.certificate.serial_number:
        raise Failure("kup returned the old certificate")
    return Observation(_enrolled("kur", "kup", result) + " (signed with the old certificate)")


def s_rr(ctx: CheckContext) -> Observation:
    if ctx.own_signer is None:
        result, key = ctx.enroll("ir")
    else:
        # Rerun as the end entity after the rr's MAC was refused: the certificate to revoke is
        # enrolled the initial way (MAC, a fresh subject) and revokes itself (RFC 9483 §4.2);
        # only the refused rr changes protection, not the ir the server took.
        result, key = ctx.enroll("ir", protection=ctx.mac(), subject=ctx.subject(fresh=True))
    rev = _revoke(ctx, result, key)
    return Observation(f"rp {rev.status.status}")


def s_genm(ctx: CheckContext) -> Observation:
    from cmpclient.asn1 import oids
    from cmpclient.client import general_message

    items = general_message(ctx.config(ctx.base_protection()), [(oids.IT_CA_CERTS, None)])
    names = ", ".join(oids.oid_name(oid) for oid, _ in items) or "no items"
    return Observation(f"genp ({names})")


def _pbm(owf: str, mac: str, iterations: int):  # type: ignore[no-untyped-def]
    def run(ctx: CheckContext) -> Observation:
        from cmpclient.protection import PBMParams

        protection = ctx.mac(PBMParams.new(owf=owf, mac=mac, iterations=iterations))
        result, _ = ctx.enroll("ir", protection=protection)
        return Observation(_enrolled("ir", "ip", result) + f" (PBM {owf}/{mac}/{iterations})")

    return run


def s_pbmac1(ctx: CheckContext) -> Observation:
    from cmpclient.protection import PBMAC1Params

    protection = ctx.mac(PBMAC1Params.new(iterations=ctx.setup.pbm_iterations))
    result, _ = ctx.enroll("ir", protection=protection)
    return Observation(_enrolled("ir", "ip", result) + " (PBMAC1 hmacWithSHA256)")


def _sig(spec: str):  # type: ignore[no-untyped-def]
    def run(ctx: CheckContext) -> Observation:
        key = ctx.new_key(spec)
        old, _ = ctx.enroll("ir", key=key)
        new_key = ctx.new_key(spec)
        result = _own_kur(ctx, old, key, new_key)
        return Observation(f"{spec} certificate issued; kur signed with it -> {_enrolled('kur', 'kup', result)}")

    return run


def s_popo_raverified(ctx: CheckContext) -> Observation:
    key = ctx.new_key()
    result, _ = ctx.enroll("ir", key=key, request=ctx.request(key, popo="raVerified"))
    return Observation(_enrolled("ir", "ip", result) + " (raVerified)")


def _indirect(kind: str, spec: str):  # type: ignore[no-untyped-def]
    """keyEncipherment / keyAgreement POPO with subsequentMessage encrCert: the certificate
    comes back encrypted; decrypt it and prove possession with certConf's certHash."""

    def run(ctx: CheckContext) -> Observation:
        from cryptography import x509

        from cmpclient.client import Transaction
        from cmpclient.client.operations import cert_status_for
        from cmpclient.keys import decrypt_encrypted_value, decrypt_enveloped_data
        from cmpclient.message import body as bodies
        from cmpclient.message.parse import CertRepContent
        from cmpclient.client.operations import rejection_error

        key = ctx.new_key(spec)
        config = ctx.config(ctx.base_protection())
        tx = Transaction(config)
        rsp = tx.exchange(bodies.cert_req_body("ir", [ctx.request(key, popo=kind)]), expect=["ip"])
        content = rsp.content
        assert isinstance(content, CertRepContent)
        r = content.response(0)
        if not r.status.ok:
            raise rejection_error("ir", r.status)
        if r.encrypted_cert is not None:
            info = r.encrypted_cert
            der = (decrypt_encrypted_value(info.der, key) if info.kind == "encryptedValue"
                   else decrypt_enveloped_data(info.der, private_key=key))
            how = f"encrCert ({info.kind}) decrypted"
        elif r.certificate is not None:
            der, how = r.certificate, "certificate in the clear (no indirect proof asked)"
        else:
            raise Failure("ip carries neither a certificate nor an encrypted certificate")
        cert = x509.load_der_x509_certificate(der)
        if cert.public_key() != key.public_key():
            raise Failure("the certificate does not certify the requested key")
        conf = tx.exchange(bodies.cert_conf_body([cert_status_for(cert, r.cert_req_id, config.pvno, accept=True, reason=None)]),
                           expect=["pkiconf"])
        return Observation(f"ip with {how}, certConf -> {conf.body_type}")

    return run


def s_server_keygen(ctx: CheckContext) -> Observation:
    from cmpclient.keys import decrypt_returned_private_key, make_protocol_encr_key
    from cmpclient.message.request import CertRequestBuilder

    if ctx.setup.newkey is not None:
        raise Skip("--newkey fixes the requested key; central key generation needs no key")
    pek, pek_spki = make_protocol_encr_key("RSA")
    req = CertRequestBuilder().subject(ctx.subject()).protocol_encr_key(pek_spki).popo_none().build()
    secret = ctx.setup.mac_secret

    def decrypt(info: Any) -> Any:
        return decrypt_returned_private_key(info.der, private_key=pek, password=secret)

    result, _ = ctx.enroll("ir", request=req, decrypt_key=decrypt)
    if result.private_key is None:
        raise Unsupported("the server issued a certificate but returned no private key: central key generation is not offered",
                          got="ip without privateKey")
    return Observation(_enrolled("ir", "ip", result) + f" (server-generated {type(result.private_key).__name__})")


class _NestedErrors:
    """NestingTransport, plus: an error answering the *outer* nested message (its recipNonce
    is the outer senderNonce, so the inner transaction could not match it) is raised as such."""

    def __init__(self, inner: Any, ra: Any):
        from cmpclient.client.nested import NestingTransport

        self.nesting = NestingTransport(inner, ra)

    def send(self, request: bytes) -> bytes:
        from cmpclient.client.transaction import error_from
        from cmpclient.message.parse import parse_message

        raw = self.nesting.send(request)
        rsp = parse_message(raw)
        if rsp.body_type == "error":
            sent = parse_message(request)
            if rsp.header.recip_nonce != sent.header.sender_nonce:
                raise error_from(rsp, sent.body_type)
        return raw

    def close(self) -> None:
        self.nesting.close()


def s_nested(ctx: CheckContext) -> Observation:
    transport = _NestedErrors(ctx.transport(), ctx.signer_protection())
    result, _ = ctx.enroll("ir", transport=transport)
    return Observation(_enrolled("ir", "ip", result) + " (wrapped in a nested message signed by the RA)")


def s_polling(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("ir")
    if not result.polls:
        raise Skip("the server answered at once; polling could not be exercised (use a CA/alias that defers issuance)",
                   got=_enrolled("ir", "ip", result))
    return Observation(_enrolled("ir", "ip", result))


def s_cmpv3(ctx: CheckContext) -> Observation:
    result, _ = ctx.enroll("ir", pvno=3)
    return Observation(_enrolled("ir", "ip", result) + f" (response pvno {result.response.header.pvno})")


# ----------------------------------------------------------------------------- negative


def n_wrong_mac(ctx: CheckContext) -> Answer:
    der, _ = _protected_request(ctx, _ir_body(ctx), ctx.mac())
    tampered = der[:-1] + bytes([der[-1] ^ 0x01])  # the last byte belongs to the protection BIT STRING
    return ctx.answer(tampered)


def n_untrusted_signer(ctx: CheckContext) -> Answer:
    from cmpclient.keys import generate_key

    key = generate_key("secp256r1")
    cert = _self_signed(key, ctx.subject("untrusted-signer"))
    der, _ = _protected_request(ctx, _ir_body(ctx), ctx.signer_protection(Signer(key, cert)))
    return ctx.answer(der)


def n_bad_pop(ctx: CheckContext) -> Answer:
    from cmpclient.keys import generate_key
    from cmpclient.message import body as bodies
    from cmpclient.message.request import CertRequestBuilder

    key = ctx.new_key()
    other = generate_key("secp256r1")
    req = CertRequestBuilder().subject(ctx.subject()).public_key(key).popo_signature(ctx.popo(other)).build()
    der, _ = _protected_request(ctx, bodies.cert_req_body("ir", [req]), ctx.base_protection())
    return ctx.answer(der)


def n_replay(ctx: CheckContext) -> Answer:
    try:
        ctx.enroll("ir")
    except (Skip, Unsupported):
        raise
    except Exception as exc:  # noqa: BLE001 - the prerequisite must work
        raise Unsupported(f"the original ir did not succeed, nothing to replay: {exc}") from exc
    first = next(der for direction, der in ctx.messages if direction == "request")
    return ctx.answer(first)


def n_unknown_body(ctx: CheckContext) -> Answer:
    from cmpclient.message import body as bodies

    key = ctx.new_key()
    body = bodies.cert_req_body("krr", [ctx.request(key)])
    der, _ = _protected_request(ctx, body, ctx.base_protection())
    return ctx.answer(der)


def n_garbage(ctx: CheckContext) -> Answer:
    return ctx.answer(b"\x30\x0bgarbage\x00\x01\x02\x03 -- not a PKIMessage")


def n_unprotected(ctx: CheckContext) -> Answer:
    der, _ = _protected_request(ctx, _ir_body(ctx), None)
    return ctx.answer(der)


def n_revoked_signer(ctx: CheckContext) -> Answer:
    from cmpclient.message import body as bodies
    from cmpclient.message.request import CertRequestBuilder

    try:
        result, key = ctx.enroll("ir")
        _revoke_first(ctx, result, key)
    except (Skip, Unsupported):
        raise
    except Exception as exc:  # noqa: BLE001
        raise Unsupported(f"could not enroll and revoke a certificate first: {exc}") from exc
    cert = result.certificate
    new_key = ctx.new_key()
    req = (CertRequestBuilder().subject(cert.subject).public_key(new_key).old_cert_id(cert.issuer, cert.serial_number)
           .popo_signature(ctx.popo(new_key)).build())
    der, _ = _protected_request(ctx, bodies.cert_req_body("kur", [req]), ctx.signer_protection(ctx.signed_by(result, key)))
    return ctx.answer(der)


def n_certconf_unknown(ctx: CheckContext) -> Answer:
    from cmpclient.message import body as bodies

    body = bodies.cert_conf_body([bodies.cert_status(0, os.urandom(32))])
    der, _ = _protected_request(ctx, body, ctx.base_protection())
    return ctx.answer(der)


# ----------------------------------------------------------------------------- the battery

_POPO_UNSUPPORTED = ("badAlg", "badPOP", "unsupportedVersion")
_FEATURE_UNSUPPORTED = ("badAlg", "unsupportedVersion", "badPOP")
_AUTH = frozenset({"auth"})

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("ir", "enroll", "Initialization request with signature POPO", "ip accepted, certConf -> pkiconf",
             "RFC 9810 §5.3.1, RFC 9483 §4.1.1", s_ir, _AUTH),
    Scenario("cr", "enroll", "Certification request", "cp accepted, certConf -> pkiconf",
             "RFC 9810 §5.3.3, RFC 9483 §4.1.2", s_cr, _AUTH),
    Scenario("p10cr", "enroll", "PKCS#10 request", "cp accepted with certReqId -1",
             "RFC 9810 §5.3.4, RFC 9483 §4.1.4", s_p10cr, _AUTH,
             ejbca_deviation="EJBCA answers p10cr with certReqId 0 instead of -1"),
    Scenario("ir-signer", "enroll", "ir protected with the given signer credentials", "ip accepted",
             "RFC 9810 §5.1.3.3, RFC 9483 §3.2", s_ir_signer, frozenset({"signer"})),
    Scenario("implicit-confirm", "confirm", "ir asking for implicitConfirm", "ip with implicitConfirm granted, no certConf",
             "RFC 9810 §5.1.1.1, RFC 9483 §4.1.1", s_implicit_confirm, _AUTH),
    Scenario("certconf", "confirm", "Delayed explicit certConf in the same transaction", "pkiconf",
             "RFC 9810 §5.3.18, RFC 9483 §4.1.1", s_certconf, _AUTH),
    Scenario("kur", "enroll", "Key update signed with the old certificate", "kup with a new certificate",
             "RFC 9810 §5.3.5, RFC 9483 §4.1.3", s_kur, _AUTH, ejbca_deviation=_RA_KUR),
    Scenario("rr", "revoke", "Revocation of a freshly issued certificate", "rp accepted",
             "RFC 9810 §5.3.9, RFC 9483 §4.2", s_rr, _AUTH),
    Scenario("genm", "genm", "General message: caCerts", "genp",
             "RFC 9810 §5.3.19, RFC 9483 §4.3.1", s_genm, _AUTH),
    Scenario("pbm-sha256-hmacsha256", "mac", "PBM owf sha256, mac hmacWithSHA256, 500 iterations", "ip accepted",
             "RFC 9810 §5.1.3.1, RFC 9481 §6.1.1", _pbm("sha256", "hmacWithSHA256", 500), frozenset({"mac"})),
    Scenario("pbm-sha256-hmacsha1", "mac", "PBM owf sha256, mac hmac-sha1 (openssl's default)", "ip accepted",
             "RFC 9810 §5.1.3.1, RFC 9481 §6.1.1", _pbm("sha256", "hmac-sha1", 500), frozenset({"mac"})),
    Scenario("pbm-sha512-hmacsha512", "mac", "PBM owf sha512, mac hmacWithSHA512, 1000 iterations", "ip accepted",
             "RFC 9810 §5.1.3.1, RFC 9481 §6.1.1", _pbm("sha512", "hmacWithSHA512", 1000), frozenset({"mac"})),
    Scenario("pbm-iterations-10000", "mac", "PBM with 10000 iterations", "ip accepted",
             "RFC 9810 §5.1.3.1, RFC 9481 §6.1.1", _pbm("sha256", "hmacWithSHA256", 10_000), frozenset({"mac"})),
    Scenario("pbmac1", "mac", "PBMAC1 (PBKDF2-hmacWithSHA256, hmacWithSHA256)", "ip accepted",
             "RFC 9481 §6.1.2, RFC 9810 §5.1.3.1", s_pbmac1, frozenset({"mac"}),
             # A server that does not know id-PBMAC1 cannot tell it is a MAC (openssl 3.0 answers
             # badRequest "missing trust anchor"): any such rejection means "not offered".
             unsupported=("badAlg", "unsupportedVersion", "badMessageCheck", "badRequest")),
    Scenario("sig-rsa", "signature", "kur signed with an RSA-2048 certificate", "kup",
             "RFC 9481 §3.1", _sig("RSA2048"), _AUTH, unsupported=("badAlg", "badCertTemplate"), ejbca_deviation=_RA_KUR),
    Scenario("sig-ec", "signature", "kur signed with an ECDSA P-256 certificate", "kup",
             "RFC 9481 §3.2", _sig("secp256r1"), _AUTH, unsupported=("badAlg", "badCertTemplate"), ejbca_deviation=_RA_KUR),
    Scenario("sig-ed25519", "signature", "kur signed with an Ed25519 certificate", "kup",
             "RFC 9481 §3.3", _sig("Ed25519"), _AUTH, unsupported=("badAlg", "badCertTemplate"), ejbca_deviation=_RA_KUR),
    Scenario("sig-mldsa", "signature", "kur signed with an ML-DSA-65 certificate", "kup",
             "RFC 9810 (ML-DSA, RFC 9881)", _sig("ML-DSA-65"), _AUTH, unsupported=("badAlg", "badCertTemplate"), ejbca_deviation=_RA_KUR),
    Scenario("popo-raverified", "popo", "raVerified POPO", "ip accepted (or badPOP: not offered)",
             "RFC 4211 §4, RFC 9810 §5.2.8", s_popo_raverified, _AUTH, unsupported=_POPO_UNSUPPORTED),
    Scenario("popo-keyencipherment", "popo", "keyEncipherment POPO (RSA), subsequentMessage encrCert",
             "ip with encrCert; certConf proves possession", "RFC 4211 §4.2, RFC 9810 §5.2.8.3",
             _indirect("keyEncipherment", "RSA2048"), _AUTH, unsupported=_POPO_UNSUPPORTED),
    Scenario("popo-keyagreement", "popo", "keyAgreement POPO (EC), subsequentMessage encrCert",
             "ip with encrCert; certConf proves possession", "RFC 4211 §4.3, RFC 9810 §5.2.8.3",
             _indirect("keyAgreement", "secp256r1"), _AUTH, unsupported=_POPO_UNSUPPORTED),
    Scenario("server-keygen", "keygen", "Central key generation (no key, RSA protocolEncrKey)",
             "ip with the private key encrypted to protocolEncrKey", "RFC 9483 §4.1.6, RFC 9810 §5.3.1",
             s_server_keygen, _AUTH, unsupported=("badAlg", "badCertTemplate", "badPOP", "unsupportedVersion")),
    Scenario("nested", "nested", "ir wrapped in a nested message signed by the RA (signer)", "ip for the inner request",
             "RFC 9810 §5.1.3.4, RFC 9483 §5.2.2", s_nested, frozenset({"signer"}), unsupported=_FEATURE_UNSUPPORTED),
    Scenario("polling", "polling", "ir, polling while the server says waiting", "pollRep until ip",
             "RFC 9810 §5.3.22, RFC 9483 §4.4", s_polling, _AUTH),
    Scenario("cmpv3", "version", "ir with pvno 3 (cmp2021)", "ip accepted",
             "RFC 9810 §7, RFC 9480 §2.20", s_cmpv3, _AUTH),
    # --- negative: the server must reject -------------------------------------------------
    Scenario("neg-wrong-mac", "negative", "ir whose MAC has one flipped bit", "rejected (badMessageCheck)",
             "RFC 9810 §5.1.3.1", n_wrong_mac, frozenset({"mac"}), negative=True, expected_fail_info=("badMessageCheck",)),
    Scenario("neg-untrusted-signer", "negative", "ir signed with a self-signed, untrusted certificate",
             "rejected (signerNotTrusted / badMessageCheck)", "RFC 9810 §5.1.3.3, RFC 9483 §3.5",
             n_untrusted_signer, frozenset(), negative=True, expected_fail_info=("signerNotTrusted", "badMessageCheck", "notAuthorized")),
    Scenario("neg-bad-pop", "negative", "ir whose POPO is signed by another key", "rejected (badPOP)",
             "RFC 4211 §4.1, RFC 9810 §5.2.8", n_bad_pop, _AUTH, negative=True, expected_fail_info=("badPOP",)),
    Scenario("neg-replay", "negative", "the exact DER of an accepted ir sent again", "rejected (transactionIdInUse / badSenderNonce)",
             "RFC 9810 §5.1.1 (transactionID, senderNonce), RFC 9483 §3.5", n_replay, _AUTH, negative=True,
             ejbca_deviation="EJBCA does not track transactionIDs or nonces and answers a replayed request again",
             expected_fail_info=("transactionIdInUse", "badSenderNonce")),
    Scenario("neg-unknown-body", "negative", "a krr (key recovery) body the server should not take", "rejected (badRequest)",
             "RFC 9810 §5.3, RFC 9483 §3.6", n_unknown_body, _AUTH, negative=True, expected_fail_info=("badRequest",)),
    Scenario("neg-garbage", "negative", "bytes that are not a PKIMessage", "error badRequest/badDataFormat (or HTTP 400)",
             "RFC 9810 §5.3.21, RFC 6712 §3.6", n_garbage, frozenset(), negative=True,
             expected_fail_info=("badRequest", "badDataFormat")),
    Scenario("neg-unprotected", "negative", "an unprotected ir", "rejected (badMessageCheck / badRequest)",
             "RFC 9483 §3.2 (protection required)", n_unprotected, frozenset(), negative=True,
             expected_fail_info=("badMessageCheck", "badRequest")),
    Scenario("neg-revoked-signer", "negative", "kur signed with a certificate that was just revoked",
             "rejected (certRevoked / notAuthorized / badRequest)", "RFC 9810 §5.3.5, RFC 9483 §4.1.3",
             n_revoked_signer, _AUTH, negative=True, expected_fail_info=("certRevoked", "notAuthorized", "badRequest")),
    Scenario("neg-certconf-unknown-tx", "negative", "certConf for a transaction that does not exist",
             "error (badRequest)", "RFC 9810 §5.3.18, RFC 9483 §4.1.1", n_certconf_unknown, _AUTH, negative=True,
             ejbca_deviation="EJBCA answers pkiconf to any certConf and ignores its content",
             expected_fail_info=("badRequest",)),
)

BY_NAME = {s.name: s for s in SCENARIOS}
GROUPS = tuple(dict.fromkeys(s.group for s in SCENARIOS))
