"""The Docker backend: every node is a container of the node image.

A container gets no Docker network and only the capabilities its programs
need. Its network namespace is also named in /run/netns (as `ip netns
attach` does), so the datapath, routing and probe code act on it exactly as
on the namespace backend: veths, tunnels and SAs are made from outside with
pyroute2 and iproute2, and the programs of the image (FRR, tcpdump, ping)
run inside.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from pyroute2 import netns as pyroute2_netns

from testbed.errors import TestbedError
from testbed.parallel import parallel
from testbed import events
from testbed.runtime import docker_engine
from testbed.runtime.base import Runtime, program_version
from testbed.runtime.netlink import list_namespaces
from testbed.runtime.netns import named_nodes, namespace_name

LABEL_LAB, LABEL_NODE = "org.iiptran.lab", "org.iiptran.node"
# FRR 8.4 refuses to start without CAP_SYS_ADMIN in its bounding set (its
# netns/VRF code asks for it even when unused); SETUID/SETGID to drop to the
# frr user (tcpdump too), NET_BIND_SERVICE for ospfd, CHOWN and DAC_OVERRIDE
# for the daemons' run folders. No --privileged.
CAPABILITIES = ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SETUID", "SETGID", "NET_BIND_SERVICE", "CHOWN",
                "DAC_OVERRIDE"]
# `docker exec` costs about 1 s per command under emulation, nsenter 0.2 s
# (measured in the guest), and probes run hundreds of commands. Short
# commands therefore enter the container's namespaces with nsenter (the PID
# one too: /proc/net must resolve, and whatever is left dies with the
# container); daemons start through `docker exec`, so they live in the
# container's cgroup with its capability set.
NSENTER = ["nsenter", "--mount", "--uts", "--ipc", "--net", "--pid"]


def lab_containers(engine, lab: str | None = None) -> list:
    label = f"{LABEL_LAB}={lab}" if lab else LABEL_LAB
    return engine.containers.list(all=True, filters={"label": label})


class DockerRuntime(Runtime):
    backend = "docker"

    def __init__(self, lab: str):
        super().__init__(lab)
        self._pids: dict[str, int] = {}
        self._engine = None
        self._image = None

    @property
    def engine(self):
        if self._engine is None:
            started = time.monotonic()
            self._engine = docker_engine.client()
            self.timings["engine_s"] = round(time.monotonic() - started, 2)
        return self._engine

    def _node_image(self):
        if self._image is None:
            from testbed import images
            from testbed.paths import CACHE_DIR
            engine = self.engine
            started = time.monotonic()
            self._image = images.ensure_image(engine, CACHE_DIR)
            self.timings["image_s"] = round(time.monotonic() - started, 2)
        return self._image

    def container_name(self, node: str) -> str:
        return namespace_name(self.lab, node)

    def netns(self, node: str) -> str:
        return namespace_name(self.lab, node)

    def create_node(self, node: str) -> None:
        from testbed import images
        image = self._node_image()
        container = self.engine.containers.run(
            image.id, name=self.container_name(node), hostname=node, detach=True, init=True,
            network_mode="none", cap_drop=["ALL"], cap_add=CAPABILITIES,
            labels={LABEL_LAB: self.lab, LABEL_NODE: node, images.LABEL_RECIPE: images.recipe_id()})
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if not pid:
            raise TestbedError(f"container {container.name} did not start: {container.attrs['State']}")
        self._pids[node] = pid
        pyroute2_netns.attach(self.netns(node), pid)

    def create_nodes(self, nodes: list[str]) -> None:
        """Side by side: a container takes seconds to start under emulation."""
        self._node_image()
        started = time.monotonic()
        parallel([lambda node=node: self.create_node(node) for node in nodes], workers=3)
        self.timings["containers_s"] = round(time.monotonic() - started, 2)

    def destroy_nodes(self, nodes: list[str]) -> None:
        parallel([lambda node=node: self.destroy_node(node) for node in nodes], workers=3)

    def destroy_node(self, node: str) -> None:
        import docker.errors
        try:
            self.engine.containers.get(self.container_name(node)).remove(force=True)
        except docker.errors.NotFound:
            pass
        # The name in /run/netns keeps the namespace (and its veths) alive.
        if self.netns(node) in list_namespaces():
            pyroute2_netns.remove(self.netns(node))
        self._pids.pop(node, None)

    def _pid(self, node: str) -> int:
        if node not in self._pids:
            import docker.errors
            try:
                state = self.engine.containers.get(self.container_name(node)).attrs["State"]
            except docker.errors.NotFound:
                raise TestbedError(f"lab '{self.lab}' has no container for node {node}") from None
            if not state.get("Running"):
                raise TestbedError(f"container {self.container_name(node)} is not running ({state.get('Status')})")
            self._pids[node] = state["Pid"]
        return self._pids[node]

    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        return [*NSENTER, f"--target={self._pid(node)}", "--", *argv]

    def run_daemon(self, node: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        container = self.engine.containers.get(self.container_name(node))
        result = container.exec_run(argv, demux=True)
        stdout, stderr = (part.decode(errors="replace") if part else "" for part in result.output)
        events.command(node, ["docker", "exec", container.name, *argv], result.exit_code, stdout, stderr)
        return subprocess.CompletedProcess(argv, result.exit_code, stdout, stderr)

    def spawn(self, node: str, argv: list[str], log: Path) -> None:
        """In the container's cgroup, like FRR; its output stays inside."""
        container = self.engine.containers.get(self.container_name(node))
        container.exec_run(argv, detach=True)
        events.command(node, ["docker", "exec", "-d", container.name, *argv], 0, "", "")

    def host_path(self, node: str, path: Path) -> Path:
        return Path(f"/proc/{self._pid(node)}/root") / path.relative_to("/")

    def existing_nodes(self) -> list[str]:
        nodes = {c.labels.get(LABEL_NODE, "") for c in lab_containers(self.engine, self.lab)}
        return sorted(n for n in nodes | set(named_nodes(self.lab)) if n)

    def describe(self) -> dict[str, str]:
        from testbed import images
        image = self.engine.images.get(images.image_tag())
        nodes = self.existing_nodes()
        frr = program_version(self.exec_argv(nodes[0], ["/usr/lib/frr/zebra", "--version"])) if nodes else "unknown"
        return {"backend": "docker", "engine": docker_engine.describe(self.engine),
                "image": f"{images.image_tag()} ({image.short_id})",
                "image_frr": image.labels.get(images.LABEL_FRR, "undeclared"), "frr": frr}

    def after_teardown(self) -> None:
        # The engine the guest started for labs goes when no lab uses it.
        if docker_engine.private_engine_running() and not lab_containers(self.engine):
            docker_engine.stop_private_engine()
