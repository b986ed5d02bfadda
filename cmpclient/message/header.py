"""PKIHeader builder (RFC 9810 §5.1.1)."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509

from cmpclient.asn1 import codec, oids
from cmpclient.asn1.lazy import cmp, univ
from cmpclient.errors import UsageError
from cmpclient.message._builder import Builder
from cmpclient.message.names import general_name, general_name_der

#: RFC 9810 §5.1.1: at least 128 bits of randomness for transactionID and nonces.
NONCE_LENGTH = 16

GeneralNameLike = "x509.Name | str | x509.GeneralName"


def random_bytes(n: int = NONCE_LENGTH) -> bytes:
    return os.urandom(n)


def build_itav(oid: str, value: object | bytes | None = None) -> cmp.InfoTypeAndValue:
    """An InfoTypeAndValue; ``value`` is a pyasn1 value or its DER, or None (absent)."""
    itav = cmp.InfoTypeAndValue()
    itav["infoType"] = univ.ObjectIdentifier(oid)
    if value is not None:
        der = value if isinstance(value, (bytes, bytearray)) else codec.encode(value)  # type: ignore[arg-type]
        itav["infoValue"] = univ.Any(bytes(der))
    return itav


@dataclass(frozen=True)
class HeaderBuilder(Builder):
    """Immutable PKIHeader builder.

    ``transactionID`` and ``senderNonce`` are random (128 bits) unless set, and
    ``messageTime`` is now unless set or turned off with ``message_time(False)``.
    ``sender`` and ``recipient`` are required: pass ``""`` for the NULL-DN.
    """

    _pvno: int | None = None
    _sender: object | None = None
    _recipient: object | None = None
    _message_time: object | None = None
    _sender_kid: bytes | None = None
    _recip_kid: bytes | None = None
    _transaction_id: bytes | None = None
    _sender_nonce: bytes | None = None
    _recip_nonce: bytes | None = None
    _free_text: tuple[str, ...] | None = None
    _general_info: tuple[tuple[str, bytes | None], ...] = ()
    _protection_alg: object | None = None

    def pvno(self, pvno: int) -> "HeaderBuilder":
        if pvno not in (1, 2, 3):
            raise UsageError(f"pvno must be 1, 2 or 3 (cmp2021), not {pvno}")
        return self._set("_pvno", pvno)

    def sender(self, name: "x509.Name | str | x509.GeneralName") -> "HeaderBuilder":
        return self._set("_sender", name)

    def recipient(self, name: "x509.Name | str | x509.GeneralName") -> "HeaderBuilder":
        return self._set("_recipient", name)

    def message_time(self, when: _dt.datetime | bool) -> "HeaderBuilder":
        return self._set("_message_time", when)

    def sender_kid(self, kid: bytes) -> "HeaderBuilder":
        return self._set("_sender_kid", bytes(kid))

    def recip_kid(self, kid: bytes) -> "HeaderBuilder":
        return self._set("_recip_kid", bytes(kid))

    def transaction_id(self, tid: bytes) -> "HeaderBuilder":
        if not tid:
            raise UsageError("transactionID must not be empty")
        return self._set("_transaction_id", bytes(tid))

    def sender_nonce(self, nonce: bytes) -> "HeaderBuilder":
        if not nonce:
            raise UsageError("senderNonce must not be empty")
        return self._set("_sender_nonce", bytes(nonce))

    def recip_nonce(self, nonce: bytes) -> "HeaderBuilder":
        return self._set("_recip_nonce", bytes(nonce))

    def free_text(self, *texts: str) -> "HeaderBuilder":
        return self._set("_free_text", tuple(texts))

    def general_info(self, oid: str, value: object | bytes | None = None) -> "HeaderBuilder":
        if any(existing == oid for existing, _ in self._general_info):
            raise UsageError(f"generalInfo {oids.oid_name(oid)} is already set")
        der = value if value is None or isinstance(value, (bytes, bytearray)) else codec.encode(value)  # type: ignore[arg-type]
        return self._append("_general_info", (oid, der))

    def implicit_confirm(self) -> "HeaderBuilder":
        """Ask for (or, in a response, grant) implicit confirmation: generalInfo implicitConfirm NULL."""
        return self.general_info(oids.IT_IMPLICIT_CONFIRM, b"\x05\x00")

    def protection_alg(self, alg_id: object) -> "HeaderBuilder":
        """Set protectionAlg (an AlgorithmIdentifier, or its DER); usually done by
        :func:`cmpclient.protection.protect_message`."""
        return self._set("_protection_alg", alg_id)

    def _protection_alg_der(self) -> bytes:
        alg = self._protection_alg
        return bytes(alg) if isinstance(alg, (bytes, bytearray)) else codec.encode(alg)  # type: ignore[arg-type]

    def build(self) -> cmp.PKIHeader:
        self._require("_sender", "_recipient")
        header = cmp.PKIHeader()
        header["pvno"] = self._pvno or 2
        header["sender"] = general_name(self._sender)  # type: ignore[arg-type]
        header["recipient"] = general_name(self._recipient)  # type: ignore[arg-type]
        when = self._message_time
        if when is None or when is True:
            when = _dt.datetime.now(_dt.timezone.utc)
        if when is not False:
            header["messageTime"] = generalized_time(when)  # type: ignore[arg-type]
        if self._protection_alg is not None:
            header["protectionAlg"] = codec.value_from_der(
                header.componentType["protectionAlg"].asn1Object, self._protection_alg_der()
            )
        if self._sender_kid is not None:
            header["senderKID"] = self._sender_kid
        if self._recip_kid is not None:
            header["recipKID"] = self._recip_kid
        header["transactionID"] = self._transaction_id or random_bytes()
        header["senderNonce"] = self._sender_nonce or random_bytes()
        if self._recip_nonce is not None:
            header["recipNonce"] = self._recip_nonce
        if self._free_text:
            for i, text in enumerate(self._free_text):
                header["freeText"][i] = text
        for i, (oid, der) in enumerate(self._general_info):
            header["generalInfo"][i] = build_itav(oid, der)
        return header


    def build_der(self) -> bytes:
        """The header's DER, assembled directly (same bytes as ``encode(build())``).

        Building the pyasn1 value and encoding it costs about 1.5 ms; a header is a dozen
        short fields, so the DER is written field by field instead on the hot path.
        """
        self._require("_sender", "_recipient")
        h = codec.der_header
        out = [b"\x02\x01" + bytes((self._pvno or 2,))]
        out.append(general_name_der(self._sender))  # type: ignore[arg-type]
        out.append(general_name_der(self._recipient))  # type: ignore[arg-type]

        def explicit(num: int, inner: bytes) -> None:
            out.append(h(0xA0 | num, len(inner)) + inner)

        def octets(num: int, value: bytes | None) -> None:
            if value is not None:
                explicit(num, h(0x04, len(value)) + value)

        when = self._message_time
        if when is None or when is True:
            when = _dt.datetime.now(_dt.timezone.utc)
        if when is not False:
            text = generalized_time(when).encode()  # type: ignore[arg-type]
            explicit(0, h(0x18, len(text)) + text)
        if self._protection_alg is not None:
            explicit(1, self._protection_alg_der())
        octets(2, self._sender_kid)
        octets(3, self._recip_kid)
        octets(4, self._transaction_id or random_bytes())
        octets(5, self._sender_nonce or random_bytes())
        octets(6, self._recip_nonce)
        if self._free_text:
            texts = b"".join(h(0x0C, len(t.encode())) + t.encode() for t in self._free_text)
            explicit(7, h(0x30, len(texts)) + texts)
        if self._general_info:
            items = []
            for oid, der in self._general_info:
                item = codec.oid_der(oid) + (der or b"")
                items.append(h(0x30, len(item)) + item)
            seq = b"".join(items)
            explicit(8, h(0x30, len(seq)) + seq)
        content = b"".join(out)
        return h(0x30, len(content)) + content


def generalized_time(when: _dt.datetime) -> str:
    """GeneralizedTime text in UTC, whole seconds (DER: ``YYYYMMDDHHMMSSZ``)."""
    if when.tzinfo is None:
        raise UsageError("messageTime must be timezone-aware")
    return when.astimezone(_dt.timezone.utc).strftime("%Y%m%d%H%M%SZ")


def has_implicit_confirm(header: cmp.PKIHeader) -> bool:
    return any(str(itav["infoType"]) == oids.IT_IMPLICIT_CONFIRM for itav in general_info(header))


def general_info(header: cmp.PKIHeader) -> Sequence[cmp.InfoTypeAndValue]:
    gi = header["generalInfo"]
    return list(gi) if gi.isValue else []
