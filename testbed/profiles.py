"""Negative profiles: the suite's proof that it can tell broken from sound.

Each profile is a built-in broken IIPtran configuration (a fault of
testbed/faults applied to a lab). The whole suite runs against it, and
exactly the requirements conformance/profiles.yaml lists for it must
fail (or could not be performed, which is a failure too); every other
requirement must pass, be not applicable as it is in a sound run, or be a
known deviation whose signature the evidence matches. A profile may instead expect the
bring-up itself to fail, with an error naming what is wrong (an IKE peer
that cannot authenticate), within bounded time.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from tabulate import tabulate

from testbed import yamlfile
from testbed.errors import TestbedError, UserError
from testbed.paths import project_file
from testbed.requirements import CATALOGUE, catalogue
from testbed.topology.model import IkeDaemonName, Keying
from testbed.verdicts import FAILING

PROFILES = CATALOGUE.with_name("profiles.yaml")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    why: str
    breaks: list[str] = []
    topology: str | None = None               # another topology than the file's default
    keying: Keying | None = None              # the lab's keying for this profile
    ike: IkeDaemonName | None = None          # the lab's IKE daemon for this profile
    fault: str | None = None                  # the fault it applies, if not the one of its own name
    fails_bringup: str | None = None          # a regex the bring-up's error must match
    # The broken configuration is a node configuration program (path from the
    # project's folder) every VN node runs, instead of a fault of testbed/faults.
    configure: str | None = None

    @model_validator(mode="after")
    def _one_expectation(self) -> "Profile":
        if bool(self.breaks) == bool(self.fails_bringup):
            raise ValueError("give either 'breaks' (requirements that fail) or 'fails_bringup' (the error)")
        return self

    def fault_of(self, name: str) -> str | None:
        """The fault of testbed/faults the profile `name` applies (None: a configure hook breaks it)."""
        return None if self.configure else (self.fault or name)


class ProfileSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    topology: str
    profiles: dict[str, Profile]


def load_profiles(path: Path = PROFILES) -> ProfileSet:
    from testbed.faults import FAULTS
    try:
        found = ProfileSet.model_validate(yamlfile.parse(path.read_text()))
    except (ValidationError, TypeError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: invalid negative profiles: {exc}") from None
    known = catalogue()
    for name, profile in found.profiles.items():
        if not profile.configure and profile.fault_of(name) not in FAULTS:
            raise TestbedError(f"{path}: profile '{name}': '{profile.fault_of(name)}' is no fault of testbed/faults "
                               "and it names no 'configure' hook")
        if profile.configure and not os.access(project_file(profile.configure), os.X_OK):
            raise TestbedError(f"{path}: profile '{name}': no executable {project_file(profile.configure)}")
        unknown = [r for r in profile.breaks if r not in known]
        if unknown:
            raise TestbedError(f"{path}: profile '{name}' names unknown requirements {unknown}")
    return found


def verdict_problems(name: str, expected: list[str], results: dict) -> list[str]:
    """Where a profile's run differs from 'exactly `expected` fail, the rest pass'."""
    problems = []
    for req, entry in results["requirements"].items():
        verdict, checked = entry["verdict"], bool(entry["tests"])
        if req in expected and verdict not in FAILING:
            problems.append(f"{name}: {req} {verdict}, but this profile breaks it")
        elif req not in expected and verdict in FAILING:
            problems.append(f"{name}: {req} {verdict}, but this profile should leave it alone"
                            + (f" ({entry['reason'][:300]})" if entry.get("reason") else ""))
        elif req not in expected and not checked:
            problems.append(f"{name}: {req} was not checked")
    return problems


def bringup_problems(name: str, pattern: str, results: dict) -> list[str]:
    """A profile whose bring-up must fail: no test ran (every one errored at
    set-up, or was not applicable to the topology), with the expected words."""
    tests = results["tests"].values()
    messages = [t["message"] for t in tests if t["outcome"] == "error"]
    if not messages or any(t["outcome"] not in ("error", "not run") for t in tests):
        return [f"{name}: the bring-up was expected to fail, but tests ran"]
    if not any(re.search(pattern, m) for m in messages):
        return [f"{name}: the bring-up failed, but not with /{pattern}/: {messages[0][:300]}"]
    return []


def chosen_profiles(spec: ProfileSet, only: list[str] | None) -> list[str]:
    """`only` (all profiles if None), after checking every name is a profile."""
    unknown = [p for p in only or [] if p not in spec.profiles]
    if unknown:
        raise UserError(f"profiles --only: unknown profiles {unknown} (known: {', '.join(spec.profiles)})")
    return only or list(spec.profiles)


def profile_runs(report_dir: Path, name: str, only: list[str] | None = None) -> list:
    """One run per chosen profile (its lab name `name` + index), placed
    longest first (testbed/run_order.py)."""
    from testbed.batch import Run
    from testbed.topology.overrides import with_overrides
    from testbed.run_order import longest_first, placed
    from testbed.topology.loader import load
    spec = load_profiles()
    runs = []
    for index, profile in enumerate(chosen_profiles(spec, only)):
        entry = spec.profiles[profile]
        overrides = {key: value for key, value in (("keying", entry.keying), ("ike", entry.ike)) if value}
        if entry.configure:
            overrides["configure"] = project_file(entry.configure)
        topology = entry.topology or spec.topology
        run = Run(f"negative profile {profile}", topology, f"{name}{index}", report_dir / profile, overrides,
                  entry.fault_of(profile))
        runs.append(placed(run, with_overrides(load(topology), overrides), refused=bool(entry.fails_bringup)))
    return longest_first(runs)


def profile_of(run) -> str:
    return run.report.name


def judge_profiles(runs: list) -> bool:
    """Each profile's run against what it must break; a table, then the verdict."""
    spec = load_profiles()
    rows, problems = [], []
    for run in sorted(runs, key=lambda r: list(spec.profiles).index(profile_of(r))):
        profile = profile_of(run)
        entry = spec.profiles[profile]
        results_file = run.report / "results.json"
        if not results_file.exists():
            problems.append(f"{profile}: the run wrote no results.json (log: {run.log})")
            continue
        results = json.loads(results_file.read_text())
        found = (bringup_problems(profile, entry.fails_bringup, results) if entry.fails_bringup
                 else verdict_problems(profile, entry.breaks, results))
        problems += found
        failed = sorted(r for r, e in results["requirements"].items() if e["verdict"] in FAILING)
        shown = "bring-up failed" if entry.fails_bringup and not found else ", ".join(failed) or "-"
        rows.append([profile, shown, "as expected" if not found else f"{len(found)} wrong", f"{run.seconds:.0f} s"])
    print(tabulate(rows, headers=["negative profile", "requirements failed", "verdict", "time"]))
    print("profiles: " + ("each broke exactly what it should" if not problems else "\n  ".join(["", *problems])))
    return not problems


def run_profiles(report_dir: Path, name: str, only: list[str] | None = None) -> int:
    from testbed.batch import run_all
    runs = run_all(profile_runs(report_dir, name, only), title="profiles")
    return 0 if judge_profiles(runs) else 1
