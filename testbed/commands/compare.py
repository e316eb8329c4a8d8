"""`iiptran compare`: which requirements changed verdict between runs."""
from __future__ import annotations

from pathlib import Path

from testbed.commands import Command
from testbed.paths import REPORTS


def arguments(p) -> None:
    p.add_argument("runs", type=Path, nargs="+", metavar="results.json")
    p.add_argument("--strict", action="store_true", help="exit 1 on any change, not only on new failures")
    p.add_argument("--html", type=Path, default=REPORTS / "compare.html",
                   help="where the HTML view goes (default reports/compare.html)")


def run(args) -> int:
    from testbed.report.compare import compare_files
    return compare_files(args.runs, args.html, args.strict)


COMMAND = Command("compare", "which requirements changed verdict between runs (results.json files, oldest first), "
                  "printed and as an HTML page", arguments, run, place="here")
