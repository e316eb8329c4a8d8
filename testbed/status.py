"""The `status` table: nodes, tunnels, adjacencies, and the SAs each node's
kernel holds for its links, with their packet counters."""
from __future__ import annotations

from tabulate import tabulate

from testbed.probe.inspect import devices

NODE_KINDS = {"netns": "network namespaces", "docker": "Docker containers"}


def render(lab) -> str:
    rows = []
    sads = lab.observe_sas()
    for node in lab.plan.nodes.values():
        active = node.role == "router" or lab.active(node.name)
        devs = devices(lab.runtime, node.name)
        neighbours = lab.routing.neighbours(lab, node.name) if node.role == "vn" and active else {}
        tunnels = []
        for t in node.tunnels:
            dev = devs.get(t.device)
            if dev is None and not (lab.active(t.peer) and active):
                tunnels.append(f"{t.device} (not provisioned)")
                continue
            sad = sads.get(node.name)
            held = {direction: sad.between(src, dst) if sad else []
                    for direction, src, dst in (("out", t.local_base, t.remote_base),
                                                ("in", t.remote_base, t.local_base))}
            sas = " ".join(f"{d}=" + (",".join(f"0x{sa.spi:08x}:{sa.mode}:{sa.packets}" for sa in found) or "none")
                           for d, found in held.items())
            tunnels.append(f"{t.device if dev else '(no interface)'} [{t.label}, {t.keying}] "
                           f"{t.vn_address}/{t.prefixlen} -> {t.peer} adjacency={neighbours.get(t.device, '-')} {sas}")
        base = ", ".join(f"{v.device} {v.address}/{v.prefixlen}" for v in node.veths)
        role = node.role if active else "vn (detached)"
        rows.append([node.name, role, base, "\n".join(tunnels) or "-"])
    table = tabulate(rows, headers=["node", "role", "base interfaces",
                                    "tunnels (keying, adjacency, SAs in the kernel: spi:mode:packets)"],
                     tablefmt="simple")
    return (f"lab {lab.name} (topology {lab.topology.name}, {lab.topology_path}; "
            f"datapath {lab.datapath.summary}; routing {lab.routing.name}; "
            f"nodes: {NODE_KINDS[lab.runtime.backend]})\n{table}")
