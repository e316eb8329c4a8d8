"""Ask a running BIRD a command over its control socket, as birdc does,
without starting a program (birdc costs a process start under emulation).

The protocol (BIRD's doc/reply_codes): the daemon greets with code 0001;
each reply line starts with a four-digit code and '-' when more lines
follow, or a space on the reply's last line; a line starting with a space
continues the previous code. Codes 8xxx and 9xxx are errors.
"""
from __future__ import annotations

from pathlib import Path

from testbed.errors import TestbedError
from testbed.routing.daemons import control_socket


def ask(folder: Path, name: str, command: str, timeout: float = 30.0) -> list[str]:
    """The reply's text lines (codes stripped); TestbedError when BIRD cannot
    be reached or refused the command. `folder` holds the socket `name`."""
    with control_socket(folder, name, timeout, "BIRD", command) as control:
        replies = control.makefile("rwb")
        _reply(replies, folder, "(greeting)")
        replies.write(command.encode() + b"\n")
        replies.flush()
        return _reply(replies, folder, command)


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
