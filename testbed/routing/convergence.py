"""Readiness: every expected adjacency Full, every VN prefix installed.

What is expected is derived from the plan and the lab's current membership
(detached nodes count once they have joined). Routes are read from the
kernel; adjacencies from each node's routing daemon, through its stack's
adapter (testbed/routing/stacks.py).
"""
from __future__ import annotations

import time

from testbed.probe.inspect import egress_devices, routes
from testbed.parallel import parallel
from testbed.topology.plan import LAN_DEVICE
from testbed.wait import wait_for

CONVERGENCE_TIMEOUT = 90.0


def expected_adjacencies(lab) -> dict[str, set[str]]:
    """VN node -> tunnel devices whose OSPF neighbour must be Full."""
    expected: dict[str, set[str]] = {node: set() for node in lab.active_vn_nodes()}
    for node, tunnel in lab.active_link_ends():
        expected[node].add(tunnel.device)
    return expected


def vn_prefixes(lab) -> set[str]:
    prefixes = {lab.plan.nodes[node].lan_prefix for node in lab.active_vn_nodes()}
    return prefixes | {tunnel.subnet for _, tunnel in lab.active_link_ends()}


def missing(lab) -> list[str]:
    """What is not converged yet, in words; empty when converged.

    Routes are read first (one `ip` per node, side by side); the neighbour
    tables (one daemon query per node) are asked only once every route is
    in, since routes follow Full adjacencies anyway.
    """
    gaps = []
    wanted = vn_prefixes(lab)
    tunnel_devices = {t.device for n in lab.plan.vn_nodes for t in n.tunnels}
    adjacencies = expected_adjacencies(lab)
    tables = parallel([lambda node=node: routes(lab.runtime, node) for node in adjacencies])
    for node, table in zip(adjacencies, tables):
        installed = {r.destination for r in table if set(r.devices) <= tunnel_devices | {LAN_DEVICE}}
        gaps += [f"{node} has no route to {prefix} via a tunnel" for prefix in sorted(wanted - installed)]
    if gaps or not lab.routing.dynamic:
        return gaps
    neighbours = parallel([lambda node=node: lab.routing.neighbours(lab, node) for node in adjacencies])
    for (node, devices), states in zip(adjacencies.items(), neighbours):
        for device in sorted(devices):
            state = states.get(device, "absent")
            if state != "Full":
                gaps.append(f"{node} {lab.routing.name} adjacency on {device} is {state}")
    return gaps


def wait_converged(lab, timeout: float = CONVERGENCE_TIMEOUT) -> None:
    if not lab.datapath.dynamic_routing:
        # Static selector policies (tunnel-policy mode) are in force once
        # installed; OSPF is configured but has no interface to run on.
        return
    last: list[str] = []

    def converged() -> bool:
        last[:] = missing(lab)
        return not last

    wait_for(converged, f"lab '{lab.name}' to converge (all adjacencies Full, all VN routes)",
             timeout, interval=0.3, describe=lambda: "; ".join(last[:6] + unrouted_devices(lab)))


def unrouted_devices(lab) -> list[str]:
    """Virtual link devices a node's routing daemon does not run on, in
    words: asked only when the lab gives up converging, to say whether the
    daemon missed a device the kernel has (seen once under load: Y's ospfd
    ran on its LAN alone, while its tunnel was up and its IKE SAs installed)."""
    if not _asks_daemons(lab):
        return []
    adjacencies = expected_adjacencies(lab)

    def running_on(node: str) -> list[str] | str:
        try:
            return lab.routing.protocol_interfaces(lab, node)
        except Exception as exc:               # a dead daemon is itself the finding
            return f"could not be asked ({exc})"
    found = parallel([lambda node=node: running_on(node) for node in adjacencies])
    gaps = []
    for (node, devices), interfaces in zip(adjacencies.items(), found):
        if isinstance(interfaces, str):
            gaps.append(f"{node}'s {lab.routing.name} {interfaces}")
        elif devices - set(interfaces):
            gaps.append(f"{node}'s {lab.routing.name} does not run on {', '.join(sorted(devices - set(interfaces)))} "
                        f"(it runs on {', '.join(interfaces) or 'nothing'})")
    return gaps


def _tables(lab) -> tuple:
    """Every active VN node's routes, read side by side."""
    return tuple(tuple(sorted((r.destination, r.devices) for r in found)) for found in
                 parallel([lambda node=node: routes(lab.runtime, node) for node in lab.active_vn_nodes()]))


def _asks_daemons(lab) -> bool:
    """A routing daemon runs over the virtual links (not tunnel-policy, not static routes)."""
    return lab.datapath.dynamic_routing and lab.routing.dynamic


def _adjacencies(lab) -> list[dict]:
    """Every active VN node's adjacencies, one reading per node (none when nothing routes dynamically)."""
    if not _asks_daemons(lab):
        return []
    return parallel([lambda node=node: lab.routing.adjacencies(lab, node) for node in lab.active_vn_nodes()])


def _states_of(found: list[dict]) -> tuple:
    return tuple(tuple(sorted((device, a.state) for device, a in adjacencies.items())) for adjacencies in found)


def _states(lab) -> tuple:
    """Every active VN node's adjacency states."""
    return _states_of(_adjacencies(lab))


def _snapshot(lab) -> tuple:
    """Every active VN node's adjacency states and routes."""
    return _states(lab), _tables(lab)


def _one_sided(lab, states: tuple) -> list[str]:
    """Links Full on one end but not on the other (the far end has not
    noticed yet, e.g. until its dead interval runs out)."""
    full = {node: {device for device, state in node_states if state == "Full"}
            for node, node_states in zip(lab.active_vn_nodes(), states)}
    gaps = []
    for node, devices in full.items():
        for t in lab.plan.nodes[node].tunnels:
            if t.device in devices and t.peer in full and lab.plan.nodes[t.peer].tunnel_to(node).device \
                    not in full[t.peer]:
                gaps.append(f"{node} still Full on {t.device}, {t.peer} is not")
    return gaps


# ospfd's SPF may be held back up to a second after an adjacency change
# (timers throttle spf, testbed/routing/frr.py) and zebra installs what it
# computes a moment later under emulation: two equal reads half a second
# apart can both fall in that hold.
QUIET_S = 3.0


def wait_settled(lab, timeout: float = 30.0) -> None:
    """After a deliberate change (a fault): wait until both ends of every
    adjacency agree and the routes stop changing: converged and unchanged
    between two reads, or (a fault may keep the lab from converging)
    unchanged for QUIET_S (seen in bfd-off: every adjacency back to Full and
    two equal reads, while no node had a route to Y's prefix yet; the next
    check took that as the routing to restore)."""
    last: list = [None, [], time.monotonic()]

    def settled() -> bool:
        snapshot = _snapshot(lab)
        if snapshot != last[0]:
            last[0], last[2] = snapshot, time.monotonic()
            return False
        last[1] = _one_sided(lab, snapshot[0])
        if last[1]:
            return False
        return time.monotonic() - last[2] >= QUIET_S or not missing(lab)

    wait_for(settled, f"lab '{lab.name}' to settle (adjacencies agreed on both ends, routes unchanged)",
             timeout, interval=0.5, describe=lambda: "; ".join(last[1][:4]) or "routes still changing")


RESTORE_TIMEOUT = 45.0


def snapshot(lab) -> tuple:
    """The lab's routing as it is now (adjacency states and routes of every
    active VN node): what a check that breaks something for a moment must
    leave behind again."""
    return _snapshot(lab)


def _destinations(tables: tuple) -> tuple:
    return tuple(tuple(destination for destination, _ in table) for table in tables)


def wait_restored(lab, before: tuple, timeout: float = RESTORE_TIMEOUT) -> None:
    """Wait until the routing is as `before` again (the same destinations
    routed on every node, the same adjacency states): converged in a sound
    lab, back to the same broken state in a negative profile (where waiting
    for full convergence would only time out). Which of several equal-cost
    next hops a route keeps is OSPF's business, not the check's."""
    last: list = [None]

    quiet: list[str] = []

    def same() -> bool:
        # Routes first (cheap); the daemons are asked only once they match.
        tables = _tables(lab)
        if _destinations(tables) != _destinations(before[1]):
            last[0] = (before[0], tables)
            return False
        # States and dead timers from one reading per node: read apart, an
        # adjacency could reset between the two and pass both (seen: N Full,
        # then ExStart with a fresh timer, after IKE-CONVENTIONAL's restore).
        found = _adjacencies(lab)
        last[0] = (_states_of(found), tables)
        if last[0][0] != before[0]:
            return False
        # As before, but an adjacency the check starved of hellos could still
        # time out after this returns: wait until each has heard its neighbour.
        quiet[:] = [f"{node} {device}" for node, adjacencies in zip(lab.active_vn_nodes(), found)
                    for device in lab.routing.quiet(lab, adjacencies)]
        return not quiet

    def differences() -> str:
        if last[0] is None:
            return "nothing read yet"
        found = []
        for node, now, then in zip(lab.active_vn_nodes(), _destinations(last[0][1]), _destinations(before[1])):
            if now != then:
                found.append(f"{node} routes gained {sorted(set(now) - set(then))} lost {sorted(set(then) - set(now))}")
        for node, now, then in zip(lab.active_vn_nodes(), last[0][0], before[0]):
            if now != then:
                found.append(f"{node} adjacencies {dict(now)} were {dict(then)}")
        found += [f"{where} has not heard its neighbour for two hello intervals" for where in quiet]
        return "; ".join(found) or "no difference on the last read"

    wait_for(same, f"lab '{lab.name}' to route as before the check", timeout, interval=0.5, describe=differences)


def link_egress(lab, node: str, peer: str) -> dict[str, str]:
    """Each end of a virtual link: the device its kernel sends the other
    end's VN-local address out of (what a rebuild of the link must restore)."""
    found = {}
    for end, other in ((node, peer), (peer, node)):
        address = lab.plan.nodes[other].lan_address
        found[end] = egress_devices(lab.runtime, end, [address])[address]
    return found


def wait_link_back(lab, node: str, peer: str, egress: dict[str, str], timeout: float = 30.0) -> None:
    """Wait until a virtual link whose devices were rebuilt routes as before:
    its adjacency Full on both ends where a protocol runs, and each end's
    kernel sending the other's VN-local address out of the same device as
    before (`egress`, from link_egress). The kernel is asked too: a daemon
    may keep an adjacency whose routes the kernel dropped with the old
    device (BIRD does until its next scan of the kernel's table)."""
    devices = {node: lab.plan.nodes[node].tunnel_to(peer).device, peer: lab.plan.nodes[peer].tunnel_to(node).device}
    seen: dict[str, tuple[str, str]] = {}

    def back() -> bool:
        now = link_egress(lab, node, peer)
        for end, device in devices.items():
            state = lab.routing.neighbours(lab, end).get(device, "absent") if lab.routing.dynamic else "Full"
            seen[end] = state, now[end]
        return all(seen[end] == ("Full", egress[end]) for end in devices)

    wait_for(back, f"virtual link {node}-{peer} to route as before its rebuild on both ends", timeout, interval=0.3,
             describe=lambda: "; ".join(f"{end}: adjacency on {devices[end]} {state}, out of {out} (was {egress[end]})"
                                        for end, (state, out) in seen.items()))
