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
from testbed.report.evidence import RECORDER

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
    ends = [(node.name, t.peer) for node in lab.plan.vn_nodes if lab.active(node.name)
            for t in node.tunnels if lab.active(t.peer)]
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
        arrived = [p for p in captures[victim].packets if IP in p and marker in bytes(p)]
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
    RECORDER.note("", "forged packets delivered, and the kernel's policy drop counters, per victim", drops)
    assert not problems, "\n".join(problems)
