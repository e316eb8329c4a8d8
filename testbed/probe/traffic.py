"""Real traffic between nodes: ping and traceroute from inside a node."""
from __future__ import annotations

import re
from dataclasses import dataclass

from testbed.runtime.base import Runtime

HOP = re.compile(r"^\s*(\d+)\s")
ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    output: str

    @property
    def ok(self) -> bool:
        return self.received > 0


def ping(runtime: Runtime, node: str, destination: str, count: int = 3, pattern_hex: str | None = None,
         source: str | None = None, size: int = 56, interval: float = 0.2, timeout: float = 2,
         extra: list[str] | None = None) -> PingResult:
    """`extra` passes further ping options (TOS, DF, TTL) through unchanged."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(timeout), "-s", str(size),
            *(extra or [])]
    if pattern_hex:
        argv += ["-p", pattern_hex]
    if source:
        argv += ["-I", source]
    done = runtime.run(node, argv + [destination], timeout=count * (interval + timeout) + 10, net_only=True)
    match = re.search(r"(\d+) packets transmitted, (\d+) received", done.stdout)
    sent, received = (int(match.group(1)), int(match.group(2))) if match else (count, 0)
    return PingResult(sent, received, done.stdout + done.stderr)


@dataclass(frozen=True)
class Trace:
    hops: list[str]       # responding address per hop, '*' where none answered
    output: str


def traceroute(runtime: Runtime, node: str, destination: str, max_hops: int = 12, probes: int = 3) -> Trace:
    """ICMP traceroute; each hop answers from the tunnel it was reached through.
    A hop counts as answered if any of its probes was: one lost packet must
    not read as a different path, as ping checks tolerate one lost echo."""
    argv = ["traceroute", "-n", "-I", "-q", str(probes), "-w", "2", "-m", str(max_hops), destination]
    done = runtime.run(node, argv, timeout=max_hops * 3 + 10, net_only=True)
    hops = []
    for line in done.stdout.splitlines()[1:]:
        if HOP.match(line):
            address = ADDRESS.search(line)
            hops.append(address.group(0) if address else "*")
    return Trace(hops, done.stdout + done.stderr)
