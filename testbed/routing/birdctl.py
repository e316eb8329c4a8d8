"""Ask a running BIRD a command over its control socket, as birdc does,
without starting a program (birdc costs a process start under emulation).

The protocol (BIRD's doc/reply_codes): the daemon greets with code 0001;
each reply line starts with a four-digit code and '-' when more lines
follow, or a space on the reply's last line; a line starting with a space
continues the previous code. Codes 8xxx and 9xxx are errors.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from testbed.errors import TestbedError


def ask(folder: Path, name: str, command: str, timeout: float = 30.0) -> list[str]:
    """The reply's text lines (codes stripped); TestbedError when BIRD cannot
    be reached or refused the command. `folder` holds the socket `name`."""
    # Through a descriptor of the folder: a socket path is limited to 108
    # bytes, and a container's folder seen from here is a long one.
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise TestbedError(f"BIRD's folder {folder}: {error.strerror}") from None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
            control.settimeout(timeout)
            control.connect(f"/proc/self/fd/{folder_fd}/{name}")
            replies = control.makefile("rwb")
            _reply(replies, folder, "(greeting)")
            replies.write(command.encode() + b"\n")
            replies.flush()
            return _reply(replies, folder, command)
    except (OSError, socket.timeout) as error:
        raise TestbedError(f"BIRD ({folder}) did not answer '{command}': {error}") from None
    finally:
        os.close(folder_fd)


def _reply(replies, folder: Path, command: str) -> list[str]:
    lines = []
    while True:
        raw = replies.readline()
        if not raw:
            raise OSError(f"BIRD closed the connection after {len(lines)} lines")
        line = raw.decode(errors="replace").rstrip("\n")
        code, mark = line[:4], line[4:5]
        if code.isdigit() and mark in ("-", " "):
            if code[0] in "89":
                raise TestbedError(f"BIRD ({folder}): '{command}' failed: {line[5:].strip()}")
            lines.append(line[5:])
            if mark == " ":
                return lines
        else:
            lines.append(line[1:] if line.startswith(" ") else line)
