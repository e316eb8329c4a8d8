"""`iiptran down`: tear a lab down (or every lab, leftovers of killed runs included)."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import lab_name, named
from testbed.errors import UserError


def arguments(p) -> None:
    named(p)
    p.add_argument("--all", action="store_true", help="every lab on this machine, leftovers included")


def _labs_with_containers() -> set[str]:
    """Labs that own containers in a Docker engine that is running (none started for this)."""
    from testbed.runtime import docker_engine
    from testbed.runtime.containers import LABEL_LAB, lab_containers
    engine = docker_engine.client_if_running()
    return {c.labels[LABEL_LAB] for c in lab_containers(engine)} if engine is not None else set()


def run(args) -> int:
    from testbed.lab import Lab, make_runtime, teardown
    from testbed.runtime.netns import labs_with_namespaces
    with_containers = _labs_with_containers() if args.all else set()
    leftovers = labs_with_namespaces() | with_containers
    names = sorted(set(Lab.running()) | leftovers) if args.all else [lab_name(args)]
    for name in names:
        try:
            lab = Lab.attach(name, interrupted_ok=True)
        except UserError:
            if name not in leftovers:
                raise
            # Leftovers of a killed run (no state file), found by name or label.
            teardown(make_runtime("docker" if name in with_containers else "netns", name))
            print(f"removed leftovers of lab '{name}'")
            continue
        lab.down()
        print(f"lab '{name}' is down")
    return 0


COMMAND = Command("down", "tear a lab down", arguments, run, place="lab")
