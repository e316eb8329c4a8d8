"""The few graph questions a lab asks (connected? shortest paths, and are
they unique?), on graphs of a few dozen nodes.

Written here rather than imported from networkx: under software emulation
importing networkx alone costs 3-5 s of every run's start-up, more than
everything this module does in a whole run.
"""
from __future__ import annotations

import heapq
from collections import deque


class NoPath(Exception):
    pass


class Graph:
    """Undirected graph; edges carry attributes (weight, label)."""

    def __init__(self) -> None:
        self.adjacency: dict[str, dict[str, dict]] = {}

    def add_node(self, node: str) -> None:
        self.adjacency.setdefault(node, {})

    def add_edge(self, a: str, b: str, **attrs) -> None:
        self.add_node(a)
        self.add_node(b)
        self.adjacency[a][b] = self.adjacency[b][a] = dict(attrs)

    def remove_edge(self, a: str, b: str) -> None:
        del self.adjacency[a][b]
        del self.adjacency[b][a]

    def edge(self, a: str, b: str) -> dict:
        return self.adjacency[a][b]

    def __contains__(self, node: str) -> bool:
        return node in self.adjacency

    def subgraph(self, nodes) -> "Graph":
        keep = set(nodes)
        sub = Graph()
        for node in self.adjacency:
            if node in keep:
                sub.add_node(node)
                for peer, attrs in self.adjacency[node].items():
                    if peer in keep:
                        sub.add_edge(node, peer, **attrs)
        return sub

    def copy(self) -> "Graph":
        return self.subgraph(self.adjacency)


def hop_paths(graph: Graph, src: str) -> dict[str, list[str]]:
    """A fewest-hops path from src to every reachable node (breadth first)."""
    paths = {src: [src]}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        for peer in graph.adjacency[node]:
            if peer not in paths:
                paths[peer] = paths[node] + [peer]
                queue.append(peer)
    return paths


def is_connected(graph: Graph) -> bool:
    nodes = list(graph.adjacency)
    return not nodes or len(hop_paths(graph, nodes[0])) == len(nodes)


def all_shortest_paths(graph: Graph, src: str, dst: str, weight: str = "weight") -> list[list[str]]:
    """Every least-cost path (Dijkstra keeping all equal-cost predecessors)."""
    if src not in graph or dst not in graph:
        raise NoPath(f"{src} or {dst} is not in the graph")
    cost = {src: 0}
    before: dict[str, list[str]] = {src: []}
    heap = [(0, src)]
    done = set()
    while heap:
        dist, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        for peer, attrs in graph.adjacency[node].items():
            new = dist + attrs.get(weight, 1)
            if peer not in cost or new < cost[peer]:
                cost[peer], before[peer] = new, [node]
                heapq.heappush(heap, (new, peer))
            elif new == cost[peer] and node not in before[peer]:
                before[peer].append(node)
    if dst not in cost:
        raise NoPath(f"no path from {src} to {dst}")

    def unwind(node: str) -> list[list[str]]:
        if node == src:
            return [[src]]
        return [path + [node] for prev in before[node] for path in unwind(prev)]

    return unwind(dst)
