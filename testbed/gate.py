"""`iiptran gate`: everything `make test` judges, run as one plan
(conformance/gate.yaml): the mode matrix, the implementation matrix, the
variants, the negative profiles and the clean-up self-test.

Every suite run of every stage goes into one pool per kernel series, in
one guest (natively: here), longest first, three places at a time (a lab
that measures a failover takes two; testbed/run_order.py): no stage waits
for another's last run, and the guest boots and the suite's imports are
paid once per series, not once per stage. A run two stages ask for with
the same lab (the mode matrix's fig6 iiptran column and the implementation
matrix's reference) runs once; its report folder is copied to the other.
The self-test, which needs a machine to itself, runs in the default
series' guest once its pool's labs are gone (not in 6.12: under emulation
it once oopsed as Docker started): no guest boot of its own, and the
Docker image the pool imported is still on the guest's engine. Then, one
after another, the other kernel series' pools. Each stage is then judged
from its runs' results, as its own command judges it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from testbed import yamlfile
from testbed.errors import UserError
from testbed.paths import PROJECT, REPORTS, SELFTEST_FIG6_REPORT
from testbed.topology.model import DATAPATH_MODES

PLAN = PROJECT / "conformance" / "gate.yaml"
GATE_REPORTS = REPORTS / "gate"
SELFTEST_LOG, SELFTEST_CODE = GATE_REPORTS / "selftest.log", GATE_REPORTS / "selftest.json"
JOBS, GUEST_MEMORY_MB = "3", "3072"


class GatePlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    matrix: list[str] = []                     # topologies for the datapath mode matrix
    implementations: str | None = None         # the topology of the implementation matrix
    variants: list[str] = []                   # batch variants, topology[:field=value,...]
    compare: list[tuple[str, str]] = []        # report folders (under reports/) whose verdicts must agree
    profiles: bool = False                     # every negative profile
    selftest: bool = False                     # tests/kernel, after the suite runs


def load_plan(path: Path) -> GatePlan:
    try:
        return GatePlan.model_validate(yamlfile.parse(path.read_text()) or {})
    except FileNotFoundError:
        raise UserError(f"{path}: no such gate plan") from None
    except (ValidationError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: invalid gate plan: {exc}") from None


class Stages:
    """The plan's runs, per stage, built as each stage's own command builds them."""

    def __init__(self, plan: GatePlan):
        from testbed import implementations, matrix, profiles, variants
        from testbed.topology.loader import load
        from testbed.vm.kernel_cache import DEFAULT_SERIES
        self.plan = plan
        # The stages other than the implementation matrix run on the default
        # series, whatever kernel this process was told to boot.
        self.default_kernel = DEFAULT_SERIES
        self.matrix_dirs = {t: REPORTS / f"{load(t).name}-matrix" for t in plan.matrix}
        self.runs = {"matrix": matrix.matrix_runs(self.matrix_dirs, list(DATAPATH_MODES))}
        self.kernels = {id(run): self.default_kernel for run in self.runs["matrix"]}
        if plan.implementations:
            found = implementations.load_implementations()
            self.implementation_names = implementations.chosen(found, None)
            implementations.check_overrides(plan.implementations, found, self.implementation_names)
            self.implementation_dir = REPORTS / f"{load(plan.implementations).name}-implementations"
            self.runs["implementations"] = implementations.implementation_runs(
                plan.implementations, self.implementation_names, self.implementation_dir)
            self.kernels |= {id(run): implementations.kernel_of(found, run.report.name)
                             for run in self.runs["implementations"]}
        self.runs["variants"] = variants.variant_runs(plan.variants, REPORTS)
        self.runs["profiles"] = profiles.profile_runs(REPORTS / "profiles", "profile") if plan.profiles else []
        for stage in ("variants", "profiles"):
            self.kernels |= {id(run): self.default_kernel for run in self.runs[stage]}

    def all(self) -> list:
        return [run for runs in self.runs.values() for run in runs]

    def kernel(self, run) -> str:
        return self.kernels[id(run)]

    def fig6_report(self) -> Path | None:
        """The matrix's fig6 iiptran run, whose artifacts the self-test checks (None: no such run)."""
        from testbed.topology.loader import load
        return next((folder / "iiptran" for topology, folder in self.matrix_dirs.items()
                     if load(topology).name == "fig6"), None)

    def series(self) -> list[str]:
        found = sorted({self.kernel(run) for run in self.all()}, key=lambda k: k != self.default_kernel)
        return found or [self.default_kernel]


def identity(run, kernel: str) -> str:
    """What makes two runs the same run: the lab as built (topology with its
    overrides), the fault, the kernel."""
    from testbed.topology.overrides import with_overrides
    from testbed.topology.loader import load
    lab = with_overrides(load(run.topology), run.overrides).model_dump(mode="json", exclude={"name"})
    return json.dumps([lab, run.fault, kernel], sort_keys=True)


def unique(runs: list, kernel: str) -> tuple[list, dict[int, object]]:
    """The runs to make, and for each other run the one it is a copy of."""
    made, copies, seen = [], {}, {}
    for run in runs:
        key = identity(run, kernel)
        if key in seen:
            copies[id(run)] = seen[key]
        else:
            seen[key] = run
            made.append(run)
    return made, copies


def runs_file(kernel: str) -> Path:
    return GATE_REPORTS / f"runs-{kernel}.json"


def run_inner(plan_path: Path, kernel: str, selftest: bool = False) -> int:
    """One kernel series' runs, in one pool, here; what each did in
    runs-<series>.json; then, if asked, the self-test."""
    from testbed.batch import print_failures, run_all
    from testbed.run_order import longest_first
    stages = Stages(load_plan(plan_path))
    mine = [run for run in stages.all() if stages.kernel(run) == kernel]
    for run in mine:
        run.page = False            # written natively by the judge (testbed/gate_judge.py)
    made, copies = unique(mine, kernel)
    made = longest_first(made)          # across stages: each stage's own order is not the pool's
    GATE_REPORTS.mkdir(parents=True, exist_ok=True)
    run_all(made, title=f"gate (kernel {kernel})")
    for run in mine:
        original = copies.get(id(run))
        if original is not None:
            shutil.rmtree(run.report, ignore_errors=True)
            shutil.copytree(original.report, run.report)
            run.returncode, run.seconds = original.returncode, original.seconds
    GATE_REPORTS.mkdir(parents=True, exist_ok=True)
    runs_file(kernel).write_text(json.dumps({str(run.report): {"returncode": run.returncode, "seconds": run.seconds}
                                             for run in mine}, indent=1) + "\n")
    print_failures(made)
    if selftest:
        run_selftest(stages.fig6_report())
    return 0


def run_selftest(fig6_report: Path | None) -> int:
    """The clean-up self-test (tests/kernel), here, on a machine no lab
    runs on any more; given the report of a fig6 run the pool made, it
    checks that run's artifacts instead of making a fig6 run of its own.
    Its log and exit code go beside the runs' (SELFTEST_LOG, SELFTEST_CODE)."""
    env = {**os.environ, **({SELFTEST_FIG6_REPORT: str(fig6_report)} if fig6_report else {})}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/kernel"]
    print(f"iiptran: gate: the self-test ({SELFTEST_LOG})", flush=True)
    with SELFTEST_LOG.open("w") as out:
        process = subprocess.Popen(argv, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = process.wait()
        except KeyboardInterrupt:             # its labs torn down by itself, not killed mid-way
            process.send_signal(signal.SIGINT)
            process.wait()
            raise
    SELFTEST_CODE.write_text(json.dumps({"returncode": code}) + "\n")
    return code


def _selftest_outcome() -> int:
    """The self-test's exit code as the pool's guest left it (1 if it did not get to run)."""
    _print_tail("the self-test", SELFTEST_LOG)
    try:
        return int(json.loads(SELFTEST_CODE.read_text())["returncode"])
    except (OSError, ValueError, KeyError):
        print("iiptran: gate: the self-test did not finish (no exit code written)", flush=True)
        return 1


def _print_tail(what: str, log: Path) -> None:
    """The last lines of what ran after the pool, as the gate's log shows it."""
    tail = "\n".join(log.read_text().splitlines()[-12:]) if log.exists() else "(no log)"
    print(f"iiptran: gate: {what} ({log}):\n{tail}", flush=True)


def _series_argv(runner: str, native: bool, kernel: str, plan_path: Path, selftest: bool = False) -> list[str]:
    return [sys.executable, "-m", "testbed", "--runner", runner, *([] if native else ["--kernel", kernel]),
            "gate", str(plan_path), "--inner", kernel, *(["--selftest"] if selftest else [])]


def run_outer(plan_path: Path, native: bool, runner: str) -> int:
    """The default series' pool and after it the self-test, in one guest
    (or natively), then one after another the other series' pools, each in
    its guest. Never beside each other: under emulation every guest is
    CPU-bound, so a second one gains nothing and starves the labs of the
    first (seen: with the self-test's guest beside the pool, runs took
    twice as long, a profile's forged ESP was overtaken by the sender's own
    traffic, hrtimer interrupts took 48 ms). Then every stage judged here."""
    plan = load_plan(plan_path)
    stages = Stages(plan)             # bad input: a clear error, exit 2, before anything boots
    env = {**os.environ, "IIPTRAN_JOBS": os.environ.get("IIPTRAN_JOBS") or JOBS,
           "IIPTRAN_GUEST_MEMORY": os.environ.get("IIPTRAN_GUEST_MEMORY") or GUEST_MEMORY_MB,
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("IIPTRAN_KERNEL", None)
    GATE_REPORTS.mkdir(parents=True, exist_ok=True)
    first, *others = stages.series()
    skipped = {kernel: f"natively the running kernel ({os.uname().release}) is the only one; boot {kernel} with "
               f"--runner guest" for kernel in others} if native else {}
    chain = [(f"kernel {kernel}", _series_argv(runner, native, kernel, plan_path), GATE_REPORTS / f"kernel-{kernel}.log")
             for kernel in others if kernel not in skipped]
    print(f"iiptran: gate: {len(stages.all())} runs; kernel {first} first", flush=True)
    SELFTEST_CODE.unlink(missing_ok=True)       # an earlier gate's: never read as this one's
    pool = subprocess.Popen(_series_argv(runner, native, first, plan_path, plan.selftest), env=env, cwd=PROJECT)
    after = _After(chain, env)
    codes = {}
    try:
        codes["pool"] = pool.wait()
        if plan.selftest:
            codes["the self-test"] = _selftest_outcome()
        if chain:
            print("iiptran: gate: now " + ", then ".join(f"{what} ({log})" for what, _, log in chain), flush=True)
            after.start()
        codes.update(after.wait())
    except KeyboardInterrupt:
        after.interrupt()
        if pool.poll() is None:
            pool.send_signal(signal.SIGINT)
        pool.wait()
        raise
    from testbed.gate_judge import judge_all
    ok = judge_all(stages, skipped) and not any(codes.values())
    print("gate: " + ("every stage passed" if ok else "failed: " + ", ".join(
        [name for name, code in codes.items() if code] or ["see the stages above"])))
    return 0 if ok else 1


class _After:
    """Commands run one after another once the pool is done, each with its log."""

    def __init__(self, chain: list[tuple[str, list[str], Path]], env: dict):
        self.chain, self.env = chain, env
        self.codes: dict[str, int] = {}
        self.current: subprocess.Popen | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        for what, argv, log in self.chain:
            if self.stopped:
                return
            self.current, _ = _start(argv, self.env, log)
            self.codes[what] = self.current.wait()

    def wait(self) -> dict[str, int]:
        while self.thread.is_alive():          # joined in slices: Ctrl-C stays deliverable
            self.thread.join(timeout=0.5)
        for what, _, log in self.chain:
            if what in self.codes:
                _print_tail(what, log)
        return self.codes

    def interrupt(self) -> None:
        """Ctrl-C: the command going on tears its labs and guest down (its own session); none follows."""
        self.stopped = True
        if self.current is not None and self.current.poll() is None:
            self.current.send_signal(signal.SIGINT)
            self.current.wait()


def _start(argv: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, Path]:
    with log.open("w") as out:
        return subprocess.Popen(argv, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True), log
