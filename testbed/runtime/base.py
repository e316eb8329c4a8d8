"""Where a node lives. The datapath, routing and probes only need a node's
network namespace and a way to run a program in it; a backend provides both.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import ContextManager, Iterator

from testbed.errors import WaitTimeout
from testbed import events
from testbed.runtime.netlink import read_sysctl, write_sysctls
from testbed.wait import wait_for


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if none of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def program_version(argv: list[str]) -> str:
    """First line a program prints about its version, run from here."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    out = (done.stdout or done.stderr).strip()
    return out.splitlines()[0] if out else "unknown"


class Runtime(ABC):
    """One lab's nodes on one backend. Names are scoped by the lab name."""

    backend = ""

    def __init__(self, lab: str):
        self.lab = lab
        self.timings: dict[str, float] = {}     # what the backend's own set-up cost, seconds

    @abstractmethod
    def create_node(self, node: str) -> None:
        """Make an isolated node with only a loopback."""

    @abstractmethod
    def destroy_node(self, node: str) -> None:
        """Remove a node and everything in it; no error if it is gone."""

    def create_nodes(self, nodes: list[str]) -> None:
        for node in nodes:
            self.create_node(node)

    def destroy_nodes(self, nodes: list[str]) -> None:
        for node in nodes:
            self.destroy_node(node)

    @abstractmethod
    def netns(self, node: str) -> str:
        """The node's network namespace, as pyroute2 and `ip -n` accept it."""

    @abstractmethod
    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        """The host command line that runs argv inside the node."""

    def net_only(self, node: str) -> ContextManager[bool]:
        """For a program that only uses sockets (ping, tcpdump): a block in
        which a program started from this thread is already in the node's
        network, if the backend can do that (True), so it needs no launcher
        process (a launcher costs as much CPU as the program under emulation)."""
        return nullcontext(False)

    @abstractmethod
    def existing_nodes(self) -> list[str]:
        """Nodes of this lab that exist now (also after a crash)."""

    @contextmanager
    def _started_in(self, node: str, argv: list[str], net_only: bool) -> Iterator[list[str]]:
        """The command line to start from this thread, inside the block."""
        with self.net_only(node) if net_only else nullcontext(False) as entered:
            yield argv if entered else self.exec_argv(node, argv)

    def run(self, node: str, argv: list[str], timeout: float = 60,
            check: bool = False, net_only: bool = False) -> subprocess.CompletedProcess:
        """Run argv in the node to completion (`net_only`: see net_only())."""
        with self._started_in(node, argv, net_only) as command:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        events.command(node, argv, done.returncode, done.stdout, done.stderr)
        if check:
            done.check_returncode()
        return done

    def popen(self, node: str, argv: list[str], net_only: bool = False, **kwargs) -> subprocess.Popen:
        """A program left running in the node; end it with `stop_program`. It
        gets its own process group: the launcher may fork and does not pass
        signals on."""
        with self._started_in(node, argv, net_only) as command:
            return subprocess.Popen(command, start_new_session=True, **kwargs)

    @staticmethod
    def stop_program(process: subprocess.Popen, timeout: float = 10.0) -> None:
        """SIGINT to the program's whole group; wait until all of it has exited (SIGKILL after timeout)."""
        _signal_group(process.pid, signal.SIGINT)
        try:
            wait_for(lambda: process.poll() is not None and not _signal_group(process.pid, 0),
                     f"process group {process.pid} ({shlex.join(map(str, process.args))[:80]}) to exit", timeout)
        except WaitTimeout:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()

    def spawn(self, node: str, argv: list[str], log: Path) -> None:
        """Start a program that stays in the foreground (charon) in the node,
        detached from this process; found again by its network namespace."""
        with log.open("ab") as out:
            subprocess.Popen(self.exec_argv(node, argv), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        events.command(node, argv, 0, f"(started in the background, output in {log})", "")

    def run_daemon(self, node: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Start a program that detaches and keeps running in the node (FRR)."""
        return self.run(node, argv, timeout=timeout)

    def sysctl(self, node: str, settings: dict[str, str]) -> None:
        """Set the node's net.* sysctls (from outside: a container cannot)."""
        write_sysctls(self.netns(node), settings)
        events.command(node, ["sysctl", "-w", *[f"{k}={v}" for k, v in settings.items()]], 0, "", "")

    def sysctl_get(self, node: str, key: str) -> str:
        """One of the node's net.* sysctls, as it is now."""
        return read_sysctl(self.netns(node), key)

    def host_path(self, node: str, path: Path) -> Path:
        """Where a file of the node's filesystem is, seen from here."""
        return path

    def describe(self) -> dict[str, str]:
        """What the report says about the backend."""
        return {"backend": self.backend}

    def after_teardown(self) -> None:
        """Release what the backend holds for labs once a lab is gone."""
