"""A header ladder: one captured ESP packet drawn as outer IPv4 / ESP /
inner IPv4 / payload, with the fields the checks read, dissected from the
bytes on the wire and the bytes its SA decrypted (RFC 3884 3.1 and A.2)."""
from __future__ import annotations

import json

from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP

# Fields that differ from packet to packet or from SA to SA by nature; a
# side-by-side view does not flag them.
VARIES = {"identification", "SPI", "sequence number", "ICMP identifier", "header checksum"}


def _ip_fields(ip: IP) -> list[tuple[str, str]]:
    return [("source", ip.src), ("destination", ip.dst), ("protocol", _protocol(ip.proto)),
            ("TTL", str(ip.ttl)), ("TOS", f"0x{ip.tos:02x}"), ("DF", "set" if ip.flags.DF else "clear"),
            ("total length", str(ip.len)), ("identification", str(ip.id)),
            ("options", f"{ip.ihl * 4 - 20} bytes" if ip.ihl > 5 else "none")]


def _protocol(number: int) -> str:
    return {1: "1 (ICMP)", 4: "4 (IPIP)", 50: "50 (ESP)", 6: "6 (TCP)", 17: "17 (UDP)"}.get(number, str(number))


def headers(wire: bytes, plain: bytes) -> list[dict]:
    """[{name, fields: [(label, value)]}], outermost first."""
    outer, decrypted = IP(wire), IP(plain)
    ladder = [{"name": "outer IPv4 (base network)", "fields": _ip_fields(outer)}]
    if ESP in outer:
        esp = outer[ESP]
        ladder.append({"name": "ESP", "fields": [
            ("SPI", f"0x{esp.spi:08x}"), ("sequence number", str(esp.seq)),
            ("encrypted part", f"{len(bytes(esp.data))} bytes (IV, payload, padding, trailer, ICV)"),
            ("next header", _protocol(decrypted.proto) + ", read after decryption")]})
    carried = decrypted.payload
    if isinstance(carried, IP):
        ladder.append({"name": "inner IPv4 (VN, decrypted)", "fields": _ip_fields(carried)})
        carried = carried.payload
    if isinstance(carried, ICMP):
        ladder.append({"name": "payload: ICMP", "fields": [
            ("type", f"{carried.type} ({carried.sprintf('%ICMP.type%')})"), ("ICMP identifier", str(carried.id)),
            ("ICMP sequence", str(carried.seq)), ("data", f"{len(bytes(carried.payload))} bytes")]})
    elif len(carried):
        ladder.append({"name": "payload", "fields": [("data", f"{len(bytes(carried))} bytes")]})
    return ladder


def from_item(item: dict) -> list[dict]:
    body = json.loads(item["body"])
    return headers(bytes.fromhex(body["wire"]), bytes.fromhex(body["plain"]))


def first_ladder(tests: list[dict]) -> dict | None:
    """The first ladder a run's tests emitted: {title, test, headers}."""
    for test in tests:
        for item in test.get("evidence", []):
            if item.get("kind") == "ladder":
                return {"title": item["title"], "test": test["id"], "headers": from_item(item)}
    return None


def side_by_side(ladders: dict[str, list[dict] | None]) -> list[dict]:
    """Rows for a table with one column per run: [{header, label, values,
    differs}]; `differs` marks a field that is not the same in every run
    that has a ladder (fields that vary by nature are never marked)."""
    rows: list[dict] = []
    seen: list[tuple[str, str]] = []
    for ladder in ladders.values():
        for header in ladder or []:
            for label, _ in header["fields"]:
                if (header["name"], label) not in seen:
                    seen.append((header["name"], label))
    for name, label in seen:
        values = [_value(ladder, name, label) for ladder in ladders.values()]
        present = {v for v, ladder in zip(values, ladders.values()) if ladder}
        rows.append({"header": name, "label": label, "values": values,
                     "differs": label not in VARIES and len(present) > 1})
    return rows


def _value(ladder: list[dict] | None, name: str, label: str) -> str:
    for header in ladder or []:
        if header["name"] == name:
            return dict(header["fields"]).get(label, "-")
    return "-"
