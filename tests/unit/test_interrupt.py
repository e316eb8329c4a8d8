"""Ctrl-C must not be lost when it lands inside a finalizer (Python drops
exceptions raised in __del__; every finished subprocess runs Popen.__del__)."""
from __future__ import annotations

import sys

from testbed import cli


def test_a_frame_inside_del_is_recognised_as_a_finalizer():
    seen = []

    class Finalized:
        def __del__(self):
            seen.append(cli._in_finalizer(sys._getframe()))

    Finalized()
    assert seen == [True]
    assert not cli._in_finalizer(sys._getframe())
