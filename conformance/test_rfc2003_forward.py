"""RFC 2003 3.1 and 3.2 at a VN router that would forward a decapsulated
datagram into its next tunnel: one with TTL 0 is discarded (3.1), and one
whose source is the router's own base address or the next tunnel's far
end is not tunnelled (3.2: a routing loop inside the tunnel).

The first routed flow's first hop (N in Figure 6) sends its VN router (A)
the datagram, validly protected with the hop's SA; what A sends on towards
the flow's next node is read on A's access link (ESP decrypted with the
kernels' keys, or in clear), whatever the datapath decapsulates with.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from guards import guard
from testbed import events, expect
from testbed.probe import inspect, tunnel_errors
from testbed.probe.capture import Capture, MultiCapture
from testbed.probe.flows import access_capture
from testbed.probe.forge import resync, send_forged
from testbed.probe.traffic import ping

COUNTERS = ("Ip.InHdrErrors", "Icmp.OutTimeExcds", "TcpExt.IPReversePathFilter", "Ip.InAddrErrors")


@dataclass
class Hop:
    flow: str
    sender: str           # the flow's first node
    router: str           # its first VN router, which decapsulates
    onward: str           # the next node on the path


@pytest.fixture(scope="module")
def hop(lab) -> Hop:
    for name, spec in lab.topology.flows.items():
        path = expect.vn_path(lab, spec.src, spec.dst)
        if len(path) >= 3:
            result = ping(lab.runtime, spec.src, expect.lan_address(lab, spec.dst), count=2, timeout=1,
                          source=expect.lan_address(lab, spec.src))
            guard(result.ok, f"the flow {name} the checks use does not get through its path\n{result.output}")
            return Hop(name, *path[:3])
    pytest.skip(f"not applicable: no flow of {lab.topology.name} crosses a VN router")


def _forward(lab, report_dir, hop: Hop, tag: str, datagrams: dict[str, IP]) -> dict[str, tuple[list, list]]:
    """Send each datagram (by marker) to the router under the hop's SA;
    per marker, (copies decapsulated by the router, copies it sent on)."""
    arrival = Capture(lab.runtime, hop.router, "any", report_dir / f"{tag}-in-{hop.flow}.pcap", "icmp",
                      direction="in")
    onwards = access_capture(lab, report_dir, hop.router, f"{tag}-out-{hop.flow}", bpf="")
    before = inspect.snmp_counters(lab.runtime, hop.router) | inspect.snmp_counters(lab.runtime, hop.router,
                                                                                     "netstat")
    with MultiCapture([arrival, onwards]):
        for datagram in datagrams.values():
            send_forged(lab, hop.sender, hop.router, datagram)
        arrival.await_packets(lambda p: ICMP in p and any(m.encode() in bytes(p) for m in datagrams), len(datagrams))
    after = inspect.snmp_counters(lab.runtime, hop.router) | inspect.snmp_counters(lab.runtime, hop.router,
                                                                                   "netstat")
    resync(lab, hop.sender, hop.router)
    tunnelled = tunnel_errors.Tunnelled(lab.plan.nodes[hop.router].base_address,
                                        lab.plan.nodes[hop.onward].base_address, lab.decrypt)
    found = {}
    for marker, datagram in datagrams.items():
        arrived = [p for p in arrival.packets if ICMP in p and marker.encode() in bytes(p)]
        # On towards the next node: in its tunnel (ESP or plain IPIP), or in
        # clear to the datagram's own destination. (The router's ICMP error
        # back to the sender quotes the datagram too: not sent on.)
        sent_on = tunnelled.carrying(onwards.packets, marker.encode()) + [
            p for p in onwards.packets if IP in p and p[IP].dst == datagram.dst and marker.encode() in bytes(p)]
        found[marker] = (arrived, sent_on)
    moved = {k: after[k] - before.get(k, 0) for k in COUNTERS if after.get(k, 0) != before.get(k, 0)}
    events.note(hop.router, f"datagrams {hop.sender} sent {hop.router} under its SA, for {hop.onward}'s side", [
        f"{marker}: {datagrams[marker].src} > {datagrams[marker].dst} ttl {datagrams[marker].ttl}: decapsulated "
        f"{len(arrived)}, sent on towards {hop.onward} {len(sent_on)}" for marker, (arrived, sent_on) in found.items()]
        + [f"{hop.router}'s counters that moved: {moved}"])
    return found


def _echo(src: str, dst: str, marker: str, ttl: int = 64) -> IP:
    return IP(src=src, dst=dst, ttl=ttl) / ICMP(type=8, id=0x3131) / Raw(marker.encode())


@dataclass
class Forwarded:
    datagrams: dict[str, IP]                  # what was sent, by kind
    found: dict[str, tuple[list, list]]       # by kind: (copies decapsulated, copies sent on)


@pytest.fixture(scope="module")
def forwarded(lab, report_dir, hop) -> Forwarded:
    """One exchange for both checks: a TTL-0 datagram (3.1), and datagrams
    whose source is the router's own base address or the next tunnel's far
    end (3.2), all addressed behind the far end."""
    spec = lab.topology.flows[hop.flow]
    target = expect.lan_address(lab, spec.dst)
    datagrams = {"ttl 0": _echo(expect.lan_address(lab, hop.sender), target, "", ttl=0),
                 "own": _echo(lab.plan.nodes[hop.router].base_address, target, ""),
                 "far end": _echo(lab.plan.nodes[hop.onward].base_address, target, "")}
    markers = {kind: f"fwd-{kind.replace(' ', '')}-{secrets.token_hex(4)}" for kind in datagrams}
    for kind, datagram in datagrams.items():
        datagram[Raw].load = markers[kind].encode()
    found = _forward(lab, report_dir, hop, "forward", {markers[kind]: d for kind, d in datagrams.items()})
    return Forwarded(datagrams, {kind: found[markers[kind]] for kind in datagrams})


@pytest.mark.req("IPIP-TTL0-FWD")
def test_inner_datagram_with_ttl_zero_is_not_forwarded_after_decapsulation(hop, forwarded):
    """RFC 2003 3.1 where the decapsulator forwards: an inner datagram that
    arrives with TTL 0 for a destination beyond the router is discarded."""
    arrived, sent_on = forwarded.found["ttl 0"]
    guard(arrived and arrived[0][IP].ttl == 0, f"{hop.router} never decapsulated the forged datagram with TTL 0 "
                                               f"(seen: {[p[IP].ttl for p in arrived]})")
    assert not sent_on, (f"{hop.router} decapsulated a datagram with TTL 0 and sent it on towards {hop.onward}: "
                         f"{[p.summary() for p in sent_on]}")


@pytest.mark.req("IPIP-NO-LOOP")
def test_datagram_from_the_routers_own_or_the_tunnels_far_end_is_not_tunnelled(hop, forwarded):
    """RFC 2003 3.2: a router that would tunnel a datagram whose source is
    one of its own addresses, or the tunnel's far end, must not (a loop
    inside the tunnel); the datagrams are addressed behind the far end."""
    kinds = ("own", "far end")
    guard(all(forwarded.found[kind][0] for kind in kinds),
          f"{hop.router} did not decapsulate both forged datagrams: "
          f"{ {kind: len(forwarded.found[kind][0]) for kind in kinds} }")
    tunnelled = {kind: forwarded.found[kind][1] for kind in kinds if forwarded.found[kind][1]}
    assert not tunnelled, "\n".join(
        f"{hop.router} tunnelled towards {hop.onward} a datagram whose source is {kind} "
        f"({forwarded.datagrams[kind].src}): {[p.summary() for p in packets]}" for kind, packets in tunnelled.items())
