"""CRMF certificate request builder (RFC 4211, RFC 9810 §5.2.1) with every POPO form."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
import functools
from typing import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.lazy import char, crmf, rfc5280
from cmpclient.errors import DecodeError, UsageError
from cmpclient.message._builder import Builder
from cmpclient.message.names import name_der, general_name, general_name_der, parse_dn

#: A signer for POPO: DER bytes in, (AlgorithmIdentifier as pyasn1 value or DER, signature
#: bytes) out.  :func:`cmpclient.protection.popo_signer` makes one from a key.
POPOSigner = Callable[[bytes], "tuple[object, bytes]"]
#: A MAC for POPOSigningKeyInput.publicKeyMAC: SPKI DER in, (AlgorithmIdentifier, MAC) out.
PublicKeyMAC = Callable[[bytes], "tuple[object, bytes]"]

POPO_METHODS = ("signature", "raVerified", "keyEncipherment", "keyAgreement", "none")


def public_key_der(key: object) -> bytes:
    """SubjectPublicKeyInfo DER of a cryptography public (or private) key, or of the
    SubjectPublicKeyInfo given as bytes (read leniently, written back as DER)."""
    if isinstance(key, (bytes, bytearray)):
        try:
            return codec.encode(codec.decode(bytes(key), rfc5280.SubjectPublicKeyInfo(), strict=False))
        except DecodeError as exc:
            raise UsageError(f"not a SubjectPublicKeyInfo: {exc.message}") from None
    if hasattr(key, "public_key") and not hasattr(key, "public_bytes"):
        key = key.public_key()  # type: ignore[union-attr]
    if hasattr(key, "public_key") and hasattr(key, "private_bytes"):
        key = key.public_key()  # type: ignore[union-attr]
    try:
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    except AttributeError:
        raise UsageError(f"not a public key: {type(key).__name__}") from None


def empty_public_key(algorithm_der: bytes) -> bytes:
    """An SPKI with the given AlgorithmIdentifier and an empty BIT STRING.

    RFC 9483 §4.1.6.2 / EJBCA: asks the CA to generate the key of that algorithm.
    """
    inner = algorithm_der + b"\x03\x01\x00"
    return codec.der_header(0x30, len(inner)) + inner


def _utf8_der(text: str) -> bytes:
    return codec.encode(char.UTF8String(text))


@dataclass(frozen=True)
class CertRequestBuilder(Builder):
    """Immutable builder of one CertReqMsg.

    Typical: ``CertRequestBuilder().subject("CN=dev").public_key(key).popo_signature(signer).build()``.
    A request with no public key asks for a server-generated key (add a protocolEncrKey
    control).  Without a POPO method set, ``build()`` refuses unless ``popo_none()``.
    """

    _cert_req_id: int | None = None
    _subject: object | None = None
    _issuer: object | None = None
    _serial_number: int | None = None
    _public_key: bytes | None = None
    _not_before: _dt.datetime | None = None
    _not_after: _dt.datetime | None = None
    _extensions: tuple[tuple[str, bool, bytes], ...] = ()
    _controls: tuple[tuple[str, bytes], ...] = ()
    _reg_info: tuple[tuple[str, bytes], ...] = ()
    _popo: tuple | None = None

    # --- template ------------------------------------------------------------------
    def cert_req_id(self, value: int) -> "CertRequestBuilder":
        if value < -1:
            raise UsageError("certReqId must be >= 0 (-1 only for p10cr-style answers)")
        return self._set("_cert_req_id", int(value))

    def subject(self, name: x509.Name | str) -> "CertRequestBuilder":
        return self._set("_subject", name)

    def issuer(self, name: x509.Name | str) -> "CertRequestBuilder":
        return self._set("_issuer", name)

    def serial_number(self, serial: int) -> "CertRequestBuilder":
        return self._set("_serial_number", int(serial))

    def public_key(self, key: object) -> "CertRequestBuilder":
        """The key to certify: a cryptography key (public or private) or SPKI DER."""
        return self._set("_public_key", public_key_der(key))

    def validity(self, not_before: _dt.datetime | None = None, not_after: _dt.datetime | None = None) -> "CertRequestBuilder":
        if not_before is None and not_after is None:
            raise UsageError("validity needs notBefore, notAfter or both")
        if any(when is not None and when.tzinfo is None for when in (not_before, not_after)):
            # Refuse here: comparing a naive with an aware datetime raises TypeError.
            raise UsageError("validity times must be timezone-aware")
        first = not_before or self._not_before
        last = not_after or self._not_after
        if first and last and last <= first:
            raise UsageError("notAfter must be later than notBefore")
        b = self._set("_not_before", not_before) if not_before else self
        return b._set("_not_after", not_after) if not_after else b

    def extension(self, value: x509.ExtensionType, critical: bool = False) -> "CertRequestBuilder":
        oid = value.oid.dotted_string
        if any(o == oid for o, _, _ in self._extensions):
            raise UsageError(f"extension {oids.oid_name(oid)} is already set")
        return self._append("_extensions", (oid, critical, value.public_bytes()))

    def subject_alt_names(self, names: Sequence[x509.GeneralName]) -> "CertRequestBuilder":
        if not names:
            raise UsageError("subjectAltName needs at least one name")
        return self.extension(x509.SubjectAlternativeName(list(names)))

    # --- controls --------------------------------------------------------------------
    def control(self, oid: str, value_der: bytes) -> "CertRequestBuilder":
        if any(o == oid for o, _ in self._controls):
            raise UsageError(f"control {oids.oid_name(oid)} is already set")
        return self._append("_controls", (oid, bytes(value_der)))

    def reg_token(self, token: str) -> "CertRequestBuilder":
        return self.control(oids.REGCTRL_REG_TOKEN, _utf8_der(token))

    def authenticator(self, text: str) -> "CertRequestBuilder":
        return self.control(oids.REGCTRL_AUTHENTICATOR, _utf8_der(text))

    def old_cert_id(self, issuer: x509.Name | str, serial: int) -> "CertRequestBuilder":
        """id-regCtrl-oldCertID: the certificate a kur replaces."""
        cert_id = crmf.CertId()
        cert_id["issuer"] = general_name(issuer)
        cert_id["serialNumber"] = serial
        return self.control(oids.REGCTRL_OLD_CERT_ID, codec.encode(cert_id))

    def protocol_encr_key(self, key: object) -> "CertRequestBuilder":
        """id-regCtrl-protocolEncrKey: the key the CA encrypts a generated private key to."""
        return self.control(oids.REGCTRL_PROTOCOL_ENCR_KEY, public_key_der(key))

    def reg_info(self, oid: str, value_der: bytes) -> "CertRequestBuilder":
        return self._append("_reg_info", (oid, bytes(value_der)))

    # --- proof of possession -------------------------------------------------------------
    def popo_signature(
        self, signer: POPOSigner, *, sender: x509.Name | str | None = None, public_key_mac: PublicKeyMAC | None = None
    ) -> "CertRequestBuilder":
        """Signature POPO.  Over the DER CertRequest when the template has subject and
        public key (RFC 4211 §4.1); otherwise over a POPOSigningKeyInput naming
        ``sender`` or carrying ``public_key_mac``."""
        if sender is not None and public_key_mac is not None:
            raise UsageError("POPOSigningKeyInput takes either sender or publicKeyMAC, not both")
        return self._set("_popo", ("signature", signer, sender, public_key_mac))

    def popo_ra_verified(self) -> "CertRequestBuilder":
        return self._set("_popo", ("raVerified",))

    def popo_key_encipherment(self, *, this_message: bytes | None = None, encrypted_key_der: bytes | None = None) -> "CertRequestBuilder":
        """keyEncipherment POPO: ``subsequentMessage encrCert`` (the default; the CA
        returns the certificate encrypted), ``thisMessage`` (deprecated) or
        ``encryptedKey`` (EnvelopedData DER, RFC 9810)."""
        if this_message is not None and encrypted_key_der is not None:
            raise UsageError("choose thisMessage or encryptedKey, not both")
        return self._set("_popo", ("keyEncipherment", this_message, encrypted_key_der))

    def popo_key_agreement(self) -> "CertRequestBuilder":
        """keyAgreement POPO with ``subsequentMessage encrCert``."""
        return self._set("_popo", ("keyAgreement", None, None))

    def popo_none(self) -> "CertRequestBuilder":
        """Send no POPO at all (e.g. a server-generated key, or a server that does not check)."""
        return self._set("_popo", ("none",))

    # --- build -------------------------------------------------------------------------
    # The DER is written field by field (the ``*_der`` methods) and the pyasn1 values are
    # decoded from it: one implementation, and the hot path (``build_der``, used by
    # enroll and ``cmpclient bench``) never builds pyasn1 objects, which cost about as
    # much as everything else in a transaction together.
    @property
    def cert_req_id_value(self) -> int:
        return 0 if self._cert_req_id is None else self._cert_req_id

    @property
    def public_key_spki(self) -> bytes | None:
        """The SubjectPublicKeyInfo DER the request asks to certify (None: server-generated)."""
        return self._public_key

    @property
    def popo_subsequent_encr_cert(self) -> bool:
        """keyEncipherment/keyAgreement POPO by ``subsequentMessage encrCert`` (the indirect method)."""
        return (self._popo is not None and self._popo[0] in ("keyEncipherment", "keyAgreement")
                and self._popo[1] is None and self._popo[2] is None)

    @functools.cached_property
    def _subject_name(self) -> x509.Name | None:
        """The subject as a Name, None when unset or empty (an empty one is left out)."""
        if self._subject is None:
            return None
        name = parse_dn(self._subject)  # type: ignore[arg-type]
        return name if len(name) else None

    def template_der(self) -> bytes:
        """DER of the CertTemplate (CRMF uses IMPLICIT tags; Name, a CHOICE, is tagged explicitly)."""
        h = codec.der_header
        out = []
        if self._serial_number is not None:
            out.append(codec.integer_der(self._serial_number, 0x81))
        # An empty name (subject("") or Name([])) leaves the field out, as pyasn1 does.
        issuer = parse_dn(self._issuer) if self._issuer is not None else None  # type: ignore[arg-type]
        if issuer:
            name = name_der(issuer)
            out.append(h(0xA3, len(name)) + name)
        if self._not_before or self._not_after:
            inner = b""
            for tag, when in ((0xA0, self._not_before), (0xA1, self._not_after)):
                if when is not None:
                    t = _time_der(when)
                    inner += h(tag, len(t)) + t
            out.append(h(0xA4, len(inner)) + inner)
        if self._subject_name is not None:
            name = name_der(self._subject_name)
            out.append(h(0xA5, len(name)) + name)
        if self._public_key is not None:
            content = codec.opaque_content(self._public_key)
            out.append(h(0xA6, len(content)) + content)
        if self._extensions:
            exts = b""
            for oid, critical, value in self._extensions:
                ext = codec.oid_der(oid) + (b"\x01\x01\xff" if critical else b"") + h(0x04, len(value)) + value
                exts += h(0x30, len(ext)) + ext
            out.append(h(0xA9, len(exts)) + exts)
        inner = b"".join(out)
        return h(0x30, len(inner)) + inner

    def cert_request_der(self) -> bytes:
        """DER of the CertRequest: certReqId, certTemplate, controls."""
        inner = codec.integer_der(self.cert_req_id_value) + self.template_der()
        if self._controls:
            inner += _attributes_der(self._controls)
        return codec.der_header(0x30, len(inner)) + inner

    def build_der(self) -> bytes:
        """DER of the CertReqMsg (what ``build()`` decodes)."""
        self._require_popo()
        inner = self.cert_request_der()
        if self._popo[0] != "none":  # type: ignore[index]
            inner += self._popo_der(inner)
        if self._reg_info:
            inner += _attributes_der(self._reg_info)
        return codec.der_header(0x30, len(inner)) + inner

    def build_template(self) -> crmf.CertTemplate:
        """Just the CertTemplate (also used for rr's certDetails)."""
        return codec.decode(self.template_der(), crmf.CertTemplate())

    def build_cert_request(self) -> crmf.CertRequest:
        return codec.decode(self.cert_request_der(), crmf.CertRequest())

    def build(self) -> crmf.CertReqMsg:
        return codec.decode(self.build_der(), crmf.CertReqMsg())

    def _require_popo(self) -> None:
        if self._popo is None:
            raise UsageError(
                "CertRequestBuilder: no proof-of-possession method chosen",
                hint="call popo_signature(), popo_ra_verified(), popo_key_encipherment(), popo_key_agreement() or popo_none()",
            )

    def _popo_der(self, cert_request_der: bytes) -> bytes:
        """DER of the ProofOfPossession for a CertRequest of these bytes."""
        kind = self._popo[0]  # type: ignore[index]
        if kind == "raVerified":
            return b"\x80\x00"
        if kind == "signature":
            _, signer, sender, pk_mac = self._popo  # type: ignore[misc]
            if self._public_key is None:
                raise UsageError("signature POPO needs the request's public key", hint="use popo_none() for server-generated keys")
            has_subject = self._subject_name is not None
            if has_subject and (sender is not None or pk_mac is not None):
                # RFC 4211 section 4.1: with subject and publicKey in the template,
                # poposkInput MUST be omitted and the signature covers certReq.
                raise UsageError(
                    "a request with subject and public key is signed over certReq; drop sender=/public_key_mac="
                )
            if has_subject and sender is None and pk_mac is None:
                signed_der = cert_request_der
                input_der = None
            else:
                if sender is None and pk_mac is None:
                    raise UsageError(
                        "a request without subject needs POPOSigningKeyInput: pass sender= or public_key_mac= to popo_signature()"
                    )
                if sender is not None:
                    inner = general_name_der(sender)
                    auth = codec.der_header(0xA0, len(inner)) + inner  # [0] EXPLICIT GeneralName
                else:
                    alg, value = pk_mac(self._public_key)
                    bits = b"\x00" + value
                    mac_inner = codec.encode(alg) + codec.der_header(0x03, len(bits)) + bits  # type: ignore[arg-type]
                    auth = codec.der_header(0x30, len(mac_inner)) + mac_inner
                body = auth + self._public_key
                signed_der = codec.der_header(0x30, len(body)) + body
                input_der = signed_der
            alg_id, signature = signer(signed_der)
            parts = b""
            if input_der is not None:
                # poposkInput [0] IMPLICIT: the SEQUENCE tag is replaced by [0].
                content = codec.opaque_content(input_der)
                parts += codec.der_header(0xA0, len(content)) + content
            parts += alg_id if isinstance(alg_id, (bytes, bytearray)) else codec.encode(alg_id)  # type: ignore[arg-type]
            bits = b"\x00" + signature
            parts += codec.der_header(0x03, len(bits)) + bits
            return codec.der_header(0xA1, len(parts)) + parts
        if kind in ("keyEncipherment", "keyAgreement"):
            _, this_message, encrypted_key = self._popo  # type: ignore[misc]
            if this_message is not None:
                bits = b"\x00" + this_message
                inner = codec.der_header(0x80, len(bits)) + bits
            elif encrypted_key is not None:
                content = codec.opaque_content(encrypted_key)
                inner = codec.der_header(0xA4, len(content)) + content
            else:
                inner = b"\x81\x01\x00"  # subsequentMessage encrCert(0)
            outer_tag = 0xA2 if kind == "keyEncipherment" else 0xA3
            return codec.der_header(outer_tag, len(inner)) + inner
        raise UsageError(f"unknown POPO method {kind!r}")


def _attributes_der(items: Sequence[tuple[str, bytes]]) -> bytes:
    """DER SEQUENCE OF AttributeTypeAndValue (controls, regInfo) from (OID, value DER) pairs."""
    out = b""
    for oid, value in items:
        atv = codec.oid_der(oid) + value
        out += codec.der_header(0x30, len(atv)) + atv
    return codec.der_header(0x30, len(out)) + out


def _time_der(when: _dt.datetime) -> bytes:
    """DER Time: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5)."""
    if when.tzinfo is None:
        raise UsageError("validity times must be timezone-aware")
    utc = when.astimezone(_dt.timezone.utc)
    if 1950 <= utc.year < 2050:
        text = utc.strftime("%y%m%d%H%M%SZ").encode()
        return codec.der_header(0x17, len(text)) + text
    text = utc.strftime("%Y%m%d%H%M%SZ").encode()
    return codec.der_header(0x18, len(text)) + text
