"""Read-only questions about a node's kernel state, answered as data."""
from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
from dataclasses import dataclass

from testbed import events
from testbed.errors import TestbedError
from testbed.runtime.base import Runtime
from testbed.runtime import netlink_dump
from testbed.runtime.netlink import read_proc_net, rtnl




@dataclass(frozen=True)
class Route:
    destination: str      # a.b.c.d/len
    devices: tuple[str, ...]   # one per next hop (several for equal-cost multipath)
    gateway: str | None
    source: str | None    # preferred source address

    @property
    def device(self) -> str:
        return self.devices[0]


@dataclass(frozen=True)
class Device:
    name: str
    kind: str
    addresses: tuple[str, ...]
    up: bool
    rx_packets: int
    tx_packets: int
    tunnel: tuple[tuple[str, object], ...] = ()   # ipip: local, remote, ttl, tos (1 = inherit)

    def tunnel_param(self, key: str):
        return dict(self.tunnel).get(key)


def _ip_json(runtime: Runtime, node: str, argv: list[str], batch: list[str] | None = None) -> list:
    """`ip -j -n <node> ...` parsed; with `batch`, one command per line and
    one JSON array per line that succeeded (failed lines print nothing)."""
    full = ["ip", "-j", "-n", runtime.netns(node), *argv]
    done = subprocess.run(full, input="\n".join(batch) + "\n" if batch else None, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 and not batch:
        raise TestbedError(f"{node}: {' '.join(argv)} failed: {done.stderr.strip()}")
    return [item for line in done.stdout.splitlines() if line.strip() for item in json.loads(line)]


MAIN_TABLE = 254
RTM_GETROUTE, RTM_NEWROUTE = 26, 24
RTM_F_CLONED = 0x200      # a cached exception (a learned path MTU), not a route
RTMSG = struct.Struct("=BBBBBBBBI")     # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTNEXTHOP = struct.Struct("=HBBi")      # length, flags, hops, ifindex
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 7, 9, 15


def _ipv4(raw: bytes | None) -> str | None:
    return socket.inet_ntoa(raw[:4]) if raw else None


def _next_hops(raw: bytes) -> list[int]:
    """The interface index of each next hop of an RTA_MULTIPATH."""
    found, offset = [], 0
    while offset + RTNEXTHOP.size <= len(raw):
        length, _flags, _hops, index = RTNEXTHOP.unpack_from(raw, offset)
        if length < RTNEXTHOP.size:
            break
        found.append(index)
        offset += netlink_dump.align(length)
    return found


def routes(runtime: Runtime, node: str) -> list[Route]:
    """The main table, as `ip route show table main` lists it, dumped over
    netlink in this process: convergence waits poll it on every node, and an
    `ip` process costs about 60 ms of CPU under emulation."""
    netns = runtime.netns(node)
    answers = netlink_dump.dump(netns, socket.NETLINK_ROUTE, RTM_GETROUTE, RTMSG.pack(socket.AF_INET, *[0] * 8))
    names = netlink_dump.interface_names(netns)
    found = []
    for kind, payload in answers:
        _family, dst_len, _src_len, _tos, table, _protocol, _scope, _type, flags = RTMSG.unpack_from(payload)
        attrs = netlink_dump.attributes(payload, RTMSG.size)
        if RTA_TABLE in attrs:
            table = struct.unpack_from("=I", attrs[RTA_TABLE])[0]
        if kind != RTM_NEWROUTE or table != MAIN_TABLE or flags & RTM_F_CLONED:
            continue
        indexes = (_next_hops(attrs[RTA_MULTIPATH]) if RTA_MULTIPATH in attrs
                   else [struct.unpack_from("=i", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None])
        found.append(Route(f"{_ipv4(attrs.get(RTA_DST)) or '0.0.0.0'}/{dst_len}",
                           tuple(names.get(index, "?") for index in indexes),
                           _ipv4(attrs.get(RTA_GATEWAY)), _ipv4(attrs.get(RTA_PREFSRC))))
    events.note(node, "routes (main table)",
                [f"{r.destination} dev {','.join(r.devices)}" + (f" via {r.gateway}" if r.gateway else "")
                 + (f" src {r.source}" if r.source else "") for r in found])
    return found


def route_to(routes_: list[Route], address: str) -> Route | None:
    """Longest-prefix match, as the kernel would pick (single table)."""
    target = ipaddress.IPv4Address(address)
    best = None
    for route in routes_:
        net = ipaddress.IPv4Network(route.destination, strict=False)
        if target in net and (best is None or net.prefixlen > ipaddress.IPv4Network(best.destination).prefixlen):
            best = route
    return best


def devices(runtime: Runtime, node: str) -> dict[str, Device]:
    found = {}
    with rtnl(runtime.netns(node)) as ns:
        addrs: dict[int, list[str]] = {}
        for addr in ns.get_addr(family=2):
            addrs.setdefault(addr["index"], []).append(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        for link in ns.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else "loopback"
            stats = link.get_attr("IFLA_STATS64")
            name = link.get_attr("IFLA_IFNAME")
            tunnel = ()
            if kind == "ipip":
                data = info.get_attr("IFLA_INFO_DATA")
                tunnel = tuple((key, data.get_attr(f"IFLA_IPIP_{key.upper()}"))
                               for key in ("local", "remote", "ttl", "tos"))
            found[name] = Device(name, kind or "", tuple(addrs.get(link["index"], [])),
                                 bool(link["flags"] & 1), stats["rx_packets"], stats["tx_packets"], tunnel)
    events.note(node, "interfaces (via netlink)",
                  [f"{d.name} {d.kind} {'up' if d.up else 'down'} {' '.join(d.addresses)} "
                   f"rx {d.rx_packets} tx {d.tx_packets} {dict(d.tunnel) if d.tunnel else ''}".rstrip()
                   for d in found.values()])
    return found


def _proc_net(runtime: Runtime, node: str, name: str) -> str:
    text = read_proc_net(runtime.netns(node), name)
    events.command(node, ["cat", f"/proc/net/{name}"], 0, text, "")
    return text


def xfrm_stats(runtime: Runtime, node: str) -> dict[str, int]:
    out = _proc_net(runtime, node, "xfrm_stat")
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def snmp_counters(runtime: Runtime, node: str, table: str = "snmp") -> dict[str, int]:
    """The node's /proc/net/snmp (or netstat) as 'Icmp.InEchos' -> value."""
    lines = _proc_net(runtime, node, table).splitlines()
    counters = {}
    for names, values in zip(lines[::2], lines[1::2]):
        group, *keys = names.split()
        for key, value in zip(keys, values.split()[1:]):
            counters[f"{group.rstrip(':')}.{key}"] = int(value)
    return counters


def source_for(runtime: Runtime, node: str, destination: str) -> str:
    """The source address the node's kernel picks for an unbound packet."""
    from pyroute2 import NetlinkError
    try:
        with rtnl(runtime.netns(node)) as ns:
            answer = ns.route("get", dst=destination)
    except NetlinkError as exc:
        return f"none ({exc})"
    return (answer[0].get_attr("RTA_PREFSRC") or "none") if answer else "none (no route)"


def egress_devices(runtime: Runtime, node: str, destinations: list[str]) -> dict[str, str]:
    """Per destination, the device the node's kernel sends a packet to it out
    of (`ip route get`: policy rules and every table count), or 'none'."""
    answers = _ip_json(runtime, node, ["-force", "-batch", "-"], [f"route get {d}" for d in destinations])
    devices = {entry.get("dst"): entry.get("dev", "?") for entry in answers}
    return {d: devices.get(d, "none (no route)") for d in destinations}


@dataclass(frozen=True)
class RouteQuery:
    """A route lookup as a packet would make it: to `dst`, and for a
    forwarded packet from `src` arriving on `iif` (None: sent by the node itself)."""
    dst: str
    src: str | None = None
    iif: str | None = None

    def words(self) -> str:
        return f"route get {self.dst}" + (f" from {self.src} iif {self.iif}" if self.iif else "")

    def describe(self) -> str:
        return self.dst + (f" from {self.src} in on {self.iif}" if self.iif else " (sent by the node)")


def route_lookups(runtime: Runtime, node: str, queries: list[RouteQuery]) -> dict[RouteQuery, str]:
    """Per query, the device the node's kernel sends such a packet out of
    (rules, more-specific routes, source and interface keys all count), or
    'none (...)' where the kernel has no route for it; one `ip` for all."""
    answers = _ip_json(runtime, node, ["-force", "-batch", "-"], [q.words() for q in queries])
    found = {(a.get("dst"), a.get("from") if a.get("iif") else None, a.get("iif")): a.get("dev", "?")
             for a in answers}
    result = {}
    for q in queries:
        device = found.get((q.dst, q.src, q.iif))
        if device is None:       # the kernel refused the lookup: ask once more, alone, for its words
            done = subprocess.run(["ip", "-n", runtime.netns(node), *q.words().split()], capture_output=True,
                                  text=True, check=False)
            device = f"none ({(done.stderr or done.stdout).strip() or 'no route for it'})"
        result[q] = device
    return result


def path_mtu(runtime: Runtime, node: str, destination: str) -> int | None:
    """The path MTU the node's kernel has learned towards `destination` (a
    route exception), or None if it knows none."""
    with rtnl(runtime.netns(node)) as ns:
        answer = ns.route("get", dst=destination)
    metrics = answer[0].get_attr("RTA_METRICS") if answer else None
    return metrics.get_attr("RTAX_MTU") if metrics else None
