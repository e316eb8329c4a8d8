"""Several whole suite runs side by side (negative profiles, matrix columns).

A few worker processes (two by default: a guest has two CPUs) each run
suite after suite in-process, taking the next run from a shared queue, so
Python and the suite's imports (about 10 s under emulation) are paid once
per worker rather than once per run. Each run has its own lab name, report
folder and log file; runs share nothing but the kernel. Most of a run's
time is spent waiting (pings, captures, convergence) while the other CPU
is idle: measured in the guest, two fig6 runs side by side took 95 s
against 80 s for one.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_JOBS = 2
STOP_TIMEOUT = 180.0       # a run tears its lab down when interrupted


def jobs() -> int:
    """How many runs at once: IIPTRAN_JOBS, else two."""
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
    overrides: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    weight: int = 1                   # how many of the pool's places it takes (a lab that measures timing: 2)
    expected: float = 0.0             # seconds it is expected to take (longest first), 0: unknown
    page: bool = True                 # write index.html (False: whoever judges the run writes it)
    returncode: int | None = None
    seconds: float = 0.0

    @property
    def log(self) -> Path:
        return self.report / "run.log"

    def spec(self) -> str:
        return json.dumps({"topology": self.topology, "lab": self.lab, "report": str(self.report),
                           "overrides": self.overrides, "fault": self.fault, "page": self.page})


class _Worker:
    def __init__(self):
        # Wide lines: pytest's short summary (FAILED id - message) keeps the
        # message, which is what a CI log shows of a failed run.
        self.process = subprocess.Popen([sys.executable, "-m", "testbed.batch"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, start_new_session=True,
                                        env={**os.environ, "COLUMNS": "240"})

    def run(self, run: Run, quiet_over=lambda: None) -> int:
        """The run's exit code; `quiet_over` is called if, before it ends, the
        run says its deadline checks are done (testbed/quiet.py)."""
        self.process.stdin.write(run.spec() + "\n")
        self.process.stdin.flush()
        while True:
            answer = self.process.stdout.readline()
            if not answer:
                raise RuntimeError(f"the suite worker for {run.title} exited (code {self.process.wait()}); "
                                   f"see {run.log}")
            said = json.loads(answer)
            if "returncode" in said:
                return int(said["returncode"])
            quiet_over()

    def close(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        self.process.wait()

    def interrupt(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=STOP_TIMEOUT)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


FAILURE_LINES = 12
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def why_it_failed(run: Run, limit: int = FAILURE_LINES) -> list[str]:
    """What a failed run's log says about it, for a CI log that shows no
    report: pytest's short summary lines (FAILED/ERROR id - message) and
    any stop, else the log's last lines."""
    try:
        lines = COLOUR.sub("", run.log.read_text(errors="replace")).splitlines()
    except OSError as exc:
        return [f"no log ({exc.strerror})"]
    said = [line for line in lines if line.startswith(("FAILED ", "ERROR ", "iiptran: the run stopped"))]
    return (said or lines)[-limit:]


def print_failures(runs: list[Run]) -> None:
    """Each failed run's title, log and why_it_failed lines."""
    for run in runs:
        if run.returncode != 0:
            print(f"{run.title} ({run.log}):", *(f"  {line}" for line in why_it_failed(run)), sep="\n")


def previous_seconds(run: Run) -> float | None:
    """What the run's tests took last time (its report folder's results.json)."""
    try:
        tests = json.loads((run.report / "results.json").read_text())["tests"].values()
        return sum(t["seconds"] for t in tests) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _Places:
    """The pool's places: a run starts once its weight fits beside the runs
    going on (a lab that measures a failover takes two of three, so that at
    most one other lab competes with it for the guest's CPUs). Runs are
    taken in the order given; a one-place run may go past a run that does
    not fit yet, but never past a waiting two-place run: whenever one place
    frees, another run would take it, and the two-place run would wait to
    the end of the pool (seen: three failover labs left to the last ten
    minutes, beside another guest, all three failing on a starved CPU)."""

    def __init__(self, runs: list[Run], capacity: int):
        self.todo = list(enumerate(runs, 1))
        self.capacity, self.load = capacity, 0
        self.held: dict[int, int] = {}          # id(run) -> places it holds now
        self.lock = threading.Condition()

    def take(self) -> tuple[int, Run] | None:
        with self.lock:
            while self.todo:
                for position, (index, run) in enumerate(self.todo):
                    if self.load + min(run.weight, self.capacity) <= self.capacity:
                        self.held[id(run)] = min(run.weight, self.capacity)
                        self.load += self.held[id(run)]
                        return self.todo.pop(position)
                    if run.weight > 1:
                        break
                self.lock.wait()
            return None

    def keep_one(self, run: Run) -> None:
        """The run goes on in one place (its deadline checks are done)."""
        with self.lock:
            self.load -= self.held[id(run)] - 1
            self.held[id(run)] = 1
            self.lock.notify_all()

    def give_back(self, run: Run) -> None:
        with self.lock:
            self.load -= self.held.pop(id(run), 0)
            self.lock.notify_all()

    def drop_all(self) -> None:
        with self.lock:
            self.todo.clear()
            self.lock.notify_all()


def run_all(runs: list[Run], workers: int | None = None, title: str = "batch") -> list[Run]:
    """Run them, `workers` places at a time (a run takes `weight` places
    until it says its deadline checks are done); results in the order given."""
    from testbed.progress import Progress
    count = min(workers or jobs(), len(runs)) or 1
    places = _Places(runs, count)
    started = time.monotonic()
    previous = {run.title: s for run in runs if (s := previous_seconds(run) or run.expected)}
    progress = Progress(f"{title} of {len(runs)} runs", [run.title for run in runs], previous, workers=count,
                        say_starts=True)
    pool = [_Worker() for _ in range(count)]
    failures: list[BaseException] = []

    def serve(worker: _Worker) -> None:
        while (taken := places.take()) is not None:
            index, run = taken
            try:
                progress.start(run.title, f"[{index}/{len(runs)}] {run.title}")
                began = time.monotonic()
                run.returncode = worker.run(run, quiet_over=lambda: places.keep_one(run))
                run.seconds = round(time.monotonic() - began, 1)
                verdict = "passed" if run.returncode == 0 else f"exit {run.returncode}"
                progress.finish(run.title, f"{run.title} (log: {run.log})", verdict)
            except BaseException as exc:
                # Reported after every worker has stopped. No run starts
                # after it: a worker gone with places held would leave the
                # others waiting for them until the CI's own limit.
                failures.append(exc)
                places.drop_all()
                return
            finally:
                places.give_back(run)

    threads = [threading.Thread(target=serve, args=(worker,), daemon=True) for worker in pool]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    except BaseException:
        progress.close()
        # Ctrl-C or SIGTERM: each worker is interrupted, so that its run
        # tears its lab down, and no new run starts.
        places.drop_all()
        for worker in pool:
            worker.interrupt()
        raise
    progress.close()
    for worker in pool:
        worker.close()
    if failures:
        raise failures[0]
    print(f"iiptran: {len(runs)} runs in {time.monotonic() - started:.0f} s, {count} places", flush=True)
    return runs


def serve_runs() -> int:
    """A worker: read run specs (JSON lines) from stdin, run each suite
    in-process with its output in the run's log, answer with its exit code."""
    os.environ["IIPTRAN_BATCH_WORKER"] = "1"
    from testbed.suite import run_suite
    answers = os.fdopen(os.dup(1), "w")
    try:
        return _serve(answers, run_suite)
    except KeyboardInterrupt:
        return 130


def _cpu() -> dict[str, float]:
    """CPU seconds this worker (the suite's Python) and the programs it ran
    and reaped (daemons, tcpdump, ip, ping) have used so far."""
    import resource
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"suite_s": me.ru_utime + me.ru_stime, "programs_s": children.ru_utime + children.ru_stime}


def _say(answers, what: dict) -> None:
    answers.write(json.dumps(what) + "\n")
    answers.flush()


def _serve(answers, run_suite) -> int:
    from testbed import quiet
    for line in sys.stdin:
        spec = json.loads(line)
        report = Path(spec["report"])
        report.mkdir(parents=True, exist_ok=True)
        saved = os.dup(1), os.dup(2)
        before = _cpu()
        with (report / "run.log").open("w") as log:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                with quiet.listened(lambda: _say(answers, {"quiet_over": True})):
                    code = run_suite(report, topology=spec["topology"], name=spec["lab"], overrides=spec["overrides"],
                                     fault=spec["fault"], page=spec.get("page", True))
            except BaseException as exc:       # the run is over either way; say why in its log
                print(f"iiptran: the run stopped: {type(exc).__name__}: {exc}", flush=True)
                code = 130 if isinstance(exc, KeyboardInterrupt) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        spent = {key: round(value - before[key], 1) for key, value in _cpu().items()}
        (report / "cpu.json").write_text(json.dumps(spent) + "\n")
        _say(answers, {"returncode": code})
        if code == 130 or code == 2:
            return code          # interrupted: no further run
    return 0


if __name__ == "__main__":
    sys.exit(serve_runs())
