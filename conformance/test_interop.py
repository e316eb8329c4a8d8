"""RFC 3884 3.1, 4.2.3 and A.2: IIPtran and IPsec tunnel mode inter-operate,
because the bytes on the wire are the same given the same keys.

One virtual link of the first flow gets one end rebuilt the other way
(ipip + transport SAs <-> xfrm interface + tunnel SAs) with a fresh SA pair
both ends share; the same hand-built VN packet is sent over the link before
and after, and the two ESP packets are compared once decrypted."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP
from scapy.packet import Raw

from testbed import expect
from testbed.datapath import interop
from testbed.probe import inspect
from testbed.probe.esp import IPPROTO_ESP, decrypt
from testbed.probe.flows import TOS, access_capture
from testbed.probe.inject import send_raw_ip
from testbed.probe.traffic import ping
from testbed import events
from testbed.routing.convergence import wait_converged

MARKER = b"iiptran-equivalence-sample"
pytestmark = pytest.mark.rebuilds_lab


@dataclass
class Sample:
    packet: IP               # the ESP packet as captured
    view: dict               # what must not differ between constructions


@dataclass
class Mixed:
    link: interop.MixedLink
    before: Sample
    after: Sample


def _sample(lab, report_dir, node: str, peer: str, tag: str) -> Sample:
    """Send one fixed VN packet from node to peer's VN-local address; return its ESP."""
    inner = IP(src=expect.lan_address(lab, node), dst=expect.lan_address(lab, peer), id=0x5151, ttl=33, tos=TOS,
               flags="DF") / ICMP(type=8, id=0x5151, seq=1) / Raw(MARKER)
    with access_capture(lab, report_dir, node, f"equivalence-{tag}") as cap:
        send_raw_ip(lab.runtime, node, bytes(inner), inner.dst)
    base, peer_base = lab.plan.nodes[node].base_address, lab.plan.nodes[peer].base_address
    for packet in cap.packets:
        if IP in packet and (packet[IP].src, packet[IP].dst, packet[IP].proto) == (base, peer_base, IPPROTO_ESP):
            plain = decrypt(packet, lab.sas + lab.retired_sas)
            if plain and plain.inner is not None and MARKER in bytes(plain.inner):
                outer = packet[IP]
                view = {"outer tos/flags/frag/ttl/len": (outer.tos, int(outer.flags), outer.frag, outer.ttl, outer.len),
                        "outer src/dst/protocol": (outer.src, outer.dst, outer.proto),
                        "ESP length": len(bytes(outer[ESP])), "next header": plain.next_header,
                        "inner packet": bytes(plain.inner).hex()}
                return Sample(IP(bytes(outer)), view)
    raise AssertionError(f"the sample VN packet from {node} was not seen as ESP to {peer} ({tag})")


@pytest.fixture(scope="module")
def mixed(lab, report_dir):
    other = interop.counterpart(lab)
    if other is None:
        pytest.skip(f"not applicable: datapath {lab.datapath.name} has no virtual link interface whose end "
                    "could be rebuilt the other way")
    spec = next(iter(lab.topology.flows.values()))
    path = expect.vn_path(lab, spec.src, spec.dst)
    node, peer = path[-1], path[-2]
    before = _sample(lab, report_dir, node, peer, "before")
    try:
        link = interop.mix(lab, node, peer)
        wait_converged(lab)
        yield Mixed(link, before, _sample(lab, report_dir, node, peer, "after"))
    finally:
        interop.restore(lab, node, peer)
        wait_converged(lab)


@pytest.mark.req("WIRE-INTEROP")
def test_iiptran_end_and_tunnel_mode_end_carry_traffic_both_ways(lab, mixed):
    link = mixed.link
    modes = {n: inspect.sa_modes(lab.runtime, n).get(link.sas[0].spi) for n in (link.node, link.peer)}
    events.note(link.node, "the mixed link", [f"{link.node}: {link.node_mode.summary}",
                                                 f"{link.peer}: {link.peer_mode.summary}",
                                                 f"kernel SA modes for spi 0x{link.sas[0].spi:08x}: {modes}"])
    assert modes[link.node] != modes[link.peer], f"both ends hold the shared SA in {modes[link.node]} mode"
    for a, b in ((link.node, link.peer), (link.peer, link.node)):
        result = ping(lab.runtime, a, expect.lan_address(lab, b), count=3, source=expect.lan_address(lab, a))
        assert result.ok, f"{a} ({modes[a]} mode end) -> {b}: no reply over the mixed link\n{result.output}"
    for node, peer in ((link.node, link.peer), (link.peer, link.node)):
        device = lab.plan.nodes[node].tunnel_to(peer).device
        state = lab.frr(node).ospf_neighbors().get(device, "absent")
        assert state.startswith("Full"), f"{node}: OSPF over the mixed link ({device}) is {state}"


@pytest.mark.req("WIRE-EQUIV")
def test_same_vn_packet_gives_the_same_esp_payload_either_way(lab, mixed):
    before, after = mixed.before.view, mixed.after.view
    events.packets("the sample VN packet's ESP, before and after the end was rebuilt", [
        f"{which}: spi 0x{s.packet[ESP].spi:08x} seq {s.packet[ESP].seq} id {s.packet.id} | {s.view}"
        for which, s in (("before", mixed.before), ("after", mixed.after))])
    different = {field: (before[field], after[field]) for field in before if before[field] != after[field]}
    assert not different, (f"{mixed.link.node}'s {mixed.link.node_mode.name} and {mixed.link.peer_mode.name} "
                           f"constructions put different bytes on the wire: {different}")
