"""What the RFC predicts for a lab: VN paths, hop addresses, on-wire endpoint pairs."""
from __future__ import annotations

from testbed.errors import PreconditionFailed
from testbed.topology.graph import Graph, NoPath, all_shortest_paths


def vn_path(lab, src: str, dst: str, cut: tuple[str, str] | None = None) -> list[str]:
    """The OSPF shortest path over active virtual links (optionally with one link cut)."""
    return shortest_path(lab.plan.vn_graph().subgraph(lab.active_vn_nodes()), src, dst, cut)


def shortest_path(graph: Graph, src: str, dst: str, cut: tuple[str, str] | None = None) -> list[str]:
    graph = graph.copy()
    if cut:
        graph.remove_edge(*cut)
    paths = all_shortest_paths(graph, src, dst)
    if len(paths) != 1:
        raise PreconditionFailed(f"topology gives {len(paths)} equal-cost paths {src}->{dst}; "
                                 "costs must make the expected path unique")
    return paths[0]


def lan_address(lab, node: str) -> str:
    return lab.plan.nodes[node].lan_address


def hop_addresses(lab, path: list[str]) -> list[str]:
    """Traceroute's answer per hop: each router answers from the tunnel it was
    reached through; the destination answers from its VN-local address."""
    hops = [lab.plan.nodes[b].tunnel_to(a).vn_address for a, b in zip(path, path[1:-1])]
    return hops + [lan_address(lab, path[-1])]


def trace_hops(path: list[str]) -> int:
    """A traceroute's hop limit for a VN path: the path and a few more, so a
    longer detour shows as such (the figures' 12, more on a 16-node ring)."""
    return max(12, len(path) + 3)


def hop_nodes(lab, src: str, hops: list[str]) -> list[str]:
    """The VN nodes a traceroute's answering addresses belong to, from src on
    (an address no VN node owns stands for itself)."""
    owners = {}
    for node in lab.plan.vn_nodes:
        owners[lan_address(lab, node.name)] = node.name
        owners.update({t.vn_address: node.name for t in node.tunnels})
    return [src] + [owners.get(hop, hop) for hop in hops]


def reroutable_link(graph: Graph, path: list[str]) -> tuple[str, str] | None:
    """The first link of `path` whose loss leaves another path (A's link 3 in Figure 3)."""
    for a, b in zip(path, path[1:]):
        try:
            shortest_path(graph, path[0], path[-1], cut=(a, b))
        except (NoPath, PreconditionFailed):
            continue
        return a, b
    return None


def tunnel_endpoint_pairs(lab) -> set[tuple[str, str]]:
    """(src, dst) base address pairs that carry virtual links, both directions."""
    pairs = set()
    for node in lab.plan.vn_nodes:
        for t in node.tunnels:
            pairs.add((t.local_base, t.remote_base))
    return pairs
