"""Nodes that configure themselves (a `configure` hook): what the lab file
and the command line may say, and the plan a hook is given."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.datapath import hook, ipsec
from testbed.errors import TopologyError, UserError
from testbed.lab import Lab, with_overrides
from testbed.topology.loader import load, resolve_path

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE = PROJECT / "topologies" / "hooks" / "iiptran-ip.sh"


def _lab_file(tmp_path: Path, extra: str) -> Path:
    text = resolve_path("fig6").read_text() + extra
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_the_example_hooks_are_executable_shell():
    for script in (EXAMPLE, EXAMPLE.with_name("iiptran-tunnel-mode.sh")):
        assert script.stat().st_mode & 0o111
        assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0


def test_a_hook_the_lab_file_names_is_found_relative_to_it(tmp_path):
    (tmp_path / "mine.sh").write_text("#!/bin/sh\n")
    (tmp_path / "mine.sh").chmod(0o755)
    assert load(str(_lab_file(tmp_path, "configure: mine.sh\n"))).configure == "mine.sh"


@pytest.mark.parametrize("extra, words", [("configure: nothing.sh\n", "configure: no such file"),
                                          ("configure: plain.txt\n", "is not executable")])
def test_a_missing_or_plain_hook_is_refused_by_field(tmp_path, extra, words):
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(TopologyError, match=words):
        load(str(_lab_file(tmp_path, extra)))


def test_a_hook_and_ike_keying_are_refused_together():
    with pytest.raises(UserError, match="configure themselves"):
        with_overrides(load("fig6"), {"configure": str(EXAMPLE), "keying": "ikev2"})


def test_the_plan_names_links_keys_and_the_routing_folder():
    lab = Lab("plan", resolve_path("fig6"), topology=with_overrides(load("fig6"), {"configure": str(EXAMPLE)}))
    for index, (node, tunnel) in enumerate((n, t) for n in ("A", "B", "C") for t in lab.plan.nodes[n].tunnels
                                           if t.peer in ("A", "B", "C") and n < t.peer):
        lab.links.add(tunnel.label)
        lab.sas += ipsec.link_sas(tunnel, 100 + 2 * index)
    assert hook.hooked_nodes(lab) == {"A", "B", "C", "N"}
    plan = hook.node_document(lab, "A", "up", [])
    assert plan["netns"] == lab.runtime.netns("A") and plan["exec"][:3] == ["ip", "netns", "exec"]
    assert plan["routing"] == {"daemon": "frr", "pathspace": "iipt-plan-A", "folder": "/run/frr/iipt-plan-A"}
    assert [t["peer"] for t in plan["tunnels"]] == ["B", "C"]          # N's link is not built yet
    link = plan["tunnels"][0]
    out, back = lab.installed_link_sas("A", "B")
    assert link["sa_out"]["spi"] == f"0x{out.spi:08x}" and link["sa_in"]["crypto"] == back.xfrm_crypto()
    assert plan["tunnel_ttl"] == 99 and plan["ospf"] == {"hello": 1, "dead": 4}
