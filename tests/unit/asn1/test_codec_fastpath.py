"""The pyasn1-fasder fast path of :func:`cmpclient.asn1.codec.decode` (issue #5, speed).

``decode`` tries pyasn1-fasder first and lets the pyasn1 path (decode, then re-encode and
compare) decide whenever fasder refuses.  That is only safe if fasder never *accepts* what
the pyasn1 path refuses, and builds the same values when it accepts.  Checked here:

* every openssl-made vector and messages of our builders: fasder accepts, same value,
  byte-identical re-encoding;
* value-preserving BER forms of those messages (non-minimal lengths, indefinite lengths,
  padded INTEGERs, BOOLEAN TRUE as 0x01, an explicit DEFAULT, constructed OCTET STRINGs,
  unsorted SET OF, non-canonical times): pyasn1's lenient decoder reads them, the strict
  path refuses them, and fasder must refuse them too;
* random mutations (the fuzzer's mutator): whenever fasder accepts, the strict pyasn1 path
  accepts the same value;
* without the library, ``decode`` still works (pure pyasn1).
"""

from __future__ import annotations

import functools
import importlib.util
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from cmpclient.asn1 import cmp, codec, crmf
from cmpclient.errors import DecodeError

pytest.importorskip("pyasn1_fasder")

REPO = Path(__file__).resolve().parents[3]
VECTOR_FILES = sorted((REPO / "tests" / "vectors" / "openssl").rglob("*.der"))
VECTORS = [p.read_bytes() for p in VECTOR_FILES]


def _slow_strict(data: bytes, spec):
    """The reference: pyasn1 decode, no trailing bytes, re-encoding identical (None if refused).

    Returns a fresh decode: pyasn1's encoder adds empty optional SEQUENCEs to the value
    it encodes, which would show in a comparison."""
    try:
        value, rest = der_decoder.decode(data, asn1Spec=spec)
        if rest or der_encoder.encode(value) != data:
            return None
    except Exception:  # noqa: BLE001 - any refusal
        return None
    return der_decoder.decode(data, asn1Spec=spec)[0]


def _same(a, b) -> bool:
    return a.prettyPrint() == b.prettyPrint()


def _tlvs(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, header length, content length) of every TLV of a DER value, depth first."""
    out: list[tuple[int, int, int]] = []

    def walk(start: int, end: int) -> None:
        pos = start
        while pos < end:
            tag, content, stop = codec.read_tlv(data, pos)
            out.append((pos, content - pos, stop - content))
            if tag & 0x20:
                walk(content, stop)
            pos = stop

    walk(0, len(data))
    return out


def _len_bytes(n: int) -> bytes:
    return codec.der_header(0, n)[1:]


def _rewrap(data: bytes, pos: int, hl: int, ln: int, new_header: bytes, new_content: bytes | None = None,
            trailer: bytes = b"") -> bytes:
    """Replace one TLV, then fix the lengths of every TLV that contains it."""
    content = data[pos + hl:pos + hl + ln] if new_content is None else new_content
    piece = new_header + content + trailer
    delta = len(piece) - (hl + ln)
    out = data[:pos] + piece + data[pos + hl + ln:]
    # enclosing TLVs: those starting before pos whose content covers pos (outermost first)
    parents = [(p, h, n) for p, h, n in _tlvs(data) if p < pos and p + h + n >= pos + hl + ln and p + h <= pos]
    for p, h, n in sorted(parents, key=lambda t: t[0], reverse=True):
        header = out[p:p + 1] + _len_bytes(n + delta)
        out = out[:p] + header + out[p + h:]
        delta += len(header) - h
    return out


def _ber_variants(data: bytes) -> list[tuple[str, bytes]]:
    """Value-preserving non-DER forms of ``data``, one change each."""
    variants = []
    for pos, hl, ln in _tlvs(data)[:60]:
        tag = data[pos]
        # long-form length where the short form (or a shorter long form) fits
        variants.append((f"long length @{pos}", _rewrap(data, pos, hl, ln, bytes((tag, 0x84)) + ln.to_bytes(4, "big"))))
        if tag & 0x20:  # indefinite length with end-of-contents
            variants.append((f"indefinite @{pos}", _rewrap(data, pos, hl, ln, bytes((tag, 0x80)), trailer=b"\x00\x00")))
        content = data[pos + hl:pos + hl + ln]
        if tag == 0x02 and ln and content[0] < 0x80:  # padded positive INTEGER
            new = b"\x00" + content
            variants.append((f"padded integer @{pos}", _rewrap(data, pos, hl, ln, bytes((tag,)) + _len_bytes(len(new)), new)))
        if tag == 0x01 and content == b"\xff":
            variants.append((f"boolean 0x01 @{pos}", _rewrap(data, pos, hl, ln, data[pos:pos + hl], b"\x01")))
        if tag == 0x04 and ln:  # constructed OCTET STRING of one segment
            inner = data[pos:pos + hl + ln]
            variants.append((f"constructed octets @{pos}", _rewrap(data, pos, hl, ln, b"\x24" + _len_bytes(len(inner)), inner)))
        if tag == 0x18 and content.endswith(b"Z") and b"." not in content:  # GeneralizedTime with ".0"
            new = content[:-1] + b".0Z"
            variants.append((f"fraction in time @{pos}", _rewrap(data, pos, hl, ln, bytes((tag,)) + _len_bytes(len(new)), new)))
        if tag == 0x31:  # SET OF with its elements out of order
            elems = []
            p = pos + hl
            while p < pos + hl + ln:
                _, c, e = codec.read_tlv(data, p)
                elems.append(data[p:e])
                p = e
            if len(elems) > 1 and elems != elems[::-1] and sorted(elems) == elems:
                variants.append((f"unsorted set @{pos}", _rewrap(data, pos, hl, ln, data[pos:pos + hl], b"".join(elems[::-1]))))
    return variants


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[f"{p.parent.name}/{p.name}" for p in VECTOR_FILES])
def test_fasder_accepts_every_vector_with_the_same_value(path: Path) -> None:
    data = path.read_bytes()
    fast = codec.fast_decode(data, cmp.PKIMessage())
    slow = _slow_strict(data, cmp.PKIMessage())
    assert fast is not None and slow is not None
    assert _same(fast, slow)
    assert der_encoder.encode(fast) == data


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[f"{p.parent.name}/{p.name}" for p in VECTOR_FILES])
def test_ber_forms_decide_as_the_strict_path(path: Path) -> None:
    """fasder accepts a BER form only if the strict path does (non-DER inside an opaque
    ``Any`` -- a name's attribute value, a certificate -- passes both, as before), and
    ``decode``'s verdict is the strict path's."""
    data = path.read_bytes()
    variants = _ber_variants(data)
    assert len(variants) > 20
    refused = 0
    for what, ber in variants:
        slow = _slow_strict(ber, cmp.PKIMessage())
        fast = codec.fast_decode(ber, cmp.PKIMessage())
        if fast is not None:
            assert slow is not None, f"fasder accepted a BER form the strict path refuses: {what}"
            assert _same(fast, slow), what
        if slow is None:
            refused += 1
            with pytest.raises(DecodeError):
                codec.decode(ber, cmp.PKIMessage())
        else:
            assert codec.encode(codec.decode(ber, cmp.PKIMessage())) == ber
    assert refused > 10  # the variants do reach the strict check


def _extension(critical_der: bytes) -> bytes:
    body = b"\x06\x03\x55\x1d\x0f" + critical_der + b"\x04\x04\x03\x02\x05\xa0"
    return b"\x30" + _len_bytes(len(body)) + body


def test_explicit_default_refused_by_both() -> None:
    """Extension.critical DEFAULT FALSE present as FALSE: pyasn1 re-encodes without it."""
    ext_der = _extension(b"\x01\x01\x00")
    template = b"\xa9" + _len_bytes(len(ext_der)) + ext_der  # CertTemplate extensions [9]
    data = b"\x30" + _len_bytes(len(template)) + template
    assert der_decoder.decode(data, asn1Spec=crmf.CertTemplate())[0] is not None  # lenient: readable
    assert _slow_strict(data, crmf.CertTemplate()) is None
    assert codec.fast_decode(data, crmf.CertTemplate()) is None
    good = _extension(b"")
    good_template = b"\x30" + _len_bytes(len(good) + 2) + b"\xa9" + _len_bytes(len(good)) + good
    assert codec.fast_decode(good_template, crmf.CertTemplate()) is not None


@pytest.mark.parametrize("data, spec", [
    (b"\x01\x01\x01", univ.Boolean()),
    (b"\x02\x02\x00\x05", univ.Integer()),
    (b"\x02\x02\xff\x85", univ.Integer()),
    (b"\x03\x02\x01\x01", univ.BitString()),  # unused bit set
    (b"\x04\x81\x01\x41", univ.OctetString()),
    (b"\x30\x80\x02\x01\x05\x00\x00", rfc5280.AlgorithmIdentifier()),
    (b"\x17\x0d" + b"261127120000+", rfc5280.Time()),
    (b"\x18\x0f" + b"20261127120000Z" + b"", rfc5280.Time()),  # GeneralizedTime before 2050
])
def test_non_der_primitives(data: bytes, spec) -> None:
    assert codec.fast_decode(data, spec) is None or _slow_strict(data, spec) is not None


@functools.cache
def _fuzz_mutator():
    spec = importlib.util.spec_from_file_location("cmp_fuzz_script_fast", REPO / "scripts" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cmp_fuzz_script_fast"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.mutate


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VECTORS) - 1), st.integers(0, 2**32 - 1))
def test_fasder_never_accepts_what_strict_pyasn1_refuses(index: int, seed: int) -> None:
    data = _fuzz_mutator()(random.Random(seed), VECTORS[index], VECTORS)
    fast = codec.fast_decode(data, cmp.PKIMessage())
    if fast is None:
        return
    slow = _slow_strict(data, cmp.PKIMessage())
    assert slow is not None, f"fasder accepted what strict pyasn1 refuses: {data.hex()}"
    assert _same(fast, slow)


def test_decode_without_fasder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_fast_decode_der", None)
    assert codec.fast_decode(VECTORS[0], cmp.PKIMessage()) is None
    msg = codec.decode(VECTORS[0], cmp.PKIMessage())
    assert codec.encode(msg) == VECTORS[0]
    ber = _ber_variants(VECTORS[0])[0][1]
    with pytest.raises(DecodeError, match="not DER"):
        codec.decode(ber, cmp.PKIMessage())


def test_decode_uses_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid message never reaches pyasn1's decoder (the point of the fast path)."""
    def boom(*a, **k):
        raise AssertionError("pyasn1 decoder used for a valid DER message")

    monkeypatch.setattr(codec._der_decoder, "decode", boom)
    for data in VECTORS:
        codec.decode(data, cmp.PKIMessage())
