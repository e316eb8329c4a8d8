"""The routing stack of a lab's VN nodes, behind one small interface, so the
suite asks every stack the same questions (adjacencies, interfaces) and
reads routes from the kernel, never from a daemon's own table.

- frr: zebra + ospfd per VN node (testbed/routing/frr.py).
- bird: one BIRD 2 per VN node (testbed/routing/bird.py).
- per node: a lab whose nodes name their own OSPF daemon (FRR on some, BIRD
  on others: adjacencies between the two across virtual links) asks each
  node's own stack.
- static: no daemon; each node gets kernel routes over its tunnel devices
  along the VN's shortest paths (RFC 3884 3.2: the tunnels support static
  routing as well as dynamic).
"""
from __future__ import annotations

from dataclasses import dataclass

from testbed.routing import bird
from testbed.routing.frr import EARLY, LATE, FrrNode, start_all, stop_lab_daemons
from testbed.runtime.netlink import rtnl
from testbed.topology.graph import NoPath, all_shortest_paths
from testbed.topology.model import node_routing


@dataclass(frozen=True)
class Adjacency:
    state: str              # 'Full', 'ExStart', ... (the daemon's word, role suffix dropped)
    dead_left_s: float      # until the neighbour is declared dead; each hello resets it


class RoutingStack:
    name = ""
    dynamic = True          # a protocol runs over the virtual links

    def prepare(self, lab, nodes: list[str]) -> None:
        """Start, on new nodes, what may run while their virtual links are
        still being built: daemons that send nothing by themselves."""

    def start(self, lab, nodes: list[str], prepared: bool = False) -> None:
        """Configure and start routing on these nodes (their links are up);
        `prepared`: `prepare` ran on them."""

    def membership_changed(self, lab) -> None:
        """Called after a join, once the new node's routing has started."""

    def links_rebuilt(self, lab) -> None:
        """Called after a virtual link's devices were made again (a routing
        daemon notices by itself; static routes went with the old devices)."""

    def stop_lab(self, lab_name: str) -> None:
        """Stop whatever runs for the lab, knowing only its name (also after a crash)."""

    def adjacencies(self, lab, node: str) -> dict[str, Adjacency]:
        """Tunnel device -> the adjacency as the node's daemon reports it, in one reading."""
        return {}

    def neighbours(self, lab, node: str) -> dict[str, str]:
        """Tunnel device -> adjacency state as the node's daemon reports it ('Full', ...)."""
        return {device: adjacency.state for device, adjacency in self.adjacencies(lab, node).items()}

    def protocol_interfaces(self, lab, node: str) -> list[str]:
        """Devices the node's routing protocol runs on (passive ones included)."""
        return []

    @staticmethod
    def quiet(lab, adjacencies: dict[str, Adjacency]) -> list[str]:
        """Tunnel devices whose neighbour has not been heard for more than two
        hello intervals (one at least): an adjacency still Full that a break
        just starved of hellos, and that may yet time out."""
        ospf = lab.topology.defaults.ospf
        least = max(ospf.dead - 2 * ospf.hello, ospf.hello)
        return sorted(device for device, adjacency in adjacencies.items() if adjacency.dead_left_s < least)

    def state_changes(self, lab, node: str) -> dict[str, int]:
        """Tunnel device -> how many times its adjacency changed state so far (to show one never dropped)."""
        return {}

    def bfd_sessions(self, lab, node: str) -> dict[str, str]:
        """Tunnel device -> BFD session status ('up', ...); empty without BFD."""
        return {}

    def describe(self, lab) -> dict[str, str]:
        return {"routing": self.name}


class Frr(RoutingStack):
    name = "frr"

    def prepare(self, lab, nodes):
        start_all(self._configured(lab, nodes), EARLY)

    def start(self, lab, nodes, prepared=False):
        if prepared:
            start_all([FrrNode(lab.runtime, node) for node in nodes], LATE)
        else:
            start_all(self._configured(lab, nodes))

    @staticmethod
    def _configured(lab, nodes: list[str]) -> list[FrrNode]:
        instances = [FrrNode(lab.runtime, node) for node in nodes]
        for frr in instances:
            frr.write_config(lab.plan.nodes[frr.node], lab.topology.defaults.ospf, lab.topology.defaults.bfd)
        return instances

    def stop_lab(self, lab_name):
        stop_lab_daemons(lab_name)

    def adjacencies(self, lab, node):
        return {device: Adjacency("Full" if state.startswith("Full") else state, left_ms / 1000)
                for device, (state, left_ms) in FrrNode(lab.runtime, node).ospf_neighbors().items()}

    def protocol_interfaces(self, lab, node):
        return FrrNode(lab.runtime, node).ospf_interfaces()

    def state_changes(self, lab, node):
        return FrrNode(lab.runtime, node).ospf_state_changes()

    def bfd_sessions(self, lab, node):
        return FrrNode(lab.runtime, node).bfd_peers() if lab.topology.defaults.bfd.enabled else {}


class Bird(RoutingStack):
    name = "bird"

    def start(self, lab, nodes, prepared=False):
        instances = [bird.BirdNode(lab.runtime, node) for node in nodes]
        for instance in instances:
            instance.write_config(lab.plan.nodes[instance.node], lab.topology.defaults.ospf,
                                  lab.topology.defaults.bfd)
        bird.start_all(instances)

    def stop_lab(self, lab_name):
        bird.stop_lab_daemons(lab_name)

    def adjacencies(self, lab, node):
        return {row["interface"]: Adjacency(row["state"].split("/")[0], float(row["dtime"]))
                for row in bird.BirdNode(lab.runtime, node).ospf_neighbors()}

    def protocol_interfaces(self, lab, node):
        return bird.BirdNode(lab.runtime, node).ospf_interfaces()

    def state_changes(self, lab, node):
        return bird.BirdNode(lab.runtime, node).ospf_state_changes()

    def bfd_sessions(self, lab, node):
        return bird.BirdNode(lab.runtime, node).bfd_sessions() if lab.topology.defaults.bfd.enabled else {}


class MixedStack(RoutingStack):
    """Each VN node asks its own stack (a node's `routing`, else the lab's)."""

    def __init__(self, stacks: dict[str, RoutingStack]):
        self.stacks = stacks
        self.name = "+".join(sorted({stack.name for stack in stacks.values()}))

    def _distinct(self) -> list[RoutingStack]:
        return list({stack.name: stack for stack in self.stacks.values()}.values())

    def prepare(self, lab, nodes):
        for stack, mine in self._split(nodes):
            stack.prepare(lab, mine)

    def start(self, lab, nodes, prepared=False):
        for stack, mine in self._split(nodes):
            stack.start(lab, mine, prepared)

    def _split(self, nodes: list[str]) -> list[tuple[RoutingStack, list[str]]]:
        split = [(stack, [node for node in nodes if self.stacks[node] is stack]) for stack in self._distinct()]
        return [(stack, mine) for stack, mine in split if mine]

    def stop_lab(self, lab_name):
        for stack in self._distinct():
            stack.stop_lab(lab_name)

    def adjacencies(self, lab, node):
        return self.stacks[node].adjacencies(lab, node)

    def protocol_interfaces(self, lab, node):
        return self.stacks[node].protocol_interfaces(lab, node)

    def state_changes(self, lab, node):
        return self.stacks[node].state_changes(lab, node)

    def bfd_sessions(self, lab, node):
        return self.stacks[node].bfd_sessions(lab, node)


class Static(RoutingStack):
    name = "static"
    dynamic = False

    def start(self, lab, nodes, prepared=False):
        self.membership_changed(lab)

    def links_rebuilt(self, lab):
        self.membership_changed(lab)

    def membership_changed(self, lab):
        for node, routes in static_routes(lab).items():
            with rtnl(lab.runtime.netns(node)) as ns:
                for prefix, device, gateway in routes:
                    ns.route("replace", dst=prefix, gateway=gateway, oif=ns.link_lookup(ifname=device)[0])


def static_routes(lab) -> dict[str, list[tuple[str, str, str]]]:
    """Per active VN node: (prefix, tunnel device, next hop's VN address) for
    every VN prefix it is not attached to, along a least-cost path."""
    active = lab.active_vn_nodes()
    graph = lab.plan.vn_graph().subgraph(active)
    owners = {lab.plan.nodes[n].lan_prefix: [n] for n in active}
    for node, tunnel in lab.active_link_ends():
        owners.setdefault(tunnel.subnet, [node, tunnel.peer])
    routes: dict[str, list[tuple[str, str, str]]] = {n: [] for n in active}
    for node in active:
        for prefix, ends in owners.items():
            if node in ends:
                continue
            paths = []
            for end in ends:
                try:
                    paths += all_shortest_paths(graph, node, end)
                except NoPath:
                    continue
            if not paths:
                continue
            first = min(paths, key=lambda p: (sum(graph.edge(a, b)["weight"] for a, b in zip(p, p[1:])), p))[1]
            tunnel = lab.plan.nodes[node].tunnel_to(first)
            routes[node].append((prefix, tunnel.device, tunnel.peer_vn_address))
    return routes


STACKS: dict[str, RoutingStack] = {s.name: s for s in (Frr(), Bird(), Static())}


def lab_stack(topology) -> RoutingStack:
    """The lab's stack, or a per-node one when any VN node names its own."""
    chosen = {name: node_routing(topology, name) for name in topology.vn_nodes}
    if all(routing == topology.routing for routing in chosen.values()):
        return STACKS[topology.routing]
    return MixedStack({name: STACKS[routing] for name, routing in chosen.items()})
