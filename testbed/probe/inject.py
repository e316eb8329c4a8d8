"""Send hand-built packets from inside a node through a raw socket."""
from __future__ import annotations

import socket

from testbed.runtime.base import Runtime
from testbed.runtime.netlink import inside


def send_raw_ip(runtime: Runtime, node: str, packet: bytes, destination: str) -> None:
    """Send a complete IPv4 packet (header included) as if the node built it."""
    with inside(runtime.netns(node)):
        # The socket belongs to the namespace it was created in.
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        sock.sendto(packet, (destination, 0))
