"""`iiptran run -- command`: run a command where the real datapath is (natively or in the guest)."""
from __future__ import annotations

import subprocess

from testbed.commands import Command
from testbed.commands.common import strip_dashes
from testbed.errors import UserError


def arguments(p) -> None:
    p.add_argument("cmd", nargs="...")


def check(args) -> None:
    if not strip_dashes(args.cmd):
        raise UserError("run: give a command after --")


COMMAND = Command("run", "run a command where the real datapath is (natively or in the guest)", arguments,
                  lambda args: subprocess.call(strip_dashes(args.cmd)), check=check)
