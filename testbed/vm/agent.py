"""Runs inside a long-lived guest: executes `iiptran` commands sent by the host.

One request per line on the virtio-serial port `iiptran.ctl`, as JSON
{"argv": [...]} (answered with {"rc", "stdout", "stderr"}) or
{"op": "poweroff"}. The lab lives as long as this guest does.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from testbed import lab, status  # noqa: F401  (imported once, used per request)
from testbed.commands import COMMANDS, build_parser

PORT_NAME = "iiptran.ctl"


def find_port() -> str:
    for entry in Path("/sys/class/virtio-ports").glob("*"):
        if (entry / "name").read_text().strip() == PORT_NAME:
            return f"/dev/{entry.name}"
    raise SystemExit(f"agent: no virtio-serial port named {PORT_NAME}")


# Commands that run pytest or a whole other program get a fresh process;
# the rest run here, where the imports (slow under emulation) were paid
# once at start.
OWN_PROCESS = {"check", "test", "run"}


def handle(request: dict) -> dict:
    if request.get("op") == "poweroff":
        return {"rc": 0, "stdout": "", "stderr": "", "poweroff": True}
    argv = request["argv"]
    args = build_parser().parse_args(argv)
    if args.command in OWN_PROCESS:
        done = subprocess.run([sys.executable, "-m", "testbed", *argv], capture_output=True, text=True,
                              check=False)
        return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(args)
    return {"rc": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def run(args) -> int:
    """A command of the registry, here (the guest has the datapath)."""
    from testbed.errors import TestbedError
    try:
        command = COMMANDS[args.command]
        command.check(args)
        return command.run(args)
    except TestbedError as exc:
        print(f"iiptran: {exc}", file=sys.stderr)
        return exc.exit_code


def serve() -> None:
    fd = os.open(find_port(), os.O_RDWR)
    os.write(fd, b'{"ready": true}\n')
    buffer = b""
    while True:
        readable, _, _ = select.select([fd], [], [], 1.0)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:          # the host is not connected right now
            time.sleep(0.2)
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            reply = handle(json.loads(line))
            os.write(fd, json.dumps(reply).encode() + b"\n")
            if reply.get("poweroff"):
                return


if __name__ == "__main__":
    serve()
