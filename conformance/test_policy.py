"""RFC 3884 4.2.3: VN packets are accepted only if they arrived over the
secured tunnel. Plaintext IPIP spoofing a peer's base address must not be
delivered, on any virtual link."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed import expect
from testbed.probe import inspect
from testbed.probe.capture import Capture, MultiCapture
from testbed.probe.inject import send_raw_ip
from testbed.probe.traffic import ping
from testbed import events

INJECTED = 3
POLICY_DROPS = ("XfrmInNoPols", "XfrmInTmplMismatch", "XfrmInPolBlock")


def _forged(lab, victim: str, peer: str, marker: bytes) -> bytes:
    """What the peer's end would send in clear: IPIP between the two base
    addresses carrying an echo request from the peer's VN-local address."""
    tunnel = lab.plan.nodes[victim].tunnel_to(peer)
    return bytes(IP(src=tunnel.remote_base, dst=tunnel.local_base, proto=4, ttl=64)
                 / IP(src=expect.lan_address(lab, peer), dst=expect.lan_address(lab, victim), ttl=64)
                 / ICMP(type=8, id=0x4242) / Raw(marker))


@pytest.mark.req("POL-SPOOF")
def test_plaintext_ipip_from_a_spoofed_peer_is_not_delivered(lab, report_dir):
    ends = [(node, tunnel.peer) for node, tunnel in lab.active_link_ends()]
    victims = sorted({victim for victim, _ in ends})
    markers = {end: secrets.token_bytes(8) for end in ends}
    # A delivered echo request is counted by the victim's ICMP layer; nothing
    # else pings during this check, so any rise is a forged packet.
    echoes_before = {v: inspect.snmp_counters(lab.runtime, v)["Icmp.InEchos"] for v in victims}
    xfrm_before = {v: inspect.xfrm_stats(lab.runtime, v) for v in victims}
    captures = {v: Capture(lab.runtime, v, lab.plan.nodes[v].veths[0].device,
                           report_dir / f"policy-{v}-base.pcap", "ip proto 4") for v in victims}
    with MultiCapture(list(captures.values())):
        for (victim, peer), marker in markers.items():
            router = lab.plan.nodes[victim].veths[0].peer_node
            packet = _forged(lab, victim, peer, marker)
            for _ in range(INJECTED):
                send_raw_ip(lab.runtime, router, packet, lab.plan.nodes[victim].base_address)
    problems = []
    for (victim, peer), marker in markers.items():
        base = lab.plan.nodes[victim].base_address
        arrived = [p for p in captures[victim].packets if IP in p and p[IP].dst == base and marker in bytes(p)]
        if len(arrived) != INJECTED:
            problems.append(f"only {len(arrived)} of {INJECTED} forged packets 'from {peer}' reached "
                            f"{victim}'s base interface; the check would prove nothing")
    drops = []
    for victim in victims:
        delivered = inspect.snmp_counters(lab.runtime, victim)["Icmp.InEchos"] - echoes_before[victim]
        after = inspect.xfrm_stats(lab.runtime, victim)
        moved = {k: after[k] - xfrm_before[victim].get(k, 0) for k in POLICY_DROPS if k in after}
        drops.append(f"{victim}: echo requests delivered {delivered}, xfrm policy drops {moved}")
        if delivered:
            peers = [p for v, p in ends if v == victim]
            problems.append(f"{victim} accepted {delivered} forged plaintext IPIP echo requests spoofing "
                            f"its peers {peers}")
    events.note("", "forged packets delivered, and the kernel's policy drop counters, per victim", drops)
    assert not problems, "\n".join(problems)


def _echoes_delivered(lab, sender: str, receiver: str, source: str | None = None) -> int:
    """Send echo requests from `sender` into the VN, from its own VN-local
    address or (raw, hand-built) from `source`; return how many reached
    `receiver`'s ICMP layer."""
    before = inspect.snmp_counters(lab.runtime, receiver)["Icmp.InEchos"]
    target = expect.lan_address(lab, receiver)
    if source is None:
        ping(lab.runtime, sender, target, count=INJECTED, source=expect.lan_address(lab, sender))
    else:
        packet = bytes(IP(src=source, dst=target, ttl=64) / ICMP(type=8, id=0x4243) / Raw(secrets.token_bytes(8)))
        for _ in range(INJECTED):
            send_raw_ip(lab.runtime, sender, packet, target)
    return inspect.snmp_counters(lab.runtime, receiver)["Icmp.InEchos"] - before


@pytest.mark.req("POL-WRONG-TUNNEL")
def test_vn_packet_with_a_source_from_behind_another_tunnel_is_not_accepted(lab):
    """RFC 3884 4.2.3: accepted only if it arrived over the tunnel its source is
    behind. P sends to R with Q's VN-local source; R routes Q's prefix over
    its link to Q, so the packet came in over the wrong link."""
    if not lab.datapath.dynamic_routing:
        pytest.skip(f"not applicable: with {lab.datapath.name} a node's kernel puts a packet into an SA only "
                    "if a selector covers its source, so another node's source cannot be sent over a link")
    hub = next((n for n in lab.plan.vn_nodes if lab.active(n.name)
                and sum(lab.active(t.peer) for t in n.tunnels) >= 2), None)
    if hub is None:
        pytest.skip(f"not applicable: no VN node of {lab.topology.name} has two virtual links")
    peer, other = [t.peer for t in hub.tunnels if lab.active(t.peer)][:2]
    own = _echoes_delivered(lab, peer, hub.name)
    rp_before = inspect.snmp_counters(lab.runtime, hub.name, "netstat").get("TcpExt.IPReversePathFilter", 0)
    spoofed = _echoes_delivered(lab, peer, hub.name, expect.lan_address(lab, other))
    rp_drops = inspect.snmp_counters(lab.runtime, hub.name, "netstat").get("TcpExt.IPReversePathFilter", 0) \
        - rp_before
    events.note(hub.name, f"echo requests from {peer} into the VN towards {hub.name}", [
        f"with {peer}'s own VN-local source: {own} of {INJECTED} delivered",
        f"with {other}'s VN-local source: {spoofed} of {INJECTED} delivered; "
        f"{hub.name}'s reverse-path filter drops: {rp_drops}"])
    assert own == INJECTED, (f"control failed: only {own} of {INJECTED} echo requests from {peer} with its own "
                             f"source reached {hub.name}; the check would prove nothing")
    assert spoofed == 0, (f"{hub.name} accepted {spoofed} VN packets from {peer}'s link whose source "
                          f"({expect.lan_address(lab, other)}) is behind its link to {other}")
