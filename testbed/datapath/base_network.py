"""The base network: veth pairs, addresses, static routes, forwarding.

VN nodes are base *hosts* (a default route to their base router, RFC 3884
2.4); base routers carry static routes between base subnets. Nothing of the
VN is visible here.
"""
from __future__ import annotations

from testbed.parallel import parallel
from testbed.runtime.base import Runtime
from testbed.runtime.netlink import netns_fd, rtnl
from testbed.topology.plan import LabPlan, NodePlan

NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    # ICMP errors leave from the address of the interface the packet came in
    # on, so a traceroute names the tunnel each hop was reached through.
    "net.ipv4.icmp_errors_use_inbound_ifaddr": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def configure_sysctls(runtime: Runtime, node: str) -> None:
    runtime.sysctl(node, NODE_SYSCTLS)


def create_veths(runtime: Runtime, plan: LabPlan) -> None:
    """One veth pair per base link and per VN node's access link, each made
    from the node that lists it first; nodes side by side."""
    done: set[frozenset[tuple[str, str]]] = set()
    owned: dict[str, list] = {}
    for node in plan.nodes.values():
        for veth in node.veths:
            key = frozenset({(node.name, veth.device), (veth.peer_node, veth.peer_device)})
            if key not in done:
                done.add(key)
                owned.setdefault(node.name, []).append(veth)
    parallel([lambda node=node, veths=veths: _create_node_veths(runtime, node, veths)
              for node, veths in owned.items()])


def _create_node_veths(runtime: Runtime, node: str, veths: list) -> None:
    with rtnl(runtime.netns(node)) as ns:
        for veth in veths:
            with netns_fd(runtime.netns(veth.peer_node)) as peer_ns:
                ns.link("add", ifname=veth.device, kind="veth",
                        peer={"ifname": veth.peer_device, "net_ns_fd": peer_ns})


def address_node(runtime: Runtime, node: NodePlan) -> None:
    with rtnl(runtime.netns(node.name)) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        for veth in node.veths:
            index = ns.link_lookup(ifname=veth.device)[0]
            ns.addr("add", index=index, address=veth.address, prefixlen=veth.prefixlen)
            ns.link("set", index=index, state="up")
        for destination, gateway in node.routes:
            ns.route("add", dst=destination, gateway=gateway)
