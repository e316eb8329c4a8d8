"""A failover lab holds two of the pool's places only until its deadline
checks are done: they run first, then the run says so and the pool takes
the second place back; once no run needs two places, the pool says so."""
from __future__ import annotations

from pathlib import Path

from testbed import quiet
from testbed.batch import Run, _Places

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance"

pytest_plugins = ["pytester"]


def _runs(*weights: int) -> list[Run]:
    return [Run(f"r{i}", "fig3", f"r{i}", Path("/tmp") / f"r{i}", weight=w) for i, w in enumerate(weights)]


def test_a_run_that_is_done_measuring_gives_its_second_place_back():
    heavy, a, b = _runs(2, 1, 1)
    said = []
    places = _Places([heavy, a, b], 3, when_quiet_over=lambda: said.append("quiet over"))
    assert places.take()[1] is heavy and places.take()[1] is a
    assert places.load == 3 and not said
    places.keep_one(heavy)
    assert places.load == 2 and said == ["quiet over"]
    assert places.take()[1] is b                 # the freed place goes to the next run
    places.give_back(heavy)
    places.give_back(a)
    places.give_back(b)
    assert places.load == 0 and said == ["quiet over"]     # said once


def test_quiet_is_not_over_while_a_two_place_run_waits():
    first, second, light = _runs(2, 2, 1)
    said = []
    places = _Places([first, second, light], 3, when_quiet_over=lambda: said.append(True))
    places.check_quiet()
    assert not said
    assert places.take()[1] is first
    places.keep_one(first)
    assert not said                              # second still waits for its two places
    assert places.take()[1] is second
    places.keep_one(second)
    assert said == [True]


def test_a_pool_without_two_place_runs_is_quiet_over_at_once():
    said = []
    _Places(_runs(1, 1), 3, when_quiet_over=lambda: said.append(True)).check_quiet()
    assert said == [True]


def test_deadline_checks_run_first_and_the_run_says_when_they_are_done(pytester, tmp_path):
    log = tmp_path / "order"
    pytester.makeconftest(f"""
import sys
sys.path.insert(0, {str(CONFORMANCE)!r})
import quiet_hooks

def pytest_configure(config):
    config.addinivalue_line("markers", "deadline: measures against a clock")
    config.pluginmanager.register(quiet_hooks, "iiptran-quiet")
""")
    pytester.makepyfile(f"""
import pytest

def note(what):
    with open({str(log)!r}, "a") as out:
        out.write(what + "\\n")

def test_plain():
    note("plain")

@pytest.mark.deadline
def test_failover():
    note("failover")

@pytest.mark.deadline
def test_second_deadline():
    note("second deadline")
""")
    with quiet.listened(lambda: log.open("a").write("quiet over\n")):
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert log.read_text().splitlines() == ["failover", "second deadline", "quiet over", "plain"]


def test_outside_a_pool_saying_so_does_nothing():
    quiet.deadlines_done()
