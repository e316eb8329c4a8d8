"""RFC 3884 2.4 and 3.3: source address selection picks the VN address of the
tunnel the route uses, never the base address."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP

from testbed import expect
from testbed.probe import inspect
from testbed.probe.capture import Capture
from testbed.probe.traffic import ping



def _sources_seen(lab, report_dir, src: str, dst: str, name: str) -> tuple[set[str], str]:
    """Ping dst's VN address from src without binding; return the sources dst saw.

    The capture at dst is on every interface, so it sees the request once it
    is decapsulated wherever that happens (a tunnel device, or the base
    interface when there is none)."""
    target = expect.lan_address(lab, dst)
    chosen = inspect.source_for(lab.runtime, src, target)
    with Capture(lab.runtime, dst, "any", report_dir / f"{name}.pcap", "icmp") as cap:
        result = ping(lab.runtime, src, target, count=3)
    assert result.ok, (f"{src} -> {dst} ({target}): no reply; {src}'s kernel picked source {chosen} "
                       f"for it\n{result.output}")
    seen = {p[IP].src for p in cap.packets if IP in p and ICMP in p and p[ICMP].type == 8 and p[IP].dst == target}
    assert seen, f"{dst} saw no echo request from {src}"
    return seen, "any interface"


@pytest.mark.req("SRC-HOST")
def test_vn_host_sends_from_its_tunnel_address(lab, report_dir, flow):
    name, spec = flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    want = lab.plan.nodes[spec.src].tunnel_to(path[1]).vn_address
    base = lab.plan.nodes[spec.src].base_address
    seen, ingress = _sources_seen(lab, report_dir, spec.src, spec.dst, f"source-{name}")
    assert seen == {want}, (f"{spec.dst} saw source {sorted(seen)} on {ingress}; want {spec.src}'s "
                            f"tunnel address {want} (its base address is {base})")


@pytest.mark.req("SRC-MULTIHOMED")
def test_multihomed_node_sends_from_the_tunnel_its_route_uses(lab, report_dir, flow):
    """RFC 3884 2.4: 'If host A ... sends to Y, the source address must be the
    IP address of the local end of either tunnel 3 or 4.'"""
    name, spec = flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    senders = [n for n in path[1:-1] if len(lab.plan.nodes[n].tunnels) > 1]
    if not senders:
        # A flow between two neighbours (a generated lab's seeded pair) has
        # no node between its ends: the rule has nobody to apply to.
        pytest.skip(f"not applicable: no multi-homed VN node between the ends of the path {'-'.join(path)}")
    for sender in senders:
        onward = expect.vn_path(lab, sender, spec.dst)
        want = lab.plan.nodes[sender].tunnel_to(onward[1]).vn_address
        seen, ingress = _sources_seen(lab, report_dir, sender, spec.dst, f"source-{name}-{sender}")
        assert seen == {want}, (f"{sender} -> {spec.dst}: source {sorted(seen)}, want {want}, the local end "
                                f"of its tunnel to {onward[1]} which its route uses")
