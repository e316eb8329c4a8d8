"""A check's preconditions. When one does not hold, the check could not be
performed, which is a failure of its own (reported as such, with the
reason): never a pass, and never a known deviation."""
from __future__ import annotations

import pytest

from testbed.errors import PreconditionFailed


def needs_dynamic_routing(lab) -> None:
    """Checks of a routing protocol do not apply to a VN routed statically."""
    if not lab.routing.dynamic:
        pytest.skip(f"not applicable: the VN routes statically ({lab.routing.name}); no routing protocol runs")


def guard(condition, message: str) -> None:
    if not condition:
        raise PreconditionFailed(message)
