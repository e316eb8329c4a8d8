"""An SVG of what was built, laid out by Graphviz's dot so that labels never
overlap whatever the size of the lab: VN nodes (each naming its base router)
and their virtual links (each labelled with the base routers it crosses)
above, the base network below,
each flow's VN path in its own colour, and what a failed check concerns in red.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field

from testbed.topology.graph import hop_paths
from testbed.topology.plan import LabPlan

FLOW_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
FAILED = "#d00000"
LINK = "#1558b0"
INSTALL_HINT = "the topology drawing needs Graphviz's dot (Debian/Ubuntu package graphviz)"


@dataclass
class Marks:
    """What to highlight: flow name -> VN path, and what failed checks concern."""
    flows: dict[str, list[str]] = field(default_factory=dict)
    failed_nodes: set[str] = field(default_factory=set)
    failed_links: set[str] = field(default_factory=set)     # virtual link labels

    def flow_colour(self, name: str) -> str:
        return FLOW_COLOURS[sorted(self.flows).index(name) % len(FLOW_COLOURS)]


def dot_source(plan: LabPlan, marks: Marks):
    import graphviz
    dot = graphviz.Graph("lab", engine="dot")
    dot.attr(newrank="true", nodesep="0.3", ranksep="0.35", bgcolor="transparent", fontname="sans-serif",
             fontsize="11", labeljust="l")
    dot.attr("node", fontname="sans-serif", fontsize="11", style="filled", penwidth="1.2")
    dot.attr("edge", fontname="sans-serif", fontsize="9")
    _vn_cluster(dot, plan, marks)
    with dot.subgraph(name="cluster_base") as base:
        base.attr(label="base network (static routes)", color="#cccccc", fontcolor="#555555")
        for router in plan.routers:
            base.node(router.name, shape="box", fillcolor="#eeeeee", color=_colour(router.name in marks.failed_nodes),
                      id=f"node_{router.name}", tooltip=f"base router {router.name}")
        for link in plan.topology.base.links:
            base.edge(*link.ends, color="#888888", penwidth="3")
    for node in plan.vn_nodes:   # unseen: they only keep the base network below the VN
        dot.edge(node.name, node.veths[0].peer_node, style="invis", weight="0")
    return dot


def _vn_cluster(dot, plan: LabPlan, marks: Marks) -> None:
    on_path: dict[frozenset, list[str]] = {}
    for name, path in sorted(marks.flows.items()):
        for a, b in zip(path, path[1:]):
            on_path.setdefault(frozenset((a, b)), []).append(name)
    with dot.subgraph(name="cluster_vn") as vn:
        vn.attr(label="virtual network (IPIP + ESP transport, OSPF)", color="#9bbbe0", fontcolor=LINK)
        for node in plan.vn_nodes:
            fill = "#fff7d6" if node.detached else "#dcebff"
            router = node.veths[0].peer_node
            vn.node(node.name, label=f'<<b>{node.name}</b><br/><font point-size="8">{router}</font>>', shape="circle", fillcolor=fill, color=_colour(node.name in marks.failed_nodes),
                    penwidth="3" if node.name in marks.failed_nodes else "1.2", id=f"node_{node.name}",
                    tooltip=f"VN node {node.name}, base router {router}"
                            + (" (starts detached)" if node.detached else ""))
        depth = _depths(plan)
        drawn = set()
        for node in plan.vn_nodes:
            for t in node.tunnels:
                if (t.peer, node.name) in drawn:
                    continue
                drawn.add((node.name, t.peer))
                # dot ranks an edge's tail above its head: point every link away
                # from the best-connected node, so rings and meshes fold up.
                tail, head = (node.name, t.peer) if depth[node.name] <= depth[t.peer] else (t.peer, node.name)
                failed = t.label in marks.failed_links
                flows = on_path.get(frozenset((node.name, t.peer)), [])
                colours = ([FAILED] if failed else [LINK]) + [marks.flow_colour(f) for f in flows]
                via = " ".join(plan.base_path(node.name, t.peer))
                vn.edge(tail, head, label=f"{t.label} · cost {t.cost} · via {via}", color=":".join(colours),
                        penwidth="2.5" if failed or flows else "1.5", fontcolor=FAILED if failed else LINK,
                        id=f"link_{_safe(t.label)}", tooltip=f"virtual link {t.label}: {node.name} {t.local_base} "
                        f"<-> {t.peer} {t.remote_base}, across {via}")


def _depths(plan: LabPlan) -> dict[str, int]:
    """Hops from the VN node with the most virtual links, per VN node."""
    graph = plan.vn_graph()
    depth = {}
    for start in sorted(graph.adjacency, key=lambda n: (-len(graph.adjacency[n]), n)):
        if start not in depth:   # one root per connected part
            depth.update({n: len(p) - 1 for n, p in hop_paths(graph, start).items() if n not in depth})
    return depth


def _colour(failed: bool) -> str:
    return FAILED if failed else "#333333"


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", label)


def render_svg(plan: LabPlan, marks: Marks | None = None) -> str:
    """The drawing as inline SVG, or a sentence saying why there is none."""
    if shutil.which("dot") is None:
        return f"<p>({INSTALL_HINT}; it was not found on this machine)</p>"
    svg = dot_source(plan, marks or Marks()).pipe(format="svg", encoding="utf-8")
    return svg[svg.index("<svg"):]
