"""A security association as data: what the testbed installs, what the
kernels hold and the captures are decrypted with. The ground floor: every
layer may import it; it imports nothing of the project."""
from __future__ import annotations

from dataclasses import asdict, dataclass

IPPROTO_IPIP = 4   # /etc/protocols calls 94 "ipip"; IP-in-IP is 4


@dataclass(frozen=True)
class SecurityAssociation:
    src: str
    dst: str
    spi: int
    reqid: int
    algorithm: str          # topology name of the algorithm
    key: str                # hex; for GCM the last 4 bytes are the salt
    auth_key: str = ""      # hex; only for cipher+HMAC suites
    link: str = ""
    mode: str = "transport"  # or "tunnel" (the alternatives IIPtran is compared with)
    if_id: int = 0           # xfrm interface the SA belongs to (tunnel-interface mode)

    def as_dict(self) -> dict:
        return asdict(self)

    def xfrm_crypto(self) -> list[str]:
        if self.algorithm == "rfc4106-gcm-aes":
            return ["aead", "rfc4106(gcm(aes))", f"0x{self.key}", "128"]
        if self.algorithm == "cbc-aes":      # encryption without integrity: only a fault installs it
            return ["enc", "cbc(aes)", f"0x{self.key}"]
        return ["enc", "cbc(aes)", f"0x{self.key}", "auth-trunc", "hmac(sha256)", f"0x{self.auth_key}", "128"]
