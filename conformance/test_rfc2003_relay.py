"""RFC 2003 4 (with 5's soft state): what the encapsulator does with an ICMP
error a base router inside the tunnel sends about one of its packets.

On the first routed flow's second virtual link (A->B in Figure 6), one
round per kind of error, all in one capture of the encapsulator's access
link: the flow's source sends a datagram, the base router in front of the
encapsulator answers the very tunnel packet that carried it (as captured:
ESP, or plain IPIP) with the error, and the source sends two more (RFC
2003 5: an encapsulator relays as later datagrams go out):

- time-exceeded (4.4: report to the sender as Host Unreachable);
- host-unreachable (4.1: relay as Host Unreachable);
- net-unreachable (4.1: return as Network Unreachable, the VN destination
  not being on the encapsulator's network);
- port-unreachable, source-route-failed (4.1: MUST NOT be relayed).

The base router sends each error itself (a raw socket, twice: see
ERRORS_PER_ROUND) rather than being made to provoke it: its own ICMP rate
limits (a token bucket per destination that routing hellos drain, shared by
forwarding errors and route errors) would otherwise decide which rounds are
answered. An error counts only if it quotes one of the encapsulator's
packets that carried the round's datagrams
(tests/unit/test_tunnel_errors.py). What the sender then hears is read from
its ping and its ICMP counters, what the encapsulator sends from its own.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

import pytest
from scapy.layers.inet import IP

from deviation import Fact
from guards import guard
from testbed import events, expect
from testbed.probe import inspect, tunnel_errors
from testbed.probe.esp import IPPROTO_ESP
from testbed.probe.flows import access_capture
from testbed.probe.inject import send_raw_ip
from testbed.probe.traffic import PingResult, ping

UNREACHABLE = re.compile(r"From (\S+) icmp_seq=\d+ Destination (Host|Net|Port|Protocol) Unreachable")
ANY_ERROR = re.compile(r"From \S+ icmp_seq=")
SENDER_COUNTERS = ("Icmp.InDestUnreachs", "Icmp.InTimeExcds")
RELAY_COUNTER = "Icmp.OutDestUnreachs"
# Each round's error: the ICMP (type, code) the base router sends.
PROVOKED = {"time-exceeded": (11, 0), "host-unreachable": (3, 1), "net-unreachable": (3, 0),
            "port-unreachable": (3, 3), "source-route-failed": (3, 5)}
NOT_RELAYED = ("port-unreachable", "source-route-failed")
ATTEMPTS = 2
# A plain IPIP encapsulator keeps one error count per tunnel, and each packet
# it then sends takes one: its own OSPF hellos too (multicast, so silently).
# Two errors per round leave one for the flow's next datagram even when a
# hello goes out first; the round's two datagrams after them use both up.
ERRORS_PER_ROUND = 2


@dataclass
class Round:
    kind: str
    marker: bytes
    pings: list[PingResult] = field(default_factory=list)
    sender_moved: dict[str, int] = field(default_factory=dict)
    relays_sent: int = 0                 # Destination Unreachable the encapsulator sent meanwhile
    tunnel_packets: list = field(default_factory=list)
    errors: list[tunnel_errors.ErrorSeen] = field(default_factory=list)
    problem: str = ""                    # why the round could not be provoked, if it could not

    @property
    def output(self) -> str:
        return "\n".join(p.output for p in self.pings)

    def heard(self) -> list[tuple[str, str]]:
        """(who, kind) of each Destination Unreachable the sender's ping printed."""
        return UNREACHABLE.findall(self.output)


@dataclass
class Relays:
    flow: str
    sender: str
    encapsulator: str
    onward: str
    base_router: str
    rounds: dict[str, Round]


def _first_routed_flow(lab):
    for name, spec in lab.topology.flows.items():
        path = expect.vn_path(lab, spec.src, spec.dst)
        if len(path) >= 3:
            return name, spec, path
    pytest.skip(f"not applicable: no flow of {lab.topology.name} crosses a VN router")


def _counters(lab, node: str, names) -> dict[str, int]:
    found = inspect.snmp_counters(lab.runtime, node)
    return {name: found.get(name, 0) for name in names}


@pytest.fixture(scope="module")
def relays(lab, report_dir) -> Relays:
    name, spec, path = _first_routed_flow(lab)
    sender, encapsulator, onward = spec.src, path[1], path[2]
    access = lab.plan.nodes[encapsulator].veths[0]
    base_router, router_address = access.peer_node, next(
        v.address for v in lab.plan.nodes[access.peer_node].veths if v.peer_node == encapsulator)
    here, there = lab.plan.nodes[encapsulator].base_address, lab.plan.nodes[onward].base_address
    tunnelled = tunnel_errors.Tunnelled(here, there, lab.decrypt)
    src, dst = expect.lan_address(lab, sender), expect.lan_address(lab, spec.dst)
    rounds = {}
    with access_capture(lab, report_dir, encapsulator, f"relay-{name}", bpf="") as cap:
        for kind in PROVOKED:
            one = rounds[kind] = Round(kind, secrets.token_bytes(8))
            before = (_counters(lab, sender, SENDER_COUNTERS), _counters(lab, encapsulator, [RELAY_COUNTER]))

            def send(count: int) -> None:
                one.pings.append(ping(lab.runtime, sender, dst, count=count, interval=0.3, timeout=1,
                                      source=src, pattern_hex=one.marker.hex()))
            xfrm = inspect.xfrm_stats(lab.runtime, encapsulator)
            for _ in range(ATTEMPTS):          # one datagram lost on the way is no reason to give up
                send(1)
                carried = cap.wait_for_packet(lambda p: one.marker in tunnelled.inner(p), timeout=3)
                if carried is not None:
                    break
            else:
                after = inspect.xfrm_stats(lab.runtime, encapsulator)
                one.problem = (f"the flow's datagram never left {encapsulator} towards {onward} ({ATTEMPTS} sent; "
                               f"{encapsulator}'s xfrm counters that moved: "
                               f"{ {k: after[k] - xfrm.get(k, 0) for k in after if after[k] != xfrm.get(k, 0)} })\n"
                               + one.output)
                continue
            error = tunnel_errors.error_quoting(carried[IP], router_address, *PROVOKED[kind])
            for _ in range(ERRORS_PER_ROUND):
                send_raw_ip(lab.runtime, base_router, error, here)
            send(2)            # a relay, if any, goes out as these are tunnelled (RFC 2003 5)
            after = (_counters(lab, sender, SENDER_COUNTERS), _counters(lab, encapsulator, [RELAY_COUNTER]))
            one.sender_moved = {k: after[0][k] - before[0][k] for k in SENDER_COUNTERS if after[0][k] != before[0][k]}
            one.relays_sent = after[1][RELAY_COUNTER] - before[1][RELAY_COUNTER]
    for one in rounds.values():
        one.tunnel_packets = tunnelled.carrying(cap.packets, one.marker)
        one.errors = tunnel_errors.errors_about(cap.packets, here, one.tunnel_packets)
    events.note(encapsulator, "errors from inside the tunnel about the flow's packets, and what the sender heard", [
        f"{kind}: {len(r.tunnel_packets)} tunnel packets of the round; errors {[e.describe() for e in r.errors]}; "
        f"{encapsulator} sent {r.relays_sent} Destination Unreachable; {sender}'s counters moved {r.sender_moved}; "
        f"ping: {r.heard() or 'no error'}" for kind, r in rounds.items()])
    return Relays(name, sender, encapsulator, onward, base_router, rounds)


def _exercised(relays: Relays, kind: str) -> Round:
    """The round's precondition: the flow's datagrams entered the tunnel and
    a base router answered one of those very packets."""
    one = relays.rounds[kind]
    guard(not one.problem, f"the {kind} round could not be provoked: {one.problem}")
    guard(one.tunnel_packets, f"no datagram of the {kind} round was seen leaving {relays.encapsulator} towards "
                              f"{relays.onward}: the flow did not enter the tunnel")
    guard(one.errors, f"no base router answered the flow's own tunnel packets with {kind}: the condition was "
                      "not exercised")
    return one


def _signature(relays: Relays, one: Round) -> dict[str, Fact]:
    """The facts of the recorded relay deviations (conformance/deviations.yaml)."""
    esp = [e for e in one.errors if e.quoted_protocol == IPPROTO_ESP]
    return {
        "error_quotes_esp": Fact(bool(esp), f"{len(esp)} of {len(one.errors)} errors quote ESP"),
        "encapsulator_silent": Fact(one.relays_sent == 0, f"{relays.encapsulator} sent {one.relays_sent} "
                                                          "Destination Unreachable"),
        "sender_heard_nothing": Fact(not one.sender_moved and not ANY_ERROR.search(one.output),
                                     f"{relays.sender}'s counters moved {one.sender_moved}; ping printed "
                                     f"{one.heard() or 'no error'}")}


def _judge_relay(lab, relays: Relays, deviations, requirement: str, kind: str, want: str) -> None:
    one = _exercised(relays, kind)
    own = {t.vn_address for t in lab.plan.nodes[relays.encapsulator].tunnels} | {
        expect.lan_address(lab, relays.encapsulator)}
    heard = one.heard()
    failure = None
    if not heard:
        failure = (f"{relays.sender} got no Destination Unreachable for its datagrams that met {kind} inside the "
                   f"tunnel {relays.encapsulator}->{relays.onward}, want {want} Unreachable from "
                   f"{relays.encapsulator}\n{one.output}")
    elif not all(kind_heard == want and who in own for who, kind_heard in heard):
        failure = f"want {want} Unreachable from the encapsulator {relays.encapsulator}, got {heard}\n{one.output}"
    deviations.check(requirement, failure, _signature(relays, one))


@pytest.mark.req("IPIP-ICMP-TTL")
def test_time_exceeded_inside_the_tunnel_reaches_the_sender_as_host_unreachable(lab, relays, deviations):
    """RFC 2003 4.4: the tunnel's outer TTL too small for its base path; the
    base router's Time Exceeded is reported to the sender as Host Unreachable."""
    _judge_relay(lab, relays, deviations, "IPIP-ICMP-TTL", "time-exceeded", "Host")


@pytest.mark.req("IPIP-ICMP-UNREACH")
def test_unreachable_inside_the_tunnel_is_relayed_to_the_sender(lab, relays, deviations):
    """RFC 2003 4.1: the base router answers Host Unreachable for the far
    end; the encapsulator relays Host Unreachable to the sender."""
    _judge_relay(lab, relays, deviations, "IPIP-ICMP-UNREACH", "host-unreachable", "Host")


@pytest.mark.req("IPIP-ICMP-NET")
def test_net_unreachable_inside_the_tunnel_is_relayed_as_net_unreachable(lab, relays, deviations):
    """RFC 2003 4.1: the base router has no route to the far end (Network
    Unreachable); the encapsulator returns Network Unreachable to the sender
    (the VN destination is not on the encapsulator's network)."""
    _judge_relay(lab, relays, deviations, "IPIP-ICMP-NET", "net-unreachable", "Net")


@pytest.mark.req("IPIP-ICMP-NORELAY")
def test_port_unreachable_and_source_route_failed_are_not_relayed(lab, relays):
    """RFC 2003 4.1: Port Unreachable and Source Route Failed from inside the
    tunnel MUST NOT be relayed to the original sender."""
    problems = []
    for kind in NOT_RELAYED:
        one = _exercised(relays, kind)
        guard(len(one.tunnel_packets) >= 2, f"the datagrams sent after the {kind} error did not cross the tunnel: "
                                            "nothing could have carried a relay")
        if one.sender_moved or one.heard():
            problems.append(f"{kind}: {relays.sender} heard {one.heard()} (counters moved {one.sender_moved}) after "
                            f"{relays.base_router}'s {kind} about its tunnelled datagram\n{one.output}")
        elif one.relays_sent:
            problems.append(f"{kind}: {relays.encapsulator} sent {one.relays_sent} Destination Unreachable after "
                            f"{relays.base_router}'s {kind}")
    assert not problems, "\n".join(problems)
