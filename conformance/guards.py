"""A check's preconditions. When one does not hold, the check could not be
performed, which is a failure of its own: never a pass, and never a known
deviation (pytest.fail is not an AssertionError, so a strict xfail that
records a kernel's departure cannot absorb it)."""
from __future__ import annotations

import pytest


def needs_dynamic_routing(lab) -> None:
    """Checks of a routing protocol do not apply to a VN routed statically."""
    if not lab.routing.dynamic:
        pytest.skip(f"not applicable: the VN routes statically ({lab.routing.name}); no routing protocol runs")


def guard(condition, message: str) -> None:
    if not condition:
        pytest.fail(f"the check could not be performed: {message}", pytrace=False)
