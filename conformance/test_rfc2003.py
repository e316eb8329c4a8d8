"""RFC 2003 3.1 encapsulation rules, read from the wire (decrypting the ESP
with the keys the kernels hold): outer TTL of every encapsulator, TOS
copied, DF copied (RFC 3884 A.1), inner TTL handling, TTL 0, options."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from deviation import Fact
from guards import guard
from testbed import events, expect
from testbed.probe import inspect
from testbed.probe.capture import Capture
from testbed.probe.esp import IPPROTO_ESP
from testbed.probe.flows import SENT_TTL, TOS, FlowTraffic, access_capture
from testbed.probe.forge import resync, send_forged
from testbed.probe.inject import send_raw_ip
from testbed.probe.traffic import ping
from testbed.topology.model import KERNEL_DEFAULT_TTL


@pytest.fixture(scope="session")
def encapsulated(lab, flow_traffic: FlowTraffic):
    """Per virtual link of the path, the flow's decrypted echo requests as
    that link's encapsulator sent them (on its own access link)."""
    traffic = flow_traffic
    hops = {(a, b): [(p[IP], traffic.plain(p).inner) for p in traffic.requests_on_hop(lab, a, b, traffic.access[a])]
            for a, b in zip(traffic.path, traffic.path[1:])}
    events.packets(f"{traffic.name}: decrypted echo requests per virtual link (outer ttl/tos/flags | inner)", [
        f"{a}->{b}: {o.src}>{o.dst} ttl {o.ttl} tos 0x{o.tos:02x} {o.flags} ihl {o.ihl} | {i.src}>{i.dst} "
        f"ttl {i.ttl} tos 0x{i.tos:02x} {i.flags}" for (a, b), pairs in hops.items() for o, i in pairs])
    empty = [f"{a}-{b}" for (a, b), pairs in hops.items() if not pairs]
    assert not empty, f"no decrypted echo request of the flow captured at the encapsulator of {empty}"
    return traffic, hops


@pytest.mark.req("IPIP-OUTER-TTL")
def test_outer_ttl_is_the_tunnels_fixed_value(lab, encapsulated):
    _, hops = encapsulated
    want = lab.topology.defaults.tunnel.ttl
    guard(want != KERNEL_DEFAULT_TTL, f"the lab configures outer TTL {want}, which is also what Linux sends when "
                                      "nothing sets one: a configured TTL cannot be told from the default")
    wrong = {f"{a}->{b}": sorted({outer.ttl for outer, _ in pairs}) for (a, b), pairs in hops.items()
             if {outer.ttl for outer, _ in pairs} != {want}}
    assert not wrong, f"outer TTL as each encapsulator sends: {wrong}, want the configured {want}"


@pytest.mark.req("IPIP-TOS")
def test_outer_tos_is_copied_from_the_inner_header(lab, encapsulated):
    _, hops = encapsulated
    pairs = [(outer.tos, inner.tos) for found in hops.values() for outer, inner in found]
    assert all(inner == TOS for _, inner in pairs), f"inner TOS {pairs}, the sender set 0x{TOS:02x}"
    wrong = [(hex(o), hex(i)) for o, i in pairs if o != i]
    assert not wrong, f"outer TOS differs from the inner TOS (outer, inner): {wrong}"


@pytest.mark.req("IPIP-DF")
def test_outer_df_is_set_when_the_inner_df_is(lab, encapsulated):
    _, hops = encapsulated
    pairs = [(outer, inner) for found in hops.values() for outer, inner in found]
    assert all("DF" in str(inner.flags) for _, inner in pairs), "the sender's packets lack DF (ping -M do)"
    cleared = [outer.summary() for outer, _ in pairs if "DF" not in str(outer.flags)]
    assert not cleared, f"inner DF set but outer DF clear in {len(cleared)} packets: {cleared[:3]}"


@pytest.mark.req("IPIP-INNER-TTL")
def test_inner_ttl_untouched_at_encapsulation_and_decremented_per_vn_hop(lab, encapsulated):
    _, hops = encapsulated
    wrong = {}
    for index, ((a, b), pairs) in enumerate(hops.items()):
        seen = sorted({inner.ttl for _, inner in pairs})
        if seen != [SENT_TTL - index]:
            wrong[f"{a}->{b}"] = (seen, SENT_TTL - index)
    assert not wrong, (f"inner TTL per virtual link (seen, want): {wrong}; sent with {SENT_TTL}, untouched when "
                       "encapsulated at the source, less one per VN router")


def _first_flow(lab):
    name, spec = next(iter(lab.topology.flows.items()))
    return name, spec.src, spec.dst


def _flow_gets_through(lab, src: str, dst: str) -> None:
    """The check's setting: the flow it borrows carries traffic end to end
    (else what the check sees says nothing about the rule it checks)."""
    result = ping(lab.runtime, src, expect.lan_address(lab, dst), count=2, timeout=1,
                  source=expect.lan_address(lab, src))
    guard(result.ok, f"the flow {src}->{dst} the check uses does not get through its path\n{result.output}")


def _echo(lab, src: str, dst: str, marker: bytes, **fields) -> IP:
    return IP(src=expect.lan_address(lab, src), dst=expect.lan_address(lab, dst), **fields) / \
        ICMP(type=8, id=0x7474) / Raw(marker)


def _encapsulated_with(lab, src: str, packets, marker: bytes) -> list[tuple[IP, IP]]:
    """(outer, inner) of src's echo requests carrying `marker`, as src itself
    encapsulated them, as ESP or in clear (not the ICMP errors that quote
    them on the way back)."""
    base = lab.plan.nodes[src].base_address
    found = []
    for packet in packets:
        if IP not in packet or packet[IP].src != base:
            continue
        if packet[IP].proto == 4:
            inner = packet[IP].payload
        else:
            plain = lab.decrypt(packet)
            inner = plain.inner if plain else None
        if isinstance(inner, IP) and ICMP in inner and inner[ICMP].type == 8 and marker in bytes(inner):
            while isinstance(inner.payload, IP):       # IPIP wrapped once more (a tunnel-mode SA under it)
                inner = inner.payload
            found.append((packet[IP], inner))
    return found


@pytest.mark.req("IPIP-TTL0-ENCAP")
def test_datagram_with_ttl_zero_is_not_encapsulated(lab, report_dir, deviations):
    """A locally built datagram with TTL 0 (a raw socket can make one) must
    not enter the tunnel; the same datagram with TTL 1 does (the control)."""
    name, src, dst = _first_flow(lab)
    _flow_gets_through(lab, src, dst)
    zero, control = secrets.token_bytes(8), secrets.token_bytes(8)
    next_hop = lab.plan.nodes[expect.vn_path(lab, src, dst)[1]].base_address
    with access_capture(lab, report_dir, src, f"ttl-zero-{name}", bpf="") as cap:
        for marker, ttl in ((zero, 0), (control, 1)):
            send_raw_ip(lab.runtime, src, bytes(_echo(lab, src, dst, marker, ttl=ttl)), expect.lan_address(lab, dst))
    sent_zero = _encapsulated_with(lab, src, cap.packets, zero)
    sent_control = _encapsulated_with(lab, src, cap.packets, control)
    described = {ttl: [f"{o.summary()} | {i.summary()} ttl {i.ttl}" for o, i in found]
                 for ttl, found in ((0, sent_zero), (1, sent_control))}
    events.packets(f"{src}'s encapsulated datagrams (outer | inner)",
                   [f"TTL {ttl}: {line}" for ttl, lines in described.items() for line in lines])
    guard(sent_control, f"control: {src} did not encapsulate the TTL-1 datagram either")
    as_esp = [(o, i) for o, i in sent_zero if o.proto == IPPROTO_ESP and o.dst == next_hop and i.ttl == 0]
    failure = f"{src} encapsulated a datagram with TTL 0: {described[0][:3]}" if sent_zero else None
    deviations.check("IPIP-TTL0-ENCAP", failure, {
        "ttl0_left_as_esp": Fact(bool(as_esp), f"{len(as_esp)} of {len(sent_zero)} encapsulated copies are ESP to "
                                               f"the next hop ({next_hop}) whose decrypted inner TTL is 0")})


@pytest.mark.req("IPIP-TTL0-DECAP")
def test_inner_datagram_with_ttl_zero_is_discarded_by_the_decapsulator(lab, report_dir, deviations):
    """The previous hop's SA carries (validly protected) an inner datagram
    with TTL 0 to the destination, which must discard it after decapsulation."""
    name, src, dst = _first_flow(lab)
    _flow_gets_through(lab, src, dst)
    previous = expect.vn_path(lab, src, dst)[-2]
    tunnel = lab.plan.nodes[dst].tunnel_to(previous)
    marker = secrets.token_bytes(8)
    echoes = inspect.snmp_counters(lab.runtime, dst)["Icmp.InEchos"]
    with Capture(lab.runtime, dst, tunnel.device, report_dir / f"ttl-zero-decap-{name}.pcap", "icmp",
                 direction="in") as cap:
        forged = send_forged(lab, previous, dst, _echo(lab, previous, dst, marker, ttl=0))
        cap.await_packets(lambda p: IP in p and marker in bytes(p), 1)
    delivered = inspect.snmp_counters(lab.runtime, dst)["Icmp.InEchos"] - echoes
    resync(lab, previous, dst)
    arrived = [p for p in cap.packets if IP in p and marker in bytes(p)]
    events.note(dst, f"an inner TTL-0 echo request under SA 0x{forged.sa.spi:08x} from {previous}",
                [f"forged copies sent: {forged.sent}", f"decapsulated on {tunnel.device}: {len(arrived)}",
                 f"delivered to ICMP: {delivered}"])
    guard(arrived, f"the forged packet never came out of {dst}'s {tunnel.device}: it was dropped before "
                   "decapsulation")
    guard(arrived[0][IP].ttl == 0, f"it arrived with TTL {arrived[0][IP].ttl}, not 0")
    failure = f"{dst} delivered {delivered} datagram(s) that arrived with inner TTL 0" if delivered else None
    deviations.check("IPIP-TTL0-DECAP", failure, {
        "decapsulated_with_ttl0": Fact(True, f"came out of {dst}'s {tunnel.device} with TTL 0"),
        "delivered_locally": Fact(delivered == forged.sent, f"{dst}'s Icmp.InEchos rose by {delivered} for the "
                                                            f"{forged.sent} forged cop{'y' if forged.sent == 1 else 'ies'}")})


@pytest.mark.req("IPIP-NO-OPTIONS")
def test_inner_ip_options_are_not_copied_to_the_outer_header(lab, report_dir):
    name, src, dst = _first_flow(lab)
    marker = secrets.token_bytes(8)
    with access_capture(lab, report_dir, src, f"options-{name}") as cap:
        ping(lab.runtime, src, expect.lan_address(lab, dst), count=1, pattern_hex=marker.hex(),
             source=expect.lan_address(lab, src), extra=["-R"])
    pairs = [(p[IP], plain.inner) for p in cap.packets
             if (plain := lab.decrypt(p)) and plain.inner is not None and marker in bytes(plain.inner)]
    events.packets("encapsulated echo requests with IP options (outer ihl | inner ihl, options)",
                   [f"{o.ihl} | {i.ihl} {i.options}" for o, i in pairs])
    guard(pairs, f"no encapsulated echo request of {src} with the marker was captured")
    guard(all(inner.ihl > 5 for _, inner in pairs), "control: the inner header carries no options (ping -R)")
    copied = [outer.summary() for outer, _ in pairs if outer.ihl != 5 or outer.options]
    assert not copied, f"outer header carries options: {copied}"
