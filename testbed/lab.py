"""A running lab: bring-up, join, teardown, and re-attaching to a live lab.

The lab composes the three ways a lab varies, each a strategy chosen by
the topology: its datapath (testbed/datapath/modes.py), its routing
(testbed/routing/stacks.py, per node) and its keying (testbed/keying/,
per link). They get a LabContext (testbed/context.py), never the lab.

State (topology, overrides, which nodes joined, the keying's own state,
every SA read from the nodes' kernels with their keys, and who is working
on the lab in which phase) is kept in /run/iiptran/<lab>/ with mode 0700:
outside the repository, gone at reboot (testbed/lab_state.py).
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from scapy.layers.inet import IP

from testbed import lab_state
from testbed.context import LabContext
from testbed.datapath import base_network, configure, tunnels
from testbed.datapath.modes import MODES, Datapath
from testbed.errors import UserError, WaitTimeout
from testbed.keying import LinkKeyings
from testbed.names import check_lab_name, default_lab_name
from testbed.parallel import meanwhile, parallel
from testbed.probe import xfrm
from testbed.probe.esp import IPPROTO_ESP, decrypt, decrypt_raw
from testbed.probe.sa_book import SaBook
from testbed.routing.convergence import wait_converged
from testbed.routing.frr import FrrNode
from testbed.routing.stacks import STACKS, RoutingStack, lab_stack
from testbed.runtime.base import Runtime
from testbed.runtime.netns import NetnsRuntime
from testbed.sa import SecurityAssociation
from testbed.topology.loader import load, resolve_path
from testbed.topology.model import Topology
from testbed.topology.overrides import with_overrides
from testbed.topology.plan import LabPlan, TunnelEnd, build_plan

STATE_ROOT = Path(os.environ.get("IIPTRAN_STATE_DIR", "/run/iiptran"))


def teardown(runtime: Runtime, release: bool = True) -> None:
    """Remove a lab's daemons, nodes and state, knowing only its name (and
    backend). With release, also what the backend ran only for labs (an engine)."""
    for stack in STACKS.values():
        stack.stop_lab(runtime.lab)
    LinkKeyings.stop_lab(runtime, STATE_ROOT / runtime.lab)
    runtime.destroy_nodes(runtime.existing_nodes())
    shutil.rmtree(STATE_ROOT / runtime.lab, ignore_errors=True)
    if release:
        runtime.after_teardown()


def make_runtime(backend: str, lab: str) -> Runtime:
    if backend == "docker":
        from testbed.runtime.containers import DockerRuntime
        return DockerRuntime(lab)
    return NetnsRuntime(lab)


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
        self.context = LabContext(self.name, self.topology, self.plan, self.runtime, self.state_dir,
                                  Path(topology_path), save=self.save, link_sas=self.link_sas)
        # Who installs each link's SAs and policies (its own state included).
        self.keying = LinkKeyings(self.context)
        # Every SA read from the nodes' kernels during the lab's life:
        # what captures are decrypted with and Wireshark is given.
        self.sa_book = SaBook()
        self.configured: set[str] = set()      # nodes whose configuration program has run
        self.timings: dict[str, float] = {}
        # Deliberate misbehaviour a negative profile attaches to lab events
        # ("members-updated", "link-state"); none in a sound lab.
        self.listeners: dict[str, list[Callable]] = {}
        self.phase = lab_state.BUILDING
        self.unconverged = ""                  # why the bring-up did not converge (with unconverged_ok)

    @property
    def datapath(self) -> Datapath:
        return MODES[self.topology.datapath]

    @functools.cached_property
    def routing(self) -> RoutingStack:
        # Once per lab: readiness waits ask for it on every poll of every node.
        return lab_stack(self.topology)

    @property
    def joined(self) -> set[str]:
        return self.context.joined

    @property
    def links(self) -> set[str]:
        return self.context.links

    def link_sas(self, node: str, peer: str) -> tuple[SecurityAssociation, SecurityAssociation]:
        """The SA pair the testbed keyed the link node-peer with, seen from
        node: (out, in). For provisioning, configuration programs and faults;
        checks read the kernel instead."""
        return self.keying.link_pair(node, self.plan.nodes[node].tunnel_to(peer))

    def keyed_links(self, keying: str) -> list[tuple[str, TunnelEnd]]:
        """(node, tunnel end) of every active link keyed this way, once per link (its first end)."""
        return self.context.first_ends(keying)

    # -- persistence -------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def save(self, phase: str | None = None) -> None:
        self.phase = phase or self.phase
        lab_state.write(self.state_file, {
            "name": self.name, "topology": str(self.topology_path), "overrides": self.overrides,
            "phase": self.phase, "owner": lab_state.me(), "joined": sorted(self.joined),
            "links": sorted(self.links), "configured": sorted(self.configured), "keying": self.keying.state(),
            "observed_sas": [sa.as_dict() for sa in self.sa_book.sas], "timings": self.timings})

    @classmethod
    def attach(cls, name: str, interrupted_ok: bool = False) -> "Lab":
        """The lab `name` that is up on this machine (e.g. for a re-check);
        with `interrupted_ok`, also one whose bring-up or join died (to tear it down)."""
        state = STATE_ROOT / check_lab_name(name) / "state.json"
        if not state.exists():
            raise UserError(f"no lab named '{name}' is up here (no {state})")
        data = lab_state.read(state)
        gone = lab_state.interrupted(data)
        if gone and not interrupted_ok:
            raise UserError(f"lab '{name}' is not up: {gone}; 'down --name {name}' removes what it left, "
                            f"'up --replace' brings it up anew")
        lab = cls(name, Path(data["topology"]), overrides=data.get("overrides", {}))
        lab.joined.update(data["joined"])
        lab.links.update(data.get("links", []))
        lab.configured = set(data.get("configured", []))
        lab.keying.load(data.get("keying", {}))
        lab.sa_book = SaBook([SecurityAssociation(**sa) for sa in data.get("observed_sas", [])])
        lab.timings = data.get("timings", {})
        lab.phase = data.get("phase", lab_state.UP)
        return lab

    @staticmethod
    def running() -> list[str]:
        return sorted(p.name for p in STATE_ROOT.glob("*") if (p / "state.json").exists())

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def up(cls, topology: str, name: str | None = None, overrides: dict[str, str] | None = None,
           before_up: Callable[["Lab"], None] | None = None, unconverged_ok: bool = False,
           replace: bool = False) -> "Lab":
        """Build and converge a lab. `before_up` (a negative profile's
        configuration fault) may change how the lab is built. With
        `unconverged_ok` a lab that does not converge stays up, the reason
        in `unconverged` (the suite judges what it can of it). With
        `replace`, a bring-up of the same name whose process died is
        cleaned away first."""
        path = resolve_path(topology)
        model = with_overrides(load(str(path)), overrides)
        lab = cls(name or default_lab_name(model.name), path, topology=model, overrides=overrides)
        if lab.state_file.exists():
            data = lab_state.read(lab.state_file)
            gone = lab_state.interrupted(data)
            if not gone:
                busy = "" if data.get("phase") == lab_state.UP else \
                    f" ({data.get('phase')} under way, process {data.get('owner', {}).get('pid')})"
                raise UserError(f"a lab named '{lab.name}' is already up{busy}; run 'down --name {lab.name}' first")
            if not replace:
                raise UserError(f"lab '{lab.name}' was {gone}; 'up --replace' cleans it and brings it up anew, "
                                f"'down --name {lab.name}' only cleans it")
            print(f"iiptran: removing lab '{lab.name}', {gone}", file=sys.stderr)
            teardown(lab.runtime, release=False)
        elif lab.runtime.existing_nodes():
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
        self.save(lab_state.BUILDING)
        self.runtime.create_nodes(list(self.plan.nodes))
        parallel([lambda node=node: base_network.configure_sysctls(self.runtime, node) for node in self.plan.nodes])
        self.timings["nodes_s"] = round(time.monotonic() - started, 2)
        self.timings.update(self.runtime.timings)
        routed = self._routed(self.active_vn_nodes())
        # The routing daemons that send nothing by themselves start while the
        # base network is built (under emulation each takes about a
        # CPU-second); leaving the block waits for them, also when the build
        # failed. The virtual links come after: a virtual link device made
        # while zebra read the kernel's devices at its start was, under load,
        # never known to it (both ends of one IKE link, ospfd never ran there).
        with meanwhile(lambda: self.routing.prepare(self.context, routed)):
            base_network.create_veths(self.runtime, self.plan)
            parallel([lambda node=node: base_network.address_node(self.runtime, node)
                      for node in self.plan.nodes.values()])
            parallel([lambda node=node: tunnels.create_lan(self.runtime, node) for node in self.plan.vn_nodes])
        self._provision_links(self.active_vn_nodes())
        self.datapath.membership_changed(self.context)
        self.timings["datapath_s"] = round(time.monotonic() - started, 2)
        self.save()
        if routed:
            self.routing.start(self.context, routed, prepared=True)
        self.timings["routing_started_s"] = round(time.monotonic() - started, 2)
        try:
            wait_converged(self)
        except WaitTimeout as exc:
            if not unconverged_ok:
                raise
            self.unconverged = str(exc)
        else:
            self.timings["up_to_converged_s"] = round(time.monotonic() - started, 2)
        self.save(lab_state.UP)

    def converged_within(self, timeout: float) -> str:
        """'' once the lab has converged (waiting up to `timeout`), else why not."""
        try:
            wait_converged(self, timeout)
        except WaitTimeout as exc:
            return str(exc)
        return ""

    def active(self, node: str) -> bool:
        return self.context.active(node)

    def _provision_links(self, nodes: list[str]) -> None:
        """Devices and IPsec for the nodes' virtual links whose other end is
        active, each by its link's keying; then the nodes that configure themselves."""
        new: list[tuple[str, TunnelEnd]] = []
        for node in nodes:
            for tunnel in self.plan.nodes[node].tunnels:
                if self.active(tunnel.peer) and tunnel.label not in self.links:
                    new.append((node, tunnel))
                    self.links.add(tunnel.label)
        programs = configure.self_configured(self.context)
        self.keying.provision(new, leave=frozenset(programs))
        self._run_programs(nodes, programs, {t.label for _, t in new})

    def _run_programs(self, nodes: list[str], programs: set[str], new: set[str]) -> None:
        """Nodes that configure themselves: `up` for each of `nodes` the
        first time, `links-added` for a member that a joining node gave new links."""
        calls = []
        for node in sorted(programs & set(self.active_vn_nodes())):
            if node in nodes and node not in self.configured:
                calls.append((node, "up", []))
            elif node in self.configured:
                added = sorted(t.label for t in self.plan.nodes[node].tunnels if t.label in new)
                if added:
                    calls.append((node, "links-added", added))
        parallel([lambda call=call: configure.run_configure(self.context, *call) for call in calls])
        self.configured |= {node for node, event, _ in calls if event == "up"}
        self.save()

    def _routed(self, nodes: list[str]) -> list[str]:
        """Those of the nodes whose routing the testbed starts (a configuration program starts its own)."""
        return [node for node in nodes if node not in configure.self_configured(self.context)]

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
        self.save(lab_state.JOINING)
        self._provision_links([node])
        self.datapath.membership_changed(self.context, only=[node])
        mine = self._routed([node])
        if mine:
            self.routing.start(self.context, mine)
        self.save()
        if self.routing.dynamic:
            wait_converged(self)
        if update_members:
            self.update_members()
        self.save(lab_state.UP)

    def update_members(self) -> None:
        self.datapath.membership_changed(self.context)
        self.routing.membership_changed(self.context)
        self.fire("members-updated")
        wait_converged(self)
        self.save(lab_state.UP)

    def set_link_state(self, node: str, peer: str, up: bool) -> None:
        """Take node's end of its virtual link to peer down or up, as a link failure would."""
        tunnels.set_tunnel_state(self.runtime, node, self.plan.nodes[node].tunnel_to(peer).device, up)
        self.fire("link-state", node=node, peer=peer, up=up)

    def fire(self, event: str, **details) -> None:
        for listener in self.listeners.get(event, []):
            listener(self, **details)

    def down(self) -> None:
        """Remove everything this lab made; safe to call on a half-built lab."""
        if self.state_dir.exists():
            self.save(lab_state.TEARING_DOWN)
        teardown(self.runtime)

    # -- access for probes and tests --------------------------------------
    def observe_sas(self) -> dict[str, xfrm.IpsecState]:
        """Every active VN node's SAD and SPD as its kernel holds them now;
        the SAs go into the book the captures are decrypted with."""
        readings = self.sa_book.observe(self.runtime, self.active_vn_nodes())
        self.save()
        return readings

    def refresh_sa_book(self) -> None:
        """Every active VN node's SAs into the book, the SPDs not read: what
        decrypting a capture needs, at less cost."""
        self.sa_book.observe(self.runtime, self.active_vn_nodes(), policies=False)
        self.save()

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
        self.refresh_sa_book()
        return decrypt(packet, self.sa_book.sas)

    def decrypt_raw(self, ip: bytes):
        """An IPv4 packet's bytes, not dissected, decrypted with the keys
        the kernels held when last read (observe_sas): (source,
        destination, SPI, payload), or None if no SA of theirs matches."""
        return decrypt_raw(ip, self.sa_book.sas)

    def _newer_than_book(self, packet) -> bool:
        return IP in packet and packet[IP].proto == IPPROTO_ESP and float(packet.time) > self.sa_book.observed_at

    def kernel_sad(self, node: str) -> xfrm.Sad:
        """The node's SAD now (observe_sas reads the SPD as well)."""
        return xfrm.read_sad(self.runtime, node)

    def frr(self, node: str) -> FrrNode:
        return FrrNode(self.runtime, node)

    def active_vn_nodes(self) -> list[str]:
        return self.context.active_vn_nodes()

    def active_link_ends(self) -> list[tuple[str, TunnelEnd]]:
        """(node, tunnel end) of every virtual link whose two ends are active."""
        return self.context.active_link_ends()
