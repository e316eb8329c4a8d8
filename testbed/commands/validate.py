"""`iiptran validate`: check a lab file without building anything."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import validate


def arguments(p) -> None:
    p.add_argument("topology")


COMMAND = Command("validate", "check a topology file without building anything", arguments,
                  lambda args: validate(args.topology), place="here")
