"""RFC 2003 3.1, 4 and 5 with RFC 3884 A.1 and 2.4: ICMP errors about VN
traffic must reach the original sender: Time Exceeded at a VN router, and
Fragmentation Needed relayed from a narrow base link inside a tunnel (the
other errors from inside a tunnel: test_rfc2003_relay.py)."""
from __future__ import annotations

import re
import secrets

import pytest
from scapy.layers.inet import ICMP, IP

from guards import guard
from testbed import events, expect
from testbed.probe import inspect
from testbed.probe.flows import access_capture
from testbed.probe.traffic import ping
from testbed.runtime.netlink import rtnl

NARROW_BASE_MTU = 1400
OUTER_HEADER = 20
FRAG_NEEDED = re.compile(r"From (\S+) icmp_seq=\d+ Frag needed and DF set \(mtu = (\d+)\)")


def _routed_flow(lab, name: str, spec) -> list[str]:
    path = expect.vn_path(lab, spec.src, spec.dst)
    if len(path) < 3:
        pytest.skip(f"not applicable: flow {name} crosses no VN router")
    return path


def _router_addresses(lab, node: str) -> set[str]:
    return {t.vn_address for t in lab.plan.nodes[node].tunnels} | {expect.lan_address(lab, node)}


@pytest.mark.req("IPIP-TTL-EXPIRY")
def test_ttl_expiring_in_the_vn_is_not_encapsulated_and_time_exceeded_reaches_the_sender(lab, report_dir, flow):
    """RFC 2003 3.1: a packet whose TTL reaches 0 at a VN router is not sent on
    through the next tunnel; the router's Time Exceeded goes back to the
    original sender, across the VN."""
    name, spec = flow
    path = _routed_flow(lab, name, spec)
    routers = len(path) - 2
    last_router = path[-2]
    marker = secrets.token_bytes(8)
    # Everything on the last hop's access link: a datagram that went on in
    # clear (not through the tunnel) is as much a leak as one encapsulated.
    with access_capture(lab, report_dir, spec.dst, f"ttl-expiry-{name}", bpf="") as onward:
        result = ping(lab.runtime, spec.src, expect.lan_address(lab, spec.dst), count=2, pattern_hex=marker.hex(),
                      source=expect.lan_address(lab, spec.src), extra=["-t", str(routers)])
    leaked = [p for p in onward.packets if marker in bytes(p)
              or ((d := lab.decrypt(p)) and d.inner is not None and marker in bytes(d.inner))]
    events.note(spec.src, f"ping with TTL {routers}: expires at {last_router}", [result.output])
    assert not leaked, (f"{len(leaked)} packets with the expired TTL were encapsulated on towards {spec.dst}: "
                        f"{[p.summary() for p in leaked[:3]]}")
    want_from = lab.plan.nodes[last_router].tunnel_to(path[-3]).vn_address
    assert "Time to live exceeded" in result.output, (
        f"{spec.src} got no Time Exceeded for a packet that expired at {last_router}\n{result.output}")
    assert f"From {want_from}" in result.output, (
        f"Time Exceeded did not come from {last_router}'s tunnel address {want_from}\n{result.output}")


def _egress_towards(lab, node: str) -> tuple[str, str]:
    """(base router, its device) that delivers base traffic to `node`: the
    last base link of every tunnel path ending at node."""
    veth = lab.plan.nodes[node].veths[0]
    return veth.peer_node, veth.peer_device


def _set_mtu(lab, router: str, device: str, mtu: int) -> None:
    with rtnl(lab.runtime.netns(router)) as ns:
        ns.link("set", index=ns.link_lookup(ifname=device)[0], mtu=mtu)


@pytest.mark.req("IPIP-PMTU")
def test_too_big_packet_gets_fragmentation_needed_back_to_the_sender(lab, report_dir, flow):
    """RFC 2003 4.1 / 5.1, RFC 3884 A.1: the base link in front of the next
    VN node is narrowed, so a base router inside the tunnel (not the VN
    router) finds the encapsulated packet too big. The encapsulator must
    learn the tunnel's path MTU from that router's ICMP and relay
    Fragmentation Needed to the original sender, with an MTU that is the
    base MTU less the outer header and ESP, give or take ESP padding."""
    name, spec = flow
    path = _routed_flow(lab, name, spec)
    router, onward = lab.plan.nodes[path[1]], lab.plan.nodes[path[2]]
    base_router, device = _egress_towards(lab, onward.name)
    src, dst = expect.lan_address(lab, spec.src), expect.lan_address(lab, spec.dst)
    _set_mtu(lab, base_router, device, NARROW_BASE_MTU)
    try:
        with access_capture(lab, report_dir, router.name, f"pmtu-{name}", bpf="icmp") as icmp:
            big = ping(lab.runtime, spec.src, dst, count=3, interval=0.3, source=src, size=NARROW_BASE_MTU - 28,
                       extra=["-M", "do"])
        from_base = [p for p in icmp.packets if ICMP in p and (p[ICMP].type, p[ICMP].code) == (3, 4)
                     and p[IP].dst == router.base_address]
        learned = inspect.path_mtu(lab.runtime, router.name, onward.base_address)
        answers = FRAG_NEEDED.findall(big.output)
        events.note(router.name, "what the narrowed base link caused", [
            f"{base_router}:{device} MTU {NARROW_BASE_MTU}",
            f"Fragmentation Needed from the base network to {router.name}: "
            f"{[(p[IP].src, p[ICMP].nexthopmtu) for p in from_base]}",
            f"{router.name}'s learned path MTU to {onward.name} ({onward.base_address}): {learned}",
            big.output])
        guard(from_base, f"no base router sent {router.name} Fragmentation Needed for the encapsulated packet: "
                         "the narrowed link was not exercised")
        assert learned == NARROW_BASE_MTU, (
            f"{router.name} did not learn the tunnel's path MTU from the base router's ICMP (route to "
            f"{onward.base_address} has MTU {learned}, want {NARROW_BASE_MTU})")
        assert answers, (f"{spec.src} got no Fragmentation Needed for a {NARROW_BASE_MTU}-byte DF packet that "
                         f"cannot cross the tunnel {router.name}-{onward.name}\n{big.output}")
        sender, mtu = answers[0][0], int(answers[0][1])
        assert sender in _router_addresses(lab, router.name), (
            f"Fragmentation Needed came from {sender}, not from the encapsulator {router.name}")
        outbound = lab.kernel_sad(router.name).between(router.base_address, onward.base_address)
        # ESP without padding (SPI, sequence, IV, pad length, next header, ICV), then the cipher's padding.
        overhead = outbound[0].as_sa().esp_overhead if outbound else None
        guard(overhead, f"{router.name} holds no SA to {onward.name} of a cipher whose ESP layout is known: {outbound}")
        fixed, block = overhead
        most = NARROW_BASE_MTU - OUTER_HEADER - fixed
        assert most - (block - 1) <= mtu <= most, (
            f"announced MTU {mtu}; the base link's {NARROW_BASE_MTU} less the outer header ({OUTER_HEADER}) and "
            f"ESP ({fixed} bytes and up to {block - 1} of padding) gives {most - block + 1}..{most}")
        fits = ping(lab.runtime, spec.src, dst, count=2, source=src, size=mtu - 28, extra=["-M", "do"])
        assert fits.ok, f"a {mtu}-byte DF packet (the announced MTU) does not get through\n{fits.output}"
    finally:
        _set_mtu(lab, base_router, device, 1500)
        for node in path:
            lab.runtime.run(node, ["ip", "route", "flush", "cache"])
