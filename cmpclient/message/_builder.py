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
        return dataclasses.replace(self, **{name: value})  # type: ignore[type-var]

    def _append(self: B, name: str, value: Any) -> B:
        return dataclasses.replace(self, **{name: getattr(self, name) + (value,)})  # type: ignore[type-var]

    def _require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise UsageError(f"{type(self).__name__}: cannot build without " + ", ".join(m.lstrip("_") for m in missing))
