"""The embedded default backend: every node is a named network namespace."""
from __future__ import annotations

from pyroute2 import netns as pyroute2_netns

from testbed.runtime.base import Runtime

PREFIX = "iipt"


def namespace_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def labs_with_namespaces() -> set[str]:
    """Lab names that own namespaces on this machine right now."""
    labs = set()
    for name in pyroute2_netns.listnetns():
        if name.startswith(PREFIX + "-"):
            labs.add(name[len(PREFIX) + 1:].rsplit("-", 1)[0])
    return labs


class NetnsRuntime(Runtime):
    def netns(self, node: str) -> str:
        return namespace_name(self.lab, node)

    def create_node(self, node: str) -> None:
        pyroute2_netns.create(self.netns(node))

    def destroy_node(self, node: str) -> None:
        if self.netns(node) in pyroute2_netns.listnetns():
            # Removing the namespace destroys its veths, tunnels, SAs and
            # policies with it; processes are stopped by the caller first.
            pyroute2_netns.remove(self.netns(node))

    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns(node), *argv]

    def existing_nodes(self) -> list[str]:
        prefix = namespace_name(self.lab, "")
        return [n[len(prefix):] for n in pyroute2_netns.listnetns() if n.startswith(prefix)
                and "-" not in n[len(prefix):]]
