"""RFC 3884 3.1 and A.2: on the base network, VN traffic is outer IP / ESP /
IPIP with the endpoints' own base addresses (RFC 4301 4.1), never plaintext.
Captures cover the base links and the access link of every node on the
flow's path; ESP is decrypted with the keys the nodes' kernels hold."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP

from guards import guard
from testbed import events, expect
from testbed.probe import inspect
from testbed.probe.capture import Capture
from testbed.probe.esp import IPPROTO_ESP, is_ike
from testbed.probe.flows import FlowTraffic
from testbed.probe.traffic import ping


def _between_endpoints(lab, packets) -> list:
    pairs = expect.tunnel_endpoint_pairs(lab)
    return [p for p in packets if IP in p and (p[IP].src, p[IP].dst) in pairs]


def _flow_crossed_every_link(lab, traffic: FlowTraffic) -> None:
    """The guard that makes a 'nothing wrong was seen' verdict mean something:
    the flow's own ESP was captured on every virtual link of its path."""
    missing = traffic.hops_without_requests(lab)
    assert not missing, (f"the flow's own ESP was not captured on virtual link(s) {missing} of its path "
                         f"{'-'.join(traffic.path)}: nothing proves what crossed them")


@pytest.mark.req("WIRE-ESP")
def test_every_packet_between_tunnel_endpoints_is_esp(lab, flow_traffic: FlowTraffic):
    _flow_crossed_every_link(lab, flow_traffic)
    tunnel = _between_endpoints(lab, flow_traffic.everywhere)
    # Key management between the endpoints (IKE, its liveness checks included) is not VN traffic.
    ike = [p for p in tunnel if is_ike(p)]
    if ike:
        events.note("", "IKE messages between the endpoints (not counted)", [p.summary() for p in ike[:10]])
    not_esp = [p.summary() for p in tunnel if p[IP].proto != IPPROTO_ESP and not is_ike(p)]
    assert not not_esp, f"{len(not_esp)} of {len(tunnel)} packets between endpoints are not ESP: {not_esp[:5]}"


@pytest.mark.req("WIRE-NOCLEAR")
def test_no_plaintext_ipip_and_no_marker_in_clear(lab, flow_traffic: FlowTraffic):
    _flow_crossed_every_link(lab, flow_traffic)
    packets, marker = flow_traffic.everywhere, flow_traffic.marker
    ipip = [p.summary() for p in packets if IP in p and p[IP].proto == 4]
    assert not ipip, f"plaintext IPIP (protocol 4) on the base network: {ipip[:5]}"
    clear = [p.summary() for p in packets if marker in bytes(p)]
    assert not clear, f"payload marker {marker.hex()} visible in clear in {len(clear)} packets: {clear[:5]}"


@pytest.mark.req("WIRE-FORMAT")
def test_decrypted_esp_is_ipip_carrying_the_flow(lab, flow_traffic: FlowTraffic):
    traffic = flow_traffic
    src_address, dst_address = expect.lan_address(lab, traffic.src), expect.lan_address(lab, traffic.dst)
    esp = [p for p in _between_endpoints(lab, traffic.everywhere) if p[IP].proto == IPPROTO_ESP]
    assert esp, "no ESP captured between tunnel endpoints"
    for packet in esp:
        result = traffic.decrypted.get(id(packet))
        assert result is not None, (f"ESP packet {packet.summary()} matches no SA the nodes' kernels held "
                                    "(SPI, src, dst)")
        assert not isinstance(result, str), f"ESP packet {packet.summary()} does not decrypt: {result}"
        assert result.next_header == 4, f"ESP next header {result.next_header}, want 4 (IPIP): {packet.summary()}"
    carrying = [(a, b, p) for a, b in zip(traffic.path, traffic.path[1:]) for p in traffic.requests_on_hop(lab, a, b)]
    events.packets("decrypted ESP carrying the flow, per virtual link (outer / ESP / inner)", [
        f"{a}->{b}: {p[IP].src} > {p[IP].dst} ESP spi 0x{p[ESP].spi:08x} seq {p[ESP].seq} / next header 4 / "
        f"{traffic.plain(p).inner.summary()}" for a, b, p in carrying])
    if carrying:
        a, b, first = carrying[0]
        events.ladder(f"the flow's echo request on virtual link {a}->{b}", bytes(first[IP]),
                      bytes(traffic.plain(first).plain))
    _flow_crossed_every_link(lab, traffic)
    for _, _, packet in carrying:
        inner = traffic.plain(packet).inner
        assert (inner.src, inner.dst) == (src_address, dst_address), \
            f"inner echo {inner.src}->{inner.dst}, want {src_address}->{dst_address}"


@pytest.mark.req("WIRE-ENDPOINTS")
def test_outer_addresses_are_the_endpoints_own_base_addresses(lab, flow_traffic: FlowTraffic, kernel_ipsec):
    """RFC 4301 4.1: transport mode between gateways only for their own addresses."""
    esp = [p for p in flow_traffic.everywhere if IP in p and p[IP].proto == IPPROTO_ESP]
    assert esp, "no ESP captured on the base links"
    sa_pairs = {(sa.src, sa.dst) for sad in kernel_ipsec.values() for sa in sad.states}
    wrong = [p.summary() for p in esp if (p[IP].src, p[IP].dst) not in sa_pairs]
    assert not wrong, f"ESP between addresses that are not endpoints of an SA the kernels hold: {wrong[:5]}"
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
    inbound = lab.kernel_sad(spec.dst).between(tunnel.remote_base, tunnel.local_base)
    assert inbound, f"{spec.dst} holds no SA from {previous} ({tunnel.remote_base} -> {tunnel.local_base})"
    modes = {f"0x{sa.spi:08x}": sa.mode for sa in inbound}
    assert set(modes.values()) == {"transport"}, (
        f"{spec.dst}'s inbound SA(s) from {previous} are in mode {modes}: IPsec, not the IPIP interface, "
        "decapsulates")
    device = inspect.devices(lab.runtime, spec.dst).get(tunnel.device)
    assert device is not None and device.kind == "ipip", (
        f"{spec.dst} has no IPIP interface {tunnel.device} for the VN packet to come out of")
    marker = secrets.token_bytes(8)
    src_address, dst_address = expect.lan_address(lab, spec.src), expect.lan_address(lab, spec.dst)
    with Capture(lab.runtime, spec.dst, tunnel.device, report_dir / f"decap-{name}.pcap", "icmp",
                 direction="in") as cap:
        result = ping(lab.runtime, spec.src, dst_address, count=2, pattern_hex=marker.hex(), source=src_address)
    requests = [p for p in cap.packets if IP in p and ICMP in p and p[ICMP].type == 8 and marker in bytes(p)
                and (p[IP].src, p[IP].dst) == (src_address, dst_address)]
    events.note(spec.dst, f"the flow's echo requests received on {tunnel.device}",
                [f"{len(requests)} of {result.sent} sent ({result.received} answered)"])
    guard(result.received, f"the flow {spec.src} -> {spec.dst} gets no reply: nothing to see decapsulated\n"
                           f"{result.output}")
    assert len(requests) >= result.received, (
        f"{result.received} echo requests were answered but only {len(requests)} came into {spec.dst} out of "
        f"its IPIP interface {tunnel.device}")
