"""Deliberate breakage of a lab, to prove the suite notices.

Each fault breaks one thing the RFCs rely on. A negative profile
(conformance/profiles.yaml) applies one and requires exactly the checks of
that thing to fail. A fault acts at one moment of a lab's life:

- "config": before bring-up, changing how the lab is built (e.g. what an
  IKE daemon is told to negotiate);
- "before-join": once the lab is up, before detached nodes join (e.g. a
  node that rekeys its links whenever membership changes);
- "after-join": on the finished lab (most faults).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from testbed.errors import UserError
from testbed.keying.manual import ManualKeying
from testbed.topology.model import node_routings

PHASES = ("config", "before-join", "after-join")


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[..., str]       # (lab) -> what it broke, in words
    phase: str = "after-join"
    keying: str = ManualKeying.name  # the keying the fault is written for ("any" for either)
    routing: str = "any"             # the routing stack it needs ("frr"), or any
    live: bool = True                # can be applied to a lab that is up (`iiptran fault`)


def _registry() -> dict[str, Fault]:
    from testbed.faults import events, ike, ipip, routing, sas
    found: dict[str, Fault] = {}
    for module in (sas, ipip, routing, events, ike):
        for fault in module.FAULTS:
            found[fault.name] = fault
    return found


FAULTS: dict[str, Fault] = _registry()


def check_applicable(lab, fault: Fault) -> None:
    if lab.datapath.name != "iiptran":
        raise UserError(f"faults break IIPtran labs; lab '{lab.name}' runs {lab.datapath.name}")
    keyings = {t.keying for _, t in lab.active_link_ends()} or {lab.topology.keying}
    if fault.keying != "any" and keyings != {fault.keying}:
        raise UserError(f"fault '{fault.name}' breaks {fault.keying}-keyed links; lab '{lab.name}' has "
                        f"{', '.join(sorted(keyings))} keying")
    routings = node_routings(lab.topology)
    if fault.routing != "any" and routings != {fault.routing}:
        raise UserError(f"fault '{fault.name}' needs routing {fault.routing} on every VN node; lab '{lab.name}' "
                        f"runs {', '.join(sorted(routings))}")


def lookup(name: str) -> Fault:
    if name not in FAULTS:
        raise UserError(f"unknown fault '{name}' (known: {', '.join(FAULTS)})")
    return FAULTS[name]


def apply(lab, name: str) -> str:
    """A fault applied to a live lab (`iiptran fault`)."""
    fault = lookup(name)
    if not fault.live or fault.phase != "after-join":
        raise UserError(f"fault '{name}' acts {'at bring-up' if fault.phase == 'config' else 'on lab events'}; "
                        f"it cannot be applied to a lab that is up. Run it as a profile: "
                        f"iiptran test <topology> --profile {name}")
    check_applicable(lab, fault)
    return fault.apply(lab)
