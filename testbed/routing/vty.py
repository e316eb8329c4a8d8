"""Ask a running FRR daemon a command over its vty socket, as vtysh does,
without starting a program: under emulation one vtysh costs about 0.3 s
(0.45 s through `ip netns exec`), the socket a few milliseconds, and
readiness waits ask every node's ospfd many times a run.

The protocol (FRR lib/vty.c, VTY_SHELL_SERV): the client sends each command
line ended by a NUL byte; the daemon answers with the output, then three
NUL bytes and the command's status (0: success).
"""
from __future__ import annotations

import socket
from pathlib import Path

from testbed.errors import TestbedError
from testbed.routing.daemons import control_socket

STATUS_NAMES = {1: "warning", 2: "no such command", 3: "ambiguous command", 4: "incomplete command",
                5: "too many arguments", 6: "nothing to do", 10: "warning (config failed)",
                11: "not my instance", 12: "no level up", 13: "error in the command"}


def ask(folder: Path, daemon: str, command: str, timeout: float = 30.0) -> str:
    """The daemon's answer to `command`; TestbedError when it cannot be
    reached or the command failed. `folder` holds `<daemon>.vty`."""
    with control_socket(folder, f"{daemon}.vty", timeout, daemon, command) as vty:
        # As vtysh does: some show commands (bfdd's) exist only in the
        # enable node, and a connection starts in the view node.
        _exchange(vty, daemon, folder, "enable")
        return _exchange(vty, daemon, folder, command)


def _exchange(vty: socket.socket, daemon: str, folder: Path, command: str) -> str:
    vty.sendall(command.encode() + b"\0")
    answer = b""
    while len(answer) < 4 or answer[-4:-1] != b"\0\0\0":
        chunk = vty.recv(65536)
        if not chunk:
            raise OSError(f"the daemon closed the connection after {len(answer)} bytes")
        answer += chunk
    output, status = answer[:-4].decode(errors="replace"), answer[-1]
    if status != 0:
        raise TestbedError(f"{daemon} ({folder}): '{command}' failed "
                           f"({STATUS_NAMES.get(status, status)}): {output.strip()[:200]}")
    return output
