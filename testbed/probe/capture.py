"""Packet captures inside a node with tcpdump, read back with scapy."""
from __future__ import annotations

import select
import struct
import subprocess
import time
from pathlib import Path
from typing import Callable

from scapy.layers.inet import IP  # noqa: F401  (registers the IP dissectors)
from scapy.layers.l2 import Ether  # noqa: F401
from scapy.error import Scapy_Exception
from scapy.utils import rdpcap

from testbed import events
from testbed.errors import TestbedError, WaitTimeout
from testbed.parallel import parallel
from testbed.runtime.base import Runtime
from testbed.wait import wait_for

READY_TIMEOUT = 20.0
SETTLE_POLLS = 2
SETTLE_TIMEOUT = 5.0
AWAIT_TIMEOUT = 5.0


class Capture:
    """`with Capture(...) as cap:` captures until the block ends; then `cap.packets`.
    `direction` ('in' or 'out') keeps only packets the device received or sent."""

    def __init__(self, runtime: Runtime, node: str, device: str, pcap: Path, bpf: str = "",
                 direction: str | None = None):
        self.runtime, self.node, self.device, self.pcap, self.bpf = runtime, node, device, pcap, bpf
        self.direction = direction
        self.process: subprocess.Popen | None = None
        self.packets: list = []

    def start(self) -> None:
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        # Immediate mode: packets reach the file as they arrive, not when a
        # ring block fills (a SIGINT would otherwise discard the block).
        # The pcap goes to tcpdump's stdout, written here: the node's own
        # filesystem may not be this one (a container).
        argv = ["tcpdump", "--immediate-mode", "-Z", "root", "-i", self.device, "-n", "-U", "-s", "0", "-w", "-"]
        if self.direction:
            argv[1:1] = ["-Q", self.direction]
        if self.bpf:
            argv.append(self.bpf)
        with self.pcap.open("wb") as out:
            self.process = self.runtime.popen(self.node, argv, stdout=out, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> "Capture":
        self.start()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
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

    def await_packets(self, matches: Callable[[object], bool], count: int, timeout: float = AWAIT_TIMEOUT) -> int:
        """Wait until `count` of the packets captured so far match, or
        `timeout` passes; return how many matched. Packets sent just before
        a capture ends may still be on their way (ESP, decapsulation, the
        emulated CPU): stopping early would miss them. Not meeting `count`
        is no error here; the caller's check says what was missing.
        Each poll judges only the packets the last one had not judged for
        good (a `matches` that decrypts is costly under emulation); the
        last packet read is judged again next time, as it may have been
        read while still being written."""
        judged = settled_matches = matched = 0    # packets judged for good, their matches, all matches

        def enough() -> bool:
            nonlocal judged, settled_matches, matched
            try:
                packets = rdpcap(str(self.pcap)) if self.size() else []
            except (EOFError, Scapy_Exception, struct.error):
                return False          # a record still being written: read again
            settled = packets[:-1]
            settled_matches += sum(1 for packet in settled[judged:] if matches(packet))
            judged = max(judged, len(settled))
            matched = settled_matches + (1 if packets and matches(packets[-1]) else 0)
            return matched >= count

        try:
            wait_for(enough, f"{count} matching packets on {self.node}:{self.device}", timeout, 0.1)
        except WaitTimeout:
            pass
        return matched

    def size(self) -> int:
        return self.pcap.stat().st_size if self.pcap.exists() else 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            settle([self])
            self.runtime.stop_program(self.process)

    def collect(self) -> None:
        self.packets = list(rdpcap(str(self.pcap))) if self.size() else []
        events.pcap(self.node, self.device, self.pcap, len(self.packets))

    def __exit__(self, *exc) -> None:
        self.stop()
        self.collect()


def settle(captures: list[Capture]) -> None:
    """Wait until tcpdump has written what it was handed: the files stop growing."""
    sizes: list[tuple[int, ...]] = []

    def stable() -> bool:
        sizes.append(tuple(cap.size() for cap in captures))
        return len(sizes) >= SETTLE_POLLS and len(set(sizes[-SETTLE_POLLS:])) == 1

    try:
        wait_for(stable, f"{len(captures)} capture(s) to settle", SETTLE_TIMEOUT, 0.1)
    except WaitTimeout:
        pass   # a busy link keeps growing the file; stop anyway, it is all evidence


class MultiCapture:
    """Several captures started together (each tcpdump starting while the
    others do) and stopped together."""

    def __init__(self, captures: list[Capture]):
        self.captures = captures

    def __enter__(self) -> "MultiCapture":
        started = []
        try:
            for cap in self.captures:
                cap.start()
                started.append(cap)
            for cap in self.captures:
                cap.wait_ready()
        except BaseException:
            self._stop(started)
            raise
        return self

    def _stop(self, captures: list[Capture]) -> None:
        running = [cap for cap in captures if cap.running()]
        if running:
            settle(running)
            parallel([lambda cap=cap: cap.runtime.stop_program(cap.process) for cap in running])

    def __exit__(self, *exc) -> None:
        self._stop(self.captures)
        for cap in self.captures:
            cap.collect()

    @property
    def packets(self) -> list:
        return [p for cap in self.captures for p in cap.packets]

    @staticmethod
    def watch(seconds: float) -> None:
        """Capture for a fixed window. Used where the check is that nothing
        happens in that time (e.g. no OSPF hello in clear for several hello
        intervals): the window is what is measured, not a wait for an event."""
        time.sleep(seconds)
