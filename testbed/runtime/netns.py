"""The embedded default backend: every node is a named network namespace."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
from typing import Iterator

from testbed.errors import TestbedError
from testbed.runtime.base import Runtime, program_version
from testbed.runtime.netlink import inside, list_namespaces

PREFIX = "iipt"


def namespace_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def named_nodes(lab: str) -> list[str]:
    """Nodes of `lab` whose namespace is named in /run/netns (either backend names them so)."""
    prefix = namespace_name(lab, "")
    return [n[len(prefix):] for n in list_namespaces() if n.startswith(prefix) and "-" not in n[len(prefix):]]


def labs_with_namespaces() -> set[str]:
    """Lab names that own namespaces on this machine right now."""
    return {name[len(PREFIX) + 1:].rsplit("-", 1)[0] for name in list_namespaces()
            if name.startswith(PREFIX + "-") and name.count("-") == 2}


def _ip_netns(*argv: str) -> None:
    done = subprocess.run(["ip", "netns", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TestbedError(f"ip netns {' '.join(argv)}: {done.stderr.strip()}")


class NetnsRuntime(Runtime):
    backend = "netns"

    def netns(self, node: str) -> str:
        return namespace_name(self.lab, node)

    def create_node(self, node: str) -> None:
        _ip_netns("add", self.netns(node))

    def destroy_node(self, node: str) -> None:
        if self.netns(node) in list_namespaces():
            # Removing the namespace destroys its veths, tunnels, SAs and
            # policies with it; processes are stopped by the caller first.
            _ip_netns("delete", self.netns(node))

    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns(node), *argv]

    @contextmanager
    def net_only(self, node: str) -> Iterator[bool]:
        # A child starts in the network namespace of the thread that starts
        # it: this thread enters the node's for the block. (`ip netns exec`
        # also makes a mount namespace with the node's /sys, which daemons
        # need; nsenter in its place measured no cheaper.)
        with inside(self.netns(node)):
            yield True

    def describe(self) -> dict[str, str]:
        return {"backend": "network namespaces", "frr": program_version(["/usr/lib/frr/zebra", "--version"])}

    def existing_nodes(self) -> list[str]:
        return named_nodes(self.lab)
