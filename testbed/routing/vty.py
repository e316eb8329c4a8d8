"""Ask a running FRR daemon a command over its vty socket, as vtysh does,
without starting a program: under emulation one vtysh costs about 0.3 s
(0.45 s through `ip netns exec`), the socket a few milliseconds, and
readiness waits ask every node's ospfd many times a run.

The protocol (FRR lib/vty.c, VTY_SHELL_SERV): the client sends each command
line ended by a NUL byte; the daemon answers with the output, then three
NUL bytes and the command's status (0: success).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from testbed.errors import TestbedError

STATUS_NAMES = {1: "warning", 2: "no such command", 3: "ambiguous command", 4: "incomplete command",
                5: "too many arguments", 6: "nothing to do", 10: "warning (config failed)",
                11: "not my instance", 12: "no level up", 13: "error in the command"}


def ask(folder: Path, daemon: str, command: str, timeout: float = 30.0) -> str:
    """The daemon's answer to `command`; TestbedError when it cannot be
    reached or the command failed. `folder` holds `<daemon>.vty`."""
    # Connected through a descriptor of the folder: a socket path is limited
    # to 108 bytes, and a container's folder seen from here is a long one.
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise TestbedError(f"{daemon}'s vty folder {folder}: {error.strerror}") from None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as vty:
            vty.settimeout(timeout)
            vty.connect(f"/proc/self/fd/{folder_fd}/{daemon}.vty")
            # As vtysh does: some show commands (bfdd's) exist only in the
            # enable node, and a connection starts in the view node.
            _exchange(vty, daemon, folder, "enable")
            return _exchange(vty, daemon, folder, command)
    except (OSError, socket.timeout) as error:
        raise TestbedError(f"{daemon} ({folder}) did not answer '{command}': {error}") from None
    finally:
        os.close(folder_fd)


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
