"""RFC 3884 2.3 and 3.2: virtual links are interfaces, so the VN forwards by
its routing table and dynamic routing runs over the tunnels, never over the
base network. Routes come from the kernel; adjacencies from each node's
routing daemon through its stack's adapter."""
from __future__ import annotations

import ipaddress

import pytest

from guards import needs_dynamic_routing
from testbed import events, expect
from testbed.datapath.tunnels import TOS_INHERIT
from testbed.probe import inspect
from testbed.probe.capture import MultiCapture
from testbed.probe.flows import access_capture
from testbed.probe.traffic import traceroute
from testbed.routing.convergence import expected_adjacencies, vn_prefixes
from testbed.topology.plan import LAN_DEVICE

OSPF = 89
HELLOS_WATCHED = 1.5      # hello intervals a base-link capture lasts: at least one hello


@pytest.mark.as_built
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


@pytest.mark.as_built
@pytest.mark.req("FWD-OSPF")
def test_ospf_full_on_every_virtual_link_and_nothing_else(lab):
    needs_dynamic_routing(lab)
    problems = []
    for node, wanted in expected_adjacencies(lab).items():
        states = lab.routing.neighbours(lab, node)
        events.note(node, f"{lab.routing.name} adjacencies as the daemon reports them",
                    [f"{device}: {state}" for device, state in sorted(states.items())])
        for device in sorted(wanted):
            if states.get(device) != "Full":
                problems.append(f"{node}: adjacency on {device} is {states.get(device, 'absent')}, want Full")
        for device in sorted(set(states) - wanted):
            problems.append(f"{node}: neighbour on {device}, which is not a virtual link")
    assert not problems, "\n".join(problems)


@pytest.mark.as_built
@pytest.mark.req("FWD-NOBASE")
def test_no_vn_routing_on_base_interfaces_daemon_view(lab):
    needs_dynamic_routing(lab)
    problems = []
    for node, wanted in expected_adjacencies(lab).items():
        stray = sorted(set(lab.routing.protocol_interfaces(lab, node)) - wanted - {LAN_DEVICE})
        if stray:
            problems.append(f"{node}: {lab.routing.name} runs on {stray}, which are not virtual links (base and "
                            "VN routing must not mix)")
    assert not problems, "\n".join(problems)


@pytest.mark.as_built
@pytest.mark.req("FWD-NOBASE")
def test_no_ospf_in_clear_on_the_base_network(lab, report_dir):
    """Whatever the daemons say: no OSPF packet crosses any VN node's access
    link in clear while several hello intervals pass."""
    captures = [access_capture(lab, report_dir, node, "ospf-on-base", bpf=f"ip proto {OSPF}")
                for node in lab.active_vn_nodes()]
    window = HELLOS_WATCHED * lab.topology.defaults.ospf.hello
    with MultiCapture(captures) as caps:
        caps.watch(window)
    seen = [(cap.node, p.summary()) for cap in caps.captures for p in cap.packets]
    events.note("", f"OSPF in clear on the access links during {window:.1f} s", [f"{n}: {s}" for n, s in seen])
    assert not seen, f"OSPF in clear on the base network: {seen[:5]}"


@pytest.mark.as_built
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


def _lan_host(lab, node: str) -> str:
    """An address inside the node's VN-local prefix other than the node's own
    (a host behind it): a more-specific route would show there."""
    net = ipaddress.IPv4Network(lab.plan.nodes[node].lan_prefix)
    return str(net.broadcast_address - 1) if net.num_addresses > 4 else lab.plan.nodes[node].lan_address


@pytest.mark.as_built
@pytest.mark.req("FWD-ROUTES")
def test_kernel_sends_every_vn_address_through_a_tunnel(lab):
    """The kernel's own lookup, rules and more-specific routes included, for
    every VN address of every other node (its VN-local address, a host
    inside its prefix, its end of each virtual link), as a packet the node
    sends itself and as one it forwards: from a host on its own LAN, and
    from a host behind each other node, arriving over the tunnel its route
    to that host takes (`ip route get DST from SRC iif DEV`), so source-
    and interface-keyed rules are seen too."""
    owners = {}
    for node in lab.active_vn_nodes():
        owners[expect.lan_address(lab, node)] = owners[_lan_host(lab, node)] = node
    for node, tunnel in lab.active_link_ends():
        owners[tunnel.vn_address] = node
    problems, lines = [], []
    for node in lab.active_vn_nodes():
        tunnel_devices = {t.device for t in lab.plan.nodes[node].tunnels}
        others = sorted(address for address, owner in owners.items() if owner != node)
        hosts = {_lan_host(lab, n): n for n in lab.active_vn_nodes() if n != node}
        arrives = inspect.egress_devices(lab.runtime, node, sorted(hosts))
        sources = [(None, None), (_lan_host(lab, node), LAN_DEVICE)]
        sources += [(host, device) for host, device in arrives.items() if device in tunnel_devices]
        problems += [f"{node} sends {host} ({hosts[host]}'s host) out of {device}, not a tunnel"
                     for host, device in arrives.items() if device not in tunnel_devices]
        queries = [inspect.RouteQuery(dst, src, iif) for src, iif in sources for dst in others
                   if src is None or owners.get(dst) != hosts.get(src)]
        for query, device in inspect.route_lookups(lab.runtime, node, queries).items():
            lines.append(f"{node}: {query.describe()} ({owners[query.dst]}'s) -> {device}")
            if device not in tunnel_devices:
                problems.append(f"{node} sends {query.describe()} ({owners[query.dst]}'s) out of {device}, "
                                "not a tunnel")
    events.note("", "the kernel's route lookup for every VN address, sent and forwarded", lines)
    assert not problems, "\n".join(problems)


def _assert_path(lab, name: str, src: str, dst: str, path: list[str]) -> None:
    want = expect.hop_addresses(lab, path)
    trace = traceroute(lab.runtime, src, expect.lan_address(lab, dst), max_hops=expect.trace_hops(path))
    events.path(name, expect.hop_nodes(lab, src, trace.hops))
    assert trace.hops == want, (
        f"{src}->{dst} hops {trace.hops}, want {want} (path {'-'.join(path)})\n{trace.output}")


@pytest.mark.req("FWD-PATH")
def test_flow_follows_the_ospf_path_across_the_tunnels(lab, flow):
    name, spec = flow
    path = expect.vn_path(lab, spec.src, spec.dst)
    _assert_path(lab, name, spec.src, spec.dst, path)


@pytest.mark.req("FWD-REROUTE")
def test_cut_link_reroutes_and_leaves_sad_spd_unchanged(lab, reroute_record):
    """Figure 3: with A's link 3 cut, X->Y moves to link 4; no SA or policy changes."""
    needs_dynamic_routing(lab)
    record = reroute_record
    node, peer = record.cut
    assert not record.problem, f"the cut of {node}-{peer} could not be observed: {record.problem}"
    want = expect.hop_addresses(lab, record.new_path)
    events.note(node, f"link {node}-{peer} cut: {record.flow} traced", [record.trace])
    assert record.hops == want, (f"with {node}-{peer} cut, {record.flow} hops {record.hops}, want {want} (path "
                                 f"{'-'.join(record.new_path)})\n{record.trace}")
    changed = {n: sorted(set(record.sad_before[n]) ^ set(record.sad_after.get(n, [])))
               for n in record.sad_before if record.sad_before[n] != record.sad_after.get(n)}
    assert not changed, f"SAD/SPD changed when link {node}-{peer} was cut: {changed}"
