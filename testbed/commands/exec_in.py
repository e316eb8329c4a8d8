"""`iiptran exec NODE -- command`: run a command inside a node."""
from __future__ import annotations

import subprocess
import sys

from testbed.commands import Command
from testbed.commands.common import has_real_stdout, lab_name, named, strip_dashes
from testbed.errors import UserError


def arguments(p) -> None:
    named(p)
    p.add_argument("node")
    p.add_argument("cmd", nargs="...", help="-- command and arguments")


def check(args) -> None:
    if not strip_dashes(args.cmd):
        raise UserError("exec: give a command after --")


def run(args) -> int:
    from testbed.lab import Lab
    lab = Lab.attach(lab_name(args))
    if args.node not in lab.plan.nodes:
        raise UserError(f"lab '{lab.name}' has no node '{args.node}' (nodes: {', '.join(lab.plan.nodes)})")
    argv = lab.runtime.exec_argv(args.node, strip_dashes(args.cmd))
    if has_real_stdout():
        return subprocess.call(argv)          # interactive programs keep the terminal
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


COMMAND = Command("exec", "run a command inside a node", arguments, run, place="lab", check=check)
