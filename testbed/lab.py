"""A running lab: bring-up, join, teardown, and re-attaching to a live lab.

State (topology, which nodes joined, the SAs with their keys) is kept in
/run/iiptran/<lab>/ with mode 0700: outside the repository, gone at reboot.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from testbed.datapath import base_network, ipsec, tunnels
from testbed.datapath.modes import MODES, Datapath
from testbed.errors import UserError
from testbed.names import check_lab_name, default_lab_name
from testbed.routing.convergence import wait_converged
from testbed.routing.frr import FrrNode, start_all, stop_lab_daemons
from testbed.runtime.base import Runtime
from testbed.runtime.netns import NetnsRuntime
from testbed.topology.loader import load, resolve_path
from testbed.topology.model import BACKENDS, Topology
from testbed.topology.plan import LabPlan, TunnelEnd, build_plan

STATE_ROOT = Path(os.environ.get("IIPTRAN_STATE_DIR", "/run/iiptran"))
REQID_BASE = 100


def teardown(runtime: Runtime, release: bool = True) -> None:
    """Remove a lab's daemons, nodes and state, knowing only its name (and
    backend). With release, also what the backend ran only for labs (an engine)."""
    stop_lab_daemons(runtime.lab)
    runtime.destroy_nodes(runtime.existing_nodes())
    shutil.rmtree(STATE_ROOT / runtime.lab, ignore_errors=True)
    if release:
        runtime.after_teardown()


def make_runtime(backend: str, lab: str) -> Runtime:
    if backend == "docker":
        from testbed.runtime.containers import DockerRuntime
        return DockerRuntime(lab)
    return NetnsRuntime(lab)


def with_overrides(topology: Topology, mode: str | None = None, backend: str | None = None) -> Topology:
    """The topology with its datapath mode or backend overridden (CLI flags), if given."""
    if mode is not None and mode not in MODES:
        raise UserError(f"unknown datapath mode '{mode}' (known: {', '.join(MODES)})")
    if backend is not None and backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    update = {key: value for key, value in (("datapath", mode), ("backend", backend)) if value is not None}
    return topology.model_copy(update=update) if update else topology


class Lab:
    def __init__(self, name: str, topology_path: Path, runtime: Runtime | None = None,
                 topology: Topology | None = None):
        self.name = check_lab_name(name)
        self.topology_path = topology_path
        self.topology = topology or load(str(topology_path))
        self.plan: LabPlan = build_plan(self.topology)
        self.runtime = runtime or make_runtime(self.topology.backend, name)
        self.state_dir = STATE_ROOT / name
        self.sas: list[ipsec.SecurityAssociation] = []
        # SAs a link had before it was rebuilt (interop checks): captures
        # taken earlier still need their keys.
        self.retired_sas: list[ipsec.SecurityAssociation] = []
        self.joined: set[str] = set()
        self.timings: dict[str, float] = {}

    @property
    def datapath(self) -> Datapath:
        return MODES[self.topology.datapath]

    # -- persistence -------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"name": self.name, "topology": str(self.topology_path), "mode": self.topology.datapath,
                "backend": self.topology.backend,
                "joined": sorted(self.joined),
                "sas": [sa.as_dict() for sa in self.sas],
                "retired_sas": [sa.as_dict() for sa in self.retired_sas], "timings": self.timings}
        tmp = self.state_file.with_suffix(".tmp")
        # Created 0600 from the start: the file holds the SA keys.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        tmp.rename(self.state_file)

    @classmethod
    def attach(cls, name: str) -> "Lab":
        """The lab `name` that is up on this machine (e.g. for a re-check)."""
        state = STATE_ROOT / check_lab_name(name) / "state.json"
        if not state.exists():
            raise UserError(f"no lab named '{name}' is up here (no {state})")
        data = json.loads(state.read_text())
        topology = with_overrides(load(data["topology"]), data.get("mode"), data.get("backend"))
        lab = cls(name, Path(data["topology"]), topology=topology)
        lab.joined = set(data["joined"])
        lab.sas = [ipsec.SecurityAssociation(**sa) for sa in data["sas"]]
        lab.retired_sas = [ipsec.SecurityAssociation(**sa) for sa in data.get("retired_sas", [])]
        lab.timings = data.get("timings", {})
        return lab

    @staticmethod
    def running() -> list[str]:
        return sorted(p.name for p in STATE_ROOT.glob("*") if (p / "state.json").exists())

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def up(cls, topology: str, name: str | None = None, mode: str | None = None,
           backend: str | None = None) -> "Lab":
        path = resolve_path(topology)
        model = with_overrides(load(str(path)), mode, backend)
        lab = cls(name or default_lab_name(model.name), path, topology=model)
        if lab.state_file.exists():
            raise UserError(f"a lab named '{lab.name}' is already up; run 'down --name {lab.name}' first")
        if lab.runtime.existing_nodes():
            # Nodes without a state file: what a killed run left behind.
            print(f"iiptran: removing leftovers of an earlier '{lab.name}' run", file=sys.stderr)
            teardown(lab.runtime, release=False)     # the lab comes up on the same engine next
        try:
            lab._bring_up()
        except BaseException:
            lab.down()
            raise
        return lab

    def _bring_up(self) -> None:
        started = time.monotonic()
        self.save()
        self.runtime.create_nodes(list(self.plan.nodes))
        for node in self.plan.nodes:
            base_network.configure_sysctls(self.runtime, node)
        self.timings["nodes_s"] = round(time.monotonic() - started, 2)
        self.timings.update(self.runtime.timings)
        base_network.create_veths(self.runtime, self.plan)
        for node in self.plan.nodes.values():
            base_network.address_node(self.runtime, node)
        for node in self.plan.vn_nodes:
            tunnels.create_lan(self.runtime, node)
        for node in self.plan.vn_nodes:
            if not node.detached:
                self._provision_links(node.name)
        self.datapath.membership_changed(self)
        self.timings["datapath_s"] = round(time.monotonic() - started, 2)
        self.save()
        self._start_routing([n.name for n in self.plan.vn_nodes if not n.detached])
        wait_converged(self)
        self.timings["up_to_converged_s"] = round(time.monotonic() - started, 2)
        self.save()

    def active(self, node: str) -> bool:
        return not self.plan.nodes[node].detached or node in self.joined

    def _provision_links(self, node: str) -> None:
        """Tunnels + SAs for node's virtual links whose other end is active."""
        me = self.plan.nodes[node]
        for tunnel in me.tunnels:
            if not self.active(tunnel.peer):
                continue
            if any(sa.link == tunnel.label for sa in self.sas):
                continue
            peer_tunnel = self.plan.nodes[tunnel.peer].tunnel_to(node)
            reqid = REQID_BASE + 2 * tunnel.link_index
            self.sas += self.datapath.provision_link(self, node, tunnel, peer_tunnel, reqid)
            self.save()

    def _start_routing(self, nodes: list[str]) -> None:
        instances = [self.frr(node) for node in nodes]
        for frr in instances:
            frr.write_config(self.plan.nodes[frr.node], self.topology.defaults.ospf)
        start_all(instances)

    def join(self, node: str, update_members: bool = True) -> None:
        """Bring a detached VN node in (RFC 3884 4.2.3.2): links, SAs, routing.

        With update_members=False only the new node and its new links are
        configured; `update_members()` then makes whatever change the
        datapath needs on the nodes that were members already (none for
        iiptran; new selector policies for tunnel-policy)."""
        plan = self.plan.nodes.get(node)
        if plan is None or plan.role != "vn":
            raise UserError(f"{self.topology_path}: no VN node named '{node}'")
        if self.active(node):
            raise UserError(f"{node} is already part of lab '{self.name}'")
        self.joined.add(node)
        self._provision_links(node)
        self.datapath.membership_changed(self, only=[node])
        self._start_routing([node])
        self.save()
        wait_converged(self)
        if update_members:
            self.update_members()

    def update_members(self) -> None:
        self.datapath.membership_changed(self)

    def down(self) -> None:
        """Remove everything this lab made; safe to call on a half-built lab."""
        teardown(self.runtime)

    # -- access for probes and tests --------------------------------------
    def frr(self, node: str) -> FrrNode:
        return FrrNode(self.runtime, node)

    def link_sas(self, node: str, peer: str) -> tuple[ipsec.SecurityAssociation, ipsec.SecurityAssociation]:
        """The SA pair of the virtual link node-peer, seen from node: (out, in)."""
        tunnel = self.plan.nodes[node].tunnel_to(peer)
        by_endpoints = {(sa.src, sa.dst): sa for sa in self.sas}
        out = by_endpoints[(tunnel.local_base, tunnel.remote_base)]
        return out, by_endpoints[(tunnel.remote_base, tunnel.local_base)]

    def active_vn_nodes(self) -> list[str]:
        return [n.name for n in self.plan.vn_nodes if self.active(n.name)]

    def active_link_ends(self) -> list[tuple[str, TunnelEnd]]:
        """(node, tunnel end) of every virtual link whose two ends are active."""
        return [(node, tunnel) for node in self.active_vn_nodes()
                for tunnel in self.plan.nodes[node].tunnels if self.active(tunnel.peer)]
