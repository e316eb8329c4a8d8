"""Decrypt captured ESP with SA keys read from the nodes' kernels (scapy's IPsec implementation)."""
from __future__ import annotations

from functools import cached_property

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import ESP, SecurityAssociation as ScapySA
from scapy.packet import Raw

from testbed.sa import SecurityAssociation

IPPROTO_ESP = 50
IPPROTO_IPIP = 4
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


class Decrypted:
    """A captured ESP packet as its SA decrypted it. The payload is kept as
    bytes; the packets made of it are parsed only when asked for (under
    emulation, parsing is what costs)."""

    def __init__(self, outer: IP, spi: int, next_header: int, payload: bytes):
        self.outer = outer              # the captured packet's IP header (as captured)
        self.spi = spi
        self.next_header = next_header  # the protocol ESP carried (4 for IPIP)
        self.payload = payload          # what ESP carried, padding and trailer removed

    @cached_property
    def inner(self) -> IP | None:
        """The tunnelled packet when the next header is 4."""
        return IP(self.payload) if self.next_header == IPPROTO_IPIP else None

    @cached_property
    def plain(self) -> IP:
        """The whole packet as decrypted: the outer header, then what ESP carried."""
        header = self.outer.copy()
        header.remove_payload()
        header.proto = self.next_header
        del header.len, header.chksum
        return IP(bytes(header / Raw(self.payload)))

    def seen_as(self, outer: IP) -> "Decrypted":
        """The same decryption for another copy of the packet (another outer header)."""
        return Decrypted(outer, self.spi, self.next_header, self.payload)


def _open(sa: SecurityAssociation, esp: bytes) -> tuple[int, bytes]:
    """(next header, payload) of an ESP packet (from its SPI on), or an
    exception when its keys do not verify. AES-GCM (RFC 4106) and AES-CBC
    with HMAC-SHA-256-128 straight from the bytes; anything else through
    scapy's IPsec."""
    spi_seq = esp[:8]
    if sa.algorithm == "rfc4106-gcm-aes":
        key = bytes.fromhex(sa.key)
        iv, sealed = esp[8:16], esp[16:]
        plain = AESGCM(key[:-4]).decrypt(key[-4:] + iv, sealed, spi_seq)
    elif sa.algorithm in ("cbc-aes-hmac-sha256", "cbc-aes"):
        body = esp
        if sa.algorithm == "cbc-aes-hmac-sha256":
            body, icv = esp[:-16], esp[-16:]
            mac = hmac.HMAC(bytes.fromhex(sa.auth_key), hashes.SHA256())
            mac.update(body)
            if mac.finalize()[:16] != icv:
                raise ValueError("the ICV does not verify")
        iv, sealed = body[8:24], body[24:]
        decryptor = Cipher(algorithms.AES(bytes.fromhex(sa.key)), modes.CBC(iv)).decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
    else:
        scapy_sa(sa)          # names an algorithm it cannot decrypt
        raise UnknownAlgorithm(f"SA 0x{sa.spi:08x}: {sa.algorithm}")
    pad_length, next_header = plain[-2], plain[-1]
    if pad_length + 2 > len(plain):
        raise ValueError(f"padding of {pad_length} octets in a payload of {len(plain)}")
    return next_header, plain[:-2 - pad_length]


def decrypt(packet, sas: list[SecurityAssociation]) -> Decrypted | None:
    """Decrypt one captured ESP packet, or None if no SA matches its SPI and
    addresses. Several SAs may match (the same SPI re-installed with other
    keys); the first whose keys verify wins, and if none does, the last
    failure is raised."""
    if IP not in packet or packet[IP].proto != IPPROTO_ESP:
        return None
    outer = packet[IP]
    esp = bytes(outer.payload)
    spi = int.from_bytes(esp[:4], "big")
    failure: Exception | None = None
    for sa in sas:
        if sa.spi == spi and sa.src == outer.src and sa.dst == outer.dst:
            try:
                next_header, payload = _open(sa, esp)
            except Exception as exc:     # keys that do not verify, or a cut packet
                failure = exc
                continue
            return Decrypted(outer, sa.spi, next_header, payload)
    if failure is not None:
        raise failure
    return None
