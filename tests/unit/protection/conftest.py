"""Fixtures for the protection tests."""

from __future__ import annotations

import pytest

from protection_testlib import PKI, make_pki


@pytest.fixture(scope="session")
def pki() -> PKI:
    """Root -> Sub CA -> end entity (EC P-256), all valid now, EE with digitalSignature."""
    return make_pki()
