"""Deliberate breakage of a live lab, to prove the suite notices.

Each fault breaks one thing the RFC relies on; the self-test applies it and
checks that the conformance tests for that thing fail.
"""
from __future__ import annotations

import ipaddress

from testbed.datapath import ipsec, tunnels
from testbed.errors import UserError


def _first_link(lab) -> tuple[str, str]:
    """(node, peer) of the first virtual link of the first flow's path."""
    from testbed import expect
    flow = next(iter(lab.topology.flows.values()))
    path = expect.vn_path(lab, flow.src, flow.dst)
    return path[1], path[2] if len(path) > 2 else path[0]


def no_policies(lab) -> str:
    for node in lab.active_vn_nodes():
        ipsec.flush_policies(lab.runtime, node)
    return "removed every xfrm policy on every VN node (SAs kept)"


def no_in_policies(lab) -> str:
    for node in lab.active_vn_nodes():
        ipsec.apply_batch(lab.runtime, node, ["xfrm policy deleteall dir in"])
    return "removed the inbound xfrm policies on every VN node"


def ospf_off(lab) -> str:
    node, peer = _first_link(lab)
    device = lab.plan.nodes[node].tunnel_to(peer).device
    lab.frr(node).vtysh_config([f"interface {device}", "no ip ospf area 0"])
    return f"disabled OSPF on {node}'s {device} (virtual link to {peer})"


def no_vn_address(lab) -> str:
    node, peer = _first_link(lab)
    tunnel = lab.plan.nodes[node].tunnel_to(peer)
    lab.runtime.run(node, ["ip", "addr", "del", f"{tunnel.vn_address}/{tunnel.prefixlen}", "dev",
                           tunnel.device], check=True)
    return f"removed the VN address from {node}'s {tunnel.device}"


def base_source(lab) -> str:
    """Make the flow's source pick its base address, as RFC 3884 2.4 fears:
    a more preferred route over the same tunnel naming the base address as source."""
    flow = next(iter(lab.topology.flows.values()))
    plan = lab.plan.nodes[flow.src]
    from testbed import expect
    dst = str(ipaddress.IPv4Interface(lab.plan.nodes[flow.dst].lan).network)
    path = expect.vn_path(lab, flow.src, flow.dst)
    device = plan.tunnel_to(path[1]).device
    lab.runtime.run(flow.src, ["ip", "route", "add", dst, "dev", device, "src", plan.base_address,
                               "metric", "1"], check=True)
    return f"{flow.src} routes {dst} over {device} with its base address {plan.base_address} as source"


def _every_tunnel(lab, ttl: int | None = None, tos: int = tunnels.TOS_INHERIT) -> None:
    default_ttl = lab.topology.defaults.tunnel.ttl
    for node in lab.active_vn_nodes():
        for tunnel in lab.plan.nodes[node].tunnels:
            if lab.active(tunnel.peer):
                tunnels.reconfigure_tunnel(lab.runtime, node, tunnel, default_ttl if ttl is None else ttl, tos)


def tunnel_tos_fixed(lab) -> str:
    _every_tunnel(lab, tos=0)
    return "every tunnel sets outer TOS 0 instead of copying the inner TOS"


def tunnel_ttl_changed(lab) -> str:
    _every_tunnel(lab, ttl=32)
    return "every tunnel sets outer TTL 32 instead of the configured value"


def outer_df_cleared(lab) -> str:
    """What RFC 3884 A.1 rules out: DF cleared on the way out (Linux's ipip copies
    the inner DF even with pmtudisc off, so the fault is a tc rewrite of the
    outer header, flags field at offset 6, checksum fixed after)."""
    for node in lab.active_vn_nodes():
        device = lab.plan.nodes[node].veths[0].device
        for argv in (["tc", "qdisc", "add", "dev", device, "clsact"],
                     ["tc", "filter", "add", "dev", device, "egress", "matchall", "action", "pedit", "munge",
                      "offset", "6", "u16", "set", "0", "retain", "0x4000", "pipe", "action", "csum", "ip"]):
            lab.runtime.run(node, argv, check=True)
    return "every VN node's base interface clears DF on the packets it sends"


FAULTS = {
    "no-policies": no_policies,
    "no-in-policies": no_in_policies,
    "ospf-off": ospf_off,
    "no-vn-address": no_vn_address,
    "base-source": base_source,
    "tunnel-tos-fixed": tunnel_tos_fixed,
    "tunnel-ttl-changed": tunnel_ttl_changed,
    "outer-df-cleared": outer_df_cleared,
}


def apply(lab, fault: str) -> str:
    if fault not in FAULTS:
        raise UserError(f"unknown fault '{fault}' (known: {', '.join(FAULTS)})")
    return FAULTS[fault](lab)
