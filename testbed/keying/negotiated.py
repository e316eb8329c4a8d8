"""What an IKE daemon reports it negotiated for a link, in the IANA names
the RFCs use (RFC 8247 for the IKE_SA, RFC 8221 for the CHILD_SA), whichever
daemon it is: each keying translates its daemon's own spellings."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChildSaView:
    state: str                    # INSTALLED, REKEYED, ...
    mode: str                     # TRANSPORT, TUNNEL
    encryption: str               # ENCR_AES_GCM_16
    key_bits: int
    integrity: str                # AUTH_HMAC_SHA2_256_128; "" with an AEAD
    dh_group: int | None          # the key exchange that made it (PFS); None: none
    rekey_in_s: int | None        # seconds until the daemon rekeys it; None: never
    life_in_s: int | None         # seconds until it expires; None: never
    spi_in: int = 0
    spi_out: int = 0


@dataclass(frozen=True)
class IkeSaView:
    state: str                    # ESTABLISHED, ...
    encryption: str
    key_bits: int
    integrity: str                # "" with an AEAD
    prf: str                      # PRF_HMAC_SHA2_256
    dh_group: int | None
    rekey_in_s: int | None        # seconds until the IKE_SA is rekeyed; None: never
    reauth_in_s: int | None       # seconds until it is reauthenticated; None: never
    children: tuple[ChildSaView, ...] = ()

    def describe(self) -> str:
        parts = [f"{self.encryption}-{self.key_bits}", self.integrity, self.prf, f"DH group {self.dh_group}"]
        return "/".join(p for p in parts if p)
