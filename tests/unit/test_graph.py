"""The graph helpers the plan and the predictions rely on."""
from __future__ import annotations

import pytest

from testbed.topology.graph import Graph, NoPath, all_shortest_paths, hop_paths, is_connected


def square() -> Graph:
    g = Graph()
    for a, b, w in [("A", "B", 1), ("B", "D", 1), ("A", "C", 1), ("C", "D", 1)]:
        g.add_edge(a, b, weight=w)
    return g


def test_equal_cost_paths_are_all_found():
    assert sorted(all_shortest_paths(square(), "A", "D")) == [["A", "B", "D"], ["A", "C", "D"]]


def test_weights_decide():
    g = square()
    g.edge("A", "C")["weight"] = 5
    assert all_shortest_paths(g, "A", "D") == [["A", "B", "D"]]


def test_cut_and_disconnected():
    g = square()
    g.remove_edge("A", "B")
    g.remove_edge("A", "C")
    assert not is_connected(g)
    with pytest.raises(NoPath):
        all_shortest_paths(g, "A", "D")


def test_hop_paths_and_subgraph():
    g = square()
    assert len(hop_paths(g, "A")["D"]) == 3
    sub = g.subgraph(["A", "B"])
    assert "C" not in sub and sub.edge("A", "B") == {"weight": 1}
    assert is_connected(sub)
