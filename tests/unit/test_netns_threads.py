"""Threads enter and leave network namespaces on their own: nodes are
configured side by side, and none may come back in another's namespace."""
from __future__ import annotations

import os
import subprocess
import threading

import pytest

from testbed.parallel import parallel
from testbed.runtime.netlink import inside, list_namespaces

NAMES = [f"iipt-unittest-{os.getpid()}-{i}" for i in range(4)]


def _own_namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@pytest.fixture
def namespaces():
    made = []
    try:
        for name in NAMES:
            if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
                pytest.skip("cannot create network namespaces here (not root?)")
            made.append(name)
        yield NAMES
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_threads_come_back_to_their_own_namespace(namespaces):
    home = _own_namespace()
    start = threading.Barrier(len(namespaces))

    def visit(name: str) -> tuple[int, int]:
        start.wait()
        with inside(name):
            seen = _own_namespace()
            with inside(namespaces[0]):        # nested, as a probe inside a step may
                pass
            assert _own_namespace() == seen
        return seen, _own_namespace()

    results = parallel([lambda name=name: visit(name) for name in namespaces * 3], workers=len(namespaces))
    targets = {os.stat(f"/run/netns/{name}").st_ino for name in namespaces}
    assert {seen for seen, _ in results} == targets
    assert {back for _, back in results} == {home}
    assert _own_namespace() == home


def test_a_missing_namespace_is_named():
    with pytest.raises(FileNotFoundError, match="iipt-no-such"):
        with inside("iipt-no-such"):
            pass
    assert "iipt-no-such" not in list_namespaces()
