"""PKIStatusInfo: building from names and reading back into a typed value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from cmpclient.asn1 import codec
from cmpclient.asn1.cmp_names import FAIL_INFO_NAMES, PKI_STATUS_NAMES as STATUS_NAMES
from cmpclient.asn1.lazy import cmp
from cmpclient.errors import UsageError
_FAIL_INDEX = {name.lower(): i for i, name in enumerate(FAIL_INFO_NAMES)}


def status_code(status: str | int) -> int:
    """The PKIStatus number for a name (``rejection``) or number."""
    if isinstance(status, int):
        if not 0 <= status < len(STATUS_NAMES):
            raise UsageError(f"PKIStatus {status} is out of range 0..{len(STATUS_NAMES) - 1}")
        return status
    try:
        return STATUS_NAMES.index(status)
    except ValueError:
        raise UsageError(f"unknown PKIStatus {status!r}", hint="one of " + ", ".join(STATUS_NAMES)) from None


def fail_info_bits(names: Iterable[str | int]) -> tuple[int, ...]:
    """The bit positions of failInfo names (case-insensitive) or numbers."""
    bits = []
    for name in names:
        if isinstance(name, int):
            if not 0 <= name < len(FAIL_INFO_NAMES):
                raise UsageError(f"failInfo bit {name} is out of range 0..{len(FAIL_INFO_NAMES) - 1}")
            bits.append(name)
            continue
        idx = _FAIL_INDEX.get(name.lower())
        if idx is None:
            raise UsageError(f"unknown failInfo {name!r}", hint="one of " + ", ".join(FAIL_INFO_NAMES))
        bits.append(idx)
    return tuple(sorted(set(bits)))


def fail_info_value(names: Iterable[str | int]) -> cmp.PKIFailureInfo:
    """A DER-ready PKIFailureInfo BIT STRING (trailing zero bits removed, as DER requires)."""
    bits = fail_info_bits(names)
    if not bits:
        return cmp.PKIFailureInfo(())
    width = max(bits) + 1
    return cmp.PKIFailureInfo(tuple(1 if i in bits else 0 for i in range(width)))


def build_status_info(
    status: str | int = "accepted", *, fail_info: Sequence[str | int] = (), texts: Sequence[str] = ()
) -> cmp.PKIStatusInfo:
    """A PKIStatusInfo from a status name, failInfo names and statusString texts."""
    info = cmp.PKIStatusInfo()
    info["status"] = status_code(status)
    if texts:
        free = info["statusString"]
        for i, text in enumerate(texts):
            free[i] = text
    if fail_info:
        info["failInfo"] = fail_info_value(fail_info)
    return info


def status_info_der(status: str | int = "accepted", *, fail_info: Sequence[str | int] = ()) -> bytes:
    """The DER of ``build_status_info(status, fail_info=fail_info)`` (no statusString),
    written directly: the same bytes as pyasn1's encoding, without building the value.

    failInfo is a BIT STRING with named bits, so DER drops trailing zero bits: the
    content is the unused-bit count, then the bits up to the highest one set.
    """
    content = codec.integer_der(status_code(status))
    bits = fail_info_bits(fail_info) if fail_info else ()
    if bits:
        width = bits[-1] + 1
        size = (width + 7) // 8
        value = 0
        for bit in bits:
            value |= 1 << (size * 8 - 1 - bit)
        octets = bytes((size * 8 - width,)) + value.to_bytes(size, "big")
        content += codec.der_header(0x03, len(octets)) + octets
    return codec.der_header(0x30, len(content)) + content


@dataclass(frozen=True)
class StatusInfo:
    """A PKIStatusInfo read back: the status name, failInfo names and texts."""

    status: str
    fail_info: tuple[str, ...] = ()
    texts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def code(self) -> int:
        return STATUS_NAMES.index(self.status) if self.status in STATUS_NAMES else -1

    @property
    def ok(self) -> bool:
        """accepted or grantedWithMods."""
        return self.status in ("accepted", "grantedWithMods")

    def __str__(self) -> str:
        parts = [self.status]
        if self.fail_info:
            parts.append("failInfo=" + ",".join(self.fail_info))
        if self.texts:
            parts.append("statusString=" + " / ".join(repr(t) for t in self.texts))
        return " ".join(parts)


def read_free_text(value: object) -> tuple[str, ...]:
    if value is None or not value.isValue:  # type: ignore[attr-defined]
        return ()
    return tuple(str(t) for t in value)  # type: ignore[attr-defined]


def read_status_info(info: cmp.PKIStatusInfo) -> StatusInfo:
    """Typed view of a PKIStatusInfo; unknown status numbers become ``status<N>``."""
    fi = info["failInfo"]
    return status_info(int(info["status"]), tuple(fi) if fi.isValue else (), read_free_text(info["statusString"]))


def status_info(code: int, fail_info_bits: Sequence[int], texts: tuple[str, ...]) -> StatusInfo:
    """A StatusInfo from the PKIStatus number, the failInfo bits (first bit first) and the
    statusString texts; unknown numbers and bits become ``status<N>`` and ``bit<N>``."""
    status = STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"status{code}"
    names = tuple(FAIL_INFO_NAMES[i] if i < len(FAIL_INFO_NAMES) else f"bit{i}" for i, bit in enumerate(fail_info_bits) if bit)
    return StatusInfo(status, names, texts)
