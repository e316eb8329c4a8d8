"""`Capture.await_packets` counts the matching packets of a growing pcap
file, judging each settled packet once (a match may decrypt, which is costly
in the guest) and the last one again, as it may have been read half-written."""
from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.utils import wrpcap

from testbed.probe.capture import Capture


def _capture(tmp_path) -> Capture:
    cap = Capture.__new__(Capture)          # no tcpdump: the file is written here
    cap.pcap, cap.node, cap.device = tmp_path / "c.pcap", "A", "b-R1"
    return cap


def _packets(ports: list[int]):
    return [IP(dst="10.0.0.1") / UDP(dport=port) for port in ports]


def test_counts_the_matches_and_judges_each_settled_packet_once(tmp_path):
    cap = _capture(tmp_path)
    wrpcap(str(cap.pcap), _packets([1, 2, 1, 3]))
    judged = []

    def matches(packet) -> bool:
        judged.append(packet[UDP].dport)
        return packet[UDP].dport == 1

    assert cap.await_packets(matches, count=5, timeout=0.5) == 2       # never 5: waits out the timeout
    settled, last = judged[:3], judged[3:]
    assert settled == [1, 2, 1] and set(last) == {3} and len(last) >= 2


def test_a_packet_first_read_last_is_judged_for_good_once_more_arrive(tmp_path):
    cap = _capture(tmp_path)
    wrpcap(str(cap.pcap), _packets([1]))
    assert cap.await_packets(lambda p: p[UDP].dport == 1, count=1, timeout=0.5) == 1
    wrpcap(str(cap.pcap), _packets([1, 2, 1]))
    assert cap.await_packets(lambda p: p[UDP].dport == 1, count=2, timeout=0.5) == 2


def test_an_empty_or_missing_file_matches_nothing(tmp_path):
    cap = _capture(tmp_path)
    assert cap.await_packets(lambda p: True, count=1, timeout=0.3) == 0
