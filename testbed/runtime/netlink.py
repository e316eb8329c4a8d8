"""pyroute2 sockets inside a named network namespace, without forking.

pyroute2 opens namespaced sockets in a forked child with a 2 s deadline; a
big Python process under emulation can miss it, and the child is a copy of
the whole test run. Entering the namespace in this thread just long enough
to open the socket avoids both (the socket stays bound to the namespace).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from pyroute2 import IPRoute
from pyroute2.netns import popns, pushns

NETNS_DIR = "/run/netns"


@contextmanager
def rtnl(netns: str) -> Iterator[IPRoute]:
    if not os.path.exists(f"{NETNS_DIR}/{netns}"):
        raise FileNotFoundError(f"network namespace {netns} does not exist")
    pushns(netns)
    try:
        ipr = IPRoute()
    finally:
        popns()
    with ipr:
        yield ipr


def write_sysctls(netns: str, settings: dict[str, str]) -> None:
    """Set net.* sysctls of a namespace from this thread, without a process:
    /proc/sys/net shows the namespace of the thread that opens it. (Inside a
    container /proc/sys is read-only; from here it is not.)"""
    if not os.path.exists(f"{NETNS_DIR}/{netns}"):
        raise FileNotFoundError(f"network namespace {netns} does not exist")
    pushns(netns)
    try:
        for key, value in settings.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as knob:
                knob.write(str(value))
    finally:
        popns()


def read_proc_net(netns: str, name: str) -> str:
    """A /proc/net file (snmp, netstat, xfrm_stat) of a namespace, read from
    this thread without a process: /proc/thread-self/net is the namespace of
    the thread that opens it."""
    if not os.path.exists(f"{NETNS_DIR}/{netns}"):
        raise FileNotFoundError(f"network namespace {netns} does not exist")
    pushns(netns)
    try:
        with open(f"/proc/thread-self/net/{name}") as source:
            return source.read()
    finally:
        popns()


@contextmanager
def netns_fd(netns: str) -> Iterator[int]:
    fd = os.open(f"{NETNS_DIR}/{netns}", os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def list_namespaces() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def pids_in_namespace(netns: str, name: str | None = None) -> list[int]:
    """Processes whose network namespace is `netns` (optionally only those
    whose command is `name`): deleting a namespace does not end them."""
    try:
        target = os.stat(f"{NETNS_DIR}/{netns}")
    except FileNotFoundError:
        return []
    found = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{proc}/ns/net")
            if (ns.st_ino, ns.st_dev) != (target.st_ino, target.st_dev):
                continue
            if name is not None and open(f"/proc/{proc}/comm").read().strip() != name:
                continue
        except OSError:
            continue
        found.append(int(proc))
    return found
