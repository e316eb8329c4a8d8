"""A lab's state file (/run/iiptran/<lab>/state.json, 0600 in a 0700
folder: it holds SA keys) and what it says the lab is.

Besides what the lab is made of, the file records who is working on it
and in which phase: a bring-up whose process died (SIGKILL, a crash) is
not a lab that is up, and `up` and `status` say so instead of calling it up.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

BUILDING, JOINING, UP, TEARING_DOWN = "bring-up", "join", "up", "teardown"


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot): a pid reused by
    another process does not pass for the owner."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def me() -> dict:
    return {"pid": os.getpid(), "start": _start_ticks(os.getpid())}


def alive(owner: dict | None) -> bool:
    if not owner:
        return False
    started = _start_ticks(owner["pid"])
    return started is not None and started == owner.get("start")


def write(path: Path, data: dict) -> None:
    """Atomically, created 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
    tmp.rename(path)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def interrupted(data: dict) -> str:
    """Why a lab whose state file exists is not up: '' when it is up, or
    still being worked on by a living process."""
    phase, owner = data.get("phase", UP), data.get("owner")
    if phase == UP or alive(owner):
        return ""
    who = f"process {owner['pid']} is gone" if owner else "its process is gone"
    return f"interrupted during {phase} ({who})"
