"""The topology drawing: Graphviz lays it out so that no two labels overlap,
even for a 32-node ring; flows and failed checks are marked from results."""
from __future__ import annotations

import itertools
import json
import re
import shutil

import pytest

from testbed.report.diagram import FAILED, Marks, dot_source, render_svg
from testbed.report.marks import build_marks, concerned
from testbed.topology.loader import load
from testbed.topology.plan import build_plan

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def ring_topology(path, n: int = 32, routers: int = 4):
    lines = ["name: ring", "defaults:", "  ospf: {hello: 1, dead: 4, cost: 10}", "base:",
             f"  routers: [{', '.join(f'R{i}' for i in range(routers))}]", "  links:"]
    lines += [f"    - {{ends: [R{i}, R{(i + 1) % routers}], subnet: 10.0.{i}.0/30}}" for i in range(routers)]
    lines += ["vn_nodes:"] + [f"  N{i}: {{router: R{i % routers}, access: 10.1.{i}.0/30, lan: 192.168.{i}.0/24}}"
                              for i in range(n)]
    lines += ["virtual_links:"] + [f"  - {{ends: [N{i}, N{(i + 1) % n}], subnet: 172.16.{i}.0/30}}"
                                   for i in range(n)]
    lines += ["flows:", "  far: {src: N0, dst: N15}"]
    path.write_text("\n".join(lines) + "\n")
    return build_plan(load(str(path)))


def text_boxes(plan, marks) -> list[tuple[str, float, float, float, float]]:
    """Every text Graphviz placed (node and edge labels), as boxes in points."""
    layout = json.loads(dot_source(plan, marks).pipe(format="json", encoding="utf-8"))
    boxes = []
    for obj in layout.get("objects", []) + layout.get("edges", []):
        size = 11.0
        for op in obj.get("_ldraw_", []):
            if op["op"] == "F":
                size = op["size"]
            if op["op"] == "T":
                (x, y), width = op["pt"], op["width"]
                left = {"l": x, "c": x - width / 2, "r": x - width}[op["align"]]
                boxes.append((op["text"], left, y - size * 0.2, left + width, y + size * 0.7))   # y grows upwards
    return boxes


@pytest.mark.parametrize("name", ["fig3", "fig6", "ring32"])
def test_no_two_labels_overlap(tmp_path, name):
    plan = ring_topology(tmp_path / "ring.yaml") if name == "ring32" else build_plan(load(name))
    boxes = text_boxes(plan, Marks(flows={"f": [n.name for n in plan.vn_nodes[:3]]}))
    link_labels = [b for b in boxes if " · via " in b[0]]
    assert len(link_labels) == len(plan.topology.virtual_links), "every virtual link is labelled with its base path"
    for a, b in itertools.combinations(boxes, 2):
        apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
        assert apart, f"labels overlap: {a} and {b}"


def test_link_label_names_the_base_routers_it_crosses():
    plan = build_plan(load("fig3"))
    assert plan.base_path("A", "B") == ["R3", "R1"]
    svg = render_svg(plan)
    assert "3 · cost 10 · via R3 R1" in svg and "4 · cost 20 · via R3 R2" in svg


def _group(svg: str, element_id: str) -> str:
    start = svg.index(f'id="{element_id}"')
    return svg[start:svg.index("</g>", start)]


def test_failed_check_marks_its_flow_path_and_the_nodes_its_message_names():
    plan = build_plan(load("fig3"))
    tests = [{"id": "conformance.test_forwarding::test_flow_follows_the_ospf_path_across_the_tunnels[xy]",
              "outcome": "passed", "message": "",
              "evidence": [{"kind": "path", "title": "xy", "body": json.dumps(list("XVACDY"))}]},
             {"id": "conformance.test_encryption::test_every_packet_is_esp[xy]", "outcome": "failed",
              "message": "AssertionError: 3 packets in clear", "evidence": []},
             {"id": "conformance.test_forwarding::test_ospf_full", "outcome": "failed",
              "message": "AssertionError: B: adjacency on t-D is Init, want Full", "evidence": []}]
    marks, observed = build_marks(plan, tests)
    assert marks.flows == {"xy": list("XVACDY")} and observed == {"xy"}, "the traced path wins over the expected"
    assert marks.failed_nodes == {"X", "Y", "B"}
    assert marks.failed_links == {"1", "2", "4", "6", "7"}
    svg = render_svg(plan, marks)
    assert FAILED in _group(svg, "node_B") and FAILED in _group(svg, "link_4")
    assert FAILED not in _group(svg, "node_D") and FAILED not in _group(svg, "link_3")


def test_an_unanswered_trace_is_not_drawn_as_a_path():
    plan = build_plan(load("fig3"))
    trace = {"kind": "path", "title": "xy", "body": json.dumps(["X", "*", "*"])}
    marks, observed = build_marks(plan, [{"id": "t::test_path[xy]", "outcome": "failed", "message": "",
                                          "evidence": [trace]}])
    assert marks.flows == {"xy": list("XVABDY")} and observed == set(), "the expected path, said to be expected"
    assert marks.failed_nodes == {"X", "Y"}


def test_passing_run_marks_nothing_red():
    plan = build_plan(load("fig6"))
    marks, observed = build_marks(plan, [{"id": "t::test_x[A]", "outcome": "passed", "message": "B: fine",
                                          "evidence": []}])
    assert not marks.failed_nodes and not marks.failed_links and observed == set()
    assert FAILED not in render_svg(plan, marks)


@pytest.mark.parametrize("message, nodes, links", [
    ("B: no device t-A for virtual link AB", {"B"}, {"AB"}),
    ("ESP with a corrupted ICV on C->A: A received 3", {"C", "A"}, set()),
    ("A packet was lost", set(), set()),
    ("with A-B cut, xy hops [...]", set(), {"AB"}),
    ("SAs/policies of existing links changed on join:\nN: removed 2", {"N"}, set()),
])
def test_failure_messages_name_nodes_and_links(message, nodes, links):
    assert concerned(build_plan(load("fig6")), message) == (nodes, links)


def test_drawing_without_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    text = render_svg(build_plan(load("fig6")))
    assert "<svg" not in text and re.search(r"graphviz", text)
