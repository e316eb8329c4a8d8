"""One flow's traffic, captured everywhere the wire checks look at once.

The source pings the destination's VN-local address from its own VN-local
address (traffic between the networks behind two VN nodes, which every
datapath mode is built to carry; the unbound case is the source-address
checks' business) with a random payload marker,
a distinctive TOS, DF set and a known TTL, while captures run on every
router-to-router link (a virtual link is a base path) and on the router side
of the source's and destination's access links (before any base hop).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from testbed import expect
from testbed.probe.capture import Capture, MultiCapture
from testbed.probe.traffic import ping

TOS = 0xB8          # DSCP EF: a value no default would produce
SENT_TTL = 50       # distinct from the outer TTL and from Linux's default
COUNT = 4


@dataclass
class FlowTraffic:
    name: str
    src: str
    dst: str
    marker: bytes
    base_links: list        # packets captured on router-to-router links
    src_access: list        # packets on the source's access link (router side)
    dst_access: list        # packets on the destination's access link (router side)


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


def access_capture(lab, report_dir: Path, node: str, tag: str) -> Capture:
    veth = lab.plan.nodes[node].veths[0]
    return Capture(lab.runtime, veth.peer_node, veth.peer_device,
                   report_dir / f"{tag}-{veth.peer_node}-{veth.peer_device}.pcap", "esp")


def capture_flow(lab, report_dir: Path, name: str, src: str, dst: str) -> FlowTraffic:
    marker = secrets.token_bytes(8)
    base = _base_link_captures(lab, report_dir, f"wire-{name}")
    at_src = access_capture(lab, report_dir, src, f"access-{name}-src")
    at_dst = access_capture(lab, report_dir, dst, f"access-{name}-dst")
    with MultiCapture([*base, at_src, at_dst]):
        result = ping(lab.runtime, src, expect.lan_address(lab, dst), count=COUNT, pattern_hex=marker.hex(),
                      source=expect.lan_address(lab, src), extra=["-Q", str(TOS), "-M", "do", "-t", str(SENT_TTL)])
    if not result.ok:
        raise AssertionError(f"{src} -> {dst}: no reply\n{result.output}")
    return FlowTraffic(name, src, dst, marker, [p for c in base for p in c.packets], at_src.packets,
                       at_dst.packets)
