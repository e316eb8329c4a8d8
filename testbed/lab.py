"""A running lab: bring-up, join, teardown, and re-attaching to a live lab.

State (topology, overrides, which nodes joined, the SAs the testbed
installed and every SA read from the nodes' kernels, with their keys) is
kept in /run/iiptran/<lab>/ with mode 0700: outside the repository, gone
at reboot.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from testbed.datapath import base_network, hook, ipsec, tunnels
from testbed.datapath.modes import MODES, Datapath
from testbed.errors import UserError, WaitTimeout
from testbed.names import check_lab_name, default_lab_name
from testbed.parallel import meanwhile, parallel
from scapy.layers.inet import IP

from testbed.probe import xfrm
from testbed.probe.esp import IPPROTO_ESP, decrypt
from testbed.probe.sa_book import SaBook
from testbed.routing.convergence import wait_converged
from testbed.routing.frr import FrrNode
from testbed.routing.stacks import STACKS, RoutingStack, lab_stack
from testbed.runtime.base import Runtime
from testbed.runtime.netns import NetnsRuntime
from testbed.topology.loader import check_consistency, hook_file_problem, load, resolve_path
from testbed.topology.model import NODE_ROUTINGS, OVERRIDABLE, Topology
from testbed.topology.plan import LabPlan, TunnelEnd, build_plan

STATE_ROOT = Path(os.environ.get("IIPTRAN_STATE_DIR", "/run/iiptran"))
REQID_BASE = 100


def teardown(runtime: Runtime, release: bool = True) -> None:
    """Remove a lab's daemons, nodes and state, knowing only its name (and
    backend). With release, also what the backend ran only for labs (an engine)."""
    for stack in STACKS.values():
        stack.stop_lab(runtime.lab)
    from testbed.keying import strongswan
    strongswan.stop_lab(runtime, STATE_ROOT / runtime.lab)
    runtime.destroy_nodes(runtime.existing_nodes())
    shutil.rmtree(STATE_ROOT / runtime.lab, ignore_errors=True)
    if release:
        runtime.after_teardown()


def make_runtime(backend: str, lab: str) -> Runtime:
    if backend == "docker":
        from testbed.runtime.containers import DockerRuntime
        return DockerRuntime(lab)
    return NetnsRuntime(lab)


def with_overrides(topology: Topology, overrides: dict[str, str] | None = None) -> Topology:
    """The topology with lab-wide fields overridden (CLI flags: --mode,
    --backend, --routing, --keying, --configure), nodes' routing
    (`routing.A=bird`), checked as the file's own values are."""
    update = {key: value for key, value in (overrides or {}).items() if value is not None}
    nodes, lab_wide = {}, {}
    for key, value in update.items():
        field, _, node = key.partition(".")
        if node and field == "routing":
            if node not in topology.vn_nodes:
                raise UserError(f"'{key}': no VN node '{node}' (known: {', '.join(topology.vn_nodes)})")
            if value not in NODE_ROUTINGS:
                raise UserError(f"unknown routing '{value}' for node {node} (known: {', '.join(NODE_ROUTINGS)})")
            nodes[node] = topology.vn_nodes[node].model_copy(update={"routing": value})
        elif key == "configure":
            lab_wide[key] = str(Path(value).resolve())       # a path given here is relative to here
            problem = hook_file_problem(Path(lab_wide[key]))
            if problem:
                raise UserError(f"configure={value}: {problem}")
        elif key not in OVERRIDABLE:
            raise UserError(f"'{key}' cannot be overridden (only {', '.join(OVERRIDABLE)}, configure, "
                            "or routing.<VN node>)")
        elif value not in OVERRIDABLE[key]:
            raise UserError(f"unknown {key} '{value}' (known: {', '.join(OVERRIDABLE[key])})")
        else:
            lab_wide[key] = value
    if not update:
        return topology
    if nodes:
        lab_wide["vn_nodes"] = {**topology.vn_nodes, **nodes}
    changed = topology.model_copy(update=lab_wide)
    problems = check_consistency(changed)
    if problems:
        raise UserError("; ".join(f"with {', '.join(f'{k}={v}' for k, v in update.items())}: {where}: {msg}"
                                  for where, msg in problems))
    return changed


class Lab:
    def __init__(self, name: str, topology_path: Path, runtime: Runtime | None = None,
                 topology: Topology | None = None, overrides: dict[str, str] | None = None):
        self.name = check_lab_name(name)
        self.topology_path = topology_path
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self.topology = topology or with_overrides(load(str(topology_path)), self.overrides)
        self.plan: LabPlan = build_plan(self.topology)
        self.runtime = runtime or make_runtime(self.topology.backend, name)
        self.state_dir = STATE_ROOT / name
        # The SAs the testbed itself installed (manual keying): what it
        # needs to take them down again. The suite never judges by these.
        self.sas: list[ipsec.SecurityAssociation] = []
        # Every SA read from the nodes' kernels during the lab's life:
        # what captures are decrypted with and Wireshark is given.
        self.sa_book = SaBook()
        self.links: set[str] = set()          # labels of the virtual links built
        self.joined: set[str] = set()
        self.configured: set[str] = set()      # nodes whose configuration hook has run
        self.timings: dict[str, float] = {}
        # Deliberate misbehaviour a negative profile adds to lab events
        # ("members-updated", "link-state"); empty in a sound lab.
        self.hooks: dict[str, list[Callable]] = {}
        # Deliberate misconfiguration a negative profile asks for at bring-up
        # (what the IKE daemons are told, testbed/faults/ike.py); empty in a sound lab.
        self.tweaks: dict[str, object] = {}
        self._ike = None
        self.unconverged = ""                  # why the bring-up did not converge (with unconverged_ok)

    @property
    def datapath(self) -> Datapath:
        return MODES[self.topology.datapath]

    @functools.cached_property
    def routing(self) -> RoutingStack:
        # Once per lab: readiness waits ask for it on every poll of every node.
        return lab_stack(self.topology)

    @property
    def ike(self):
        """The IKE-keyed links' daemons (created on first use)."""
        if self._ike is None:
            from testbed.keying.ike_links import IkeLinks
            self._ike = IkeLinks(self)
        return self._ike

    def ike_links(self) -> list[tuple[str, TunnelEnd]]:
        """(node, tunnel end) of every active link keyed by IKE, once per link (its first end)."""
        return [(node, t) for node, t in self.active_link_ends()
                if t.keying == "ikev2" and self.topology.virtual_links[t.link_index].ends[0] == node]

    # -- persistence -------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"name": self.name, "topology": str(self.topology_path), "overrides": self.overrides,
                "joined": sorted(self.joined), "links": sorted(self.links),
                "configured": sorted(self.configured),
                "sas": [sa.as_dict() for sa in self.sas],
                "observed_sas": [sa.as_dict() for sa in self.sa_book.sas], "timings": self.timings}
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
        lab = cls(name, Path(data["topology"]), overrides=data.get("overrides", {}))
        lab.joined = set(data["joined"])
        lab.links = set(data.get("links", []))
        lab.configured = set(data.get("configured", []))
        lab.sas = [ipsec.SecurityAssociation(**sa) for sa in data["sas"]]
        lab.sa_book = SaBook([ipsec.SecurityAssociation(**sa) for sa in data.get("observed_sas", [])])
        lab.timings = data.get("timings", {})
        return lab

    @staticmethod
    def running() -> list[str]:
        return sorted(p.name for p in STATE_ROOT.glob("*") if (p / "state.json").exists())

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def up(cls, topology: str, name: str | None = None, overrides: dict[str, str] | None = None,
           before_up: Callable[["Lab"], None] | None = None, unconverged_ok: bool = False) -> "Lab":
        """Build and converge a lab. `before_up` (a negative profile's
        configuration fault) may change how the lab is built. With
        `unconverged_ok` a lab that does not converge stays up, the reason
        in `unconverged` (the suite judges what it can of it)."""
        path = resolve_path(topology)
        model = with_overrides(load(str(path)), overrides)
        lab = cls(name or default_lab_name(model.name), path, topology=model, overrides=overrides)
        if lab.state_file.exists():
            raise UserError(f"a lab named '{lab.name}' is already up; run 'down --name {lab.name}' first")
        if lab.runtime.existing_nodes():
            # Nodes without a state file: what a killed run left behind.
            print(f"iiptran: removing leftovers of an earlier '{lab.name}' run", file=sys.stderr)
            teardown(lab.runtime, release=False)     # the lab comes up on the same engine next
        try:
            if before_up is not None:
                before_up(lab)
            lab._bring_up(unconverged_ok)
        except BaseException:
            lab.down()
            raise
        return lab

    def _bring_up(self, unconverged_ok: bool = False) -> None:
        started = time.monotonic()
        self.save()
        self.runtime.create_nodes(list(self.plan.nodes))
        parallel([lambda node=node: base_network.configure_sysctls(self.runtime, node) for node in self.plan.nodes])
        self.timings["nodes_s"] = round(time.monotonic() - started, 2)
        self.timings.update(self.runtime.timings)
        routed = self._routed(self.active_vn_nodes())
        # The routing daemons that send nothing by themselves start while the
        # links are built (under emulation each takes about a CPU-second);
        # leaving the block waits for them, also when the build failed.
        with meanwhile(lambda: self.routing.prepare(self, routed)):
            base_network.create_veths(self.runtime, self.plan)
            parallel([lambda node=node: base_network.address_node(self.runtime, node)
                      for node in self.plan.nodes.values()])
            parallel([lambda node=node: tunnels.create_lan(self.runtime, node) for node in self.plan.vn_nodes])
            self._provision_links(self.active_vn_nodes())
            self.datapath.membership_changed(self)
            self.timings["datapath_s"] = round(time.monotonic() - started, 2)
            self.save()
        if routed:
            self.routing.start(self, routed, prepared=True)
        self.timings["routing_started_s"] = round(time.monotonic() - started, 2)
        try:
            wait_converged(self)
        except WaitTimeout as exc:
            if not unconverged_ok:
                raise
            self.unconverged = str(exc)
        else:
            self.timings["up_to_converged_s"] = round(time.monotonic() - started, 2)
        self.save()

    def converged_within(self, timeout: float) -> str:
        """'' once the lab has converged (waiting up to `timeout`), else why not."""
        try:
            wait_converged(self, timeout)
        except WaitTimeout as exc:
            return str(exc)
        return ""

    def active(self, node: str) -> bool:
        return not self.plan.nodes[node].detached or node in self.joined

    def _provision_links(self, nodes: list[str]) -> None:
        """Devices and SAs for the nodes' virtual links whose other end is
        active: manual keys written here, IKE-keyed links negotiated."""
        manual: list[tuple[str, TunnelEnd, TunnelEnd, int]] = []
        negotiated: list[tuple[str, TunnelEnd]] = []
        for node in nodes:
            for tunnel in self.plan.nodes[node].tunnels:
                if not self.active(tunnel.peer) or tunnel.label in self.links:
                    continue
                peer_tunnel = self.plan.nodes[tunnel.peer].tunnel_to(node)
                if tunnel.keying == "ikev2":
                    self.datapath.build_devices(self, node, tunnel, peer_tunnel)
                    negotiated.append((node, tunnel))
                else:
                    manual.append((node, tunnel, peer_tunnel, REQID_BASE + 2 * tunnel.link_index))
                self.links.add(tunnel.label)
        hooked = hook.hooked_nodes(self)
        self.sas += self.datapath.provision_links(self, manual, leave=frozenset(hooked))
        self.save()
        if negotiated:
            self.ike.establish(negotiated)
        self._run_hooks(nodes, hooked, {t.label for _, t, _, _ in manual})

    def _run_hooks(self, nodes: list[str], hooked: set[str], new: set[str]) -> None:
        """Nodes that configure themselves: `up` for each of `nodes` the
        first time, `links-added` for a member that a joining node gave new links."""
        calls = []
        for node in sorted(hooked & set(self.active_vn_nodes())):
            if node in nodes and node not in self.configured:
                calls.append((node, "up", []))
            elif node in self.configured:
                added = sorted(t.label for t in self.plan.nodes[node].tunnels if t.label in new)
                if added:
                    calls.append((node, "links-added", added))
        parallel([lambda call=call: hook.run_hook(self, *call) for call in calls])
        self.configured |= {node for node, event, _ in calls if event == "up"}
        self.save()

    def _routed(self, nodes: list[str]) -> list[str]:
        """Those of the nodes whose routing the testbed starts (a hook starts its own)."""
        return [node for node in nodes if node not in hook.hooked_nodes(self)]

    def _start_routing(self, nodes: list[str]) -> None:
        mine = self._routed(nodes)
        if mine:
            self.routing.start(self, mine)

    def join(self, node: str, update_members: bool = True) -> None:
        """Bring a detached VN node in (RFC 3884 4.2.3.2): links, SAs, routing.

        With update_members=False only the new node and its new links are
        configured; `update_members()` then makes whatever change the
        datapath and the routing need on the nodes that were members
        already (none for iiptran with OSPF; new selector policies for
        tunnel-policy; routes towards the new node for static routing)."""
        plan = self.plan.nodes.get(node)
        if plan is None or plan.role != "vn":
            raise UserError(f"{self.topology_path}: no VN node named '{node}'")
        if self.active(node):
            raise UserError(f"{node} is already part of lab '{self.name}'")
        self.joined.add(node)
        self._provision_links([node])
        self.datapath.membership_changed(self, only=[node])
        self._start_routing([node])
        self.save()
        if self.routing.dynamic:
            wait_converged(self)
        if update_members:
            self.update_members()

    def update_members(self) -> None:
        self.datapath.membership_changed(self)
        self.routing.membership_changed(self)
        self.fire("members-updated")
        wait_converged(self)
        self.save()

    def set_link_state(self, node: str, peer: str, up: bool) -> None:
        """Take node's end of its virtual link to peer down or up, as a link failure would."""
        tunnels.set_tunnel_state(self.runtime, node, self.plan.nodes[node].tunnel_to(peer).device, up)
        self.fire("link-state", node=node, peer=peer, up=up)

    def fire(self, event: str, **details) -> None:
        for listener in self.hooks.get(event, []):
            listener(self, **details)

    def down(self) -> None:
        """Remove everything this lab made; safe to call on a half-built lab."""
        teardown(self.runtime)

    # -- access for probes and tests --------------------------------------
    def observe_sas(self) -> dict[str, xfrm.Sad]:
        """Every active VN node's SAD and SPD as its kernel holds them now;
        the SAs go into the book the captures are decrypted with."""
        readings = self.sa_book.observe(self.runtime, self.active_vn_nodes())
        self.save()
        return readings

    def decrypt(self, packet):
        """A captured ESP packet decrypted with the keys the kernels hold or
        held (None if it is no ESP, or no SA of theirs matches). The kernels
        are read again only when the book fails a packet captured after the
        last reading: an SA they made since (a rekey) would decrypt it."""
        try:
            found = decrypt(packet, self.sa_book.sas)
            if found is not None or not self._newer_than_book(packet):
                return found
        except Exception:            # keys that did not verify
            if not self._newer_than_book(packet):
                raise
        self.observe_sas()
        return decrypt(packet, self.sa_book.sas)

    def _newer_than_book(self, packet) -> bool:
        return IP in packet and packet[IP].proto == IPPROTO_ESP and float(packet.time) > self.sa_book.observed_at

    def kernel_sad(self, node: str) -> xfrm.Sad:
        return xfrm.read(self.runtime, node)

    def frr(self, node: str) -> FrrNode:
        return FrrNode(self.runtime, node)

    def installed_link_sas(self, node: str, peer: str) -> tuple[ipsec.SecurityAssociation,
                                                                 ipsec.SecurityAssociation]:
        """The SA pair the testbed installed on the manually keyed link
        node-peer, seen from node: (out, in). For provisioning and faults;
        checks read the kernel instead."""
        tunnel = self.plan.nodes[node].tunnel_to(peer)
        by_endpoints = {(sa.src, sa.dst): sa for sa in self.sas}
        try:
            out = by_endpoints[(tunnel.local_base, tunnel.remote_base)]
            return out, by_endpoints[(tunnel.remote_base, tunnel.local_base)]
        except KeyError:
            raise UserError(f"virtual link {tunnel.label} ({node}-{peer}) has no manually keyed SAs") from None

    def active_vn_nodes(self) -> list[str]:
        return [n.name for n in self.plan.vn_nodes if self.active(n.name)]

    def active_link_ends(self) -> list[tuple[str, TunnelEnd]]:
        """(node, tunnel end) of every virtual link whose two ends are active."""
        return [(node, tunnel) for node in self.active_vn_nodes()
                for tunnel in self.plan.nodes[node].tunnels if self.active(tunnel.peer)]
