"""What each check saw, collected from the events the runtime and the
probes emit (testbed/events.py): commands run in nodes (with output),
captures, decoded packets. The suite's hooks attribute the items to the
test that is running and write them beside the junit.xml. Key material in
`ip xfrm` output is redacted before it is stored.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from testbed import events

KEY = re.compile(r"\b(aead|enc|auth|auth-trunc|comp)\s+(\S+)\s+0x[0-9a-fA-F]+")
MAX_OUTPUT = 20000
MAX_ITEMS = 300        # a bring-up in a test's fixtures runs hundreds of polls


def redact(text: str) -> str:
    return KEY.sub(lambda m: f"{m.group(1)} {m.group(2)} <key redacted>", text)


@dataclass
class Item:
    kind: str             # "command", "pcap", "packets", "ladder" or "path"
    title: str
    body: str = ""
    node: str = ""
    path: str = ""


class Recorder:
    """Listens to the events while a test runs; keeps what it needs as evidence."""

    def __init__(self) -> None:
        self.items: list[Item] | None = None

    def start(self) -> None:
        self.items = []
        events.listen(self.on_event)

    def stop(self) -> list[Item]:
        events.unlisten(self.on_event)
        items, self.items = self.items or [], None
        return items

    def _full(self) -> bool:
        if self.items is None:
            return True
        if len(self.items) == MAX_ITEMS:
            self.items.append(Item("packets", f"(more than {MAX_ITEMS} items; the rest are not kept)"))
        return len(self.items) > MAX_ITEMS

    def on_event(self, event: events.Event) -> None:
        if self.items is None:
            return
        if event.kind == "pcap":        # captures are always kept: they are the proof
            self.items.append(Item("pcap", event.title, node=event.node, path=event.path))
        elif event.kind in ("packets", "ladder", "path"):
            self.items.append(Item(event.kind, event.title, event.body))
        elif not self._full():
            body = redact(event.body)
            if len(body) > MAX_OUTPUT:
                body = body[:MAX_OUTPUT] + f"\n... ({len(body) - MAX_OUTPUT} more characters)"
            self.items.append(Item("command", event.title, body, node=event.node))


RECORDER = Recorder()


def as_dicts(items: list[Item]) -> list[dict]:
    return [asdict(item) for item in items]
