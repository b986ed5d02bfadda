"""The pyasn1 half of :mod:`cmpclient.asn1.codec`: pyasn1's DER encoder with minimal
INTEGERs, and the strict decode.  Imported by the first :func:`cmpclient.asn1.codec.encode`
or :func:`~cmpclient.asn1.codec.decode` (which check their input first), not by importing
``codec``: code that only writes and reads DER by hand never loads pyasn1.
"""

from __future__ import annotations

from typing import Any

from pyasn1.codec.ber import encoder as _ber_encoder
from pyasn1.codec.der import decoder as _der_decoder
from pyasn1.codec.der import encoder as _pyasn1_der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import base

from cmpclient.asn1.codec import _short, int_content
from cmpclient.errors import DecodeError


class _MinimalIntegerEncoder(_ber_encoder.IntegerEncoder):
    """INTEGER and ENUMERATED contents in the fewest octets (X.690 8.3.2).  pyasn1 0.6
    writes -128 as ff80 (and every -2**(8k-1) one octet too long): that is not DER, so
    our own messages would not be, and the re-encoding check refused a peer's correct
    020180.  pyasn1's encoder maps take this one replacement; nothing else changes."""

    def encodeValue(self, value: Any, asn1Spec: Any, encodeFun: Any, **options: Any) -> tuple[bytes, bool, bool]:
        return int_content(int(value)), False, True


def _with_minimal_integers(table: dict) -> dict:
    return {k: (_MinimalIntegerEncoder() if type(v) is _ber_encoder.IntegerEncoder else v) for k, v in table.items()}


class _SingleItemEncoder(_pyasn1_der_encoder.SingleItemEncoder):
    TAG_MAP = _with_minimal_integers(_pyasn1_der_encoder.TAG_MAP)
    TYPE_MAP = _with_minimal_integers(_pyasn1_der_encoder.TYPE_MAP)


class _Encoder(_pyasn1_der_encoder.Encoder):
    SINGLE_ITEM_ENCODER = _SingleItemEncoder


#: pyasn1's DER encoder with minimal INTEGERs.
_der_encode = _Encoder()


def encode(value: base.Asn1Item) -> bytes:
    """:func:`cmpclient.asn1.codec.encode`."""
    try:
        return _der_encode(value)  # type: ignore[no-any-return]
    except PyAsn1Error as exc:
        raise DecodeError(f"cannot DER-encode {type(value).__name__}: {_short(exc)}") from exc


def decode(data: bytes, spec: Any, name: str, strict: bool) -> Any:
    """:func:`cmpclient.asn1.codec.decode` once its input checks passed: ``data`` is
    non-empty bytes within the size limit and ``name`` names the structure."""
    try:
        value, rest = _der_decoder.decode(data, asn1Spec=spec)
    except (PyAsn1Error, TypeError, ValueError, IndexError, OverflowError, RecursionError) as exc:
        if "Indefinite length" in str(exc):
            # pyasn1's DER decoder stops at the first indefinite length: that is BER.
            raise DecodeError(
                f"{name}: not DER (indefinite length encoding)",
                hint="the sender used a non-canonical (BER) encoding",
            ) from exc
        raise DecodeError(f"not a valid {name}: {_short(exc)}") from exc
    if rest:
        raise DecodeError(f"{name}: {len(rest)} trailing byte(s) after the DER value")
    if strict:
        try:
            again = _der_encode(value)
        except PyAsn1Error as exc:
            raise DecodeError(f"{name}: decoded value is incomplete: {_short(exc)}") from exc
        if again != data:
            offset = next((i for i, (a, b) in enumerate(zip(again, data)) if a != b), min(len(again), len(data)))
            raise DecodeError(
                f"{name}: not DER (re-encoding differs at byte offset {offset})",
                hint="the sender used a non-canonical (BER) encoding",
            )
    return value
