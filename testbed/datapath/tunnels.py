"""Virtual link interfaces, one per virtual link end: RFC 2003 IPIP devices
(RFC 3884 3.1), or xfrm interfaces for the route-based alternative (4.1.1).

Each is a real interface with a VN address, so the forwarding table and
source address selection work on it (3.2, 3.3).
"""
from __future__ import annotations

import errno
import ipaddress

from testbed.runtime.netlink import rtnl

from testbed.runtime.base import Runtime
from testbed.topology.plan import LAN_DEVICE, NodePlan, TunnelEnd

IFF_MULTICAST = 0x1000
TOS_INHERIT = 1   # IFLA_IPTUN_TOS value 1: copy the inner TOS (RFC 2003 3.1)
RP_FILTER_STRICT = 1
OUTER_HEADER = 20


def _ipip(tunnel: TunnelEnd, ttl: int, tos: int, pmtudisc: bool) -> dict:
    # Every parameter each time: a change to an ipip device resets what it omits.
    return {"kind": "ipip", "ipip_local": tunnel.local_base, "ipip_remote": tunnel.remote_base,
            "ipip_ttl": ttl, "ipip_tos": tos, "ipip_pmtudisc": int(pmtudisc)}


def create_tunnel(runtime: Runtime, node: str, tunnel: TunnelEnd, ttl: int) -> None:
    with rtnl(runtime.netns(node)) as ns:
        ns.link("add", ifname=tunnel.device, **_ipip(tunnel, ttl, TOS_INHERIT, pmtudisc=True))
        _address_and_up(ns, tunnel)
    accept_only_sources_routed_back(runtime, node, tunnel.device)


def accept_only_sources_routed_back(runtime: Runtime, node: str, device: str) -> None:
    """Strict reverse-path filtering on a virtual link (RFC 3884 4.2.3): a VN
    packet decapsulated on it is accepted only if its source is routed back
    over the same link. This is the 'separate step following IPIP
    decapsulation' the RFC asks for, done by the kernel's rp_filter."""
    runtime.sysctl(node, {f"net.ipv4.conf.{device}.rp_filter": str(RP_FILTER_STRICT)})


def create_xfrm_interface(runtime: Runtime, node: str, tunnel: TunnelEnd, if_id: int, base_device: str) -> None:
    """Route-based IPsec (RFC 3884 4.1.1, "interface SAs"): an xfrm interface
    whose tunnel-mode SAs and policies carry the same if_id. Its MTU is set
    the way an ipip device sets its own (base MTU less the outer header):
    OSPF refuses adjacencies across an MTU mismatch, and the two
    constructions must be able to face each other on one link."""
    with rtnl(runtime.netns(node)) as ns:
        base_mtu = ns.link("get", index=ns.link_lookup(ifname=base_device)[0])[0].get_attr("IFLA_MTU")
        ns.link("add", ifname=tunnel.device, kind="xfrm", xfrm_if_id=if_id, mtu=base_mtu - OUTER_HEADER)
        _address_and_up(ns, tunnel)
    accept_only_sources_routed_back(runtime, node, tunnel.device)


def pin_outer_ttl(runtime: Runtime, node: NodePlan, remote_base: str, ttl: int) -> None:
    """The outer TTL of a tunnel-mode SA to remote_base: Linux takes it from
    the hop limit of the route to the tunnel's far end (a tunnel SA has no
    TTL of its own), so the lab's tunnel TTL is set there, as an operator
    configuring IPsec tunnel mode to match RFC 2003's fixed TTL would."""
    gateway = dict(node.routes)["0.0.0.0/0"]
    with rtnl(runtime.netns(node.name)) as ns:
        ns.route("replace", dst=f"{remote_base}/32", gateway=gateway,
                 oif=ns.link_lookup(ifname=node.veths[0].device)[0], metrics={"hoplimit": ttl})


def unpin_outer_ttl(runtime: Runtime, node: NodePlan, remote_base: str) -> None:
    """Remove what pin_outer_ttl added (nothing if it is not there)."""
    from pyroute2 import NetlinkError
    with rtnl(runtime.netns(node.name)) as ns:
        try:
            ns.route("del", dst=f"{remote_base}/32", gateway=dict(node.routes)["0.0.0.0/0"])
        except NetlinkError as exc:
            if exc.code != errno.ESRCH:       # no such route: nothing was pinned
                raise


def _address_and_up(ns, tunnel: TunnelEnd) -> None:
    index = ns.link_lookup(ifname=tunnel.device)[0]
    ns.addr("add", index=index, address=tunnel.vn_address, prefixlen=tunnel.prefixlen)
    # OSPF hellos are multicast; neither ipip nor xfrm devices set the flag themselves.
    ns.link("set", index=index, flags=IFF_MULTICAST, change=IFF_MULTICAST)
    ns.link("set", index=index, state="up")


def reconfigure_tunnel(runtime: Runtime, node: str, tunnel: TunnelEnd, ttl: int, tos: int) -> None:
    """Change encapsulation parameters in place (checks that change the TTL, and faults)."""
    with rtnl(runtime.netns(node)) as ns:
        ns.link("set", index=ns.link_lookup(ifname=tunnel.device)[0], **_ipip(tunnel, ttl, tos, pmtudisc=True))


def remove_device(runtime: Runtime, node: str, device: str) -> None:
    with rtnl(runtime.netns(node)) as ns:
        found = ns.link_lookup(ifname=device)
        if found:
            ns.link("del", index=found[0])


def set_tunnel_state(runtime: Runtime, node: str, device: str, up: bool) -> None:
    with rtnl(runtime.netns(node)) as ns:
        ns.link("set", index=ns.link_lookup(ifname=device)[0], state="up" if up else "down")


def create_lan(runtime: Runtime, node: NodePlan) -> None:
    """The VN-local prefix behind the node, on a dummy interface."""
    iface = ipaddress.IPv4Interface(node.lan)
    with rtnl(runtime.netns(node.name)) as ns:
        ns.link("add", ifname=LAN_DEVICE, kind="dummy")
        index = ns.link_lookup(ifname=LAN_DEVICE)[0]
        ns.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ns.link("set", index=index, state="up")
