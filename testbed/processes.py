"""Finding processes and killing them until they stay gone: a lab's
daemons (routing, keying), found by command line or by network namespace.
The ground floor: it imports nothing of the project but the bounded wait
and its error."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable

from testbed.errors import WaitTimeout
from testbed.wait import wait_for


def find_pids(matches: Callable[[list[str]], bool]) -> list[int]:
    """Pids of the processes whose argv `matches` accepts."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and matches(argv):
            pids.append(int(proc.name))
    return pids


def _states(pids: list[int]) -> str:
    def state(pid: int) -> str:
        try:
            line = next(row for row in Path(f"/proc/{pid}/status").read_text().splitlines() if row.startswith("State:"))
            return f"{pid} {line.split(None, 1)[1]}"
        except (OSError, StopIteration):
            return f"{pid} gone"
    return ", ".join(map(state, pids)) or "none"


def kill_until_gone(find: Callable[[], list[int]], what: str, timeout: float = 30) -> None:
    """Kill what `find` finds, again on every look: a start already under
    way when a lab's runner died (a `docker exec` outlives its client) can
    spawn a daemon after the first sweep."""
    def sweep() -> bool:
        pids = find()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids
    wait_for(sweep, f"{what} to exit", timeout=timeout, describe=lambda: _states(find()))


def stop(find: Callable[[], list[int]], what: str, sig: int, timeout: float) -> None:
    """Signal what `find` finds and wait until it is gone; what is still
    there after `timeout` is killed outright (a daemon's shutdown, or a
    crash when `sig` is SIGKILL)."""
    for pid in find():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    try:
        wait_for(lambda: not find(), f"{what} to exit", timeout)
    except WaitTimeout:
        kill_until_gone(find, what)
