"""Decrypt captured ESP with SA keys read from the nodes' kernels, by the
kernel's algorithm names and ICV length (the `cryptography` library); forge
ESP with them (scapy's IPsec). An algorithm the suite has no decryption for
raises UnknownAlgorithm, which names it."""
from __future__ import annotations

import socket
from functools import cached_property

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
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
    """An SA whose algorithm the suite cannot decrypt (or forge) with."""


# scapy's names: cipher (kernel name) and integrity (kernel name, ICV bits).
SCAPY_CIPHERS = {"rfc4106(gcm(aes))": "AES-GCM", "cbc(aes)": "AES-CBC", "cbc(des3_ede)": "3DES",
                 "rfc7539esp(chacha20,poly1305)": "CHACHA20-POLY1305", "ecb(cipher_null)": "NULL"}
SCAPY_INTEGRITY = {("hmac(sha256)", 128): "SHA2-256-128", ("hmac(sha384)", 192): "SHA2-384-192",
                   ("hmac(sha512)", 256): "SHA2-512-256", ("hmac(sha1)", 96): "HMAC-SHA1-96",
                   ("hmac(md5)", 96): "HMAC-MD5-96", ("", 0): "NULL"}
# Decryption straight from the bytes: the HMACs and block ciphers.
HASHES = {"hmac(md5)": hashes.MD5, "hmac(sha1)": hashes.SHA1, "hmac(sha256)": hashes.SHA256,
          "hmac(sha384)": hashes.SHA384, "hmac(sha512)": hashes.SHA512}
BLOCK_CIPHERS = {"cbc(aes)": (algorithms.AES, 16), "cbc(des3_ede)": (TripleDES, 8)}


def cannot(sa: SecurityAssociation, what: str) -> UnknownAlgorithm:
    return UnknownAlgorithm(f"SA 0x{sa.spi:08x} {sa.src}->{sa.dst}: the suite cannot {what} "
                            f"{sa.encryption}{' + ' + sa.integrity if sa.integrity else ''} "
                            f"(ICV {sa.icv} bits)")


def scapy_sa(sa: SecurityAssociation) -> ScapySA:
    """scapy's SA for forging ESP with a kernel SA's keys."""
    cipher = SCAPY_CIPHERS.get(sa.encryption)
    integrity = "NULL" if sa.aead else SCAPY_INTEGRITY.get((sa.integrity, sa.icv if sa.integrity else 0))
    if cipher is None or integrity is None:
        raise cannot(sa, "forge ESP with")
    extra = {"crypt_icv_size": sa.icv // 8} if sa.aead else {}
    if not sa.aead and sa.integrity:
        extra.update(auth_key=bytes.fromhex(sa.auth_key))
    return ScapySA(ESP, spi=sa.spi, crypt_algo=cipher, crypt_key=bytes.fromhex(sa.key), auth_algo=integrity,
                   **extra)


def encrypt(sa: SecurityAssociation, packet: IP, seq_num: int) -> IP:
    """The transport-mode ESP packet an SA makes of `packet` (its IP header
    kept, what it carries protected). AES-GCM by hand, whatever its ICV
    (scapy's always has 16 octets); anything else through scapy."""
    if sa.encryption != "rfc4106(gcm(aes))" or sa.mode != "transport":
        return scapy_sa(sa).encrypt(packet, seq_num=seq_num)
    header, carried = packet.copy(), bytes(packet.payload)
    next_header = header.proto
    header.remove_payload()
    padding = (-(len(carried) + 2)) % 4
    plain = carried + bytes(range(1, padding + 1)) + bytes([padding, next_header])
    key, icv = bytes.fromhex(sa.key), sa.icv // 8
    spi_seq, iv = sa.spi.to_bytes(4, "big") + seq_num.to_bytes(4, "big"), seq_num.to_bytes(8, "big")
    sealing = Cipher(algorithms.AES(key[:-4]), modes.GCM(key[-4:] + iv)).encryptor()
    sealing.authenticate_additional_data(spi_seq)
    sealed = sealing.update(plain) + sealing.finalize()
    header.proto = IPPROTO_ESP
    del header.len, header.chksum
    return IP(bytes(header / Raw(spi_seq + iv + sealed + sealing.tag[:icv])))


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
    exception when its keys do not verify, or UnknownAlgorithm."""
    spi_seq, icv = esp[:8], sa.icv // 8
    key = bytes.fromhex(sa.key)
    if sa.encryption == "rfc4106(gcm(aes))":
        iv, sealed, tag = esp[8:16], esp[16:len(esp) - icv], esp[len(esp) - icv:]
        opened = Cipher(algorithms.AES(key[:-4]), modes.GCM(key[-4:] + iv, tag, min_tag_length=icv)).decryptor()
        opened.authenticate_additional_data(spi_seq)
        plain = opened.update(sealed) + opened.finalize()
    elif sa.encryption == "rfc7539esp(chacha20,poly1305)" and icv == 16:
        plain = ChaCha20Poly1305(key[:-4]).decrypt(key[-4:] + esp[8:16], esp[16:], spi_seq)
    elif sa.encryption in BLOCK_CIPHERS or sa.encryption == "ecb(cipher_null)":
        body = esp
        if sa.integrity:
            if sa.integrity not in HASHES:
                raise cannot(sa, "check the integrity of")
            body, received = esp[:len(esp) - icv], esp[len(esp) - icv:]
            mac = hmac.HMAC(bytes.fromhex(sa.auth_key), HASHES[sa.integrity]())
            mac.update(body)
            if mac.finalize()[:icv] != received:
                raise ValueError("the ICV does not verify")
        if sa.encryption == "ecb(cipher_null)":
            plain = body[8:]
        else:
            cipher, block = BLOCK_CIPHERS[sa.encryption]
            iv, sealed = body[8:8 + block], body[8 + block:]
            opened = Cipher(cipher(key), modes.CBC(iv)).decryptor()
            plain = opened.update(sealed) + opened.finalize()
    else:
        raise cannot(sa, "decrypt")
    pad_length, next_header = plain[-2], plain[-1]
    if pad_length + 2 > len(plain):
        raise ValueError(f"padding of {pad_length} octets in a payload of {len(plain)}")
    return next_header, plain[:-2 - pad_length]


def _open_matching(src: str, dst: str, esp: bytes, sas: list[SecurityAssociation]) -> tuple[int, int, bytes] | None:
    """(SPI, next header, payload) under the first SA of that SPI and those
    addresses whose keys verify; None if no SA matches, the last failure
    raised if none verifies (the same SPI re-installed with other keys)."""
    spi = int.from_bytes(esp[:4], "big")
    failure: Exception | None = None
    for sa in sas:
        if sa.spi == spi and sa.src == src and sa.dst == dst:
            try:
                return (spi, *_open(sa, esp))
            except Exception as exc:     # keys that do not verify, or a cut packet
                failure = exc
    if failure is not None:
        raise failure
    return None


def decrypt(packet, sas: list[SecurityAssociation]) -> Decrypted | None:
    """Decrypt one captured ESP packet, or None if no SA matches its SPI and
    addresses. Several SAs may match (the same SPI re-installed with other
    keys); the first whose keys verify wins, and if none does, the last
    failure is raised."""
    if IP not in packet or packet[IP].proto != IPPROTO_ESP:
        return None
    outer = packet[IP]
    opened = _open_matching(outer.src, outer.dst, bytes(outer.payload), sas)
    return Decrypted(outer, *opened) if opened else None


def esp_header(ip: bytes) -> tuple[str, str, int] | None:
    """(source, destination, SPI) of an IPv4 packet's bytes (as a capture
    holds them, not dissected: a stream of thousands under emulation), or
    None if it is no ESP."""
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != IPPROTO_ESP:
        return None
    start = (ip[0] & 15) * 4
    return socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), int.from_bytes(ip[start:start + 4], "big")


def decrypt_raw(ip: bytes, sas: list[SecurityAssociation]) -> tuple[str, str, int, bytes] | None:
    """An IPv4 packet's bytes decrypted: (source, destination, SPI,
    payload), or None if it is no ESP or no SA matches."""
    header = esp_header(ip)
    if header is None:
        return None
    ip = ip[:int.from_bytes(ip[2:4], "big")]         # a short frame's padding is no part of the ICV
    src, dst, _ = header
    opened = _open_matching(src, dst, ip[(ip[0] & 15) * 4:], sas)
    return (src, dst, opened[0], opened[2]) if opened else None
