"""The SAD and SPD as a node's kernel holds them: the SAD over netlink
(testbed/probe/xfrm_netlink.py), the SPD read with `ip -s xfrm policy`.

Whoever installed them (the testbed's manual keys, an IKE daemon, a user's
own provisioning), this is what the suite judges and decrypts with. pyroute2
has no xfrm API; iproute2's text output is stable and carries everything:
keys, modes, selectors, templates, replay state and counters. The text
parser of states stays the reference the netlink reader is compared with.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass, field

from testbed import events
from testbed.protocols import protocol_number
from testbed.sa import SecurityAssociation, suite_name
from testbed.errors import TestbedError
from testbed.parallel import parallel
from testbed.probe import xfrm_netlink
from testbed.runtime.base import Runtime

ANY = 0

INFINITE = 0          # a lifetime limit the kernel prints as (INF), or 0 seconds: none

@dataclass(frozen=True)
class Selector:
    src: str              # prefix, e.g. 10.1.1.2/32
    dst: str
    proto: int = ANY      # 0: any protocol

    def describe(self) -> str:
        return f"{self.src} -> {self.dst} proto {self.proto or 'any'}"


@dataclass(frozen=True)
class KernelSA:
    src: str
    dst: str
    spi: int
    proto: str            # esp, ah, comp
    reqid: int
    mode: str             # transport, tunnel, beet
    replay_window: int
    encryption: str = ""  # kernel name: rfc4106(gcm(aes)), cbc(aes), ...
    key: str = ""         # hex, no 0x
    integrity: str = ""   # hmac(sha256) ... (empty for an AEAD, or for none at all)
    auth_key: str = ""
    aead: bool = False
    key_bits: int = 0     # as the kernel prints it (an RFC 4106 key includes its 32-bit salt)
    auth_key_bits: int = 0
    icv_bits: int = 0     # the AEAD's ICV or the integrity algorithm's truncation
    lifetime: "Lifetime" = None
    selector: Selector = Selector("0.0.0.0/0", "0.0.0.0/0")
    if_id: int = 0
    packets: int = 0
    bytes: int = 0
    oseq: int = 0         # last sequence number sent
    seq: int = 0          # highest sequence number received
    bitmap: int = 0       # which of the window's numbers were received (bit n: seq - n); 0: not shown

    def received(self, number: int) -> bool:
        """Has this inbound SA taken a packet with that sequence number? (A
        window without a bitmap shown: whether the number was reached.)"""
        if number > self.seq:
            return False
        offset = self.seq - number
        if not self.bitmap:
            return True
        return offset < 32 and bool(self.bitmap >> offset & 1)

    @property
    def algorithm(self) -> str:
        """The testbed's name for the suite, or the kernel's names."""
        return suite_name(self.encryption, self.integrity)

    @property
    def larval(self) -> bool:
        """A state with no keys: an SPI reserved for a negotiation, or the
        kernel's placeholder while it asks the daemon for an SA (an acquire,
        which may carry the SPI of the policy's template). It protects nothing."""
        return not self.encryption

    @property
    def authenticated(self) -> bool:
        """Data-origin authentication (RFC 4303 3.2): an AEAD or an integrity algorithm."""
        return self.aead or bool(self.integrity)

    @property
    def identity(self) -> str:
        """What defines the SA, counters left out (keys as a digest), for before/after comparisons."""
        keys = hashlib.sha256(f"{self.key}/{self.auth_key}".encode()).hexdigest()[:12]
        return (f"sa {self.src}>{self.dst} {self.proto} spi 0x{self.spi:08x} reqid {self.reqid} mode {self.mode} "
                f"{self.algorithm} keys#{keys} replay {self.replay_window} sel {self.selector.describe()}"
                + (f" if_id {self.if_id}" if self.if_id else ""))

    def as_sa(self, link: str = "") -> SecurityAssociation:
        return SecurityAssociation(self.src, self.dst, self.spi, self.reqid, self.algorithm, self.key,
                                   self.auth_key, link, self.mode, self.if_id, self.icv_bits)


@dataclass(frozen=True)
class Lifetime:
    """An SA's configured limits (`lifetime config`): seconds since it was
    added or first used, bytes, packets; INFINITE where there is none. The
    soft limit is when its keying daemon starts a rekey, the hard one when
    the kernel deletes it."""
    soft_add_s: int = INFINITE
    hard_add_s: int = INFINITE
    soft_use_s: int = INFINITE
    hard_use_s: int = INFINITE
    soft_bytes: int = INFINITE
    hard_bytes: int = INFINITE
    soft_packets: int = INFINITE
    hard_packets: int = INFINITE

    @property
    def limits(self) -> dict[str, tuple[int, int]]:
        """(soft, hard) per kind, finite limits only in either."""
        pairs = {"seconds since added": (self.soft_add_s, self.hard_add_s),
                 "seconds since first used": (self.soft_use_s, self.hard_use_s),
                 "bytes": (self.soft_bytes, self.hard_bytes), "packets": (self.soft_packets, self.hard_packets)}
        return {kind: pair for kind, pair in pairs.items() if pair != (INFINITE, INFINITE)}

    def describe(self) -> str:
        return ", ".join(f"{kind}: soft {_limit(soft)}, hard {_limit(hard)}"
                         for kind, (soft, hard) in self.limits.items()) or "no limit at all"


def _limit(value: int) -> str:
    return "none" if value == INFINITE else str(value)


@dataclass(frozen=True)
class Template:
    src: str
    dst: str
    proto: str
    reqid: int
    mode: str
    level: str            # required, use


@dataclass(frozen=True)
class KernelPolicy:
    selector: Selector
    direction: str        # out, in, fwd; socket policies read 'socket-in' etc.
    action: str = "allow"
    priority: int = 0
    templates: tuple[Template, ...] = ()
    if_id: int = 0

    @property
    def identity(self) -> str:
        tmpls = "; ".join(f"{t.src}>{t.dst} {t.proto} reqid {t.reqid} {t.mode} {t.level}" for t in self.templates)
        return (f"policy {self.direction} {self.selector.describe()} {self.action} prio {self.priority} "
                f"tmpl [{tmpls}]" + (f" if_id {self.if_id}" if self.if_id else ""))


@dataclass
class Sad:
    """One node's SAD alone."""
    states: list[KernelSA] = field(default_factory=list)

    @property
    def keyed(self) -> list[KernelSA]:
        """The states that are SAs: a larval one (an acquire's placeholder) has no keys and protects nothing."""
        return [sa for sa in self.states if not sa.larval]

    def between(self, src: str, dst: str) -> list[KernelSA]:
        return [sa for sa in self.states if (sa.src, sa.dst) == (src, dst)]

    def of_link(self, here: str, there: str) -> list[KernelSA]:
        """The keyed SAs between two tunnel endpoints, both ways."""
        return [sa for sa in self.keyed if (sa.src, sa.dst) in {(here, there), (there, here)}]


@dataclass
class IpsecState(Sad):
    """One node's SAD and SPD."""
    policies: list[KernelPolicy] = field(default_factory=list)

    def entries(self) -> list[str]:
        """Every SA and policy as one line, sorted: what defines the SAD and SPD."""
        return sorted([sa.identity for sa in self.states] + [p.identity for p in self.policies])


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            blocks.append([])
        if blocks:
            blocks[-1].append(line.strip())
    return blocks


def _after(words: list[str], key: str, default: str = "") -> str:
    return words[words.index(key) + 1] if key in words and words.index(key) + 1 < len(words) else default


def _number(word: str) -> int:
    """'0x00001234(4660)' or '100(0x00000064)' or '0x3' or '32'."""
    head = word.split("(")[0]
    return int(head, 16) if head.startswith("0x") else int(head or 0)


def _selector(words: list[str]) -> Selector:
    proto = _after(words, "proto")
    return Selector(_after(words, "src"), _after(words, "dst"), protocol_number(proto) if proto else ANY)


def parse_states(text: str) -> list[KernelSA]:
    """`ip -s xfrm state` output as KernelSA records."""
    found = []
    for block in _blocks(text):
        head = block[0].split()
        fields: dict = {"src": _after(head, "src"), "dst": _after(head, "dst")}
        limits: dict[str, int] = {}
        for line in block[1:]:
            words = line.split()
            first = words[0].rstrip(":")
            if first == "proto" and "spi" in words:
                fields.update(proto=words[1], spi=_number(_after(words, "spi")),
                              reqid=_number(_after(words, "reqid", "0")), mode=_after(words, "mode"))
            elif first == "replay-window":
                fields["replay_window"] = max(fields.get("replay_window", 0), int(words[1]))
            elif first == "replay_window":          # the ESN context line
                fields["replay_window"] = max(fields.get("replay_window", 0), int(words[1].rstrip(",")))
            elif first == "aead":
                fields.update(encryption=words[1], key=words[2].removeprefix("0x"), aead=True,
                              key_bits=_key_bits(words), icv_bits=int(words[-1]))
            elif first == "enc":
                fields.update(encryption=words[1], key=words[2].removeprefix("0x"), key_bits=_key_bits(words))
            elif first in ("auth", "auth-trunc"):
                fields.update(integrity=words[1], auth_key=words[2].removeprefix("0x"), auth_key_bits=_key_bits(words))
                if first == "auth-trunc":
                    fields["icv_bits"] = int(words[-1])
            elif first == "limit" or (first == "expire" and len(words) > 1):
                limits.update(_lifetime_limits(words))
            elif first == "sel":
                fields["selector"] = _selector(words)
            elif first == "if_id":
                fields["if_id"] = _number(words[1])
            elif first == "anti-replay" and "context:" in words and "seq" in words:
                fields.update(seq=_number(_after(words, "seq").rstrip(",")),
                              oseq=_number(_after(words, "oseq").rstrip(",")))
                if "bitmap" in words:
                    fields["bitmap"] = _number(_after(words, "bitmap").rstrip(","))
            elif first == "seq-hi":                  # the ESN context: seq-hi 0x0, seq 0x5, oseq-hi 0x0, oseq 0x7
                fields.update(seq=_number(_after(words, "seq").rstrip(",")),
                              oseq=_number(_after(words, "oseq").rstrip(",")))
            elif re.match(r"^\d+\(bytes\),$", words[0]) and len(words) > 1 and words[1].endswith("(packets)"):
                fields.update(bytes=int(words[0].split("(")[0]), packets=int(words[1].split("(")[0]))
        if "spi" in fields:
            found.append(KernelSA(**{"replay_window": 0, **fields, "lifetime": Lifetime(**limits)}))
    return found


def _key_bits(words: list[str]) -> int:
    """A key line's '(160 bits)' (the key itself may be redacted)."""
    for before, word in zip(words, words[1:]):
        if word == "bits)" and before.startswith("("):
            return int(before[1:])
    return 0


_LIMIT = re.compile(r"(soft|hard) (\(INF\)|\d+)\((bytes|packets|sec)\)")


def _lifetime_limits(words: list[str]) -> dict[str, int]:
    """'limit: soft (INF)(bytes), hard (INF)(bytes)' or 'expire add: soft 0(sec), hard 0(sec)'."""
    kind = {"expire add:": "add_s", "expire use:": "use_s"}.get(" ".join(words[:2]))
    found = {}
    for level, value, unit in _LIMIT.findall(" ".join(words)):
        name = f"{level}_{kind}" if unit == "sec" and kind else f"{level}_{unit}" if unit != "sec" else ""
        if name:
            found[name] = INFINITE if value == "(INF)" else int(value)
    return found


def parse_policies(text: str) -> list[KernelPolicy]:
    """`ip -s xfrm policy` output as KernelPolicy records."""
    found = []
    for block in _blocks(text):
        selector = _selector(block[0].split())
        fields: dict = {}
        templates: list[Template] = []
        pending: dict | None = None
        for line in block[1:]:
            words = line.split()
            if words[0] in ("dir", "socket"):
                fields.update(direction=words[1] if words[0] == "dir" else f"socket-{words[1]}",
                              action=_after(words, "action", "allow"),
                              priority=int(_after(words, "priority", "0")))
            elif words[0] == "tmpl":
                pending = {"src": _after(words, "src"), "dst": _after(words, "dst")}
            elif words[0] == "proto" and pending is not None:
                pending.update(proto=words[1], reqid=_number(_after(words, "reqid", "0")), mode=_after(words, "mode"),
                               level="required")
            elif words[0] == "level" and pending is not None:
                pending["level"] = words[1]
                templates.append(Template(**pending))
                pending = None
            elif words[0] == "if_id":
                fields["if_id"] = _number(words[1])
        if pending is not None and "proto" in pending:
            templates.append(Template(**pending))
        if "direction" in fields:
            found.append(KernelPolicy(selector, templates=tuple(templates), **fields))
    return found


def _listing(runtime: Runtime, node: str, what: str) -> str:
    argv = ["ip", "-n", runtime.netns(node), "-s", "xfrm", what]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    events.command(node, ["ip", "-s", "xfrm", what], done.returncode, done.stdout, done.stderr)
    if done.returncode != 0:
        raise TestbedError(f"{node}: reading the {'SAD' if what == 'state' else 'SPD'} failed: {done.stderr.strip()}")
    return done.stdout


def read(runtime: Runtime, node: str) -> IpsecState:
    """The node's SAD and SPD now (keys included; the evidence leaves them
    out): the SAD over netlink, the SPD's listing from `ip -n` meanwhile."""
    states, policies = parallel([lambda: read_sad(runtime, node).states,
                                 lambda: _listing(runtime, node, "policy")])
    return IpsecState(states, parse_policies(policies))


def read_sad(runtime: Runtime, node: str) -> Sad:
    """The node's SAD alone, over netlink in this process: what the checks
    that follow an SA (its counters, replay window, keys) need; such checks
    poll, and a process costs about 60 ms of CPU under emulation."""
    try:
        dumped = xfrm_netlink.dump_sas(runtime.netns(node))
    except OSError as exc:
        raise TestbedError(f"{node}: reading the SAD failed: {exc}") from None
    states = [KernelSA(**{**sa, "selector": Selector(*sa["selector"]), "lifetime": Lifetime(**sa["lifetime"])})
              for sa in dumped]
    events.note(node, "SAD (via netlink)", [
        f"{sa.identity} packets {sa.packets} bytes {sa.bytes} seq {sa.seq} oseq {sa.oseq} icv {sa.icv_bits} "
        f"lifetime: {sa.lifetime.describe()}" for sa in states] or ["(empty)"])
    return Sad(states)
