"""RFC 3884 4.2.3: VN packets are accepted only if they arrived over the
secured tunnel. Plaintext IPIP spoofing a peer's base address must not be
delivered to the tunnel device."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed.probe import inspect
from testbed.probe.capture import Capture, MultiCapture
from testbed.probe.inject import send_raw_ip


INJECTED = 3


@pytest.mark.req("POL-SPOOF")
def test_plaintext_ipip_from_a_spoofed_peer_is_not_delivered(lab, report_dir):
    # The first virtual link of the lab file whose two ends are in the VN.
    victim_plan = next(n for n in lab.plan.vn_nodes if lab.active(n.name)
                       and any(lab.active(t.peer) for t in n.tunnels))
    tunnel = next(t for t in victim_plan.tunnels if lab.active(t.peer))
    victim, peer = victim_plan.name, tunnel.peer
    peer_tunnel = lab.plan.nodes[peer].tunnel_to(victim)
    router = victim_plan.veths[0].peer_node
    marker = secrets.token_bytes(8)
    forged = bytes(IP(src=tunnel.remote_base, dst=tunnel.local_base, proto=4, ttl=64)
                   / IP(src=peer_tunnel.vn_address, dst=tunnel.vn_address, ttl=64)
                   / ICMP(type=8, id=0x4242) / Raw(marker))

    rx_before = inspect.devices(lab.runtime, victim)[tunnel.device].rx_packets
    stats_before = inspect.xfrm_stats(lab.runtime, victim)
    base_device = victim_plan.veths[0].device
    on_wire = Capture(lab.runtime, victim, base_device, report_dir / "policy-base.pcap", "ip proto 4")
    on_tunnel = Capture(lab.runtime, victim, tunnel.device, report_dir / "policy-tunnel.pcap", "icmp")
    with MultiCapture([on_wire, on_tunnel]):
        for _ in range(INJECTED):
            send_raw_ip(lab.runtime, router, forged, tunnel.local_base)
    arrived = [p for p in on_wire.packets if IP in p and marker in bytes(p)]
    assert len(arrived) == INJECTED, (
        f"only {len(arrived)} of {INJECTED} forged packets reached {victim}'s base interface; "
        "the check would prove nothing")
    delivered = [p for p in on_tunnel.packets if marker in bytes(p)]
    assert not delivered, (f"{len(delivered)} forged plaintext IPIP packets from spoofed {peer} were "
                           f"decapsulated onto {victim}'s {tunnel.device}")
    rx_after = inspect.devices(lab.runtime, victim)[tunnel.device].rx_packets
    stats_after = inspect.xfrm_stats(lab.runtime, victim)
    moved = {k: stats_after[k] - stats_before.get(k, 0) for k in stats_after
             if stats_after[k] != stats_before.get(k, 0)}
    # OSPF hellos arrive on the tunnel all the time; a delivered forged
    # packet is the one with the marker, so count policy drops as the proof.
    assert sum(moved.get(k, 0) for k in ("XfrmInNoPols", "XfrmInTmplMismatch", "XfrmInPolBlock")) \
        >= INJECTED, (f"{victim} did not refuse plaintext IPIP from spoofed {peer} ({tunnel.remote_base}): "
                      f"xfrm counters moved {moved}; {tunnel.device} rx {rx_before}->{rx_after}")
