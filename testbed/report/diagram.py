"""An SVG of what was built: base routers and links below, VN nodes above,
access links dashed, virtual links as labelled arcs over the base paths."""
from __future__ import annotations

from html import escape

from testbed.topology.plan import LabPlan

WIDTH_PER_NODE = 110
VN_Y, ROUTER_Y = 150, 330


def _positions(names: list[str], y: int, width: int) -> dict[str, tuple[int, int]]:
    step = width / (len(names) + 1)
    return {name: (round(step * (i + 1)), y) for i, name in enumerate(names)}


def render_svg(plan: LabPlan) -> str:
    vn = [n.name for n in plan.vn_nodes]
    routers = [n.name for n in plan.routers]
    width = max(len(vn), len(routers), 4) * WIDTH_PER_NODE
    pos = {**_positions(vn, VN_Y, width), **_positions(routers, ROUTER_Y, width)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 400" width="{width}" height="400" '
           'role="img" aria-label="lab topology">',
           '<style>text{font:13px sans-serif} .lbl{font-size:11px;fill:#1558b0}</style>']
    drawn = set()
    for node in plan.nodes.values():
        for veth in node.veths:
            key = frozenset({node.name, veth.peer_node})
            if key in drawn:
                continue
            drawn.add(key)
            (x1, y1), (x2, y2) = pos[node.name], pos[veth.peer_node]
            base = node.role == "router" and plan.nodes[veth.peer_node].role == "router"
            style = 'stroke="#888" stroke-width="4"' if base else 'stroke="#aaa" stroke-dasharray="4 3"'
            if base:   # routers share a row: bow the line downwards so links do not overlap
                mid_x, mid_y = (x1 + x2) / 2, ROUTER_Y + 20 + abs(x2 - x1) / 6
                out.append(f'<path d="M{x1},{y1} Q{mid_x},{mid_y} {x2},{y2}" fill="none" {style}/>')
            else:
                out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" {style}/>')
    links = set()
    for node in plan.vn_nodes:
        for t in node.tunnels:
            if (t.peer, node.name) in links:
                continue
            links.add((node.name, t.peer))
            (x1, y1), (x2, y2) = pos[node.name], pos[t.peer]
            mid_x, mid_y = (x1 + x2) / 2, VN_Y - 30 - abs(x2 - x1) / 2.5
            out.append(f'<path d="M{x1},{y1} Q{mid_x},{mid_y} {x2},{y2}" fill="none" stroke="#1558b0" '
                       'stroke-width="2"/>')
            # The label sits on the arc's apex (the Bezier curve's midpoint).
            out.append(f'<text class="lbl" x="{mid_x}" y="{(y1 + 2 * mid_y + y2) / 4 - 4}" '
                       f'text-anchor="middle">{escape(t.label)} (cost {t.cost})</text>')
    for name, (x, y) in pos.items():
        router = plan.nodes[name].role == "router"
        fill = "#eee" if router else ("#fff7d6" if plan.nodes[name].detached else "#dcebff")
        out.append(f'<circle cx="{x}" cy="{y}" r="20" fill="{fill}" stroke="#333"/>')
        out.append(f'<text x="{x}" y="{y + 5}" text-anchor="middle">{escape(name)}</text>')
    out.append(f'<text x="8" y="{VN_Y - 110}">virtual network (IPIP + ESP transport, OSPF)</text>')
    out.append(f'<text x="8" y="{ROUTER_Y + 60}">base network (static routes)</text>')
    out.append("</svg>")
    return "\n".join(out)
