"""Blocking calls side by side: most of a lab's set-up waits on subprocesses
or on an engine, and an emulated guest has a second CPU to give."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


def parallel(calls: list[Callable[[], T]], workers: int = 8) -> list[T]:
    """Results in the order of `calls`; the first exception is raised after all have finished."""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


@contextmanager
def meanwhile(call: Callable[[], object]) -> Iterator[None]:
    """Run `call` in a thread while the block runs. Leaving the block waits
    for it, also when the block failed; then it raises what `call` raised."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(call)
        yield
        future.result()
