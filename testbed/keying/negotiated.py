"""What an IKE daemon reports it negotiated for a link, in the IANA names
the RFCs use (RFC 8247 for the IKE_SA, RFC 8221 for the CHILD_SA), whichever
daemon it is: each implementation (testbed/keying/ike_daemon.py) translates
its daemon's own spellings, states and selector syntax into these."""
from __future__ import annotations

from dataclasses import dataclass

# States, as the checks name them (strongSwan's words; other daemons' are translated).
ESTABLISHED = "ESTABLISHED"      # an IKE_SA in use
INSTALLED = "INSTALLED"          # a CHILD_SA whose SAs are in the kernel


@dataclass(frozen=True)
class TrafficSelector:
    prefix: str                   # a.b.c.d/len
    protocol: int = 0             # IP protocol; 0: any

    def describe(self) -> str:
        return f"{self.prefix}[{self.protocol}]" if self.protocol else self.prefix


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
    local_ts: tuple[TrafficSelector, ...] = ()
    remote_ts: tuple[TrafficSelector, ...] = ()
    unique: str = ""              # the daemon's own id for it

    @property
    def spis(self) -> set[int]:
        return {self.spi_in, self.spi_out}

    def selectors(self) -> str:
        return (f"{', '.join(t.describe() for t in self.local_ts)} <=> "
                f"{', '.join(t.describe() for t in self.remote_ts)}")

    def describe(self) -> str:
        return (f"CHILD #{self.unique} {self.state} {self.mode} spi in {self.spi_in:08x} out {self.spi_out:08x} "
                f"{self.selectors()}")


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
    local_host: str = ""
    remote_host: str = ""
    spis: str = ""                # initiator/responder SPIs, as hex
    unique: str = ""

    def algorithms(self) -> str:
        parts = [f"{self.encryption}-{self.key_bits}", self.integrity, self.prf, f"DH group {self.dh_group}"]
        return "/".join(p for p in parts if p)

    def describe(self) -> str:
        return f"IKE #{self.unique} {self.state} {self.local_host}<=>{self.remote_host} spi {self.spis}"
