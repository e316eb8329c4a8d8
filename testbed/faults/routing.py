"""Faults in VN routing and source selection."""
from __future__ import annotations

import ipaddress

from testbed import expect
from testbed.faults import Fault
from testbed.faults.common import first_flow_path, first_link
from testbed.runtime.netlink import rtnl

BASE_TABLE = 100


def ospf_off(lab) -> str:
    node, peer = first_link(lab)
    device = lab.plan.nodes[node].tunnel_to(peer).device
    lab.frr(node).vtysh_config([f"interface {device}", "no ip ospf area 0"])
    return f"disabled OSPF on {node}'s {device} (virtual link to {peer})"


def ospf_on_base(lab) -> str:
    """OSPF also on every VN node's base interface, sending hellos in clear.
    zebra keeps the base prefixes OSPF then learns out of the kernel: were
    they installed, the tunnel endpoints would be routed into the tunnels
    themselves and the VN would flap, hiding what this fault shows."""
    base = sorted({str(ipaddress.IPv4Interface(f"{v.address}/{v.prefixlen}").network)
                   for n in lab.plan.nodes.values() for v in n.veths})
    for node in lab.active_vn_nodes():
        lines = [f"ip prefix-list iipt-base seq {5 * (i + 1)} permit {prefix}" for i, prefix in enumerate(base)]
        lines += ["route-map iipt-vn deny 10", "match ip address prefix-list iipt-base", "exit",
                  "route-map iipt-vn permit 20", "exit", "ip protocol ospf route-map iipt-vn",
                  f"interface {lab.plan.nodes[node].veths[0].device}", "ip ospf area 0"]
        lab.frr(node).vtysh_config(lines)
    return "OSPF enabled on every VN node's base interface too (base prefixes kept out of the kernel)"


def base_source(lab) -> str:
    """Make the flow's source pick its base address, as RFC 3884 2.4 fears:
    a more preferred route over the same tunnel naming the base address as source."""
    flow = next(iter(lab.topology.flows.values()))
    plan = lab.plan.nodes[flow.src]
    dst = lab.plan.nodes[flow.dst].lan_prefix
    path = expect.vn_path(lab, flow.src, flow.dst)
    device = plan.tunnel_to(path[1]).device
    lab.runtime.run(flow.src, ["ip", "route", "add", dst, "dev", device, "src", plan.base_address,
                               "metric", "1"], check=True)
    return f"{flow.src} routes {dst} over {device} with its base address {plan.base_address} as source"


def vn_route_via_base(lab) -> str:
    """A policy rule on the first flow's source sends one VN address (the far
    end of the path's last link, which nothing else the suite does sends to
    from there) out of the base interface: the main table still looks right."""
    path = first_flow_path(lab)
    source = lab.plan.nodes[path[0]]
    target = lab.plan.nodes[path[-1]].tunnel_to(path[-2]).vn_address
    gateway = dict(source.routes)["0.0.0.0/0"]
    with rtnl(lab.runtime.netns(source.name)) as ns:
        ns.route("add", dst="0.0.0.0/0", gateway=gateway, table=BASE_TABLE,
                 oif=ns.link_lookup(ifname=source.veths[0].device)[0])
        ns.rule("add", dst=target, dst_len=32, table=BASE_TABLE, priority=100)
    return f"{source.name} sends {target} (a VN address) to the base network by an ip rule (table {BASE_TABLE})"


def flow_via_base(lab) -> str:
    """The first flow dies at its first VN router: a policy rule there,
    keyed on the flow's source prefix and destination prefix, sends the
    flow's packets to the base network, which has no route for them. The
    router's own traffic, its main table and its routing daemon all look
    right; every check that uses the flow's path must fail or be 'could not
    be performed', and none may read as a recorded deviation."""
    path = first_flow_path(lab)
    router = lab.plan.nodes[path[1]]
    source = ipaddress.IPv4Network(lab.plan.nodes[path[0]].lan_prefix)
    target = ipaddress.IPv4Network(lab.plan.nodes[path[-1]].lan_prefix)
    gateway = dict(router.routes)["0.0.0.0/0"]
    with rtnl(lab.runtime.netns(router.name)) as ns:
        ns.route("add", dst="0.0.0.0/0", gateway=gateway, table=BASE_TABLE,
                 oif=ns.link_lookup(ifname=router.veths[0].device)[0])
        ns.rule("add", src=str(source.network_address), src_len=source.prefixlen, dst=str(target.network_address),
                dst_len=target.prefixlen, table=BASE_TABLE, priority=100)
    return (f"{router.name} sends what comes from {source} ({path[0]}'s VN-local prefix) for {target} "
            f"({path[-1]}'s) to the base network by an ip rule")


def bfd_off(lab) -> str:
    """BFD taken off every virtual link: OSPF alone must notice a dead base
    path, after its dead interval (seconds, not the BFD's fraction of one)."""
    for node, tunnel in lab.active_link_ends():
        lab.frr(node).vtysh_config([f"interface {tunnel.device}", "no ip ospf bfd"])
    return f"BFD off on every virtual link: OSPF's dead interval ({lab.topology.defaults.ospf.dead} s) decides"


FAULTS = [
    Fault("ospf-off", ospf_off, keying="any", routing="frr"),
    Fault("ospf-on-base", ospf_on_base, keying="any", routing="frr"),
    Fault("base-source", base_source, keying="any"),
    Fault("vn-route-via-base", vn_route_via_base, keying="any"),
    Fault("flow-via-base", flow_via_base, keying="any"),
    Fault("bfd-off", bfd_off, keying="any", routing="frr"),
]
