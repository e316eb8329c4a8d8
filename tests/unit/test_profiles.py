"""Negative profiles: the file is consistent, and a run is judged 'exactly
these fail, the rest pass'."""
from __future__ import annotations

from testbed.faults import FAULTS
from testbed.profiles import load_profiles, verdict_problems
from testbed.requirements import catalogue


def _results(failed: set[str], unchecked: set[str] = frozenset()) -> dict:
    return {"requirements": {rid: {"verdict": "failed" if rid in failed else "not run" if rid in unchecked
                                   else "passed", "tests": [] if rid in unchecked else ["t"]}
                             for rid in catalogue()}}


def test_every_profile_is_a_fault_and_breaks_something():
    spec = load_profiles()
    assert spec.topology == "fig6"
    assert set(spec.profiles) <= set(FAULTS)
    for name, profile in spec.profiles.items():
        assert profile.breaks, f"profile {name} breaks nothing: it would prove nothing"


def test_exactly_the_listed_requirements_must_fail():
    assert verdict_problems("p", ["POL-SPOOF"], _results({"POL-SPOOF"})) == []
    assert verdict_problems("p", ["POL-SPOOF"], _results(set())) == ["p: POL-SPOOF passed, but this profile breaks it"]
    assert verdict_problems("p", ["POL-SPOOF"], _results({"POL-SPOOF", "WIRE-ESP"})) == [
        "p: WIRE-ESP failed, but this profile should leave it alone"]
    assert verdict_problems("p", ["POL-SPOOF"], _results({"POL-SPOOF"}, {"FWD-OSPF"})) == [
        "p: FWD-OSPF was not checked"]
