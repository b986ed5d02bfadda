"""The immutable-builder discipline shared by every builder in :mod:`cmpclient.message`.

Each setter returns a new builder and refuses a value that is already set; ``build()``
refuses an incomplete object with a message naming what is missing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from cmpclient.errors import UsageError

B = TypeVar("B", bound="Builder")


class Builder:
    """Base class for frozen-dataclass builders."""

    def _set(self: B, name: str, value: Any) -> B:
        if getattr(self, name) is not None:
            raise UsageError(f"{type(self).__name__}: {name.lstrip('_')} is already set")
        return self._with(name, value)

    def _append(self: B, name: str, value: Any) -> B:
        return self._with(name, getattr(self, name) + (value,))

    def _with(self: B, name: str, value: Any) -> B:
        """A copy with one field changed: what ``dataclasses.replace`` returns for these
        builders (plain fields, no ``__post_init__``, no slots), without its generic
        field-by-field ``__init__`` call (~10 setters per CMP header add up)."""
        cls = type(self)
        if hasattr(cls, "__post_init__") or not hasattr(self, "__dict__"):  # pragma: no cover - no such builder yet
            return dataclasses.replace(self, **{name: value})  # type: ignore[type-var]
        if name not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        new = object.__new__(cls)
        new.__dict__.update(self.__dict__)
        new.__dict__[name] = value
        return new

    def _require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise UsageError(f"{type(self).__name__}: cannot build without " + ", ".join(m.lstrip("_") for m in missing))
