"""How a virtual link is built: IIPtran, or one of the alternatives the RFC
compares it with, so the same suite can run against each on one topology.

- iiptran (RFC 3884 3): an ipip device per end, transport-mode ESP selecting
  IP protocol 4 between the two base endpoints.
- tunnel-interface (4.1.1, "interface SAs"): an xfrm interface per end,
  tunnel-mode ESP bound to it by if_id, any inner traffic.
- tunnel-policy (2.3): no interfaces; tunnel-mode ESP whose policies name
  inner source and destination prefixes, written statically along the
  paths the VN would use, the way a firewall-style VPN is configured.
"""
from __future__ import annotations

from dataclasses import replace

from testbed.datapath import ipsec, tunnels
from testbed.parallel import parallel
from testbed.topology.graph import NoPath, all_shortest_paths
from testbed.topology.plan import TunnelEnd


class Datapath:
    name = ""
    summary = ""
    sa_mode = "tunnel"
    dynamic_routing = True      # virtual links are interfaces a routing daemon can use

    def provision_links(self, lab, links: list[tuple[str, TunnelEnd, TunnelEnd, int]],
                        leave: frozenset[str] = frozenset()) -> list[ipsec.SecurityAssociation]:
        """Both ends of each (node, tunnel, peer's tunnel, reqid) link, with a
        fresh SA per direction. Each node's ends are built in one go (its
        devices, then one `ip -batch`), nodes side by side; the nodes in
        `leave` configure themselves (a hook, given these SAs)."""
        ends: dict[str, list[tuple[TunnelEnd, ipsec.SecurityAssociation, ipsec.SecurityAssociation]]] = {}
        sas = []
        for node, tunnel, peer_tunnel, reqid in links:
            out, back = ipsec.link_sas(tunnel, reqid, self.sa_mode, self.if_id(tunnel))
            ends.setdefault(node, []).append((tunnel, out, back))
            ends.setdefault(tunnel.peer, []).append((peer_tunnel, back, out))
            sas += [out, back]
        parallel([lambda node=node, items=items: self.build_ends(lab, node, items) for node, items in ends.items()
                  if node not in leave])
        return sas

    def if_id(self, tunnel: TunnelEnd) -> int:
        return 0

    def build_devices(self, lab, node: str, tunnel: TunnelEnd, peer_tunnel: TunnelEnd) -> None:
        """Both ends' interfaces only, for a link whose SAs another party
        (an IKE daemon) installs."""
        raise NotImplementedError(f"datapath {self.name} builds its links with manual keys only")

    def build_ends(self, lab, node: str, ends: list[tuple[TunnelEnd, ipsec.SecurityAssociation,
                                                           ipsec.SecurityAssociation]]) -> None:
        """Some of one node's link ends, each given as (tunnel, out SA, in SA)."""
        for tunnel, _, _ in ends:
            self.build_device(lab, node, tunnel)
        ipsec.apply_batch(lab.runtime, node, [line for end in ends for line in self.end_batch(*end)])

    def build_end(self, lab, node: str, tunnel: TunnelEnd, out: ipsec.SecurityAssociation,
                  back: ipsec.SecurityAssociation) -> None:
        """One end: its device (if the mode has one) and its IPsec state."""
        self.build_ends(lab, node, [(tunnel, out, back)])

    def build_device(self, lab, node: str, tunnel: TunnelEnd) -> None:
        """What an end needs besides its SAs and policies."""
        raise NotImplementedError

    def remove_end(self, lab, node: str, tunnel: TunnelEnd, out: ipsec.SecurityAssociation,
                   back: ipsec.SecurityAssociation) -> None:
        """One end's SAs and policies (as this construction installs the pair) and its device."""
        ipsec.apply_batch(lab.runtime, node, ipsec.removal(self.end_batch(tunnel, out, back)), missing_ok=True)
        self.remove_device(lab, node, tunnel)

    def remove_device(self, lab, node: str, tunnel: TunnelEnd) -> None:
        """One end's device, whichever construction made it, and an outer TTL pinned on its route."""
        tunnels.remove_device(lab.runtime, node, tunnel.device)
        tunnels.unpin_outer_ttl(lab.runtime, lab.plan.nodes[node], tunnel.remote_base)

    def end_batch(self, tunnel: TunnelEnd, out, back) -> list[str]:
        return [ipsec.state_line(out), ipsec.state_line(back)]

    def membership_changed(self, lab, only: list[str] | None = None) -> None:
        """Called once a bring-up or a join has provisioned its links; `only`
        limits the change to those nodes (a join's first step)."""


class Iiptran(Datapath):
    name = "iiptran"
    summary = "ipip devices + transport-mode ESP (RFC 3884 3)"
    sa_mode = "transport"

    def build_device(self, lab, node, tunnel):
        tunnels.create_tunnel(lab.runtime, node, tunnel, lab.topology.defaults.tunnel.ttl)

    def build_devices(self, lab, node, tunnel, peer_tunnel):
        for end, end_tunnel in ((node, tunnel), (tunnel.peer, peer_tunnel)):
            self.build_device(lab, end, end_tunnel)

    def end_batch(self, tunnel, out, back):
        as_transport = [replace(sa, mode="transport", if_id=0) for sa in (out, back)]
        return ipsec.xfrm_batch(tunnel.local_base, tunnel.remote_base, *as_transport)


class TunnelInterface(Datapath):
    name = "tunnel-interface"
    summary = "xfrm interfaces + tunnel-mode ESP (RFC 3884 4.1.1, interface SAs)"

    def if_id(self, tunnel):
        return tunnel.link_index + 1          # the same on both ends: one id per virtual link

    def build_device(self, lab, node, tunnel):
        tunnels.create_xfrm_interface(lab.runtime, node, tunnel, self.if_id(tunnel),
                                      lab.plan.nodes[node].veths[0].device)
        tunnels.pin_outer_ttl(lab.runtime, lab.plan.nodes[node], tunnel.remote_base, lab.topology.defaults.tunnel.ttl)

    def end_batch(self, tunnel, out, back):
        out, back = (replace(sa, mode="tunnel", if_id=self.if_id(tunnel)) for sa in (out, back))
        anything = "src 0.0.0.0/0 dst 0.0.0.0/0"
        return [ipsec.state_line(out), ipsec.state_line(back), ipsec.policy_line(anything, "out", out),
                ipsec.policy_line(anything, "in", back), ipsec.policy_line(anything, "fwd", back)]


class TunnelPolicy(Datapath):
    name = "tunnel-policy"
    summary = "tunnel-mode ESP with inner selectors, no interfaces (RFC 3884 2.3)"
    dynamic_routing = False

    def build_device(self, lab, node, tunnel):
        # No device: the outer TTL is the route's to the far end.
        tunnels.pin_outer_ttl(lab.runtime, lab.plan.nodes[node], tunnel.remote_base, lab.topology.defaults.tunnel.ttl)

    def membership_changed(self, lab, only=None):
        for node, lines in selector_policies(lab).items():
            if lines and (only is None or node in only):
                ipsec.apply_batch(lab.runtime, node, lines)


def selector_policies(lab) -> dict[str, list[str]]:
    """Per node, the policies that steer each VN-local prefix pair along its
    shortest path: `out` where a packet enters a tunnel, `fwd` where it
    leaves one to go on, `in` where it is delivered. `update` adds what a
    join needs and leaves identical entries as they are."""
    graph = lab.plan.vn_graph().subgraph(lab.active_vn_nodes())
    lines: dict[str, list[str]] = {n: [] for n in lab.active_vn_nodes()}
    for src in lab.active_vn_nodes():
        for dst in lab.active_vn_nodes():
            if src == dst:
                continue
            try:
                path = all_shortest_paths(graph, src, dst)[0]
            except NoPath:
                continue
            selector = f"src {lab.plan.nodes[src].lan_prefix} dst {lab.plan.nodes[dst].lan_prefix}"
            for a, b in zip(path, path[1:]):
                sa, _ = lab.link_sas(a, b)
                lines[a].append(ipsec.policy_line(selector, "out", sa, verb="update"))
                lines[b].append(ipsec.policy_line(selector, "in" if b == dst else "fwd", sa, verb="update"))
    return lines


MODES: dict[str, Datapath] = {m.name: m for m in (Iiptran(), TunnelPolicy(), TunnelInterface())}
