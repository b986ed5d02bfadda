"""Fixtures for the integration tests (real sockets on 127.0.0.1, port 0).

* ``testca_server`` (session) -> the real test CA served in-process (HTTP + CMP over TCP);
  see ``tests/interop/conftest_testca.py`` for its API (``.url(alias)``, ``.tcp_url``,
  ``.ca``, ``.data_dir``, ``.ra_admin_cert`` ...).
* ``testca_factory`` (session) -> ``testca_factory(name, extra_toml="")``, a CA with extra config.
"""

from __future__ import annotations

import sys
from pathlib import Path

_INTEROP = str(Path(__file__).resolve().parent.parent / "interop")
if _INTEROP not in sys.path:
    sys.path.insert(0, _INTEROP)

from conftest_testca import testca_factory, testca_server  # noqa: E402,F401
