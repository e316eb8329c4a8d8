"""Nodes that configure themselves (a `configure` hook): what the lab file
and the command line may say, and the plan a hook is given."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.datapath import configure, ipsec
from testbed.errors import TopologyError, UserError
from testbed.lab import Lab
from testbed.topology.overrides import with_overrides
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


@pytest.mark.parametrize("overrides, words", [({"keying": "ikev2"}, "keyed manually"),
                                              ({"datapath": "tunnel-policy"}, "builds IIPtran links")])
def test_a_hook_is_refused_with_what_it_cannot_build(overrides, words):
    with pytest.raises(UserError, match=words):
        with_overrides(load("fig6"), {"configure": str(EXAMPLE), **overrides})


def test_a_hook_given_on_the_command_line_must_be_runnable(tmp_path):
    with pytest.raises(UserError, match="configure=.*no such file"):
        with_overrides(load("fig6"), {"configure": str(tmp_path / "none.sh")})


def test_overriding_a_lab_whose_own_hook_is_relative_to_it(tmp_path):
    (tmp_path / "mine.sh").write_text("#!/bin/sh\n")
    (tmp_path / "mine.sh").chmod(0o755)
    lab_file = _lab_file(tmp_path, "configure: mine.sh\n")
    assert with_overrides(load(str(lab_file)), {"routing.A": "bird"}).configure == "mine.sh"


def test_the_plan_names_links_keys_and_the_routing_folder():
    lab = Lab("plan", resolve_path("fig6"), topology=with_overrides(load("fig6"), {"configure": str(EXAMPLE)}))
    for index, (node, tunnel) in enumerate((n, t) for n in ("A", "B", "C") for t in lab.plan.nodes[n].tunnels
                                           if t.peer in ("A", "B", "C") and n < t.peer):
        lab.links.add(tunnel.label)
        lab.keying.of("manual").sas += ipsec.link_sas(tunnel, 100 + 2 * index)
    assert configure.self_configured(lab) == {"A", "B", "C", "N"}
    plan = configure.node_document(lab, "A", "up", [])
    assert plan["netns"] == lab.runtime.netns("A") and plan["exec"][:3] == ["ip", "netns", "exec"]
    assert {k: plan["routing"][k] for k in ("daemon", "pathspace", "folder")} == {
        "daemon": "frr", "pathspace": "iipt-plan-A", "folder": "/run/frr/iipt-plan-A"}
    bird_plan = configure.node_document(Lab("plan", resolve_path("fig6"), topology=with_overrides(
        load("fig6"), {"configure": str(EXAMPLE), "routing.A": "bird"})), "A", "up", [])["routing"]
    assert bird_plan["socket"] == "/run/bird/iipt-plan-A/bird.ctl" and bird_plan["log"].endswith("/bird.log")
    assert [t["peer"] for t in plan["tunnels"]] == ["B", "C"]          # N's link is not built yet
    link = plan["tunnels"][0]
    out, back = lab.link_sas("A", "B")
    assert link["sa_out"]["spi"] == f"0x{out.spi:08x}" and link["sa_in"]["crypto"] == back.xfrm_crypto()
    assert plan["tunnel_ttl"] == 99 and plan["ospf"] == {"hello": 1, "dead": 4}


def test_a_hook_that_cannot_be_run_is_a_clear_error(tmp_path):
    from testbed.errors import TestbedError
    script = tmp_path / "noshebang"
    script.write_text("echo hello\n")
    script.chmod(0o755)
    lab = Lab("plan", resolve_path("fig6"), topology=with_overrides(load("fig6"), {"configure": str(script)}))
    with pytest.raises(TestbedError, match="cannot run configuration program .*#!"):
        configure.run_configure(lab, "A", "up")
