"""Decrypt captured ESP with SA keys read from the nodes' kernels (scapy's IPsec implementation)."""
from __future__ import annotations

from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import ESP, SecurityAssociation as ScapySA

from testbed.datapath.ipsec import SecurityAssociation

IPPROTO_ESP = 50
IKE_PORT, IKE_NATT_PORT = 500, 4500


def is_ike(packet) -> bool:
    """An IKE message: UDP 500 to 500, or UDP 4500 to 4500 behind the zero
    non-ESP marker (RFC 3948 2.2); ESP in UDP is not IKE."""
    if UDP not in packet:
        return False
    udp = packet[UDP]
    if udp.sport == udp.dport == IKE_PORT:
        return True
    return udp.sport == udp.dport == IKE_NATT_PORT and bytes(udp.payload)[:4] == b"\0\0\0\0"


class UnknownAlgorithm(ValueError):
    pass


def scapy_sa(sa: SecurityAssociation) -> ScapySA:
    if sa.algorithm == "rfc4106-gcm-aes":
        # scapy takes the RFC 4106 salt as the key's last 4 bytes, as the kernel does.
        return ScapySA(ESP, spi=sa.spi, crypt_algo="AES-GCM", crypt_key=bytes.fromhex(sa.key),
                       crypt_icv_size=16)
    if sa.algorithm == "cbc-aes-hmac-sha256":
        return ScapySA(ESP, spi=sa.spi, crypt_algo="AES-CBC", crypt_key=bytes.fromhex(sa.key),
                       auth_algo="SHA2-256-128", auth_key=bytes.fromhex(sa.auth_key))
    if sa.algorithm == "cbc-aes":      # no integrity at all (a broken configuration the suite must catch)
        return ScapySA(ESP, spi=sa.spi, crypt_algo="AES-CBC", crypt_key=bytes.fromhex(sa.key))
    raise UnknownAlgorithm(f"SA 0x{sa.spi:08x} {sa.src}->{sa.dst}: no decryption for algorithm {sa.algorithm}")


@dataclass
class Decrypted:
    outer: IP             # the captured packet's IP header (as captured)
    spi: int
    next_header: int      # the protocol ESP carried (4 for IPIP)
    inner: IP | None      # the tunnelled packet when next header is 4
    plain: IP | None = None   # the whole packet as decrypted (outer header, then what ESP carried)


def decrypt(packet, sas: list[SecurityAssociation]) -> Decrypted | None:
    """Decrypt one captured ESP packet, or None if no SA matches its SPI and
    addresses. Several SAs may match (the same SPI re-installed with other
    keys); the first whose keys verify wins, and if none does, the last
    failure is raised."""
    if IP not in packet or packet[IP].proto != IPPROTO_ESP:
        return None
    outer = packet[IP]
    esp = outer[ESP]
    failure: Exception | None = None
    for sa in sas:
        if sa.spi == esp.spi and sa.src == outer.src and sa.dst == outer.dst:
            try:
                # Decrypt a copy: scapy rewrites the header it is given.
                plain = scapy_sa(sa).decrypt(IP(bytes(outer)))
            except Exception as exc:     # scapy raises several types for a key that does not verify
                failure = exc
                continue
            inner = plain.payload if plain.proto == 4 and isinstance(plain.payload, IP) else None
            return Decrypted(outer, sa.spi, plain.proto, inner, plain)
    if failure is not None:
        raise failure
    return None
