"""Finding and killing a lab's routing daemons by command line (not pid
file: a daemon interrupted while starting may not have written one yet),
and talking to one over its control socket."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Callable, Iterator

from testbed.errors import TestbedError
from testbed.processes import kill_until_gone


def node_space(lab: str, node: str) -> str:
    """The folder name of a node's daemons (FRR's pathspace, BIRD's run folder)."""
    return f"iipt-{lab}-{node}"


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
