"""Fixtures: one test CA per session (default config plus test aliases) and its material."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from testca_testlib import TEST_CONFIG_TOML, load_material  # noqa: E402

from cmpclient.testca import TestCA, load_config  # noqa: E402


@pytest.fixture(scope="session")
def testca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    data_dir = tmp_path_factory.mktemp("testca")
    ca = TestCA.from_config(load_config(text=TEST_CONFIG_TOML), data_dir)
    yield ca
    ca.close()


@pytest.fixture(scope="session")
def ra_admin(testca: TestCA):
    return load_material(testca.data_dir, "ra", "raadmin")


@pytest.fixture(scope="session")
def client_material(testca: TestCA):
    return load_material(testca.data_dir, "client", "clientcert")


@pytest.fixture(scope="session")
def vendor_device(testca: TestCA):
    return load_material(testca.data_dir, "vendor", "device1")
