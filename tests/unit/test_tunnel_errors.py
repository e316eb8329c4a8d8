"""An ICMP error from inside a tunnel counts for a flow only if it quotes one
of the encapsulator's packets that carried the flow (by IP ID, protocol
and the SPI and sequence number)."""
from __future__ import annotations

from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed.datapath.ipsec import new_sa
from testbed.probe.esp import decrypt, scapy_sa
from testbed.probe.tunnel_errors import Tunnelled, error_quoting, errors_about

SA = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
MARKER = b"flow-marker-1234"


def esp(seq: int, payload: bytes, ip_id: int) -> IP:
    inner = IP(src="192.168.4.1", dst="192.168.2.1") / ICMP(id=7, seq=seq) / Raw(payload)
    packet = scapy_sa(SA).encrypt(IP(src=SA.src, dst=SA.dst, proto=4, id=ip_id) / inner, seq_num=seq)
    return IP(bytes(packet))


def test_errors_about_the_flows_own_packets_only():
    flow, hello = esp(5, MARKER, 0x1111), esp(6, b"ospf hello", 0x2222)
    tunnelled = Tunnelled(SA.src, SA.dst, lambda p: decrypt(p, [SA]))
    carried = tunnelled.carrying([flow, hello], MARKER)
    assert carried == [flow]
    about_flow = IP(error_quoting(flow, "10.1.1.1", 11, 0))
    about_hello = IP(error_quoting(hello, "10.1.1.1", 11, 0))
    seen = errors_about([about_hello, about_flow], SA.src, carried)
    assert [(e.source, e.icmp_type, e.code, e.quoted_protocol) for e in seen] == [("10.1.1.1", 11, 0, 50)]


def test_plain_ipip_is_matched_by_its_payload():
    plain = IP(src=SA.src, dst=SA.dst, proto=4, id=9) / IP(src="192.168.4.1", dst="192.168.2.1") / ICMP() / \
        Raw(MARKER)
    plain = IP(bytes(plain))
    tunnelled = Tunnelled(SA.src, SA.dst, lambda p: None)
    assert tunnelled.carrying([plain], MARKER) == [plain]
    seen = errors_about([IP(error_quoting(plain, "10.1.1.1", 3, 1))], SA.src, [plain])
    assert [(e.icmp_type, e.code, e.quoted_protocol) for e in seen] == [(3, 1, 4)]
