"""Byte-level mutations of DER messages for differential tests of the fast readers
(``tests/unit/message/test_fastparse.py``, ``tests/unit/testca/test_fastreq.py``)."""

from __future__ import annotations

from hypothesis import strategies as st

#: One to three edits: set a byte, insert one, delete one (positions wrap around the data).
EDITS = st.lists(st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 10**6), st.integers(0, 255)),
                 min_size=1, max_size=3)


def mutate(der: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    """``der`` with ``edits`` applied in order."""
    data = bytearray(der)
    for op, at, value in edits:
        at %= len(data) + 1
        if op == "set" and at < len(data):
            data[at] = value
        elif op == "insert":
            data.insert(at, value)
        elif at < len(data):
            del data[at]
    return bytes(data)
