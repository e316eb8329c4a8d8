"""One flow's traffic, captured everywhere the wire checks look at once.

The source pings the destination's VN-local address from its own VN-local
address (traffic between the networks behind two VN nodes, which every
datapath mode is built to carry; the unbound case is the source-address
checks' business) with a random payload marker, a distinctive TOS, DF set
and a known TTL, while captures run on every router-to-router link and on
the router side of the access link of every VN node on the flow's path
(each encapsulator's own packets, before any base hop). Nothing is
filtered: plaintext between two VN nodes behind one base router only shows
on their access links.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed import expect
from testbed.errors import PreconditionFailed
from testbed.probe.capture import Capture, MultiCapture
from testbed.probe.esp import IPPROTO_ESP, Decrypted, UnknownAlgorithm
from testbed.probe.traffic import ping

TOS = 0xB8          # DSCP EF: a value no default would produce
SENT_TTL = 50       # distinct from the outer TTL and from Linux's default
COUNT = 4


@dataclass
class FlowTraffic:
    name: str
    src: str
    dst: str
    path: list[str]                 # the VN path the routing is expected to take
    marker: bytes
    base_links: list                # packets captured on router-to-router links
    access: dict[str, list]         # VN node -> packets on its access link (router side)
    # id(packet) -> its plaintext; None where no SA matched, a string where keys did not verify
    decrypted: dict[int, Decrypted | str | None] = field(default_factory=dict)
    requests_seen: dict[int, bool] = field(default_factory=dict)   # id(packet) -> carries_request, judged once

    @property
    def src_access(self) -> list:
        return self.access[self.src]

    @property
    def dst_access(self) -> list:
        return self.access[self.dst]

    @property
    def everywhere(self) -> list:
        return self.base_links + [p for packets in self.access.values() for p in packets]

    def plain(self, packet) -> Decrypted | None:
        found = self.decrypted.get(id(packet))
        return found if isinstance(found, Decrypted) else None

    def carries_request(self, packet) -> bool:
        """Is this captured packet ESP whose plaintext is one of the flow's echo requests?"""
        known = self.requests_seen.get(id(packet))
        if known is None:
            plain = self.plain(packet)
            inner = plain.inner if plain else None
            known = self.requests_seen[id(packet)] = (
                inner is not None and ICMP in inner and inner[ICMP].type == 8 and Raw in inner
                and self.marker in bytes(inner[Raw]))
        return known

    def requests_on_hop(self, lab, a: str, b: str, where: list | None = None) -> list:
        """The flow's echo requests as ESP from a's base address to b's (one virtual link)."""
        pair = (lab.plan.nodes[a].base_address, lab.plan.nodes[b].base_address)
        # The decryption table first: a dict lookup rules out most packets,
        # where reading each one's IP header costs a layer walk under emulation.
        return [p for p in (self.everywhere if where is None else where)
                if self.carries_request(p) and (p[IP].src, p[IP].dst) == pair]

    def hops_without_requests(self, lab) -> list[str]:
        """Virtual links of the path on which none of the flow's ESP was seen."""
        return [f"{a}-{b}" for a, b in zip(self.path, self.path[1:]) if not self.requests_on_hop(lab, a, b)]


def _base_link_captures(lab, report_dir: Path, tag: str) -> list[Capture]:
    captures, seen = [], set()
    for router in lab.plan.routers:
        for veth in router.veths:
            key = frozenset({router.name, veth.peer_node})
            if lab.plan.nodes[veth.peer_node].role == "router" and key not in seen:
                seen.add(key)
                captures.append(Capture(lab.runtime, router.name, veth.device,
                                        report_dir / f"{tag}-{router.name}-{veth.device}.pcap"))
    return captures


def access_capture(lab, report_dir: Path, node: str, tag: str, bpf: str = "esp") -> Capture:
    veth = lab.plan.nodes[node].veths[0]
    return Capture(lab.runtime, veth.peer_node, veth.peer_device,
                   report_dir / f"{tag}-{veth.peer_node}-{veth.peer_device}.pcap", bpf)


class Undecryptable(str):
    """Why a packet was not decrypted: its SA's algorithm is one the suite
    has no decryption for (not keys that failed to verify)."""


def decrypt_all(packets: list, decrypt) -> dict[int, Decrypted | str | None]:
    """Every ESP packet's plaintext (None: no SA matches; a string: why the
    keys did not verify). A packet captured at several points (sender's
    access link, base links, receiver's) is decrypted once: under emulation
    decryption is the costly part, and BFD on every tunnel triples it."""
    found: dict[int, Decrypted | str | None] = {}
    seen: dict[tuple, Decrypted | str | None] = {}
    for packet in packets:
        if IP in packet and packet[IP].proto == IPPROTO_ESP:
            outer = packet[IP]
            key = (outer.src, outer.dst, bytes(outer.payload))
            if key in seen:
                found[id(packet)] = _as_captured_here(seen[key], outer)
                continue
            try:
                found[id(packet)] = seen[key] = decrypt(packet)
            except UnknownAlgorithm as exc:
                found[id(packet)] = seen[key] = Undecryptable(str(exc))
            except Exception as exc:      # scapy raises several types when an ICV does not verify
                found[id(packet)] = seen[key] = f"{type(exc).__name__}: {exc}"
    return found


def _as_captured_here(result: Decrypted | str | None, outer: IP) -> Decrypted | str | None:
    """Another copy's decryption with this copy's outer header: routers on
    the way change only TTL, TOS (ECN) and the checksum."""
    return result.seen_as(outer) if isinstance(result, Decrypted) else result


def capture_flow(lab, report_dir: Path, name: str, src: str, dst: str) -> FlowTraffic:
    marker = secrets.token_bytes(8)
    path = expect.vn_path(lab, src, dst)
    base = _base_link_captures(lab, report_dir, f"wire-{name}")
    access = {node: access_capture(lab, report_dir, node, f"access-{name}-{node}", bpf="") for node in path}
    with MultiCapture([*base, *access.values()]):
        result = ping(lab.runtime, src, expect.lan_address(lab, dst), count=COUNT, pattern_hex=marker.hex(),
                      source=expect.lan_address(lab, src), extra=["-Q", str(TOS), "-M", "do", "-t", str(SENT_TTL)])
    if not result.ok:
        raise PreconditionFailed(f"the flow's traffic {src} -> {dst} got no reply: nothing it carried can be "
                                 f"judged on the wire\n{result.output}")
    traffic = FlowTraffic(name, src, dst, path, marker, [p for c in base for p in c.packets],
                          {node: cap.packets for node, cap in access.items()})
    traffic.decrypted = decrypt_all(traffic.everywhere, lab.decrypt)
    unknown = sorted({why for why in traffic.decrypted.values() if isinstance(why, Undecryptable)})
    if unknown:
        raise PreconditionFailed(f"the flow's ESP uses an algorithm the suite cannot decrypt, so what it carried "
                                 f"cannot be judged: {unknown[0]}" + (f" (and {len(unknown) - 1} more)"
                                                                      if len(unknown) > 1 else ""))
    return traffic
