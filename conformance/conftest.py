"""The lab is the fixture: brought up for the session (or attached to a live
one with --lab), with every test tagged by the RFC section it checks."""
from __future__ import annotations

import json
import os
import re
import resource
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

from deviation import Deviations
import quiet_hooks
import verdict_hooks
from verdict_hooks import COVERED, UNFIT, unfit
from testbed import expect
from testbed.errors import TestbedError
from testbed.lab import Lab
from testbed.topology.overrides import with_overrides
from testbed.probe.flows import FlowTraffic, capture_flow
from testbed.probe.traffic import PingResult, ping
from testbed.report.evidence import Recorder, as_dicts
from testbed.report.wireshark import write_esp_sa
from testbed.requirements import catalogue, deviations_for
from testbed.runtime.base import program_version
from testbed.topology.loader import load
from testbed.topology.model import node_configure, node_routing
from testbed.topology.plan import build_plan


def pytest_addoption(parser):
    group = parser.getgroup("iiptran")
    group.addoption("--topology", help="bring this topology up for the run")
    group.addoption("--lab-name", help="name of the lab brought up for the run")
    group.addoption("--lab", help="check the lab of this name that is already up")
    group.addoption("--fault", help="break the lab this way (a negative profile, testbed/faults)")
    group.addoption("--override", action="append", default=[], metavar="FIELD=VALUE",
                    help="a lab-wide field of the topology overridden (datapath, backend, routing, keying), "
                         "or a VN node's routing (routing.A=bird)")
    group.addoption("--report-dir", default="reports/adhoc", help="where captures and evidence go")


def pytest_configure(config):
    # How a test's outcome becomes its verdict (conformance/verdict_hooks.py).
    if not config.pluginmanager.is_registered(verdict_hooks):
        config.pluginmanager.register(verdict_hooks, "iiptran-verdicts")
    # Deadline checks first, then the pool's quiet given back (conformance/quiet_hooks.py).
    if not config.pluginmanager.is_registered(quiet_hooks):
        config.pluginmanager.register(quiet_hooks, "iiptran-quiet")
    config.addinivalue_line("markers", "req(*ids): requirement IDs of conformance/requirements.yaml the test checks")
    config.addinivalue_line("markers", "rebuilds_lab: the test rebuilds part of the lab; it runs after the others")
    config.addinivalue_line("markers", "deadline: the check measures against a clock; it runs before the others")
    config.addinivalue_line("markers", "as_built: the check reads the lab's state as it is (devices, daemons, "
                                       "SAD/SPD, routes) and judges it even where the lab did not converge")


def _overrides(config) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in config.getoption("--override")]
    if any(len(pair) != 2 for pair in pairs):
        raise pytest.UsageError(f"--override takes FIELD=VALUE, got {config.getoption('--override')}")
    return dict(pairs)


@lru_cache(maxsize=None)
def _topology_of(lab: str | None, topology: str | None, overrides: tuple):
    if lab:
        return Lab.attach(lab).topology
    if topology:
        return with_overrides(load(topology), dict(overrides))
    raise pytest.UsageError("give --topology (bring a lab up) or --lab (check a live lab)")


def _topology(config):
    return _topology_of(config.getoption("--lab"), config.getoption("--topology"),
                        tuple(sorted(_overrides(config).items())))


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
        metafunc.parametrize("reroutable_flow", params, scope="session")
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


def pytest_collection_modifyitems(config, items):
    # Tests that tear a link down and build it again run last, so every other
    # check sees the lab as it was brought up (or as a negative profile broke it).
    items.sort(key=lambda item: item.get_closest_marker("rebuilds_lab") is not None)
    known = catalogue()
    expected = deviations_for(_topology(config), os.uname().release)
    for item in items:
        ids = [i for mark in item.iter_markers("req") for i in mark.args]
        unknown = [i for i in ids if i not in known]
        if not ids or unknown:
            problem = f"unknown requirements {unknown}" if unknown else "no requirement"
            raise pytest.UsageError(f"{item.nodeid}: names {problem} (see conformance/requirements.yaml)")
        item.stash[COVERED] = [i for i in ids if i in expected]
        sections = sorted({s for i in ids for s in known[i].rfc})
        item.user_properties.append(("requirements", ", ".join(ids)))
        item.user_properties.append(("rfc", ", ".join(sections)))
        item.user_properties.append(("evidence", evidence_file(item.nodeid)))


RECORDER = pytest.StashKey[Recorder]()
CPU_AT_START = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The CPU a test used, its own and the programs it ran (where a run's
    time goes under emulation): a property of its last report."""
    if call.when == "teardown" and CPU_AT_START in item.stash:
        item.user_properties.append(("cpu_s", round(_cpu_seconds() - item.stash[CPU_AT_START], 2)))
    yield


def _cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Everything the test (and the fixtures it set up) ran and captured."""
    recorder = item.config.stash.setdefault(RECORDER, Recorder())     # one per run
    recorder.start()
    item.stash[CPU_AT_START] = _cpu_seconds()
    yield
    path = Path(item.config.getoption("--report-dir")).resolve() / evidence_file(item.nodeid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_dicts(recorder.stop()), indent=1))


@pytest.fixture
def deviations(request) -> Deviations:
    """Judges a check of a requirement with a recorded deviation (conformance/deviation.py)."""
    return Deviations(request.node, _topology(request.config), os.uname().release)


@pytest.fixture(scope="session")
def report_dir(request) -> Path:
    path = Path(request.config.getoption("--report-dir")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record_lab(lab: Lab, report_dir: Path, attached: bool, **extra) -> None:
    """What was built and how long it took, beside the junit.xml."""
    facts = {"lab": lab.name, "topology": lab.topology.name, "topology_file": str(lab.topology_path),
             "datapath_mode": lab.datapath.name, "datapath": lab.datapath.summary,
             "routing": lab.routing.name, "keying": lab.topology.keying,
             "nodes_routing": {n: node.routing for n, node in lab.topology.vn_nodes.items() if node.routing},
             "configure": {n: node_configure(lab.topology, n) for n in lab.topology.vn_nodes if node_configure(lab.topology, n)},
             "links_keying": {t.label: t.keying for _, t in lab.active_link_ends()},
             "attached_to_live_lab": attached, "kernel": os.uname().release,
             "in_guest": os.environ.get("IIPTRAN_IN_GUEST") == "1",
             **lab.runtime.describe(), "iproute2": program_version(["ip", "-V"]), "timings": lab.timings, **extra}
    with_bird = [n for n in lab.topology.vn_nodes if node_routing(lab.topology, n) == "bird"]
    if with_bird:
        facts["bird"] = program_version(lab.runtime.exec_argv(with_bird[0], ["bird", "--version"]))
    daemons = lab.keying.daemon_nodes()
    if daemons:
        facts["strongswan"] = program_version(lab.runtime.exec_argv(daemons[0], ["swanctl", "--version"]))
    (report_dir / "lab.json").write_text(json.dumps(facts, indent=1) + "\n")


def _fault(request):
    name = request.config.getoption("--fault")
    if not name:
        return None
    from testbed.faults import lookup
    return lookup(name)


def _break(lab: Lab, fault, report_dir: Path) -> None:
    from testbed.faults import check_applicable
    check_applicable(lab, fault)
    facts = json.loads((report_dir / "lab.json").read_text())
    facts["negative_profile"] = f"{fault.name}: {fault.apply(lab)}"
    (report_dir / "lab.json").write_text(json.dumps(facts, indent=1) + "\n")


@pytest.fixture(scope="session")
def base_lab(request, report_dir):
    name = request.config.getoption("--lab")
    if name:
        lab = Lab.attach(name)      # a live lab: checked, never torn down here
        _record_lab(lab, report_dir, attached=True)
        _note_unfit(request.config, lab.converged_within(ATTACHED_CONVERGENCE_S),
                    "the lab that is up did not converge")
        yield lab
        lab.refresh_sa_book()
        write_esp_sa(lab.sa_book.sas, report_dir)
        return
    fault = _fault(request)
    configured: list[str] = []

    def before_up(lab: Lab) -> None:
        if fault is not None and fault.phase == "config":
            from testbed.faults import check_applicable
            check_applicable(lab, fault)
            configured.append(f"{fault.name}: {fault.apply(lab)}")

    lab = Lab.up(request.config.getoption("--topology"), request.config.getoption("--lab-name"),
                 _overrides(request.config), before_up=before_up, unconverged_ok=True)
    _note_unfit(request.config, lab.unconverged, "the lab as brought up did not converge")
    try:
        _record_lab(lab, report_dir, attached=False,
                    **({"negative_profile": configured[0]} if configured else {}))
        if fault is not None and fault.phase == "before-join":
            _break(lab, fault, report_dir)
        yield lab
    finally:
        # The SAs (with those a join or a rekey added) die with the lab: keep
        # them for Wireshark, and the IKE daemons' logs beside the report.
        try:
            lab.refresh_sa_book()
            lab.keying.keep_logs(report_dir)
        finally:
            write_esp_sa(lab.sa_book.sas, report_dir)
            lab.down()


ATTACHED_CONVERGENCE_S = 15.0      # how long a live lab may take to show it has converged


def _note_unfit(config, problem: str, what: str) -> None:
    """The first reason the lab is not fit for checks that send traffic."""
    if problem and not unfit(config):
        config.stash[UNFIT] = f"{what}: {problem}"


@dataclass
class JoinRecord:
    """SAD/SPD of every node already in the VN, before and after the join, and
    whether the new node reached its flows' destinations before anything on
    those nodes was changed."""
    joined: list[str] = field(default_factory=list)
    before: dict[str, list[str]] = field(default_factory=dict)
    after: dict[str, list[str]] = field(default_factory=dict)
    first_reach: dict[str, dict[str, PingResult]] = field(default_factory=dict)
    ike_before: dict[str, list[str]] = field(default_factory=dict)    # the members' IKE daemons' SAs
    ike_after: dict[str, list[str]] = field(default_factory=dict)
    problem: str = ""            # why the join could not be completed, if it could not


@pytest.fixture(scope="session")
def join_record(base_lab, request) -> JoinRecord:
    """Join every detached node (RFC 3884 4.2.3.2), recording the IPsec state around it."""
    record = JoinRecord()
    waiting = [n.name for n in base_lab.plan.vn_nodes if not base_lab.active(n.name)]
    if not waiting:
        return record
    members = base_lab.active_vn_nodes()
    ike_members = base_lab.keying.daemon_nodes()
    record.before = {n: sad.entries() for n, sad in base_lab.observe_sas().items()}
    record.ike_before = {n: base_lab.keying.daemon_view(n) for n in ike_members}
    started = time.monotonic()
    try:
        for node in waiting:
            record.joined.append(node)
            base_lab.join(node, update_members=False)
            targets = sorted({f.dst for f in base_lab.topology.flows.values() if f.src == node})
            record.first_reach[node] = {dst: ping(base_lab.runtime, node, expect.lan_address(base_lab, dst),
                                                  count=3, source=expect.lan_address(base_lab, node))
                                        for dst in targets}
        base_lab.update_members()
    except TestbedError as exc:
        # The join's own failure (it did not converge, a link could not be
        # set up): what needs the joined lab could not be performed.
        _note_unfit(request.config, str(exc), f"{', '.join(waiting)} could not join the lab")
        record.problem = str(exc)
    base_lab.timings["join_s"] = round(time.monotonic() - started, 2)
    readings = base_lab.observe_sas()
    record.after = {n: readings[n].entries() for n in members}
    record.ike_after = {n: base_lab.keying.daemon_view(n) for n in ike_members}
    return record


@pytest.fixture(scope="session")
def lab(base_lab, join_record, report_dir, request):
    """The lab with every node in the VN: what most checks run against; broken
    on purpose first when the run is a negative profile (--fault)."""
    fault = _fault(request)
    if fault is not None and fault.phase == "after-join":
        from testbed.routing.convergence import wait_settled
        _break(base_lab, fault, report_dir)
        wait_settled(base_lab)
        base_lab.refresh_sa_book()
    return base_lab


@pytest.fixture(scope="session")
def kernel_ipsec(lab) -> dict:
    """Every active VN node's SAD and SPD as its kernel holds them, read once
    the lab is final (joined, and broken if the run is a negative profile)."""
    return lab.observe_sas()


@pytest.fixture(scope="session")
def measurements(report_dir):
    """Record a figure a check measured (a loss window, a recovery time) in
    measurements.json beside the report: the report and `make bench` show them."""
    path = report_dir / "measurements.json"
    path.write_text("{}\n")

    def record(name: str, value) -> None:
        found = json.loads(path.read_text())
        found[name] = value
        path.write_text(json.dumps(found, indent=1) + "\n")
    return record


@dataclass
class RerouteRecord:
    """A virtual link on a flow's path cut and restored (Figure 3's link 3):
    the paths, traceroute's hops, and the IPsec state around the cut, as the
    kernels and the IKE daemons report it."""
    flow: str
    cut: tuple[str, str]
    new_path: list[str]
    hops: list[str] = field(default_factory=list)
    trace: str = ""
    sad_before: dict[str, list[str]] = field(default_factory=dict)
    sad_after: dict[str, list[str]] = field(default_factory=dict)
    ike_before: dict[str, list[str]] = field(default_factory=dict)
    ike_after: dict[str, list[str]] = field(default_factory=dict)
    problem: str = ""          # why the cut could not be observed, if it could not


@pytest.fixture(scope="session")
def reroute_record(lab, reroutable_flow) -> RerouteRecord:
    from testbed.reroute import cut_and_restore
    name, spec = reroutable_flow
    return cut_and_restore(lab, name, spec.src, spec.dst, RerouteRecord)


@pytest.fixture(scope="session")
def flow_traffic(lab, report_dir, flow) -> FlowTraffic:
    """The flow's marked traffic, captured on the base links and the path's access links."""
    name, spec = flow
    return capture_flow(lab, report_dir, name, spec.src, spec.dst)
