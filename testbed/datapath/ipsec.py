"""Transport-mode ESP over each virtual link (RFC 3884 3.1).

Per virtual link: one SA per direction between the two base endpoints, and
out/in policies selecting IP protocol 4 between them with `level required`,
so IPIP between the endpoints can only travel encrypted and plaintext IPIP
is refused on input (4.2.3). pyroute2 has no xfrm SA/policy API, so the
kernel is programmed with iproute2's `ip xfrm`, one batch per node.
Keys are fresh random bytes per bring-up.
"""
from __future__ import annotations

import secrets
import subprocess
from dataclasses import asdict, dataclass

from testbed.errors import TestbedError
from testbed.runtime.base import Runtime
from testbed.topology.plan import TunnelEnd

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

    def as_dict(self) -> dict:
        return asdict(self)

    def xfrm_crypto(self) -> list[str]:
        if self.algorithm == "rfc4106-gcm-aes":
            return ["aead", "rfc4106(gcm(aes))", f"0x{self.key}", "128"]
        return ["enc", "cbc(aes)", f"0x{self.key}", "auth-trunc", "hmac(sha256)", f"0x{self.auth_key}", "128"]


def new_sa(src: str, dst: str, reqid: int, algorithm: str, link: str) -> SecurityAssociation:
    spi = 0x1000 + secrets.randbelow(0xEFFFF000)
    if algorithm == "rfc4106-gcm-aes":
        return SecurityAssociation(src, dst, spi, reqid, algorithm, secrets.token_hex(20), link=link)
    return SecurityAssociation(src, dst, spi, reqid, algorithm, secrets.token_hex(16),
                               secrets.token_hex(32), link=link)


def link_sas(tunnel: TunnelEnd, reqid: int) -> tuple[SecurityAssociation, SecurityAssociation]:
    """The two SAs of one virtual link, seen from `tunnel`'s end: (out, in)."""
    out = new_sa(tunnel.local_base, tunnel.remote_base, reqid, tunnel.algorithm, tunnel.label)
    back = new_sa(tunnel.remote_base, tunnel.local_base, reqid + 1, tunnel.algorithm, tunnel.label)
    return out, back


def xfrm_batch(local: str, remote: str, out: SecurityAssociation, back: SecurityAssociation) -> list[str]:
    """`ip -batch` lines installing both SAs and both policies on one end."""
    lines = []
    for sa in (out, back):
        lines.append(" ".join([
            "xfrm state add", f"src {sa.src} dst {sa.dst} proto esp spi 0x{sa.spi:08x}",
            f"reqid {sa.reqid} mode transport", *_quote(sa.xfrm_crypto()),
            f"sel src {sa.src}/32 dst {sa.dst}/32 proto {IPPROTO_IPIP}"]))
    for direction, sa, src, dst in (("out", out, local, remote), ("in", back, remote, local)):
        lines.append(" ".join([
            f"xfrm policy add src {src}/32 dst {dst}/32 proto {IPPROTO_IPIP} dir {direction}",
            f"tmpl src {sa.src} dst {sa.dst} proto esp reqid {sa.reqid} mode transport level required"]))
    return lines


def _quote(words: list[str]) -> list[str]:
    return [f'"{w}"' if "(" in w else w for w in words]


def apply_batch(runtime: Runtime, node: str, lines: list[str]) -> None:
    done = subprocess.run(["ip", "-n", runtime.netns(node), "-batch", "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TestbedError(f"{node}: installing IPsec state failed: {done.stderr.strip()}")


def protect_link(runtime: Runtime, node: str, peer: str, tunnel: TunnelEnd, peer_tunnel: TunnelEnd,
                 reqid: int) -> list[SecurityAssociation]:
    """Install the link's SAs and policies on both ends; return the two SAs."""
    out, back = link_sas(tunnel, reqid)
    apply_batch(runtime, node, xfrm_batch(tunnel.local_base, tunnel.remote_base, out, back))
    apply_batch(runtime, peer, xfrm_batch(peer_tunnel.local_base, peer_tunnel.remote_base, back, out))
    return [out, back]


def flush_policies(runtime: Runtime, node: str) -> None:
    """Fault injection for self-tests: drop every policy, keep the SAs."""
    apply_batch(runtime, node, ["xfrm policy flush"])
