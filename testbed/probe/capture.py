"""Packet captures inside a node with tcpdump, read back with scapy."""
from __future__ import annotations

import select
import subprocess
import time
from pathlib import Path

from scapy.layers.inet import IP  # noqa: F401  (registers the IP dissectors)
from scapy.layers.l2 import Ether  # noqa: F401
from scapy.utils import rdpcap

from testbed.errors import TestbedError, WaitTimeout
from testbed import events
from testbed.runtime.base import Runtime
from testbed.wait import wait_for

READY_TIMEOUT = 20.0
SETTLE_POLLS = 3
SETTLE_TIMEOUT = 5.0


class Capture:
    """`with Capture(...) as cap:` captures until the block ends; then `cap.packets`."""

    def __init__(self, runtime: Runtime, node: str, device: str, pcap: Path, bpf: str = ""):
        self.runtime, self.node, self.device, self.pcap, self.bpf = runtime, node, device, pcap, bpf
        self.process: subprocess.Popen | None = None
        self.packets: list = []

    def __enter__(self) -> "Capture":
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        # Immediate mode: packets reach the file as they arrive, not when a
        # ring block fills (a SIGINT would otherwise discard the block).
        # The pcap goes to tcpdump's stdout, written here: the node's own
        # filesystem may not be this one (a container).
        argv = ["tcpdump", "--immediate-mode", "-Z", "root", "-i", self.device, "-n", "-U", "-s", "0", "-w", "-"]
        if self.bpf:
            argv.append(self.bpf)
        with self.pcap.open("wb") as out:
            self.process = self.runtime.popen(self.node, argv, stdout=out, stderr=subprocess.PIPE, text=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """tcpdump says 'listening on' once its socket is open."""
        deadline = time.monotonic() + READY_TIMEOUT
        seen = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.process.stderr.readline()
            if not line:
                raise TestbedError(f"tcpdump on {self.node}:{self.device} exited: {seen.strip()}")
            seen += line
            if "listening on" in line:
                return
        self.stop()
        raise WaitTimeout(f"gave up waiting for tcpdump on {self.node}:{self.device} to start: {seen.strip()}")

    def _settle(self) -> None:
        """Wait until tcpdump has written what it was handed: the file stops growing."""
        sizes: list[int] = []

        def stable() -> bool:
            sizes.append(self.pcap.stat().st_size if self.pcap.exists() else 0)
            return len(sizes) >= SETTLE_POLLS and len(set(sizes[-SETTLE_POLLS:])) == 1

        try:
            wait_for(stable, f"the capture on {self.node}:{self.device} to settle", SETTLE_TIMEOUT, 0.15)
        except WaitTimeout:
            pass   # a busy link keeps growing the file; stop anyway, it is all evidence

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self._settle()
            self.runtime.stop_program(self.process)

    def __exit__(self, *exc) -> None:
        self.stop()
        self.packets = list(rdpcap(str(self.pcap))) if self.pcap.exists() and self.pcap.stat().st_size else []
        events.pcap(self.node, self.device, self.pcap, len(self.packets))


class MultiCapture:
    """Several captures started together and stopped together."""

    def __init__(self, captures: list[Capture]):
        self.captures = captures

    def __enter__(self) -> "MultiCapture":
        entered = []
        try:
            for cap in self.captures:
                entered.append(cap.__enter__())
        except BaseException:
            for cap in entered:
                cap.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for cap in self.captures:
            cap.__exit__(*exc)

    @property
    def packets(self) -> list:
        return [p for cap in self.captures for p in cap.packets]
