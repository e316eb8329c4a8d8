"""A run's verdicts as data: from junit.xml, the evidence files and lab.json.

`results.json` (requirement -> verdict -> tests -> evidence) is what other
tools consume; the HTML report and the terminal table are views of it.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from testbed.requirements import catalogue
from testbed.verdicts import DEVIATION, FAILING, NOT_RUN, SEVERITY, requirement_verdict

OUTCOMES = {"failure": "failed", "error": "error", "skipped": NOT_RUN}
# Properties the suite gives a test (conformance/conftest.py): its verdict
# where pytest's outcome does not say it (could not be performed, known
# deviation, informative), and the real failure text of any test not passed.
VERDICT_PROPERTY, FAILURE_PROPERTY, OBSERVATION_PROPERTY = "verdict", "failure", "observation"
MAX_DETAIL = 6000         # characters of a failure's traceback kept in results.json


def read_junit(junit: Path) -> list[dict]:
    rows = []
    root = ET.parse(junit).getroot()
    for case in root.iter("testcase"):
        outcome, message, detail = "passed", "", ""
        for tag, name in OUTCOMES.items():
            node = case.find(tag)
            if node is not None:
                outcome, message, detail = name, node.get("message") or "", node.text or ""
                if tag == "skipped" and node.get("type") == "pytest.xfail":
                    outcome = DEVIATION
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = props.get(VERDICT_PROPERTY) or outcome
        message = props.get(FAILURE_PROPERTY) or props.get(OBSERVATION_PROPERTY) or message
        rows.append({"id": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                     "sections": _split(props.get("rfc", "")),
                     "requirements": _split(props.get("requirements", "")),
                     "message": message, "detail": detail.strip(), "time": float(case.get("time") or 0),
                     "cpu": float(props.get("cpu_s") or 0),
                     "evidence_file": props.get("evidence", "")})
    return rows


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def build_results(report_dir: Path) -> dict:
    junit = report_dir / "junit.xml"
    tests = read_junit(junit) if junit.exists() else []
    for test in tests:
        path = report_dir / test["evidence_file"] if test["evidence_file"] else None
        test["evidence"] = json.loads(path.read_text()) if path and path.exists() else []
    requirements = []
    for req in catalogue().values():
        members = [t for t in tests if req.id in t["requirements"]]
        verdict = requirement_verdict([t["outcome"] for t in members])
        # Why it is not a plain pass: the messages of the tests that gave it
        # its verdict (a failure's own text, a deviation's, a skip's reason).
        said = [t["message"] for t in members
                if t["outcome"] == verdict or (verdict in FAILING and t["outcome"] in FAILING)]
        reason = "; ".join(dict.fromkeys(m for m in said if m))
        if verdict == NOT_RUN and not reason:
            reason = "no test of this run checks it"
        requirements.append({
            "id": req.id, "rfc": req.rfc, "statement": req.statement, "verdict": verdict,
            "reason": reason,
            "tests": [t["id"] for t in members],
            "evidence": sorted({i["path"] for t in members for i in t["evidence"] if i.get("path")})})
    facts_file = report_dir / "lab.json"
    counts = {name: sum(t["outcome"] == name for t in tests) for name in SEVERITY}
    measured = report_dir / "measurements.json"
    return {"report": report_dir.name, "lab": json.loads(facts_file.read_text()) if facts_file.exists() else {},
            "measurements": json.loads(measured.read_text()) if measured.exists() else {},
            "counts": counts, "duration_s": round(sum(t["time"] for t in tests), 1),
            "verdict": "fail" if any(counts[name] for name in FAILING) or not tests else "pass",
            "requirements": requirements, "tests": tests}


def machine_readable(results: dict, report_dir: Path) -> dict:
    """results.json: requirement -> verdict -> tests and evidence paths (no evidence bodies)."""
    def rel(path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(report_dir.resolve()))
        except ValueError:
            return path
    return {"report": results["report"], "verdict": results["verdict"], "counts": results["counts"],
            "lab": results["lab"], "measurements": results["measurements"],
            "requirements": {r["id"]: {"rfc": r["rfc"], "statement": r["statement"], "verdict": r["verdict"],
                                       "reason": r["reason"], "tests": r["tests"],
                                       "evidence": [rel(p) for p in r["evidence"]]}
                             for r in results["requirements"]},
            "tests": {t["id"]: {"outcome": t["outcome"], "sections": t["sections"], "message": t["message"],
                                "detail": t["detail"][:MAX_DETAIL], "evidence": t["evidence_file"],
                                "seconds": round(t["time"], 2), "cpu_s": t["cpu"]}
                      for t in results["tests"]}}


def is_regression(before: str, after: str) -> bool:
    """A change for the worse: a requirement that now fails (or could not
    be performed), or one that passed and is now a known deviation."""
    return (after in FAILING and before not in FAILING) or (before == "passed" and after == DEVIATION)


def compare(old: dict, new: dict) -> list[tuple[str, str, str]]:
    """Requirements whose verdict changed between two results.json: (ID, old, new)."""
    changes = []
    for req in sorted(set(old["requirements"]) | set(new["requirements"])):
        before = old["requirements"].get(req, {}).get("verdict", "absent")
        after = new["requirements"].get(req, {}).get("verdict", "absent")
        if before != after:
            changes.append((req, before, after))
    return changes
