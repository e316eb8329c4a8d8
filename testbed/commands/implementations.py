"""`iiptran implementations`: the suite against each implementation of
conformance/implementations.yaml, each verdict compared with the
reference's; one batch per kernel series, each in its own guest."""
from __future__ import annotations

import argparse
from pathlib import Path

from testbed.commands import Command
from testbed.commands.common import validate
from testbed.errors import UserError
from testbed.paths import REPORTS


def arguments(p) -> None:
    p.add_argument("topology")
    p.add_argument("--only", help="comma-separated implementations (default: all; the reference always runs)")
    p.add_argument("--report", type=Path, help="report folder (default reports/<topology>-implementations)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)   # one kernel's batch, where it runs


def _chosen(args):
    from testbed.implementations import check_overrides, chosen, load_implementations
    validate(args.topology, quiet=True)
    found = load_implementations()
    names = chosen(found, args.only.split(",") if args.only else None)
    check_overrides(args.topology, found, names)
    return found, names


def check(args) -> None:
    _chosen(args)
    if args.inner and not (args.only and args.report):
        raise UserError("implementations --inner is the per-kernel step; give --only and --report")


def on_docker(args) -> bool:
    from testbed.implementations import overrides_of
    from testbed.topology.loader import load
    from testbed.topology.overrides import with_overrides
    found, names = _chosen(args)
    return any(with_overrides(load(args.topology), overrides_of(found, name)).backend == "docker" for name in names)


def host(args, native: bool) -> int:
    from testbed.implementations import run_outer
    from testbed.topology.loader import load
    _, names = _chosen(args)
    report = (args.report or REPORTS / f"{load(args.topology).name}-implementations").resolve()
    return run_outer(args.topology, names, report, native, args.runner)


def run(args) -> int:
    from testbed.implementations import run_inner
    return run_inner(args.topology, args.only.split(","), args.report)


COMMAND = Command("implementations", "the suite against several implementations (routing stacks, keying, kernels: "
                  "conformance/implementations.yaml), each verdict compared with the reference's", arguments, run,
                  place="host", check=check, orchestrates=lambda args: not args.inner, host=host, docker=on_docker,
                  writable=lambda args: [args.report.resolve()] if args.report else [REPORTS])
