"""`iiptran up`: build a lab and wait until it has converged."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import check_lab, lab_name, moded, named, on_docker, overrides, varied


def arguments(p) -> None:
    p.add_argument("topology", help="topology name (fig3, fig6) or path to a lab file")
    named(p)
    p.add_argument("--replace", action="store_true",
                   help="clean away a lab of the same name whose bring-up was interrupted, then bring it up")
    moded(p)
    varied(p)


def run(args) -> int:
    from testbed import status
    from testbed.lab import Lab
    lab = Lab.up(args.topology, lab_name(args), overrides(args), replace=args.replace)
    print(f"lab '{lab.name}' is up: converged {lab.timings['up_to_converged_s']} s after start")
    print(status.render(lab))
    return 0


COMMAND = Command("up", "bring a lab up and wait until it has converged", arguments, run, place="lab",
                  check=check_lab, docker=on_docker)
