"""The ESP decryption the wire checks rely on, against packets scapy encrypts."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed.datapath.ipsec import new_sa
from testbed.probe.esp import decrypt, encrypt, scapy_sa


@pytest.mark.parametrize("algorithm, icv_bits", [("rfc4106-gcm-aes", 0), ("cbc-aes-hmac-sha256", 0),
                                                 ("cbc-3des-hmac-md5", 0), ("rfc4106-gcm-aes", 64)])
def test_decrypt_recovers_the_ipip_inner_packet(algorithm, icv_bits):
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, algorithm, "AB", icv_bits=icv_bits)
    inner = IP(src="172.16.1.1", dst="192.168.2.1") / ICMP() / Raw(b"marker")
    wire = encrypt(sa, IP(src=sa.src, dst=sa.dst, proto=4) / inner, 7)
    plain = decrypt(IP(bytes(wire)), [sa])
    assert plain.next_header == 4
    assert plain.inner.src == "172.16.1.1" and bytes(plain.inner[Raw]) == b"marker"


def test_wrong_key_does_not_decrypt():
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    other = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    other = type(sa)(**{**other.as_dict(), "spi": sa.spi})
    wire = scapy_sa(sa).encrypt(IP(src=sa.src, dst=sa.dst, proto=4) / IP() / ICMP())
    with pytest.raises(Exception):
        decrypt(IP(bytes(wire)), [other])


def test_packet_of_unknown_sa_is_not_decrypted():
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    wire = scapy_sa(sa).encrypt(IP(src=sa.src, dst=sa.dst, proto=4) / IP() / ICMP())
    assert decrypt(IP(bytes(wire)), []) is None


def test_ike_messages_are_told_from_esp_in_udp():
    from scapy.layers.inet import UDP
    from testbed.probe.esp import is_ike

    def wire(sport, dport, payload):
        return IP(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=dport) / payload))

    assert is_ike(wire(500, 500, b"\x11" * 28))
    assert is_ike(wire(4500, 4500, b"\0\0\0\0" + b"\x11" * 28))
    assert not is_ike(wire(4500, 4500, b"\xc0\x01\x02\x03" + b"\x11" * 28))   # ESP in UDP
    assert not is_ike(wire(500, 53, b"\x11" * 28))
    assert not is_ike(IP(src="10.0.0.1", dst="10.0.0.2", proto=50) / (b"\x11" * 28))


def test_copies_of_one_packet_are_decrypted_once_each_with_its_own_outer_header():
    from testbed.probe.flows import decrypt_all
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    wire = IP(bytes(scapy_sa(sa).encrypt(IP(src=sa.src, dst=sa.dst, proto=4, ttl=64) / IP() / ICMP())))
    later = wire.copy()
    later.ttl = 62                    # the same packet two routers on
    del later.chksum
    later = IP(bytes(later))
    calls = []

    def counting(packet):
        calls.append(packet)
        return decrypt(packet, [sa])
    found = decrypt_all([wire, later], counting)
    assert len(calls) == 1
    first, second = found[id(wire)], found[id(later)]
    assert (first.outer.ttl, second.outer.ttl, first.plain.ttl, second.plain.ttl) == (64, 62, 64, 62)
    assert bytes(first.inner) == bytes(second.inner) and first.next_header == second.next_header == 4


def test_an_algorithm_the_suite_cannot_decrypt_is_named_as_such():
    from testbed.probe.esp import UnknownAlgorithm
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "cbc-aes-hmac-sha256", "AB")
    wire = scapy_sa(sa).encrypt(IP(src=sa.src, dst=sa.dst, proto=4) / IP() / ICMP())
    odd = type(sa)(**{**sa.as_dict(), "algorithm": "cbc(serpent)+hmac(sha256)"})
    with pytest.raises(UnknownAlgorithm, match="cannot decrypt cbc.serpent"):
        decrypt(IP(bytes(wire)), [odd])


def test_a_wrong_icv_length_does_not_verify():
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB", icv_bits=64)
    wire = encrypt(sa, IP(src=sa.src, dst=sa.dst, proto=4) / IP() / ICMP(), 1)
    assumed = type(sa)(**{**sa.as_dict(), "icv_bits": 128})
    with pytest.raises(Exception):
        decrypt(IP(bytes(wire)), [assumed])


def test_hand_made_gcm_is_what_scapy_makes():
    """The ESP the suite forges by hand with a 16-octet ICV: as long as scapy's, carrying the same."""
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    carried = IP(src=sa.src, dst=sa.dst, proto=4, id=9) / IP() / ICMP() / Raw(b"x" * 13)
    theirs = scapy_sa(sa).encrypt(carried, seq_num=5)
    ours = encrypt(sa, carried, 5)
    assert decrypt(IP(bytes(ours)), [sa]).inner == decrypt(IP(bytes(theirs)), [sa]).inner
    assert len(bytes(ours)) == len(bytes(theirs))


def test_a_capture_read_as_bytes_decrypts_like_a_dissected_one(tmp_path):
    """What IKE-REKEY reads: over a thousand packets, not dissected (an
    Ethernet capture; a short frame's padding left out of the ICV)."""
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    from testbed.probe.capture import ip_frames
    from testbed.probe.esp import decrypt_raw
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    wire = encrypt(sa, IP(src=sa.src, dst=sa.dst, proto=4) / IP(dst="192.168.2.1") / ICMP() / Raw(b"mark"), 9)
    wrpcap(str(tmp_path / "c.pcap"), [Ether() / IP(src="10.9.9.9", dst="10.9.9.8") / ICMP(),
                                      Ether(type=0x0800) / Raw(bytes(wire) + b"\0" * 6)])
    frames = ip_frames(tmp_path / "c.pcap")
    assert len(frames) == 2 and decrypt_raw(frames[0], [sa]) is None
    src, dst, spi, payload = decrypt_raw(frames[1], [sa])
    assert (src, dst, spi) == (sa.src, sa.dst, sa.spi) and b"mark" in payload
