"""Fixtures for the live interop tests against the ``openssl cmp`` peer (OpenSSL 3.0.x).

* ``pki``                 -> :class:`openssl_peer.PKI` (paths of ``fixtures/pki``)
* ``openssl_mock``        -> factory ``openssl_mock(*args, **options) -> OpenSSLMockServer``
                             (started; all stopped at teardown, their logs printed so pytest
                             shows them for failing tests)
* ``mock_server_pbm``     -> a running mock with PBM (``-srv_ref``/``-srv_secret env:...``)
                             returning ``rsp-ec``; see :data:`PBM_REF` / :data:`PBM_SECRET`
* ``mock_server_sig``     -> a running signature-protecting mock, indirectly parametrisable
                             by key type (default ``ec``):
                             ``@pytest.mark.parametrize("mock_server_sig", ["rsa"], indirect=True)``
* ``openssl_client``      -> :func:`openssl_peer.run_openssl_client`
* ``pbm_env``             -> env dict that makes ``env:CMP_TEST_SECRET`` resolve to the secret

The ``openssl`` CLI is required: if it is missing the tests FAIL (CI installs it; a skip would
hide a broken interop job).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openssl_peer import (  # noqa: E402
    PBM_REF,
    PBM_SECRET,
    PBM_SECRET_ENV,
    PKI,
    OpenSSLError,
    OpenSSLMockServer,
    openssl_binary,
    openssl_version,
    run_openssl_client,
)
from conftest_testca import testca_factory, testca_server  # noqa: E402,F401  (the served test CA)



@pytest.fixture(scope="session", autouse=True)
def _require_openssl() -> str:
    try:
        exe = openssl_binary()
        version = openssl_version()
    except OpenSSLError as exc:
        pytest.fail(str(exc), pytrace=False)
    if not version.startswith("OpenSSL 3."):
        pytest.fail(f"interop tests need OpenSSL 3.x, found {version!r} at {exe}", pytrace=False)
    return version


@pytest.fixture(scope="session")
def pki() -> PKI:
    try:
        return PKI().check()
    except OpenSSLError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pbm_env() -> dict[str, str]:
    return {PBM_SECRET_ENV: PBM_SECRET}


@pytest.fixture
def openssl_mock(pki: PKI):
    """Factory: ``openssl_mock(*args, **options)`` starts a mock and returns it (running)."""
    started: list[OpenSSLMockServer] = []

    def start(*args, env=None, **options) -> OpenSSLMockServer:
        """``options`` are mock options, plus OpenSSLMockServer's keyword arguments
        (port, startup_timeout, stop_timeout, cwd, readiness)."""
        merged_env = {PBM_SECRET_ENV: PBM_SECRET}
        if env:
            merged_env.update(env)
        srv = OpenSSLMockServer(args, env=merged_env, **options)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()
        # captured by pytest; shown only when the test fails
        print(f"\n===== {srv.describe()}")


@pytest.fixture
def mock_server_pbm(openssl_mock, pki: PKI) -> OpenSSLMockServer:
    """PBM-protecting mock (ref :data:`PBM_REF`, secret :data:`PBM_SECRET`) returning rsp-ec."""
    return openssl_mock(
        srv_ref=PBM_REF,
        srv_secret=f"env:{PBM_SECRET_ENV}",
        rsp_cert=pki.rsp_cert("ec"),
        rsp_capubs=pki.trusted,
        rsp_extracerts=pki.chain,
    )


@pytest.fixture(params=["ec"])
def mock_server_sig(request, openssl_mock, pki: PKI) -> OpenSSLMockServer:
    """Signature-protecting mock: server-<kt> signer, trusts the test root, returns rsp-<kt>.

    ``kt`` (``rsa`` or ``ec``; Ed25519 cannot protect CMP messages in OpenSSL 3.0) comes from
    indirect parametrisation, default ``ec``. ``mock.key_type`` records it.
    """
    kt = request.param
    srv = openssl_mock(
        srv_cert=pki.server_cert(kt),
        srv_key=pki.server_key(kt),
        srv_trusted=pki.trusted,
        srv_untrusted=pki.chain,
        rsp_cert=pki.rsp_cert(kt),
        rsp_capubs=pki.trusted,
        rsp_extracerts=pki.chain,
    )
    srv.key_type = kt
    return srv


@pytest.fixture
def openssl_client():
    return run_openssl_client
