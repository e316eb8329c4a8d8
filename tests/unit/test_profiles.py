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


def test_every_profile_is_a_fault_or_a_hook_and_breaks_something():
    spec = load_profiles()
    assert spec.topology == "fig6"
    assert {p.fault_of(name) for name, p in spec.profiles.items() if not p.configure} <= set(FAULTS)
    assert spec.profiles["hook-tunnel-mode"].breaks == spec.profiles["sa-tunnel-mode"].breaks
    # libreswan's profiles: strongSwan's faults, breaking the same (wide selectors: SAD-SELECTORS as well,
    # which is a recorded deviation for strongSwan's SAs only; an untrusted certificate in NSS's words)
    for name in ("child-tunnel-mode", "wide-selectors", "wrong-psk", "untrusted-cert"):
        libreswan, strongswan = spec.profiles[f"libreswan-{name}"], spec.profiles[f"ike-{name}"]
        assert (libreswan.fault_of(f"libreswan-{name}"), libreswan.ike) == (f"ike-{name}", "libreswan")
        extra = ["SAD-SELECTORS"] if name == "wide-selectors" else []
        assert libreswan.breaks == strongswan.breaks + extra
        assert bool(libreswan.fails_bringup) == bool(strongswan.fails_bringup)
    for name, profile in spec.profiles.items():
        assert profile.breaks or profile.fails_bringup, f"profile {name} breaks nothing: it would prove nothing"


def test_a_profile_names_one_expectation():
    import pytest
    from pydantic import ValidationError

    from testbed.profiles import Profile
    with pytest.raises(ValidationError, match="either 'breaks'"):
        Profile(why="both", breaks=["POL-SPOOF"], fails_bringup="x")
    with pytest.raises(ValidationError, match="either 'breaks'"):
        Profile(why="neither")


def test_a_bringup_that_must_fail_is_judged_by_its_error():
    from testbed.profiles import bringup_problems
    errored = {"tests": {"t1": {"outcome": "error", "message": "TestbedError: virtual link AB (A-B): IKE could not "
                                "set up its SAs: B's charon: received AUTHENTICATION_FAILED notify error"}}}
    assert bringup_problems("p", "virtual link AB .*AUTHENTICATION_FAILED", errored) == []
    assert bringup_problems("p", "virtual link AC", errored)[0].startswith("p: the bring-up failed, but not with")
    ran = {"tests": {"t1": {"outcome": "passed", "message": ""}}}
    assert bringup_problems("p", "x", ran) == ["p: the bring-up was expected to fail, but tests ran"]
    with_skip = {"tests": {**errored["tests"], "t2": {"outcome": "not run", "message": "not applicable: ..."}}}
    assert bringup_problems("p", "AUTHENTICATION_FAILED", with_skip) == []


def test_exactly_the_listed_requirements_must_fail():
    assert verdict_problems("p", ["POL-SPOOF"], _results({"POL-SPOOF"})) == []
    assert verdict_problems("p", ["POL-SPOOF"], _results(set())) == ["p: POL-SPOOF passed, but this profile breaks it"]
    assert verdict_problems("p", ["POL-SPOOF"], _results({"POL-SPOOF", "WIRE-ESP"})) == [
        "p: WIRE-ESP failed, but this profile should leave it alone"]
    assert verdict_problems("p", ["POL-SPOOF"], _results({"POL-SPOOF"}, {"FWD-OSPF"})) == [
        "p: FWD-OSPF was not checked"]


def test_profiles_start_longest_first_and_refused_bring_ups_last(tmp_path):
    from testbed.profiles import load_profiles, profile_runs
    spec = load_profiles()
    names = list(spec.profiles)
    runs = profile_runs(tmp_path, "p")
    order = [run.report.name for run in runs]
    fig3 = [n for n in names if spec.profiles[n].topology == "fig3"]
    refused = [n for n in names if spec.profiles[n].fails_bringup]
    assert set(order[:len(fig3)]) == set(fig3) and set(order[-len(refused):]) == set(refused)
    assert sorted(order) == sorted(names)
    # fig3 runs BFD and measures failover: two places of three
    assert {run.report.name for run in runs if run.weight == 2} == set(fig3)
