"""The implementation matrix (`iiptran implementations fig6`): the same suite
against several implementations of IIPtran, one column each
(conformance/implementations.yaml): the reference (manual keys, FRR,
Debian's 6.1 kernel), another routing stack, mixed stacks, IKEv2, another
kernel. Every cell is compared with the reference's verdict; a difference
not explained in the file fails the matrix.

A guest boots one kernel, so the implementations run in one batch per
kernel series, each batch this same command (`--inner`) in its own guest.
Natively the running kernel is the only one: an implementation that names
another series is reported as not run, with that reason.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from tabulate import tabulate

from testbed import yamlfile
from testbed.errors import TestbedError, UserError
from testbed.paths import project_file
from testbed.verdicts import DEVIATION, JUDGED, NOT_RUN
from testbed.requirements import CATALOGUE, catalogue

IMPLEMENTATIONS = CATALOGUE.with_name("implementations.yaml")
REFERENCE = "reference"
SAME, REFERENCE_CELL, ONLY_HERE, EXPLAINED, DIFFERS = (
    "as the reference", "reference", "applies here only", "differs (explained)", "differs")
RECORDED, NOT_CHECKED = "known deviation (recorded)", "not checked"
STOP_TIMEOUT = 240.0        # an interrupted batch tears its labs and its guest down


class Implementation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    summary: str
    overrides: dict[str, str] = {}
    kernel: str | None = None
    differs: dict[str, str] = {}          # requirement -> why its verdict is not the reference's


def load_implementations(path: Path = IMPLEMENTATIONS) -> dict[str, Implementation]:
    from testbed.vm.kernel_cache import SERIES
    try:
        found = {name: Implementation.model_validate(entry) for name, entry in yamlfile.parse(path.read_text()).items()}
    except (ValidationError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: invalid implementations: {exc}") from None
    if REFERENCE not in found or not found[REFERENCE].kernel:
        raise TestbedError(f"{path}: needs a '{REFERENCE}' entry that names its kernel")
    for name, entry in found.items():
        unknown = sorted(set(entry.differs) - set(catalogue()))
        if unknown:
            raise TestbedError(f"{path}: {name}: 'differs' names unknown requirements {unknown}")
        if entry.kernel and entry.kernel not in SERIES:
            raise TestbedError(f"{path}: {name}: kernel '{entry.kernel}' is none of {', '.join(SERIES)}")
    return found


def chosen(found: dict[str, Implementation], only: list[str] | None) -> list[str]:
    names = only or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UserError(f"implementations --only: unknown {unknown} (known: {', '.join(found)})")
    return [REFERENCE] + [n for n in names if n != REFERENCE]        # every cell needs the reference


def overrides_of(found: dict[str, Implementation], name: str) -> dict[str, str]:
    """The reference's overrides, then the implementation's (a hook's path is from the project's folder)."""
    merged = {**found[REFERENCE].overrides, **found[name].overrides}
    if merged.get("configure"):
        merged["configure"] = project_file(merged["configure"])
    return merged


def kernel_of(found: dict[str, Implementation], name: str) -> str:
    return found[name].kernel or found[REFERENCE].kernel


def check_overrides(topology: str, found: dict[str, Implementation], names: list[str]) -> None:
    """Each implementation's overrides fit the topology: a clear error, exit 2, before anything boots."""
    from testbed.topology.overrides import with_overrides
    from testbed.topology.loader import load
    for name in names:
        try:
            with_overrides(load(topology), overrides_of(found, name))
        except UserError as exc:
            raise UserError(f"{IMPLEMENTATIONS}: {name}: {exc}") from None


# -- running ------------------------------------------------------------------

def kernel_groups(found: dict[str, Implementation], names: list[str]) -> dict[str, list[str]]:
    """The implementations per kernel series they need (one guest each)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(kernel_of(found, name), []).append(name)
    return groups


def not_run_natively(found: dict[str, Implementation], names: list[str]) -> dict[str, str]:
    """Natively the running kernel is the only one: those needing another series, and why."""
    return {name: f"natively the running kernel ({os.uname().release}) is the only one; boot "
                  f"{kernel_of(found, name)} with --runner guest"
            for name in names if kernel_of(found, name) != found[REFERENCE].kernel}


def run_outer(topology: str, names: list[str], report_dir: Path, native: bool, runner: str) -> int:
    """One batch per kernel series (each in its own guest), then the matrix."""
    found = load_implementations()
    report_dir.mkdir(parents=True, exist_ok=True)
    skipped = not_run_natively(found, names) if native else {}
    env = {key: value for key, value in os.environ.items() if key != "IIPTRAN_KERNEL"}
    for kernel, members in kernel_groups(found, names).items():
        if any(name in skipped for name in members):
            continue
        argv = [sys.executable, "-m", "testbed", "--runner", runner, *([] if native else ["--kernel", kernel]),
                "implementations", topology, "--inner", "--only", ",".join(members), "--report", str(report_dir)]
        print(f"iiptran: implementations on kernel {kernel if not native else os.uname().release}: "
              f"{', '.join(members)}", flush=True)
        _run_batch(argv, env)                # each run's verdicts are read from its results.json
    return 0 if judge_implementations(report_dir, names, skipped) else 1


def judge_implementations(report_dir: Path, names: list[str], skipped: dict[str, str]) -> bool:
    """The implementation matrix from the runs' results: table, matrix.json, page."""
    matrix = build_matrix(report_dir, names, load_implementations(), skipped)
    (report_dir / "matrix.json").write_text(json.dumps(matrix, indent=1) + "\n")
    from testbed.report.implementations_page import write_page
    page = write_page(report_dir, matrix)
    print(matrix_table(matrix))
    print(f"iiptran: implementation matrix written to {page} (one report per implementation beside it)")
    return matrix["ok"]


def _run_batch(argv: list[str], env: dict[str, str]) -> int:
    """One kernel's batch. In a session of its own, so that a Ctrl-C or
    SIGTERM reaches it once, from here, and it tears its labs and guest down."""
    child = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
        raise


def implementation_runs(topology: str, names: list[str], report_dir: Path) -> list:
    """One run per implementation (of one kernel series), placed longest first."""
    from testbed.batch import Run
    from testbed.topology.overrides import with_overrides
    from testbed.run_order import longest_first, placed
    from testbed.topology.loader import load
    found = load_implementations()
    return longest_first([placed(Run(name, topology, f"im{index}", report_dir / name, overrides_of(found, name)),
                                 with_overrides(load(topology), overrides_of(found, name)))
                          for index, name in enumerate(names)])


def run_inner(topology: str, names: list[str], report_dir: Path) -> int:
    """The implementations of one kernel series, in one batch, here."""
    from testbed.batch import print_failures, run_all
    runs = run_all(implementation_runs(topology, names, report_dir), title="implementations")
    print_failures(runs)         # the matrix judges; a CI log shows why a run failed
    return 0


# -- judging ------------------------------------------------------------------

def judge(verdict: str, reference: str | None, explained: bool, tests: int) -> str:
    if verdict == NOT_RUN and not tests:
        return NOT_CHECKED              # no test at all: a run that broke before collecting
    if reference is None:
        return REFERENCE_CELL
    if verdict == reference:
        return SAME
    if verdict == DEVIATION:
        return RECORDED                 # conformance/deviations.yaml says why; the evidence matched its signature
    if explained:
        return EXPLAINED
    if reference == NOT_RUN and verdict in JUDGED:
        return ONLY_HERE                # e.g. the IKE requirements, where IKE keys the links
    return DIFFERS


def build_matrix(report_dir: Path, names: list[str], found: dict[str, Implementation],
                 skipped: dict[str, str]) -> dict:
    results, problems = {}, []
    for name in names:
        path = report_dir / name / "results.json"
        if name in skipped:
            continue
        if path.exists():
            results[name] = json.loads(path.read_text())
        else:
            problems.append(f"{name}: the run wrote no results.json (see {report_dir / name / 'run.log'})")
    reference = results.get(REFERENCE, {}).get("requirements", {})
    columns = {}
    for name in names:
        entry = found[name]
        column = {"summary": entry.summary, "kernel": kernel_of(found, name), "overrides": overrides_of(found, name),
                  "report": f"{name}/index.html", "not_run": skipped.get(name, ""), "cells": {},
                  "lab": results.get(name, {}).get("lab", {})}
        for req, cell in results.get(name, {}).get("requirements", {}).items():
            ref = None if name == REFERENCE else reference.get(req, {}).get("verdict", "not run")
            judgement = judge(cell["verdict"], ref, req in entry.differs, len(cell["tests"]))
            column["cells"][req] = {"verdict": cell["verdict"], "judgement": judgement, "reference": ref,
                                    "why": entry.differs.get(req, "")}
            if judgement in (DIFFERS, NOT_CHECKED):
                problems.append(f"{name}: {req} {cell['verdict']}" + (f", the reference {ref}" if ref else
                                                                       " (no test of the run covers it)"))
        columns[name] = column
    return {"implementations": columns, "problems": problems, "ok": not problems,
            "requirements": {r.id: {"rfc": r.rfc, "statement": r.statement} for r in catalogue().values()}}


def _cell_text(cell: dict | None, column: dict) -> str:
    if cell is None:
        return "not run" if column["not_run"] else "-"
    mark = {SAME: "", REFERENCE_CELL: "", ONLY_HERE: " (here only)", EXPLAINED: " (explained)",
            DIFFERS: " (!= reference)", RECORDED: "", NOT_CHECKED: " (not checked)"}[cell["judgement"]]
    return f"{cell['verdict']}{mark}"


def matrix_table(matrix: dict) -> str:
    columns = matrix["implementations"]
    rows = [[req, *(_cell_text(c["cells"].get(req), c) for c in columns.values())] for req in matrix["requirements"]]
    notes = [f"{name}: not run: {c['not_run']}" for name, c in columns.items() if c["not_run"]]
    verdict = "every verdict as the reference's, or explained" if matrix["ok"] else "; ".join(matrix["problems"])
    return "\n".join([tabulate(rows, headers=["requirement", *columns]), *notes, f"implementations: {verdict}"])
