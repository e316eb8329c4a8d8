"""Deliberate breakage of a live lab, to prove the suite notices.

Each fault breaks one thing the RFC relies on; the self-test applies it and
checks that the conformance tests for that thing fail.
"""
from __future__ import annotations

import ipaddress

from dataclasses import replace

from testbed.datapath import ipsec, tunnels
from testbed.datapath.modes import MODES
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


def _link_ends(lab):
    """(node, tunnel end, out SA, in SA) for every provisioned virtual link end."""
    for node, tunnel in lab.active_link_ends():
        yield node, tunnel, *lab.link_sas(node, tunnel.peer)


def _every_tunnel(lab, ttl: int | None = None, tos: int = tunnels.TOS_INHERIT) -> None:
    default_ttl = lab.topology.defaults.tunnel.ttl
    for node, tunnel, _, _ in _link_ends(lab):
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


def sa_tunnel_mode(lab) -> str:
    """The SAs and policy templates in tunnel mode, selectors unchanged: the
    IPIP packet is then wrapped once more instead of being protected as is."""
    for node, tunnel, out, back in _link_ends(lab):
        installed = MODES["iiptran"].end_batch(tunnel, out, back)
        tunnel_out, tunnel_back = (replace(sa, mode="tunnel") for sa in (out, back))
        selector = f"src {{}}/32 dst {{}}/32 proto {ipsec.IPPROTO_IPIP}"
        ipsec.apply_batch(lab.runtime, node, ipsec.removal(installed) + [
            ipsec.state_line(tunnel_out), ipsec.state_line(tunnel_back),
            ipsec.policy_line(selector.format(tunnel.local_base, tunnel.remote_base), "out", tunnel_out),
            ipsec.policy_line(selector.format(tunnel.remote_base, tunnel.local_base), "in", tunnel_back)])
    return "every SA and policy template in tunnel mode where transport mode is expected"


def no_replay_window(lab) -> str:
    for node, tunnel, out, back in _link_ends(lab):
        installed = [line for line in MODES["iiptran"].end_batch(tunnel, out, back) if " state " in line]
        ipsec.apply_batch(lab.runtime, node, ipsec.removal(installed) + [
            line.replace(f"replay-window {ipsec.REPLAY_WINDOW}", "replay-window 0") for line in installed])
    return "every SA re-installed with replay window 0 (anti-replay off)"


def ospf_on_base(lab) -> str:
    for node in lab.active_vn_nodes():
        lab.frr(node).vtysh_config([f"interface {lab.plan.nodes[node].veths[0].device}", "ip ospf area 0"])
    return "OSPF enabled on every VN node's base interface too"


def no_rp_filter(lab) -> str:
    for node, tunnel, _, _ in _link_ends(lab):
        lab.runtime.sysctl(node, {f"net.ipv4.conf.{tunnel.device}.rp_filter": "0"})
    return "reverse-path filtering off on every tunnel interface"


FAULTS = {
    "no-policies": no_policies,
    "no-in-policies": no_in_policies,
    "ospf-off": ospf_off,
    "no-vn-address": no_vn_address,
    "base-source": base_source,
    "tunnel-tos-fixed": tunnel_tos_fixed,
    "tunnel-ttl-changed": tunnel_ttl_changed,
    "outer-df-cleared": outer_df_cleared,
    "sa-tunnel-mode": sa_tunnel_mode,
    "no-replay-window": no_replay_window,
    "ospf-on-base": ospf_on_base,
    "no-rp-filter": no_rp_filter,
}


def apply(lab, fault: str) -> str:
    if fault not in FAULTS:
        raise UserError(f"unknown fault '{fault}' (known: {', '.join(FAULTS)})")
    if lab.datapath.name != "iiptran":
        raise UserError(f"faults break IIPtran labs; lab '{lab.name}' runs {lab.datapath.name}")
    return FAULTS[fault](lab)
