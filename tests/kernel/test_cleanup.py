"""Nothing is left behind: after a normal down, a failed bring-up, and Ctrl-C."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import lab as lab_module
from testbed.errors import WaitTimeout
from testbed.lab import STATE_ROOT, Lab
from testbed.routing.bird import BIRD_RUN
from testbed.routing.frr import FRR_RUN
from testbed.runtime import docker_engine
from testbed.runtime.containers import lab_containers
from testbed.runtime.netlink import list_namespaces
from testbed.wait import wait_for

PROJECT = Path(__file__).resolve().parents[2]


def leftovers(name: str) -> list[str]:
    """What a lab of either backend could leave on this machine."""
    found = [f"namespace {ns}" for ns in list_namespaces() if ns.startswith(f"iipt-{name}-")]
    found += [f"FRR folder {p}" for p in FRR_RUN.glob(f"iipt-{name}-*")]
    found += [f"BIRD folder {p}" for p in BIRD_RUN.glob(f"iipt-{name}-*")]
    engine = docker_engine.client_if_running()
    if engine is not None:
        found += [f"container {c.name}" for c in lab_containers(engine, name)]
    daemons = subprocess.run(["pgrep", "-af", f"iipt-{name}-"], capture_output=True, text=True).stdout
    found += [f"process {line}" for line in daemons.splitlines() if "pgrep" not in line]
    # charon's command line names no lab; the self-test runs one lab at a time.
    charons = subprocess.run(["pgrep", "-ax", "charon"], capture_output=True, text=True).stdout
    found += [f"IKE daemon {line}" for line in charons.splitlines()]
    # pluto's names its folder in the lab's state folder.
    plutos = subprocess.run(["pgrep", "-af", "libexec/ipsec/pluto"], capture_output=True, text=True).stdout
    found += [f"IKE daemon {line}" for line in plutos.splitlines() if f"/{name}/ike/" in line]
    if (STATE_ROOT / name).exists():
        found.append(f"state folder {STATE_ROOT / name}")
    return found


def _ike_daemons(found: list[str]) -> set[str]:
    return {daemon for item in found if item.startswith("IKE daemon")
            for daemon in ("charon", "pluto") if daemon in item}


def test_down_removes_everything():
    # BIRD and libreswan on A, FRR and strongSwan on the others: both routing
    # stacks' and both IKE implementations' daemons and folders must go.
    lab = Lab.up("fig6", "cleanok", overrides={"routing.A": "bird", "keying": "ikev2", "ike.A": "libreswan"})
    found = leftovers("cleanok")
    assert any("/usr/sbin/bird" in item for item in found) and any("/usr/lib/frr/" in item for item in found), found
    assert _ike_daemons(found) == {"charon", "pluto"}, found
    lab.down()
    assert leftovers("cleanok") == []


def test_failed_bring_up_removes_everything(monkeypatch):
    def never(lab):
        raise WaitTimeout("gave up waiting (forced by the test)")
    monkeypatch.setattr(lab_module, "wait_converged", never)
    with pytest.raises(WaitTimeout):
        Lab.up("fig6", "cleanfail")
    assert leftovers("cleanfail") == []


def test_down_all_stops_the_ike_daemons_of_a_killed_run():
    """`up --keying ikev2` (libreswan on A) killed with SIGKILL once its IKE
    daemons run: no cleanup ran; `down --all` finds them by their network namespaces."""
    name = "ikekill"
    process = subprocess.Popen([sys.executable, "-m", "testbed", "up", "fig6", "--name", name, "--keying", "ikev2",
                                "--node-ike", "A=libreswan"],
                               cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _ike_daemons(leftovers(name)) == {"charon", "pluto"} or process.poll() is not None,
                 f"lab {name}'s IKE daemons to start", timeout=300)
    finally:
        process.kill()
        _, err = process.communicate()
    assert _ike_daemons(leftovers(name)) == {"charon", "pluto"}, err
    # Not a lab that is up: a bring-up whose process is gone, and `up` says so.
    again = subprocess.run([sys.executable, "-m", "testbed", "up", "fig6", "--name", name], cwd=PROJECT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and f"process {process.pid} is gone" in again.stderr, again.stderr
    assert "interrupted during bring-up" in again.stderr and "--replace" in again.stderr, again.stderr
    done = subprocess.run([sys.executable, "-m", "testbed", "down", "--all"], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert leftovers(name) == []


@pytest.mark.parametrize("backend", ["netns", "docker"])
def test_ctrl_c_during_bring_up_removes_everything(backend):
    name = f"int{backend}"
    # On Docker the smallest lab (tests/kernel/pair.yaml): each container costs seconds under emulation.
    lab_file = "fig6" if backend == "netns" else str(Path(__file__).with_name("pair.yaml"))
    process = subprocess.Popen([sys.executable, "-m", "testbed", "up", lab_file, "--name", name, "--backend", backend],
                               cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Interrupt once FRR runs: the lab is half-built, daemons included.
        wait_for(lambda: any("process" in item for item in leftovers(name)) or process.poll() is not None,
                 "the lab's routing daemons to start", timeout=300)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert leftovers(name) == []
    assert not docker_engine.private_engine_running(), "the engine started for the lab still runs"
