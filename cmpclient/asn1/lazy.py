"""pyasn1 and our schema modules, imported on first use.

A cold ``cmpclient crmf`` writes its request as DER and reads the usual answer with
:mod:`cmpclient.message.fastparse`: it needs no pyasn1 value at all, and importing pyasn1,
``pyasn1_modules.rfc5280`` and our schemas costs about 37 ms of its start-up.  The modules
on that path therefore import the pyasn1 names they use from here::

    from cmpclient.asn1.lazy import cmp, crmf, rfc5280, univ

Each is a :class:`LazyModule`: the real module is imported at the first attribute access
(``cmp.PKIMessage()``), and each attribute is then kept on the stand-in, so later accesses
cost what a module attribute does.  Annotations are strings (``from __future__ import
annotations``) and need nothing.  Code paths that do use pyasn1 -- other bodies, unusual
shapes, every error message of the full decoder -- load it there, once.

Why not :class:`importlib.util.LazyLoader`: on Python 3.11 a later ``from pkg import mod``
statement anywhere reads ``mod.__spec__`` and so loads the module at once.

A stand-in keeps what it handed out: a test that monkeypatches an attribute of the real module
after code read it through the stand-in is not seen there (patching the stand-in itself is
refused loudly); patch before first use, or patch the user's own name.

Rules for the modules that use these: no pyasn1 name at module level (a class body, a
default argument, a module constant), or the import happens when the module does; and
``from cmpclient.asn1 import cmp`` (the real module) only inside functions.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

__all__ = ["LazyModule", "cmp", "crmf", "rfc5280", "univ", "char", "useful"]


class LazyModule:
    """A stand-in for the module ``name``, imported by ``load`` (default
    :func:`importlib.import_module`) at the first attribute access."""

    def __init__(self, name: str, load: Callable[[], ModuleType] | None = None) -> None:
        self.__dict__["_LazyModule__name"] = name
        self.__dict__["_LazyModule__load"] = load or (lambda: importlib.import_module(name))
        self.__dict__["_LazyModule__module"] = None

    def _module(self) -> ModuleType:
        """The real module (imported now if it was not yet)."""
        module = self.__module
        if module is None:
            # No lock of ours: the import system's module locks make threads that load at
            # once wait for the one import and all get the same module object.
            module = self.__load()
            self.__dict__["_LazyModule__module"] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        # Only called for names not yet in the instance dict: the first access of each.
        if attr.startswith("_LazyModule__"):
            raise AttributeError(attr)
        value = getattr(self._module(), attr)
        self.__dict__[attr] = value
        return value

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"{self.__name} is imported lazily: set {attr} on the module itself")

    def __dir__(self) -> list[str]:
        return dir(self._module())

    def __repr__(self) -> str:
        state = "loaded" if self.__module is not None else "not loaded"
        return f"<lazy module {self.__name!r} ({state})>"


def _schema_module(name: str) -> Callable[[], ModuleType]:
    """The loader of a schema module (ours, or ``pyasn1_modules``'): built with the short
    reprs of :mod:`cmpclient.asn1._importspeed`, and unwound from them if it fails."""

    def load() -> ModuleType:
        from cmpclient.asn1 import _importspeed

        return _importspeed.import_schema(name)

    return load


#: :mod:`cmpclient.asn1.cmp` (CMP messages, RFC 9810).
cmp = LazyModule("cmpclient.asn1.cmp", _schema_module("cmpclient.asn1.cmp"))
#: :mod:`cmpclient.asn1.crmf` (CRMF, RFC 4211).
crmf = LazyModule("cmpclient.asn1.crmf", _schema_module("cmpclient.asn1.crmf"))
#: ``pyasn1_modules.rfc5280`` (X.509 types).
rfc5280 = LazyModule("pyasn1_modules.rfc5280", _schema_module("pyasn1_modules.rfc5280"))
#: ``pyasn1.type.univ``, ``pyasn1.type.char``, ``pyasn1.type.useful``.
univ = LazyModule("pyasn1.type.univ")
char = LazyModule("pyasn1.type.char")
useful = LazyModule("pyasn1.type.useful")
