"""RFC 4303 3.4 as the receiving end of a virtual link applies it (RFC 3884
4.2.3: VN packets are accepted only if they arrived over the secured tunnel):
a replayed ESP packet, one with an unknown SPI and one with a corrupted ICV
are dropped, and the kernel counts each drop."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import IP
from scapy.layers.ipsec import ESP

from testbed.probe import inspect
from testbed.probe.esp import IPPROTO_ESP, decrypt
from testbed.probe.flows import FlowTraffic
from testbed.probe.inject import send_raw_ip
from testbed import events

SENT = 3


@pytest.fixture
def esp_sample(lab, flow_traffic: FlowTraffic):
    """One ESP packet carrying the flow's echo request, as the source sent it."""
    base = lab.plan.nodes[flow_traffic.src].base_address
    sent = [p for p in flow_traffic.src_access if IP in p and p[IP].proto == IPPROTO_ESP and p[IP].src == base
            and (plain := decrypt(p, lab.sas)) and plain.inner is not None
            and flow_traffic.marker in bytes(plain.inner)]
    assert sent, f"no ESP from {flow_traffic.src} carrying the flow captured on its access link"
    packet = IP(bytes(sent[0][IP]))
    receiver = next(n.name for n in lab.plan.vn_nodes if n.base_address == packet.dst)
    return flow_traffic, packet, receiver


def _inject(lab, traffic: FlowTraffic, packet: IP, receiver: str, counter: str, what: str) -> None:
    """Send `packet` SENT times from the source's base router; the receiver must
    count each as `counter` and the flow's destination must receive nothing."""
    router = lab.plan.nodes[traffic.src].veths[0].peer_node
    before = inspect.xfrm_stats(lab.runtime, receiver)
    echoes = inspect.snmp_counters(lab.runtime, traffic.dst)["Icmp.InEchos"]
    for _ in range(SENT):
        send_raw_ip(lab.runtime, router, bytes(packet), packet.dst)
    after = inspect.xfrm_stats(lab.runtime, receiver)
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    delivered = inspect.snmp_counters(lab.runtime, traffic.dst)["Icmp.InEchos"] - echoes
    events.note(receiver, f"{what}: {SENT} sent from {router}", [
        f"ESP spi 0x{packet[ESP].spi:08x} seq {packet[ESP].seq} {packet.src} > {packet.dst}",
        f"{receiver}'s xfrm counters that moved: {moved}",
        f"echo requests delivered at {traffic.dst}: {delivered}"])
    assert delivered == 0, f"{what}: {traffic.dst} received {delivered} of the {SENT} packets' echo requests"
    assert moved.get(counter, 0) >= SENT, (
        f"{what}: {receiver} did not count {SENT} drops as {counter}; counters that moved: {moved}")


@pytest.mark.req("ESP-REPLAY")
def test_replayed_esp_is_dropped_and_counted(lab, esp_sample):
    traffic, packet, receiver = esp_sample
    _inject(lab, traffic, packet, receiver, "XfrmInStateSeqError", "replayed ESP")


@pytest.mark.req("ESP-UNKNOWN-SPI")
def test_esp_with_an_unknown_spi_is_dropped_and_counted(lab, esp_sample):
    traffic, packet, receiver = esp_sample
    known = {sa.spi for sa in lab.sas}
    forged = packet.copy()
    forged[ESP].spi = next(s for s in iter(lambda: 0x1000 + secrets.randbelow(0xEFFFF000), None) if s not in known)
    _inject(lab, traffic, forged, receiver, "XfrmInNoStates", "ESP with an unknown SPI")


@pytest.mark.req("ESP-ICV")
def test_esp_with_a_corrupted_icv_is_dropped_and_counted(lab, esp_sample):
    traffic, packet, receiver = esp_sample
    raw = bytearray(bytes(packet))
    raw[-1] ^= 0xFF          # the last byte of the ICV
    # A fresh sequence number, so the anti-replay check cannot be what drops it.
    forged = IP(bytes(raw))
    forged[ESP].seq = packet[ESP].seq + 1_000_000
    _inject(lab, traffic, forged, receiver, "XfrmInStateProtoError", "ESP with a corrupted ICV")
