"""Deadline checks first, then the pool's quiet given back (testbed/quiet.py).

A check marked `deadline` measures against a clock (a failover window) and
needs the guest's CPUs nearly to itself. It runs before every other check
of the session; once the last of them has finished the run needs no more
quiet. A session with none of them says so as soon as it has collected.
"""
from __future__ import annotations

import pytest

from testbed import quiet

_waiting: set[str] = set()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    # Stable: the order conftest gave the others (lab rebuilds last) stands.
    items.sort(key=lambda item: item.get_closest_marker("deadline") is None)
    _waiting.clear()
    _waiting.update(item.nodeid for item in items if item.get_closest_marker("deadline"))


def pytest_collection_finish(session):
    if not _waiting:
        quiet.deadlines_done()


def pytest_runtest_logfinish(nodeid, location):
    if nodeid in _waiting:
        _waiting.discard(nodeid)
        if not _waiting:
            quiet.deadlines_done()


def pytest_sessionfinish(session, exitstatus):
    quiet.deadlines_done()          # stopped before its deadline checks ran
