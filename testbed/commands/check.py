"""`iiptran check`: the conformance suite against a lab that is up."""
from __future__ import annotations

from pathlib import Path

from testbed.commands import Command
from testbed.commands.common import lab_name, named
from testbed.paths import REPORTS


def arguments(p) -> None:
    named(p)
    p.add_argument("--report", type=Path, help="report folder (default reports/<lab>-check)")
    p.add_argument("-k", dest="select", help="only the checks matching this pytest -k expression")


def run(args) -> int:
    from testbed.suite import run_suite
    report = args.report.resolve() if args.report else REPORTS / f"{lab_name(args)}-check"
    return run_suite(report, lab=lab_name(args), select=args.select)


COMMAND = Command("check", "run the conformance suite against a lab that is up", arguments, run, place="lab")
