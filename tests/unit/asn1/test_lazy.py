"""cmpclient.asn1.lazy: modules imported at the first attribute access."""

from __future__ import annotations

import types

import pytest

from cmpclient.asn1 import lazy


def _counting(module: types.ModuleType) -> tuple[lazy.LazyModule, list[int]]:
    calls: list[int] = []

    def load() -> types.ModuleType:
        calls.append(1)
        return module

    return lazy.LazyModule(module.__name__, load), calls


def test_loads_at_the_first_attribute_access_once_and_keeps_attributes() -> None:
    module = types.ModuleType("fake_schema")
    module.Thing = object()  # type: ignore[attr-defined]
    stand_in, calls = _counting(module)
    assert calls == [] and "not loaded" in repr(stand_in)
    assert stand_in.Thing is module.Thing
    assert stand_in.Thing is module.Thing
    assert calls == [1] and "(loaded)" in repr(stand_in)
    assert "Thing" in vars(stand_in)  # kept: later accesses do not go through __getattr__
    with pytest.raises(AttributeError):
        stand_in.Missing  # noqa: B018
    assert calls == [1]
    assert "Thing" in dir(stand_in)


def test_refuses_to_be_patched_itself() -> None:
    stand_in, _ = _counting(types.ModuleType("fake_schema"))
    with pytest.raises(AttributeError, match="imported lazily"):
        stand_in.Thing = 1  # type: ignore[misc]


def test_stand_ins_are_the_real_modules_attributes() -> None:
    from pyasn1.type import char, univ
    from pyasn1_modules import rfc5280

    from cmpclient.asn1 import cmp, crmf

    assert lazy.cmp.PKIMessage is cmp.PKIMessage
    assert lazy.crmf.CertReqMsg is crmf.CertReqMsg
    assert lazy.rfc5280.AlgorithmIdentifier is rfc5280.AlgorithmIdentifier
    assert lazy.univ.ObjectIdentifier is univ.ObjectIdentifier
    assert lazy.char.UTF8String is char.UTF8String
    assert isinstance(lazy.cmp.PKIMessage(), cmp.PKIMessage)


def test_schema_loader_builds_inside_importspeed_and_leaves_it_balanced(monkeypatch: pytest.MonkeyPatch) -> None:
    """rfc5280's stand-in imports it between _importspeed.begin() and end(), as our schema
    modules do, so its prepared error texts are built with the short reprs."""
    import importlib

    from pyasn1.type import namedtype

    from cmpclient.asn1 import _importspeed

    before = namedtype.NamedTypes.__repr__
    seen: list[tuple[int, bool]] = []
    fake = types.ModuleType("fake_rfc")
    fake.X = 1  # type: ignore[attr-defined]
    real = importlib.import_module

    def import_module(name: str) -> types.ModuleType:
        if name != "fake_rfc":
            return real(name)
        seen.append((_importspeed.depth(), namedtype.NamedTypes.__repr__ is _importspeed._short_named_types))
        return fake

    monkeypatch.setattr(importlib, "import_module", import_module)
    stand_in = lazy.LazyModule("fake_rfc", lazy._schema_module("fake_rfc"))
    assert stand_in.X == 1
    assert seen == [(1, True)] and _importspeed.depth() == 0
    assert namedtype.NamedTypes.__repr__ is before


def test_a_schema_that_fails_while_built_leaves_nothing_patched(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema module that raises between its own begin() and end() (built on first use in a
    long-running process) leaves neither this thread building nor pyasn1's reprs short."""
    import sys

    from pyasn1.type import namedtype

    from cmpclient.asn1 import _importspeed

    (tmp_path / "broken_schema.py").write_text(
        "from cmpclient.asn1 import _importspeed\n_importspeed.begin()\nraise ImportError('broken schema')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = namedtype.NamedTypes.__repr__
    stand_in = lazy.LazyModule("broken_schema", lazy._schema_module("broken_schema"))
    with pytest.raises(ImportError, match="broken schema"):
        stand_in.anything  # noqa: B018
    sys.modules.pop("broken_schema", None)
    assert _importspeed.depth() == 0 and _importspeed._builders == 0
    assert namedtype.NamedTypes.__repr__ is before


def test_schema_building_in_two_threads_at_once_restores_the_reprs_once_both_are_done() -> None:
    import threading

    from pyasn1.type import namedtype

    from cmpclient.asn1 import _importspeed

    before = namedtype.NamedTypes.__repr__
    inside, release = threading.Barrier(2), threading.Event()
    states = []

    def build() -> None:
        _importspeed.begin()
        inside.wait(10)
        release.wait(10)
        _importspeed.end()
        states.append(_importspeed.depth())

    t = threading.Thread(target=build)
    t.start()
    _importspeed.begin()
    inside.wait(10)
    release.set()
    t.join(10)
    assert states == [0] and namedtype.NamedTypes.__repr__ is _importspeed._short_named_types  # we still build
    _importspeed.end()
    assert namedtype.NamedTypes.__repr__ is before and _importspeed._builders == 0
