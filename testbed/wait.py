"""Bounded waits on conditions: no sleeps as synchronisation."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from testbed.errors import WaitTimeout

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float,
             interval: float = 0.2, describe: Callable[[], str] | None = None) -> T:
    """Poll `condition` until it returns something truthy, or raise WaitTimeout.

    `what` says what was awaited; `describe` (optional) says what was seen
    last, so the error explains itself.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            seen = f"; last seen: {describe()}" if describe else ""
            raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(interval)
