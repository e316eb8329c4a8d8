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

from testbed.errors import TestbedError
from testbed.runtime.base import Runtime
from testbed.sa import IPPROTO_IPIP, SUITES, SecurityAssociation  # noqa: F401  (the datapath's names for them)
from testbed.topology.plan import TunnelEnd
# The suites the testbed can install by hand (testbed/sa.py; some only as a fault).
ALGORITHMS = tuple(SUITES)
# Anti-replay (RFC 4303 3.4.3): iproute2's default window is 0, which turns
# the check off; 32 is the RFC's minimum.
REPLAY_WINDOW = 32


def new_sa(src: str, dst: str, reqid: int, algorithm: str, link: str, mode: str = "transport",
           if_id: int = 0, icv_bits: int = 0) -> SecurityAssociation:
    """Fresh random SPI and keys of the suite's lengths (`icv_bits`: another
    ICV length than the suite's, a fault)."""
    suite = SUITES[algorithm]
    spi = 0x1000 + secrets.randbelow(0xEFFFF000)
    auth_key = secrets.token_hex(suite.auth_key_octets) if suite.auth_key_octets else ""
    return SecurityAssociation(src, dst, spi, reqid, algorithm, secrets.token_hex(suite.key_octets), auth_key, link,
                               mode, if_id, icv_bits)


def link_sas(tunnel: TunnelEnd, reqid: int, mode: str = "transport",
             if_id: int = 0, icv_bits: int = 0) -> tuple[SecurityAssociation, SecurityAssociation]:
    """The two SAs of one virtual link, seen from `tunnel`'s end: (out, in)."""
    out = new_sa(tunnel.local_base, tunnel.remote_base, reqid, tunnel.algorithm, tunnel.label, mode, if_id, icv_bits)
    back = new_sa(tunnel.remote_base, tunnel.local_base, reqid + 1, tunnel.algorithm, tunnel.label, mode, if_id,
                  icv_bits)
    return out, back


def state_line(sa: SecurityAssociation, replay_window: int = REPLAY_WINDOW, bound: bool = True,
               protocol: int | None = IPPROTO_IPIP) -> str:
    """`ip xfrm state add` for one SA. A transport SA selects `protocol`
    (IPIP) between its endpoints (unless `bound` is off: a fault); a tunnel
    SA carries whatever its policies send it."""
    words = ["xfrm state add", f"src {sa.src} dst {sa.dst} proto esp spi 0x{sa.spi:08x}",
             f"reqid {sa.reqid} mode {sa.mode} replay-window {replay_window}", *_quote(sa.xfrm_crypto())]
    if sa.mode == "transport" and bound:
        words.append(f"sel src {sa.src}/32 dst {sa.dst}/32" + (f" proto {protocol}" if protocol else ""))
    if sa.if_id:
        words.append(f"if_id {sa.if_id}")
    return " ".join(words)


def expire_hard(runtime: Runtime, node: str, sa: SecurityAssociation, replay_window: int) -> None:
    """Have the node's kernel hard-expire an SA it holds (one in use), as
    its lifetime running out would: the SA updated with a hard limit already
    spent, a second after its first use. The kernel deletes it on its next
    timer tick and tells the keying daemon (XFRM_MSG_EXPIRE, hard). Not a
    limit on the time since it was added: while a soft expiry is pending,
    the kernel reads such a hard one as a clock change and puts it off."""
    line = state_line(sa, replay_window, bound=False).replace("xfrm state add", "xfrm state update", 1)
    apply_batch(runtime, node, [f"{line} limit time-use-hard 1"])


def policy_line(selector: str, direction: str, sa: SecurityAssociation, verb: str = "add",
                any_reqid: bool = False) -> str:
    """`ip xfrm policy` for traffic matching `selector`, protected by `sa`
    (by any SA of its addresses and mode with `any_reqid`: a fault)."""
    reqid = 0 if any_reqid else sa.reqid
    words = [f"xfrm policy {verb} {selector} dir {direction}",
             f"tmpl src {sa.src} dst {sa.dst} proto esp reqid {reqid} mode {sa.mode} level required"]
    if sa.if_id:
        words.append(f"if_id {sa.if_id}")
    return " ".join(words)


def ipip_selector(src: str, dst: str) -> str:
    return f"src {src}/32 dst {dst}/32 proto {IPPROTO_IPIP}"


def xfrm_batch(local: str, remote: str, out: SecurityAssociation, back: SecurityAssociation,
               bound: bool = True) -> list[str]:
    """`ip -batch` lines installing both SAs and both IIPtran policies on one
    end. `bound` off (a fault): SAs without selectors, templates for any reqid."""
    return [state_line(out, bound=bound), state_line(back, bound=bound),
            policy_line(ipip_selector(local, remote), "out", out, any_reqid=not bound),
            policy_line(ipip_selector(remote, local), "in", back, any_reqid=not bound)]


SHUNT_PRIORITY = 1000000      # below any IPsec policy's precedence (a lower number wins)


# The shunt's own mark (value 0, every bit compared): it matches every
# unmarked packet as a policy without a mark does, yet it is another policy
# to the kernel (selector, direction and mark make a policy's identity), so
# an IKE daemon installing its IPIP policy over the same selector (mark 0/0)
# neither replaces the shunt nor takes it away with its own.
SHUNT_MARK = "mark 0 mask 0xffffffff"


def block_shunts(local: str, remote: str, everything: bool = False) -> list[str]:
    """`ip -batch` lines blocking IPIP between two endpoints in both
    directions at the lowest precedence: whenever no IPsec policy of the link
    is in force (an IKE daemon renegotiating, or failing), the link fails
    closed, and the base network's own traffic between the two hosts flows
    on (RFC 3884 3: IIPtran "only adds IPsec protection to secure virtual
    links"). The daemon's IKE packets pass by its sockets' own bypass
    policies. `everything`: all traffic between them blocked (a fault)."""
    if everything:
        return [f"xfrm policy update src {local}/32 dst {remote}/32 dir out action block priority {SHUNT_PRIORITY}",
                f"xfrm policy update src {remote}/32 dst {local}/32 dir in action block priority {SHUNT_PRIORITY}"]
    return [f"xfrm policy update {ipip_selector(local, remote)} dir out action block priority {SHUNT_PRIORITY} "
            f"{SHUNT_MARK}",
            f"xfrm policy update {ipip_selector(remote, local)} dir in action block priority {SHUNT_PRIORITY} "
            f"{SHUNT_MARK}"]


def host_to_host_batch(local: str, remote: str, out: SecurityAssociation, back: SecurityAssociation) -> list[str]:
    """`ip -batch` lines for transport-mode ESP between two hosts, all their
    traffic (end-to-end IPsec, as hosts inside the VN would use it)."""
    return [state_line(out, protocol=None), state_line(back, protocol=None),
            policy_line(f"src {local}/32 dst {remote}/32", "out", out),
            policy_line(f"src {remote}/32 dst {local}/32", "in", back)]


def removal(lines: list[str]) -> list[str]:
    """The `ip -batch` lines deleting what `lines` added (SAs and policies)."""
    undo = []
    for line in lines:
        words = line.split()
        if words[:3] == ["xfrm", "state", "add"]:
            spi = words[words.index("spi") + 1]
            undo.append(f"xfrm state delete src {words[4]} dst {words[6]} proto esp spi {spi}")
        elif words[:2] == ["xfrm", "policy"]:
            selector = " ".join(words[3:words.index("tmpl")])
            if_id = f" if_id {words[words.index('if_id') + 1]}" if "if_id" in words else ""
            undo.append(f"xfrm policy delete {selector}{if_id}")
    return undo


def _quote(words: list[str]) -> list[str]:
    return [f'"{w}"' if "(" in w else w for w in words]


ALREADY_GONE = ("No such file or directory", "No such process")


def apply_batch(runtime: Runtime, node: str, lines: list[str], missing_ok: bool = False) -> None:
    """Run `ip xfrm` lines in one batch. With missing_ok (removals), entries
    already gone are skipped: each line then runs on its own, because
    iproute2 exits on the first failed xfrm command even with -force."""
    if missing_ok:
        for line in lines:
            done = subprocess.run(["ip", "-n", runtime.netns(node), *line.split()], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0 and not any(gone in done.stderr for gone in ALREADY_GONE):
                raise TestbedError(f"{node}: '{line}' failed: {done.stderr.strip()}")
        return
    done = subprocess.run(["ip", "-n", runtime.netns(node), "-batch", "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TestbedError(f"{node}: changing IPsec state failed: {done.stderr.strip()}")


def flush_policies(runtime: Runtime, node: str) -> None:
    """Fault injection for self-tests: drop every policy, keep the SAs."""
    apply_batch(runtime, node, ["xfrm policy flush"])
