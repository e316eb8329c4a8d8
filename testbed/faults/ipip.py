"""Faults in the IPIP devices and what surrounds them."""
from __future__ import annotations

from testbed.datapath import tunnels
from testbed.faults import Fault
from testbed.faults.common import first_link


def no_vn_address(lab) -> str:
    node, peer = first_link(lab)
    tunnel = lab.plan.nodes[node].tunnel_to(peer)
    lab.runtime.run(node, ["ip", "addr", "del", f"{tunnel.vn_address}/{tunnel.prefixlen}", "dev",
                           tunnel.device], check=True)
    return f"removed the VN address from {node}'s {tunnel.device}"


def _every_tunnel(lab, ttl: int | None = None, tos: int = tunnels.TOS_INHERIT) -> None:
    default_ttl = lab.topology.defaults.tunnel.ttl
    for node, tunnel in lab.active_link_ends():
        tunnels.reconfigure_tunnel(lab.runtime, node, tunnel, default_ttl if ttl is None else ttl, tos)


def tunnel_tos_fixed(lab) -> str:
    _every_tunnel(lab, tos=0)
    return "every tunnel sets outer TOS 0 instead of copying the inner TOS"


def tunnel_ttl_changed(lab) -> str:
    _every_tunnel(lab, ttl=64)
    return "every tunnel sets outer TTL 64 (the kernel's default) instead of the configured value"


def ttl_zero_dropped(lab) -> str:
    """The RFC 2003 3.1 TTL-0 rules Linux does not apply, added with tc on
    every tunnel device: a datagram with TTL 0 is dropped before
    encapsulation (egress) and after decapsulation (ingress). The recorded
    known deviations must then start passing, which fails the run."""
    for node, tunnel in lab.active_link_ends():
        argvs = [["tc", "qdisc", "add", "dev", tunnel.device, "clsact"]]
        argvs += [["tc", "filter", "add", "dev", tunnel.device, direction, "protocol", "ip", "u32",
                   "match", "u8", "0", "0xff", "at", "8", "action", "drop"] for direction in ("ingress", "egress")]
        for argv in argvs:
            lab.runtime.run(node, argv, check=True)
    return "every tunnel device drops datagrams with TTL 0 before encapsulation and after decapsulation (tc)"


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


def no_rp_filter(lab) -> str:
    for node, tunnel in lab.active_link_ends():
        lab.runtime.sysctl(node, {f"net.ipv4.conf.{tunnel.device}.rp_filter": "0"})
    return "reverse-path filtering off on every tunnel interface"


FAULTS = [
    Fault("no-vn-address", no_vn_address, keying="any"),
    Fault("tunnel-tos-fixed", tunnel_tos_fixed, keying="any"),
    Fault("tunnel-ttl-changed", tunnel_ttl_changed, keying="any"),
    Fault("outer-df-cleared", outer_df_cleared, keying="any"),
    Fault("ttl-zero-dropped", ttl_zero_dropped, keying="any"),
    Fault("no-rp-filter", no_rp_filter, keying="any"),
]
