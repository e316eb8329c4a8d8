"""What each check saw, collected from the events the runtime and the
probes emit (testbed/events.py): commands run in nodes (with output),
captures, decoded packets. The suite's hooks attribute the items to the
test that is running and write them beside the junit.xml. Key material in
`ip xfrm` output is redacted before it is stored.
"""
from __future__ import annotations

import re
from dataclasses import replace

from testbed import events

KEY = re.compile(r"\b(aead|enc|auth|auth-trunc|comp)\s+(\S+)\s+0x[0-9a-fA-F]+")
MAX_OUTPUT = 20000
MAX_ITEMS = 300        # a bring-up in a test's fixtures runs hundreds of polls


def redact(text: str) -> str:
    return KEY.sub(lambda m: f"{m.group(1)} {m.group(2)} <key redacted>", text)


class Recorder:
    """Listens to the events while a test runs; keeps what it needs as
    evidence (the events themselves, command output redacted and cut).
    One per suite run."""

    def __init__(self) -> None:
        self.items: list[events.Event] | None = None

    def start(self) -> None:
        self.items = []
        events.listen(self.on_event)

    def stop(self) -> list[events.Event]:
        events.unlisten(self.on_event)
        items, self.items = self.items or [], None
        return items

    def _full(self) -> bool:
        if self.items is None:
            return True
        if len(self.items) == MAX_ITEMS:
            self.items.append(events.Event("packets", f"(more than {MAX_ITEMS} items; the rest are not kept)"))
        return len(self.items) > MAX_ITEMS

    def on_event(self, event: events.Event) -> None:
        if self.items is None:
            return
        if event.kind in ("pcap", "packets", "ladder", "path"):       # the proof and the pictures: always kept
            self.items.append(event)
        elif not self._full():
            body = redact(event.body)
            if len(body) > MAX_OUTPUT:
                body = body[:MAX_OUTPUT] + f"\n... ({len(body) - MAX_OUTPUT} more characters)"
            self.items.append(replace(event, kind="command", body=body))


def as_dicts(items: list[events.Event]) -> list[dict]:
    """The evidence file's records: kind, title, body, node, path."""
    return [{"kind": e.kind, "title": e.title, "body": e.body, "node": e.node, "path": e.path} for e in items]
