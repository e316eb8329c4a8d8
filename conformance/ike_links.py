"""The IKE-keyed links of a lab and their CHILD_SAs as the daemons report
them, and a marked traffic stream across one: what the IKE checks
(test_ike.py, test_ike_rekey.py, test_algorithms.py) share."""
from __future__ import annotations

import re
import subprocess

import pytest

from testbed import events, expect
from testbed.errors import TestbedError
from testbed.keying.negotiated import ESTABLISHED, INSTALLED, ChildSaView

IKEV2 = "ikev2"
RATE_INTERVAL = 0.02          # 50 packets a second across the link
SLACK = 2.0                   # emulation stretches the daemons' timers: the slack allowed beyond them
SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def ike_keying(lab):
    """The lab's IKEv2 keying (the daemons of its IKE-keyed links)."""
    return lab.keying.of(IKEV2)


def ike_links(lab):
    links = lab.keyed_links(IKEV2)
    if not links:
        pytest.skip("not applicable: every virtual link of this lab is keyed manually")
    return links


def link_ends(lab, node, tunnel) -> tuple:
    """The link's two ends: (node, its tunnel end), then the peer's."""
    return (node, tunnel), (tunnel.peer, lab.plan.nodes[tunnel.peer].tunnel_to(node))


def children(lab, node, tunnel) -> list[ChildSaView]:
    """The link's CHILD_SAs as the node's daemon reports them."""
    return [c for ike in ike_keying(lab).negotiated(node, tunnel) for c in ike.children]


def rekeyed(lab, node, tunnel, old: set[int]) -> bool:
    """Both ends hold exactly one installed CHILD_SA for the link, the same
    one (each end's inbound SPI the other's outbound: in a collision each end
    may for a moment hold a different survivor), and at node it is none of
    those whose inbound SPIs are `old` (a rekeyed one stays a few seconds
    more, inbound only: charon's delete_rekeyed_delay)."""
    here, there = (installed(lab, n, t) for n, t in link_ends(lab, node, tunnel))
    return (len(here) == 1 and len(there) == 1 and here[0].spi_in not in old
            and (here[0].spi_in, here[0].spi_out) == (there[0].spi_out, there[0].spi_in))


def installed(lab, node, tunnel) -> list[ChildSaView]:
    """The link's CHILD_SAs the node's daemon reports installed."""
    return [c for c in children(lab, node, tunnel) if c.state == INSTALLED]


def child_spis(held: list[ChildSaView]) -> set[int]:
    """Both SPIs (inbound and outbound) of each of these CHILD_SAs."""
    return {spi for c in held for spi in c.spis}


def ike_spis(lab, node, tunnel) -> set[str]:
    """The link's ESTABLISHED IKE_SAs at node, as initiator/responder SPI pairs."""
    return {ike.spis for ike in ike_keying(lab).negotiated(node, tunnel) if ike.state == ESTABLISHED}


def gone(lab, nodes, spis: set[int]) -> bool:
    """None of these SPIs is in any of the nodes' kernels any more (as an SA:
    a larval state with the SPI has no keys and protects nothing)."""
    return not any(sa.spi in spis for n in nodes for sa in lab.kernel_sad(n).keyed)


def negotiated_again(lab, node, tunnel, suspended: bool = False) -> None:
    """The link negotiated afresh after an outage, whatever the daemons made
    of it meanwhile; a second time if the first fails: the peer may start
    a negotiation of its own that reaches a daemon just started again
    before its links are loaded (seen: "no matching peer config found",
    AUTH_FAILED). A link that fails twice is a failure."""
    keying = ike_keying(lab)
    try:
        if not suspended:
            keying.suspend(node, tunnel)
        keying.establish([(node, tunnel)])
    except TestbedError as first:
        events.note(node, f"link {tunnel.label} negotiated again after its outage, a second time", [str(first)])
        keying.suspend(node, tunnel)
        keying.establish([(node, tunnel)])


def busy_link(lab):
    """The first flow crossing an IKE-keyed link, and that link (its first end, tunnel end)."""
    keyed = {t.label for _, t in lab.keyed_links(IKEV2)}
    for name, spec in lab.topology.flows.items():
        path = expect.vn_path(lab, spec.src, spec.dst)
        for a, b in zip(path, path[1:]):
            tunnel = lab.plan.nodes[a].tunnel_to(b)
            if tunnel.label in keyed:
                first = lab.topology.virtual_links[tunnel.link_index].ends[0]
                return spec, first, lab.plan.nodes[first].tunnel_to(b if first == a else a)
    pytest.skip("not applicable: no flow crosses an IKE-keyed link")


def stream(lab, spec, count: int, marker: bytes | None = None, size: int = 56) -> subprocess.Popen:
    """A ping stream of the flow at 50 packets a second (its payload the marker)."""
    argv = ["ping", "-n", "-q", "-i", str(RATE_INTERVAL), "-c", str(count), "-W", "1", "-s", str(size),
            "-I", expect.lan_address(lab, spec.src), expect.lan_address(lab, spec.dst)]
    if marker:
        argv[1:1] = ["-p", marker.hex()]
    return lab.runtime.popen(spec.src, argv, net_only=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)


def stream_loss(output: str) -> tuple[int, int]:
    """(sent, received) from the stream's summary."""
    found = SUMMARY.search(output)
    if not found:
        raise AssertionError(f"the traffic stream printed no summary: {output[-400:]}")
    return int(found.group(1)), int(found.group(2))
