"""RFC 3884 3.1, 4.2.3 and A.2: IIPtran and IPsec tunnel mode inter-operate,
because the bytes on the wire are the same given the same keys.

One virtual link of the first flow gets one end rebuilt the other way
(ipip + transport SAs <-> xfrm interface + tunnel SAs) with a fresh SA pair
both ends share; the same hand-built VN packets are sent over the link
before and after, and the ESP packets are compared once decrypted with the
keys the kernels hold. "Given appropriate configurations on both ends"
(RFC 3884 3.1): the tunnel-mode end's outer TTL is the IPIP end's tunnel
TTL (set as the hop limit of its route to the peer)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP
from scapy.packet import Raw

from guards import guard
from testbed import events, expect
from testbed import mixed_link as interop
from testbed.probe.esp import IPPROTO_ESP
from testbed.probe.flows import TOS, access_capture
from testbed.probe.inject import send_raw_ip
from testbed.probe.traffic import ping
from testbed.routing.convergence import link_egress, snapshot, wait_link_back, wait_restored

pytestmark = pytest.mark.rebuilds_lab
# The sample VN packets: DF set and clear, default and non-default TOS and TTL.
VARIANTS = {"DF, TOS EF, TTL 33": dict(flags="DF", tos=TOS, ttl=33),
            "no DF, TOS 0, TTL 64": dict(flags=0, tos=0, ttl=64),
            "no DF, TOS 0x28, TTL 200": dict(flags=0, tos=0x28, ttl=200)}


@dataclass
class Sample:
    packet: IP               # the ESP packet as captured
    inner_df: bool
    view: dict               # what must not differ between constructions


@dataclass
class Mixed:
    link: interop.MixedLink
    before: dict[str, Sample]
    after: dict[str, Sample]


def _samples(lab, report_dir, node: str, peer: str, tag: str) -> dict[str, Sample]:
    """Send each fixed VN packet from node to peer's VN-local address; return their ESP."""
    markers = {name: f"iiptran-equivalence-{i}".encode() for i, name in enumerate(VARIANTS)}
    base, peer_base = lab.plan.nodes[node].base_address, lab.plan.nodes[peer].base_address

    def esp_to_peer(packet) -> bool:
        return IP in packet and (packet[IP].src, packet[IP].dst, packet[IP].proto) == (base, peer_base, IPPROTO_ESP)

    def a_sample(packet) -> bool:
        if not esp_to_peer(packet):
            return False
        try:
            plain = lab.decrypt(packet)
        except Exception:            # not one of the kernels' SAs: no sample
            return False
        return bool(plain and plain.inner is not None and any(m in bytes(plain.inner) for m in markers.values()))

    with access_capture(lab, report_dir, node, f"equivalence-{tag}") as cap:
        for name, fields in VARIANTS.items():
            inner = IP(src=expect.lan_address(lab, node), dst=expect.lan_address(lab, peer), id=0x5151,
                       **fields) / ICMP(type=8, id=0x5151, seq=1) / Raw(markers[name])
            send_raw_ip(lab.runtime, node, bytes(inner), inner.dst)
        # Under load the last samples may still be on their way when the capture would end.
        cap.await_packets(a_sample, len(VARIANTS))
    found = {}
    for packet in cap.packets:
        if esp_to_peer(packet):
            plain = lab.decrypt(packet)
            for name, marker in markers.items():
                if plain and plain.inner is not None and marker in bytes(plain.inner):
                    outer = packet[IP]
                    view = {"outer tos/frag/ttl/len": (outer.tos, outer.frag, outer.ttl, outer.len),
                            "outer DF": "DF" in str(outer.flags),
                            "outer src/dst/protocol": (outer.src, outer.dst, outer.proto),
                            "ESP length": len(bytes(outer[ESP])), "next header": plain.next_header,
                            "inner packet": bytes(plain.inner).hex()}
                    found[name] = Sample(IP(bytes(outer)), "DF" in str(VARIANTS[name]["flags"]), view)
    missing = sorted(set(VARIANTS) - set(found))
    assert not missing, f"sample VN packets {missing} from {node} were not seen as ESP to {peer} ({tag})"
    return found


@pytest.fixture(scope="module")
def mixed(lab, report_dir):
    other = interop.counterpart(lab)
    if other is None:
        pytest.skip(f"not applicable: datapath {lab.datapath.name} has no virtual link interface whose end "
                    "could be rebuilt the other way")
    spec = next(iter(lab.topology.flows.values()))
    path = expect.vn_path(lab, spec.src, spec.dst)
    node, peer = path[-1], path[-2]
    routing, egress = snapshot(lab), link_egress(lab, node, peer)
    before = _samples(lab, report_dir, node, peer, "before")
    link = interop.plan(lab, node, peer)
    try:
        interop.mix(lab, link)
        wait_link_back(lab, node, peer, egress)
        yield Mixed(link, before, _samples(lab, report_dir, node, peer, "after"))
    finally:
        interop.restore(lab, link)
        wait_restored(lab, routing)


@pytest.mark.req("WIRE-INTEROP")
def test_iiptran_end_and_tunnel_mode_end_carry_traffic_both_ways(lab, mixed):
    link = mixed.link
    node_base, peer_base = lab.plan.nodes[link.node].base_address, lab.plan.nodes[link.peer].base_address
    held = {n: lab.kernel_sad(n).between(node_base, peer_base) for n in (link.node, link.peer)}
    modes = {n: sorted({sa.mode for sa in sas}) for n, sas in held.items()}
    events.note(link.node, "the mixed link", [f"{link.node}: {link.node_mode.summary}",
                                                 f"{link.peer}: {link.peer_mode.summary}",
                                                 f"kernel SA modes {link.node}->{link.peer}: {modes}"])
    shared = {sa.spi for sa in held[link.node]} & {sa.spi for sa in held[link.peer]}
    assert shared, f"{link.node} and {link.peer} hold no common SA {node_base}->{peer_base}"
    assert modes[link.node] != modes[link.peer], f"both ends hold the shared SA in {modes[link.node]} mode"
    for a, b in ((link.node, link.peer), (link.peer, link.node)):
        result = ping(lab.runtime, a, expect.lan_address(lab, b), count=3, source=expect.lan_address(lab, a))
        assert result.ok, f"{a} ({modes[a]} mode end) -> {b}: no reply over the mixed link\n{result.output}"
    for node, peer in ((link.node, link.peer), (link.peer, link.node)) if lab.routing.dynamic else ():
        device = lab.plan.nodes[node].tunnel_to(peer).device
        state = lab.routing.neighbours(lab, node).get(device, "absent")
        assert state == "Full", f"{node}: routing adjacency over the mixed link ({device}) is {state}"


def _left_under(lab, node: str, samples: dict[str, Sample]) -> dict[str, str]:
    """Per sample, the mode of the SA node's kernel holds for its SPI ('none' if it holds none)."""
    held = {sa.spi: sa.mode for sa in lab.kernel_sad(node).states}
    return {name: held.get(s.packet[ESP].spi, "none") for name, s in samples.items()}


@pytest.mark.req("WIRE-EQUIV")
def test_same_vn_packet_gives_the_same_esp_payload_either_way(lab, mixed):
    link = mixed.link
    # The comparison means something only if the "after" samples really left
    # under the rebuilt end's own SA, in its construction's mode.
    after = _left_under(lab, link.node, mixed.after)
    mixed_spi = link.sas[0].spi
    guard(all(mode == link.node_mode.sa_mode for mode in after.values())
          and all(s.packet[ESP].spi == mixed_spi for s in mixed.after.values()),
          f"the samples sent after {link.node} was rebuilt as {link.node_mode.name} did not all leave under its "
          f"{link.node_mode.sa_mode}-mode SA 0x{mixed_spi:08x}: modes {after}, SPIs "
          f"{ {n: hex(s.packet[ESP].spi) for n, s in mixed.after.items()} }")
    events.packets("the sample VN packets' ESP, before and after the end was rebuilt", [
        f"{name} {which}: spi 0x{s.packet[ESP].spi:08x} seq {s.packet[ESP].seq} id {s.packet.id} | {s.view}"
        for name in VARIANTS for which, s in (("before", mixed.before[name]), ("after", mixed.after[name]))])
    different, df_only = {}, []
    for name in VARIANTS:
        before, after = mixed.before[name], mixed.after[name]
        fields = {f: (before.view[f], after.view[f]) for f in before.view if before.view[f] != after.view[f]}
        if set(fields) == {"outer DF"} and not before.inner_df:
            # RFC 2003 3.1: with the inner DF clear, the outer DF MAY be set;
            # an IPIP end doing path MTU discovery sets it, tunnel mode copies it.
            df_only.append(f"{name}: outer DF (before, after) {fields['outer DF']}")
        elif fields:
            different[name] = fields
    events.note(link.node, "outer DF where the inner packet has DF clear (allowed to differ)", df_only or ["same"])
    assert not different, (f"{link.node}'s {link.node_mode.name} and {link.peer_mode.name} constructions put "
                           f"different bytes on the wire: {different}")
