"""Run scenarios and judge them: every outcome becomes one :class:`ScenarioResult`.

Judging rules (documented in the README's "Conformance check" section):

* positive scenario returns an Observation -> PASS; with an observed EJBCA deviation ->
  EJBCA-COMPATIBLE under ``ejbca``, FAIL under ``rfc``;
* the server rejects a positive scenario -> UNSUPPORTED when its failInfo is one the
  scenario lists as "not offered" (badAlg, unsupportedVersion; badPOP for POPO methods ...)
  or its text says so ("not supported", "not allowed", "unexpected pvno" ...), or its policy
  refuses the protection or signer used (:func:`policy_refusal`), else FAIL;
* a positive scenario whose MAC (chosen by ``base_protection()``, not by the scenario) the
  server's policy refuses runs once more as the end entity (RFC 9483: MAC for the first ir,
  then signatures with the end entity's own certificate): signed with a certificate enrolled
  by an ir under MAC earlier in the run, for its subject; the rerun is judged by the same rules
  (no further retry), and a rerun refused too stays UNSUPPORTED with both reasons;
* negative scenario: a rejection (error, rejection status, HTTP 4xx/5xx) -> PASS; an
  acceptance -> FAIL, or EJBCA-COMPATIBLE when it is the scenario's documented EJBCA
  deviation and the profile is ``ejbca``;
* missing credentials -> SKIPPED; transport failures and problems on our side -> ERROR;
  a response that breaks a CMP rule (IDs, nonces, protection, wrong key) -> FAIL.
"""

from __future__ import annotations

import fnmatch
import re
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from cmpclient.check.context import CheckContext
from cmpclient.check.model import (
    Answer,
    CheckSetup,
    Deviation,
    Observation,
    OwnCredentials,
    Report,
    Scenario,
    ScenarioOutcome,
    ScenarioResult,
    Verdict,
)
from cmpclient.check.scenarios import SCENARIOS
from cmpclient.errors import (
    CMPClientError,
    CMPRejection,
    ConfigError,
    PollTimeout,
    TransportError,
    UsageError,
)

#: Status texts that mean "this server does not offer that" -- including a server that has no
#: trust anchor for our signer (openssl's PBM-only mock: "missing trust anchor"): signature
#: scenarios cannot run against it with these credentials, which is not a conformance failure.
_UNSUPPORTED_TEXT = re.compile(
    r"not supported|unsupported|not allowed|not offered|not implemented|accepts no|unexpected pvno|not enabled"
    r"|missing trust anchor",
    re.IGNORECASE,
)


#: Status texts that mean "not with this protection or this signer here": the server's policy
#: for the request (RFC 9483 lets a server take MAC protection for the first ir only, or
#: signatures of the end entity itself for its own subject), not a conformance failure:
#: "MAC protection is not accepted for cr on this alias", "the message is not
#: signature-protected" (the alias takes the other kind), "the signer may only request
#: certificates for 'CN=...'".  Narrow on purpose, and only when the words fit the protection
#: the refused request had (:func:`policy_refusal`): a text match must not turn a server's
#: bug ("signature not accepted" for a valid signature, "is not MAC-protected" said of a MAC-
#: protected request) into UNSUPPORTED.
_POLICY_TEXT = re.compile(
    r"(?:(MAC|signature) )?protection is not accepted|is not (MAC|signature)-protected|(may only (?:request|revoke))",
    re.IGNORECASE,
)


def rejection_texts(exc: CMPRejection) -> str:
    """The server's words in a rejection: its statusStrings and an error's errorDetails."""
    return " ".join(exc.status_strings) + " " + " ".join(getattr(exc, "error_details", ()) or ())


def policy_refusal(texts: str, used: str) -> bool:
    """Whether ``texts`` refuse the request for its protection (``used``: "mac",
    "signature" or "none") or signer, in words that fit what was sent."""
    for m in _POLICY_TEXT.finditer(texts):
        refused_kind, other_kind, signer_only = m.group(1), m.group(2), m.group(3)
        if signer_only:
            fits = used == "signature"
        elif other_kind:  # "is not MAC-protected": we must have sent something else
            fits = used != other_kind.lower()
        else:  # "[MAC ]protection is not accepted": the kind we sent, if named
            fits = refused_kind is None or used == refused_kind.lower()
        if fits:
            return True
    return False


def select(names_only: Sequence[str] = (), skip: Sequence[str] = (),
           scenarios: Sequence[Scenario] = SCENARIOS) -> list[Scenario]:
    """Scenarios chosen by ``--only``/``--skip``: names, groups or shell patterns (``sig-*``)."""

    def hits(s: Scenario, patterns: Iterable[str]) -> bool:
        return any(p == s.group or fnmatch.fnmatchcase(s.name, p) for p in patterns)

    for pattern in [*names_only, *skip]:
        if not any(hits(s, [pattern]) for s in scenarios):
            raise UsageError(f"no scenario or group matches {pattern!r}",
                             hint="see `cmpclient check --list` for the names")
    chosen = [s for s in scenarios if not names_only or hits(s, names_only)]
    return [s for s in chosen if not hits(s, skip)]


def _rejection_text(exc: CMPRejection) -> str:
    parts = [exc.body_type or "response", exc.status]
    if exc.fail_info_names:
        parts.append(",".join(exc.fail_info_names))
    text = " ".join(p for p in parts if p)
    if exc.status_strings:
        text += ": " + " / ".join(exc.status_strings)
    return text


def judge(scenario: Scenario, setup: CheckSetup, ctx: CheckContext) -> tuple[Verdict, str, str]:
    """Run one scenario; (verdict, got, reason).  Never raises (except KeyboardInterrupt).

    A positive scenario whose MAC-protected request (MAC chosen by
    :meth:`CheckContext.base_protection`, not by the scenario) the server refuses by policy
    runs once more as the end entity (:func:`_as_end_entity`)."""
    verdict, got, reason = _judge_once(scenario, setup, ctx)
    if ctx.mac_refused_by_policy and ctx.own_signer is None and setup.mac_secret is not None:
        return _as_end_entity(scenario, setup, ctx, got, reason)
    return verdict, got, reason


#: Requests whose refused MAC may be retried with the end entity's signature: those that open
#: a transaction.  A certConf or pollReq is protected like the request it continues (RFC 9483
#: §3.2), so a server taking the MAC ir and refusing its MAC certConf is not a policy to
#: work around.
_RETRIABLE_BODIES = frozenset({"ir", "cr", "p10cr", "kur", "rr", "genm"})

#: What a rerun as the end entity adds to its reason.
_OWN_CERT = "signed with the end entity's own certificate"


def _as_end_entity(scenario: Scenario, setup: CheckSetup, ctx: CheckContext, got: str,
                   reason: str) -> tuple[Verdict, str, str]:
    """The server's policy refused MAC for this request (RFC 9483: MAC for the first ir; then
    the end entity signs with the certificate it got): rerun the scenario once, signed with
    the run's own certificate (enrolled by an ir under MAC, :func:`own_credentials`), for its
    subject, and judge the rerun by the same rules.  Its messages go into ``ctx.messages``."""
    ctx.close()  # one connection at a time: servers such as openssl's mock serve one client
    own = own_credentials(setup, scenario, ctx)
    if own.signer is None:
        return Verdict.UNSUPPORTED, got, f"{reason}; {own.failure}"
    rerun = CheckContext(setup, scenario, own_signer=own.signer)
    try:
        verdict, got2, reason2 = _judge_once(scenario, setup, rerun)
    finally:
        ctx.messages.extend(rerun.messages)
        rerun.close()
    how = f"{_OWN_CERT} '{own.subject}', enrolled by an ir under MAC earlier in the run"
    if verdict is Verdict.UNSUPPORTED:
        return verdict, got2, f"{reason}; then {how}: {reason2}"
    ref = ", ".join(re.findall(r"RFC 9483 §[\d.]*\d", scenario.reference)) or "RFC 9483"
    note = f"MAC protection was refused by the server's policy ({got}); the request was {how} ({ref})"
    shown = f"{got2}, {_OWN_CERT}" if got2 != "-" else got2
    if verdict is Verdict.PASS:
        return verdict, shown, note + (f"; {reason2}" if reason2 else "")
    return verdict, shown, f"{reason2} [{note}]"


def own_credentials(setup: CheckSetup, scenario: Scenario, ctx: CheckContext) -> OwnCredentials:
    """The run's own certificate: one ir under MAC for a fresh subject (from the subject
    template), confirmed; made on first use and kept in ``setup`` for the whole run, a failure
    too (tried at most once).  The enrolment's messages go into ``ctx.messages``."""
    if setup.own_credentials is not None:
        return setup.own_credentials
    maker = CheckContext(setup, scenario)
    why = "the end entity's own certificate could not be enrolled by an ir under MAC"
    try:
        result, key = maker.enroll("ir", protection=maker.mac(), subject=maker.subject("own-cert"))
        own = OwnCredentials(signer=maker.signed_by(result, key))
    except KeyboardInterrupt:
        raise
    except CMPRejection as exc:
        own = OwnCredentials(failure=f"{why}: {_rejection_text(exc)}")
    except ScenarioOutcome as exc:
        own = OwnCredentials(failure=f"{why}: {exc.reason}")
    except CMPClientError as exc:
        own = OwnCredentials(failure=f"{why}: {type(exc).__name__}: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - a scenario never crashes the run
        own = OwnCredentials(failure=f"{why}: unexpected {type(exc).__name__}: {exc}")
    finally:
        ctx.messages.extend(maker.messages)
        maker.close()
    setup.own_credentials = own
    return own


def _judge_once(scenario: Scenario, setup: CheckSetup, ctx: CheckContext) -> tuple[Verdict, str, str]:
    """(verdict, got, reason); sets ``ctx.mac_refused_by_policy`` when the server's policy
    refused a MAC from base_protection() on a request that opens a transaction."""
    for need in scenario.needs:
        if not setup.has(need):
            return Verdict.SKIPPED, "-", f"needs {scenario.describe_needs()}"
    try:
        outcome = scenario.run(ctx)
    except Deviation as o:
        if setup.profile == "ejbca" and scenario.ejbca_deviation:
            return Verdict.EJBCA_COMPATIBLE, o.got or "-", f"{scenario.ejbca_deviation} ({o.reason})"
        return Verdict.FAIL, o.got or "-", o.reason
    except ScenarioOutcome as o:
        return o.verdict, o.got or "-", o.reason
    except CMPRejection as exc:
        got = _rejection_text(exc)
        if scenario.negative:
            return Verdict.PASS, got, "rejected"
        texts = rejection_texts(exc)
        if set(exc.fail_info_names) & set(scenario.unsupported) or _UNSUPPORTED_TEXT.search(texts):
            return Verdict.UNSUPPORTED, got, "the server does not offer this: " + got
        if policy_refusal(texts, ctx.last_protection):
            ctx.mac_refused_by_policy = (ctx.last_protection == "mac" and ctx.last_protection_base
                                         and ctx.last_request_body() in _RETRIABLE_BODIES)
            return (Verdict.UNSUPPORTED, got, "the server does not take this request with the protection or "
                    f"signer used (its policy, not a conformance failure): {got}")
        return Verdict.FAIL, got, f"the server rejected a valid request: {got}"
    except PollTimeout as exc:
        return Verdict.ERROR, "timeout", exc.diagnostics()
    except TransportError as exc:
        return Verdict.ERROR, "transport failure", f"{type(exc).__name__}: {exc.message}"
    except (UsageError, ConfigError) as exc:
        return Verdict.ERROR, "-", f"could not build the scenario: {exc.message}"
    except CMPClientError as exc:
        # The response broke a CMP rule: protection, IDs, nonces, body, the certified key.
        return Verdict.FAIL, type(exc).__name__, exc.diagnostics().replace("\n", "; ")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a scenario never crashes the run
        return Verdict.ERROR, "-", f"unexpected {type(exc).__name__}: {exc}"
    if isinstance(outcome, Answer):
        return _judge_answer(scenario, setup, outcome)
    if isinstance(outcome, Observation):
        if scenario.negative:
            return Verdict.FAIL, outcome.got, "the server accepted what it must reject"
        if outcome.deviation:
            if setup.profile == "ejbca" and scenario.ejbca_deviation:
                return Verdict.EJBCA_COMPATIBLE, outcome.got, scenario.ejbca_deviation
            return Verdict.FAIL, outcome.got, outcome.deviation
        return Verdict.PASS, outcome.got, outcome.note or ""
    return Verdict.ERROR, "-", f"scenario returned {type(outcome).__name__}"


def _judge_answer(scenario: Scenario, setup: CheckSetup, answer: Answer) -> tuple[Verdict, str, str]:
    if not answer.accepted:
        reason = "rejected"
        if scenario.expected_fail_info and answer.fail_info and not set(answer.fail_info) & set(scenario.expected_fail_info):
            reason += f" (with {','.join(answer.fail_info)}; {' or '.join(scenario.expected_fail_info)} would be more precise)"
        return Verdict.PASS, answer.got, reason
    if scenario.ejbca_deviation and setup.profile == "ejbca":
        return Verdict.EJBCA_COMPATIBLE, answer.got, scenario.ejbca_deviation
    why = f"the server accepted it ({answer.got}); expected: {scenario.expected}"
    if scenario.ejbca_deviation:
        why += f" [known EJBCA deviation: {scenario.ejbca_deviation}; --expect ejbca tolerates it]"
    return Verdict.FAIL, answer.got, why


def _write_capture(directory: Path, name: str, messages: list[tuple[str, bytes]]) -> list[str]:
    out = directory / name
    out.mkdir(parents=True, exist_ok=True)
    files = []
    counter = {"request": 0, "response": 0}
    for direction, der in messages:
        counter[direction] = counter.get(direction, 0) + 1
        short = "req" if direction == "request" else "rsp"
        path = out / f"{len(files) + 1:02d}-{short}.der"
        path.write_bytes(der)
        files.append(str(path))
    return files


def run_scenario(scenario: Scenario, setup: CheckSetup) -> ScenarioResult:
    ctx = CheckContext(setup, scenario)
    started = time.monotonic()
    try:
        verdict, got, reason = judge(scenario, setup, ctx)
    finally:
        ctx.close()
    result = ScenarioResult(
        name=scenario.name, group=scenario.group, expected=scenario.expected, verdict=verdict, got=got,
        reason=reason, reference=scenario.reference, negative=scenario.negative,
        seconds=time.monotonic() - started,
    )
    if setup.capture_dir is not None and ctx.messages:
        try:
            result.captured = _write_capture(Path(setup.capture_dir), scenario.name, ctx.messages)
        except OSError as exc:
            result.reason = (result.reason + "; " if result.reason else "") + f"capture failed: {exc}"
    return result


def run_check(setup: CheckSetup, scenarios: Sequence[Scenario] | None = None, *, target: str = "",
              progress: Callable[[ScenarioResult], None] | None = None) -> Report:
    """Run ``scenarios`` (default: all) against the server of ``setup``."""
    report = Report(target=target, profile=setup.profile)
    setup.own_credentials = None  # the end entity's own certificate is made anew for each run
    started = time.monotonic()
    for scenario in scenarios if scenarios is not None else SCENARIOS:
        result = run_scenario(scenario, setup)
        report.results.append(result)
        if progress is not None:
            progress(result)
    report.seconds = time.monotonic() - started
    return report
