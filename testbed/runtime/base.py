"""Where a node lives. The datapath, routing and probes only need a node's
network namespace and a way to run a program in it; a backend provides both.
"""
from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod

from testbed.report.evidence import RECORDER


class Runtime(ABC):
    """One lab's nodes on one backend. Names are scoped by the lab name."""

    def __init__(self, lab: str):
        self.lab = lab

    @abstractmethod
    def create_node(self, node: str) -> None:
        """Make an isolated node with only a loopback."""

    @abstractmethod
    def destroy_node(self, node: str) -> None:
        """Remove a node and everything in it; no error if it is gone."""

    @abstractmethod
    def netns(self, node: str) -> str:
        """The node's network namespace, as pyroute2 and `ip -n` accept it."""

    @abstractmethod
    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        """The host command line that runs argv inside the node."""

    @abstractmethod
    def existing_nodes(self) -> list[str]:
        """Nodes of this lab that exist now (also after a crash)."""

    def run(self, node: str, argv: list[str], timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess:
        done = subprocess.run(self.exec_argv(node, argv), capture_output=True, text=True,
                              timeout=timeout, check=False)
        RECORDER.command(node, argv, done.returncode, done.stdout, done.stderr)
        if check:
            done.check_returncode()
        return done

    def popen(self, node: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.exec_argv(node, argv), **kwargs)
