"""The `status` table: nodes, tunnels, OSPF neighbours, SAs with packet counters."""
from __future__ import annotations

from tabulate import tabulate

from testbed.probe.inspect import devices, sa_packet_counters


NODE_KINDS = {"netns": "network namespaces", "docker": "Docker containers"}


def render(lab) -> str:
    rows = []
    for node in lab.plan.nodes.values():
        active = node.role == "router" or lab.active(node.name)
        devs = devices(lab.runtime, node.name)
        neighbours = lab.frr(node.name).ospf_neighbors() if node.role == "vn" and active else {}
        counters = sa_packet_counters(lab.runtime, node.name) if node.role == "vn" else {}
        tunnels = []
        for t in node.tunnels:
            dev = devs.get(t.device)
            if dev is None and not (lab.active(t.peer) and active):
                tunnels.append(f"{t.device} (not provisioned)")
                continue
            try:
                out_sa, in_sa = lab.link_sas(node.name, t.peer)
            except KeyError:
                out_sa = in_sa = None
            tunnels.append(
                f"{t.device if dev else '(no interface)'} [{t.label}] {t.vn_address}/{t.prefixlen} -> {t.peer} "
                f"ospf={neighbours.get(t.device, '-')} "
                f"sa out={_sa(out_sa, counters)} in={_sa(in_sa, counters)}")
        base = ", ".join(f"{v.device} {v.address}/{v.prefixlen}" for v in node.veths)
        role = node.role if active else "vn (detached)"
        rows.append([node.name, role, base, "\n".join(tunnels) or "-"])
    table = tabulate(rows, headers=["node", "role", "base interfaces", "tunnels (OSPF, SAs: packets)"],
                     tablefmt="simple")
    return (f"lab {lab.name} (topology {lab.topology.name}, {lab.topology_path}; "
            f"datapath {lab.datapath.summary}; nodes: {NODE_KINDS[lab.runtime.backend]})\n{table}")


def _sa(sa, counters: dict[int, int]) -> str:
    if sa is None:
        return "none"
    return f"0x{sa.spi:08x}:{counters.get(sa.spi, '?')}"
