"""RFC 3884 3.1 and A.2: on the base network, VN traffic is outer IP / ESP /
IPIP with the endpoints' own base addresses (RFC 4301 4.1), never plaintext."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP
from scapy.packet import Raw

from testbed import expect
from testbed.probe import inspect
from testbed.probe.capture import Capture
from testbed.probe.esp import IPPROTO_ESP, decrypt
from testbed.probe.flows import FlowTraffic
from testbed.probe.traffic import ping
from testbed import events


@pytest.fixture
def wire(flow_traffic: FlowTraffic):
    """What crossed the router-to-router links while the flow ran."""
    return flow_traffic, flow_traffic.marker, flow_traffic.base_links


def _between_endpoints(lab, packets) -> list:
    pairs = expect.tunnel_endpoint_pairs(lab)
    return [p for p in packets if IP in p and (p[IP].src, p[IP].dst) in pairs]


@pytest.mark.req("WIRE-ESP")
def test_every_packet_between_tunnel_endpoints_is_esp(lab, wire):
    _, _, packets = wire
    tunnel = _between_endpoints(lab, packets)
    assert tunnel, "no packet between tunnel endpoints crossed the base links: nothing was checked"
    not_esp = [p.summary() for p in tunnel if p[IP].proto != IPPROTO_ESP]
    assert not not_esp, f"{len(not_esp)} of {len(tunnel)} packets between endpoints are not ESP: {not_esp[:5]}"


@pytest.mark.req("WIRE-NOCLEAR")
def test_no_plaintext_ipip_and_no_marker_in_clear(lab, wire):
    _, marker, packets = wire
    assert packets, "the base-link captures are empty: nothing was checked"
    ipip = [p.summary() for p in packets if IP in p and p[IP].proto == 4]
    assert not ipip, f"plaintext IPIP (protocol 4) on the base network: {ipip[:5]}"
    clear = [p.summary() for p in packets if marker in bytes(p)]
    assert not clear, f"payload marker {marker.hex()} visible in clear in {len(clear)} packets: {clear[:5]}"


@pytest.mark.req("WIRE-FORMAT")
def test_decrypted_esp_is_ipip_carrying_the_flow(lab, wire):
    spec, marker, packets = wire
    src_address = expect.lan_address(lab, spec.src)
    dst_address = expect.lan_address(lab, spec.dst)
    esp = [p for p in _between_endpoints(lab, packets) if p[IP].proto == IPPROTO_ESP]
    assert esp, "no ESP captured between tunnel endpoints"
    carrying = []
    for packet in esp:
        plain = decrypt(packet, lab.sas)
        assert plain is not None, f"ESP packet {packet.summary()} matches no SA of this lab (SPI, src, dst)"
        assert plain.next_header == 4, f"ESP next header {plain.next_header}, want 4 (IPIP): {packet.summary()}"
        inner = plain.inner
        if inner is not None and ICMP in inner and Raw in inner and marker in bytes(inner[Raw]):
            carrying.append((packet, inner))
    events.packets("decrypted ESP carrying the flow (outer / ESP / inner)", [
        f"{p[IP].src} > {p[IP].dst} ESP spi 0x{p[ESP].spi:08x} seq {p[ESP].seq} / next header 4 / "
        f"{inner.summary()}" for p, inner in carrying])
    assert carrying, f"no decrypted packet carries the flow's marker {marker.hex()}"
    for packet, inner in carrying:
        if inner[ICMP].type == 8:
            assert (inner.src, inner.dst) == (src_address, dst_address), \
                f"inner echo {inner.src}->{inner.dst}, want {src_address}->{dst_address}"


@pytest.mark.req("WIRE-ENDPOINTS")
def test_outer_addresses_are_the_endpoints_own_base_addresses(lab, wire):
    """RFC 4301 4.1: transport mode between gateways only for their own addresses."""
    _, _, packets = wire
    esp = [p for p in packets if IP in p and p[IP].proto == IPPROTO_ESP]
    assert esp, "no ESP captured on the base links"
    sa_pairs = {(sa.src, sa.dst): sa for sa in lab.sas}
    wrong = [p.summary() for p in esp if (p[IP].src, p[IP].dst) not in sa_pairs]
    assert not wrong, f"ESP between addresses that are not SA endpoints: {wrong[:5]}"
    node_base = {n.base_address for n in lab.plan.vn_nodes}
    foreign = [p.summary() for p in esp if p[IP].src not in node_base or p[IP].dst not in node_base]
    assert not foreign, f"ESP not between VN nodes' own base addresses: {foreign[:5]}"


@pytest.mark.req("WIRE-DECAP")
def test_transport_sa_decrypts_and_the_ipip_interface_decapsulates(lab, report_dir, flow):
    """RFC 3884 4.2.3 and A.2: the SA's mode decides whether IPsec
    decapsulates. IIPtran's inbound SA is transport mode: it only decrypts,
    and the VN packet comes out of the IPIP tunnel interface."""
    name, spec = flow
    previous = expect.vn_path(lab, spec.src, spec.dst)[-2]
    tunnel = lab.plan.nodes[spec.dst].tunnel_to(previous)
    _, inbound = lab.link_sas(spec.dst, previous)
    mode = inspect.sa_modes(lab.runtime, spec.dst).get(inbound.spi, "absent")
    assert mode == "transport", (f"{spec.dst}'s inbound SA 0x{inbound.spi:08x} from {previous} is in {mode} mode: "
                                 "IPsec, not the IPIP interface, decapsulates")
    device = inspect.devices(lab.runtime, spec.dst).get(tunnel.device)
    assert device is not None and device.kind == "ipip", (
        f"{spec.dst} has no IPIP interface {tunnel.device} for the VN packet to come out of")
    marker = secrets.token_bytes(8)
    with Capture(lab.runtime, spec.dst, tunnel.device, report_dir / f"decap-{name}.pcap", "icmp") as cap:
        ping(lab.runtime, spec.src, expect.lan_address(lab, spec.dst), count=2, pattern_hex=marker.hex(),
             source=expect.lan_address(lab, spec.src))
    seen = [p for p in cap.packets if IP in p and marker in bytes(p)]
    assert seen, f"the flow's VN packets did not come out of {spec.dst}'s {tunnel.device}"
