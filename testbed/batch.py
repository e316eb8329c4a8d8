"""Several whole suite runs side by side (negative profiles, matrix columns).

Each run is its own `iiptran test` process with its own lab name, report
folder and log file, so runs share nothing but the kernel. Most of a run's
time is spent waiting (pings, captures, convergence) while the other CPU
is idle; measured in the guest, two fig6 runs side by side take 95 s
against 80 s for one.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_JOBS = 2
STOP_TIMEOUT = 120.0       # a run tears its lab down when interrupted
_running: set[subprocess.Popen] = set()
_lock = threading.Lock()


def jobs() -> int:
    """How many runs at once: IIPTRAN_JOBS, else two (a guest has two CPUs)."""
    try:
        return max(1, int(os.environ.get("IIPTRAN_JOBS", DEFAULT_JOBS)))
    except ValueError:
        return DEFAULT_JOBS


@dataclass
class Run:
    title: str                        # what the progress lines call it
    topology: str
    lab: str                          # a lab name of its own
    report: Path
    options: list[str] = field(default_factory=list)   # more `iiptran test` options
    returncode: int | None = None
    seconds: float = 0.0

    @property
    def log(self) -> Path:
        return self.report / "run.log"


def _execute(run: Run, index: int, total: int, started: float) -> Run:
    run.report.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "testbed", "test", run.topology, "--name", run.lab, "--report", str(run.report),
            *run.options]
    began = time.monotonic()
    print(f"iiptran: [{index}/{total}] {run.title}: started ({time.monotonic() - started:.0f} s into the batch)",
          flush=True)
    with run.log.open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        with _lock:
            _running.add(process)
        try:
            run.returncode = process.wait()
        finally:
            with _lock:
                _running.discard(process)
    run.seconds = round(time.monotonic() - began, 1)
    verdict = "passed" if run.returncode == 0 else f"exit {run.returncode}"
    print(f"iiptran: [{index}/{total}] {run.title}: {verdict} in {run.seconds:.0f} s (log: {run.log})", flush=True)
    return run


def run_all(runs: list[Run], workers: int | None = None) -> list[Run]:
    """Run them, `workers` at a time; results in the order given."""
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=workers or jobs())
    futures: list = []
    try:
        futures += [pool.submit(_execute, run, i + 1, len(runs), started) for i, run in enumerate(runs)]
        done = [future.result() for future in futures]
    except BaseException:
        # Ctrl-C or SIGTERM: no new run starts, and each running one is
        # interrupted so that it tears its lab down.
        for future in futures:
            future.cancel()
        _interrupt_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    print(f"iiptran: {len(runs)} runs in {time.monotonic() - started:.0f} s, {workers or jobs()} at a time",
          flush=True)
    return done


def _interrupt_all() -> None:
    with _lock:
        running = list(_running)
    for process in running:
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    for process in running:
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
