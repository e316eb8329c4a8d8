"""Waiting on a capture reads the growing pcap file incrementally: each
complete record is read and judged once (a match may decrypt, which is
costly in the guest), a record still being written waits for the next poll."""
from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.utils import wrpcap

from testbed.probe.capture import Capture, PcapTail


def _capture(tmp_path) -> Capture:
    cap = Capture.__new__(Capture)          # no tcpdump: the file is written here
    cap.pcap, cap.node, cap.device = tmp_path / "c.pcap", "A", "b-R1"
    return cap


def _packets(ports: list[int]):
    return [IP(dst="10.0.0.1") / UDP(dport=port) for port in ports]


def test_counts_the_matches_and_judges_each_packet_once(tmp_path):
    cap = _capture(tmp_path)
    wrpcap(str(cap.pcap), _packets([1, 2, 1, 3]))
    judged = []

    def matches(packet) -> bool:
        judged.append(packet[UDP].dport)
        return packet[UDP].dport == 1

    assert cap.await_packets(matches, count=5, timeout=0.5) == 2       # never 5: waits out the timeout
    assert judged == [1, 2, 1, 3]


def test_a_record_still_being_written_is_read_once_complete(tmp_path):
    path = tmp_path / "c.pcap"
    wrpcap(str(path), _packets([1, 2]))
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])             # the last record cut short, as tcpdump may leave it
    tail = PcapTail(path)
    assert [p[UDP].dport for p in tail.new_packets()] == [1]
    assert tail.new_packets() == []
    path.write_bytes(whole)
    assert [p[UDP].dport for p in tail.new_packets()] == [2]
    assert tail.new_packets() == []


def test_a_packet_that_arrives_later_is_found(tmp_path):
    cap = _capture(tmp_path)
    wrpcap(str(cap.pcap), _packets([2]))
    assert cap.wait_for_packet(lambda p: p[UDP].dport == 1, timeout=0.3) is None
    wrpcap(str(cap.pcap), _packets([2, 1]))
    assert cap.wait_for_packet(lambda p: p[UDP].dport == 1, timeout=0.3)[UDP].dport == 1


def test_an_empty_or_missing_file_matches_nothing(tmp_path):
    cap = _capture(tmp_path)
    assert cap.await_packets(lambda p: True, count=1, timeout=0.3) == 0



def test_a_finished_capture_reads_as_rdpcap_would_and_keeps_what_it_held(tmp_path):
    from scapy.layers.ipsec import ESP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    from testbed import events
    cap = _capture(tmp_path)
    frames = [Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / ESP(spi=7, seq=n, data=b"x" * 40) for n in (1, 2)]
    for n, frame in enumerate(frames):
        frame.time = 1000 + n / 8
    wrpcap(str(cap.pcap), frames)
    expected = [(p.summary(), bytes(p), float(p.time), p.wirelen) for p in rdpcap(str(cap.pcap))]
    seen = []
    events.listen(seen.append)
    try:
        cap.collect()
    finally:
        events.unlisten(seen.append)
    assert [e.count for e in seen if e.kind == "pcap"] == [2]
    cap.pcap.write_bytes(b"")                # the file reused once the capture ended
    assert [(p.summary(), bytes(p), float(p.time), p.wirelen) for p in cap.packets] == expected
    assert cap.packets is cap.packets        # dissected once
