"""The data of a conformance check: verdicts, scenarios, the setup and the results.

A :class:`Scenario` is data: a name, a group, what it needs (a MAC secret, signer
credentials), the expected outcome (text, with the RFC it comes from), whether it is a
negative case the server must reject, which answers mean "not offered" (UNSUPPORTED), the
EJBCA deviation it tolerates under ``--expect ejbca``, and the function that runs it.
The runner (:mod:`cmpclient.check.runner`) turns whatever the function returns or raises
into exactly one :class:`ScenarioResult`: a scenario never crashes the run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


class Verdict(str, enum.Enum):
    """What a scenario concluded about the server."""

    PASS = "PASS"
    FAIL = "FAIL"  #: the server broke an RFC 9810 / RFC 9483 expectation (with a reason)
    EJBCA_COMPATIBLE = "EJBCA-COMPATIBLE"  #: a documented EJBCA deviation, under --expect ejbca
    UNSUPPORTED = "UNSUPPORTED"  #: the server answered that it does not offer the feature
    SKIPPED = "SKIPPED"  #: the credentials for that mode were not given (or not exercisable)
    ERROR = "ERROR"  #: transport failure or an unexpected problem on our side

    @property
    def bad(self) -> bool:
        return self in (Verdict.FAIL, Verdict.ERROR)


PROFILES = ("rfc", "ejbca")

#: Needs: "mac" a shared secret, "signer" signature credentials, "auth" either of them.
NEEDS = ("mac", "signer", "auth")


class ScenarioOutcome(Exception):
    """Raised by a scenario to end with a given verdict (never escapes the runner)."""

    verdict = Verdict.FAIL

    def __init__(self, reason: str, got: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.got = got


class Failure(ScenarioOutcome):
    verdict = Verdict.FAIL


class Unsupported(ScenarioOutcome):
    verdict = Verdict.UNSUPPORTED


class Skip(ScenarioOutcome):
    verdict = Verdict.SKIPPED


class Deviation(ScenarioOutcome):
    """The server behaved as the scenario's documented EJBCA deviation says: the runner
    makes it EJBCA-COMPATIBLE under ``--expect ejbca`` and FAIL under ``--expect rfc``."""

    verdict = Verdict.FAIL


@dataclass(frozen=True)
class Observation:
    """What a positive scenario saw when it worked.

    ``deviation`` names a known EJBCA deviation that was observed (e.g. certReqId 0 for
    p10cr): EJBCA-COMPATIBLE under ``--expect ejbca``, FAIL under ``--expect rfc``.
    """

    got: str
    deviation: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Answer:
    """How the server answered a (deliberately broken) request of a negative scenario."""

    accepted: bool
    got: str
    fail_info: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    summary: str
    expected: str
    reference: str
    run: Callable[["Any"], Any] = field(repr=False, compare=False)
    needs: frozenset[str] = frozenset()
    negative: bool = False
    #: failInfo names that mean "the server does not offer this" for this scenario.
    unsupported: tuple[str, ...] = ("badAlg", "unsupportedVersion")
    #: A documented EJBCA deviation this scenario tolerates under ``--expect ejbca``.
    ejbca_deviation: str | None = None
    #: failInfo names an RFC-conforming rejection should carry (informational).
    expected_fail_info: tuple[str, ...] = ()

    def describe_needs(self) -> str:
        names = {"mac": "MAC secret", "signer": "signer credentials", "auth": "MAC secret or signer"}
        return ", ".join(names[n] for n in sorted(self.needs)) or "-"


@dataclass
class Signer:
    key: Any
    cert: Any
    chain: list[Any] = field(default_factory=list)


@dataclass
class OwnCredentials:
    """The end entity's own certificate for one run: enrolled by an ir under MAC the first time
    a scenario's MAC-protected request is refused by the server's policy (RFC 9483: MAC for the
    first ir, then the end entity signs with its own certificate).  Made at most once per run:
    a failure is kept too (``signer`` None, ``failure`` why)."""

    signer: Signer | None = None
    failure: str = ""

    @property
    def subject(self) -> str:
        return self.signer.cert.subject.rfc4514_string() if self.signer is not None else ""


@dataclass
class CheckSetup:
    """Everything the scenarios need to talk to one server.

    ``transport_factory`` makes a fresh transport per scenario (``send(bytes) -> bytes``).
    ``newkey`` fixes the key certificates are requested for (servers such as openssl's mock
    always issue the same certificate); scenarios that need another key type are then SKIPPED.
    """

    transport_factory: Callable[[], Any]
    mac_secret: bytes | None = None
    keyid: bytes | None = None
    signer: Signer | None = None
    trusted: Sequence[Any] = ()
    untrusted: Sequence[Any] = ()
    server_cert: Any = None
    recipient: str = ""
    profile: str = "rfc"
    pvno: int = 2
    pbm_owf: str = "sha256"
    pbm_mac: str = "hmacWithSHA256"
    pbm_iterations: int = 500
    digest: str = "sha256"
    newkey: Any = None
    key_spec: str = "secp256r1"
    #: Subject DN of requested certificates; ``{name}`` becomes a unique per-scenario name.
    subject_template: str = "CN={name},O=cmpclient check"
    capture_dir: Path | None = None
    total_timeout: float | None = 60.0
    ignore_key_usage: bool = False
    sleep: Callable[[float], None] | None = None
    on_message: Callable[[str, bytes], None] | None = None
    #: The run's own credentials, made lazily by the runner (not an option: state of the run).
    own_credentials: OwnCredentials | None = field(default=None, repr=False, compare=False)

    def has(self, need: str) -> bool:
        if need == "mac":
            return self.mac_secret is not None
        if need == "signer":
            return self.signer is not None
        if need == "auth":
            return self.mac_secret is not None or self.signer is not None
        return False


@dataclass
class ScenarioResult:
    name: str
    group: str
    expected: str
    verdict: Verdict
    got: str
    reason: str = ""
    reference: str = ""
    negative: bool = False
    seconds: float = 0.0
    captured: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "negative": self.negative,
            "expected": self.expected,
            "got": self.got,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "reference": self.reference,
            "seconds": round(self.seconds, 3),
            "captured": list(self.captured),
        }


@dataclass
class Report:
    target: str
    profile: str
    results: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for r in self.results:
            out[r.verdict.value] += 1
        return out

    @property
    def ok(self) -> bool:
        return not any(r.verdict.bad for r in self.results)

    def result(self, name: str) -> ScenarioResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "profile": self.profile,
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "results": [r.to_dict() for r in self.results],
        }
