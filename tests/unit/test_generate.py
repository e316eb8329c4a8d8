"""iiptran generate: every shape gives a lab file that validates, whose flows
have the unique shortest paths the suite's path checks need; bad requests
exit 2 and write nothing."""
from __future__ import annotations

import pytest

from testbed import expect
from testbed.cli import main
from testbed.topology.generate import Request, generate, to_yaml, write
from testbed.topology.loader import load
from testbed.topology.plan import build_plan


@pytest.mark.parametrize("req", [Request("ring", 16), Request("ring", 33), Request("grid", 16), Request("grid", 7),
                                 Request("hub", 8), Request("hub", 12, hubs=2), Request("random", 24, seed=3),
                                 Request("random", 64, seed=9, degree=4), Request("ring", 4, routers=1)])
def test_each_shape_validates_and_its_flows_have_unique_paths(tmp_path, req):
    topology = load(str(write(req, tmp_path / "lab.yaml")))
    assert len(topology.vn_nodes) == req.nodes and topology.name == req.name
    graph = build_plan(topology).vn_graph()
    assert topology.flows
    for flow in topology.flows.values():
        expect.shortest_path(graph, flow.src, flow.dst)     # raises on equal-cost paths
    if req.shape == "ring":
        longest = max(len(expect.shortest_path(graph, f.src, f.dst)) for f in topology.flows.values())
        assert longest >= req.nodes // 2, "the longest flow crosses about half the ring"


def test_ring_and_two_hubs_give_every_flow_a_link_to_cut():
    for req in (Request("ring", 16), Request("hub", 10, hubs=2)):
        graph = build_plan(load_lab(req)).vn_graph()
        lab = generate(req)
        first = lab["flows"]["f1"]
        assert expect.reroutable_link(graph, expect.shortest_path(graph, first["src"], first["dst"]))


def load_lab(req, folder=None):
    import tempfile
    from pathlib import Path
    folder = Path(folder or tempfile.mkdtemp())
    return load(str(write(req, folder / "lab.yaml")))


def test_same_request_same_file_and_the_seed_matters():
    assert to_yaml(generate(Request("random", 20, seed=5))) == to_yaml(generate(Request("random", 20, seed=5)))
    assert to_yaml(generate(Request("random", 20, seed=5))) != to_yaml(generate(Request("random", 20, seed=6)))


@pytest.mark.parametrize("argv, message", [
    (["generate", "ring", "--nodes", "2"], "--nodes 2: a ring needs 3"),
    (["generate", "hub", "--nodes", "8", "--hubs", "3"], "--hubs 3: one or two hubs"),
    (["generate", "random", "--nodes", "8", "--degree", "9"], "--degree 9.0"),
    (["generate", "grid", "--nodes", "9", "--out", "{tmp}/lab.txt"], "a lab file ends in .yaml"),
])
def test_bad_requests_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_writes_where_asked(tmp_path, capsys):
    assert main(["generate", "grid", "--nodes", "9", "--out", str(tmp_path / "g.yaml")]) == 0
    assert f"wrote {tmp_path / 'g.yaml'}" in capsys.readouterr().out
    assert load(str(tmp_path / "g.yaml")).name == "grid9"
