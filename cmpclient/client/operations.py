"""CMP operations on top of :class:`Transaction`: enroll (ir/cr/kur/p10cr), poll,
confirm, revoke, general messages and nested requests."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ParamSpec, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from cmpclient.client.transaction import ClientConfig, Transaction, hint_for
from cmpclient.errors import CMPRejection, PollTimeout, ProtocolError, UsageError
from cmpclient.message import body as bodies
from cmpclient.message.parse import CertRepContent, CertResponseInfo, EncryptedKeyInfo, ParsedMessage, RevRepContent
from cmpclient.message.status import StatusInfo
from cmpclient.asn1.lazy import crmf
from cmpclient.transport import end_transaction

if TYPE_CHECKING:
    from cmpclient.message.request import CertRequestBuilder

_P = ParamSpec("_P")

log = logging.getLogger("cmpclient.client")

def cert_hash(cert: x509.Certificate) -> tuple[bytes, str]:
    """The certConf certHash of ``cert`` and the name of the digest used.

    RFC 9810 §5.3.18: the hash of the certificate's signature algorithm; where that
    names none, RFC 9481 (SHA-512 for Ed25519, SHAKE256 for Ed448) and the ML-DSA
    profile (SHA-512) decide -- see :func:`cmpclient.protection.certificate_hash`.
    """
    from cmpclient.protection import certificate_hash

    digest, algorithm = certificate_hash(cert.public_bytes(serialization.Encoding.DER))
    return digest, algorithm.name


def cert_status_for(cert: x509.Certificate, cert_req_id: int, pvno: int, *, accept: bool, reason: str | None) -> Any:
    """CertStatus for ``cert`` (its DER for a plain acceptance, else a pyasn1 value; both
    go into :func:`~cmpclient.message.body.cert_conf_body`); CMPv3 names the hash (hashAlg)
    when the signature algorithm does not imply one (EdDSA, ML-DSA), as RFC 9810 §5.3.18
    allows."""
    from cmpclient.protection import certificate_hash, digest_algorithm_identifier
    from cmpclient.asn1 import codec

    digest, algorithm = certificate_hash(cert.public_bytes(serialization.Encoding.DER))
    hash_alg = None
    if pvno >= 3 and cert.signature_hash_algorithm is None:
        hash_alg = codec.encode(digest_algorithm_identifier(algorithm))
    if accept:
        if hash_alg is None:
            return bodies.accepted_cert_status_der(cert_req_id, digest)
        return bodies.cert_status(cert_req_id, digest, hash_alg_der=hash_alg)
    return bodies.cert_status(
        cert_req_id, digest, status="rejection", fail_info=["incorrectData"],
        texts=[reason] if reason else (), hash_alg_der=hash_alg,
    )


@dataclass
class ConfirmState:
    """What is needed to send certConf later (``--no-confirm`` then ``certconf``)."""

    transaction_id: bytes
    server_nonce: bytes | None
    cert_req_id: int
    cert_der: bytes
    pvno: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id.hex(),
            "server_nonce": self.server_nonce.hex() if self.server_nonce else None,
            "cert_req_id": self.cert_req_id,
            "cert": self.cert_der.hex(),
            "pvno": self.pvno,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConfirmState":
        try:
            return cls(
                transaction_id=bytes.fromhex(data["transaction_id"]),
                server_nonce=bytes.fromhex(data["server_nonce"]) if data.get("server_nonce") else None,
                cert_req_id=int(data["cert_req_id"]),
                cert_der=bytes.fromhex(data["cert"]),
                pvno=int(data.get("pvno", 2)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise UsageError(f"not a saved transaction state: {exc}") from exc


@dataclass
class EnrollResult:
    certificate: x509.Certificate
    cert_der: bytes
    cert_req_id: int
    status: StatusInfo
    ca_pubs: list[bytes]
    extra_certs: list[bytes]
    response: ParsedMessage
    transaction_id: bytes
    implicit_confirm_granted: bool
    confirmed: bool
    private_key: Any = None
    confirm_state: ConfirmState | None = None
    polls: int = 0

    def chain(self) -> list[x509.Certificate]:
        """Issuer chain of the new certificate, from extraCerts and caPubs (issuer first)."""
        pool = []
        for der in list(self.extra_certs) + list(self.ca_pubs):
            try:
                from cmpclient.protection.trust import load_der_certificate

                cert = load_der_certificate(der)
            except ValueError:
                continue
            if cert.public_bytes(serialization.Encoding.DER) != self.cert_der and cert not in pool:
                pool.append(cert)
        chain: list[x509.Certificate] = []
        current = self.certificate
        while True:
            issuer = next((c for c in pool if c.subject == current.issuer and c not in chain), None)
            if issuer is None or issuer == current:
                break
            chain.append(issuer)
            if issuer.subject == issuer.issuer:
                break
            current = issuer
        return chain


@dataclass
class RevokeResult:
    status: StatusInfo
    response: ParsedMessage


#: Decrypts a returned private key: (EncryptedKeyInfo) -> private key object.
KeyDecryptor = Callable[[EncryptedKeyInfo], Any]


class _Poller:
    """Waits as pollRep's checkAfter says, within the configured total timeout."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self.clock = config.clock or time.monotonic
        self.started = self.clock()

    def wait(self, seconds: int) -> None:
        cfg = self.config
        if cfg.total_timeout and self.clock() + seconds > self.started + cfg.total_timeout:  # None or 0: no limit
            raise PollTimeout(
                f"polling would exceed the total timeout of {cfg.total_timeout:g} s (server asks to wait {seconds} s more)"
            )
        (cfg.sleep or time.sleep)(max(0, seconds))


def rejection_error(kind: str, st: StatusInfo) -> CMPRejection:
    return CMPRejection(
        f"the server rejected the {kind} request",
        status=st.status,
        fail_info_names=st.fail_info,
        status_strings=st.texts,
        body_type=kind,
        hint=hint_for(st.fail_info, kind),
    )


def _public_key_der(key: Any) -> bytes | None:
    if key is None:
        return None
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if hasattr(key, "private_bytes"):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ends_its_transaction(run: Callable[_P, EnrollResult]) -> Callable[_P, EnrollResult]:
    """Whatever happens (implicit confirmation, certConf, a rejection without one, an
    error), the enrollment's transaction is over when ``run`` returns or raises, and the
    connection is not reused for the next one.  A certConf left for later (confirm=False)
    still belongs to it: openssl's mock server, for one, keeps a transaction on its
    connection and refuses that certConf on a new one."""

    @functools.wraps(run)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> EnrollResult:
        config: ClientConfig = args[0] if args else kwargs["config"]  # type: ignore[assignment]
        result = None
        try:
            result = run(*args, **kwargs)
            return result
        finally:
            if result is None or result.confirm_state is None:
                end_transaction(config.transport)

    return wrapper


@_ends_its_transaction
def enroll(
    config: ClientConfig,
    kind: str,
    request: crmf.CertReqMsg | CertRequestBuilder | bytes,
    *,
    expected_public_key: Any = None,
    confirm: bool = True,
    decrypt_key: KeyDecryptor | None = None,
    new_private_key: Any = None,
    transaction: Transaction | None = None,
) -> EnrollResult:
    """Run ir, cr, kur (with a CertReqMsg, or the CertRequestBuilder of one: it is then
    written as DER directly, the faster way) or p10cr (with CSR DER) to the end.

    Polls while the server says ``waiting``, checks that the certificate certifies the
    requested key (``expected_public_key``; for CRMF it is taken from the template),
    then confirms with certConf unless implicit confirmation was granted or ``confirm``
    is False (the result then carries a :class:`ConfirmState`).

    Indirect proof of possession (RFC 9810 section 5.2.8.3.2; a CertReqMsg with
    keyEncipherment or keyAgreement POPO ``subsequentMessage encrCert``): the CA returns
    the certificate encrypted to the requested key, EnvelopedData (CMPv3) or
    EncryptedValue (CMPv2).  ``new_private_key`` -- the private key being certified, not
    ``decrypt_key``, which is for server-generated keys -- decrypts it.  The certConf
    with its certHash is the proof, so such a request never asks for implicit
    confirmation and certConf is always sent (unless ``confirm`` is False: then the
    :class:`ConfirmState` must be confirmed later for the proof to reach the CA).
    """
    tx = transaction or Transaction(config)
    rep_kind = {"ir": "ip", "cr": "cp", "kur": "kup", "ccr": "ccp", "p10cr": "cp"}.get(kind)
    if rep_kind is None:
        raise UsageError(f"cannot enroll with {kind!r}: use ir, cr, kur, ccr or p10cr")
    if kind == "p10cr":
        if not isinstance(request, (bytes, bytearray)):
            raise UsageError("p10cr takes the DER of a PKCS#10 request")
        body = bodies.p10cr_body(bytes(request), as_der=True)
        csr = x509.load_der_x509_csr(bytes(request))
        expected = _public_key_der(expected_public_key) or _public_key_der(csr.public_key())
        cert_req_id = None  # p10cr answers use -1 (RFC 9810) or 0 (EJBCA); take what comes
    elif hasattr(request, "build_der"):  # a CertRequestBuilder
        body = bodies.cert_req_body(kind, [request], as_der=True)
        cert_req_id = request.cert_req_id_value
        expected = _public_key_der(expected_public_key) or request.public_key_spki
        if expected is not None and _is_empty_key(expected):
            expected = None  # an empty key asks the server to generate one
    else:
        if isinstance(request, (bytes, bytearray)):
            raise UsageError(f"{kind} takes a CertReqMsg; build one with CertRequestBuilder")
        body = bodies.cert_req_body(kind, [request], as_der=True)
        cert_req_id = int(request["certReq"]["certReqId"])
        template = request["certReq"]["certTemplate"]
        expected = _public_key_der(expected_public_key)
        if expected is None and template["publicKey"].isValue:
            from cmpclient.asn1 import codec

            spki = codec.encode(template["publicKey"])
            # [6] IMPLICIT SubjectPublicKeyInfo: restore the SEQUENCE tag.
            expected = b"\x30" + spki[1:]
            if _is_empty_key(expected):
                expected = None  # an empty key asks the server to generate one
    indirect = kind != "p10cr" and _indirect_popo(request)
    # The certHash in certConf is the proof of possession for the indirect method: asking
    # for implicit confirmation would leave the CA without it.
    ask_implicit = config.implicit_confirm and not indirect
    rsp = tx.exchange(body, expect=[rep_kind], implicit_confirm=ask_implicit)
    poller = _Poller(config)
    polls = 0
    while True:
        content = rsp.content
        assert isinstance(content, CertRepContent)
        if not content.responses:
            raise ProtocolError(f"{rep_kind} carries no CertResponse")
        r = content.responses[0] if cert_req_id is None else content.response(cert_req_id)
        if r.status.status != "waiting":
            break
        polls += 1
        rid = r.cert_req_id
        while True:
            rsp = tx.exchange(bodies.poll_req_body([rid], as_der=True), expect=["pollRep", rep_kind])
            if rsp.body_type != "pollRep":
                break
            entry = next((e for e in rsp.content if e.cert_req_id == rid), None)  # type: ignore[union-attr]
            if entry is None:
                raise ProtocolError(f"pollRep does not answer certReqId {rid}")
            log.info("server asks to poll again in %d s", entry.check_after)
            poller.wait(entry.check_after)
            polls += 1
    if not r.status.ok:
        raise rejection_error(kind, r.status)
    if r.status.status == "grantedWithMods":
        # RFC 9810 5.2.3: granted, but not as requested; the requester is responsible for
        # finding out what changed (openssl: 'received "grantedWithMods" for certificate').
        log.warning("the CA granted the %s with modifications (grantedWithMods)%s; compare the certificate "
                    "with the request", kind, f": {' / '.join(r.status.texts)}" if r.status.texts else "")
    cert_der, private_key = _certificate_of(r, decrypt_key, new_private_key)
    try:
        from cmpclient.protection.trust import load_der_certificate

        cert = load_der_certificate(cert_der)  # malformed key/names -> ValueError here
    except ValueError as exc:
        what = "decrypted content" if r.encrypted_cert is not None else "certificate"
        raise ProtocolError(f"the {what} of certReqId {r.cert_req_id} is not a DER certificate: {exc}") from exc
    granted = ask_implicit and rsp.header.implicit_confirm
    result = EnrollResult(
        certificate=cert,
        cert_der=cert_der,
        cert_req_id=r.cert_req_id,
        status=r.status,
        ca_pubs=list(content.ca_pubs),
        extra_certs=list(rsp.extra_certs),
        response=rsp,
        transaction_id=tx.transaction_id,
        implicit_confirm_granted=granted,
        confirmed=granted,
        private_key=private_key,
        polls=polls,
    )
    wrong_key = None
    try:
        cert_key = _public_key_der(cert.public_key())
    except UnsupportedAlgorithm:  # a key type we cannot even load is not the one we asked for
        cert_key = b""
    if expected is not None and cert_key != expected:
        wrong_key = "the certificate does not certify the requested public key"
    elif private_key is not None and _public_key_der(private_key) != cert_key:
        wrong_key = "the returned private key does not match the certificate"
    if wrong_key:
        if not granted:
            _send_cert_conf(tx, config, r.cert_req_id, cert, accept=False, reason=wrong_key)
        raise ProtocolError(wrong_key, fail_info="incorrectData")
    if granted:
        return result
    if not confirm:
        result.confirm_state = ConfirmState(tx.transaction_id, rsp.header.sender_nonce, r.cert_req_id, cert_der, config.pvno)
        return result
    _send_cert_conf(tx, config, r.cert_req_id, cert, accept=True)
    result.confirmed = True
    return result


def _is_empty_key(spki_der: bytes) -> bool:
    return spki_der.endswith(b"\x03\x01\x00")


def _indirect_popo(request: Any) -> bool:
    """Whether a CertReqMsg (or CertRequestBuilder) asks for the indirect POPO method (encrCert)."""
    if hasattr(request, "build_der"):
        return request.popo_subsequent_encr_cert
    try:
        popo = request["popo"]
        if not popo.isValue or popo.getName() not in ("keyEncipherment", "keyAgreement"):
            return False
        priv = popo[popo.getName()]
        return priv.getName() == "subsequentMessage" and int(priv["subsequentMessage"]) == 0
    except Exception:  # noqa: BLE001 - a hand-made request without a readable POPO
        return False


def decrypt_certificate(info: EncryptedKeyInfo, private_key: Any) -> bytes:
    """The DER certificate of CertOrEncCert.encryptedCert, decrypted with the certified key.

    EnvelopedData (CMPv3, RFC 9810 section 5.2.2): the certificate is the encrypted content
    directly (id-data); RFC 9810 section 5.2.8.3.2 lets the client ignore the rid, which
    names a certificate it does not have yet, so every recipient that fits the key type is
    tried.  EncryptedValue (CMPv2, RFC 4211 section 2.2): RSA only.
    """
    from cmpclient.keys import decrypt_encrypted_value, decrypt_enveloped_data

    if info.kind == "envelopedData":
        return decrypt_enveloped_data(info.der, private_key=private_key)
    return decrypt_encrypted_value(info.der, private_key)


def _certificate_of(r: CertResponseInfo, decrypt_key: KeyDecryptor | None, new_private_key: Any = None) -> tuple[bytes, Any]:
    cert_der = r.certificate
    if cert_der is None and r.encrypted_cert is not None:
        if new_private_key is None:
            raise ProtocolError(
                "the certificate came back encrypted (indirect POPO, encrCert) but the new private key to decrypt it was not given",
                hint="pass new_private_key= (the key being certified) to enroll()",
            )
        if not hasattr(new_private_key, "private_bytes"):
            raise UsageError("new_private_key must be a private key object")
        cert_der = decrypt_certificate(r.encrypted_cert, new_private_key)
    if cert_der is None:
        raise ProtocolError(f"the response for certReqId {r.cert_req_id} is {r.status.status} but carries no certificate")
    private_key = None
    if r.private_key is not None:
        if decrypt_key is None:
            raise ProtocolError(
                "the server returned a generated private key but no key to decrypt it is configured",
                hint="pass the protocolEncrKey's private key (or the MAC secret) to decrypt it",
            )
        private_key = decrypt_key(r.private_key)
    return cert_der, private_key


def _send_cert_conf(
    tx: Transaction,
    config: ClientConfig,
    cert_req_id: int,
    cert: x509.Certificate,
    *,
    accept: bool,
    reason: str | None = None,
) -> ParsedMessage:
    entry = cert_status_for(cert, cert_req_id, config.pvno, accept=accept, reason=reason)
    return tx.exchange(bodies.cert_conf_body([entry], as_der=True), expect=["pkiconf"])


def confirm(config: ClientConfig, state: ConfirmState, *, accept: bool = True, reason: str | None = None) -> ParsedMessage:
    """Send the certConf of an earlier enrollment run with ``confirm=False``."""
    tx = Transaction(config, transaction_id=state.transaction_id)
    cert = x509.load_der_x509_certificate(state.cert_der)
    entry = cert_status_for(cert, state.cert_req_id, state.pvno, accept=accept, reason=reason)
    der, nonce = tx.build_request(bodies.cert_conf_body([entry], as_der=True), recip_nonce=state.server_nonce)
    return tx.send_der(der, nonce, ["pkiconf"])


def revoke(
    config: ClientConfig,
    issuer: x509.Name | str,
    serial: int,
    *,
    reason: int | str | None = None,
) -> RevokeResult:
    """Revocation request (rr) for one certificate; a rejection raises CMPRejection."""
    tx = Transaction(config)
    rsp = tx.exchange(bodies.rr_body([bodies.rev_details(issuer, serial, reason=reason)], as_der=True), expect=["rp"])
    content = rsp.content
    assert isinstance(content, RevRepContent)
    if not content.statuses:
        raise ProtocolError("rp carries no status")
    st = content.statuses[0]
    if st.status not in ("accepted", "grantedWithMods", "revocationWarning", "revocationNotification"):
        raise rejection_error("rr", st)
    return RevokeResult(st, rsp)


def general_message(config: ClientConfig, items: Sequence[tuple[str, bytes | None]] = ()) -> list[tuple[str, bytes | None]]:
    """genm -> genp: returns the (infoType, value DER) pairs of the answer."""
    tx = Transaction(config)
    rsp = tx.exchange(bodies.genm_body(items, as_der=True), expect=["genp"])
    return list(rsp.content)  # type: ignore[arg-type]
