"""What the lower layers ran and saw, told to whoever listens.

The runtime and the probes emit an event for each command they run in a
node, each capture and each piece of state they read; the report (or
anything else) listens. The emitters know nothing of their listeners.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Event:
    kind: str             # "command", "note", "pcap", "packets", "ladder" or "path"
    title: str
    body: str = ""
    node: str = ""
    path: str = ""
    count: int = 0


Listener = Callable[[Event], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unlisten(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def emit(event: Event) -> None:
    for listener in list(_listeners):
        listener(event)


def command(node: str, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
    """A program ran in a node: its command line, exit code and output."""
    if _listeners:
        import shlex
        emit(Event("command", f"{shlex.join(map(str, argv))}  (exit {returncode})", (stdout or "") + (stderr or ""),
                   node))


def note(node: str, title: str, lines: list[str]) -> None:
    """State read without a command (netlink), or a check's own account, as text."""
    emit(Event("note", title, "\n".join(lines), node))


def pcap(node: str, device: str, path: Path, count: int) -> None:
    emit(Event("pcap", f"capture on {node}:{device}, {count} packets", node=node, path=str(path), count=count))


def packets(title: str, lines: list[str]) -> None:
    """Decoded packets, one line each."""
    emit(Event("packets", title, "\n".join(lines)))


def ladder(title: str, wire: bytes, plain: bytes) -> None:
    """One captured packet as it crossed the wire (from its outer IP header)
    and as its SA decrypted it, for a picture of its headers."""
    import json
    emit(Event("ladder", title, json.dumps({"wire": wire.hex(), "plain": plain.hex()})))


def path(flow: str, nodes: list[str]) -> None:
    """The VN nodes a flow's packets were seen to cross, in order."""
    import json
    emit(Event("path", flow, json.dumps(nodes)))
