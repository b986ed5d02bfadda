"""Hints for failInfos that mean something else depending on the request they answer."""

from __future__ import annotations

import pytest

from cmpclient.client.transaction import hint_for


@pytest.mark.parametrize("request_body", ["ir", "cr", "kur"])
def test_badpop_of_an_enrolment_is_about_the_requested_key(request_body):
    assert "requested public key" in hint_for(["badPOP"], request_body)


def test_badpop_of_other_requests_is_not_about_enrolment():
    rr = hint_for(["badPOP"], "rr")
    assert "requested public key" not in rr and "certificate to revoke" in rr
    assert "PKCS#10" in hint_for(["badPOP"], "p10cr")
    assert "certConf" in hint_for(["badPOP"], "certConf")
    assert "requested public key" not in hint_for(["badPOP"])  # request unknown: nothing specific


def test_other_request_specific_hints():
    assert hint_for(["certRevoked"], "rr") == "the certificate is already revoked"
    assert "signing the request is revoked" in hint_for(["certRevoked"], "ir")
    assert "revocation request" in hint_for(["badCertTemplate"], "rr")
    assert "certificate template" in hint_for(["badCertTemplate"], "ir")
    assert "being confirmed" in hint_for(["badCertId"], "certConf")
    # the first failInfo with a hint wins, as before
    assert hint_for(["unsupportedVersion", "badPOP"], "rr") == "try --pvno 2"
