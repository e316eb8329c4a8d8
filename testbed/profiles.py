"""Negative profiles: the suite's proof that it can tell broken from sound.

Each profile is a built-in broken IIPtran configuration (a fault of
testbed/faults.py applied to a lab once it is up). The whole suite runs
against it, and exactly the requirements conformance/profiles.yaml lists
for it must fail; every other requirement must pass, or be not applicable
as it is in a sound run.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from tabulate import tabulate

from testbed.errors import TestbedError, UserError
from testbed.requirements import CATALOGUE, catalogue

PROFILES = CATALOGUE.with_name("profiles.yaml")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    why: str
    breaks: list[str]


class ProfileSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    topology: str
    profiles: dict[str, Profile]


def load_profiles(path: Path = PROFILES) -> ProfileSet:
    from testbed.faults import FAULTS
    try:
        found = ProfileSet.model_validate(yaml.safe_load(path.read_text()))
    except (ValidationError, TypeError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: invalid negative profiles: {exc}") from None
    known = catalogue()
    for name, profile in found.profiles.items():
        if name not in FAULTS:
            raise TestbedError(f"{path}: profile '{name}' is no fault of testbed/faults.py")
        unknown = [r for r in profile.breaks if r not in known]
        if unknown:
            raise TestbedError(f"{path}: profile '{name}' names unknown requirements {unknown}")
    return found


def verdict_problems(name: str, expected: list[str], results: dict) -> list[str]:
    """Where a profile's run differs from 'exactly `expected` fail, the rest pass'."""
    problems = []
    for req, entry in results["requirements"].items():
        verdict, checked = entry["verdict"], bool(entry["tests"])
        if req in expected and verdict != "failed":
            problems.append(f"{name}: {req} {verdict}, but this profile breaks it")
        elif req not in expected and verdict == "failed":
            problems.append(f"{name}: {req} failed, but this profile should leave it alone")
        elif req not in expected and not checked:
            problems.append(f"{name}: {req} was not checked")
    return problems


def chosen_profiles(spec: ProfileSet, only: list[str] | None) -> list[str]:
    """`only` (all profiles if None), after checking every name is a profile."""
    unknown = [p for p in only or [] if p not in spec.profiles]
    if unknown:
        raise UserError(f"profiles --only: unknown profiles {unknown} (known: {', '.join(spec.profiles)})")
    return only or list(spec.profiles)


def run_profiles(report_dir: Path, name: str, only: list[str] | None = None) -> int:
    from testbed.suite import run_suite
    spec = load_profiles()
    chosen = chosen_profiles(spec, only)
    rows, problems = [], []
    for profile in chosen:
        print(f"iiptran: negative profile {profile} on {spec.topology}", flush=True)
        folder = report_dir / profile
        run_suite(folder, topology=spec.topology, name=name, fault=profile)
        results_file = folder / "results.json"
        if not results_file.exists():
            problems.append(f"{profile}: the run wrote no results.json")
            continue
        results = json.loads(results_file.read_text())
        found = verdict_problems(profile, spec.profiles[profile].breaks, results)
        problems += found
        failed = sorted(r for r, e in results["requirements"].items() if e["verdict"] == "failed")
        rows.append([profile, ", ".join(failed) or "-", "as expected" if not found else f"{len(found)} wrong"])
    print(tabulate(rows, headers=["negative profile", "requirements failed", "verdict"]))
    print("profiles: " + ("each broke exactly what it should" if not problems else "\n  ".join(["", *problems])))
    return 0 if not problems else 1
