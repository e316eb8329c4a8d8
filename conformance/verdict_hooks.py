"""How a test's outcome becomes its verdict (testbed/verdicts.py), as pytest
hooks the suite's conftest takes in:

- a precondition that did not hold (PreconditionFailed, from a guard or a
  probe) reads "could not be performed", with its reason;
- where the lab is not fit for checks that send traffic (it did not
  converge, a node could not join: config.stash[UNFIT] says why), a check
  that fails, or finds a known deviation, reads "could not be performed"
  with that reason instead, its own failure kept as detail; checks marked
  `as_built` judge the lab as it is, and checks that do not apply still
  read "not run";
- a test of a requirement whose recorded deviation covers the lab
  (item.stash[COVERED]) must have judged it against its signature
  (conformance/deviation.py); passing without doing so fails;
- every test not passed keeps its real failure text as the property
  'failure' (junit.xml, then results.json and the report).
"""
from __future__ import annotations

import pytest

from deviation import JUDGED
from testbed.errors import PreconditionFailed
from testbed.verdicts import NOT_PERFORMED

UNFIT = pytest.StashKey[str]()          # why the lab is not fit for checks that send traffic
COVERED = pytest.StashKey[list]()       # the item's requirements with a recorded deviation covering the lab
VERDICT, FAILURE = "verdict", "failure"


def unfit(config) -> str:
    return config.stash.get(UNFIT, "")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    unjudged = [r for r in item.stash.get(COVERED, []) if r not in item.stash.get(JUDGED, set())]
    if unjudged:
        pytest.fail(f"suite defect: {item.name} checks {unjudged}, recorded as deviations for this lab, and did "
                    "not judge them against their signature", pytrace=False)
    return result


def _crash_message(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(report.longrepr or "")


def _not_performed(item, report, reason: str, own: str) -> None:
    report.outcome = "failed"
    if hasattr(report, "wasxfail"):
        del report.wasxfail
    report.longrepr = f"could not be performed: {reason}" + (f"\n(the check's own finding: {own})" if own else "")
    report.verdict = NOT_PERFORMED
    item.user_properties[:] = [(k, v) for k, v in item.user_properties if k not in (VERDICT, FAILURE)]
    item.user_properties.append((VERDICT, NOT_PERFORMED))
    item.user_properties.append((FAILURE, f"could not be performed: {reason}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when not in ("setup", "call"):
        return report
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, PreconditionFailed):
        _not_performed(item, report, str(exc), "")
    elif (report.failed or hasattr(report, "wasxfail")) and unfit(item.config) \
            and item.get_closest_marker("as_built") is None:
        own = getattr(report, "wasxfail", "") or _crash_message(report)
        _not_performed(item, report, unfit(item.config), own)
    elif report.failed and not any(name == FAILURE for name, _ in item.user_properties):
        item.user_properties.append((FAILURE, _crash_message(report)))
    return report
