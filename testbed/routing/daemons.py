"""Finding and killing a lab's routing daemons by command line (not pid
file: a daemon interrupted while starting may not have written one yet),
and talking to one over its control socket."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
from pathlib import Path
from typing import Callable, Iterator

from testbed.errors import TestbedError
from testbed.wait import wait_for


def node_space(lab: str, node: str) -> str:
    """The folder name of a node's daemons (FRR's pathspace, BIRD's run folder)."""
    return f"iipt-{lab}-{node}"


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


def stop_lab(find: Callable[[], list[int]], what: str, run_root: Path, lab: str, node: str | None) -> None:
    """Kill a lab's daemons of one kind (one node's, or all) and remove their folders under run_root."""
    kill_until_gone(find, what)
    folders = [run_root / node_space(lab, node)] if node else run_root.glob(node_space(lab, "*"))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def control_socket(folder: Path, name: str, timeout: float, what: str, command: str) -> Iterator[socket.socket]:
    """A connection to the socket `name` in `folder`; TestbedError when it
    fails. Through a descriptor of the folder: a socket path is limited to
    108 bytes, and a container's folder seen from here is a long one."""
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise TestbedError(f"{what}'s folder {folder}: {error.strerror}") from None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(f"/proc/self/fd/{folder_fd}/{name}")
            yield connection
    except (OSError, socket.timeout) as error:
        raise TestbedError(f"{what} ({folder}) did not answer '{command}': {error}") from None
    finally:
        os.close(folder_fd)
