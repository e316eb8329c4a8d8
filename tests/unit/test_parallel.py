"""`meanwhile`: the bring-up starts routing daemons in a thread while it
builds the links; leaving the block must wait for them and report their
failure, and a failed build must still wait (nothing starts after teardown)."""
from __future__ import annotations

import threading
from pathlib import Path

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


def _runs(*weights):
    from testbed.batch import Run
    return [Run(t, "fig6", t, Path("/tmp") / t, weight=w) for t, w in weights]


def _waiting_take(places):
    """A take() in another thread, and what it took (nothing yet while it waits)."""
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(places.take()))
    waiter.start()
    return waiter, taken


def test_a_heavy_run_takes_two_of_three_places():
    """A lab that measures failover runs beside at most one other; runs are
    taken in order, skipping those that do not fit yet."""
    from testbed.batch import _Places
    heavy, a, b, c = _runs(("heavy", 2), ("a", 1), ("b", 1), ("c", 1))
    places = _Places([heavy, a, b, c], 3)
    assert places.take()[1] is heavy and places.take()[1] is a
    waiter, taken = _waiting_take(places)
    waiter.join(0.2)
    assert waiter.is_alive() and not taken        # b does not fit beside heavy and a
    places.give_back(heavy)
    waiter.join(2)
    assert taken[0][1] is b and places.take()[1] is c


def test_no_run_goes_past_a_waiting_two_place_run():
    """Otherwise each freed place goes to a one-place run and the two-place
    run waits to the end of the pool."""
    from testbed.batch import _Places
    first, second, a, b = _runs(("first", 2), ("second", 2), ("a", 1), ("b", 1))
    places = _Places([first, a, second, b], 3)
    assert places.take()[1] is first and places.take()[1] is a
    waiter, taken = _waiting_take(places)
    places.keep_one(first)                        # one place free: second needs two, b must not take it
    waiter.join(0.2)
    assert waiter.is_alive() and not taken
    places.give_back(a)
    waiter.join(2)
    assert taken[0][1] is second


def test_two_place_runs_go_first_then_longest_first():
    """Behind one-place runs, a two-place run starves until the pool's end
    (two of three places are always taken when one frees)."""
    from testbed.batch import Run
    from testbed.run_order import longest_first
    runs = [Run(t, "fig6", t, Path("/tmp") / t, weight=w, expected=s) for t, w, s in
            (("short", 1, 60), ("heavy-short", 2, 100), ("long", 1, 300), ("heavy-long", 2, 150))]
    assert [run.title for run in longest_first(runs)] == ["heavy-long", "heavy-short", "long", "short"]


class _FakeWorker:
    """Runs nothing: answers 0."""

    def run(self, run, quiet_over=lambda: None):
        quiet_over()
        return 0

    def close(self):
        pass

    def interrupt(self):
        pass


def test_a_worker_that_fails_ends_the_pool_instead_of_hanging(monkeypatch, tmp_path):
    """Seen in CI: a worker thread died in its progress line with a
    two-place run's places held, and the other worker waited for them until
    the CI's limit."""
    from testbed import batch, progress
    monkeypatch.setattr(batch, "_Worker", _FakeWorker)
    start = progress.Progress.start

    def broken_start(self, key, label):
        if key == "broken":
            raise RuntimeError("worker lost")
        start(self, key, label)

    monkeypatch.setattr(progress.Progress, "start", broken_start)
    runs = [batch.Run(t, "fig6", t, tmp_path / t, weight=w) for t, w in
            (("broken", 2), ("a", 1), ("heavy", 2), ("b", 1))]
    done = []
    pool = threading.Thread(target=lambda: done.append(_raised(batch.run_all, runs, workers=3)), daemon=True)
    pool.start()
    pool.join(10)
    assert not pool.is_alive(), "run_all still waiting after a worker failed"
    assert isinstance(done[0], RuntimeError) and "worker lost" in str(done[0])


def _raised(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except Exception as exc:
        return exc
    return None


def test_progress_from_many_threads_keeps_count(monkeypatch):
    """Workers start and finish steps at once; every finish is counted and
    no start reads a step another thread has just finished."""
    import io
    import sys
    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)
    sys.setswitchinterval(1e-6)   # switch threads as often as possible
    from testbed.progress import Progress
    keys = [f"run{i}" for i in range(2000)]
    progress = Progress("pool", keys, {k: 1.0 for k in keys}, workers=4, live=False,
                        stream=io.StringIO(), say_starts=True)

    def step(mine):
        for key in mine:
            progress.start(key, key)
            progress.finish(key, key, "passed")

    threads = [threading.Thread(target=step, args=(keys[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.setswitchinterval(0.005)
    assert len(progress.estimate.took) == 2000 and not progress.running
