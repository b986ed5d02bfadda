"""Request handling: one PKIMessage in, one PKIMessage out, no HTTP.

:class:`Engine` dispatches on the body type (ir/cr/p10cr/kur, rr, certConf, genm,
pollReq, nested), applies the alias's strict checks and fault injection, authenticates
with :mod:`cmpclient.testca.auth`, and builds and protects the response.  Every refusal
is a :class:`~cmpclient.testca.auth.Refusal`: ``form="error"`` becomes an unprotected error
message, ``form="reject"`` a signed response of the request's kind with status rejection.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import cmp, codec, crmf, oids
from cmpclient.errors import CMPClientError, DecodeError, ProtectionError
from cmpclient.message import body as B
from cmpclient.message.header import HeaderBuilder
from cmpclient.message.names import asn1_to_name, general_name_text, parse_dn
from cmpclient.message.parse import ParsedMessage, parse_decoded
from cmpclient.message.pkimessage import decode_message
from cmpclient.protection import MACProtection, PBMAC1Params, PBMParams, SignatureProtection, header_protection_alg, protect_der
from cmpclient.protection import signature as _sig
from cmpclient.testca import auth as A
from cmpclient.testca import kem as K
from cmpclient.testca.auth import AuthResult, NotApplicable, Refusal
from cmpclient.testca.ca import CertificateAuthority, IssuanceError, fingerprint, name_key
from cmpclient.testca.config import KEYID, AliasConfig, CAConfig, CertProfile, Config, EEProfile
from cmpclient.testca.fastreq import FastCertReqMsg, FastRequest, read_request
from cmpclient.testca.store import EndEntity, Store

log = logging.getLogger("cmpclient.testca")

CERT_REQUEST_BODIES = ("ir", "cr", "kur", "p10cr")
OPENING_BODIES = ("ir", "cr", "kur", "p10cr", "rr", "genm")
RESPONSE_KIND = {"ir": "ip", "cr": "cp", "kur": "kup", "p10cr": "cp"}
MAX_NESTING = 15
UTC = _dt.timezone.utc

_DN_OIDS = {
    "CN": x509.NameOID.COMMON_NAME, "UID": x509.NameOID.USER_ID, "SN": x509.NameOID.SERIAL_NUMBER,
    "SERIALNUMBER": x509.NameOID.SERIAL_NUMBER, "OU": x509.NameOID.ORGANIZATIONAL_UNIT_NAME,
    "O": x509.NameOID.ORGANIZATION_NAME, "E": x509.NameOID.EMAIL_ADDRESS, "C": x509.NameOID.COUNTRY_NAME,
    "SURNAME": x509.NameOID.SURNAME,
}


def dn_component(name: x509.Name, part: str) -> str | None:
    """The first value of DN component ``part`` (CN, UID, SN, OU...), or the whole DN for ``DN``."""
    part = part.upper()
    if part == "DN":
        return name.rfc4514_string() or None
    oid = _DN_OIDS.get(part)
    if oid is None:
        return None
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


@dataclass
class CertReqItem:
    """One certificate request, from a CertReqMsg or a PKCS#10 request."""

    cert_req_id: int
    subject: x509.Name | None
    spki_der: bytes | None  #: None: absent; b"" never; an SPKI with an empty key is kept as is
    empty_key: bool
    not_before: _dt.datetime | None = None
    not_after: _dt.datetime | None = None
    extensions: list[tuple[str, bool, bytes]] = field(default_factory=list)
    controls: dict[str, bytes] = field(default_factory=dict)
    msg: Any = None  #: crmf.CertReqMsg (None for p10cr and for a request the fast reader read)
    csr: x509.CertificateSigningRequest | None = None
    fast: FastCertReqMsg | None = None  #: the CertReqMsg as the fast reader read it (then ``msg`` is None)

    @property
    def wants_server_key(self) -> bool:
        return self.spki_der is None or self.empty_key


@dataclass
class Request:
    """A received message being handled, with what the handlers learned about it."""

    engine: "Engine"
    alias: AliasConfig
    der: bytes
    parsed: ParsedMessage
    depth: int = 0
    vouched: bool = False  #: inside a nested message whose outer signature a trusted RA made
    username: str | None = None
    ee: EndEntity | None = None
    items: list[CertReqItem] = field(default_factory=list)
    ca: CertificateAuthority | None = None
    auth: AuthResult | None = None
    kem: Any = None  #: KEM-based MAC context of the transaction (testca.kem.KemContext)
    fast: FastRequest | None = None  #: what the fast reader read (None: the full decoder read the request)
    #: RA mode: the end entity registration (upsert_end_entity keywords) that goes into the
    #: write storing the first certificate; written on its own when none is stored.
    pending_ee: dict[str, Any] | None = None
    _protection_alg: Any = field(default=None, repr=False)

    @property
    def msg(self) -> cmp.PKIMessage:
        """The pyasn1 PKIMessage; decoded (leniently) on first use when the fast reader read the request."""
        return self.parsed.message

    def sender_der(self) -> bytes:
        """header.sender's DER (the answer's recipient, copied as it was sent)."""
        if self.fast is not None:
            return self.fast.sender_der
        return codec.encode(self.msg["header"]["sender"])

    def protection_oid(self) -> str | None:
        """protectionAlg's OID of a protected request (None when unprotected: no protectionAlg
        or no protection), from the header either reader gave."""
        return self.parsed.header.protection_alg if self.parsed.protected else None

    def protection_alg(self) -> Any:
        """protectionAlg as a pyasn1 AlgorithmIdentifier (None when unprotected), as
        :func:`cmpclient.testca.auth.protection_alg` gives it."""
        if self._protection_alg is None:
            if self.fast is not None:
                der = self.parsed.protection_alg_der
                self._protection_alg = (
                    codec.decode(der, rfc5280.AlgorithmIdentifier(), what="protectionAlg", strict=False) if der is not None else False
                )
            else:
                self._protection_alg = A.protection_alg(self.msg) or False
        return self._protection_alg or None

    @property
    def body_type(self) -> str:
        return self.parsed.body_type

    @property
    def header(self) -> Any:
        return self.parsed.header

    def subject(self) -> x509.Name | None:
        return self.items[0].subject if self.items else None

    def reg_token(self) -> str | None:
        if not self.items:
            return None
        der = self.items[0].controls.get(oids.REGCTRL_REG_TOKEN)
        return A.utf8_value(der) if der is not None else None

    def require_end_entity(self) -> EndEntity:
        """Client mode: the registered end entity the request is about (rejection when unknown)."""
        if self.ee is not None:
            return self.ee
        if self.username is None:
            raise Refusal("incorrectData", "cannot tell which end entity the request is for (no subject)", form=self._form())
        ee = self.engine.store.get_end_entity(self.username)
        if ee is None:
            raise Refusal("incorrectData", f"end entity {self.username!r} not found", form=self._form())
        self.ee = ee
        return ee

    def _form(self) -> str:
        return "reject" if self.body_type in CERT_REQUEST_BODIES or self.body_type == "rr" else "error"


#: Bodies whose content is SIZE (1..MAX): CertReqMessages, RevReqContent, PKIMessages.
_NON_EMPTY_BODIES = frozenset({*CERT_REQUEST_BODIES, "rr", "nested"}) - {"p10cr"}


class Engine:
    """The pure request handler of the test CA."""

    def __init__(self, config: Config, store: Store, cas: dict[str, CertificateAuthority], data_dir: Path) -> None:
        self.config = config
        self.store = store
        self.cas = cas
        self.data_dir = data_dir
        self._trusted_cache: dict[str, list[x509.Certificate]] = {}

    # --- entry ---------------------------------------------------------------------------------------
    def handle(self, alias_name: str, der: bytes) -> bytes:
        """Answer one request; never raises (internal failures become systemFailure errors)."""
        alias = self.config.aliases.get(alias_name)
        if alias is None:
            return self.error_message(None, None, "badRequest", f"unknown alias {alias_name!r}")
        try:
            if alias.faults.delay_ms > 0:
                time.sleep(alias.faults.delay_ms / 1000)
            return self._handle(alias, der, depth=0, vouched=False)
        except Exception:  # noqa: BLE001 - the CA must answer whatever happens
            log.exception("test CA: internal error while handling a request on alias %s", alias_name)
            return self.error_message(alias, None, "systemFailure", "internal error in the test CA (see the server log)")

    def _handle(self, alias: AliasConfig, der: bytes, *, depth: int, vouched: bool) -> bytes:
        fast = read_request(der)
        if fast is not None:
            parsed = fast.parsed
        else:
            try:
                msg = decode_message(der, strict=False)
                parsed = parse_decoded(der, msg)
            except (DecodeError, CMPClientError, ValueError) as exc:
                text = exc.message if isinstance(exc, CMPClientError) else str(exc)
                return self.error_message(alias, None, "badRequest", f"not a valid CMP message: {text}")
        req = Request(self, alias, bytes(der), parsed, depth=depth, vouched=vouched, fast=fast)
        try:
            return self.dispatch(req)
        except Refusal as r:
            if r.form == "reject":
                return self.rejection(req, r)
            return self.error_message(alias, req, r.fail_info, r.message)
        except (ProtectionError, DecodeError) as exc:
            return self.error_message(alias, req, exc.fail_info, exc.message)

    def dispatch(self, req: Request) -> bytes:
        kind = req.body_type
        alias = req.alias
        if kind not in (*CERT_REQUEST_BODIES, "rr", "certConf", "genm", "pollReq", "nested"):
            raise Refusal("badRequest", f"body type {kind} is not supported by this CA")
        if req.header.pvno not in (1, 2, 3) or (req.header.pvno == 3 and not alias.allow_cmpv3):
            raise Refusal("unsupportedVersion", f"pvno {req.header.pvno} is not supported")
        # (The fast reader reads non-empty bodies only.)
        if kind in _NON_EMPTY_BODIES and req.fast is None and len(req.msg["body"][kind]) == 0:
            # SIZE (1..MAX) in the ASN.1: pyasn1's lenient decode lets an empty list through.
            raise Refusal("badDataFormat", f"the {kind} body is empty; it must carry at least one element")
        if kind == "nested":
            return self.handle_nested(req)
        if kind in CERT_REQUEST_BODIES:
            req.kem = K.context_of(self, req)  # a KEM-MAC request continues its genm's transaction
        if alias.strict:
            self.strict_checks(req)
        elif kind in OPENING_BODIES and req.header.transaction_id and req.kem is None:
            self.store.begin_transaction(alias.name, req.header.transaction_id, kind, exclusive=False)
        faults = alias.faults
        if faults.force_error and kind in OPENING_BODIES:
            raise Refusal(faults.force_error, f"forced error (fault injection on alias {alias.name})")
        if kind in CERT_REQUEST_BODIES:
            return self.handle_cert_request(req)
        if kind == "rr":
            return self.handle_rr(req)
        if kind == "genm":
            return self.handle_genm(req)
        if kind == "certConf":
            return self.handle_cert_conf(req)
        return self.handle_poll_req(req)

    # --- strict mode ---------------------------------------------------------------------------------
    def strict_checks(self, req: Request) -> None:
        h, alias = req.header, req.alias
        if h.pvno not in (2, 3):
            raise Refusal("unsupportedVersion", f"pvno {h.pvno} is not accepted (strict alias)")
        if not h.transaction_id:
            raise Refusal("badRequest", "transactionID is missing (strict alias)")
        if not h.sender_nonce or len(h.sender_nonce) < 16:
            raise Refusal("badSenderNonce", "senderNonce is missing or shorter than 128 bits (strict alias)")
        if h.message_time is None:
            raise Refusal("badTime", "messageTime is missing (strict alias)")
        skew = abs((_dt.datetime.now(UTC) - h.message_time).total_seconds())
        if skew > alias.max_clock_skew:
            raise Refusal("badTime", f"messageTime is {int(skew)} s away from the CA's clock (limit {alias.max_clock_skew} s)")
        tx = self.store.get_transaction(alias.name, h.transaction_id)
        kem_continues = req.kem is not None and tx is not None and tx.state == K.STATE
        if kem_continues and h.recip_nonce != tx.last_nonce:  # type: ignore[union-attr]
            raise Refusal("badRecipientNonce", "recipNonce does not match the senderNonce of the CA's genp")
        if req.body_type in OPENING_BODIES and not kem_continues:
            if tx is not None:
                raise Refusal("transactionIdInUse", "transactionID is already in use")
        else:
            if tx is None:
                raise Refusal("badRequest", f"{req.body_type} for an unknown transactionID")
            if h.recip_nonce != tx.last_nonce:
                raise Refusal("badRecipientNonce", "recipNonce does not match the senderNonce of the CA's last response")
        if not self.store.remember_nonce(alias.name, h.sender_nonce):
            raise Refusal("badSenderNonce", "senderNonce was used before (replay)")
        if req.body_type in OPENING_BODIES and not kem_continues:
            if not self.store.begin_transaction(alias.name, h.transaction_id, req.body_type, exclusive=True):
                raise Refusal("transactionIdInUse", "transactionID is already in use")

    # --- helpers: CAs and profiles ---------------------------------------------------------------------
    def default_ca(self, alias: AliasConfig | None) -> CertificateAuthority:
        if alias is not None and alias.ca and alias.ca != KEYID:
            return self.cas[alias.ca]
        if alias is not None and alias.ee_profile and alias.ee_profile != KEYID:
            return self.cas[self.config.ee_profiles[alias.ee_profile].default_ca]
        if "ManagementCA" in self.cas:
            return self.cas["ManagementCA"]
        return next(iter(self.cas.values()))

    def ca_config_for(self, req: Request) -> CAConfig:
        return (req.ca or self.default_ca(req.alias)).config

    def ca_by_name(self, name: x509.Name) -> CertificateAuthority | None:
        key = name_key(name)
        for ca in self.cas.values():
            if name_key(ca.subject) == key:
                return ca
        return None

    def resolve_profiles(self, req: Request) -> tuple[CertificateAuthority, CertProfile, EEProfile]:
        """RA mode: CA, certificate profile and EE profile from the alias or the senderKID (KeyId)."""
        alias = req.alias
        kid = (req.header.sender_kid or b"").decode("utf-8", "replace")
        if alias.ee_profile == KEYID:
            eep = self.config.ee_profiles.get(kid)
            if eep is None:
                raise Refusal("badRequest", f"KeyId: no end entity profile named {kid!r} (senderKID)")
        else:
            eep = self.config.ee_profiles[alias.ee_profile or "CMP_ENTITY"]
        if alias.cert_profile == KEYID:
            cp = self.config.cert_profiles.get(kid) or self.config.cert_profiles[eep.default_cert_profile]
        elif alias.cert_profile:
            cp = self.config.cert_profiles[alias.cert_profile]
        else:
            cp = self.config.cert_profiles[eep.default_cert_profile]
        if alias.ca == KEYID:
            ca = self.cas.get(kid) or self.cas[eep.default_ca]
        elif alias.ca:
            ca = self.cas[alias.ca]
        else:
            ca = self.cas[eep.default_ca]
        return ca, cp, eep

    def ee_profiles_of(self, ee: EndEntity) -> tuple[CertificateAuthority, CertProfile]:
        eep = self.config.ee_profiles.get(ee.ee_profile or "CMP_ENTITY") or next(iter(self.config.ee_profiles.values()))
        ca = self.cas.get(ee.ca or "") or self.cas[eep.default_ca]
        cp = self.config.cert_profiles.get(ee.cert_profile or "") or self.config.cert_profiles[eep.default_cert_profile]
        return ca, cp

    def trusted_ra_certs(self, alias: AliasConfig) -> list[x509.Certificate]:
        if not alias.nested_trusted_dir:
            return []
        directory = self.data_dir / alias.nested_trusted_dir
        certs: list[x509.Certificate] = []
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() in (".pem", ".crt", ".cer"):
                    try:
                        certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
                    except ValueError:
                        log.warning("test CA: %s is not a PEM certificate file; ignored", path)
        return certs

    # --- responses -------------------------------------------------------------------------------------
    def _header(self, req: Request | None, alias: AliasConfig | None, ca: CertificateAuthority, *,
                implicit_confirm: bool = False, sender_kid: bytes | None = None) -> HeaderBuilder:
        """The response header (as a builder: the caller adds protectionAlg and a nonce)."""
        pvno = 2
        if req is not None and req.header.pvno == 3 and (alias is None or alias.allow_cmpv3):
            pvno = 3
        # recipient = the requester's sender, copied as it was sent (any GeneralName form)
        recipient: Any = req.sender_der() if req is not None else ""
        hb = HeaderBuilder().pvno(pvno).sender(ca.subject).recipient(recipient)
        if req is not None and req.header.transaction_id:
            hb = hb.transaction_id(req.header.transaction_id)
        if req is not None and req.header.sender_nonce:
            hb = hb.recip_nonce(req.header.sender_nonce)
        if req is not None and req.header.sender_kid:
            hb = hb.recip_kid(req.header.sender_kid)
        if sender_kid is not None:
            hb = hb.sender_kid(sender_kid)
        if implicit_confirm:
            hb = hb.implicit_confirm()
        return hb

    def error_message(self, alias: AliasConfig | None, req: Request | None, fail_info: str, text: str) -> bytes:
        """An unprotected error message (status rejection)."""
        body = B.error_body("rejection", fail_info=[fail_info], texts=[text], as_der=True)
        try:
            ca = (req.ca if req is not None and req.ca is not None else None) or self.default_ca(alias)
            return protect_der(self._header(req, alias, ca).build_der(), body, None)
        except Exception:  # noqa: BLE001 - last resort: an error message from nothing
            log.exception("test CA: cannot build an error message; answering a minimal one")
            header = HeaderBuilder().sender("").recipient("").build_der()
            return protect_der(header, B.error_body("rejection", fail_info=["systemFailure"], texts=[text], as_der=True), None)

    def respond(self, req: Request, body: cmp.PKIBody | bytes, *, ca: CertificateAuthority | None = None,
                implicit_confirm: bool = False, extra_certs: Sequence[bytes] = (), tx_fields: dict[str, Any] | None = None) -> bytes:
        """A response to ``req``: header, body, protection as the alias and request say.

        The transaction record gets the answer's nonce, and ``tx_fields`` in the same write.

        Assembled as bytes (header and body DER, :func:`protect_der`): encoding whole
        pyasn1 messages was the largest cost of answering a request.
        """
        alias = req.alias
        ca = ca or req.ca or self.default_ca(alias)
        auth = req.auth
        use_mac = (
            alias.response_protection == "pbe" and auth is not None and auth.kind == "mac" and auth.secret is not None
            and bool(req.header.sender_kid)
        )
        extras = [e for e in list(extra_certs) + [self._pem_der(p) for p in alias.extra_certs] if e]
        protection: Any = None
        if not alias.faults.unprotected_responses:
            if auth is not None and auth.kind == "kem":
                protection = K.response_protection(req)
            elif use_mac:
                p = auth.mac_params  # type: ignore[union-attr]
                if isinstance(p, PBMParams):
                    params: Any = PBMParams(salt=os.urandom(16), owf=p.owf, iterations=p.iterations, mac=p.mac)
                else:
                    params = PBMAC1Params(salt=os.urandom(16), iterations=p.iterations, prf=p.prf, mac=p.mac, key_length=p.key_length)
                protection = MACProtection(auth.secret, params)  # type: ignore[union-attr,arg-type]
            else:
                protection = self.signature_protection(req, ca)
        # senderKID: the request's reference for MAC answers, else the signer's SKI.
        kid = req.header.sender_kid if use_mac else (protection.sender_kid() if protection is not None else None)
        hb = self._header(req, alias, ca, implicit_confirm=implicit_confirm, sender_kid=kid)
        nonce = os.urandom(16)
        hb = hb.sender_nonce(nonce)
        if protection is not None:
            hb = hb.protection_alg(header_protection_alg(protection))
        body_der = body if isinstance(body, (bytes, bytearray)) else codec.encode(body)
        der = protect_der(hb.build_der(), bytes(body_der), protection, extras)
        if req.header.transaction_id:
            self.store.update_transaction(alias.name, req.header.transaction_id, last_nonce=nonce, **(tx_fields or {}))
        return der

    def signature_protection(self, req: Request | None, ca: CertificateAuthority) -> SignatureProtection:
        digest = "sha256"
        if req is not None:
            alg = req.protection_alg()
            if alg is not None and str(alg["algorithm"]) not in A.MAC_ALGS:
                try:
                    scheme = _sig.parse_signature_algorithm(alg)
                    if scheme.digest in _sig.DIGESTS:
                        digest = scheme.digest
                except ProtectionError:
                    pass
        return SignatureProtection(ca.key, ca.cert, chain=[c.cert for c in ca.chain()[1:]], digest=digest)

    def _pem_der(self, path: str) -> bytes:
        try:
            cert = x509.load_pem_x509_certificate((self.data_dir / path).read_bytes())
            return cert.public_bytes(serialization.Encoding.DER)
        except (OSError, ValueError):
            log.warning("test CA: cannot read configured certificate %s; skipped", path)
            return b""

    def ca_pubs(self, alias: AliasConfig, ca: CertificateAuthority) -> list[bytes]:
        out: list[bytes] = []
        if alias.ca_pubs == "issuing":
            out.append(ca.cert_der)
        elif alias.ca_pubs == "chain":
            out.extend(ca.chain_der())
        out.extend(d for d in (self._pem_der(p) for p in alias.extra_ca_pubs) if d)
        return out

    def rejection(self, req: Request, r: Refusal) -> bytes:
        """A signed rejection of the request's own response kind."""
        texts = [r.message]
        if req.body_type in CERT_REQUEST_BODIES:
            ids = [it.cert_req_id for it in req.items] or [0 if req.body_type == "p10cr" else self._first_cert_req_id(req)]
            body = B.cert_rep_body(RESPONSE_KIND[req.body_type],
                                   [B.cert_response(i, "rejection", fail_info=[r.fail_info], texts=texts) for i in ids])
        elif req.body_type == "rr":
            body = B.rp_body([_status("rejection", r.fail_info, r.message)])
        else:
            return self.error_message(req.alias, req, r.fail_info, r.message)
        req.auth = None  # a rejection is signed, never MAC-protected with an unverified secret
        self._tx_state(req, "rejected")
        return self.respond(req, body)

    @staticmethod
    def _first_cert_req_id(req: Request) -> int:
        try:
            return int(req.msg["body"][req.body_type][0]["certReq"]["certReqId"])
        except Exception:  # noqa: BLE001
            return 0

    def _tx_state(self, req: Request, state: str, **fields: Any) -> None:
        if req.header.transaction_id:
            self.store.update_transaction(req.alias.name, req.header.transaction_id, state=state, **fields)

    # --- certificate requests ------------------------------------------------------------------------
    def parse_items(self, req: Request) -> list[CertReqItem]:
        if req.body_type == "p10cr":
            try:
                csr = x509.load_der_x509_csr(bytes(req.msg["body"]["p10cr"]))
                # cryptography parses these lazily: a malformed key or name raises here, not later
                spki = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                subject = csr.subject
            except (ValueError, TypeError, x509.InvalidVersion) as exc:
                raise Refusal("badDataFormat", f"p10cr does not carry a valid PKCS#10 request: {exc}") from exc
            except UnsupportedAlgorithm as exc:
                raise Refusal("badAlg", f"p10cr: unsupported public key: {exc}") from exc
            return [CertReqItem(0, subject, spki, False, csr=csr)]
        if req.fast is not None:
            return [CertReqItem(f.cert_req_id, f.subject, f.spki_der, f.empty_key, fast=f) for f in req.fast.items]
        items = []
        for crm in req.msg["body"][req.body_type]:
            cr = crm["certReq"]
            t = cr["certTemplate"]
            subject = None
            if t["subject"].isValue:
                try:
                    subject = asn1_to_name(t["subject"])
                except (DecodeError, ValueError) as exc:
                    raise Refusal("badCertTemplate", f"the template subject cannot be read: {exc}", form="reject") from exc
            spki = None
            empty = False
            if t["publicKey"].isValue:
                raw = codec.encode(t["publicKey"])
                spki = b"\x30" + raw[1:]
                empty = len(t["publicKey"]["subjectPublicKey"]) == 0
            nb = na = None
            if t["validity"].isValue:
                v = t["validity"]
                nb = _time(v["notBefore"]) if v["notBefore"].isValue else None
                na = _time(v["notAfter"]) if v["notAfter"].isValue else None
            exts = []
            if t["extensions"].isValue:
                for e in t["extensions"]:
                    exts.append((str(e["extnID"]), bool(e["critical"]), bytes(e["extnValue"])))
            controls = {}
            if cr["controls"].isValue:
                for atv in cr["controls"]:
                    controls[str(atv["type"])] = bytes(atv["value"])
            items.append(CertReqItem(int(cr["certReqId"]), subject, spki, empty, nb, na, exts, controls, msg=crm))
        return items

    def handle_cert_request(self, req: Request) -> bytes:
        alias = req.alias
        req.items = self.parse_items(req)
        if req.body_type == "kur":
            return self.handle_kur(req)
        first = req.items[0]
        if alias.mode == "client":
            subject = first.subject
            component = alias.extract_username_component
            req.username = dn_component(subject, component) if subject is not None else None
            if req.username is None and req.header.sender_kid and _mac_protected(req):
                req.username = req.header.sender_kid.decode("utf-8", "replace")
            ee = req.require_end_entity()
            req.ca, profile = self.ee_profiles_of(ee)
            req.auth = self.vouched_auth(req) or A.authenticate(self, req)
            if ee.status != "NEW":
                raise Refusal("incorrectData", f"end entity {ee.username!r} has status {ee.status}; NEW is required", form="reject")
            if not self.store.set_end_entity_status(ee.username, "GENERATED", expect="NEW"):
                raise Refusal("incorrectData", f"end entity {ee.username!r} is no longer NEW", form="reject")
            fixed_subject: x509.Name | None = parse_dn(ee.dn)
            username = ee.username
        else:
            req.ca, profile, eep = self.resolve_profiles(req)
            req.auth = self.vouched_auth(req) or A.authenticate(self, req)
            if first.subject is None or len(first.subject) == 0:
                raise Refusal("badCertTemplate", "the certificate template has no subject", form="reject")
            if req.auth.acts_for_subject is not None and first.subject.rfc4514_string() != req.auth.acts_for_subject:
                raise Refusal("notAuthorized", f"the signer may only request certificates for '{req.auth.acts_for_subject}'", form="reject")
            username = self.ra_username(req, first.subject)
            req.pending_ee = dict(username=username, dn=first.subject.rfc4514_string(), status="NEW", ca=req.ca.name,
                                  cert_profile=profile.name, ee_profile=eep.name)
            fixed_subject = None
        try:
            responses, issued = self.issue_items(req, req.items, req.ca, profile, username, fixed_subject)
        except Exception:
            if alias.mode == "client":
                self.store.set_end_entity_status(username, "NEW")
            raise
        finally:
            if req.pending_ee is not None:  # no certificate stored: register the end entity on its own
                pending, req.pending_ee = req.pending_ee, None
                self.store.upsert_end_entity(**pending)
        # Issuing marked the end entity GENERATED in the write that stored its certificate.
        if not issued and alias.mode == "client":
            self.store.set_end_entity_status(username, "NEW")
        return self.cert_response_message(req, RESPONSE_KIND[req.body_type], responses, issued, req.ca)

    def vouched_auth(self, req: Request) -> AuthResult | None:
        """Inside a nested message the outer RA signature vouches for the inner request."""
        if req.vouched:
            return AuthResult("nested", "none", ra_admin=True)
        return None

    def ra_username(self, req: Request, subject: x509.Name) -> str:
        gen = req.alias.ra_name_generation
        name: str | None
        if gen.scheme == "DN":
            name = next((v for v in (dn_component(subject, p.strip()) for p in gen.parameter.split(";") if p.strip()) if v), None)
        elif gen.scheme == "RANDOM":
            alphabet = string.ascii_letters + string.digits
            name = "".join(secrets.choice(alphabet) for _ in range(12))
        elif gen.scheme == "FIXED":
            name = gen.parameter
        else:  # USERNAME
            kid = req.header.sender_kid
            name = kid.decode("utf-8", "replace") if kid else dn_component(subject, "CN")
        if not name:
            raise Refusal("badRequest", f"cannot generate a username (scheme {gen.scheme} {gen.parameter!r}) from '{subject.rfc4514_string()}'")
        return f"{gen.prefix}{name}{gen.postfix}"

    def issue_items(self, req: Request, items: list[CertReqItem], ca: CertificateAuthority, profile: CertProfile,
                    username: str, fixed_subject: x509.Name | None, *, old_key_spki: bytes | None = None) -> tuple[list[Any], list[tuple[int, int, bytes]]]:
        """Issue one certificate per item; a per-item refusal with form reject becomes a
        rejected CertResponse.  Returns the responses and (certReqId, cert id, DER) issued."""
        alias = req.alias
        responses = []
        issued: list[tuple[int, int, bytes]] = []
        for item in items:
            try:
                if alias.faults.force_reject:
                    raise Refusal(alias.faults.force_reject, f"forced rejection (fault injection on alias {alias.name})", form="reject")
                cert_der, cert_id, key_blob = self.issue_one(req, item, ca, profile, username, fixed_subject,
                                                             old_key_spki=old_key_spki)
            except Refusal as r:
                if r.form != "reject":
                    raise
                responses.append(B.cert_response(item.cert_req_id, "rejection", fail_info=[r.fail_info], texts=[r.message],
                                                 as_der=True))
                continue
            issued.append((item.cert_req_id, cert_id, cert_der))
            if _indirect_popo(item) is not None:
                # Indirect POPO (RFC 9810 section 5.2.8.3.2): the certificate travels encrypted
                # to its own key; certConf's certHash proves the requester could decrypt it.
                enc = self.encrypt_certificate(req, cert_der)
                responses.append(B.cert_response(item.cert_req_id, "accepted", encrypted_cert=enc, as_der=True))
                continue
            responses.append(B.cert_response(item.cert_req_id, "accepted", cert_der=cert_der, private_key=key_blob,
                                             as_der=True))
        return responses, issued

    def issue_one(self, req: Request, item: CertReqItem, ca: CertificateAuthority, profile: CertProfile, username: str,
                  fixed_subject: x509.Name | None, *, old_key_spki: bytes | None = None) -> tuple[bytes, int, Any]:
        """Issue one certificate: its DER, its row id in the store and the wrapped server key (or None)."""
        from cmpclient.keys import key_spec_of

        subject = fixed_subject if fixed_subject is not None else item.subject
        if subject is None or len(subject) == 0:
            raise Refusal("badCertTemplate", "the certificate template has no subject", form="reject")
        extensions = self.parse_extensions(item)
        private_key = None
        if item.wants_server_key:
            private_key = self.server_key(req, item, profile)
            public_key = private_key.public_key()
        else:
            try:
                public_key = serialization.load_der_public_key(item.spki_der)  # type: ignore[arg-type]
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise Refusal("badCertTemplate", f"the request's public key cannot be used: {exc}", form="reject") from exc
            self.check_popo(req, item, public_key)
            if old_key_spki is not None and item.spki_der == old_key_spki and not req.alias.allow_same_key_renewal:
                raise Refusal("badMessageCheck", "key update with the same key is not allowed on this alias")
            try:
                spec = key_spec_of(public_key).name
            except CMPClientError:
                spec = type(public_key).__name__
            if spec not in profile.key_algs:
                raise Refusal("badCertTemplate", f"key algorithm {spec} is not allowed by certificate profile {profile.name}", form="reject")
        ku = eku = san = None
        for ext in extensions:
            if isinstance(ext.value, x509.KeyUsage):
                ku = [n for n, attr in _KU_ATTRS if _ku_bit(ext.value, attr)]
            elif isinstance(ext.value, x509.ExtendedKeyUsage):
                eku = list(ext.value)
            elif isinstance(ext.value, x509.SubjectAlternativeName):
                san = ext.value
        strict = req.alias.strict
        try:
            cert, cert_id = ca.issue(
                self.store, subject=subject, public_key=public_key, profile=profile, username=username,
                not_before=item.not_before, not_after=item.not_after, key_usage_names=ku, ext_key_usages=eku, san=san,
                # A certificate delivered encrypted (indirect POPO) awaits its proof: it stays
                # unconfirmed until certConf carries the right certHash, whatever the alias.
                confirmed=(not strict or req.header.implicit_confirm) and _indirect_popo(item) is None,
                transaction_id=req.header.transaction_id, ee_status="GENERATED", ee_upsert=req.pending_ee,
            )
            req.pending_ee = None  # registered with this certificate
        except IssuanceError as exc:
            raise Refusal(exc.fail_info, exc.message, form="reject") from exc
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        key_blob = self.wrap_server_key(req, item, ca, private_key) if private_key is not None else None
        return cert_der, cert_id, key_blob

    def parse_extensions(self, item: CertReqItem) -> list[x509.Extension]:
        if item.csr is not None:
            try:
                return list(item.csr.extensions)
            except ValueError as exc:
                raise Refusal("badCertTemplate", f"invalid extensions in the request: {exc}", form="reject") from exc
        if not item.extensions:
            return []
        # cryptography parses extension values only inside a structure: wrap them in a
        # throwaway CSR (signed with a cached key) and read them back.
        try:
            b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
            for oid, critical, value in item.extensions:
                b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=critical)
            csr = b.sign(_scratch_key(), hashes.SHA256())
            return list(x509.load_der_x509_csr(csr.public_bytes(serialization.Encoding.DER)).extensions)
        except ValueError as exc:
            raise Refusal("badCertTemplate", f"invalid extensions in the certificate template: {exc}", form="reject") from exc

    def check_popo(self, req: Request, item: CertReqItem, public_key: Any) -> None:
        if item.csr is not None:
            if not item.csr.is_signature_valid:
                raise Refusal("badPOP", "the PKCS#10 request's signature does not verify", form="reject")
            return
        if item.fast is not None:
            # Read by the fast reader: a signature POPO without poposkInput, over the
            # CertRequest's DER as received (which is what pyasn1 would re-encode).
            alg = _popo_alg(item.fast.popo_alg_der)
            self._verify_popo_signature(public_key, alg, item.fast.cert_req_der, item.fast.popo_signature)
            return
        popo = item.msg["popo"]
        if not popo.isValue:
            raise Refusal("badPOP", "the request has no proof of possession", form="reject")
        kind = popo.getName()
        if kind == "raVerified":
            if not req.alias.allow_ra_verify or req.alias.mode != "ra":
                raise Refusal("badPOP", "raVerified proof of possession is not allowed on this alias", form="reject")
            return
        if kind in ("keyEncipherment", "keyAgreement"):
            self.check_indirect_popo(req, item, public_key, kind)
            return
        if kind != "signature":
            raise Refusal("badPOP", f"{kind} proof of possession is not supported by this CA", form="reject")
        sk = popo["signature"]
        alg = rfc5280.AlgorithmIdentifier()
        alg["algorithm"] = sk["algorithmIdentifier"]["algorithm"]
        if sk["algorithmIdentifier"]["parameters"].isValue:
            alg["parameters"] = univ.Any(bytes(sk["algorithmIdentifier"]["parameters"]))
        if sk["poposkInput"].isValue:
            inp = sk["poposkInput"]
            data = b"\x30" + codec.encode(inp)[1:]
            if codec.encode(inp["publicKey"]) != item.spki_der:
                raise Refusal("badPOP", "POPOSigningKeyInput.publicKey differs from the template's public key", form="reject")
            auth_info = inp["authInfo"]
            if auth_info.getName() == "sender":
                if general_name_text(auth_info["sender"]) != req.header.sender:
                    raise Refusal("badPOP", "POPOSigningKeyInput.sender differs from the message sender", form="reject")
            else:
                self.check_public_key_mac(req, auth_info["publicKeyMAC"], item.spki_der or b"")
        else:
            data = codec.encode(item.msg["certReq"])
        self._verify_popo_signature(public_key, alg, data, sk["signature"].asOctets())

    @staticmethod
    def _verify_popo_signature(public_key: Any, alg: Any, data: bytes, signature: bytes) -> None:
        try:
            _sig.verify(public_key, alg, data, signature)
        except ProtectionError as exc:
            raise Refusal("badPOP", f"proof of possession signature does not verify: {exc.message}", form="reject") from exc

    def check_indirect_popo(self, req: Request, item: CertReqItem, public_key: Any, kind: str) -> None:
        """keyEncipherment / keyAgreement POPO (RFC 4211 section 4.2/4.3, RFC 9810 section 5.2.8.3).

        Only the indirect method is accepted: ``subsequentMessage encrCert``, the certificate
        returned encrypted to the certified key (EncryptedValue for CMPv2 requests, RSA only;
        EnvelopedData for CMPv3, ktri for RSA and kari ECDH for EC keys).  The proof itself is
        checked when certConf arrives (:meth:`check_indirect_proof`).
        """
        if not req.alias.allow_indirect_popo:
            # EJBCA verifies signature (and raVerified) POPO only; everything else is badPOP.
            raise Refusal("badPOP", f"{kind} proof of possession is not supported by this CA", form="reject")
        choice = item.msg["popo"][kind].getName()
        if choice == "thisMessage":
            raise Refusal("badPOP", f"{kind} POPO with thisMessage (the private key sent encrypted in the request) is "
                          "deprecated by RFC 9810 section 5.2.8.3 and not accepted; use subsequentMessage encrCert",
                          form="reject")
        if choice != "subsequentMessage":
            raise Refusal("badPOP", f"{kind} POPO with {choice} is not supported by this CA; use subsequentMessage encrCert",
                          form="reject")
        if int(item.msg["popo"][kind]["subsequentMessage"]) != 0:
            raise Refusal("badPOP", f"{kind} POPO with subsequentMessage challengeResp (the direct method) is not supported "
                          "by this CA; use encrCert", form="reject")
        kem_key = K.kem_algorithm_oid(public_key) is not None
        if kem_key and req.header.pvno < 3:
            raise Refusal("badPOP", "keyEncipherment POPO for an ML-KEM key needs CMPv3 (pvno 3): only EnvelopedData "
                          "(KEMRecipientInfo, RFC 9629) can carry the certificate encrypted to it", form="reject")
        if kind == "keyEncipherment" and not (isinstance(public_key, rsa.RSAPublicKey) or kem_key):
            raise Refusal("badPOP", f"keyEncipherment POPO needs a key-transport (RSA) key, not {_key_kind(public_key)}"
                          + ("; use keyAgreement for an EC key" if isinstance(public_key, ec.EllipticCurvePublicKey) else ""),
                          form="reject")
        if kind == "keyAgreement":
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise Refusal("badPOP", f"keyAgreement POPO needs an EC (ECDH) key, not {_key_kind(public_key)}", form="reject")
            if req.header.pvno < 3:
                raise Refusal("badPOP", "keyAgreement POPO with encrCert needs CMPv3 (pvno 3): a CMPv2 response can carry the "
                              "encrypted certificate only as EncryptedValue, which cannot be encrypted to an EC key", form="reject")

    def encrypt_certificate(self, req: Request, cert_der: bytes) -> Any:
        """The issued certificate encrypted to its own public key (CertOrEncCert.encryptedCert).

        CMPv3: EnvelopedData (RFC 9810 section 5.2.2: the certificate directly in
        encryptedContent, content type id-data, unsigned), one recipient identified by the new
        certificate's issuerAndSerialNumber: ktri RSAES-OAEP-SHA256 or kari ECDH ephemeral-static
        (X9.63 SHA-256 KDF, AES-256 wrap); content AES-256-CBC.  CMPv2: EncryptedValue
        (RFC 4211 section 2.2: AES-256-CBC, content key under RSA PKCS#1 v1.5).
        """
        from cmpclient.keys import KeyAgreeRecipient, KeyTransRecipient, encrypt_encrypted_value, envelope

        cert = x509.load_der_x509_certificate(cert_der)
        pub = cert.public_key()
        if req.header.pvno < 3:
            return B.encrypted_key(encrypted_value_der=encrypt_encrypted_value(cert_der, pub))
        from cmpclient.keys import KEMRecipient

        recipient: Any = KeyTransRecipient(cert) if isinstance(pub, rsa.RSAPublicKey) else KeyAgreeRecipient(cert)
        if K.kem_algorithm_oid(pub) is not None:
            recipient = KEMRecipient(cert)  # RFC 9629 KEMRecipientInfo, HKDF-SHA256 + AES-256 wrap (RFC 9936)
        return B.encrypted_key(enveloped_data_der=envelope(cert_der, recipients=[recipient]))

    def check_indirect_proof(self, req: Request, entries: Sequence[Any], awaiting: dict[str, int]) -> None:
        """certConf for certificates delivered encrypted: the right certHash is the proof of
        possession (RFC 9810 section 5.2.8.3.2).  Proven certificates become confirmed.  A
        missing entry or a wrong certHash: a strict alias revokes the certificate and answers
        badPOP; other aliases answer pkiconf like EJBCA and leave it unconfirmed."""
        failures = []
        for rid, cid in awaiting.items():
            rec = self.store.get_certificate(cid)
            if rec is None:
                continue
            entry = next((e for e in entries if str(e.cert_req_id) == rid), None)
            problem = None
            if entry is None:
                problem = f"certConf does not confirm certReqId {rid}, whose certificate was delivered encrypted"
            elif entry.status is not None and entry.status.status == "rejection":
                continue  # the client rejects it; the certConf handling below deals with that
            else:
                try:
                    ok = entry.cert_hash == _cert_hash(rec.der, entry.hash_alg)
                except Refusal:
                    ok = False
                if not ok:
                    problem = f"certHash for certReqId {rid} does not match the encrypted certificate"
            if problem is None:
                self.store.set_confirmed(cid)
            elif req.alias.strict:
                self.store.revoke(cid, reason=0)
                log.info("test CA: indirect POPO failed for certificate %s (%s); revoked", cid, problem)
                failures.append(problem)
            else:
                log.warning("test CA: indirect POPO not proven for certificate %s (%s); left unconfirmed", cid, problem)
        if failures:
            self._tx_state(req, "closed", pending=None)
            raise Refusal("badPOP", "; ".join(failures) + ": proof of possession failed, the certificate is revoked")

    def check_public_key_mac(self, req: Request, value: Any, spki_der: bytes) -> None:
        from cmpclient.protection import mac as _mac

        auth = req.auth
        if auth is None or auth.secret is None:
            raise Refusal("badPOP", "publicKeyMAC needs a shared secret, but the request was not MAC-authenticated", form="reject")
        alg = rfc5280.AlgorithmIdentifier()
        alg["algorithm"] = value["algId"]["algorithm"]
        if value["algId"]["parameters"].isValue:
            alg["parameters"] = univ.Any(bytes(value["algId"]["parameters"]))
        try:
            params = PBMParams.from_algorithm_identifier(alg)
            if params.iterations > A.MAX_ITERATIONS:
                raise Refusal("badRequest", "publicKeyMAC iteration count exceeds the limit")
            _mac.verify_pbm(auth.secret, params, spki_der, value["value"].asOctets(), max_iterations=A.MAX_ITERATIONS)
        except ProtectionError as exc:
            raise Refusal("badPOP", f"publicKeyMAC does not verify: {exc.message}", form="reject") from exc

    # --- server-side key generation ----------------------------------------------------------------------
    def server_key(self, req: Request, item: CertReqItem, profile: CertProfile) -> Any:
        from cmpclient.keys import generate_key, parse_key_spec

        if not req.alias.allow_server_keygen:
            raise Refusal("badRequest", "server-side key generation is not allowed on this alias (the request has no public key)")
        if req.body_type == "p10cr":
            raise Refusal("badRequest", "p10cr cannot ask for a server-generated key")
        spec = None
        if item.spki_der is not None:
            spec = _spec_from_spki(item.spki_der, profile)
        if spec is None:
            spec = profile.server_keygen_key or (profile.key_algs[0] if len(profile.key_algs) == 1 else None)
        if spec is None:
            raise Refusal("badRequest", f"certificate profile {profile.name} names no key type for server-side key generation")
        name = parse_key_spec(spec).name
        if name not in profile.key_algs:
            raise Refusal("badRequest", f"key type {name} is not allowed by certificate profile {profile.name}")
        if oids.REGCTRL_PROTOCOL_ENCR_KEY not in item.controls:
            mac_v3 = req.header.pvno == 3 and req.auth is not None and req.auth.kind == "mac"
            if not mac_v3:
                raise Refusal("badRequest", "server-side key generation needs the protocolEncrKey control")
        else:
            try:
                pek = serialization.load_der_public_key(item.controls[oids.REGCTRL_PROTOCOL_ENCR_KEY])
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise Refusal("badRequest", f"protocolEncrKey is not a usable public key: {exc}") from exc
            if req.header.pvno < 3 and not isinstance(pek, rsa.RSAPublicKey):
                raise Refusal("badRequest", "a CMPv2 (EncryptedValue) key delivery needs an RSA protocolEncrKey")
            if not isinstance(pek, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) and K.kem_algorithm_oid(pek) is None:
                raise Refusal("badRequest", f"protocolEncrKey of type {type(pek).__name__} is not supported")
        return generate_key(name)

    def wrap_server_key(self, req: Request, item: CertReqItem, ca: CertificateAuthority, private_key: Any) -> Any:
        from cmpclient.keys import (KeyAgreeRecipient, KeyTransRecipient, PasswordRecipient,
                                    wrap_private_key_for_delivery, wrap_private_key_in_encrypted_value)

        pek_der = item.controls.get(oids.REGCTRL_PROTOCOL_ENCR_KEY)
        pek = serialization.load_der_public_key(pek_der) if pek_der is not None else None
        if req.header.pvno < 3:
            return B.encrypted_key(encrypted_value_der=wrap_private_key_in_encrypted_value(private_key, pek))
        if isinstance(pek, rsa.RSAPublicKey):
            recipient: Any = KeyTransRecipient(pek)
        elif isinstance(pek, ec.EllipticCurvePublicKey):
            recipient = KeyAgreeRecipient(pek)
        elif pek is not None and K.kem_algorithm_oid(pek) is not None:
            from cmpclient.keys import KEMRecipient

            recipient = KEMRecipient(pek)
        else:
            recipient = PasswordRecipient(req.auth.secret)  # type: ignore[union-attr,arg-type]
        env = wrap_private_key_for_delivery(
            private_key, recipients=[recipient], signer_key=ca.key, signer_cert=ca.cert, extra_certs=[c.cert for c in ca.chain()[1:]],
        )
        return B.encrypted_key(enveloped_data_der=env)

    # --- cert responses, polling, transactions ---------------------------------------------------------
    def cert_response_message(self, req: Request, kind: str, responses: list[Any], issued: list[tuple[int, int, bytes]],
                              ca: CertificateAuthority) -> bytes:
        alias = req.alias
        indirect = {it.cert_req_id for it in req.items if _indirect_popo(it) is not None}
        # Certificates awaiting their indirect proof of possession (certConf's certHash):
        # never implicitly confirmed (RFC 9810 section 5.2.8.3.2).
        awaiting = {str(rid): cid for rid, cid, _ in issued if rid in indirect}
        implicit = req.header.implicit_confirm and bool(issued) and not awaiting
        ca_pubs = self.ca_pubs(alias, ca) if issued else []
        cert_ids = {str(rid): cid for rid, cid, _ in issued}
        if req.body_type == "p10cr":
            cert_ids.update({"-1": cid for _, cid, _ in issued})
        state = "closed" if implicit or not issued else "awaiting_conf"
        # Implicit confirmation needs no write: issue_one stored these certificates confirmed
        # already (the request asked for implicitConfirm, and none awaits an indirect proof).
        auth_fields = {"auth_kind": req.auth.kind if req.auth else None, "auth_ref": req.auth.ref if req.auth else None,
                       "ca": ca.name, "cert_ids": cert_ids}
        if alias.faults.poll_count > 0 and responses:
            pending = {"kind": kind, "responses": [_response_der(r).hex() for r in responses], "ca_pubs": [c.hex() for c in ca_pubs],
                       "implicit": implicit, "final_state": state, "awaiting_proof": awaiting}
            self._tx_state(req, "polling", pending=pending, response_body=kind, **auth_fields)
            waiting = [B.cert_response(_response_id(r), "waiting", as_der=True) for r in responses]
            return self.respond(req, B.cert_rep_body(kind, waiting), ca=ca)
        if awaiting:
            auth_fields["pending"] = {"awaiting_proof": awaiting}
        body = B.cert_rep_body(kind, responses, ca_pubs=ca_pubs, as_der=True)
        return self.respond(req, body, ca=ca, implicit_confirm=implicit, extra_certs=ca.chain_der() if issued else (),
                            tx_fields={"state": state, "response_body": kind, **auth_fields})

    def reauthenticate(self, req: Request, tx: Any) -> None:
        """pollReq/certConf continue a transaction: check them with the credential it began with."""
        if req.vouched:
            req.auth = AuthResult("nested", "none")
            return
        kind, ref = tx.auth_kind, tx.auth_ref or ""
        if kind == "mac":
            if ref == "secret:alias":
                text = req.alias.hmac_secret or (self.cas[tx.ca].config.ra_secret if tx.ca in self.cas else None)
            elif ref.startswith("secret:ee:"):
                ee = self.store.get_end_entity(ref[len("secret:ee:"):])
                text = ee.password if ee else None
            else:
                text = None
            if not text:
                raise Refusal("badRequest", "authentication failed: the transaction's shared secret is no longer known")
            alg = A.protection_alg(req.msg)
            if alg is None or str(alg["algorithm"]) not in A.MAC_ALGS:
                raise Refusal("badRequest", "authentication failed: this transaction must continue with MAC protection")
            A.mac_params(alg)
            try:
                params = A.verify_mac(req, text.encode())
            except NotApplicable as exc:
                raise Refusal("badRequest", f"authentication failed: HMAC: {exc}") from exc
            req.auth = AuthResult("HMAC", "mac", secret=text.encode(), mac_params=params, ref=ref)
        elif kind == "signature" and ref.startswith("cert:"):
            fp = ref[len("cert:"):]
            signer = None
            for der in req.parsed.extra_certs:
                if fingerprint(der) == fp:
                    signer = x509.load_der_x509_certificate(der)
            if signer is None:
                rec = self.store.find_by_fingerprint(fp)
                signer = x509.load_der_x509_certificate(rec.der) if rec else None
            if signer is None:
                raise Refusal("badRequest", "authentication failed: the transaction's signer certificate is unknown")
            try:
                A.verify_signature_by(req, signer)
            except NotApplicable as exc:
                raise Refusal("badRequest", f"authentication failed: EndEntityCertificate: {exc}") from exc
            req.auth = AuthResult("EndEntityCertificate", "signature", signer_cert=signer, ref=ref)
        elif kind == "kem":
            if not K.is_kem_protected(req):
                raise Refusal("badRequest", "authentication failed: this transaction must continue with KEM-based MAC protection")
            req.kem = K.context_of(self, req)
            req.auth = K.authenticate(self, req, continuation=True)
        else:
            req.auth = AuthResult("transaction", "none")

    def handle_poll_req(self, req: Request) -> bytes:
        tid = req.header.transaction_id
        tx = self.store.get_transaction(req.alias.name, tid) if tid else None
        if tx is None or tx.state != "polling" or not tx.pending:
            raise Refusal("badRequest", "pollReq for a transaction that is not waiting")
        if tx.ca in self.cas:
            req.ca = self.cas[tx.ca]
        self.reauthenticate(req, tx)
        polls = self.store.bump_polls(req.alias.name, tid)
        pending = tx.pending
        responses = [codec.decode(bytes.fromhex(h), cmp.CertResponse(), strict=False) for h in pending["responses"]]
        if polls < req.alias.faults.poll_count:
            entries = [(int(r["certReqId"]), req.alias.faults.check_after, ("certificate request is being processed",)) for r in responses]
            return self.respond(req, B.poll_rep_body(entries))
        kind = pending["kind"]
        ca_pubs = [bytes.fromhex(h) for h in pending["ca_pubs"]]
        awaiting = pending.get("awaiting_proof")
        self._tx_state(req, pending["final_state"], pending={"awaiting_proof": awaiting} if awaiting else None)
        ca = req.ca or self.default_ca(req.alias)
        return self.respond(req, B.cert_rep_body(kind, responses, ca_pubs=ca_pubs), ca=ca,
                            implicit_confirm=bool(pending["implicit"]), extra_certs=ca.chain_der())

    def handle_cert_conf(self, req: Request) -> bytes:
        alias = req.alias
        tid = req.header.transaction_id
        tx = self.store.get_transaction(alias.name, tid) if tid else None
        if tx is not None and tx.ca in self.cas:
            req.ca = self.cas[tx.ca]
        if tx is None:
            if alias.strict:
                raise Refusal("badRequest", "certConf for an unknown transaction")
            return self.respond(req, B.pkiconf_body())  # EJBCA answers pkiconf and ignores the content
        self.reauthenticate(req, tx)
        entries = req.parsed.content or ()
        awaiting = tx.pending.get("awaiting_proof") if isinstance(tx.pending, dict) and tx.state != "polling" else None
        if awaiting:
            self.check_indirect_proof(req, entries, awaiting)
        if alias.strict:
            if tx.state != "awaiting_conf":
                raise Refusal("badRequest", f"no certificate awaits confirmation in this transaction (state {tx.state})")
            for entry in entries:
                cid = tx.cert_ids.get(str(entry.cert_req_id))
                if cid is None:
                    raise Refusal("badRequest", f"certConf names certReqId {entry.cert_req_id}, which this transaction did not issue")
                rec = self.store.get_certificate(cid)
                if rec is None:
                    raise Refusal("badCertId", "the confirmed certificate is unknown")
                if entry.cert_hash != _cert_hash(rec.der, entry.hash_alg):
                    raise Refusal("badCertId", f"certHash for certReqId {entry.cert_req_id} does not match the issued certificate")
            for entry in entries:
                cid = tx.cert_ids[str(entry.cert_req_id)]
                if entry.status is not None and entry.status.status == "rejection":
                    self.store.revoke(cid, reason=0)
                    log.info("test CA: certificate %s rejected by the client in certConf; revoked", cid)
                else:
                    self.store.set_confirmed(cid)
        else:
            for entry in entries:
                cid = tx.cert_ids.get(str(entry.cert_req_id))
                if cid is not None and str(entry.cert_req_id) not in (awaiting or {}):
                    self.store.set_confirmed(cid)  # an indirect-POPO certificate only by its proof (above)
        self._tx_state(req, "closed", **({"pending": None} if awaiting else {}))
        return self.respond(req, B.pkiconf_body())

    # --- kur -------------------------------------------------------------------------------------------------
    def handle_kur(self, req: Request) -> bytes:
        alias = req.alias
        item = req.items[0]
        if req.vouched:
            req.auth = AuthResult("nested", "none", ra_admin=True)
        else:
            alg = A.protection_alg(req.msg)
            if alg is None or str(alg["algorithm"]) in A.MAC_ALGS:
                raise Refusal("badRequest", "kur must be signed with the certificate being updated (EndEntityCertificate authentication)")
            req.auth = A.authenticate(self, req, ("KemBasedMac",) if req.kem is not None else ("EndEntityCertificate",))
        auth = req.auth
        old = None
        old_id = item.controls.get(oids.REGCTRL_OLD_CERT_ID)
        if old_id is not None:
            try:
                cid = codec.decode(old_id, crmf.CertId(), what="oldCertID", strict=False)
                issuer = asn1_to_name(cid["issuer"]["directoryName"])
                old = self.store.find_by_issuer_serial(issuer.rfc4514_string(), int(cid["serialNumber"]))
            except (DecodeError, KeyError, ValueError, Exception) as exc:  # noqa: BLE001
                raise Refusal("badRequest", f"oldCertID cannot be read: {exc}") from exc
            if old is None:
                raise Refusal("badRequest", "oldCertID names a certificate this CA did not issue")
        if auth.ra_admin:
            if old is None:
                if item.subject is None:
                    raise Refusal("badRequest", "kur by an RA needs the template subject or oldCertID to name the end entity")
                ee = self.store.find_end_entity_by_dn(item.subject.rfc4514_string())
                if ee is None:
                    raise Refusal("badRequest", f"kur: no end entity with subject '{item.subject.rfc4514_string()}'")
                certs = [c for c in self.store.certificates_of(ee.username) if c.subject == ee.dn]
                if not certs:
                    raise Refusal("badRequest", f"kur: end entity {ee.username!r} has no certificate to update")
                old = certs[-1]
        else:
            signer = auth.signer_record
            if signer is None:
                raise Refusal("badRequest", "kur must be signed with a certificate this CA issued")
            if old is not None and old.id != signer.id:
                raise Refusal("badRequest", "oldCertID does not name the certificate that signed the kur")
            old = signer
        assert old is not None
        now = time.time()
        if old.revoked:
            raise Refusal("badRequest", f"the certificate to update (serial {old.serial:x}) is revoked")
        if old.not_after < now:
            raise Refusal("badRequest", f"the certificate to update (serial {old.serial:x}) has expired")
        ee = self.store.get_end_entity(old.username) if old.username else None
        if ee is None:
            raise Refusal("badRequest", f"kur: the end entity {old.username!r} of the certificate is unknown")
        req.username, req.ee = ee.username, ee
        if alias.mode == "client" and not alias.allow_automatic_key_update and ee.status != "NEW":
            raise Refusal("incorrectData", f"end entity {ee.username!r} has status {ee.status}; NEW is required (automatic key update is off)", form="reject")
        ca = self.cas.get(old.ca) or self.ee_profiles_of(ee)[0]
        _, profile = self.ee_profiles_of(ee)
        req.ca = ca
        old_cert = x509.load_der_x509_certificate(old.der)
        old_spki = old_cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # An RA administrator names the end entity by the template subject; an end entity
        # (or an lwcmp signer acting for itself) keeps the subject of the certificate it updates.
        subject = item.subject if (item.subject is not None and len(item.subject) and auth.ra_admin) else old_cert.subject
        # Issuing marks the end entity GENERATED (in the write that stores the certificate).
        responses, issued = self.issue_items(req, req.items[:1], ca, profile, ee.username, subject, old_key_spki=old_spki)
        return self.cert_response_message(req, "kup", responses, issued, ca)

    # --- rr --------------------------------------------------------------------------------------------------
    def handle_rr(self, req: Request) -> bytes:
        alias = req.alias
        details = list(req.msg["body"]["rr"])
        targets: list[tuple[Any, Any, str | None]] = []  # (record or None, reason code, problem)
        recipient = req.header.recipient_name
        ca = self.ca_by_name(recipient) if recipient is not None and len(recipient) else None
        for d in details:
            t = d["certDetails"]
            issuer = asn1_to_name(t["issuer"]) if t["issuer"].isValue else None
            serial = int(t["serialNumber"]) if t["serialNumber"].isValue else None
            the_ca = ca or (self.ca_by_name(issuer) if issuer is not None else None)
            if the_ca is None:
                raise Refusal("badRequest", "rr: the CA named by the recipient or the template issuer is unknown to this CA")
            req.ca = the_ca
            if issuer is None or serial is None:
                targets.append((None, 0, "badCertId:the revocation template lacks the serial number or the issuer"))
                continue
            try:
                reason = _crl_reason(d)
            except ValueError as exc:
                targets.append((None, 0, f"badRequest:cannot parse the revocation reason ({exc})"))
                continue
            rec = self.store.find_certificate(the_ca.name, serial)
            if rec is None or name_key(issuer) != name_key(the_ca.subject):
                targets.append((None, 0, f"badCertId:certificate with serial {serial:x} was not issued by {the_ca.subject.rfc4514_string()}"))
                continue
            targets.append((rec, reason, None))
        first = next((rec for rec, _, _ in targets if rec is not None), None)
        if alias.mode == "client":
            req.username = first.username if first is not None else None
        req.auth = self.vouched_auth(req) or A.authenticate(self, req)
        statuses = []
        for rec, reason, problem in targets:
            if problem is not None:
                fi, text = problem.split(":", 1)
                statuses.append(_status("rejection", fi, text))
                continue
            if alias.faults.force_reject:
                statuses.append(_status("rejection", alias.faults.force_reject, f"forced rejection (fault injection on alias {alias.name})"))
                continue
            auth = req.auth
            if auth.acts_for_subject is not None and rec.subject != auth.acts_for_subject:
                statuses.append(_status("rejection", "notAuthorized", "the signer may only revoke its own certificates"))
                continue
            if alias.mode == "client" and auth.signer_record is not None and auth.signer_record.username != rec.username:
                statuses.append(_status("rejection", "notAuthorized", "the signer does not own the certificate"))
                continue
            if not self.store.revoke(rec.id, reason):
                statuses.append(_status("rejection", "certRevoked", f"certificate with serial {rec.serial:x} is already revoked"))
                continue
            statuses.append(_status("accepted"))
        self._tx_state(req, "closed", auth_kind=req.auth.kind, auth_ref=req.auth.ref, ca=(req.ca.name if req.ca else None))
        return self.respond(req, B.rp_body(statuses))

    # --- genm ------------------------------------------------------------------------------------------------
    def handle_genm(self, req: Request) -> bytes:
        alias = req.alias
        if K.wants_kem(req):
            return K.handle_genm(self, req)
        if alias.mode == "client" and req.header.sender_kid and _mac_protected(req):
            # Client-mode MAC: the senderKID names the end entity whose password is the secret.
            req.username = req.header.sender_kid.decode("utf-8", "replace")
        if alias.mode == "ra" and (alias.ca == KEYID or alias.ee_profile == KEYID):
            req.ca = self.resolve_profiles(req)[0]
        else:
            req.ca = self.default_ca(alias)
        req.auth = self.vouched_auth(req) or A.authenticate(self, req)
        ca = req.ca
        items: list[tuple[str, bytes | None]] = []
        for oid, value in req.parsed.content or ():
            if oid == oids.IT_CA_CERTS:
                items.append((oid, _seq(ca.chain_der())))
            elif oid == oids.IT_ROOT_CA_KEY_UPDATE:
                items.append((oid, None))  # no root CA key update is available (RFC 9483 §4.3.2)
            elif oid == oids.IT_CERT_REQ_TEMPLATE:
                items.append((oid, self.cert_req_template(req)))
            elif oid == oids.IT_CRL_STATUS_LIST:
                items.append((oids.IT_CRLS, _seq([c.crl(self.store).public_bytes(serialization.Encoding.DER) for c in ca.chain()])))
            elif oid == oids.IT_CURRENT_CRL:
                items.append((oid, ca.crl(self.store).public_bytes(serialization.Encoding.DER)))
            elif oid == oids.IT_SIGN_KEY_PAIR_TYPES:
                items.append((oid, _seq([_alg_der(s) for s in self._profile_for_genm(req).key_algs if "KEM" not in s.upper()])))
            else:
                log.info("test CA: genm infoType %s is not supported; left out of genp", oid)
        self._tx_state(req, "closed", auth_kind=req.auth.kind, auth_ref=req.auth.ref, ca=ca.name)
        return self.respond(req, B.genp_body(items), ca=ca)

    def _profile_for_genm(self, req: Request) -> CertProfile:
        if req.alias.mode == "ra":
            try:
                return self.resolve_profiles(req)[1]
            except Refusal:
                pass
        return self.config.cert_profiles.get("CMP_CERT") or next(iter(self.config.cert_profiles.values()))

    def cert_req_template(self, req: Request) -> bytes:
        from cmpclient.message.request import CertRequestBuilder
        from cmpclient.testca.ca import EKU_NAMES, key_usage

        profile = self._profile_for_genm(req)
        b = CertRequestBuilder()
        if profile.key_usage:
            b = b.extension(key_usage(profile.key_usage), critical=True)
        if profile.ext_key_usage:
            b = b.extension(x509.ExtendedKeyUsage([EKU_NAMES.get(n) or x509.ObjectIdentifier(n) for n in profile.ext_key_usage]))
        template = codec.encode(b.build_template())
        spec = profile.server_keygen_key or profile.key_algs[0]
        controls = []
        if spec.upper().startswith("RSA"):
            from cmpclient.keys import parse_key_spec

            size = parse_key_spec(spec).size or 2048
            controls.append(_seq([codec.oid_der(oids.REGCTRL_RSA_KEY_LEN), codec.integer_der(size)]))
        else:
            controls.append(_seq([codec.oid_der(oids.REGCTRL_ALG_ID), _alg_der(spec)]))
        return _seq([template, _seq(controls)])

    # --- nested ----------------------------------------------------------------------------------------------
    def handle_nested(self, req: Request) -> bytes:
        from cmpclient.protection import verify_protection

        alias = req.alias
        if req.depth >= MAX_NESTING:
            raise Refusal("badRequest", f"nested messages deeper than {MAX_NESTING} levels are refused")
        trusted = self.trusted_ra_certs(alias)
        if not trusted:
            raise Refusal("badRequest", "this alias accepts no nested messages (no trusted RA certificate directory)")
        alg = A.protection_alg(req.msg)
        if alg is None or str(alg["algorithm"]) in A.MAC_ALGS:
            raise Refusal("badRequest", "a nested message must be signed by a trusted RA")
        try:
            verify_protection(req.der, req.msg, trusted=trusted, require_key_usage=False)
        except ProtectionError as exc:
            raise Refusal("badRequest", f"the nested message's signature cannot be verified with a trusted RA certificate: {exc.message}") from exc
        inner = list(req.parsed.content or ())
        answers = [self._handle(alias, der, depth=req.depth + 1, vouched=True) for der in inner]
        if len(answers) == 1:
            return answers[0]
        # A batch (RFC 9483 §5.2.2.2): the answers travel in one nested response.
        req.auth = None
        return self.respond(req, B.nested_body(answers))


# --- small helpers ---------------------------------------------------------------------------------------------

_KU_ATTRS = (
    ("digitalSignature", "digital_signature"), ("contentCommitment", "content_commitment"),
    ("keyEncipherment", "key_encipherment"), ("dataEncipherment", "data_encipherment"), ("keyAgreement", "key_agreement"),
    ("keyCertSign", "key_cert_sign"), ("cRLSign", "crl_sign"), ("encipherOnly", "encipher_only"), ("decipherOnly", "decipher_only"),
)


def _ku_bit(ku: x509.KeyUsage, attr: str) -> bool:
    try:
        return bool(getattr(ku, attr))
    except ValueError:  # encipher_only/decipher_only without keyAgreement
        return False


def _indirect_popo(item: CertReqItem) -> str | None:
    """keyEncipherment/keyAgreement when ``item`` asks for the indirect POPO method
    (subsequentMessage encrCert) for a key of its own; None otherwise (also for p10cr
    and for an item the fast reader read: its POPO is a signature)."""
    if item.msg is None or item.wants_server_key:
        return None
    popo = item.msg["popo"]
    if not popo.isValue or popo.getName() not in ("keyEncipherment", "keyAgreement"):
        return None
    priv = popo[popo.getName()]
    if priv.getName() != "subsequentMessage" or int(priv["subsequentMessage"]) != 0:
        return None
    return popo.getName()


def _key_kind(public_key: Any) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "an RSA key"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "an EC key"
    return f"a {type(public_key).__name__.removeprefix('_').replace('PublicKey', '')} key"


_SCRATCH: list[Any] = []


def _scratch_key() -> Any:
    if not _SCRATCH:
        _SCRATCH.append(ec.generate_private_key(ec.SECP256R1()))
    return _SCRATCH[0]


@functools.lru_cache(maxsize=32)
def _popo_alg(der: bytes) -> Any:
    """A fast-read POPO AlgorithmIdentifier as pyasn1 value, decoded once per distinct DER
    (clients use one or two).  Shared between requests and threads: callers only read it
    (parse_signature_algorithm), and both components are touched here, so a later read
    never instantiates an absent one."""
    alg = codec.decode(der, rfc5280.AlgorithmIdentifier(), what="AlgorithmIdentifier", strict=False)
    alg["algorithm"], alg["parameters"]  # noqa: B018
    return alg


def _mac_protected(req: Request) -> bool:
    return req.protection_oid() in A.MAC_ALGS


def _time(value: Any) -> _dt.datetime:
    choice = value.getName()
    return value[choice].asDateTime.astimezone(UTC)


def _status(status: str, fail_info: str | None = None, text: str | None = None) -> Any:
    from cmpclient.message.status import build_status_info

    return build_status_info(status, fail_info=[fail_info] if fail_info else [], texts=[text] if text else [])


def _seq(items: Sequence[bytes]) -> bytes:
    inner = b"".join(items)
    return codec.der_header(0x30, len(inner)) + inner


_CURVE_SPECS = {oids.SECP256R1: "secp256r1", oids.SECP384R1: "secp384r1", oids.SECP521R1: "secp521r1"}
_OID_SPECS = {oids.ED25519: "Ed25519", oids.ED448: "Ed448", oids.ML_DSA_44: "ML-DSA-44", oids.ML_DSA_65: "ML-DSA-65",
              oids.ML_DSA_87: "ML-DSA-87", oids.ML_KEM_768: "ML-KEM-768", oids.ML_KEM_1024: "ML-KEM-1024"}


def _spec_from_spki(spki_der: bytes, profile: CertProfile) -> str | None:
    """The key spec an SPKI (usually with an empty key) asks for; None when it does not say."""
    spki = codec.decode(spki_der, rfc5280.SubjectPublicKeyInfo(), strict=False)
    oid = str(spki["algorithm"]["algorithm"])
    if oid == oids.EC_PUBLIC_KEY:
        params = spki["algorithm"]["parameters"]
        if not params.isValue:
            return None
        curve = str(codec.decode(bytes(params), univ.ObjectIdentifier(), strict=False))
        spec = _CURVE_SPECS.get(curve)
        if spec is None:
            raise Refusal("badRequest", f"unsupported curve {curve} for server-side key generation")
        return spec
    if oid == oids.RSA_ENCRYPTION:
        if profile.server_keygen_key and profile.server_keygen_key.upper().startswith("RSA"):
            return profile.server_keygen_key
        sizes = [s for s in profile.key_algs if s.upper().startswith("RSA")]
        if len(sizes) == 1:
            return sizes[0]
        raise Refusal("badRequest", f"RSA key size for server-side key generation is ambiguous in profile {profile.name}")
    if oid in _OID_SPECS:
        return _OID_SPECS[oid]
    raise Refusal("badRequest", f"unsupported key algorithm {oids.oid_name(oid)} for server-side key generation")


def _alg_der(spec: str) -> bytes:
    from cmpclient.keys import parse_key_spec

    ks = parse_key_spec(spec)
    if ks.family == "RSA":
        return codec.algorithm_identifier_der(oids.RSA_ENCRYPTION, b"\x05\x00")
    if ks.family == "EC":
        curve = {v: k for k, v in _CURVE_SPECS.items()}[str(ks.param)]
        return codec.algorithm_identifier_der(oids.EC_PUBLIC_KEY, codec.oid_der(curve))
    oid = {v: k for k, v in _OID_SPECS.items()}[ks.name]
    return codec.algorithm_identifier_der(oid)


_HASH_BY_OID = {oids.SHA224: hashes.SHA224, oids.SHA256: hashes.SHA256, oids.SHA384: hashes.SHA384, oids.SHA512: hashes.SHA512}


def _cert_hash(cert_der: bytes, hash_alg_oid: str | None) -> bytes:
    if hash_alg_oid is None:
        return _sig.certificate_hash(cert_der)[0]
    if hash_alg_oid == oids.SHAKE256:
        h = hashes.Hash(hashes.SHAKE256(64))
    elif hash_alg_oid in _HASH_BY_OID:
        h = hashes.Hash(_HASH_BY_OID[hash_alg_oid]())
    else:
        raise Refusal("badAlg", f"certConf hashAlg {oids.oid_name(hash_alg_oid)} is not supported")
    h.update(cert_der)
    return h.finalize()


def _crl_reason(details: Any) -> int:
    """The CRLReason of RevDetails.crlEntryDetails (0, unspecified, when absent)."""
    exts = details["crlEntryDetails"]
    if not exts.isValue:
        return 0
    for ext in exts:
        if str(ext["extnID"]) == oids.CE_CRL_REASON:
            value = bytes(ext["extnValue"])
            if len(value) != 3 or value[0] != 0x0A or value[1] != 0x01:
                raise ValueError("CRLReason is not a one-byte ENUMERATED")
            code = value[2]
            if code > 10 or code == 7:
                raise ValueError(f"CRLReason {code} is not defined")
            return code
    return 0


def _response_der(response: Any) -> bytes:
    """A CertResponse's DER (responses are kept as DER on the issuance path)."""
    return bytes(response) if isinstance(response, (bytes, bytearray)) else codec.encode(response)


def _response_id(response: Any) -> int:
    """The certReqId of a CertResponse given as DER or as a pyasn1 value."""
    if isinstance(response, (bytes, bytearray)):
        response = codec.decode(bytes(response), cmp.CertResponse(), what="CertResponse", strict=False)
    return int(response["certReqId"])
