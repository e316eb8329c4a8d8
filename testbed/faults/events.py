"""Faults that act on lab events, as a misbehaving implementation would:
changing existing SAs when a node joins, or when routing loses a link."""
from __future__ import annotations

from testbed.faults import Fault
from testbed.faults.sas import rekey_link


def join_rekeys_members(lab) -> str:
    """When the members are updated after a join, re-key a link between two
    old members (what a selector-based configuration must do, RFC 3884 4.2.3.2)."""
    members = [n for n in lab.active_vn_nodes()]
    node, tunnel = next((n, t) for n, t in lab.active_link_ends() if n in members)

    def rekey(lab, **_):
        rekey_link(lab, node, tunnel.peer)

    lab.listeners.setdefault("members-updated", []).append(rekey)
    return f"the existing link {tunnel.label} ({node}-{tunnel.peer}) is re-keyed whenever a node joins"


def reroute_rekeys(lab) -> str:
    """When a virtual link goes down, its SAs are re-keyed (an implementation
    mixing routing events into IPsec, RFC 3884 2.3/3.2)."""
    def rekey(lab, node, peer, up, **_):
        if not up:
            rekey_link(lab, node, peer)

    lab.listeners.setdefault("link-state", []).append(rekey)
    return "a virtual link's SAs are re-keyed when the link goes down"


FAULTS = [
    Fault("join-rekeys-members", join_rekeys_members, phase="before-join", live=False),
    Fault("reroute-rekeys", reroute_rekeys, live=False),
]
