"""Report output: JSON document and JUnit XML (xml.etree, for CI)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from cmpclient.check.model import Report, Verdict


def to_json(report: Report) -> dict[str, Any]:
    return report.to_dict()


def to_junit_xml(report: Report) -> bytes:
    """One <testsuite>; FAIL -> <failure>, ERROR -> <error>, SKIPPED/UNSUPPORTED -> <skipped>;
    EJBCA-COMPATIBLE passes with the deviation in <system-out>."""
    counts = report.counts()
    suite = ET.Element("testsuite", {
        "name": "cmpclient check",
        "tests": str(len(report.results)),
        "failures": str(counts[Verdict.FAIL.value]),
        "errors": str(counts[Verdict.ERROR.value]),
        "skipped": str(counts[Verdict.SKIPPED.value] + counts[Verdict.UNSUPPORTED.value]),
        "time": f"{report.seconds:.3f}",
    })
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "target", "value": report.target})
    ET.SubElement(props, "property", {"name": "profile", "value": report.profile})
    for r in report.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"cmpclient.check.{r.group}", "name": r.name, "time": f"{r.seconds:.3f}",
        })
        detail = f"expected: {r.expected}\ngot: {r.got}\nreason: {r.reason}\nreference: {r.reference}"
        if r.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", {"message": r.reason or "failed", "type": "FAIL"}).text = detail
        elif r.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", {"message": r.reason or "error", "type": "ERROR"}).text = detail
        elif r.verdict in (Verdict.SKIPPED, Verdict.UNSUPPORTED):
            ET.SubElement(case, "skipped", {"message": f"{r.verdict.value}: {r.reason}"})
        out = f"verdict: {r.verdict.value}\n{detail}"
        if r.captured:
            out += "\ncaptured: " + " ".join(r.captured)
        ET.SubElement(case, "system-out").text = out
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
