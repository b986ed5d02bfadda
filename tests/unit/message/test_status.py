"""PKIStatusInfo and PKIFailureInfo names <-> values."""

from __future__ import annotations

import pytest

from cmpclient.asn1 import cmp, codec
from cmpclient.errors import UsageError
from cmpclient.message.status import (
    FAIL_INFO_NAMES,
    StatusInfo,
    build_status_info,
    fail_info_bits,
    fail_info_value,
    read_status_info,
    status_code,
)


@pytest.mark.parametrize(
    "names, der_hex",
    [
        ([], "030100"),
        (["badAlg"], "03020780"),  # bit 0, seven unused bits
        (["badPOP"], "0303060040"),  # bit 9
        (["badAlg", "badPOP"], "0303068040"),
        (["badRequest", "badDataFormat"], "03020224"),  # bits 2 and 5: trailing zeros trimmed
        (["duplicateCertReq"], "03050500000020"),  # bit 26, the last name
        (["systemFailure"], "03050600000040"),  # bit 25
    ],
)
def test_fail_info_der_trims_trailing_zero_bits(names: list[str], der_hex: str) -> None:
    value = fail_info_value(names)
    assert codec.encode(value).hex() == der_hex
    # Strict decoding (DER) accepts it back, and the names come out in bit order.
    back = codec.decode(bytes.fromhex(der_hex), cmp.PKIFailureInfo())
    info = cmp.PKIStatusInfo()
    info["status"] = 2
    info["failInfo"] = back
    assert read_status_info(info).fail_info == tuple(sorted(names, key=FAIL_INFO_NAMES.index))


@pytest.mark.parametrize("index, name", list(enumerate(FAIL_INFO_NAMES)))
def test_every_fail_info_name_round_trips(index: int, name: str) -> None:
    assert fail_info_bits([name]) == (index,)
    assert fail_info_bits([name.upper()]) == (index,)
    assert fail_info_bits([index]) == (index,)
    info = codec.decode(codec.encode(build_status_info("rejection", fail_info=[name])), cmp.PKIStatusInfo())
    assert read_status_info(info).fail_info == (name,)
    assert len(info["failInfo"]) == index + 1


def test_bits_sorted_and_deduplicated() -> None:
    assert fail_info_bits(["badPOP", "badAlg", "badpop", 9]) == (0, 9)


@pytest.mark.parametrize("bad", ["noSuchFailure", 27, -1])
def test_unknown_fail_info_refused(bad: object) -> None:
    with pytest.raises(UsageError, match="unknown failInfo|out of range") as info:
        fail_info_bits([bad])  # type: ignore[list-item]
    if isinstance(bad, str):
        assert "badPOP" in info.value.hint


def test_read_tolerates_trailing_zero_bits_from_a_lax_peer() -> None:
    value = codec.decode(bytes.fromhex("0303000040"), cmp.PKIFailureInfo(), strict=False)
    info = cmp.PKIStatusInfo()
    info["status"] = 2
    info["failInfo"] = value
    assert read_status_info(info).fail_info == ("badPOP",)


def test_unknown_bits_named_by_number() -> None:
    info = cmp.PKIStatusInfo()
    info["status"] = 2
    info["failInfo"] = cmp.PKIFailureInfo(tuple([0] * 28 + [1]))
    assert read_status_info(info).fail_info == ("bit28",)


@pytest.mark.parametrize("name, code", [("accepted", 0), ("grantedWithMods", 1), ("rejection", 2), ("waiting", 3), ("keyUpdateWarning", 6)])
def test_status_names(name: str, code: int) -> None:
    assert status_code(name) == code == status_code(code)
    info = codec.decode(codec.encode(build_status_info(name, texts=["a", "b"])), cmp.PKIStatusInfo())
    read = read_status_info(info)
    assert read == StatusInfo(name, (), ("a", "b"))
    assert read.code == code
    assert read.ok == (code in (0, 1))


def test_status_unknown_refused_and_unknown_read() -> None:
    with pytest.raises(UsageError, match="unknown PKIStatus"):
        status_code("fine")
    with pytest.raises(UsageError, match="out of range"):
        status_code(7)
    info = cmp.PKIStatusInfo()
    info["status"] = 9
    assert read_status_info(info).status == "status9"
    assert read_status_info(info).code == -1


def test_absent_optional_fields() -> None:
    der = codec.encode(build_status_info())
    assert der == bytes.fromhex("3003020100")
    assert str(read_status_info(codec.decode(der, cmp.PKIStatusInfo()))) == "accepted"


def test_str() -> None:
    s = StatusInfo("rejection", ("badPOP",), ("no",))
    assert str(s) == "rejection failInfo=badPOP statusString='no'"
