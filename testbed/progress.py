"""Where a long command is: the step running, how far along, the time spent
and an estimate of what is left, from the previous run's timings when there
are some (else from the pace so far).

Plain lines when the output is not a terminal (CI logs, a run's log file);
a live bar (rich) when it is. In the guest the console is always a
terminal, so the host says what its own output is (IIPTRAN_LIVE=1/0).
"""
from __future__ import annotations

import os
import sys
import threading
import time


def live_output() -> bool:
    wanted = os.environ.get("IIPTRAN_LIVE")
    if wanted in ("0", "1"):
        return wanted == "1"
    return sys.stdout is not None and sys.stdout.isatty()


def seconds(value: float) -> str:
    value = round(value)
    return f"{value // 60} min {value % 60:02d} s" if value >= 60 else f"{value} s"


class Estimate:
    """Seconds left, from what each step took last time (`previous`, by key)
    or, for steps never seen, from the mean pace so far."""

    def __init__(self, keys: list[str], previous: dict[str, float] | None = None):
        self.keys = keys
        wanted = set(keys)
        self.previous = {k: v for k, v in (previous or {}).items() if k in wanted}
        self.took: dict[str, float] = {}

    def finished(self, key: str, took: float) -> None:
        self.took[key] = took

    def left(self, running: str | None = None, running_for: float = 0.0) -> float | None:
        remaining = [k for k in self.keys if k not in self.took]
        if not remaining:
            return 0.0
        took = list(self.took.values())
        if not self.previous:
            took = took[1:]   # the first step also carries the set-up (a lab's bring-up)
        known = list(self.previous.values()) + took
        if not known:
            return None
        pace = sum(known) / len(known)
        total = sum(self.previous.get(k, pace) for k in remaining)
        if running in remaining:   # the running step has already used part of its time
            total -= min(running_for, self.previous.get(running, pace))
        return max(total, 0.0)

    def source(self) -> str:
        return "last run's timings" if self.previous else "the pace so far"


class Progress:
    """Steps of one long command, shown as lines or as a live bar. A batch's
    workers call it from their threads, so every method holds one lock (a
    step finishing in one thread while another reads the running steps
    once raised in a worker and left the pool waiting for good)."""

    def __init__(self, title: str, keys: list[str], previous: dict[str, float] | None = None,
                 workers: int = 1, live: bool | None = None, stream=None, say_starts: bool = False):
        self.title, self.workers, self.say_starts = title, max(1, workers), say_starts
        self.estimate = Estimate(keys, previous)
        self.started = time.monotonic()
        self.stream = stream or sys.stdout
        self.running: dict[str, float] = {}
        self._lock = threading.RLock()
        self._bar = None
        if live if live is not None else live_output():
            self._start_bar(len(keys))

    def _start_bar(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn
        self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[left]}", markup=False), TextColumn("{task.fields[now]}", markup=False),
                        console=Console(file=self.stream), transient=False)
        self._task = self._bar.add_task(self.title, total=total, left="", now="")
        self._bar.start()

    def _left(self) -> str:
        now = time.monotonic()
        running = next(iter(self.running), None)
        left = self.estimate.left(running, now - self.running[running] if running else 0.0)
        if left is None:
            return "no estimate yet"
        unfinished = len(self.estimate.keys) - len(self.estimate.took)
        at_once = min(self.workers, max(1, unfinished))   # the last run alone takes its whole time
        return f"about {seconds(left / at_once)} left ({self.estimate.source()})"

    def start(self, key: str, label: str) -> None:
        with self._lock:
            self._start(key, label)

    def _start(self, key: str, label: str) -> None:
        self.running[key] = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, now=label, left=self._left())
        elif self.say_starts:
            print(f"iiptran: {self.title}: started {label} ({seconds(time.monotonic() - self.started)} in, "
                  f"{self._left()})", file=self.stream, flush=True)

    def finish(self, key: str, label: str, outcome: str) -> None:
        with self._lock:
            self._finish(key, label, outcome)

    def _finish(self, key: str, label: str, outcome: str) -> None:
        took = time.monotonic() - self.running.pop(key, time.monotonic())
        self.estimate.finished(key, took)
        done, left = len(self.estimate.took), self._left()
        line = (f"[{done}/{len(self.estimate.keys)}] {outcome} {label} ({seconds(took)}; "
                f"{seconds(time.monotonic() - self.started)} in, {left})")
        if self._bar is not None:
            self._bar.update(self._task, completed=done, left=left)
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(f"iiptran: {self.title}: {line}", file=self.stream, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(self._task, now="")
                self._bar.stop()
                self._bar = None


TIMINGS_FILE = "step-timings.json"


class step:
    """One long step with no parts to count (a download, an image build):
    says it started and how long it took last time, then how long it took;
    a spinner with the elapsed time on a terminal. Timings are kept in the
    cache folder for the next estimate."""

    def __init__(self, key: str, title: str, cache_dir, live: bool | None = None, stream=None):
        from pathlib import Path
        self.key, self.title, self.file = key, title, Path(cache_dir) / TIMINGS_FILE
        self.live = live if live is not None else live_output()
        self.stream = stream or sys.stdout
        self._status = None

    def _timings(self) -> dict:
        import json
        try:
            return json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}

    def __enter__(self):
        last = self._timings().get(self.key)
        hint = f"took {seconds(last)} last time" if isinstance(last, (int, float)) else "no earlier timing"
        self.started = time.monotonic()
        if self.live:
            from rich.console import Console
            self._status = Console(file=self.stream).status(f"{self.title} ({hint})")
            self._status.start()
        else:
            print(f"iiptran: {self.title} ({hint})...", file=self.stream, flush=True)
        return self

    def __exit__(self, kind, value, traceback):
        import json
        took = time.monotonic() - self.started
        if self._status is not None:
            self._status.stop()
        outcome = "done" if kind is None else "stopped"
        print(f"iiptran: {self.title}: {outcome} in {seconds(took)}", file=self.stream, flush=True)
        if kind is None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                self.file.write_text(json.dumps({**self._timings(), self.key: round(took, 1)}) + "\n")
            except OSError:
                pass
        return False
