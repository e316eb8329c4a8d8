"""`iiptran join NODE`: bring a detached VN node in (RFC 3884 4.2.3.2)."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import lab_name, named


def arguments(p) -> None:
    named(p)
    p.add_argument("node")


def run(args) -> int:
    from testbed.lab import Lab
    lab = Lab.attach(lab_name(args))
    lab.join(args.node)
    print(f"{args.node} joined lab '{lab.name}'; the lab has converged")
    return 0


COMMAND = Command("join", "bring a detached VN node into the lab (RFC 3884 4.2.3.2)", arguments, run, place="lab")
