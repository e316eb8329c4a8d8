"""A failover lab holds two of the pool's places only until its deadline
checks are done: they run first, then the run says so and the pool takes
the second place back."""
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
    places = _Places([heavy, a, b], 3)
    assert places.take()[1] is heavy and places.take()[1] is a
    assert places.load == 3
    places.keep_one(heavy)
    assert places.load == 2
    assert places.take()[1] is b                 # the freed place goes to the next run
    for run in (heavy, a, b):
        places.give_back(run)
    assert places.load == 0


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
