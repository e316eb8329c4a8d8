"""inspect.routes reads the main table over netlink in-process; it must
list what `ip -j route show table main` lists (multipath, blackhole,
default, host routes, preferred sources)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from testbed.probe.inspect import Route, routes
from testbed.runtime.netns import NetnsRuntime

LAB = f"u{os.getpid()}"
SETUP = [
    "link add d0 type veth peer name d1", "link set d0 up", "link set d1 up",
    "addr add 10.0.0.1/24 dev d0", "addr add 10.0.1.1/24 dev d1",
    "route add 192.168.5.0/24 nexthop via 10.0.0.2 dev d0 nexthop via 10.0.1.2 dev d1",
    "route add blackhole 172.16.0.0/12", "route add unreachable 172.31.0.0/16",
    "route add default via 10.0.0.2 src 10.0.0.1", "route add 10.9.9.9 dev d1",
    "route add 10.8.0.0/16 via 10.0.1.2 table 100",    # another table: not listed
]


@pytest.fixture
def runtime():
    lab = NetnsRuntime(LAB)
    name = lab.netns("X")
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create network namespaces here (not root?)")
    try:
        for line in SETUP:
            subprocess.run(["ip", "-n", name, *line.split()], check=True, capture_output=True)
        yield lab
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def _as_ip_lists_them(name: str) -> list[Route]:
    listed = json.loads(subprocess.run(["ip", "-j", "-n", name, "route", "show", "table", "main"],
                                       capture_output=True, text=True, check=True).stdout)
    found = []
    for entry in listed:
        dst = "0.0.0.0/0" if entry["dst"] == "default" else entry["dst"] if "/" in entry["dst"] else entry["dst"] + "/32"
        devices = tuple(hop.get("dev", "?") for hop in entry.get("nexthops", [])) or (entry.get("dev", "?"),)
        found.append(Route(dst, devices, entry.get("gateway"), entry.get("prefsrc")))
    return found


def test_netlink_routes_are_those_ip_lists(runtime):
    found = routes(runtime, "X")
    assert sorted(found, key=repr) == sorted(_as_ip_lists_them(runtime.netns("X")), key=repr)
    assert Route("192.168.5.0/24", ("d0", "d1"), None, None) in found
    assert Route("0.0.0.0/0", ("d0",), "10.0.0.2", "10.0.0.1") in found
    assert not any(r.destination == "10.8.0.0/16" for r in found)
