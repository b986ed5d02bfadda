"""Cheaper pyasn1 schema construction (an import-time lever, ~40 ms here).

pyasn1 prepares an error message for every SEQUENCE or CHOICE whose components share a
tag set (legal and common: PKIHeader's sender and recipient are both GeneralName).  It
formats the message eagerly, when the schema class is built, with ``repr()`` of the whole
type tree, although the message is only shown if a later decode hits that ambiguity.
While our schema modules (and ``pyasn1_modules.rfc5280``) are being built, NamedType(s)
get short reprs; the originals are restored afterwards, so only those prepared messages
are shorter (they name the components instead of printing every nested type).
"""

from __future__ import annotations

import threading

from pyasn1.type import namedtype

_depth = 0
_saved: tuple = ()
#: Schemas are built on first use (:mod:`cmpclient.asn1.lazy`), possibly by two threads at once.
_lock = threading.Lock()


def _short_named_types(self: namedtype.NamedTypes) -> str:
    return "<NamedTypes %s>" % ", ".join(n.name for n in self.namedTypes)


def _short_named_type(self: namedtype.NamedType) -> str:
    return f"<NamedType {self.name}>"


def begin() -> None:
    """Enter schema building (nestable)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (namedtype.NamedTypes.__repr__, namedtype.NamedType.__repr__)
            namedtype.NamedTypes.__repr__ = _short_named_types  # type: ignore[method-assign]
            namedtype.NamedType.__repr__ = _short_named_type  # type: ignore[method-assign]
        _depth += 1


def end() -> None:
    """Leave schema building; the last ``end()`` restores pyasn1's reprs."""
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            namedtype.NamedTypes.__repr__, namedtype.NamedType.__repr__ = _saved  # type: ignore[method-assign]
