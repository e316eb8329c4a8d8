"""A virtual link on a flow's path failed the way links really fail: the
base path under the tunnel stops carrying the two endpoints' packets (a
blackhole rule for the endpoint pair on each end's base router). Neither end
sees an interface go down; only the routing protocol notices, after its
dead interval or, with BFD, after interval x multiplier. Measured under
continuous traffic (sequence-numbered pings at 50 a second, each reply
timestamped): the longest silence between two replies is the loss window.
RFC 3884 2.3 and 3.2: rerouting is routing's job; the SAD/SPD stay as they are.
"""
from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field

from testbed import expect
from testbed.routing.convergence import RESTORE_TIMEOUT, snapshot, wait_restored
from testbed.reroute import first_hop_device, link_to_fail, sad_entries
from testbed.errors import WaitTimeout
from testbed.wait import wait_for

INTERVAL = 0.02                 # seconds between pings: 50 a second
AFTER_DETECTION = 3.0           # traffic kept going after the ping stream's worst case
BFD_UP_TIMEOUT = 30.0           # a session configured on the link, just brought up
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


@dataclass
class FailoverRecord:
    flow: str
    cut: tuple[str, str]
    window_s: float = 0.0
    sent: int = 0
    received: int = 0
    rerouted_after_s: float = 0.0
    sad_changed: dict = field(default_factory=dict)
    output: str = ""
    problem: str = ""

    @property
    def lost(self) -> int:
        return self.sent - self.received


def blackhole_base_path(lab, a: str, b: str, add: bool) -> list[str]:
    """The endpoint pair's packets dropped (or no longer) by each end's base router."""
    done = []
    for me, peer in ((a, b), (b, a)):
        router = lab.plan.nodes[me].veths[0].peer_node
        argv = ["ip", "rule", "add" if add else "del", "from", lab.plan.nodes[me].base_address,
                "to", lab.plan.nodes[peer].base_address, "blackhole", "priority", "100"]
        lab.runtime.run(router, argv, check=True)
        done.append(f"{router}: {' '.join(argv)}")
    return done


def _bfd_not_up(lab, node: str, device: str) -> str:
    """Why the link's BFD session, where the daemon has one, is not up (the
    check may run just after bring-up); "" once it is. A link without a
    session is measured as it is: OSPF alone must then notice."""
    if device not in lab.routing.bfd_sessions(lab, node):
        return ""
    try:
        wait_for(lambda: lab.routing.bfd_sessions(lab, node).get(device) == "up",
                 f"{node}'s BFD session on {device} to come up", BFD_UP_TIMEOUT)
    except WaitTimeout as exc:
        return f"{exc}: {lab.routing.bfd_sessions(lab, node)}"
    return ""


def longest_silence(output: str) -> tuple[float, int, int]:
    """(longest silence, packets sent, replies received) from `ping -D`
    output. A silence is the gap between consecutive replies less the send
    interval, or, where the replies never resumed, the unanswered tail of
    the stream (the packets sent after the last reply): a stream that ends
    inside the outage would otherwise read as no outage at all (seen: BFD
    off, rerouted after 3.9 s, a 3.6 s stream, 158 of 180 lost, 'window 0.008 s')."""
    replies = [(float(m.group(1)), int(m.group(2))) for m in map(REPLY.match, output.splitlines()) if m]
    found = SUMMARY.search(output)
    sent, received = (int(found.group(1)), int(found.group(2))) if found else (0, len(replies))
    gaps = [b - a - INTERVAL for (a, _), (b, _) in zip(replies, replies[1:])]
    if replies and sent > replies[-1][1]:
        gaps.append((sent - replies[-1][1]) * INTERVAL)
    return (round(max(gaps), 3) if gaps else 0.0), sent, received


def fail_and_measure(lab, flow: str, src: str, dst: str, detection_s: float) -> FailoverRecord:
    """Blackhole the base path under the first reroutable link of the flow's
    path while the flow runs; measure; restore and wait until routing is back."""
    cut, device, problem = link_to_fail(lab, src, dst)
    record = FailoverRecord(flow, cut, problem=problem)
    if problem:
        return record
    node, peer = cut
    record.problem = _bfd_not_up(lab, node, device)
    if record.problem:
        return record
    count = round((detection_s + AFTER_DETECTION) / INTERVAL)
    sad_before = sad_entries(lab)
    routing = snapshot(lab)
    argv = ["ping", "-D", "-n", "-i", str(INTERVAL), "-c", str(count), "-W", "1",
            "-I", expect.lan_address(lab, src), expect.lan_address(lab, dst)]
    stream = lab.runtime.popen(src, argv, net_only=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rules = []
    try:
        wait_for(lambda: first_hop_device(lab, node, dst) == device, f"{node} to route {dst} over {device}", 10)
        rules = blackhole_base_path(lab, node, peer, add=True)
        failed_at = time.monotonic()
        wait_for(lambda: first_hop_device(lab, node, dst) not in (device, None),
                 f"{node}'s route to {dst} to leave {device} once its base path is blackholed",
                 timeout=detection_s + 30)
        record.rerouted_after_s = round(time.monotonic() - failed_at, 2)
        record.output, _ = stream.communicate(timeout=count * INTERVAL * 4 + 30)
    finally:
        if stream.poll() is None:
            lab.runtime.stop_program(stream)
        if rules:
            blackhole_base_path(lab, node, peer, add=False)
            # Back on the restored link first: with an alternative path every destination stays
            # routed meanwhile, so the routing can look restored before OSPF has moved back (and
            # the move, a moment later, would fall into the next check).
            wait_for(lambda: first_hop_device(lab, node, dst) == device,
                     f"{node} to route {dst} over {device} again once its base path is restored", RESTORE_TIMEOUT)
            wait_restored(lab, routing)
    record.window_s, record.sent, record.received = longest_silence(record.output)
    sad_after = sad_entries(lab)
    record.sad_changed = {n: sorted(set(sad_before[n]) ^ set(sad_after.get(n, [])))
                          for n in sad_before if sad_before[n] != sad_after.get(n)}
    record.output = "\n".join(rules) + "\n" + record.output
    return record
