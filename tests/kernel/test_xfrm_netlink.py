"""The SAD read over netlink is what `ip -s xfrm state` shows: on a real
kernel, SAs of each shape the suite meets (AEAD, cipher with truncated
integrity, ESN, lifetimes, interface ids, tunnel mode), with traffic
counted, both readers give the same records."""
from __future__ import annotations

import os
import subprocess

import pytest

from testbed.probe.xfrm import Sad, parse_states, read_sad
from testbed.runtime.netns import NetnsRuntime

RUNTIME = NetnsRuntime(f"x{os.getpid()}")
KEY = "0x" + "11" * 20
SAS = [
    f"src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x1001 reqid 7 mode transport replay-window 32 "
    f"aead rfc4106(gcm(aes)) {KEY} 128 sel src 10.0.0.1 dst 10.0.0.2 proto 4",
    f"src 10.0.0.2 dst 10.0.0.1 proto esp spi 0x1002 reqid 8 mode tunnel replay-window 64 "
    f"enc cbc(aes) 0x{'22' * 16} auth-trunc hmac(sha256) 0x{'33' * 32} 128 if_id 9 "
    "limit time-soft 30 limit time-hard 60 limit byte-soft 100000 limit packet-hard 5000",
    f"src 10.0.0.1 dst 10.0.0.3 proto esp spi 0x1003 reqid 9 mode transport flag esn replay-window 128 "
    f"aead rfc4106(gcm(aes)) {KEY} 64 limit time-use-soft 20 limit time-use-hard 40",
    f"src 10.0.0.3 dst 10.0.0.1 proto esp spi 0x1004 mode transport "
    f"enc des3_ede 0x{'44' * 24} auth hmac(md5) 0x{'55' * 16}",
]


# A transport pair that carries pings from A to B, so that counters and
# replay state move; each end holds both SAs and its own policies.
TRAFFIC = [
    f"src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x2001 reqid 20 mode transport replay-window 32 "
    f"aead rfc4106(gcm(aes)) {KEY} 128 sel src 10.0.0.1 dst 10.0.0.2 proto icmp",
    f"src 10.0.0.2 dst 10.0.0.1 proto esp spi 0x2002 reqid 21 mode transport replay-window 32 "
    f"aead rfc4106(gcm(aes)) {KEY} 128 sel src 10.0.0.2 dst 10.0.0.1 proto icmp",
]
POLICIES = {"A": [("out", "10.0.0.1", "10.0.0.2", 20), ("in", "10.0.0.2", "10.0.0.1", 21)],
            "B": [("out", "10.0.0.2", "10.0.0.1", 21), ("in", "10.0.0.1", "10.0.0.2", 20)]}
ADDRESSES = {"A": "10.0.0.1/24", "B": "10.0.0.2/24"}


def _ip(node: str, line: str) -> None:
    done = subprocess.run(["ip", "-n", RUNTIME.netns(node), *line.split()], capture_output=True, text=True)
    assert done.returncode == 0, f"{node}: ip {line}: {done.stderr.strip()}"


@pytest.fixture
def nodes():
    made = []
    try:
        for node in ("A", "B"):
            subprocess.run(["ip", "netns", "add", RUNTIME.netns(node)], check=True)
            made.append(node)
        _ip("A", f"link add va type veth peer name vb netns {RUNTIME.netns('B')}")
        for node, device in (("A", "va"), ("B", "vb")):
            _ip(node, f"addr add {ADDRESSES[node]} dev {device}")
            _ip(node, f"link set {device} up")
            for line in SAS + TRAFFIC:
                _ip(node, f"xfrm state add {line}")
            for direction, src, dst, reqid in POLICIES[node]:
                _ip(node, f"xfrm policy add src {src} dst {dst} proto icmp dir {direction} "
                          f"tmpl src {src} dst {dst} proto esp reqid {reqid} mode transport")
        subprocess.run(["ip", "netns", "exec", RUNTIME.netns("A"), "ping", "-c", "3", "-i", "0.2", "-W", "2",
                        "10.0.0.2"], check=True, capture_output=True)
        yield ("A", "B")
    finally:
        for node in made:
            subprocess.run(["ip", "netns", "delete", RUNTIME.netns(node)], capture_output=True)


def test_netlink_sad_is_what_ip_shows(nodes):
    by_spi = lambda states: sorted(states, key=lambda sa: sa.spi)      # noqa: E731
    for node in nodes:
        listed = subprocess.run(["ip", "-n", RUNTIME.netns(node), "-s", "xfrm", "state"], capture_output=True,
                                text=True, check=True).stdout
        shown, read = by_spi(parse_states(listed)), by_spi(read_sad(RUNTIME, node).states)
        assert len(read) == len(SAS + TRAFFIC)
        assert read == shown, node
    esn = next(sa for sa in read if sa.spi == 0x1003)
    assert (esn.replay_window, esn.icv_bits, esn.lifetime.hard_use_s) == (128, 64, 40)
    carried = {sa.spi: sa for sa in read_sad(RUNTIME, "B").states}[0x2001]
    assert (carried.packets, carried.seq, carried.bitmap) == (3, 3, 0b111)   # B took A's three pings


def test_an_empty_sad_reads_empty(nodes):
    _ip("A", "xfrm state flush")
    assert read_sad(RUNTIME, "A") == Sad([])
