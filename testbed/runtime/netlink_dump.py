"""Netlink dumps parsed with struct, in this process.

Readers that checks poll (routes, the SAD) dump a table from the kernel
here rather than start `ip`: under emulation a process costs about 60 ms
of CPU, and pyroute2's message parser about 100 ms for one routing table
with its links; the raw messages take a few milliseconds.
"""
from __future__ import annotations

import os
import socket
import struct
from typing import Iterator

from testbed.runtime.netlink import inside

NLMSGHDR = struct.Struct("=IHHII")       # length, type, flags, sequence, port
NLATTR = struct.Struct("=HH")            # length, type
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLA_TYPE_MASK = 0x3FFF
SEQUENCE = 1


def align(length: int) -> int:
    return (length + 3) & ~3


def attributes(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Type -> payload of the attributes from `offset` on."""
    found = {}
    while offset + NLATTR.size <= len(data):
        length, kind = NLATTR.unpack_from(data, offset)
        if length < NLATTR.size:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + NLATTR.size:offset + length]
        offset += align(length)
    return found


def _answers(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + NLMSGHDR.size <= len(data):
            length, kind, _flags, sequence, _port = NLMSGHDR.unpack_from(data, offset)
            payload = data[offset + NLMSGHDR.size:offset + length]
            offset += align(length)
            if sequence != SEQUENCE:
                continue
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                error = -struct.unpack_from("=i", payload)[0]
                if error:
                    raise OSError(error, os.strerror(error))
                return
            yield kind, payload


def dump(netns: str, protocol: int, request: int, body: bytes = b"") -> list[tuple[int, bytes]]:
    """(type, payload) of every message the namespace's kernel answers to a
    dump request of that type (body: the request's fixed header, if any)."""
    with inside(netns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    with sock:
        sock.bind((0, 0))
        sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(body), request, NLM_F_REQUEST | NLM_F_DUMP, SEQUENCE, 0) + body)
        return list(_answers(sock))


def interface_names(netns: str) -> dict[int, str]:
    """Index -> name of the namespace's interfaces."""
    with inside(netns):
        return dict(socket.if_nameindex())
