"""`iiptran fault NAME`: break a live lab on purpose (to see the suite fail)."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import lab_name, named


def arguments(p) -> None:
    named(p)
    p.add_argument("fault", help="a fault of testbed/faults, e.g. no-policies (an unknown name lists them all)")


def run(args) -> int:
    from testbed.faults import apply
    from testbed.lab import Lab
    lab = Lab.attach(lab_name(args))
    print(f"lab '{lab.name}': {apply(lab, args.fault)}")
    return 0


COMMAND = Command("fault", "break a live lab on purpose (to see the suite fail)", arguments, run, place="lab")
