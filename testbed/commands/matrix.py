"""`iiptran matrix`: the suite against every datapath mode, side by side."""
from __future__ import annotations

from pathlib import Path

from testbed.commands import Command
from testbed.commands.common import validate
from testbed.errors import UserError
from testbed.paths import REPORTS
from testbed.topology.model import DATAPATH_MODES


def arguments(p) -> None:
    p.add_argument("topology", nargs="+")
    p.add_argument("--modes", default=",".join(DATAPATH_MODES), help="comma-separated (default: all three)")
    p.add_argument("--report", type=Path, help="report folder (default reports/<topology>-matrix)")


def check(args) -> None:
    unknown = [m for m in args.modes.split(",") if m not in DATAPATH_MODES]
    if unknown:
        raise UserError(f"matrix --modes: unknown {unknown} (known: {', '.join(DATAPATH_MODES)})")
    for topology in args.topology:
        validate(topology, quiet=True)
    if args.report and len(args.topology) > 1:
        raise UserError("matrix --report: give one topology (several write reports/<topology>-matrix each)")


def run(args) -> int:
    from testbed.matrix import run_matrix
    from testbed.topology.loader import load
    folders = ({args.topology[0]: args.report.resolve()} if args.report else
               {t: REPORTS / f"{load(t).name}-matrix" for t in args.topology})
    return run_matrix(folders, args.modes.split(","))


COMMAND = Command("matrix", "the suite against every datapath mode, side by side, on one topology or several "
                  "(one batch)", arguments, run, check=check,
                  writable=lambda args: [args.report.resolve()] if args.report else [REPORTS])
