"""Bounded waits on conditions: no sleeps as synchronisation."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from testbed.errors import WaitTimeout

T = TypeVar("T")
FIRST_PAUSE = 0.01


def wait_for(condition: Callable[[], T], what: str, timeout: float,
             interval: float = 0.2, describe: Callable[[], str] | None = None, backoff: bool = True) -> T:
    """Poll `condition` until it returns something truthy, or raise WaitTimeout.

    `what` says what was awaited; `describe` (optional) says what was seen
    last, so the error explains itself. A condition that compares two
    successive reads (something stopped changing) needs them `interval`
    apart: it passes backoff=False.
    """
    deadline = time.monotonic() + timeout
    # The first looks come quickly and then back off to `interval`: most
    # conditions hold within milliseconds (a process exiting after its
    # signal), and a fixed pause would cost each wait a whole interval.
    pause = min(FIRST_PAUSE, interval) if backoff else interval
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            seen = f"; last seen: {describe()}" if describe else ""
            raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, interval)
