"""``cmpclient check``: a conformance run against any CMP server, with a pass/fail matrix.

Scenarios are data (:data:`cmpclient.check.scenarios.SCENARIOS`); the runner
(:func:`run_check`) judges each against RFC 9810 / RFC 9483 expectations, with EJBCA's
documented deviations tolerated under the ``ejbca`` profile.  No click here: the CLI is
:mod:`cmpclient.cli.check_cmd`.
"""

from cmpclient.check.model import (
    PROFILES,
    CheckSetup,
    Report,
    Scenario,
    ScenarioResult,
    Signer,
    Verdict,
)
from cmpclient.check.report import to_json, to_junit_xml
from cmpclient.check.runner import judge, run_check, run_scenario, select
from cmpclient.check.scenarios import BY_NAME, GROUPS, SCENARIOS

__all__ = [
    "BY_NAME",
    "GROUPS",
    "PROFILES",
    "SCENARIOS",
    "CheckSetup",
    "Report",
    "Scenario",
    "ScenarioResult",
    "Signer",
    "Verdict",
    "judge",
    "run_check",
    "run_scenario",
    "select",
    "to_json",
    "to_junit_xml",
]
