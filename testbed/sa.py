"""A security association as data: what the testbed installs, what the
kernels hold and the captures are decrypted with. The ground floor: every
layer may import it; it imports nothing of the project."""
from __future__ import annotations

from dataclasses import asdict, dataclass

IPPROTO_IPIP = 4   # /etc/protocols calls 94 "ipip"; IP-in-IP is 4


@dataclass(frozen=True)
class Suite:
    """An ESP transform the testbed can install, in the kernel's names."""
    encryption: str           # rfc4106(gcm(aes)), cbc(aes), cbc(des3_ede)
    integrity: str            # hmac(sha256), hmac(md5); "" for an AEAD or none at all
    icv_bits: int             # the ICV's length (0: none)
    key_octets: int           # encryption key (an RFC 4106 key ends in its 4-octet salt)
    auth_key_octets: int = 0

    @property
    def aead(self) -> bool:
        return self.encryption.startswith(("rfc4106(", "rfc4309(", "rfc7539esp("))


# The testbed's names for what it installs by hand. Only the first two are a
# lab's choice (topology ipsec.algorithm); the others only a fault installs:
# no integrity at all, and RFC 8221's SHOULD NOT / MUST NOT pair.
SUITES = {"rfc4106-gcm-aes": Suite("rfc4106(gcm(aes))", "", 128, 20),
          "cbc-aes-hmac-sha256": Suite("cbc(aes)", "hmac(sha256)", 128, 16, 32),
          "cbc-aes": Suite("cbc(aes)", "", 0, 16),
          "cbc-3des-hmac-md5": Suite("cbc(des3_ede)", "hmac(md5)", 96, 24, 16)}


# ESP's layout per cipher: (IV octets, what the payload is padded to).
CIPHER_LAYOUT = {"rfc4106(gcm(aes))": (8, 4), "rfc7539esp(chacha20,poly1305)": (8, 4), "cbc(aes)": (16, 16),
                 "cbc(des3_ede)": (8, 8), "ecb(cipher_null)": (0, 4)}


def suite_name(encryption: str, integrity: str) -> str:
    """The testbed's name for a kernel pair, else the kernel's names joined."""
    for name, suite in SUITES.items():
        if (suite.encryption, suite.integrity) == (encryption, integrity):
            return name
    return "+".join(p for p in (encryption, integrity) if p) or "none"


@dataclass(frozen=True)
class SecurityAssociation:
    src: str
    dst: str
    spi: int
    reqid: int
    algorithm: str          # a SUITES name, or the kernel's names joined with '+'
    key: str                # hex; for GCM the last 4 bytes are the salt
    auth_key: str = ""      # hex; only for cipher+HMAC suites
    link: str = ""
    mode: str = "transport"  # or "tunnel" (the alternatives IIPtran is compared with)
    if_id: int = 0           # xfrm interface the SA belongs to (tunnel-interface mode)
    icv_bits: int = 0        # the ICV's length; 0: the suite's own

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def encryption(self) -> str:
        """The kernel's name for the cipher (or AEAD)."""
        suite = SUITES.get(self.algorithm)
        return suite.encryption if suite else self.algorithm.split("+")[0]

    @property
    def integrity(self) -> str:
        """The kernel's name for the integrity algorithm; "" for none (or an AEAD)."""
        suite = SUITES.get(self.algorithm)
        if suite:
            return suite.integrity
        return self.algorithm.split("+")[1] if "+" in self.algorithm else ""

    @property
    def icv(self) -> int:
        """The ICV's length in bits."""
        return self.icv_bits or (SUITES[self.algorithm].icv_bits if self.algorithm in SUITES else 0)

    @property
    def aead(self) -> bool:
        return Suite(self.encryption, self.integrity, 0, 0).aead

    @property
    def esp_overhead(self) -> tuple[int, int] | None:
        """(octets ESP adds without padding: SPI, sequence, IV, pad length,
        next header, ICV; the block padding goes to), None for an unknown cipher."""
        if self.encryption not in CIPHER_LAYOUT:
            return None
        iv, block = CIPHER_LAYOUT[self.encryption]
        return 8 + iv + 2 + self.icv // 8, block

    def xfrm_crypto(self) -> list[str]:
        if self.aead:
            return ["aead", self.encryption, f"0x{self.key}", str(self.icv)]
        if not self.integrity:
            return ["enc", self.encryption, f"0x{self.key}"]
        return ["enc", self.encryption, f"0x{self.key}", "auth-trunc", self.integrity, f"0x{self.auth_key}",
                str(self.icv)]
