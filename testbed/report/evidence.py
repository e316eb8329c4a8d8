"""What each check saw: commands run in nodes (with output), captures, decoded packets.

The runtime and the probes report here; the suite's hooks attribute the
items to the test that is running and write them beside the junit.xml.
Key material in `ip xfrm` output is redacted before it is stored.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

KEY = re.compile(r"\b(aead|enc|auth|auth-trunc|comp)\s+(\S+)\s+0x[0-9a-fA-F]+")
MAX_OUTPUT = 20000
MAX_ITEMS = 300        # a bring-up in a test's fixtures runs hundreds of polls


def redact(text: str) -> str:
    return KEY.sub(lambda m: f"{m.group(1)} {m.group(2)} <key redacted>", text)


@dataclass
class Item:
    kind: str             # "command", "pcap" or "packets"
    title: str
    body: str = ""
    node: str = ""
    path: str = ""


@dataclass
class Recorder:
    items: list[Item] | None = None
    report_dir: Path | None = None
    history: dict[str, list[Item]] = field(default_factory=dict)

    def start(self) -> None:
        self.items = []

    def stop(self) -> list[Item]:
        items, self.items = self.items or [], None
        return items

    def _full(self) -> bool:
        if self.items is None:
            return True
        if len(self.items) == MAX_ITEMS:
            self.items.append(Item("packets", f"(more than {MAX_ITEMS} items; the rest are not kept)"))
        return len(self.items) > MAX_ITEMS

    def command(self, node: str, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        if self._full():
            return
        text = redact((stdout or "") + (stderr or ""))
        if len(text) > MAX_OUTPUT:
            text = text[:MAX_OUTPUT] + f"\n... ({len(text) - MAX_OUTPUT} more characters)"
        self.items.append(Item("command", f"{shlex.join(argv)}  (exit {returncode})", text, node=node))

    def pcap(self, node: str, device: str, path: Path, count: int) -> None:
        if self.items is not None:   # captures are always kept: they are the proof
            self.items.append(Item("pcap", f"capture on {node}:{device}, {count} packets", node=node,
                                   path=str(path)))

    def note(self, node: str, title: str, lines: list[str]) -> None:
        """State read through netlink rather than a command, as text."""
        if not self._full():
            self.items.append(Item("command", title, "\n".join(lines), node=node))

    def packets(self, title: str, lines: list[str]) -> None:
        if self.items is not None:
            self.items.append(Item("packets", title, "\n".join(lines)))


RECORDER = Recorder()


def as_dicts(items: list[Item]) -> list[dict]:
    return [asdict(item) for item in items]
