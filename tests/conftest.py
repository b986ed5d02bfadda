"""Repository-wide test fixtures (paths to committed test material).

* ``repo_root``        -> Path of the repository
* ``pki_dir``          -> ``fixtures/pki`` (made by ``scripts/make_fixtures.py``; see fixtures/README.md)
* ``closed_port``      -> a 127.0.0.1 port nothing listens on (bound, then released)
* ``vector_manifest``  -> parsed ``tests/vectors/manifest.json`` (openssl-made CMP messages;
                          see tests/vectors/README.md). Paths inside are relative to ``repo_root``.

The live-openssl fixtures (``pki``, ``openssl_mock``, ``mock_server_pbm``, ``mock_server_sig``)
live in ``tests/interop/conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def pki_dir() -> Path:
    return REPO_ROOT / "fixtures" / "pki"


@pytest.fixture(scope="session")
def vector_manifest() -> dict:
    return json.loads((REPO_ROOT / "tests" / "vectors" / "manifest.json").read_text())


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
