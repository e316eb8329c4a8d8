"""The suite's progress (a pytest plugin): each test with its requirements as
it runs, instead of pytest's dots, with the time left estimated from the
previous run's results.json in the same report folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.progress import Progress

OUTCOME = {"passed": "passed", "failed": "FAILED", "skipped": "not run"}


def timing_key(test_id: str) -> str:
    """The same key for a pytest node id (conformance/test_x.py::name) and a
    results.json test id (conformance.test_x::name)."""
    where, name = test_id.split("::", 1)
    return f"{where.rsplit('/', 1)[-1].removesuffix('.py').rsplit('.', 1)[-1]}::{name}"


def previous_timings(report_dir: Path) -> dict[str, float]:
    try:
        tests = json.loads((report_dir / "results.json").read_text())["tests"]
    except (OSError, ValueError, KeyError):
        return {}
    return {timing_key(tid): t["seconds"] for tid, t in tests.items() if isinstance(t.get("seconds"), (int, float))}


class SuiteProgress:
    def __init__(self, title: str, previous: dict[str, float]):
        self.title, self.previous = title, previous
        self.progress: Progress | None = None
        self.labels: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        for item in session.items:
            reqs = ",".join(m.args[0] for m in item.iter_markers("req"))
            self.labels[timing_key(item.nodeid)] = f"{reqs} {item.name}".strip()
        self.progress = Progress(self.title, list(self.labels), self.previous)

    def pytest_runtest_logstart(self, nodeid, location):
        key = timing_key(nodeid)
        if self.progress:
            self.progress.start(key, self.labels.get(key, nodeid))

    def pytest_runtest_logreport(self, report):
        key = timing_key(report.nodeid)
        if getattr(report, "verdict", None):
            self.outcomes[key] = report.verdict       # the suite's own word (could not be performed)
        elif report.failed:
            self.outcomes[key] = "FAILED" if report.when == "call" else "ERROR"
        elif report.when == "call" or (report.skipped and key not in self.outcomes):
            self.outcomes[key] = "known deviation" if hasattr(report, "wasxfail") else OUTCOME[report.outcome]

    def pytest_runtest_logfinish(self, nodeid, location):
        key = timing_key(nodeid)
        if self.progress:
            self.progress.finish(key, self.labels.get(key, nodeid), self.outcomes.get(key, "?"))

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report, config):
        category, letter, word = yield
        return category, "", word        # the progress lines replace pytest's letters

    def pytest_sessionfinish(self, session):
        if self.progress:
            self.progress.close()
