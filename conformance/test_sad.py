"""The SAD and SPD of every virtual link as both ends' kernels hold them,
whoever installed them (RFC 3884 3, 3.1; RFC 4301 4.4.1; RFC 4303 3.2):
transport mode, SAs and policies selecting IPIP between the two base
addresses and nothing wider, ESP required both ways, data-origin
authentication on every SA."""
from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from testbed import events
from testbed.datapath.ipsec import IPPROTO_IPIP
from testbed.probe.xfrm import Selector


def _link_ends_sas(lab, kernel_ipsec):
    """(node, tunnel end, SAs of the link's two directions held by node)."""
    for node, tunnel in lab.active_link_ends():
        sad = kernel_ipsec[node]
        held = sad.between(tunnel.local_base, tunnel.remote_base) + sad.between(tunnel.remote_base, tunnel.local_base)
        yield node, tunnel, held


def _record(kernel_ipsec) -> None:
    for node, sad in kernel_ipsec.items():
        events.note(node, "SAD and SPD as the kernel holds them (ip -s xfrm, keys left out)", sad.entries())


@pytest.mark.req("WIRE-ENDPOINTS")
def test_every_sa_of_every_virtual_link_is_transport_mode(lab, kernel_ipsec):
    _record(kernel_ipsec)
    problems = []
    ends = list(_link_ends_sas(lab, kernel_ipsec))
    assert ends, f"lab '{lab.name}' has no active virtual link: nothing to check"
    for node, tunnel, held in ends:
        for src, dst in ((tunnel.local_base, tunnel.remote_base), (tunnel.remote_base, tunnel.local_base)):
            if not [sa for sa in held if (sa.src, sa.dst) == (src, dst)]:
                problems.append(f"{node} holds no SA {src}->{dst} for virtual link {tunnel.label}")
        problems += [f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}) is in {sa.mode} mode"
                     for sa in held if sa.mode != "transport"]
    assert not problems, "\n".join(problems)


@pytest.mark.req("SAD-SELECTORS")
def test_every_sa_selects_ipip_between_the_endpoints(lab, kernel_ipsec):
    """What the kernel checks a decrypted packet against (RFC 4301 5.2): the
    SA's own selector, IPIP between the two base addresses."""
    _record(kernel_ipsec)
    problems, checked = [], 0
    for node, tunnel, held in _link_ends_sas(lab, kernel_ipsec):
        for sa in held:
            checked += 1
            want = Selector(f"{sa.src}/32", f"{sa.dst}/32", IPPROTO_IPIP)
            if sa.selector != want:
                problems.append(f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}) selects "
                                f"{sa.selector.describe()}, want {want.describe()}")
    assert checked, "no SA of any virtual link was found: nothing was checked"
    assert not problems, "\n".join(problems)


def _covers(selector: Selector, src: str, dst: str) -> bool:
    return ip_address(src) in ip_network(selector.src) and ip_address(dst) in ip_network(selector.dst)


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


@pytest.mark.req("ESP-AUTH")
def test_every_sa_provides_data_origin_authentication(lab, kernel_ipsec):
    problems = []
    checked = 0
    for node, tunnel, held in _link_ends_sas(lab, kernel_ipsec):
        for sa in held:
            checked += 1
            if not sa.authenticated:
                problems.append(f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}) uses "
                                f"{sa.algorithm} with no integrity algorithm")
    events.note("", "SAs checked for data-origin authentication", [f"{checked} SAs on the link ends"])
    assert checked, "no SA of any virtual link was found: nothing was checked"
    assert not problems, "\n".join(problems)
