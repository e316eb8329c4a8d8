"""RFC 4303 3.4 as the receiving end of each virtual link of a flow's path
applies it (RFC 3884 4.2.3: VN packets are accepted only if they arrived
over the secured tunnel): a replayed ESP packet, one with an unknown SPI
and one with a corrupted ICV are dropped, and the kernel counts each drop.
A corrupted packet must be dropped by integrity protection, so the
receiving SA, as its kernel holds it, must have an ICV at all."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
from scapy.layers.inet import IP
from scapy.layers.ipsec import ESP

from testbed import events
from testbed.probe import inspect
from testbed.probe.flows import FlowTraffic
from testbed.probe.inject import send_raw_ip

SENT = 3


@dataclass
class Sample:
    sender: str
    receiver: str
    packet: IP        # one ESP packet carrying the flow's echo request on this link


@pytest.fixture
def esp_samples(lab, flow_traffic: FlowTraffic) -> list[Sample]:
    """Per virtual link of the path, one ESP packet carrying the flow's echo
    request, as the link's sender put it on its access link."""
    traffic, samples = flow_traffic, []
    for a, b in zip(traffic.path, traffic.path[1:]):
        sent = traffic.requests_on_hop(lab, a, b, traffic.access[a])
        assert sent, f"no ESP from {a} to {b} carrying the flow captured on {a}'s access link"
        samples.append(Sample(a, b, IP(bytes(sent[0][IP]))))
    return samples


def _inject(lab, traffic: FlowTraffic, sample: Sample, packet: IP, counter: str, what: str) -> list[str]:
    """Send `packet` SENT times from the sender's base router; the receiver must
    count each as `counter` and the flow's destination must receive nothing."""
    router = lab.plan.nodes[sample.sender].veths[0].peer_node
    receiver = sample.receiver
    before = inspect.xfrm_stats(lab.runtime, receiver)
    echoes = inspect.snmp_counters(lab.runtime, traffic.dst)["Icmp.InEchos"]
    for _ in range(SENT):
        send_raw_ip(lab.runtime, router, bytes(packet), packet.dst)
    after = inspect.xfrm_stats(lab.runtime, receiver)
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    delivered = inspect.snmp_counters(lab.runtime, traffic.dst)["Icmp.InEchos"] - echoes
    events.note(receiver, f"{what} on {sample.sender}->{receiver}: {SENT} sent from {router}", [
        f"ESP spi 0x{packet[ESP].spi:08x} seq {packet[ESP].seq} {packet.src} > {packet.dst}",
        f"{receiver}'s xfrm counters that moved: {moved}",
        f"echo requests delivered at {traffic.dst}: {delivered}"])
    problems = []
    if delivered:
        problems.append(f"{what} on {sample.sender}->{receiver}: {traffic.dst} received {delivered} of the "
                        f"{SENT} packets' echo requests")
    if moved.get(counter, 0) < SENT:
        problems.append(f"{what} on {sample.sender}->{receiver}: {receiver} did not count {SENT} drops as "
                        f"{counter}; counters that moved: {moved}")
    return problems


@pytest.mark.req("ESP-REPLAY")
def test_replayed_esp_is_dropped_and_counted(lab, flow_traffic, esp_samples):
    problems = [p for s in esp_samples for p in _inject(lab, flow_traffic, s, s.packet, "XfrmInStateSeqError",
                                                         "replayed ESP")]
    assert not problems, "\n".join(problems)


@pytest.mark.req("ESP-UNKNOWN-SPI")
def test_esp_with_an_unknown_spi_is_dropped_and_counted(lab, flow_traffic, esp_samples):
    problems = []
    for sample in esp_samples:
        known = lab.sa_book.spis() | {sa.spi for sa in lab.kernel_sad(sample.receiver).states}
        forged = sample.packet.copy()
        forged[ESP].spi = next(s for s in iter(lambda: 0x1000 + secrets.randbelow(0xEFFFF000), None)
                               if s not in known)
        problems += _inject(lab, flow_traffic, sample, forged, "XfrmInNoStates", "ESP with an unknown SPI")
    assert not problems, "\n".join(problems)


@pytest.mark.req("ESP-ICV")
def test_esp_with_a_corrupted_icv_is_dropped_and_counted(lab, flow_traffic, esp_samples):
    problems = []
    for sample in esp_samples:
        spi = sample.packet[ESP].spi
        held = [sa for sa in lab.kernel_sad(sample.receiver).states if sa.spi == spi]
        if not held:
            problems.append(f"{sample.receiver} no longer holds SA 0x{spi:08x}: nothing to check")
            continue
        if not held[0].authenticated:
            problems.append(f"{sample.sender}->{sample.receiver}: the receiving SA 0x{spi:08x} ({held[0].algorithm}) "
                            "has no integrity check value; a corrupted packet can only be dropped by chance")
            continue
        raw = bytearray(bytes(sample.packet))
        raw[-1] ^= 0xFF          # the last byte of the ICV
        # A fresh sequence number, so the anti-replay check cannot be what drops it.
        forged = IP(bytes(raw))
        forged[ESP].seq = sample.packet[ESP].seq + 1_000_000
        problems += _inject(lab, flow_traffic, sample, forged, "XfrmInStateProtoError", "ESP with a corrupted ICV")
    assert not problems, "\n".join(problems)
