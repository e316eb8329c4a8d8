"""An IKE implementation: how the IKEv2 keying (ikev2.py) drives one kind of
daemon on the VN nodes that run it. The keying decides what each end of a
link must negotiate (LinkConfig, in neutral terms) and judges nothing
itself; an implementation starts and stops its daemon per node, translates
a LinkConfig into the daemon's own configuration, acts on a link when asked
(initiate, close, rekey) and reports what the daemon holds as
negotiated.IkeSaView records. strongSwan is strongswan_daemon.py; a new
implementation is one module registered in implementations().
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from testbed.keying.negotiated import IkeSaView
from testbed.keying.pki import Credentials
from testbed.runtime.base import Runtime


@dataclass(frozen=True)
class LinkConfig:
    """One end of one virtual link, as the keying wants it negotiated."""
    name: str                     # the connection's name on both ends (link-<label>)
    local: str                    # this end's base address (its IKE identity too)
    remote: str
    initiator: bool               # starts the IKE_SA, and again after a dead peer
    mode: str                     # the CHILD_SA's: transport (IIPtran) or tunnel
    local_ts: tuple[str, ...]     # traffic selector prefixes
    remote_ts: tuple[str, ...]
    protocol: int                 # the selectors' IP protocol: 4 (IPIP), 0: any
    esp: str                      # the ESP suite (testbed/sa.py names: rfc4106-gcm-aes, ...)
    pfs_group: int | None         # the CHILD_SA's Diffie-Hellman group on rekeys; None: no PFS
    rekey_s: int                  # the CHILD_SA's rekey time; 0: never
    life_s: int | None            # the CHILD_SA's hard life; None: the daemon's default after the rekey
    replay_window: int
    ike_group: int                # the IKE_SA's Diffie-Hellman group (its proposal: AES-GCM-16-128, PRF SHA-256)
    ike_rekey_s: int
    dpd_delay_s: int
    dpd_clear: bool               # after a dead peer, clear only (nobody negotiates again)
    auth: str                     # "certs" or "psk"
    psk: str | None = None


class IkeDaemon:
    """One implementation's daemons on a lab's nodes (one daemon per node)."""
    name = ""
    # What the daemon logs when a peer cannot be authenticated or refuses a proposal.
    FAILURE = re.compile(r"(?!)")

    def __init__(self, runtime: Runtime, state_dir: Path):
        self.runtime, self.state_dir = runtime, state_dir

    # -- the daemon -------------------------------------------------------------
    def start(self, node: str) -> None:
        """Start the node's daemon and wait until it takes commands."""
        raise NotImplementedError

    def running(self, node: str) -> bool:
        raise NotImplementedError

    def kill(self, node: str, sig: int) -> None:
        """Signal the node's daemon and wait until it is gone."""
        raise NotImplementedError

    @staticmethod
    def stop_lab(runtime: Runtime, state_dir: Path) -> None:
        """Stop every daemon of this kind in a lab, knowing only its name (also after a crash)."""
        raise NotImplementedError

    def log_lines(self, node: str) -> list[str]:
        raise NotImplementedError

    def log_tail(self, node: str, lines: int = 6) -> str:
        """The log's last lines, for an error message."""
        return " | ".join(self.log_lines(node)[-lines:]) or "no log yet"

    def log_name(self, node: str) -> str:
        """The file name its log is kept under beside a report."""
        return f"{self.name}-{node}.log"

    def dead_peer_after(self, dpd_delay_s: int) -> float:
        """Seconds of silence after which the daemon declares its peer dead."""
        raise NotImplementedError

    # -- links ------------------------------------------------------------------
    def load(self, node: str, links: list[LinkConfig], credentials: Credentials | None,
             trusted_ca: bytes | None) -> None:
        """Give the node's daemon these links, its own key and certificate
        and the CA it trusts (DER; none with pre-shared keys); an initiator's
        link is negotiated at once."""
        raise NotImplementedError

    def unload(self, node: str, name: str) -> None:
        """Forget the link (no renegotiation follows)."""
        raise NotImplementedError

    def close(self, node: str, name: str) -> None:
        """Delete the link's IKE_SA (its CHILD_SA's SAs and policies go with it)."""
        raise NotImplementedError

    def rekey_child(self, node: str, name: str, break_first: bool = False) -> None:
        """Rekey the link's CHILD_SA now (break_first: close it, then negotiate a new one)."""
        raise NotImplementedError

    def rekey_ike(self, node: str, name: str) -> None:
        """Rekey the link's IKE_SA now; its CHILD_SAs move to the new one."""
        raise NotImplementedError

    def sas(self, node: str) -> dict[str, list[IkeSaView]]:
        """Every IKE_SA the node's daemon holds (with its CHILD_SAs), by link name."""
        raise NotImplementedError


def implementations() -> dict[str, type[IkeDaemon]]:
    from testbed.keying.libreswan import LibreswanDaemon
    from testbed.keying.strongswan_daemon import StrongswanDaemon
    return {daemon.name: daemon for daemon in (StrongswanDaemon, LibreswanDaemon)}
