"""Quiet while a lab measures against a deadline.

In a pool of suite runs (testbed/batch.py) a lab that measures a failover
against a deadline starts with two of the pool's three places, so that at
most one other lab competes with it for the guest's CPUs (beside two, its
daemons starve and a sub-second window reads as more than a second). It
needs the quiet only while it measures: the suite runs its deadline checks
first (conformance/quiet_hooks.py) and then says so here, and the pool takes
the second place back for another run. Outside a pool nobody listens and
saying so does nothing.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

_listener: Callable[[], None] | None = None


@contextmanager
def listened(callback: Callable[[], None]) -> Iterator[None]:
    """For one run: `callback` is called (once) when its deadline checks are done."""
    global _listener
    _listener = callback
    try:
        yield
    finally:
        _listener = None


def deadlines_done() -> None:
    """The run needs no more quiet (no-op outside a pool, or once said)."""
    global _listener
    callback, _listener = _listener, None
    if callback is not None:
        callback()
