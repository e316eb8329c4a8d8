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


def _first_hop_device(lab, node: str, dst: str) -> str | None:
    route = inspect.route_to(inspect.routes(lab.runtime, node), expect.lan_address(lab, dst))
    return route.device if route else None


def _reroute_pending(lab, dst: str, path: list[str]) -> bool:
    """True while some node on the new path still routes to dst elsewhere."""
    return any(_first_hop_device(lab, a, dst) != lab.plan.nodes[a].tunnel_to(b).device
               for a, b in zip(path, path[1:]))


def _ike(lab, nodes: list[str]) -> dict[str, list[str]]:
    ike_nodes = sorted({n for node, t in lab.ike_links() for n in (node, t.peer)} & set(nodes))
    return dict(zip(ike_nodes, parallel([lambda n=n: lab.ike.snapshot(n) for n in ike_nodes])))


def cut_and_restore(lab, flow: str, src: str, dst: str, record_type):
    path = expect.vn_path(lab, src, dst)
    cut = expect.reroutable_link(lab.plan.vn_graph(), path)
    new_path = expect.vn_path(lab, src, dst, cut=cut)
    record = record_type(flow, cut, new_path)
    node, peer = cut
    device = lab.plan.nodes[node].tunnel_to(peer).device
    if not lab.routing.dynamic or device not in inspect.devices(lab.runtime, node):
        record.problem = (f"{node} has no interface {device} for virtual link {node}-{peer} a routing protocol "
                          "could lose and route around" if lab.routing.dynamic else
                          f"the VN routes statically ({lab.routing.name}): nothing reroutes around a cut")
        return record
    nodes = lab.active_vn_nodes()
    record.sad_before = {n: sad.entries() for n, sad in lab.observe_sas().items()}
    record.ike_before = _ike(lab, nodes)
    routing = snapshot(lab)
    lab.set_link_state(node, peer, up=False)
    try:
        wait_for(lambda: _first_hop_device(lab, node, dst) not in (device, None),
                 f"{node}'s route to {dst} to leave {device}", timeout=REROUTE_TIMEOUT)
        wait_for(lambda: not _reroute_pending(lab, dst, new_path),
                 f"the VN to route {src}->{dst} over {'-'.join(new_path)}", timeout=REROUTE_TIMEOUT)
        trace = traceroute(lab.runtime, src, expect.lan_address(lab, dst), max_hops=expect.trace_hops(new_path))
        record.hops, record.trace = trace.hops, trace.output
        record.sad_after = {n: sad.entries() for n, sad in lab.observe_sas().items()}
    finally:
        lab.set_link_state(node, peer, up=True)
        wait_restored(lab, routing)
    record.ike_after = _ike(lab, nodes)
    return record
