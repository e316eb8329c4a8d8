"""Packet captures inside a node with tcpdump, read back with scapy."""
from __future__ import annotations

import select
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from scapy.layers.inet import IP  # noqa: F401  (registers the IP dissectors)
from scapy.layers.l2 import Ether  # noqa: F401
from scapy.config import conf

from testbed import events
from testbed.errors import TestbedError, WaitTimeout
from testbed.parallel import parallel
from testbed.runtime.base import Runtime
from testbed.wait import wait_for

READY_TIMEOUT = 20.0
SETTLE_POLLS = 2
SETTLE_TIMEOUT = 5.0
AWAIT_TIMEOUT = 5.0


PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
              b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True)}


def _records(data: bytes, start: int, endian: str):
    """(offset after the record, header fields, captured bytes) of each
    complete pcap record from `start`; a record still being written is left."""
    while len(data) - start >= 16:
        sec, fraction, caplen, wirelen = struct.unpack(endian + "IIII", data[start:start + 16])
        if len(data) - start - 16 < caplen:
            return
        frame = data[start + 16:start + 16 + caplen]
        start += 16 + caplen
        yield start, (sec, fraction, wirelen), frame


def _file_header(data: bytes) -> tuple[str, bool, int] | None:
    """Byte order, nanosecond stamps and link type of a pcap's header."""
    if len(data) < 24:
        return None
    endian, nano = PCAP_MAGIC.get(data[:4], ("<", False))
    return endian, nano, struct.unpack(endian + "I", data[20:24])[0]


class PcapTail:
    """Reads a pcap file tcpdump is still writing: each call returns only the
    records completed since the last one (a record still being written is
    left for the next call), dissected as scapy would. Waiting on a capture
    then costs what arrived, not the whole file again at every poll."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.header: tuple[str, bool, int] | None = None

    def new_packets(self) -> list:
        try:
            with self.path.open("rb") as source:
                source.seek(self.offset)
                data = source.read()
        except FileNotFoundError:
            return []
        start = 0
        if self.header is None:
            self.header = _file_header(data)
            if self.header is None:
                return []
            start = 24
        found = dissected(data, start, self.header)
        self.offset += found.end
        return found.packets


@dataclass
class _Dissected:
    packets: list
    end: int                    # offset after the last complete record


def dissected(data: bytes, start: int, header: tuple[str, bool, int]) -> _Dissected:
    """The complete records of pcap bytes from `start`, dissected as scapy's rdpcap would."""
    endian, nano, linktype = header
    layer = conf.l2types.num2layer.get(linktype, conf.raw_layer)
    found, end = [], start
    for end, (sec, fraction, wirelen), frame in _records(data, start, endian):
        packet = layer(frame)
        packet.time = sec + fraction / (1e9 if nano else 1e6)
        packet.wirelen = wirelen
        found.append(packet)
    return _Dissected(found, end)


# Link-layer header lengths and where the EtherType sits, per pcap link type.
LINK_HEADERS = {1: (14, 12), 113: (16, 14), 276: (20, 0)}      # Ethernet, Linux cooked v1 and v2
ETHERTYPE_IPV4 = b"\x08\x00"


def ip_frames(pcap: Path) -> list[bytes]:
    """The IPv4 packets of a finished capture as bytes, not dissected: what
    a check that counts thousands of packets reads (scapy's dissection is
    what costs under emulation)."""
    data = pcap.read_bytes()
    header = _file_header(data)
    if header is None:
        return []
    link, ethertype = LINK_HEADERS.get(header[2], (0, None))
    return [frame[link:] for _, _, frame in _records(data, 24, header[0])
            if ethertype is None or frame[ethertype:ethertype + 2] == ETHERTYPE_IPV4]


class Capture:
    """`with Capture(...) as cap:` captures until the block ends; then `cap.packets`.
    `direction` ('in' or 'out') keeps only packets the device received or sent.
    The file is read when the capture ends and dissected only when `packets`
    is first asked for: a check that counts raw frames (ip_frames) or keeps
    the capture as evidence alone pays nothing for scapy's dissection."""

    def __init__(self, runtime: Runtime, node: str, device: str, pcap: Path, bpf: str = "",
                 direction: str | None = None):
        self.runtime, self.node, self.device, self.pcap, self.bpf = runtime, node, device, pcap, bpf
        self.direction = direction
        self.process: subprocess.Popen | None = None
        self._data = b""
        self._packets: list | None = []

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
            self.process = self.runtime.popen(self.node, argv, net_only=True, stdout=out, stderr=subprocess.PIPE,
                                              text=True)

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
        is no error here; the caller's check says what was missing. Each
        packet is read and judged once (a `matches` that decrypts is
        costly under emulation)."""
        tail, matched = PcapTail(self.pcap), 0

        def enough() -> bool:
            nonlocal matched
            matched += sum(1 for packet in tail.new_packets() if matches(packet))
            return matched >= count

        try:
            wait_for(enough, f"{count} matching packets on {self.node}:{self.device}", timeout, 0.1)
        except WaitTimeout:
            pass
        return matched

    def wait_for_packet(self, matches: Callable[[object], bool], timeout: float = AWAIT_TIMEOUT):
        """The first packet captured so far that matches (the capture still
        running), waiting up to `timeout`; None if none came."""
        tail, found = PcapTail(self.pcap), []

        def seen() -> bool:
            found.extend(packet for packet in tail.new_packets() if matches(packet))
            return bool(found)

        try:
            wait_for(seen, f"a matching packet on {self.node}:{self.device}", timeout, 0.1)
        except WaitTimeout:
            return None
        return found[0]

    def size(self) -> int:
        return self.pcap.stat().st_size if self.pcap.exists() else 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            settle([self])
            self.runtime.stop_program(self.process)

    def collect(self) -> None:
        self._data = self.pcap.read_bytes() if self.size() else b""
        header = _file_header(self._data)
        count = sum(1 for _ in _records(self._data, 24, header[0])) if header else 0
        self._packets = None if count else []
        events.pcap(self.node, self.device, self.pcap, count)

    @property
    def packets(self) -> list:
        """What the capture held when it ended, dissected (once)."""
        if self._packets is None:
            self._packets = dissected(self._data, 24, _file_header(self._data)).packets
            self._data = b""
        return self._packets

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
