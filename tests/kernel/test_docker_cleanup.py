"""The Docker backend leaves nothing behind: containers, the names of their
namespaces, daemons, state, and the engine started for the labs. (Ctrl-C
for both backends: test_cleanup.py.)"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from testbed.lab import STATE_ROOT, Lab
from testbed.runtime import docker_engine
from testbed.wait import wait_for

from test_cleanup import leftovers

PROJECT = Path(__file__).resolve().parents[2]
# Three containers, not fig6's six: what is checked is what any lab leaves.
PAIR = str(Path(__file__).with_name("pair.yaml"))


def _killed_during_bring_up(name: str) -> None:
    """`up --backend docker` killed with SIGKILL once FRR runs: no cleanup ran."""
    process = subprocess.Popen([sys.executable, "-m", "testbed", "up", PAIR, "--name", name, "--backend", "docker"],
                               cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any("process" in item for item in leftovers(name)) or process.poll() is not None,
                 f"lab {name}'s routing daemons to start", timeout=300)
    finally:
        process.kill()
        _, err = process.communicate()
    assert any(item.startswith("container") for item in leftovers(name)), err


def test_leftovers_of_a_killed_run_are_found_by_label_on_the_next_up_and_down_removes_all():
    _killed_during_bring_up("dockre")
    # As after a reboot of the host: the state under /run is gone, the
    # containers are not.
    shutil.rmtree(STATE_ROOT / "dockre")
    lab = Lab.up(PAIR, "dockre", overrides={"backend": "docker"})
    assert lab.runtime.backend == "docker"
    assert any(item.startswith("container") for item in leftovers("dockre"))
    assert docker_engine.private_engine_running()
    lab.down()
    assert leftovers("dockre") == []
    assert not docker_engine.private_engine_running(), "the engine started for the lab still runs"


def test_down_all_removes_a_killed_runs_containers():
    _killed_during_bring_up("dockall")
    done = subprocess.run([sys.executable, "-m", "testbed", "down", "--all"], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert leftovers("dockall") == []
    assert not docker_engine.private_engine_running()

