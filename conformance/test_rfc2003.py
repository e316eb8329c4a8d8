"""RFC 2003 3.1 encapsulation rules, read from the wire (decrypting the ESP):
outer TTL, TOS copied, DF copied (RFC 3884 A.1), inner TTL handling."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed import expect
from testbed.probe.esp import decrypt
from testbed.probe.flows import SENT_TTL, TOS, FlowTraffic
from testbed.report.evidence import RECORDER

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
    RECORDER.packets(f"{traffic.name}: decrypted echo requests (outer ttl/tos/flags | inner ttl/tos/flags)", [
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
