"""`iiptran profiles`: the suite against each negative profile; exactly what each breaks must fail."""
from __future__ import annotations

from pathlib import Path

from testbed.commands import Command
from testbed.commands.common import named
from testbed.paths import REPORTS


def arguments(p) -> None:
    named(p)
    p.add_argument("--only", help="comma-separated profile names (default: all of conformance/profiles.yaml)")
    p.add_argument("--report", type=Path, help="report folder (default reports/profiles)")


def check(args) -> None:
    if args.only:
        from testbed.profiles import chosen_profiles, load_profiles
        chosen_profiles(load_profiles(), args.only.split(","))


def run(args) -> int:
    from testbed.profiles import run_profiles
    report = args.report.resolve() if args.report else REPORTS / "profiles"
    return run_profiles(report, args.name or "profile", args.only.split(",") if args.only else None)


COMMAND = Command("profiles", "the suite against every negative profile: exactly the right checks fail", arguments,
                  run, check=check, writable=lambda args: [args.report.resolve()] if args.report else [REPORTS])
