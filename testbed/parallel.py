"""Blocking calls side by side: most of a lab's set-up waits on subprocesses
or on an engine, and an emulated guest has a second CPU to give."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


def parallel(calls: list[Callable[[], T]], workers: int = 8) -> list[T]:
    """Results in the order of `calls`; the first exception is raised after all have finished."""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]
