"""`iiptran test`: up, the conformance suite, the report, down."""
from __future__ import annotations

import argparse
from pathlib import Path

from testbed.commands import Command
from testbed.commands.common import check_lab, lab_name, moded, named, on_docker, overrides, topology_as_run, varied
from testbed.errors import UserError
from testbed.paths import REPORTS


def arguments(p) -> None:
    p.add_argument("topology")
    named(p)
    moded(p)
    varied(p)
    p.add_argument("--report", type=Path, help="report folder (default reports/<topology>[-<mode>])")
    p.add_argument("--profile", help="run against this built-in broken configuration (a negative profile)")
    p.add_argument("--no-page", action="store_true", help=argparse.SUPPRESS)   # the caller writes index.html


def check(args) -> None:
    check_lab(args)
    if args.profile:
        from testbed.faults import FAULTS
        if args.profile not in FAULTS:
            raise UserError(f"test --profile: unknown profile '{args.profile}' (known: {', '.join(FAULTS)})")
        if (args.mode or "iiptran") != "iiptran":
            raise UserError("test --profile: negative profiles break IIPtran labs; drop --mode")


def report_dir(args) -> Path:
    if args.report:
        return args.report.resolve()
    from testbed.variants import folder_name
    return REPORTS / folder_name(topology_as_run(args), args.profile)


def run(args) -> int:
    from testbed.suite import run_suite
    return run_suite(report_dir(args), topology=args.topology, name=lab_name(args), overrides=overrides(args),
                     fault=args.profile, page=not args.no_page)


def write_page(args) -> None:
    """The report's page, written here natively once the guest is done: under
    emulation it costs about 6 s of CPU (the drawing, the template)."""
    folder = report_dir(args)
    if (folder / "results.json").exists():
        from testbed.report.html import write_report
        print(f"iiptran: report written to {write_report(folder)}")


COMMAND = Command("test", "up, conformance suite, report, down", arguments, run, check=check, docker=on_docker,
                  writable=lambda args: [args.report.resolve()] if args.report else [REPORTS],
                  after_guest=write_page, guest_argv=lambda args: ["--no-page"])
