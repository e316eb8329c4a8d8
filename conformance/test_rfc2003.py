"""RFC 2003 3.1 encapsulation rules, read from the wire (decrypting the ESP):
outer TTL, TOS copied, DF copied (RFC 3884 A.1), inner TTL handling."""
from __future__ import annotations

import re
import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed import expect
from testbed.probe.esp import decrypt
from testbed.probe.flows import SENT_TTL, TOS, FlowTraffic, access_capture
from testbed.probe.traffic import ping
from testbed import events

@pytest.fixture(scope="session")
def encapsulated(lab, flow_traffic: FlowTraffic):
    """Decrypted echo requests of the flow at its source's and destination's access links."""
    traffic = flow_traffic

    def requests(packets) -> list[tuple[IP, IP]]:
        found = []
        for packet in packets:
            plain = decrypt(packet, lab.sas)
            inner = plain.inner if plain else None
            if inner is not None and ICMP in inner and inner[ICMP].type == 8 and Raw in inner \
                    and traffic.marker in bytes(inner[Raw]):
                found.append((plain.outer, inner))
        return found

    seen = {"src": requests(traffic.src_access), "dst": requests(traffic.dst_access)}
    events.packets(f"{traffic.name}: decrypted echo requests (outer ttl/tos/flags | inner ttl/tos/flags)", [
        f"{where}: {o.src}>{o.dst} ttl {o.ttl} tos 0x{o.tos:02x} {o.flags} | {i.src}>{i.dst} ttl {i.ttl} "
        f"tos 0x{i.tos:02x} {i.flags}" for where, pairs in seen.items() for o, i in pairs])
    for where, pairs in seen.items():
        assert pairs, f"no decrypted echo request of the flow captured at the {where} access link"
    return traffic, seen


@pytest.mark.req("IPIP-OUTER-TTL")
def test_outer_ttl_is_the_tunnels_fixed_value(lab, encapsulated):
    _, seen = encapsulated
    want = lab.topology.defaults.tunnel.ttl
    ttls = sorted({outer.ttl for outer, _ in seen["src"]})
    assert ttls == [want], f"outer TTL {ttls} as the source's packets leave it, want the configured {want}"


@pytest.mark.req("IPIP-TOS")
def test_outer_tos_is_copied_from_the_inner_header(lab, encapsulated):
    _, seen = encapsulated
    pairs = [(outer.tos, inner.tos) for where in seen.values() for outer, inner in where]
    assert all(inner == TOS for _, inner in pairs), f"inner TOS {pairs}, the sender set 0x{TOS:02x}"
    wrong = [(hex(o), hex(i)) for o, i in pairs if o != i]
    assert not wrong, f"outer TOS differs from the inner TOS (outer, inner): {wrong}"


@pytest.mark.req("IPIP-DF")
def test_outer_df_is_set_when_the_inner_df_is(lab, encapsulated):
    _, seen = encapsulated
    pairs = [(outer, inner) for where in seen.values() for outer, inner in where]
    assert all("DF" in str(inner.flags) for _, inner in pairs), "the sender's packets lack DF (ping -M do)"
    cleared = [outer.summary() for outer, _ in pairs if "DF" not in str(outer.flags)]
    assert not cleared, f"inner DF set but outer DF clear in {len(cleared)} packets: {cleared[:3]}"


@pytest.mark.req("IPIP-INNER-TTL")
def test_inner_ttl_untouched_at_encapsulation_and_decremented_per_vn_hop(lab, encapsulated):
    traffic, seen = encapsulated
    first = sorted({inner.ttl for _, inner in seen["src"]})
    assert first == [SENT_TTL], f"inner TTL {first} on the first tunnel, want {SENT_TTL} (sent, not decremented)"
    routers = len(expect.vn_path(lab, traffic.src, traffic.dst)) - 2
    last = sorted({inner.ttl for _, inner in seen["dst"]})
    assert last == [SENT_TTL - routers], (f"inner TTL {last} on the last tunnel, want {SENT_TTL - routers} "
                                          f"({routers} VN routers on the path each decrement once)")


@pytest.mark.req("IPIP-TTL-EXPIRY")
def test_ttl_expiring_in_the_vn_is_not_encapsulated_and_time_exceeded_reaches_the_sender(lab, report_dir, flow):
    """RFC 2003 3.1: a packet whose TTL reaches 0 at a VN router is not sent on
    through the next tunnel; the router's Time Exceeded goes back to the
    original sender, across the VN."""
    name, spec = flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    routers = len(path) - 2
    if routers < 1:
        pytest.skip(f"not applicable: flow {name} crosses no VN router")
    last_router = path[-2]
    marker = secrets.token_bytes(8)
    with access_capture(lab, report_dir, spec.dst, f"ttl-expiry-{name}") as onward:
        result = ping(lab.runtime, spec.src, expect.lan_address(lab, spec.dst), count=2, pattern_hex=marker.hex(),
                      source=expect.lan_address(lab, spec.src), extra=["-t", str(routers)])
    leaked = [p for p in onward.packets if (d := decrypt(p, lab.sas)) and d.inner is not None
              and marker in bytes(d.inner)]
    events.note(spec.src, f"ping with TTL {routers}: expires at {last_router}", [result.output])
    assert not leaked, (f"{len(leaked)} packets with the expired TTL were encapsulated on towards {spec.dst}: "
                        f"{[p.summary() for p in leaked[:3]]}")
    want_from = lab.plan.nodes[last_router].tunnel_to(path[-3]).vn_address
    assert "Time to live exceeded" in result.output, (
        f"{spec.src} got no Time Exceeded for a packet that expired at {last_router}\n{result.output}")
    assert f"From {want_from}" in result.output, (
        f"Time Exceeded did not come from {last_router}'s tunnel address {want_from}\n{result.output}")


NARROW_BASE_MTU = 1400
# ESP overhead without padding: SPI + sequence (8), IV (8 for GCM, 16 for
# CBC), pad length + next header (2), ICV (16).
ESP_OVERHEAD = {"rfc4106-gcm-aes": 34, "cbc-aes-hmac-sha256": 42}
OUTER_HEADER = 20
FRAG_NEEDED = re.compile(r"From (\S+) icmp_seq=\d+ Frag needed and DF set \(mtu = (\d+)\)")


@pytest.mark.req("IPIP-PMTU")
def test_too_big_packet_gets_fragmentation_needed_back_to_the_sender(lab, flow):
    """RFC 2003 4 / RFC 3884 A.1: a VN router whose next tunnel crosses a base
    path narrower than the packet (DF set) sends Fragmentation Needed back to
    the original sender, with an MTU that leaves room for the outer header and
    ESP; a packet of that size then gets through."""
    name, spec = flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    if len(path) < 3:
        pytest.skip(f"not applicable: flow {name} crosses no VN router")
    router, onward = lab.plan.nodes[path[1]], lab.plan.nodes[path[2]]
    gateway = dict(router.routes)["0.0.0.0/0"]
    narrow = ["ip", "route", "replace", f"{onward.base_address}/32", "via", gateway, "dev",
              router.veths[0].device, "mtu", "lock", str(NARROW_BASE_MTU)]
    lab.runtime.run(router.name, narrow, check=True)
    src, dst = expect.lan_address(lab, spec.src), expect.lan_address(lab, spec.dst)
    try:
        big = ping(lab.runtime, spec.src, dst, count=2, source=src, size=NARROW_BASE_MTU - 28, extra=["-M", "do"])
        answers = FRAG_NEEDED.findall(big.output)
        assert answers, (f"{spec.src} got no Fragmentation Needed for a {NARROW_BASE_MTU}-byte DF packet that "
                         f"cannot cross {router.name}'s narrowed path to {onward.name}\n{big.output}")
        sender, mtu = answers[0][0], int(answers[0][1])
        router_addresses = {t.vn_address for t in router.tunnels} | {expect.lan_address(lab, router.name)}
        assert sender in router_addresses, f"Fragmentation Needed came from {sender}, not from {router.name}"
        overhead = OUTER_HEADER + ESP_OVERHEAD[router.tunnel_to(onward.name).algorithm]
        assert mtu + overhead <= NARROW_BASE_MTU, (
            f"announced MTU {mtu} leaves no room for the outer header and ESP ({overhead} bytes) "
            f"within {NARROW_BASE_MTU}")
        fits = ping(lab.runtime, spec.src, dst, count=2, source=src, size=mtu - 28, extra=["-M", "do"])
        assert fits.ok, f"a {mtu}-byte DF packet (the announced MTU) does not get through\n{fits.output}"
    finally:
        lab.runtime.run(router.name, ["ip", "route", "del", f"{onward.base_address}/32"])
        for node in path:
            lab.runtime.run(node, ["ip", "route", "flush", "cache"])
