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
    return Scenario(kw.pop("name", "x"), "g", "summary", "expected", kw.pop("reference", "RFC"), run, **kw)


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


# --- a MAC refused by the server's policy: rerun as the end entity (own certificate) -----------

MAC_REFUSED = "MAC protection is not accepted for cr on this alias"


def own_signer(name="CN=own-ee,O=cmpclient check"):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from cmpclient.check.model import Signer
    from cmpclient.message.names import parse_dn

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(parse_dn(name)).issuer_name(parse_dn(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return Signer(key, cert)


def request_der(kind="genm"):
    """A real request of body ``kind`` (genm opens a transaction, certConf continues one)."""
    import os

    from cmpclient.message import body as B
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.pkimessage import assemble, encode_message

    body = B.genm_body([]) if kind == "genm" else B.cert_conf_body([B.cert_status(0, os.urandom(32))])
    return encode_message(assemble(HeaderBuilder().sender("CN=a").recipient("CN=b").build(), body))


def refused_under_mac(rerun=None, *, runs=None, protection="base", refused="genm"):
    """A scenario that sends a request (body ``refused``) under ``base_protection()`` (or
    ``mac()``, the scenario's own choice) and is refused for MAC; as the end entity it does
    ``rerun(ctx)``."""

    def run(ctx):
        if runs is not None:
            runs.append((ctx.own_signer, ctx.subject()))
        p = ctx.base_protection() if protection == "base" else ctx.mac()
        ctx.config(p)
        ctx.record("request", request_der(refused if ctx.own_signer is None else "genm"))
        if ctx.own_signer is None or rerun is None:
            raise CMPErrorMessage("e", fail_info_names=["badRequest"], status_strings=[
                f"authentication failed: HMAC: {MAC_REFUSED}; EndEntityCertificate: the message is not signature-protected"])
        return rerun(ctx)

    return run


def test_a_refused_mac_on_a_continuation_message_is_not_rerun():
    """certConf (or pollReq) is protected like the request it continues: a server that takes
    the MAC ir and refuses its MAC certConf is not a policy to work around as the end entity."""
    runs = []
    r = run_scenario(scen(refused_under_mac(lambda ctx: Observation("accepted"), runs=runs, refused="certConf")),
                     with_own())
    assert r.verdict is Verdict.UNSUPPORTED and len(runs) == 1, r
    r = run_scenario(scen(refused_under_mac(lambda ctx: Observation("accepted"), runs=runs)), with_own())
    assert r.verdict is Verdict.PASS and len(runs) == 3, r


def with_own(**kw):
    from cmpclient.check.model import OwnCredentials

    s = setup(**kw)
    s.own_credentials = OwnCredentials(signer=own_signer())
    return s


def test_mac_refused_by_policy_reruns_signed_with_the_own_certificate(tmp_path):
    from cmpclient.protection import SignatureProtection

    runs, seen = [], []

    def rerun(ctx):
        p = ctx.base_protection()
        seen.append(p)
        assert ctx.last_protection == "signature"
        return Observation("cp accepted")

    s = with_own(capture_dir=tmp_path)
    r = run_scenario(scen(refused_under_mac(rerun, runs=runs), name="cr", reference="RFC 9810 §5.3.3, RFC 9483 §4.1.2"), s)
    assert r.verdict is Verdict.PASS, r
    assert "refused by the server's policy" in r.reason and "own certificate" in r.reason
    assert "RFC 9483 §4.1.2" in r.reason and "CN=own-ee" in r.reason and "own certificate" in r.got
    assert len(runs) == 2 and runs[0][0] is None and runs[1][0] is s.own_credentials.signer
    assert runs[1][1] == s.own_credentials.signer.cert.subject  # the end entity asks for itself
    assert isinstance(seen[0], SignatureProtection)
    # --capture holds the refused request and the rerun's
    from cmpclient.message.peek import peek

    captured = [p.read_bytes() for p in sorted((tmp_path / "cr").glob("*.der"))]
    assert [peek(d).body_type for d in captured] == ["genm", "genm"] and captured[0] != captured[1]


def test_rerun_refused_too_stays_unsupported_with_both_reasons():
    runs = []

    def rerun(ctx):
        raise CMPErrorMessage("e", fail_info_names=["notAuthorized"], status_strings=[
            "authentication failed: HMAC: the message is not MAC-protected; EndEntityCertificate: not an RA administrator"])

    r = run_scenario(scen(refused_under_mac(rerun, runs=runs)), with_own())
    assert r.verdict is Verdict.UNSUPPORTED and len(runs) == 2  # no further retry
    assert MAC_REFUSED in r.reason and "not an RA administrator" in r.reason and "own certificate" in r.reason


def test_rerun_failure_is_a_failure():
    r = run_scenario(scen(refused_under_mac(lambda ctx: raise_(ProtectionError("bad sig"))(ctx))), with_own())
    assert r.verdict is Verdict.FAIL and "bad sig" in r.reason and "own certificate" in r.reason
    dev = scen(refused_under_mac(lambda ctx: Observation("cp", deviation="certReqId 0")), ejbca_deviation="EJBCA")
    assert run_scenario(dev, with_own()).verdict is Verdict.FAIL
    r = run_scenario(dev, with_own(profile="ejbca"))
    assert r.verdict is Verdict.EJBCA_COMPATIBLE and "own certificate" in r.reason


def test_no_rerun_for_a_mac_the_scenario_chose_nor_for_negative_ones_nor_without_a_secret():
    runs = []
    # a PBM scenario refused for MAC: a signature would not test what it is about
    r = run_scenario(scen(refused_under_mac(lambda ctx: Observation("ok"), runs=runs, protection="mac")), with_own())
    assert r.verdict is Verdict.UNSUPPORTED and len(runs) == 1 and "own certificate" not in r.reason
    runs.clear()
    r = run_scenario(scen(refused_under_mac(lambda ctx: Observation("ok"), runs=runs), negative=True), with_own())
    assert r.verdict is Verdict.PASS and len(runs) == 1
    # a signature refused (not a MAC): the given signer's policy, nothing to retry
    def signed(ctx):
        runs.append(ctx.own_signer)
        ctx.last_protection, ctx.last_protection_base = "signature", True
        raise CMPErrorMessage("e", status_strings=["the signer may only request certificates for 'CN=RA Admin'"])
    runs.clear()
    assert run_scenario(scen(signed), with_own()).verdict is Verdict.UNSUPPORTED and runs == [None]
    # no MAC secret given: no own certificate can be enrolled under MAC, nothing is retried
    def mac_words(ctx):
        runs.append(ctx.own_signer)
        ctx.last_protection, ctx.last_protection_base = "mac", True
        raise CMPErrorMessage("e", status_strings=[MAC_REFUSED])
    runs.clear()
    s = with_own()
    s.mac_secret = None
    r = run_scenario(scen(mac_words), s)
    assert r.verdict is Verdict.UNSUPPORTED and runs == [None] and "own certificate" not in r.reason


def test_own_credentials_made_once_per_run_and_a_failure_is_kept(monkeypatch):
    from cmpclient.check import run_check
    from cmpclient.check.context import CheckContext

    tries = []

    def enroll(self, kind="ir", **kw):
        tries.append((kind, type(kw.get("protection")).__name__, kw.get("subject")))
        self.record("request", b"\x30\x02")
        raise CMPErrorMessage("e", fail_info_names=["badRequest"], status_strings=["MAC protection is not accepted for ir"])

    monkeypatch.setattr(CheckContext, "enroll", enroll)
    runs = []
    s = setup(subject_template="CN={name},O=t")
    rep = run_check(s, [scen(refused_under_mac(lambda ctx: Observation("ok"), runs=runs), name=n) for n in ("a", "b")])
    assert [r.verdict for r in rep.results] == [Verdict.UNSUPPORTED, Verdict.UNSUPPORTED]
    assert len(tries) == 1 and tries[0][:2] == ("ir", "MACProtection") and tries[0][2].startswith("CN=chk-own-cert-")
    assert len(runs) == 2  # never rerun: no own certificate
    for r in rep.results:
        assert MAC_REFUSED in r.reason and "own certificate could not be enrolled" in r.reason
    assert s.own_credentials is not None and s.own_credentials.signer is None
    assert "own_credentials" not in repr(s)


def test_rr_rerun_changes_only_the_refused_rr(monkeypatch):
    """The rr scenario refused under MAC runs again as the end entity: its certificate is
    still enrolled the initial way (a MAC ir, for a fresh subject, which a strict server may
    require) and only the rr is signed, by that certificate itself (RFC 9483 §4.2)."""
    import datetime as dt
    import types

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    import cmpclient.client as client
    from cmpclient.check import SCENARIOS
    from cmpclient.check.context import CheckContext
    from cmpclient.errors import CMPRejection
    from cmpclient.message import body as B
    from cmpclient.message.header import HeaderBuilder
    from cmpclient.message.names import parse_dn
    from cmpclient.message.pkimessage import assemble, encode_message

    keys, log = [], []
    new_key = CheckContext.new_key
    monkeypatch.setattr(CheckContext, "new_key", lambda self, spec=None: keys.append(new_key(self, spec)) or keys[-1])

    def sent(config, body):
        config.on_message("request", encode_message(assemble(HeaderBuilder().sender("CN=a").recipient("CN=b").build(), body)))

    def enroll(config, kind, request, confirm=True, decrypt_key=None):
        log.append((kind, type(config.protection).__name__))
        sent(config, B.genm_body([]))  # (any opening body: the fake answers it)
        if type(config.protection).__name__ == "SignatureProtection":
            raise CMPRejection("rejected", fail_info_names=["notAuthorized"], body_type="ip",
                               status_strings=["ir signed with an operational certificate: use cr or kur"])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(parse_dn("CN=ee")).issuer_name(parse_dn("CN=CA"))
                .public_key(keys[-1].public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
        return types.SimpleNamespace(certificate=cert, chain=lambda: [], implicit_confirm_granted=False,
                                     confirmed=True, polls=0)

    def revoke(config, issuer, serial, reason=None):
        log.append(("rr", type(config.protection).__name__))
        sent(config, B.rr_body([B.rev_details(issuer, serial)]))
        if type(config.protection).__name__ == "MACProtection":
            raise CMPRejection("rejected", fail_info_names=["badRequest"], body_type="error",
                               status_strings=["MAC protection is not accepted for rr on this alias"])
        return types.SimpleNamespace(status=types.SimpleNamespace(status="accepted"))

    monkeypatch.setattr(client, "enroll", enroll)
    monkeypatch.setattr(client, "revoke", revoke)
    rr = next(s for s in SCENARIOS if s.name == "rr")
    r = run_scenario(rr, setup())
    assert r.verdict is Verdict.PASS, r
    mac, sig = "MACProtection", "SignatureProtection"
    # the refused run, the own certificate's ir, then the rerun: a MAC ir and a self-signed rr
    assert log == [("ir", mac), ("rr", mac), ("ir", mac), ("ir", mac), ("rr", sig)], log
