"""Turn a Topology into concrete per-node interfaces, addresses and routes.

Conventions (so that names in captures and tables explain themselves):
base-facing veths are `b-<peer>`, tunnel devices `t-<peer>`, the VN-local
prefix sits on a dummy `lan0`. On a /30 the first listed end takes the
first host address.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property

from testbed.topology.graph import Graph, hop_paths
from testbed.topology.model import Topology

LAN_DEVICE = "lan0"


def _hosts(subnet: str) -> tuple[str, str, int]:
    net = ipaddress.IPv4Network(subnet)
    first, second = list(net.hosts())[:2]
    return str(first), str(second), net.prefixlen


@dataclass(frozen=True)
class Veth:
    device: str
    address: str          # a.b.c.d
    prefixlen: int
    peer_node: str
    peer_device: str


@dataclass(frozen=True)
class TunnelEnd:
    link_index: int
    label: str            # the figure's name, or "<a>-<b>"
    device: str
    local_base: str
    remote_base: str
    vn_address: str
    peer_vn_address: str
    prefixlen: int
    peer: str
    cost: int
    algorithm: str
    keying: str = "manual"

    @property
    def subnet(self) -> str:
        """The virtual link's VN prefix, e.g. 172.16.1.0/30."""
        return str(ipaddress.IPv4Interface(f"{self.vn_address}/{self.prefixlen}").network)


@dataclass
class NodePlan:
    name: str
    role: str             # "router" or "vn"
    veths: list[Veth] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)   # (destination, gateway)
    tunnels: list[TunnelEnd] = field(default_factory=list)
    lan: str | None = None                                         # a.b.c.d/len on lan0
    detached: bool = False

    @property
    def lan_prefix(self) -> str:
        return str(ipaddress.IPv4Interface(self.lan).network)

    @property
    def lan_address(self) -> str:
        """The node's address on its LAN (also its OSPF router ID)."""
        return str(ipaddress.IPv4Interface(self.lan).ip)

    @property
    def base_address(self) -> str:
        return self.veths[0].address

    def tunnel_to(self, peer: str) -> TunnelEnd:
        for tunnel in self.tunnels:
            if tunnel.peer == peer:
                return tunnel
        raise KeyError(f"{self.name} has no virtual link to {peer}")


@dataclass
class LabPlan:
    topology: Topology
    nodes: dict[str, NodePlan]

    @property
    def vn_nodes(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.role == "vn"]

    @property
    def routers(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.role == "router"]

    def vn_graph(self) -> Graph:
        """VN nodes joined by virtual links weighted with their OSPF cost."""
        graph = Graph()
        for node in self.vn_nodes:
            graph.add_node(node.name)
        for node in self.vn_nodes:
            for t in node.tunnels:
                graph.add_edge(node.name, t.peer, weight=t.cost, label=t.label)
        return graph

    def base_path(self, a: str, b: str) -> list[str]:
        """The base routers a virtual link between VN nodes a and b crosses
        (the fewest-hops path the base routes follow)."""
        start, end = self.nodes[a].veths[0].peer_node, self.nodes[b].veths[0].peer_node
        return hop_paths(self._base_graph, start)[end]

    @cached_property
    def _base_graph(self) -> Graph:
        return base_graph(self.topology)


def build_plan(t: Topology) -> LabPlan:
    nodes = {name: NodePlan(name, "router") for name in t.base.routers}
    for link in t.base.links:
        a, b = link.ends
        addr_a, addr_b, plen = _hosts(link.subnet)
        nodes[a].veths.append(Veth(f"b-{b}", addr_a, plen, b, f"b-{a}"))
        nodes[b].veths.append(Veth(f"b-{a}", addr_b, plen, a, f"b-{b}"))
    for name, vn in t.vn_nodes.items():
        router_addr, host_addr, plen = _hosts(vn.access)
        node = NodePlan(name, "vn", detached=vn.detached)
        node.veths.append(Veth(f"b-{vn.router}", host_addr, plen, vn.router, f"b-{name}"))
        node.routes.append(("0.0.0.0/0", router_addr))
        lan = ipaddress.IPv4Network(vn.lan)
        node.lan = f"{next(lan.hosts()) if lan.prefixlen < 32 else lan.network_address}/{lan.prefixlen}"
        nodes[vn.router].veths.append(Veth(f"b-{name}", router_addr, plen, name, f"b-{vn.router}"))
        nodes[name] = node
    _base_routes(t, nodes)
    for index, link in enumerate(t.virtual_links):
        a, b = link.ends
        vn_a, vn_b, plen = _hosts(link.subnet)
        label = link.label or f"{a}-{b}"
        cost = link.cost or t.defaults.ospf.cost
        algorithm = (link.ipsec or t.defaults.ipsec).algorithm
        keying = link.keying or t.keying
        for me, peer, mine, theirs in ((a, b, vn_a, vn_b), (b, a, vn_b, vn_a)):
            nodes[me].tunnels.append(TunnelEnd(
                index, label, f"t-{peer}", nodes[me].base_address, nodes[peer].base_address,
                mine, theirs, plen, peer, cost, algorithm, keying))
    return LabPlan(t, nodes)


def base_graph(t: Topology) -> Graph:
    """Base routers joined by base links."""
    graph = Graph()
    for router in t.base.routers:
        graph.add_node(router)
    for link in t.base.links:
        graph.add_edge(*link.ends)
    return graph


def _base_routes(t: Topology, nodes: dict[str, NodePlan]) -> None:
    """Static routes on the base routers: every base subnet via the shortest path."""
    graph = base_graph(t)
    owned: dict[str, list[str]] = {r: [] for r in t.base.routers}   # subnets attached to router
    for link in t.base.links:
        for end in link.ends:
            owned[end].append(link.subnet)
    for vn in t.vn_nodes.values():
        owned[vn.router].append(vn.access)
    paths = {router: hop_paths(graph, router) for router in t.base.routers}
    for router in t.base.routers:
        connected = set(owned[router])
        for target, subnets in owned.items():
            if target == router:
                continue
            next_hop = paths[router][target][1]
            gateway = next(v.address for v in nodes[next_hop].veths if v.peer_node == router)
            for subnet in subnets:
                if subnet not in connected:
                    connected.add(subnet)
                    nodes[router].routes.append((subnet, gateway))
