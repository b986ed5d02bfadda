"""cmpclient.check without a server: selection, judging rules, reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from cmpclient.check import SCENARIOS, CheckSetup, Report, Verdict, run_scenario, select, to_junit_xml
from cmpclient.check.model import Answer, Deviation, Observation, Scenario, Skip
from cmpclient.errors import CMPErrorMessage, ProtectionError, TransportError, UsageError


def setup(**kw):
    return CheckSetup(transport_factory=lambda: None, mac_secret=b"s", **kw)


def scen(run, **kw):
    return Scenario(kw.pop("name", "x"), "g", "summary", "expected", "RFC", run, **kw)


def test_names_unique_and_select():
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    assert [s.name for s in select(["sig-*"])] == ["sig-rsa", "sig-ec", "sig-ed25519", "sig-mldsa"]
    assert all(s.group == "negative" for s in select(["negative"]))
    assert "ir" not in [s.name for s in select([], ["ir"])]
    with pytest.raises(UsageError):
        select(["nope"])


def raise_(exc):
    def run(ctx):
        raise exc
    return run


@pytest.mark.parametrize("run,kw,verdict", [
    (lambda ctx: Observation("ok"), {}, Verdict.PASS),
    (lambda ctx: Observation("x", deviation="d"), {}, Verdict.FAIL),
    (lambda ctx: Observation("x", deviation="d"), {"ejbca_deviation": "known"}, Verdict.FAIL),  # rfc profile
    (raise_(CMPErrorMessage("e", fail_info_names=["badAlg"])), {}, Verdict.UNSUPPORTED),
    (raise_(CMPErrorMessage("e", fail_info_names=["badRequest"], status_strings=["feature not supported"])), {}, Verdict.UNSUPPORTED),
    (raise_(CMPErrorMessage("e", fail_info_names=["badRequest"])), {}, Verdict.FAIL),
    # a refused valid signature in other words stays a FAIL (see test_policy_refusals for the policy texts)
    (raise_(CMPErrorMessage("e", fail_info_names=["badMessageCheck"], status_strings=["signature not accepted"])), {},
     Verdict.FAIL),
    (raise_(TransportError("down")), {}, Verdict.ERROR),
    (raise_(ProtectionError("bad sig")), {}, Verdict.FAIL),
    (raise_(ZeroDivisionError("boom")), {}, Verdict.ERROR),
    (raise_(Skip("no")), {}, Verdict.SKIPPED),
    (lambda ctx: Answer(False, "error badRequest", ("badRequest",)), {"negative": True}, Verdict.PASS),
    (lambda ctx: Answer(True, "ip accepted"), {"negative": True}, Verdict.FAIL),
    (raise_(CMPErrorMessage("e", fail_info_names=["badPOP"])), {"negative": True}, Verdict.PASS),
])
def test_judging(run, kw, verdict):
    assert run_scenario(scen(run, **kw), setup()).verdict is verdict


@pytest.mark.parametrize("used, text, verdict", [
    # the server's policy for the protection or signer used: UNSUPPORTED, when the words fit what was sent
    ("mac", "MAC protection is not accepted for cr on this alias", Verdict.UNSUPPORTED),
    ("signature", "MAC protection is not accepted for cr on this alias", Verdict.FAIL),  # said of a signed request
    ("signature", "the message is not MAC-protected", Verdict.UNSUPPORTED),
    ("mac", "the message is not MAC-protected", Verdict.FAIL),  # said of a MAC-protected request: a bug
    ("mac", "the message is not signature-protected", Verdict.UNSUPPORTED),
    ("signature", "the signer may only request certificates for 'CN=RA Admin'", Verdict.UNSUPPORTED),
    ("mac", "the signer may only request certificates for 'CN=RA Admin'", Verdict.FAIL),
    ("mac", "protection is not accepted here", Verdict.UNSUPPORTED),
])
def test_policy_refusals(used, text, verdict):
    def run(ctx):
        ctx.last_protection = used
        raise CMPErrorMessage("e", fail_info_names=["notAuthorized"], status_strings=[text])

    assert run_scenario(scen(run), setup()).verdict is verdict


def test_ejbca_profile():
    accepted = scen(lambda ctx: Answer(True, "pkiconf"), negative=True, ejbca_deviation="EJBCA ignores certConf")
    assert run_scenario(accepted, setup(profile="ejbca")).verdict is Verdict.EJBCA_COMPATIBLE
    r = run_scenario(accepted, setup(profile="rfc"))
    assert r.verdict is Verdict.FAIL and "--expect ejbca" in r.reason
    dev = scen(raise_(Deviation("kur refused")), ejbca_deviation="RA mode")
    assert run_scenario(dev, setup(profile="ejbca")).verdict is Verdict.EJBCA_COMPATIBLE
    assert run_scenario(dev, setup()).verdict is Verdict.FAIL
    # an unknown deviation is never excused
    assert run_scenario(scen(lambda ctx: Observation("x", deviation="d")), setup(profile="ejbca")).verdict is Verdict.FAIL


def test_needs_skip():
    r = run_scenario(scen(lambda ctx: Observation("ok"), needs=frozenset({"signer"})), setup())
    assert r.verdict is Verdict.SKIPPED and "signer" in r.reason


def test_report_and_junit():
    rep = Report("http://x", "rfc")
    for name, run, kw in (("a", lambda c: Observation("ok"), {}), ("b", raise_(TransportError("down")), {}),
                          ("c", lambda c: Answer(True, "ip"), {"negative": True}), ("d", raise_(Skip("no")), {})):
        rep.results.append(run_scenario(scen(run, name=name, **kw), setup()))
    assert not rep.ok and rep.counts()["ERROR"] == 1 and rep.counts()["FAIL"] == 1
    doc = rep.to_dict()
    assert doc["ok"] is False and [r["verdict"] for r in doc["results"]] == ["PASS", "ERROR", "FAIL", "SKIPPED"]
    suite = ET.fromstring(to_junit_xml(rep))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "1", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["c"].find("failure") is not None and cases["b"].find("error") is not None
    assert cases["d"].find("skipped") is not None and cases["a"].find("failure") is None
