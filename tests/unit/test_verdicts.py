"""A verdict is earned: a known deviation only when the evidence matches the
record's signature in a lab the record covers; a broken precondition, or a
lab that is not fit, reads "could not be performed"; the real failure text
of every test not passed is kept."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testbed.report.results import compare, is_regression, read_junit
from testbed.requirements import Deviation, covers, kernel_matches
from testbed.verdicts import DEVIATION, FAILED, INFORMATIVE, NOT_PERFORMED, NOT_RUN, PASSED, requirement_verdict

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance"
sys.path.insert(0, str(CONFORMANCE))

from deviation import Deviations, Fact  # noqa: E402

pytest_plugins = ["pytester"]

RECORD = Deviation(rfc="RFC 2003 4.4: relay Time Exceeded", linux="esp4_err ignores it",
                   evidence="fig6: nothing relayed", where={"datapath": ["iiptran"], "kernel": ["6.1"]},
                   signature={"error_quotes_esp": "the error quotes ESP", "sender_heard_nothing": "nothing heard"})


class FakeItem:
    def __init__(self):
        self.stash = pytest.Stash()
        self.user_properties: list = []


def judge(monkeypatch, failure, facts, kernel="6.1.0-57-amd64", datapath="iiptran", record=RECORD):
    monkeypatch.setattr("deviation.deviations", lambda: {"IPIP-ICMP-TTL": record})
    monkeypatch.setattr("deviation.deviation_scope", lambda topology, k: {
        "datapath": {datapath}, "keying": {"manual"}, "routing": {"frr"}, "kernel": k})
    monkeypatch.setattr("deviation.events.note", lambda *args: None)
    item = FakeItem()
    Deviations(item, None, kernel).check("IPIP-ICMP-TTL", failure, facts)
    return item


HELD = {"error_quotes_esp": Fact(True, "2 of 2"), "sender_heard_nothing": Fact(True, "nothing")}


def test_the_signature_seen_in_a_covered_lab_is_a_known_deviation(monkeypatch):
    with pytest.raises(pytest.xfail.Exception, match="known deviation IPIP-ICMP-TTL.*no Destination Unreachable"):
        judge(monkeypatch, "N got no Destination Unreachable", HELD)


def test_a_fact_that_did_not_hold_is_an_ordinary_failure_with_both_texts(monkeypatch):
    facts = {**HELD, "sender_heard_nothing": Fact(False, "N heard Net Unreachable from R1")}
    with pytest.raises(pytest.fail.Exception) as caught:
        judge(monkeypatch, "want Host Unreachable from A, got Net from R1", facts)
    assert "want Host Unreachable from A" in str(caught.value)
    assert "not the recorded deviation" in str(caught.value) and "Net Unreachable from R1" in str(caught.value)


def test_the_rfc_behaviour_where_a_deviation_is_recorded_fails(monkeypatch):
    with pytest.raises(pytest.fail.Exception, match="no\\s+longer holds"):
        judge(monkeypatch, None, {})


def test_the_rfc_behaviour_where_an_intermittent_deviation_is_recorded_passes(monkeypatch):
    judge(monkeypatch, None, {}, record=RECORD.model_copy(update={"intermittent": True}))
    with pytest.raises(pytest.xfail.Exception, match="known deviation IPIP-ICMP-TTL"):
        judge(monkeypatch, "N got no Destination Unreachable", HELD,
              record=RECORD.model_copy(update={"intermittent": True}))


def test_the_signature_outside_the_records_scope_fails(monkeypatch):
    with pytest.raises(pytest.fail.Exception, match="this lab is not one of them"):
        judge(monkeypatch, "nothing relayed", HELD, datapath="tunnel-interface")
    with pytest.raises(pytest.fail.Exception, match="this lab is not one of them"):
        judge(monkeypatch, "nothing relayed", HELD, kernel="6.8.0-40-generic")
    assert judge(monkeypatch, None, {}, kernel="6.8.0-40-generic").stash  # passes: nothing recorded there


def test_a_fact_the_test_does_not_report_is_a_suite_defect(monkeypatch):
    with pytest.raises(pytest.fail.Exception, match="suite defect"):
        judge(monkeypatch, "nothing relayed", {"error_quotes_esp": Fact(True, "")})


def test_kernel_series_and_where():
    assert kernel_matches("6.1.0-57-amd64", "6.1") and kernel_matches("6.12.38+deb12-amd64", "6.12")
    assert not kernel_matches("6.12.38+deb12-amd64", "6.1") and not kernel_matches("6.1.0-57-amd64", "6.12")
    scope = {"datapath": {"iiptran"}, "keying": {"manual", "ikev2"}, "routing": {"frr"}, "kernel": "6.1.0-57-amd64"}
    assert covers(RECORD, scope)
    assert not covers(RECORD, {**scope, "datapath": {"tunnel-policy"}})
    mixed = RECORD.model_copy(update={"where": {"keying": ["ikev2"]}})
    assert covers(mixed, scope) and not covers(mixed, {**scope, "keying": {"manual"}})


def test_requirement_verdict_is_the_worst_outcome():
    assert requirement_verdict([PASSED, NOT_PERFORMED, DEVIATION]) == NOT_PERFORMED
    assert requirement_verdict([PASSED, "error"]) == FAILED
    assert requirement_verdict([PASSED, DEVIATION]) == DEVIATION
    assert requirement_verdict([NOT_RUN, INFORMATIVE]) == INFORMATIVE
    assert requirement_verdict([NOT_RUN, PASSED]) == PASSED
    assert requirement_verdict([NOT_RUN]) == requirement_verdict([]) == NOT_RUN


def test_passed_to_known_deviation_is_a_regression():
    assert is_regression(PASSED, DEVIATION) and is_regression(PASSED, NOT_PERFORMED)
    assert is_regression(DEVIATION, FAILED) and not is_regression(FAILED, NOT_PERFORMED)
    assert not is_regression(DEVIATION, PASSED)
    runs = [{"requirements": {"A": {"verdict": PASSED}}}, {"requirements": {"A": {"verdict": DEVIATION}}}]
    assert compare(*runs) == [("A", PASSED, DEVIATION)]


SUITE_CONFTEST = f"""
import os, sys
sys.path.insert(0, {str(CONFORMANCE)!r})
from verdict_hooks import COVERED, UNFIT, pytest_runtest_call, pytest_runtest_makereport  # noqa

def pytest_configure(config):
    config.addinivalue_line("markers", "as_built: judges the lab as it is")
    if os.environ.get("LAB_UNFIT"):
        config.stash[UNFIT] = "the lab as brought up did not converge: A has no route to B"

def pytest_collection_modifyitems(items):
    for item in items:
        item.stash[COVERED] = ["IPIP-ICMP-TTL"] if "covered" in item.name else []
"""

SUITE_TESTS = """
import pytest
from testbed.errors import PreconditionFailed

def test_control_lost():
    raise PreconditionFailed("the control packet did not get through")

def test_fails_on_its_own():
    assert False, "3 of 9 packets are not ESP"

@pytest.mark.as_built
def test_reads_state():
    assert False, "A routes B's LAN out of gre1"

def test_not_applicable():
    pytest.skip("not applicable: no flow crosses a VN router")

def test_covered_but_never_judged():
    pass
"""


def _outcomes(pytester, monkeypatch, unfit: bool) -> dict[str, dict]:
    monkeypatch.setenv("LAB_UNFIT", "1" if unfit else "")
    pytester.makeconftest(SUITE_CONFTEST)
    pytester.makepyfile(test_suite=SUITE_TESTS)
    junit = pytester.path / "junit.xml"
    pytester.runpytest_inprocess(f"--junitxml={junit}", "-p", "no:cacheprovider")
    return {row["id"].split("::")[-1]: row for row in read_junit(junit)}


def test_a_broken_precondition_could_not_be_performed(pytester, monkeypatch):
    rows = _outcomes(pytester, monkeypatch, unfit=False)
    assert rows["test_control_lost"]["outcome"] == NOT_PERFORMED
    assert rows["test_control_lost"]["message"] == "could not be performed: the control packet did not get through"
    assert rows["test_fails_on_its_own"]["outcome"] == FAILED
    assert "3 of 9 packets are not ESP" in rows["test_fails_on_its_own"]["message"]
    assert rows["test_not_applicable"]["outcome"] == NOT_RUN
    assert rows["test_covered_but_never_judged"]["outcome"] == FAILED
    assert "did not judge them" in rows["test_covered_but_never_judged"]["message"]


def test_a_lab_not_fit_paints_only_what_needs_it(pytester, monkeypatch):
    rows = _outcomes(pytester, monkeypatch, unfit=True)
    assert rows["test_fails_on_its_own"]["outcome"] == NOT_PERFORMED
    assert "did not converge: A has no route to B" in rows["test_fails_on_its_own"]["message"]
    assert "3 of 9 packets are not ESP" in rows["test_fails_on_its_own"]["detail"]
    assert rows["test_reads_state"]["outcome"] == FAILED          # as_built: judged as it is
    assert "gre1" in rows["test_reads_state"]["message"]
    assert rows["test_not_applicable"]["outcome"] == NOT_RUN
