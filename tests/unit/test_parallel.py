"""`meanwhile`: the bring-up starts routing daemons in a thread while it
builds the links; leaving the block must wait for them and report their
failure, and a failed build must still wait (nothing starts after teardown)."""
from __future__ import annotations

import threading

import pytest

from testbed.parallel import meanwhile


def test_leaving_the_block_waits_for_the_call():
    release, done = threading.Event(), []

    def call():
        release.wait(5)
        done.append(True)

    with meanwhile(call):
        release.set()
    assert done == [True]


def test_the_calls_failure_is_raised_after_the_block():
    def call():
        raise RuntimeError("zebra did not start")

    ran = []
    with pytest.raises(RuntimeError, match="zebra"):
        with meanwhile(call):
            ran.append(True)
    assert ran == [True]


def test_a_failed_block_still_waits_and_its_own_error_wins():
    release, done = threading.Event(), []

    def call():
        release.wait(5)
        done.append(True)
        raise RuntimeError("second")

    with pytest.raises(ValueError, match="build"):
        with meanwhile(call):
            release.set()
            raise ValueError("build failed")
    assert done == [True]
