"""The SAD and SPD of every virtual link as both ends' kernels hold them,
whoever installed them (RFC 3884 3, 3.1; RFC 4301 4.4.1; RFC 4303 3.2):
transport mode, SAs and policies selecting IPIP between the two base
addresses and nothing wider, ESP required both ways, data-origin
authentication on every SA."""
from __future__ import annotations

import secrets
from ipaddress import ip_address, ip_network

import pytest
from scapy.layers.inet import ICMP
from scapy.packet import Raw

from deviation import Fact
from guards import guard
from link_sas import link_end_sas
from testbed import events
from testbed.sa import IPPROTO_IPIP
from testbed.probe import inspect
from testbed.probe.forge import resync, send_forged
from testbed.probe.xfrm import ANY, Selector


def _record(kernel_ipsec) -> None:
    for node, sad in kernel_ipsec.items():
        events.note(node, "SAD and SPD as the kernel holds them (ip -s xfrm, keys left out)", sad.entries())


@pytest.mark.as_built
@pytest.mark.req("WIRE-ENDPOINTS")
def test_every_sa_of_every_virtual_link_is_transport_mode(lab, kernel_ipsec):
    _record(kernel_ipsec)
    problems = []
    ends = list(link_end_sas(lab, kernel_ipsec))
    assert ends, f"lab '{lab.name}' has no active virtual link: nothing to check"
    for node, tunnel, held in ends:
        for src, dst in ((tunnel.local_base, tunnel.remote_base), (tunnel.remote_base, tunnel.local_base)):
            if not [sa for sa in held if (sa.src, sa.dst) == (src, dst)]:
                problems.append(f"{node} holds no SA {src}->{dst} for virtual link {tunnel.label}")
        problems += [f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}) is in {sa.mode} mode"
                     for sa in held if sa.mode != "transport"]
    assert not problems, "\n".join(problems)


@pytest.mark.as_built
@pytest.mark.req("SAD-SELECTORS")
def test_every_sa_selects_ipip_between_the_endpoints(lab, kernel_ipsec, deviations):
    """What the kernel checks a decrypted packet against (RFC 4301 5.2): the
    SA's own selector, IPIP between the two base addresses. Judged per
    link: an SA of a manually keyed link in a lab that mixes keyings is
    held to the testbed's own keying, whatever the IKE-keyed links do."""
    _record(kernel_ipsec)
    ends = list(link_end_sas(lab, kernel_ipsec))
    checked = sum(len(held) for _, _, held in ends)
    problems, addresses_only = selector_findings(ends)
    guard(checked, "no SA of any virtual link was found: nothing was checked")
    if not problems:
        deviations.check("SAD-SELECTORS", None)
        return
    ike = [(node, tunnel, sa) for node, tunnel, sa in addresses_only if tunnel.keying == "ikev2"]
    # The receiver's copy of an SA is the one that judges: each end installs its own (across
    # implementations one may select the protocol and the other not).
    inbound = [sa for node, _, sa in ike if lab.plan.nodes[node].base_address == sa.dst]
    deviations.check("SAD-SELECTORS", "\n".join(problems), {
        "only_protocol_missing": Fact(len(addresses_only) == len(problems),
                                      f"{len(addresses_only)} of the {len(problems)} SAs that do not select IPIP "
                                      "select the two endpoints with any protocol"),
        "only_ike_links": Fact(bool(ike) and len(ike) == len(addresses_only),
                               f"{len(ike)} of them on IKE-keyed links"),
        "other_protocol_passes_the_sa": _other_protocol_under(lab, inbound[0]) if inbound else Fact(
            False, "not tried: no such SA is held by its own receiver")})


def selector_findings(ends) -> tuple[list[str], list]:
    """Of (node, tunnel end, SAs) per link end: a line per SA that does not
    select IPIP between its two endpoints, and (node, tunnel, SA) of those
    that select exactly the two endpoints with any protocol."""
    problems, addresses_only = [], []
    for node, tunnel, held in ends:
        for sa in held:
            want = Selector(f"{sa.src}/32", f"{sa.dst}/32", IPPROTO_IPIP)
            if sa.selector == want:
                continue
            problems.append(f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}, keyed "
                            f"{tunnel.keying}) selects {sa.selector.describe()}, want {want.describe()}")
            if (sa.selector.src, sa.selector.dst, sa.selector.proto) == (want.src, want.dst, ANY):
                addresses_only.append((node, tunnel, sa))
    return problems, addresses_only


def _other_protocol_under(lab, sa) -> Fact:
    """ESP under the SA carrying an ICMP echo request between the two base
    addresses (not IPIP): does the receiver take it?"""
    sender = next(n.name for n in lab.plan.vn_nodes if n.base_address == sa.src)
    receiver = next(n.name for n in lab.plan.vn_nodes if n.base_address == sa.dst)
    marker = secrets.token_bytes(8)
    echoes = inspect.snmp_counters(lab.runtime, receiver)["Icmp.InEchos"]
    xfrm_before = inspect.xfrm_stats(lab.runtime, receiver)
    used = send_forged(lab, sender, receiver, payload=ICMP(type=8, id=0x5e1) / Raw(marker)).sa
    delivered = inspect.snmp_counters(lab.runtime, receiver)["Icmp.InEchos"] - echoes
    after = inspect.xfrm_stats(lab.runtime, receiver)
    resync(lab, sender, receiver)
    moved = {k: after[k] - xfrm_before.get(k, 0) for k in after if after[k] != xfrm_before.get(k, 0)}
    # The SA's own check refuses a packet its selector does not cover
    # (XfrmInStateMismatch); whatever happens to it after (a policy, the
    # fail-closed block policy of an IKE link) is reported as seen.
    seen = (f"an ICMP echo request {sa.src} > {sa.dst} forged as ESP under {sender}'s SA 0x{used.spi:08x}: "
            f"{receiver}'s xfrm counters moved {moved}, its Icmp.InEchos rose by {delivered}")
    events.note(receiver, "another protocol than IPIP under an IKE link's SA", [seen])
    return Fact(not moved.get("XfrmInStateMismatch") and bool(moved or delivered), seen)


def _covers(selector: Selector, src: str, dst: str) -> bool:
    return ip_address(src) in ip_network(selector.src) and ip_address(dst) in ip_network(selector.dst)


@pytest.mark.as_built
@pytest.mark.req("SPD-SELECTORS")
def test_policies_require_esp_for_ipip_between_the_endpoints_and_nothing_wider(lab, kernel_ipsec):
    """Each end has an 'out' and an 'in' policy for IPIP between the two base
    addresses that requires ESP, and no policy lets traffic between the two
    endpoints through with a wider selector (another protocol, a prefix, any
    address)."""
    _record(kernel_ipsec)
    problems = []
    for node, tunnel in lab.active_link_ends():
        policies = [p for p in kernel_ipsec[node].policies if not p.direction.startswith("socket")]
        for direction, src, dst in (("out", tunnel.local_base, tunnel.remote_base),
                                    ("in", tunnel.remote_base, tunnel.local_base)):
            want = Selector(f"{src}/32", f"{dst}/32", IPPROTO_IPIP)
            exact = sorted((p for p in policies if p.direction == direction and p.selector == want),
                           key=lambda p: p.priority)
            if not exact:
                problems.append(f"{node}: no '{direction}' policy for {want.describe()} (link {tunnel.label})")
                continue
            # The policy in force (the lowest priority number wins) must require
            # ESP; any below it may only block (a fail-closed shunt).
            ruling, *below = exact
            weak = [t for t in ruling.templates if t.proto != "esp" or t.level != "required"]
            if ruling.action != "allow" or weak or not ruling.templates:
                problems.append(f"{node}: '{direction}' policy for link {tunnel.label} does not require ESP: "
                                f"{ruling.identity}")
            problems += [f"{node}: '{direction}' policy below the ruling one lets IPIP through: {p.identity}"
                         for p in below if p.action != "block"]
            # A wider policy that only blocks (a fail-closed shunt) lets nothing through.
            wider = [p for p in policies
                     if p.selector != want and _covers(p.selector, src, dst) and p.action != "block"]
            problems += [f"{node}: a policy covers link {tunnel.label}'s endpoints {src}->{dst} with a wider "
                         f"selector: {p.identity}" for p in wider]
    assert not problems, "\n".join(problems)


@pytest.mark.as_built
@pytest.mark.req("ESP-AUTH")
def test_every_sa_provides_data_origin_authentication(lab, kernel_ipsec):
    problems = []
    checked = 0
    for node, tunnel, held in link_end_sas(lab, kernel_ipsec):
        for sa in held:
            checked += 1
            if not sa.authenticated:
                problems.append(f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}) uses "
                                f"{sa.algorithm} with no integrity algorithm")
    events.note("", "SAs checked for data-origin authentication", [f"{checked} SAs on the link ends"])
    assert checked, "no SA of any virtual link was found: nothing was checked"
    assert not problems, "\n".join(problems)
