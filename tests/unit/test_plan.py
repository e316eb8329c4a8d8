"""Addressing, base routes and the paths the RFC predicts, from the lab files alone."""
from __future__ import annotations

from testbed import expect
from testbed.topology.loader import load
from testbed.topology.plan import build_plan


def test_fig3_path_crosses_at_least_four_tunnels_and_reroutes_over_link_4():
    plan = build_plan(load("fig3"))
    graph = plan.vn_graph()
    path = expect.shortest_path(graph, "X", "Y")
    assert path == ["X", "V", "A", "B", "D", "Y"]
    assert len(path) - 1 >= 4
    cut = expect.reroutable_link(graph, path)
    assert cut == ("A", "B")
    assert graph.edge(*cut)["label"] == "3"
    assert expect.shortest_path(graph, "X", "Y", cut=cut) == ["X", "V", "A", "C", "D", "Y"]


def test_every_virtual_link_is_a_base_path_across_two_routers():
    for name in ("fig3", "fig6"):
        plan = build_plan(load(name))
        for node in plan.vn_nodes:
            for t in node.tunnels:
                assert node.veths[0].peer_node != plan.nodes[t.peer].veths[0].peer_node, (name, node.name, t.peer)


def test_tunnel_ends_mirror_each_other():
    plan = build_plan(load("fig6"))
    a_to_b = plan.nodes["A"].tunnel_to("B")
    b_to_a = plan.nodes["B"].tunnel_to("A")
    assert (a_to_b.local_base, a_to_b.remote_base) == (b_to_a.remote_base, b_to_a.local_base)
    assert a_to_b.vn_address == b_to_a.peer_vn_address
    assert a_to_b.device == "t-B" and b_to_a.device == "t-A"


def test_base_routers_reach_every_base_subnet():
    plan = build_plan(load("fig3"))
    subnets = {str(__import__("ipaddress").IPv4Interface(f"{v.address}/{v.prefixlen}").network)
               for n in plan.nodes.values() for v in n.veths}
    for router in plan.routers:
        connected = {str(__import__("ipaddress").IPv4Interface(f"{v.address}/{v.prefixlen}").network)
                     for v in router.veths}
        assert connected | {dst for dst, _ in router.routes} == subnets


def test_vn_nodes_are_base_hosts_with_a_default_route():
    plan = build_plan(load("fig6"))
    for node in plan.vn_nodes:
        assert node.routes == [("0.0.0.0/0", next(v.address for v in plan.nodes[node.veths[0].peer_node].veths
                                                 if v.peer_node == node.name))]
