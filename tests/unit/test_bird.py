"""BIRD as the VN's routing stack: the config it is given (checked by BIRD's
own parser), the control-socket client, and how labs choose it per node."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from testbed import errors
from testbed.errors import UserError
from testbed.topology.overrides import with_overrides
from testbed.routing import birdctl
from testbed.routing.bird import STATE_CHANGE, bird_config
from testbed.routing.stacks import STACKS, MixedStack, lab_stack
from testbed.topology.loader import load
from testbed.topology.model import BfdParams
from testbed.topology.plan import build_plan


def _config(topology: str, node: str, bfd: BfdParams | None = None) -> str:
    lab = load(topology)
    return bird_config(build_plan(lab).nodes[node], lab.defaults.ospf, bfd, Path("/run/bird/x/bird.log"))


def test_ospf_runs_on_the_tunnels_and_the_lan_only_with_the_labs_timers():
    plan = build_plan(load("fig6")).nodes["A"]
    config = _config("fig6", "A")
    for tunnel in plan.tunnels:
        assert f'interface "{tunnel.device}" {{ type ptp; hello 1; dead 4; cost {tunnel.cost};' in config
    assert 'interface "lan0" { stub yes; }' in config and "router id 192.168.1.1;" in config
    assert config.count("interface \"") == len(plan.tunnels) + 1 and "bfd" not in config
    with_bfd = _config("fig6", "A", BfdParams(enabled=True, interval_ms=150, multiplier=4))
    assert with_bfd.count(" bfd yes;") == len(plan.tunnels) and "interval 150 ms; multiplier 4;" in with_bfd


@pytest.mark.skipif(shutil.which("bird") is None and not Path("/usr/sbin/bird").exists(),
                    reason="not run: BIRD is not installed here (Debian package bird2)")
@pytest.mark.parametrize("bfd", [None, BfdParams(enabled=True)])
def test_bird_itself_accepts_the_config(tmp_path, bfd):
    conf = tmp_path / "bird.conf"
    conf.write_text(_config("fig3", "A", bfd))
    done = subprocess.run(["/usr/sbin/bird", "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_state_changes_are_read_from_the_events_log():
    log = ("2026-11-28 00:54:24.619 <TRACE> vn: Neighbor 10.0.0.2 on ipip-ab changed state from Down to Init\n"
           "2026-11-28 00:54:24.650 <TRACE> vn: Neighbor 10.0.0.2 on ipip-ab changed state from Init to 2-Way\n"
           "2026-11-28 00:54:24.650 <TRACE> vn: Installing LSA: Type: 2001\n")
    assert [m.group(1) for m in STATE_CHANGE.finditer(log)] == ["ipip-ab", "ipip-ab"]


def _serve(path: Path, script: dict[bytes, bytes]) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        with conn, server:
            stream = conn.makefile("rwb")
            stream.write(b"0001 BIRD 2.0.12 ready.\n")
            stream.flush()
            command = stream.readline().strip()
            stream.write(script[command])
            stream.flush()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def test_the_control_client_reads_a_multi_line_reply(tmp_path):
    _serve(tmp_path / "bird.ctl", {b"show ospf neighbors vn": (
        b"1013-vn:\n Router ID   \tPri\t     State     \tDTime\tInterface  Router IP\n"
        b" 192.168.2.1 \t  1\tFull/PtP  \t 3.464\tipip-ab    172.16.1.2\n0000 \n")})
    lines = birdctl.ask(tmp_path, "bird.ctl", "show ospf neighbors vn")
    assert lines[0] == "vn:" and lines[2].split()[2:5] == ["Full/PtP", "3.464", "ipip-ab"]


def test_the_control_client_turns_an_error_code_into_an_error(tmp_path):
    _serve(tmp_path / "bird.ctl", {b"show nonsense": b"9001 syntax error, unexpected CF_SYM_UNDEFINED\n"})
    with pytest.raises(errors.TestbedError, match="'show nonsense' failed: syntax error"):
        birdctl.ask(tmp_path, "bird.ctl", "show nonsense")


def test_a_lab_picks_its_stack_and_nodes_may_pick_their_own():
    assert lab_stack(load("fig6")) is STACKS["frr"]
    assert lab_stack(with_overrides(load("fig6"), {"routing": "bird"})) is STACKS["bird"]
    mixed = lab_stack(with_overrides(load("fig6"), {"routing.A": "bird"}))
    assert isinstance(mixed, MixedStack) and mixed.name == "bird+frr"
    assert mixed.stacks["A"] is STACKS["bird"] and mixed.stacks["B"] is STACKS["frr"]


@pytest.mark.parametrize("overrides, words", [
    ({"routing.Z": "bird"}, "no VN node 'Z'"), ({"routing.A": "static"}, "unknown routing 'static' for node A"),
    ({"routing": "static", "routing.A": "bird"}, "vn_nodes.A.routing: names an OSPF daemon")])
def test_a_bad_node_routing_is_refused_by_name(overrides, words):
    with pytest.raises(UserError, match=words):
        with_overrides(load("fig6"), overrides)
