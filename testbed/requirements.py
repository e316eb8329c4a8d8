"""The requirement catalogue (conformance/requirements.yaml) as data."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from testbed import yamlfile
from testbed.errors import TestbedError
from testbed.topology.model import ike_daemons, node_routings

CATALOGUE = Path(__file__).resolve().parents[1] / "conformance" / "requirements.yaml"
MODE_PREDICTIONS = CATALOGUE.with_name("modes.yaml")


class Requirement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Z]+-[A-Z0-9.-]+$")
    rfc: list[str] = Field(min_length=1)
    statement: str = Field(min_length=10)
    tests: list[str] = []


@lru_cache(maxsize=None)
def catalogue(path: Path = CATALOGUE) -> dict[str, Requirement]:
    try:
        entries = [Requirement.model_validate(e) for e in yamlfile.parse(path.read_text())]
    except (ValidationError, TypeError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: invalid requirement catalogue: {exc}") from None
    by_id = {e.id: e for e in entries}
    if len(by_id) != len(entries):
        raise TestbedError(f"{path}: a requirement ID is listed twice")
    return by_id


def consistency_problems(entries: dict[str, Requirement], tests: dict[str, list[str]]) -> list[str]:
    """Disagreements between the catalogue and the tests' markers ('file::test' -> IDs)."""
    problems = []
    for test, ids in tests.items():
        if not ids:
            problems.append(f"{test} names no requirement")
        problems += [f"{test} names unknown requirement {i}" for i in ids if i not in entries]
    for req in entries.values():
        if not req.tests:
            problems.append(f"{req.id} has no test")
        for test in req.tests:
            if test not in tests:
                problems.append(f"{req.id} lists {test}, which does not exist")
            elif req.id not in tests[test]:
                problems.append(f"{req.id} lists {test}, which does not name it")
        marked = sorted(t for t, ids in tests.items() if req.id in ids)
        problems += [f"{t} names {req.id} but the catalogue does not list it" for t in marked if t not in req.tests]
    return problems


class ModePrediction(BaseModel):
    """What RFC 3884 predicts for one datapath mode (conformance/modes.yaml)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    summary: str
    predicted_failures: dict[str, str] = {}    # requirement ID -> the RFC's reason
    linux_differs: dict[str, str] = {}         # requirement ID -> what Linux does instead, and why


@lru_cache(maxsize=None)
def mode_predictions(path: Path = MODE_PREDICTIONS) -> dict[str, ModePrediction]:
    try:
        raw = yamlfile.parse(path.read_text())
        predictions = {mode: ModePrediction.model_validate(entry) for mode, entry in raw.items()}
    except (ValidationError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: invalid mode predictions: {exc}") from None
    known = catalogue()
    for mode, prediction in predictions.items():
        for req in [*prediction.predicted_failures, *prediction.linux_differs]:
            if req not in known:
                raise TestbedError(f"{path}: {mode} names unknown requirement {req}")
    return predictions


DEVIATIONS = CATALOGUE.with_name("deviations.yaml")


WHERE_KEYS = ("datapath", "keying", "ike", "routing", "kernel")


class Deviation(BaseModel):
    """Where the kernel departs from an RFC rule (conformance/deviations.yaml).
    The verdict is 'known deviation' only in the labs `where` covers, and
    only when every fact of the `signature` held in the run's evidence;
    any other failure of the check is an ordinary failure, and the RFC's
    behaviour seen where the record covers fails the run (the record is out
    of date)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    rfc: str = Field(min_length=10)           # the rule, quoted
    linux: str = Field(min_length=10)         # what Linux does instead, and why
    evidence: str = Field(min_length=10)      # what a run showed
    # The observable facts that make up the recorded behaviour: name -> what
    # it means. The test that checks the requirement reports each by name.
    signature: dict[str, str] = Field(min_length=1)
    # Lab facts it was recorded for (datapath, keying, ike, routing, kernel series); all if empty.
    where: dict[str, list[str]] = {}
    # The behaviour depends on a race (two daemons' messages crossing): where the record covers
    # the lab, a run that shows the RFC's behaviour passes, noting that the deviation did not show.
    intermittent: bool = False


@lru_cache(maxsize=None)
def deviations(path: Path = DEVIATIONS) -> dict[str, Deviation]:
    if not path.exists():
        return {}
    try:
        raw = yamlfile.parse(path.read_text()) or {}
        found = {req: Deviation.model_validate(entry) for req, entry in raw.items()}
    except (ValidationError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: invalid known deviations: {exc}") from None
    known = catalogue()
    for req, entry in found.items():
        if req not in known:
            raise TestbedError(f"{path}: deviation for unknown requirement {req}")
        unknown = [k for k in entry.where if k not in WHERE_KEYS]
        if unknown:
            raise TestbedError(f"{path}: {req}: 'where' names {unknown}; use {', '.join(WHERE_KEYS)}")
    return found


def kernel_matches(release: str, series: str) -> bool:
    """Is a kernel release ('6.1.0-57-amd64', '6.12.38+deb12-amd64') of a series ('6.1', '6.12')?"""
    return release == series or release.startswith(series + ".") or release.startswith(series + "-")


def deviation_scope(topology, kernel: str) -> dict:
    """The lab facts a deviation's `where` is matched against: sets of the
    datapath, the links' keyings, the IKE daemons ('strongswan', 'libreswan', or
    'libreswan+strongswan' in a lab mixing them), the nodes' routing daemons; the kernel release."""
    keyings = {link.keying or topology.keying for link in topology.virtual_links}
    # IKE daemons as one fact: a record may hold between two libreswans and not across implementations.
    ikes = "+".join(sorted(ike_daemons(topology)))
    return {"datapath": {topology.datapath}, "keying": keyings, "ike": {ikes} if ikes else set(),
            "routing": node_routings(topology),
            "kernel": kernel}


def covers(deviation: Deviation, scope: dict) -> bool:
    """Does the record hold for a lab of this scope? Every fact it names
    must match; a lab whose links mix keyings (or nodes mix routing
    daemons) matches a record of any it uses."""
    for key, values in deviation.where.items():
        if key == "kernel":
            if not any(kernel_matches(scope["kernel"], series) for series in values):
                return False
        elif not scope[key] & set(values):
            return False
    return True


def deviations_for(topology, kernel: str) -> dict[str, Deviation]:
    """The recorded deviations that hold for a lab of this topology (with its
    overrides applied) on this kernel release."""
    scope = deviation_scope(topology, kernel)
    return {req: d for req, d in deviations().items() if covers(d, scope)}
