"""Where faults strike: the links of the first flow's path, and the
manually keyed SAs of each link end."""
from __future__ import annotations

from testbed import expect
from testbed.keying.manual import ManualKeying


def first_flow_path(lab) -> list[str]:
    """The first flow's path in the whole planned VN (detached nodes too: a
    fault that acts at bring-up strikes before anyone has joined)."""
    flow = next(iter(lab.topology.flows.values()))
    return expect.shortest_path(lab.plan.vn_graph(), flow.src, flow.dst)


def first_link(lab) -> tuple[str, str]:
    """(node, peer) of the first flow's path: the first VN router and the next node."""
    path = first_flow_path(lab)
    return path[1], path[2] if len(path) > 2 else path[0]


def last_link(lab) -> tuple[str, str]:
    """(node, peer) of the last virtual link of the first flow's path (A-B in Figure 6)."""
    path = first_flow_path(lab)
    return path[-2], path[-1]


def manual_link_ends(lab):
    """(node, tunnel end, out SA, in SA) for every active, manually keyed link end."""
    for node, tunnel in lab.active_link_ends():
        if tunnel.keying == ManualKeying.name:
            yield node, tunnel, *lab.link_sas(node, tunnel.peer)
