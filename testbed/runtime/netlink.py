"""pyroute2 sockets inside a named network namespace, without forking.

pyroute2 opens namespaced sockets in a forked child with a 2 s deadline; a
big Python process under emulation can miss it, and the child is a copy of
the whole test run. Entering the namespace in this thread just long enough
to open the socket avoids both (the socket stays bound to the namespace).

A network namespace is a property of a thread, not of the process: each
thread enters and leaves on its own (pyroute2's pushns/popns keep one stack
for the process and save the main thread's namespace, so threads that
configure nodes side by side could return to one another's).
"""
from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from typing import Iterator

from pyroute2 import IPRoute

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


@contextmanager
def inside(netns: str) -> Iterator[None]:
    """This thread in the named namespace for the block, then back."""
    try:
        target = os.open(f"{NETNS_DIR}/{netns}", os.O_RDONLY)
    except FileNotFoundError:
        raise FileNotFoundError(f"network namespace {netns} does not exist") from None
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


@contextmanager
def rtnl(netns: str) -> Iterator[IPRoute]:
    with inside(netns):
        ipr = IPRoute()
    with ipr:
        yield ipr


def write_sysctls(netns: str, settings: dict[str, str]) -> None:
    """Set net.* sysctls of a namespace from this thread, without a process:
    /proc/sys/net shows the namespace of the thread that opens it. (Inside a
    container /proc/sys is read-only; from here it is not.)"""
    with inside(netns):
        for key, value in settings.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as knob:
                knob.write(str(value))


def read_sysctl(netns: str, key: str) -> str:
    """A net.* sysctl of a namespace, read from this thread."""
    with inside(netns):
        with open("/proc/sys/" + key.replace(".", "/")) as knob:
            return knob.read().strip()


def read_proc_net(netns: str, name: str) -> str:
    """A /proc/net file (snmp, netstat, xfrm_stat) of a namespace, read from
    this thread without a process: /proc/thread-self/net is the namespace of
    the thread that opens it."""
    with inside(netns):
        with open(f"/proc/thread-self/net/{name}") as source:
            return source.read()


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
