"""A virtual link on a flow's path cut and brought back, as a failing link
would be (RFC 3884 2.3, 3.2: rerouting is routing's job, not IPsec's):
what routing did, and the IPsec state of every node before and after, as
the kernels hold it and, for IKE-keyed links, as the daemons report it."""
from __future__ import annotations

from testbed import expect
from testbed.parallel import parallel
from testbed.probe import inspect
from testbed.probe.traffic import traceroute
from testbed.routing.convergence import snapshot, wait_restored
from testbed.wait import wait_for

REROUTE_TIMEOUT = 30.0


def first_hop_device(lab, node: str, dst: str) -> str | None:
    route = inspect.route_to(inspect.routes(lab.runtime, node), expect.lan_address(lab, dst))
    return route.device if route else None


def _reroute_pending(lab, dst: str, path: list[str]) -> bool:
    """True while some node on the new path still routes to dst elsewhere."""
    return any(first_hop_device(lab, a, dst) != lab.plan.nodes[a].tunnel_to(b).device
               for a, b in zip(path, path[1:]))


def _daemons(lab, nodes: list[str]) -> dict[str, list[str]]:
    """What each node's keying daemon reports (none for manual keys)."""
    asked = sorted(set(lab.keying.daemon_nodes()) & set(nodes))
    return dict(zip(asked, parallel([lambda n=n: lab.keying.daemon_view(n) for n in asked])))


def link_to_fail(lab, src: str, dst: str) -> tuple[tuple[str, str], str, str]:
    """The first link of the flow's path that has an alternative (near end
    first), its device on the near end, and why failing it would show
    nothing ('' when it would)."""
    cut = expect.reroutable_link(lab.plan.vn_graph(), expect.vn_path(lab, src, dst))
    node, peer = cut
    device = lab.plan.nodes[node].tunnel_to(peer).device
    problem = ""
    if not lab.routing.dynamic:
        problem = f"the VN routes statically ({lab.routing.name}): nothing routes around a failed link"
    elif device not in inspect.devices(lab.runtime, node):
        problem = (f"{node} has no interface {device} for virtual link {node}-{peer} that a routing protocol "
                   "could watch and route around")
    return cut, device, problem


def sad_entries(lab) -> dict[str, list[str]]:
    """Every active node's SAs and policies, one line each, as the kernels hold them."""
    return {n: sad.entries() for n, sad in lab.observe_sas().items()}


def cut_and_restore(lab, flow: str, src: str, dst: str, record_type):
    cut, device, problem = link_to_fail(lab, src, dst)
    new_path = expect.vn_path(lab, src, dst, cut=cut)
    record = record_type(flow, cut, new_path)
    node, peer = cut
    if problem:
        record.problem = problem
        return record
    nodes = lab.active_vn_nodes()
    record.sad_before = sad_entries(lab)
    record.ike_before = _daemons(lab, nodes)
    routing = snapshot(lab)
    lab.set_link_state(node, peer, up=False)
    try:
        wait_for(lambda: first_hop_device(lab, node, dst) not in (device, None),
                 f"{node}'s route to {dst} to leave {device}", timeout=REROUTE_TIMEOUT)
        wait_for(lambda: not _reroute_pending(lab, dst, new_path),
                 f"the VN to route {src}->{dst} over {'-'.join(new_path)}", timeout=REROUTE_TIMEOUT)
        trace = traceroute(lab.runtime, src, expect.lan_address(lab, dst), max_hops=expect.trace_hops(new_path))
        record.hops, record.trace = trace.hops, trace.output
        record.sad_after = sad_entries(lab)
    finally:
        lab.set_link_state(node, peer, up=True)
        wait_restored(lab, routing)
    record.ike_after = _daemons(lab, nodes)
    return record
