"""RFC 3884 2.3 and 3.2: virtual links are interfaces, so the VN forwards by
its routing table and dynamic routing runs over the tunnels."""
from __future__ import annotations

import pytest

from testbed import expect
from testbed.datapath.tunnels import TOS_INHERIT, set_tunnel_state
from testbed.probe import inspect
from testbed.probe.traffic import traceroute
from testbed.routing.convergence import expected_adjacencies, vn_prefixes, wait_converged
from testbed.topology.plan import LAN_DEVICE
from testbed.wait import wait_for



@pytest.mark.req("FWD-IFACE")
def test_every_virtual_link_is_an_interface_with_a_vn_address(lab):
    problems = []
    for node in lab.active_vn_nodes():
        devices = inspect.devices(lab.runtime, node)
        for t in lab.plan.nodes[node].tunnels:
            if not lab.active(t.peer):
                continue
            dev = devices.get(t.device)
            if dev is None:
                problems.append(f"{node}: no device {t.device} for virtual link {t.label}")
            elif dev.kind != "ipip" or not dev.up:
                problems.append(f"{node}: {t.device} is kind={dev.kind} up={dev.up}, want an ipip device up")
            elif f"{t.vn_address}/{t.prefixlen}" not in dev.addresses:
                problems.append(f"{node}: {t.device} has {dev.addresses}, want VN address {t.vn_address}")
            else:
                want = {"local": t.local_base, "remote": t.remote_base,
                        "ttl": lab.topology.defaults.tunnel.ttl, "tos": TOS_INHERIT}
                got = {key: dev.tunnel_param(key) for key in want}
                if got != want:
                    problems.append(f"{node}: {t.device} tunnel parameters {got}, want {want} "
                                    "(endpoints = base addresses, fixed outer TTL, TOS inherited)")
    assert not problems, "\n".join(problems)


@pytest.mark.req("FWD-OSPF")
def test_ospf_full_on_every_virtual_link_and_nothing_else(lab):
    problems = []
    for node, wanted in expected_adjacencies(lab).items():
        stray = sorted(set(lab.frr(node).ospf_interfaces()) - wanted - {LAN_DEVICE})
        if stray:
            problems.append(f"{node}: OSPF runs on {stray}, which are not virtual links (base and VN "
                            "routing must not mix)")
        states = lab.frr(node).ospf_neighbors()
        for device in sorted(wanted):
            if not states.get(device, "").startswith("Full"):
                problems.append(f"{node}: OSPF on {device} is {states.get(device, 'absent')}, want Full")
        for device in sorted(set(states) - wanted):
            problems.append(f"{node}: OSPF neighbour on {device}, which is not a virtual link")
    assert not problems, "\n".join(problems)


@pytest.mark.req("FWD-ROUTES")
def test_routes_to_all_vn_prefixes_go_via_tunnel_devices(lab):
    problems = []
    prefixes = vn_prefixes(lab)
    for node in lab.active_vn_nodes():
        plan = lab.plan.nodes[node]
        own = {plan.lan_prefix} | {t.subnet for t in plan.tunnels}
        tunnel_devices = {t.device for t in plan.tunnels}
        table = inspect.routes(lab.runtime, node)
        for prefix in sorted(prefixes - own):
            route = next((r for r in table if r.destination == prefix), None)
            if route is None:
                problems.append(f"{node}: no route to VN prefix {prefix}")
            elif not set(route.devices) <= tunnel_devices:
                problems.append(f"{node}: route to {prefix} leaves via {route.devices}, not only tunnels")
    assert not problems, "\n".join(problems)


def _assert_path(lab, src: str, dst: str, path: list[str]) -> None:
    want = expect.hop_addresses(lab, path)
    trace = traceroute(lab.runtime, src, expect.lan_address(lab, dst))
    assert trace.hops == want, (
        f"{src}->{dst} hops {trace.hops}, want {want} (path {'-'.join(path)})\n{trace.output}")


@pytest.mark.req("FWD-PATH")
def test_flow_follows_the_ospf_path_across_the_tunnels(lab, flow):
    _, spec = flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    _assert_path(lab, spec.src, spec.dst, path)


@pytest.mark.req("FWD-REROUTE")
def test_cut_link_reroutes_and_leaves_sad_spd_unchanged(lab, reroutable_flow):
    """Figure 3: with A's link 3 cut, X->Y moves to link 4; no SA or policy changes."""
    _, spec = reroutable_flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    cut = expect.reroutable_link(lab.plan.vn_graph(), path)
    new_path = expect.vn_path(lab, spec.src, spec.dst, cut=cut)
    node, peer = cut
    device = lab.plan.nodes[node].tunnel_to(peer).device
    assert device in inspect.devices(lab.runtime, node), (
        f"{node} has no interface {device} for virtual link {node}-{peer}: there is no link routing could "
        "lose and route around; forwarding follows the SA selectors (RFC 3884 2.3)")
    before = {n: inspect.xfrm_entries(lab.runtime, n) for n in lab.active_vn_nodes()}
    set_tunnel_state(lab.runtime, node, device, up=False)
    try:
        wait_for(lambda: _first_hop_device(lab, node, spec.dst) not in (device, None),
                 f"{node}'s route to {spec.dst} to leave {device}", timeout=30)
        wait_for(lambda: not _reroute_pending(lab, spec.src, spec.dst, new_path),
                 f"the VN to route {spec.src}->{spec.dst} over {'-'.join(new_path)}", timeout=30)
        _assert_path(lab, spec.src, spec.dst, new_path)
        after = {n: inspect.xfrm_entries(lab.runtime, n) for n in lab.active_vn_nodes()}
        changed = [n for n in before if before[n] != after[n]]
        assert not changed, f"SAD/SPD changed on {changed} when link {node}-{peer} was cut"
    finally:
        set_tunnel_state(lab.runtime, node, device, up=True)
        wait_converged(lab)


def _first_hop_device(lab, node: str, dst: str) -> str | None:
    route = inspect.route_to(inspect.routes(lab.runtime, node), expect.lan_address(lab, dst))
    return route.device if route else None


def _reroute_pending(lab, src: str, dst: str, path: list[str]) -> bool:
    """True while some node on the new path still routes to dst elsewhere."""
    for a, b in zip(path, path[1:]):
        want = lab.plan.nodes[a].tunnel_to(b).device
        if _first_hop_device(lab, a, dst) != want:
            return True
    return False
