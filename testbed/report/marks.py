"""What the topology drawing highlights, from a run's results: each flow's
VN path (as traceroute saw it, or as OSPF should choose it when no complete
trace was kept) and the nodes and virtual links the failed checks concern.

A failed check concerns the flow or node it was run for (its pytest
parameter) and the nodes and links its failure message names: the suite
writes one problem per line, led by the node ("B: ...") or naming a direction ("A->B") and
naming links as "link <label>" or "<node>-<node>".
"""
from __future__ import annotations

import json
import re

from testbed.report.diagram import Marks
from testbed.topology.graph import NoPath, all_shortest_paths
from testbed.topology.plan import LabPlan
from testbed.verdicts import FAILING

FAILED = FAILING
LEAD = re.compile(r"^\s*(?:AssertionError:\s*)?([\w.]+):")
ARROW = re.compile(r"\b([\w.]+)\s*->\s*([\w.]+)")
LINK = re.compile(r"\blink\s+([\w.-]+)")
PAIR = re.compile(r"\b([\w.]+)-([\w.]+)\b")
PARAM = re.compile(r"\[([^\]]+)\]$")


def observed_paths(tests: list[dict]) -> dict[str, list[str]]:
    return {item["title"]: json.loads(item["body"]) for test in tests for item in test["evidence"]
            if item.get("kind") == "path"}


def flow_paths(plan: LabPlan, tests: list[dict]) -> tuple[dict[str, list[str]], set[str]]:
    """Flow name -> VN path, and the names whose path was observed."""
    graph = plan.vn_graph()
    seen = {name: path for name, path in observed_paths(tests).items() if _walkable(graph, path)}
    paths = {}
    for name, flow in plan.topology.flows.items():
        if name in seen and (seen[name][0], seen[name][-1]) == (flow.src, flow.dst):
            paths[name] = seen[name]
            continue
        try:
            candidates = all_shortest_paths(graph, flow.src, flow.dst)
        except NoPath:
            continue
        paths[name] = candidates[0]
    return paths, {name for name in paths if paths[name] == seen.get(name)}


def _walkable(graph, path: list[str]) -> bool:
    """A trace with unanswered hops ('*') or hops off the VN is no path to draw."""
    return all(a in graph and b in graph.adjacency[a] for a, b in zip(path, path[1:]))


def build_marks(plan: LabPlan, tests: list[dict]) -> tuple[Marks, set[str]]:
    paths, observed = flow_paths(plan, tests)
    marks = Marks(flows=paths)
    labels = _link_labels(plan)
    for test in tests:
        if test["outcome"] not in FAILED:
            continue
        param = PARAM.search(test["id"])
        if param and param.group(1) in paths:
            path = paths[param.group(1)]
            marks.failed_nodes.update((path[0], path[-1]))
            marks.failed_links.update(labels[frozenset(p)] for p in zip(path, path[1:]) if frozenset(p) in labels)
        elif param and param.group(1) in plan.nodes:
            marks.failed_nodes.add(param.group(1))
        nodes, links = concerned(plan, test["message"], labels)
        marks.failed_nodes |= nodes
        marks.failed_links |= links
    return marks, observed


def concerned(plan: LabPlan, message: str, labels: dict[frozenset, str] | None = None) -> tuple[set[str], set[str]]:
    """Nodes leading a failure message's lines, and the virtual links it names."""
    labels = labels if labels is not None else _link_labels(plan)
    nodes, links = set(), set()
    for line in message.splitlines():
        named = list(LEAD.findall(line)) + [n for pair in ARROW.findall(line) for n in pair]
        nodes.update(n for n in named if n in plan.nodes)
        links.update(m for m in LINK.findall(line) if m in labels.values())
        links.update(labels[frozenset(p)] for p in PAIR.findall(line) if frozenset(p) in labels)
    return nodes, links


def _link_labels(plan: LabPlan) -> dict[frozenset, str]:
    return {frozenset((node.name, t.peer)): t.label for node in plan.vn_nodes for t in node.tunnels}
