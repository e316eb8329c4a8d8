"""Labs kept up inside a guest: one long-lived VM per lab, driven over a
virtio-serial control port, so `up`, `status`, `exec`, `check`, `down` work
the same as natively. Stopping the VM removes everything the lab made.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from testbed.errors import EnvironmentProblem, UserError, WaitTimeout
from testbed.names import resolve_lab_name
from testbed.paths import CACHE_DIR, REPORTS, RUN_DIR

BOOT_TIMEOUT = 120.0
REQUEST_TIMEOUT = 1800.0


def session_dir(lab: str) -> Path:
    return RUN_DIR / f"session-{lab}"


def sessions() -> list[str]:
    return sorted(p.name[len("session-"):] for p in RUN_DIR.glob("session-*") if (p / "qemu.pid").exists())


def _alive(lab: str) -> bool:
    try:
        pid = int((session_dir(lab) / "qemu.pid").read_text())
        os.kill(pid, 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False


class Channel:
    """Line-delimited JSON over QEMU's unix socket for the control port."""

    def __init__(self, path: Path, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for the guest's control socket {path}")
                time.sleep(0.1)
        self.buffer = b""

    def read(self, timeout: float, what: str) -> dict:
        self.sock.settimeout(timeout)
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for {what}") from None
            if not chunk:
                raise EnvironmentProblem(f"the guest closed its control port while {what}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, message: dict, what: str) -> dict:
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        return self.read(REQUEST_TIMEOUT, what)

    def close(self) -> None:
        self.sock.close()


def _boot(lab: str) -> Channel:
    from testbed.vm.guest import Guest, GuestSpec
    folder = session_dir(lab)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    reports = REPORTS
    reports.mkdir(exist_ok=True)
    spec = GuestSpec(run_dir=folder, writable=[reports], control_socket=folder / "ctl.sock",
                     console_log=folder / "console.log")
    guest = Guest(spec, CACHE_DIR)
    pid = guest.start_detached([sys.executable, "-m", "testbed.vm.agent"], Path.cwd(), dict(os.environ))
    (folder / "qemu.pid").write_text(str(pid))
    try:
        channel = Channel(folder / "ctl.sock", timeout=30)
        channel.read(BOOT_TIMEOUT, f"the guest for lab '{lab}' to boot (console: {folder / 'console.log'})")
        return channel
    except BaseException:
        _kill(lab)
        raise


def _kill(lab: str) -> None:
    folder = session_dir(lab)
    try:
        os.kill(int((folder / "qemu.pid").read_text()), signal.SIGKILL)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    shutil.rmtree(folder, ignore_errors=True)


def _relay(reply: dict) -> int:
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply.get("stderr", ""))
    return int(reply.get("rc", 1))


def forward(args: argparse.Namespace, argv: list[str]) -> int:
    """Run a lab command in the lab's guest, booting it for `up`."""
    if args.command == "down" and args.all:
        for lab in sessions():
            _shutdown(lab, argv_for_down=["down", "--name", lab])
        return 0
    lab = resolve_lab_name(args, sessions)
    if args.command == "up":
        if _alive(lab):
            raise UserError(f"a lab named '{lab}' is already up; run 'down --name {lab}' first")
        channel = _boot(lab)
        try:
            code = _relay(channel.request({"argv": argv}, f"lab '{lab}' to come up"))
        except BaseException:
            _kill(lab)
            raise
        channel.close()
        if code != 0:
            _kill(lab)
        return code
    if not _alive(lab):
        _kill(lab)   # a stale folder from a crashed guest
        raise UserError(f"no lab named '{lab}' is up here")
    if args.command == "down":
        return _shutdown(lab, argv_for_down=argv)
    channel = Channel(session_dir(lab) / "ctl.sock", timeout=10)
    try:
        return _relay(channel.request({"argv": argv}, f"'{args.command}' in lab '{lab}'"))
    finally:
        channel.close()


def _shutdown(lab: str, argv_for_down: list[str]) -> int:
    """Tear the lab down inside the guest, then stop the guest."""
    code = 0
    if _alive(lab):
        channel = Channel(session_dir(lab) / "ctl.sock", timeout=10)
        try:
            code = _relay(channel.request({"argv": argv_for_down}, f"lab '{lab}' to come down"))
            channel.request({"op": "poweroff"}, "the guest to acknowledge power-off")
        finally:
            channel.close()
    _kill(lab)
    return code
