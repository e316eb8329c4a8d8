"""ICMP errors from inside a tunnel (RFC 2003 4), tied to the packets that
caused them.

A base router's error quotes the outer header and the first octets of the
tunnel packet it could not deliver: ESP (SPI, sequence number) or plain
IPIP. An error counts for a flow only if what it quotes is one of the
encapsulator's own packets carrying that flow's datagrams, matched by IP
ID, protocol and the first eight octets after the outer header (the SPI
and sequence number for ESP), so that errors about other traffic (routing
hellos over the same tunnel) prove nothing about the flow.
"""
from __future__ import annotations

from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP, IPerror

from testbed.probe.esp import IPPROTO_ESP

IPPROTO_IPIP = 4
QUOTED_OCTETS = 8          # what RFC 792 guarantees of the payload behind the quoted header


def packet_key(ip: IP) -> tuple[int, int, bytes]:
    """(IP ID, protocol, first octets after the header) of a tunnel packet."""
    return ip.id, ip.proto, bytes(ip.payload)[:QUOTED_OCTETS]


def quoted_key(error) -> tuple[int, int, bytes] | None:
    """The same of the packet an ICMP error quotes, or None."""
    if IPerror not in error:
        return None
    quoted = error[IPerror]
    return quoted.id, quoted.proto, bytes(quoted.payload)[:QUOTED_OCTETS]


class Tunnelled:
    """The packets src sent to dst (base addresses), each with the datagram
    it tunnels: ESP decrypted with the kernels' keys (once per packet), or
    plain IPIP."""

    def __init__(self, src: str, dst: str, decrypt):
        self.src, self.dst, self.decrypt = src, dst, decrypt
        self._inner: dict[bytes, bytes] = {}

    def inner(self, packet) -> bytes:
        """What the packet tunnels (b'' if it is none of src's to dst, or does not decrypt)."""
        if IP not in packet or (packet[IP].src, packet[IP].dst) != (self.src, self.dst):
            return b""
        outer = packet[IP]
        if outer.proto == IPPROTO_IPIP:
            return bytes(outer.payload)
        if outer.proto != IPPROTO_ESP:
            return b""
        key = bytes(outer.payload)
        if key not in self._inner:
            try:
                plain = self.decrypt(packet)
            except Exception:          # keys that do not verify: nothing of the flow's
                plain = None
            self._inner[key] = bytes(plain.inner) if plain is not None and plain.inner is not None else b""
        return self._inner[key]

    def carrying(self, packets, marker: bytes) -> list:
        """Those of `packets` whose tunnelled datagram carries `marker`."""
        return [p for p in packets if marker in self.inner(p)]


@dataclass(frozen=True)
class ErrorSeen:
    source: str           # the base router that sent it
    icmp_type: int
    code: int
    quoted_protocol: int  # 50 (ESP) or 4 (IPIP)

    def describe(self) -> str:
        what = {IPPROTO_ESP: "ESP", IPPROTO_IPIP: "IPIP"}.get(self.quoted_protocol, f"protocol {self.quoted_protocol}")
        return f"{self.source}: type {self.icmp_type} code {self.code} quoting the flow's {what} packet"


def errors_about(packets, to: str, tunnel_packets: list) -> list[ErrorSeen]:
    """ICMP errors sent to `to` (the encapsulator's base address) that quote
    one of `tunnel_packets`."""
    keys = {packet_key(p[IP]) for p in tunnel_packets}
    found = []
    for packet in packets:
        if IP in packet and ICMP in packet and packet[IP].dst == to and quoted_key(packet) in keys:
            found.append(ErrorSeen(packet[IP].src, packet[ICMP].type, packet[ICMP].code, packet[IPerror].proto))
    return found


def error_quoting(tunnel_packet: IP, source: str, icmp_type: int, code: int) -> bytes:
    """What a base router at `source` would send the encapsulator about
    `tunnel_packet`: the error with the packet's header and payload quoted."""
    quoted = bytes(tunnel_packet)[:tunnel_packet.ihl * 4 + 64]
    return bytes(IP(src=source, dst=tunnel_packet.src, ttl=64) / ICMP(type=icmp_type, code=code) / quoted)
