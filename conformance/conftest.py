"""The lab is the fixture: brought up for the session (or attached to a live
one with --lab), with every test tagged by the RFC section it checks."""
from __future__ import annotations

import json
import re
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testbed import expect
from testbed.lab import Lab
from testbed.probe import inspect
from testbed.probe.flows import FlowTraffic, capture_flow
from testbed.probe.traffic import PingResult, ping
from testbed.report.evidence import RECORDER, as_dicts
from testbed.runtime.base import program_version
from testbed.report.wireshark import write_esp_sa
from testbed.requirements import catalogue
from testbed.topology.loader import load
from testbed.topology.plan import build_plan


def pytest_addoption(parser):
    group = parser.getgroup("iiptran")
    group.addoption("--topology", help="bring this topology up for the run")
    group.addoption("--lab-name", help="name of the lab brought up for the run")
    group.addoption("--lab", help="check the lab of this name that is already up")
    group.addoption("--fault", help="break the lab this way once it is up (a negative profile, testbed/faults.py)")
    group.addoption("--mode", help="datapath mode of the lab brought up for the run (default: the topology's)")
    group.addoption("--backend", help="where the lab's nodes live: netns or docker (default: the topology's)")
    group.addoption("--report-dir", default="reports/adhoc", help="where captures and evidence go")


def pytest_configure(config):
    config.addinivalue_line("markers", "req(*ids): requirement IDs of conformance/requirements.yaml the test checks")
    config.addinivalue_line("markers", "rebuilds_lab: the test rebuilds part of the lab; it runs after the others")


def _topology(config):
    if config.getoption("--lab"):
        return Lab.attach(config.getoption("--lab")).topology
    if config.getoption("--topology"):
        return load(config.getoption("--topology"))
    raise pytest.UsageError("give --topology (bring a lab up) or --lab (check a live lab)")


def pytest_generate_tests(metafunc):
    """Flows and joining nodes come from the lab file, so every topology gets
    exactly the checks that apply to it (no skips for absent features)."""
    if "flow" in metafunc.fixturenames:
        topology = _topology(metafunc.config)
        # Session scope: one capture of a flow's traffic serves every module.
        metafunc.parametrize("flow", list(topology.flows.items()), ids=list(topology.flows), scope="session")
    if "reroutable_flow" in metafunc.fixturenames:
        topology = _topology(metafunc.config)
        graph = build_plan(topology).vn_graph()
        params = [pytest.param((name, spec), id=name) for name, spec in topology.flows.items()
                  if expect.reroutable_link(graph, expect.shortest_path(graph, spec.src, spec.dst))]
        if not params:
            params = [pytest.param(None, id="none", marks=pytest.mark.skip(
                reason=f"not applicable: no flow of {topology.name} has a link with an alternative path"))]
        metafunc.parametrize("reroutable_flow", params)
    if "joining_node" in metafunc.fixturenames:
        topology = _topology(metafunc.config)
        params = [pytest.param(n, id=n) for n, v in topology.vn_nodes.items() if v.detached]
        if not params:
            params = [pytest.param(None, id="none", marks=pytest.mark.skip(
                reason=f"not applicable: no VN node of {topology.name} starts detached"))]
        metafunc.parametrize("joining_node", params)


def evidence_file(nodeid: str) -> str:
    """Where a test's evidence goes, relative to the report folder."""
    return "evidence/" + re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]) + ".json"


def pytest_collection_modifyitems(items):
    # Tests that tear a link down and build it again run last, so every other
    # check sees the lab as it was brought up (or as a negative profile broke it).
    items.sort(key=lambda item: item.get_closest_marker("rebuilds_lab") is not None)
    known = catalogue()
    for item in items:
        ids = [i for mark in item.iter_markers("req") for i in mark.args]
        unknown = [i for i in ids if i not in known]
        if not ids or unknown:
            problem = f"unknown requirements {unknown}" if unknown else "no requirement"
            raise pytest.UsageError(f"{item.nodeid}: names {problem} (see conformance/requirements.yaml)")
        sections = sorted({s for i in ids for s in known[i].rfc})
        item.user_properties.append(("requirements", ", ".join(ids)))
        item.user_properties.append(("rfc", ", ".join(sections)))
        item.user_properties.append(("evidence", evidence_file(item.nodeid)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Everything the test (and the fixtures it set up) ran and captured."""
    RECORDER.start()
    yield
    path = Path(item.config.getoption("--report-dir")).resolve() / evidence_file(item.nodeid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_dicts(RECORDER.stop()), indent=1))


@pytest.fixture(scope="session")
def report_dir(request) -> Path:
    path = Path(request.config.getoption("--report-dir")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record_lab(lab: Lab, report_dir: Path, attached: bool) -> None:
    """What was built and how long it took, beside the junit.xml."""
    facts = {"lab": lab.name, "topology": lab.topology.name, "topology_file": str(lab.topology_path),
             "datapath_mode": lab.datapath.name, "datapath": lab.datapath.summary,
             "attached_to_live_lab": attached, "kernel": os.uname().release,
             "in_guest": os.environ.get("IIPTRAN_IN_GUEST") == "1",
             **lab.runtime.describe(), "iproute2": program_version(["ip", "-V"]), "timings": lab.timings}
    (report_dir / "lab.json").write_text(json.dumps(facts, indent=1) + "\n")


@pytest.fixture(scope="session")
def base_lab(request, report_dir):
    name = request.config.getoption("--lab")
    if name:
        lab = Lab.attach(name)      # a live lab: checked, never torn down here
        _record_lab(lab, report_dir, attached=True)
        yield lab
        write_esp_sa(lab.sas + lab.retired_sas, report_dir)
        return
    lab = Lab.up(request.config.getoption("--topology"), request.config.getoption("--lab-name"),
                 request.config.getoption("--mode"), request.config.getoption("--backend"))
    try:
        _record_lab(lab, report_dir, attached=False)
        yield lab
    finally:
        # The SAs (with those a join added) die with the lab: keep them for Wireshark.
        write_esp_sa(lab.sas + lab.retired_sas, report_dir)
        lab.down()


@dataclass
class JoinRecord:
    """SAD/SPD of every node already in the VN, before and after the join, and
    whether the new node reached its flows' destinations before anything on
    those nodes was changed."""
    joined: list[str] = field(default_factory=list)
    before: dict[str, list[str]] = field(default_factory=dict)
    after: dict[str, list[str]] = field(default_factory=dict)
    first_reach: dict[str, dict[str, PingResult]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def join_record(base_lab) -> JoinRecord:
    """Join every detached node (RFC 3884 4.2.3.2), recording the IPsec state around it."""
    record = JoinRecord()
    waiting = [n.name for n in base_lab.plan.vn_nodes if not base_lab.active(n.name)]
    if not waiting:
        return record
    members = base_lab.active_vn_nodes()
    record.before = {n: inspect.xfrm_entries(base_lab.runtime, n) for n in members}
    for node in waiting:
        base_lab.join(node, update_members=False)
        record.joined.append(node)
        targets = sorted({f.dst for f in base_lab.topology.flows.values() if f.src == node})
        record.first_reach[node] = {dst: ping(base_lab.runtime, node, expect.lan_address(base_lab, dst), count=3,
                                              source=expect.lan_address(base_lab, node)) for dst in targets}
    base_lab.update_members()
    record.after = {n: inspect.xfrm_entries(base_lab.runtime, n) for n in members}
    return record


@pytest.fixture(scope="session")
def lab(base_lab, join_record, report_dir, request):
    """The lab with every node in the VN: what most checks run against; broken
    on purpose first when the run is a negative profile (--fault)."""
    fault = request.config.getoption("--fault")
    if fault:
        from testbed.faults import apply
        facts = json.loads((report_dir / "lab.json").read_text())
        from testbed.routing.convergence import wait_settled
        facts["negative_profile"] = f"{fault}: {apply(base_lab, fault)}"
        wait_settled(base_lab)
        (report_dir / "lab.json").write_text(json.dumps(facts, indent=1) + "\n")
    return base_lab


@pytest.fixture(scope="session")
def flow_traffic(lab, report_dir, flow) -> FlowTraffic:
    """The flow's marked traffic, captured on the base links and access links."""
    name, spec = flow
    return capture_flow(lab, report_dir, name, spec.src, spec.dst)
