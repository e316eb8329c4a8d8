"""Read-only questions about a node's kernel state, answered as data."""
from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from testbed import events
from testbed.errors import TestbedError
from testbed.runtime.base import Runtime
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


def _prefix(dst: str) -> str:
    return "0.0.0.0/0" if dst == "default" else dst if "/" in dst else f"{dst}/32"


def routes(runtime: Runtime, node: str) -> list[Route]:
    """The main table, as `ip route` lists it (cached exceptions are no routes)."""
    found = []
    for entry in _ip_json(runtime, node, ["route", "show", "table", "main"]):
        devices = tuple(hop.get("dev", "?") for hop in entry.get("nexthops", [])) or (entry.get("dev", "?"),)
        found.append(Route(_prefix(entry["dst"]), devices, entry.get("gateway"), entry.get("prefsrc")))
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
