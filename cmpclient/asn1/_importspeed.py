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

import importlib
import threading
from types import ModuleType

from pyasn1.type import namedtype

_saved: tuple = ()
#: Schemas are built on first use (:mod:`cmpclient.asn1.lazy`), possibly by two threads at
#: once: each thread counts its own nesting, and the short reprs stay while any is building.
_lock = threading.Lock()
_local = threading.local()
_builders = 0


def _short_named_types(self: namedtype.NamedTypes) -> str:
    return "<NamedTypes %s>" % ", ".join(n.name for n in self.namedTypes)


def _short_named_type(self: namedtype.NamedType) -> str:
    return f"<NamedType {self.name}>"


def depth() -> int:
    """How deep this thread is in schema building (0: not building)."""
    return getattr(_local, "depth", 0)


def begin() -> None:
    """Enter schema building (nestable)."""
    global _builders, _saved
    with _lock:
        here = depth()
        if here == 0:
            if _builders == 0:
                _saved = (namedtype.NamedTypes.__repr__, namedtype.NamedType.__repr__)
                namedtype.NamedTypes.__repr__ = _short_named_types  # type: ignore[method-assign]
                namedtype.NamedType.__repr__ = _short_named_type  # type: ignore[method-assign]
            _builders += 1
        _local.depth = here + 1


def end() -> None:
    """Leave schema building; when no thread builds any more, pyasn1's reprs come back."""
    global _builders
    with _lock:
        here = depth()
        if here == 0:
            return  # unbalanced: nothing to leave
        _local.depth = here - 1
        if here == 1:
            _builders -= 1
            if _builders == 0:
                namedtype.NamedTypes.__repr__, namedtype.NamedType.__repr__ = _saved  # type: ignore[method-assign]


def import_schema(name: str) -> ModuleType:
    """Import the schema module ``name`` inside begin()/end().  A module that raises between
    its own begin() and end() (a broken schema, an interrupt while it is built on first use
    in a long-running process) does not leave this thread building, nor pyasn1's reprs short."""
    before = depth()
    begin()
    try:
        return importlib.import_module(name)
    finally:
        while depth() > before:
            end()
